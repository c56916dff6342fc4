/* queue_file.c - encode and decode queue file envelopes */
#include "queue_file.h"
#include "addr.h"
#include "buf.h"
#include "smtp_cmd.h"
#include "xmalloc.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *queue_xtext_encode(const char *s)
{
    size_t n = strlen(s);
    char *out = xmalloc(n * 3 + 1);
    if (xtext_encode(s, n, out, n * 3 + 1) < 0)
        out[0] = '\0'; /* cannot happen: 3 octets per input octet always fit */
    return out;
}

char *queue_xtext_decode(const char *p, size_t n)
{
    char *out = xmalloc(n + 1);
    if (xtext_decode(p, n, out, n + 1) < 0) {
        free(out);
        return NULL;
    }
    return out;
}

/* put_xtext - append s as xtext ("" stays empty) */
static void put_xtext(struct buf *out, const char *s)
{
    char *x = queue_xtext_encode(s);
    buf_puts(out, x);
    free(x);
}

/* put_opt_xtext - an optional value: "-" when absent; a value of "-" itself as "+2D" */
static void put_opt_xtext(struct buf *out, const char *s)
{
    if (s == NULL)
        buf_putc(out, '-');
    else if (strcmp(s, "-") == 0)
        buf_puts(out, "+2D");
    else
        put_xtext(out, s);
}

static const char *body_name(int body)
{
    return body == BODY_8BITMIME ? "8BITMIME" : body == BODY_7BIT ? "7BIT" : "-";
}

void queue_env_encode(struct qenv *env, struct buf *out)
{
    size_t base = out->len;
    buf_printf(out, "TERN 1\nid %s\ntime %lld.%06ld\nclient ", env->id, (long long)env->arrival,
               env->arrival_usec);
    put_xtext(out, env->client_addr ? env->client_addr : "");
    buf_putc(out, ' ');
    put_xtext(out, env->client_name ? env->client_name : "");
    buf_puts(out, "\nhelo ");
    put_xtext(out, env->helo ? env->helo : "");
    buf_puts(out, "\nproto ");
    put_xtext(out, env->proto ? env->proto : "");
    buf_puts(out, "\nsender ");
    put_xtext(out, env->sender ? env->sender : "");
    buf_printf(out, "\nbody %s\nsmtputf8 %d\nret %s\nenvid ", body_name(env->body),
               env->smtputf8 ? 1 : 0,
               env->ret == RET_FULL ? "FULL" : env->ret == RET_HDRS ? "HDRS" : "-");
    put_opt_xtext(out, env->envid);
    buf_putc(out, '\n');
    for (size_t i = 0; i < env->nrcpt; i++) {
        struct qrcpt *r = &env->rcpts[i];
        buf_puts(out, "rcpt ");
        r->state_off = (off_t)(out->len - base);
        buf_printf(out, "%c %d %s ", r->state ? r->state : RCPT_QUEUED, r->notify,
                   r->orcpt_type[0] ? r->orcpt_type : "-");
        put_opt_xtext(out, r->orcpt);
        buf_putc(out, ' ');
        put_xtext(out, r->addr);
        buf_putc(out, '\n');
    }
    buf_puts(out, "data\n");
    env->data_off = (off_t)(out->len - base);
}


/* split - split line into at most max space-separated words (empty words allowed) */
static int split(const char *line, size_t len, const char **w, size_t *wl, int max)
{
    int n = 0;
    const char *p = line, *end = line + len;
    while (n < max) {
        const char *s = p;
        while (p < end && *p != ' ')
            p++;
        w[n] = s;
        wl[n] = (size_t)(p - s);
        n++;
        if (p >= end)
            break;
        p++;
    }
    return p < end ? -1 : n;
}

static int word_is(const char *w, size_t wl, const char *lit)
{
    return wl == strlen(lit) && memcmp(w, lit, wl) == 0;
}

