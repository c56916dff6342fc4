/* fuzz_smtp_data.c - libFuzzer target: the DATA/BDAT text reader
 *
 * The first input byte picks the mode and a chunking seed; the rest is fed
 * whole and then in chunks.  Invariants: never consume more than given, the
 * end of DATA is found at the same offset however the input is split, flags
 * agree, and the end is only ever right after "\r\n.\r\n" (or ".\r\n" at the start).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_data.h"

static void check(int ok)
{
    if (!ok)
        abort();
}

static size_t run(const uint8_t *p, size_t n, enum data_mode mode, unsigned seed, int *flags,
                  int *ended)
{
    struct smtp_data d;
    memset(&d, 0, sizeof(d));
    smtp_data_begin(&d, 1000, 5000);
    size_t used = 0;
    *ended = 0;
    while (used < n && !*ended) {
        size_t chunk = seed ? 1 + (seed = seed * 1103515245u + 12345u) % 97 : n - used;
        if (chunk > n - used)
            chunk = n - used;
        size_t c = smtp_data_feed(&d, (const char *)p + used, chunk, mode, NULL, ended);
        check(c <= chunk);
        check(*ended || c == chunk);
        used += c;
    }
    if (mode == DATA_MODE_BDAT)
        smtp_data_flush(&d, NULL);
    *flags = d.flags;
    smtp_data_free(&d);
    return used;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    enum data_mode mode = (data[0] & 1) ? DATA_MODE_BDAT : DATA_MODE_DOT;
    unsigned seed = data[0] | 1u;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    int f1, f2, e1, e2;
    size_t u1 = run(p, n, mode, 0, &f1, &e1);
    size_t u2 = run(p, n, mode, seed, &f2, &e2);
    check(u1 == u2 && e1 == e2);
    if (!e1)
        check(f1 == f2);
    if (e1) {
        check(mode == DATA_MODE_DOT);
        check(u1 >= 3 && memcmp(p + u1 - 3, ".\r\n", 3) == 0);
        check(u1 == 3 || (u1 >= 5 && memcmp(p + u1 - 5, "\r\n.\r\n", 5) == 0));
    }
    return 0;
}
