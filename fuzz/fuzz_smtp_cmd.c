/* fuzz_smtp_cmd.c - libFuzzer target: command lexing, MAIL/RCPT parameters, BDAT arguments
 *
 * Walks the same path the server takes for a command line (lex, parse the
 * path, parse the parameters after it) and also feeds the raw line to each
 * parameter parser.  Aborts when a result breaks an invariant.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_cmd.h"

/* check - abort (reported by libFuzzer as a crash) when an invariant fails */
static void check(int ok)
{
    if (!ok)
        abort();
}

/* no_ctrl - a NUL-terminated field inside its buffer, without control bytes */
static void no_ctrl(const char *s, size_t size)
{
    const char *nul = memchr(s, '\0', size);
    check(nul != NULL);
    for (; s < nul; s++)
        check((unsigned char)*s >= 0x20 && (unsigned char)*s != 0x7f);
}

/* bad_ok - badbuf is NUL-terminated printable ASCII (safe to echo in a reply) */
static void bad_ok(const char *bad, size_t size)
{
    const char *nul = memchr(bad, '\0', size);
    check(nul != NULL);
    for (; bad < nul; bad++)
        check(*bad > ' ' && *bad < 0x7f);
}

/* mail_params - parse MAIL parameters and check the result */
static void mail_params(const char *s)
{
    struct mail_params p;
    char bad[16];
    enum param_status st = smtp_mail_params(s, &p, bad, sizeof(bad));

    bad_ok(bad, sizeof(bad));
    if (st != PARAM_OK)
        return;
    check(bad[0] == '\0' && p.size >= -1);
    no_ctrl(p.envid, sizeof(p.envid));
}

/* rcpt_params - parse RCPT parameters and check the result */
static void rcpt_params(const char *s)
{
    struct rcpt_params p;
    char bad[16];
    enum param_status st = smtp_rcpt_params(s, &p, bad, sizeof(bad));

    bad_ok(bad, sizeof(bad));
    if (st != PARAM_OK)
        return;
    check(bad[0] == '\0');
    check((p.notify & ~0x0f) == 0 && (!(p.notify & NOTIFY_NEVER) || p.notify == NOTIFY_NEVER));
    no_ctrl(p.orcpt, sizeof(p.orcpt));
    check(p.orcpt_type[0] == '\0' || strcmp(p.orcpt_type, "rfc822") == 0 || strcmp(p.orcpt_type, "utf-8") == 0);
}

/* path_then_params - what the server does with MAIL/RCPT arguments */
static void path_then_params(const char *args, int mail)
{
    for (int f = 0; f < 8; f++) {
        struct addr a;
        const char *rest;
        int flags = (f & ~ADDR_F_MAIL) | (mail ? ADDR_F_MAIL : 0);
        if (addr_parse_path(args, flags, &a, &rest) != ADDR_OK)
            continue;
        if (mail)
            mail_params(rest);
        else
            rcpt_params(rest);
    }
}

/* lex - lex the line and check where the arguments point */
static void lex(const char *buf, size_t len)
{
    const char *args = NULL;
    enum smtp_verb v = smtp_cmd_lex(buf, &args);

    check(v >= CMD_UNKNOWN && v < CMD__COUNT);
    if (args == NULL) {
        check(v == CMD_MAIL || v == CMD_RCPT);
        return;
    }
    check(v == CMD_UNKNOWN || v == CMD_HTTP || (args >= buf && args <= buf + len));
    if (v == CMD_MAIL || v == CMD_RCPT)
        path_then_params(args, v == CMD_MAIL);
    if (v == CMD_BDAT) {
        unsigned long long size;
        int last;
        if (smtp_bdat_args(args, &size, &last) == 0)
            check(size <= (1ULL << 53) && (last == 0 || last == 1));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* LLVMFuzzerTestOneInput - feed one input (as a NUL-terminated copy) to every parser here */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    unsigned long long bsize;
    int last;

    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    lex(buf, strlen(buf));
    mail_params(buf);
    rcpt_params(buf);
    if (smtp_bdat_args(buf, &bsize, &last) == 0)
        check(bsize <= (1ULL << 53));
    free(buf);
    return 0;
}
