/* test_buf.c - growable buffer (append/printf growth, NUL termination) and log_printable */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"

/* pattern - deterministic, non-repeating-ish bytes (all 256 values, NUL included) */
static char pattern(size_t i)
{
    return (char)((i * 131 + (i >> 8) * 7 + 3) & 0xff);
}

/* check_buf - invariants every buffer must keep; content checked from byte from */
static void check_buf_from(const struct buf *b, size_t want_len, size_t from)
{
    assert_int_equal(b->len, want_len);
    assert_non_null(b->data);
    assert_true(b->cap > b->len);
    assert_int_equal(b->data[b->len], '\0');
    for (size_t i = from; i < want_len; i++)
        if (b->data[i] != pattern(i))
            fail_msg("byte %zu of %zu differs", i, want_len);
}

static void check_buf(const struct buf *b, size_t want_len)
{
    check_buf_from(b, want_len, 0);
}

static const size_t sizes[] = {0,   1,   2,   62,   63,   64,   65,   127,  128,   129,
                               255, 256, 257, 1000, 4095, 4096, 4097, 65535, 65536, 100001};
static const size_t chunks[] = {1, 3, 7, 64, 255, 4096, 1000000};

static void test_append_growth(void **state)
{
    (void)state;
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
            size_t total = sizes[s], step = chunks[c];
            char *src = malloc(total + 1);
            for (size_t i = 0; i < total; i++)
                src[i] = pattern(i);
            struct buf b = BUF_INIT;
            size_t off = 0;
            buf_append(&b, src, 0); /* an empty append still allocates and terminates */
            check_buf(&b, 0);
            while (off < total) {
                size_t n = total - off < step ? total - off : step;
                buf_append(&b, src + off, n);
                check_buf_from(&b, off + n, off); /* the new bytes; all of them at the end */
                off += n;
            }
            check_buf(&b, total);
            buf_free(&b);
            assert_null(b.data);
            assert_int_equal(b.len, 0);
            assert_int_equal(b.cap, 0);
            free(src);
        }
    }
}

static void test_putc_puts(void **state)
{
    (void)state;
    struct buf b = BUF_INIT;
    assert_string_equal(buf_str(&b), "");
    for (size_t i = 0; i < 5000; i++) {
        buf_putc(&b, pattern(i));
        check_buf_from(&b, i + 1, i);
    }
    check_buf(&b, 5000);
    buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(buf_str(&b), "");
    assert_true(b.cap >= 5001); /* reset keeps the memory */
    char *before = b.data;
    buf_puts(&b, "hello");
    buf_puts(&b, "");
    buf_puts(&b, ", world");
    assert_ptr_equal(b.data, before);
    assert_int_equal(b.len, 12);
    assert_string_equal(buf_str(&b), "hello, world");
    assert_ptr_equal(buf_str(&b), b.data);
    buf_free(&b);
    assert_string_equal(buf_str(&b), "");

    /* embedded NULs are kept; the terminator comes after them */
    buf_append(&b, "a\0b\0", 4);
    assert_int_equal(b.len, 4);
    assert_memory_equal(b.data, "a\0b\0\0", 5);
    buf_free(&b);
}

static void test_reserve(void **state)
{
    (void)state;
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        struct buf b = BUF_INIT;
        buf_puts(&b, "xyz");
        buf_reserve(&b, sizes[s]);
        assert_true(b.cap >= b.len + sizes[s] + 1);
        char *p = b.data;
        char *src = malloc(sizes[s] + 1);
        memset(src, 'r', sizes[s]);
        buf_append(&b, src, sizes[s]); /* no reallocation after a reservation */
        assert_ptr_equal(b.data, p);
        assert_int_equal(b.len, 3 + sizes[s]);
        assert_int_equal(b.data[b.len], '\0');
        free(src);
        buf_free(&b);
    }
}

/* printf output lengths around the internal 256-byte fast path */
static const size_t printf_sizes[] = {0, 1, 10, 250, 254, 255, 256, 257, 300, 511, 512, 513, 4096, 70000};