/* decode_line - one envelope line; returns 1 at "data", 0 ok, -1 error */
static int decode_line(struct qenv *env, const char *line, size_t len, off_t off, char *err,
                       size_t errsz)
{
    const char *w[6];
    size_t wl[6];
    int n = split(line, len, w, wl, 6);
    if (n < 1) {
        snprintf(err, errsz, "malformed line");
        return -1;
    }
    char **target = NULL;
    if (word_is(w[0], wl[0], "data") && n == 1)
        return 1;
    if (word_is(w[0], wl[0], "TERN") && n == 2 && word_is(w[1], wl[1], "1"))
        return 0;
    if (word_is(w[0], wl[0], "id") && n == 2 && wl[1] == QID_LEN) {
        memcpy(env->id, w[1], QID_LEN);
        env->id[QID_LEN] = '\0';
        return queue_id_valid(env->id) ? 0 : (snprintf(err, errsz, "bad id"), -1);
    }
    if (word_is(w[0], wl[0], "time") && n == 2) {
        long long sec;
        long usec;
        char tmp[64];
        snprintf(tmp, sizeof(tmp), "%.*s", (int)wl[1], w[1]);
        if (sscanf(tmp, "%lld.%ld", &sec, &usec) != 2)
            return snprintf(err, errsz, "bad time"), -1;
        env->arrival = (time_t)sec;
        env->arrival_usec = usec;
        return 0;
    }
    if (word_is(w[0], wl[0], "client") && n == 3) {
        free(env->client_addr);
        free(env->client_name);
        env->client_addr = queue_xtext_decode(w[1], wl[1]);
        env->client_name = queue_xtext_decode(w[2], wl[2]);
        return env->client_addr && env->client_name ? 0 : (snprintf(err, errsz, "bad client"), -1);
    }
    if (word_is(w[0], wl[0], "helo") && n == 2) target = &env->helo;
    else if (word_is(w[0], wl[0], "proto") && n == 2) target = &env->proto;
    else if (word_is(w[0], wl[0], "sender") && n == 2) target = &env->sender;
    if (target) {
        free(*target);
        *target = queue_xtext_decode(w[1], wl[1]);
        return *target ? 0 : (snprintf(err, errsz, "bad %.*s", (int)wl[0], w[0]), -1);
    }
    if (word_is(w[0], wl[0], "body") && n == 2) {
        env->body = word_is(w[1], wl[1], "8BITMIME") ? BODY_8BITMIME
                    : word_is(w[1], wl[1], "7BIT")   ? BODY_7BIT
                                                     : BODY_NONE;
        return 0;
    }
    if (word_is(w[0], wl[0], "smtputf8") && n == 2) {
        env->smtputf8 = word_is(w[1], wl[1], "1");
        return 0;
    }
    if (word_is(w[0], wl[0], "ret") && n == 2) {
        env->ret = word_is(w[1], wl[1], "FULL") ? RET_FULL
                   : word_is(w[1], wl[1], "HDRS") ? RET_HDRS
                                                  : RET_NONE;
        return 0;
    }
    if (word_is(w[0], wl[0], "envid") && n == 2) {
        free(env->envid);
        env->envid = word_is(w[1], wl[1], "-") ? NULL : queue_xtext_decode(w[1], wl[1]);
        return (env->envid || word_is(w[1], wl[1], "-")) ? 0 : (snprintf(err, errsz, "bad envid"), -1);
    }
    if (word_is(w[0], wl[0], "rcpt") && n == 6 && wl[1] == 1) {
        char st = w[1][0];
        if (st != RCPT_QUEUED && st != RCPT_DONE && st != RCPT_BOUNCE)
            return snprintf(err, errsz, "bad rcpt state"), -1;
        if (env->nrcpt % 16 == 0)
            env->rcpts = xrealloc(env->rcpts, (env->nrcpt + 16) * sizeof(*env->rcpts));
        struct qrcpt *r = &env->rcpts[env->nrcpt];
        memset(r, 0, sizeof(*r));
        r->state = st;
        r->state_off = off + 5;
        char tmp[16];
        snprintf(tmp, sizeof(tmp), "%.*s", (int)(wl[2] < 8 ? wl[2] : 8), w[2]);
        r->notify = atoi(tmp);
        if (!word_is(w[3], wl[3], "-"))
            snprintf(r->orcpt_type, sizeof(r->orcpt_type), "%.*s", (int)wl[3], w[3]);
        r->orcpt = word_is(w[4], wl[4], "-") ? NULL : queue_xtext_decode(w[4], wl[4]);
        r->addr = queue_xtext_decode(w[5], wl[5]);
        env->nrcpt++;
        if (r->addr == NULL || (r->orcpt == NULL && !word_is(w[4], wl[4], "-")))
            return snprintf(err, errsz, "bad rcpt"), -1;
        return 0;
    }
    snprintf(err, errsz, "unknown record \"%.*s\"", (int)(wl[0] < 20 ? wl[0] : 20), w[0]);
    return -1;
}

int queue_env_decode(const char *p, size_t len, struct qenv *env, char *err, size_t errsz)
{
    memset(env, 0, sizeof(*env));
    size_t off = 0;
    if (len < 7 || memcmp(p, "TERN 1\n", 7) != 0) {
        snprintf(err, errsz, "not a tern queue file");
        return -1;
    }
    while (off < len) {
        const char *nl = memchr(p + off, '\n', len - off);
        if (nl == NULL)
            break;
        size_t l = (size_t)(nl - (p + off));
        int r = decode_line(env, p + off, l, (off_t)off, err, errsz);
        if (r < 0) {
            queue_env_free(env);
            return -1;
        }
        off += l + 1;
        if (r == 1) {
            env->data_off = (off_t)off;
            if (env->id[0] == '\0' || env->sender == NULL || env->nrcpt == 0) {
                snprintf(err, errsz, "incomplete envelope");
                queue_env_free(env);
                return -1;
            }
            return 0;
        }
    }
    snprintf(err, errsz, "envelope not terminated");
    queue_env_free(env);
    return -1;
}

int queue_env_read(int fd, struct qenv *env, char *err, size_t errsz)
{
    struct buf b = BUF_INIT;
    char chunk[16384];
    off_t off = 0;
    for (;;) {
        ssize_t n = pread(fd, chunk, sizeof(chunk), off);
        if (n < 0) {
            snprintf(err, errsz, "read: %s", strerror(errno));
            buf_free(&b);
            return -1;
        }
        if (n == 0)
            break;
        buf_append(&b, chunk, (size_t)n);
        off += n;
        /* stop once the "data" line has been read */
        if (strstr(b.data, "\ndata\n") != NULL)
            break;
        if (b.len > QUEUE_ENVELOPE_MAX)
            break;
    }
    int r = queue_env_decode(buf_str(&b), b.len, env, err, errsz);
    buf_free(&b);
    return r;
}

void queue_env_free(struct qenv *env)
{
    free(env->client_addr);
    free(env->client_name);
    free(env->helo);
    free(env->proto);
    free(env->sender);
    free(env->envid);
    for (size_t i = 0; i < env->nrcpt; i++) {
        free(env->rcpts[i].addr);
        free(env->rcpts[i].orcpt);
    }
    free(env->rcpts);
    memset(env, 0, sizeof(*env));
}

int queue_id_valid(const char *id)
{
    for (int i = 0; i < QID_LEN; i++)
        if (!isdigit((unsigned char)id[i]) && !(id[i] >= 'A' && id[i] <= 'F'))
            return 0;
    return id[QID_LEN] == '\0';
}
