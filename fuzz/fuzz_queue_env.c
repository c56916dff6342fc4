/* fuzz_queue_env.c - libFuzzer target: queue file envelope decoder
 *
 * Queue files are tern's own, but a damaged disk must not crash recovery:
 * any input either fails cleanly or decodes to an envelope that re-encodes
 * and decodes again to the same recipients.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "queue_file.h"

static void check(int ok)
{
    if (!ok)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct qenv env, again;
    char err[256];
    if (queue_env_decode((const char *)data, size, &env, err, sizeof(err)) < 0)
        return 0;
    struct buf b = BUF_INIT;
    queue_env_encode(&env, &b);
    check(queue_env_decode(b.data, b.len, &again, err, sizeof(err)) == 0);
    check(again.nrcpt == env.nrcpt);
    for (size_t i = 0; i < env.nrcpt; i++) {
        check(strcmp(again.rcpts[i].addr, env.rcpts[i].addr) == 0);
        check(b.data[again.rcpts[i].state_off] == env.rcpts[i].state);
    }
    queue_env_free(&again);
    queue_env_free(&env);
    buf_free(&b);
    return 0;
}