static void test_printf_growth(void **state)
{
    (void)state;
    for (size_t s = 0; s < sizeof(printf_sizes) / sizeof(printf_sizes[0]); s++) {
        /* and with different amounts already in the buffer */
        static const size_t prefixes[] = {0, 1, 60, 63, 64, 200, 1000};
        for (size_t p = 0; p < sizeof(prefixes) / sizeof(prefixes[0]); p++) {
            size_t n = printf_sizes[s], pre = prefixes[p];
            char *str = malloc(n + 1);
            for (size_t i = 0; i < n; i++)
                str[i] = (char)('a' + i % 26);
            str[n] = '\0';
            struct buf b = BUF_INIT;
            for (size_t i = 0; i < pre; i++)
                buf_putc(&b, '#');
            buf_printf(&b, "[%s|%d|%zu]", str, -42, n);

            char *want = malloc(pre + n + 64);
            memset(want, '#', pre);
            int wl = (int)pre + snprintf(want + pre, n + 64, "[%s|%d|%zu]", str, -42, n);
            assert_true(wl > 0);
            assert_int_equal(b.len, (size_t)wl);
            assert_true(b.cap > b.len);
            assert_int_equal(b.data[b.len], '\0');
            assert_memory_equal(b.data, want, (size_t)wl);
            /* and appending after a long printf still works */
            buf_putc(&b, '!');
            assert_int_equal(b.len, (size_t)wl + 1);
            assert_int_equal(b.data[b.len - 1], '!');
            assert_int_equal(b.data[b.len], '\0');
            free(want);
            free(str);
            buf_free(&b);
        }
    }
}

/* plain "%s" outputs of every length around the 256-byte fast path */
static void test_printf_exact_lengths(void **state)
{
    (void)state;
    char str[600];
    for (size_t n = 0; n < sizeof(str) - 1; n++) {
        for (size_t i = 0; i < n; i++)
            str[i] = (char)('A' + (i * 7) % 26);
        str[n] = '\0';
        struct buf b = BUF_INIT;
        buf_printf(&b, "%s", str);
        assert_int_equal(b.len, n);
        assert_non_null(b.data);
        assert_memory_equal(b.data, str, n + 1);
        buf_printf(&b, "%s", str); /* and appended to itself */
        assert_int_equal(b.len, 2 * n);
        assert_memory_equal(b.data + n, str, n + 1);
        buf_free(&b);
    }
}

static void test_printf_many(void **state)
{
    (void)state;
    struct buf b = BUF_INIT;
    char want[64];
    size_t off = 0;
    for (int i = 0; i < 20000; i++) {
        buf_printf(&b, "%d,", i);
        int n = snprintf(want, sizeof(want), "%d,", i);
        assert_memory_equal(b.data + off, want, (size_t)n);
        off += (size_t)n;
        assert_int_equal(b.len, off);
        assert_int_equal(b.data[off], '\0');
    }
    buf_printf(&b, "%s", ""); /* empty output changes nothing */
    assert_int_equal(b.len, off);
    buf_free(&b);
}

/* ---- log_printable ---------------------------------------------------- */

struct lp_case {
    const char *src;
    size_t len;      /* bytes of src offered */
    int utf8;
    size_t dstsz;
    const char *want;
};

#define LP(s, utf8, dstsz, want) {s, sizeof(s) - 1, utf8, dstsz, want}
#define LPN(s, len, utf8, dstsz, want) {s, len, utf8, dstsz, want}

static const struct lp_case lp_cases[] = {
    LP("hello", 0, 64, "hello"),
    LP("", 0, 64, ""),
    LP("a b~!", 0, 64, "a b~!"),
    LP("a\r\nb", 0, 64, "a\\x0d\\x0ab"),
    LP("tab\there", 1, 64, "tab\\x09here"),
    LP("back\\slash", 0, 64, "back\\x5cslash"),
    LP("\\x41", 1, 64, "\\x5cx41"),           /* a literal "\x41" cannot pass for an escape */
    LP("\x7f", 1, 64, "\\x7f"),
    LP("\x1b[31mred", 1, 64, "\\x1b[31mred"),
    LP("\x01\x1f", 0, 64, "\\x01\\x1f"),
    LP("j\xc3\xb6ran", 0, 64, "j\\xc3\\xb6ran"), /* non-ASCII escaped without utf8 */
    LP("j\xc3\xb6ran", 1, 64, "j\xc3\xb6ran"),   /* kept with utf8 */
    LP("\xff", 0, 64, "\\xff"),
    LPN("abcdef", 3, 0, 64, "abc"),               /* at most len bytes */
    LPN("ab\0cd", 5, 0, 64, "ab"),                /* stops at the string's end */
    LPN("abcdef", 0, 0, 64, ""),
    /* truncation: always terminated, never a partial escape */
    LP("abcdef", 0, 4, "abc"),
    LP("abcdef", 0, 1, ""),
    LP("abcdef", 0, 2, "a"),
    LP("\r", 0, 4, ""),
    LP("\r", 0, 5, "\\x0d"),
    LP("a\rb", 0, 5, "a"),
    LP("a\rb", 0, 6, "a\\x0d"),
    LP("a\rb", 0, 7, "a\\x0db"),
    LP("ab\\", 0, 5, "ab"),
};

static void test_log_printable_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(lp_cases) / sizeof(lp_cases[0]); i++) {
        const struct lp_case *c = &lp_cases[i];
        char out[80];
        memset(out, 'Z', sizeof(out));
        char *r = log_printable(out, c->dstsz, c->src, c->len, c->utf8);
        assert_ptr_equal(r, out);
        if (strcmp(out, c->want) != 0)
            fail_msg("case %zu: got \"%s\", want \"%s\"", i, out, c->want);
        for (size_t k = c->dstsz; k < sizeof(out); k++)
            assert_int_equal(out[k], 'Z');
    }
}

static void test_log_printable_zero_size(void **state)
{
    (void)state;
    char out[4] = "ZZZ";
    assert_ptr_equal(log_printable(out, 0, "abc", 3, 0), out);
    assert_memory_equal(out, "ZZZ", 4);
}

/* every output size: exact-size heap buffers (ASan sees any overflow), the
 * result is a prefix of the full output that ends on an escape boundary */
static void test_log_printable_bounds(void **state)
{
    (void)state;
    static const char src[] = "ok \\ \r\n\t\x01\x7f\x80\xc3\xa9 end\\\x1b";
    for (int utf8 = 0; utf8 <= 1; utf8++) {
        char full[256];
        log_printable(full, sizeof(full), src, sizeof(src) - 1, utf8);
        size_t fl = strlen(full);
        assert_true(fl > sizeof(src) - 1);
        /* the full output holds nothing unprintable and every '\' starts an escape */
        for (size_t i = 0; i < fl; i++) {
            unsigned char ch = (unsigned char)full[i];
            assert_true(ch >= 0x20 && ch != 0x7f);
            if (!utf8)
                assert_true(ch < 0x80);
            if (ch == '\\') {
                assert_true(i + 3 < fl);
                assert_int_equal(full[i + 1], 'x');
                i += 3;
            }
        }
        for (size_t sz = 1; sz <= fl + 2; sz++) {
            char *out = malloc(sz);
            log_printable(out, sz, src, sizeof(src) - 1, utf8);
            size_t l = strlen(out);
            assert_true(l < sz);
            assert_memory_equal(out, full, l);
            /* never cut inside an escape: the rest of full starts at a unit */
            if (l < fl) {
                size_t u = 0;
                while (u < l)
                    u += full[u] == '\\' ? 4 : 1;
                assert_int_equal(u, l);
                /* and the cut was forced: the next unit would not have fit */
                size_t next = full[l] == '\\' ? 4 : 1;
                assert_true(l + next + 1 > sz);
            }
            free(out);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_growth),
        cmocka_unit_test(test_putc_puts),
        cmocka_unit_test(test_reserve),
        cmocka_unit_test(test_printf_growth),
        cmocka_unit_test(test_printf_exact_lengths),
        cmocka_unit_test(test_printf_many),
        cmocka_unit_test(test_log_printable_table),
        cmocka_unit_test(test_log_printable_zero_size),
        cmocka_unit_test(test_log_printable_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
