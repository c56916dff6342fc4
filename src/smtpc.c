/* smtpc.c - outbound SMTP / LMTP client: one connection, one transaction
 *
 * A state machine driven by one read callback: every reply goes through
 * smtpc_reply_parse() (bounded, CVE-2020-8794), then handle_reply() acts on
 * it according to the current stage.  The message text is read with pread()
 * in 64 KiB blocks, LF turned into CRLF, dot-stuffed; no bare CR or LF is
 * ever emitted (NOTES.md: smuggling).  done() always runs from finish_cb,
 * an event of our own, so never inside smtpc_start() nor inside a
 * bufferevent callback.
 */
#include "smtpc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "addr.h"
#include "buf.h"
#include "log.h"
#include "smtp_cmd.h"
#include "smtpc_reply.h"
#include "tls.h"
#include "xmalloc.h"

#define CHUNK (64 * 1024)

enum stage {
    ST_CONNECT, ST_GREETING, ST_EHLO, ST_HELO, ST_STARTTLS, ST_HANDSHAKE, ST_AUTH, ST_AUTH_USER,
    ST_AUTH_PASS, ST_MAIL, ST_RCPT, ST_DATA, ST_BODY, ST_DOT, ST_QUIT, ST_DONE
};

static const char *const stage_name[] = {
    "connect", "greeting", "EHLO", "HELO", "STARTTLS", "TLS handshake", "AUTH", "AUTH",
    "AUTH", "MAIL FROM", "RCPT TO", "DATA", "message body", "end of data", "QUIT", "end",
};

/* RFC 5321 4.5.3.2 client timeouts in seconds, per stage */
static const int stage_timeout[] = {30, 300, 300, 300, 300, 300, 300, 300, 300, 300, 300, 120, 180,
                                    600, 300, 300};

/* per-recipient progress */
enum { RC_UNSENT, RC_REJECTED, RC_ACCEPTED, RC_FINAL };

struct smtpc_conn {
    struct event_base *base;
    struct smtpc_job *job;
    smtpc_done_fn done;
    void *arg;
    struct bufferevent *bev;
    SSL_CTX *ctx;
    struct event *timer, *finish_ev;
    enum stage st;
    struct smtpc_ext ext;
    int tls_active, pipelined, mail_failed;
    unsigned char *rstate;     /* RC_* per recipient */
    size_t rcpt_i;             /* recipient whose RCPT (or LMTP final) reply is awaited */
    size_t naccepted;
    struct buf in;             /* received, not yet consumed */
    size_t scan, scan_lines;   /* continuation lines of the pending reply already checked */
    off_t sent;                /* octets of the message text read so far */
    int bol;                   /* the body output is at the start of a line */
    char *chunk;
};

/* sanitize - copy src as printable one-line ASCII: controls to space, non-ASCII to '?' */
static void sanitize(char *dst, size_t dstsz, const char *src)
{
    size_t i = 0;
    for (; src[i] && i + 1 < dstsz; i++) {
        unsigned char ch = (unsigned char)src[i];
        dst[i] = ch < 0x20 || ch == 0x7f ? ' ' : ch >= 0x80 ? '?' : (char)ch;
    }
    dst[i] = '\0';
}

/* has_ctl - the string holds a control byte, space or '<'/'>' (unsafe in a command path) */
static int has_ctl(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || *s == 0x7f || *s == '<' || *s == '>')
            return 1;
    return 0;
}

/* set_status - record the outcome of the whole attempt (the first one wins) */
static void set_status(struct smtpc_conn *c, int code, const char *fmt, ...) PRINTF_LIKE(3, 4);
static void set_status(struct smtpc_conn *c, int code, const char *fmt, ...)
{
    char tmp[sizeof(c->job->reply)];
    va_list ap;
    if (c->job->status)
        return;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    c->job->status = code;
    sanitize(c->job->reply, sizeof(c->job->reply), tmp);
}

/* set_status_reply - the whole attempt failed with the peer's reply r (non-4xx/5xx become 451) */
static void set_status_reply(struct smtpc_conn *c, const struct smtpc_reply *r)
{
    int code = r->code >= 400 ? r->code : 451;
    set_status(c, code, "%s%s%s", r->esc, r->esc[0] ? " " : "", r->text);
}

/* arm - (re)start the timer for the current stage, scaled by job->timeout_scale */
static void arm(struct smtpc_conn *c)
{
    long long us = (long long)stage_timeout[c->st] * 1000000;
    if (c->job->timeout_scale > 1)
        us /= c->job->timeout_scale;
    struct timeval tv = {(time_t)(us / 1000000), (suseconds_t)(us % 1000000)};
    evtimer_add(c->timer, &tv);
}

/* close_conn - drop the connection and the timer (the result stays) */
static void close_conn(struct smtpc_conn *c)
{
    if (c->bev)
        bufferevent_free(c->bev);
    c->bev = NULL;
    if (c->timer)
        evtimer_del(c->timer);
}

/* finish - end the attempt now; done() follows from the event loop */
static void finish(struct smtpc_conn *c)
{
    struct smtpc_job *job = c->job;
    if (c->st == ST_DONE)
        return;
    c->st = ST_DONE;
    close_conn(c);
    /* recipients accepted at RCPT but without a final reply share the failure */
    for (size_t i = 0; job->status && i < job->nrcpt; i++)
        if (c->rstate[i] == RC_ACCEPTED) {
            job->rcpts[i].code = 0;
            job->rcpts[i].esc[0] = job->rcpts[i].text[0] = '\0';
        }
    event_active(c->finish_ev, 0, 0);
}

/* send_str - queue text on the connection */
static void send_str(struct smtpc_conn *c, const char *s, size_t n)
{
    bufferevent_write(c->bev, s, n);
}

/* command - send one command line and wait for its reply in stage st */
static void command(struct smtpc_conn *c, enum stage st, const char *fmt, ...) PRINTF_LIKE(3, 4);
static void command(struct smtpc_conn *c, enum stage st, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(line) - 2)
        n = (int)strlen(line);
    memcpy(line + n, "\r\n", 2);
    send_str(c, line, (size_t)n + 2);
    c->st = st;
    arm(c);
}

/* quit - send QUIT and close once it is answered (or the peer goes away) */
static void quit(struct smtpc_conn *c)
{
    if (!c->bev) {
        finish(c);
        return;
    }
    command(c, ST_QUIT, "QUIT");
}

/* fail - the attempt failed with a locally made reply; say QUIT politely */
#define fail(c, code, ...) (set_status((c), (code), __VA_ARGS__), quit(c))

/* ssl_new - an SSL object for job->host: SNI and, for VERIFY, the name check */
static SSL *ssl_new(struct smtpc_conn *c)
{
    struct smtpc_job *job = c->job;
    unsigned char tmp[16];
    int is_ip = inet_pton(AF_INET, job->host, tmp) == 1 || inet_pton(AF_INET6, job->host, tmp) == 1;
    SSL *ssl = SSL_new(c->ctx);
    if (!ssl)
        return NULL;
    if (!is_ip && job->host[0])
        SSL_set_tlsext_host_name(ssl, job->host);
    if (job->tls == SMTPC_TLS_VERIFY) {
        int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), job->host)
                       : SSL_set1_host(ssl, job->host);
        if (ok != 1) {
            SSL_free(ssl);
            return NULL;
        }
    }
    return ssl;
}

/* ctx_new - the client context: TLS 1.2+, peer verification for SMTPC_TLS_VERIFY */
static SSL_CTX *ctx_new(const struct smtpc_job *job)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (job->tls == SMTPC_TLS_VERIFY) {
        int ok = job->ca_file ? SSL_CTX_load_verify_locations(ctx, job->ca_file, NULL)
                              : SSL_CTX_set_default_verify_paths(ctx);
        if (ok != 1) {
            SSL_CTX_free(ctx);
            return NULL;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    return ctx;
}

/* tls_error - describe why the TLS handshake on bev failed; 0 if TLS gave no reason */
static int tls_error(struct smtpc_conn *c, char *out, size_t outsz)
{
    unsigned long e, last = 0;
    while ((e = bufferevent_get_openssl_error(c->bev)) != 0)
        last = e;
    SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
    long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    if (vr != X509_V_OK)
        snprintf(out, outsz, "%s", X509_verify_cert_error_string(vr));
    else if (last)
        ERR_error_string_n(last, out, outsz);
    else
        snprintf(out, outsz, "%s", errno ? strerror(errno) : "connection closed");
    return vr != X509_V_OK || last != 0;
}

static void read_cb(struct bufferevent *bev, void *arg);
static void write_cb(struct bufferevent *bev, void *arg);
static void event_cb(struct bufferevent *bev, short what, void *arg);

/* start_tls - after "220": discard anything the peer sent early (response
 * injection), then handshake over a filter on the plain connection */
static void start_tls(struct smtpc_conn *c)
{
    buf_reset(&c->in);
    c->scan = c->scan_lines = 0;
    evbuffer_drain(bufferevent_get_input(c->bev), evbuffer_get_length(bufferevent_get_input(c->bev)));
    SSL *ssl = ssl_new(c);
    struct bufferevent *f = ssl ? bufferevent_openssl_filter_new(c->base, c->bev, ssl,
                                                                 BUFFEREVENT_SSL_CONNECTING,
                                                                 BEV_OPT_CLOSE_ON_FREE)
                                : NULL;
    if (!f) {
        if (ssl)
            SSL_free(ssl);
        set_status(c, 454, "4.7.5 cannot set up TLS for %s", c->job->host);
        finish(c);
        return;
    }
    c->bev = f;
    bufferevent_setcb(f, read_cb, write_cb, event_cb, c);
    bufferevent_enable(f, EV_READ | EV_WRITE);
    c->st = ST_HANDSHAKE;
    arm(c);
}

/* tls_up - the handshake is done: note the session, EHLO again with no old extensions */
static void tls_up(struct smtpc_conn *c)
{
    SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
    c->tls_active = 1;
    if (ssl)
        tls_describe(ssl, c->job->tls_info, sizeof(c->job->tls_info));
    memset(&c->ext, 0, sizeof(c->ext));
}

/* b64 - base64 of s[0..n) appended to b */
static void b64(struct buf *b, const char *s, size_t n)
{
    char *out = xmalloc(4 * ((n + 2) / 3) + 1);
    int k = EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)s, (int)n);
    buf_append(b, out, (size_t)k);
    free(out);
}

/* send_b64 - send base64 of s as one line, then wait in stage st */
static void send_b64(struct smtpc_conn *c, enum stage st, const char *prefix, const char *s, size_t n)
{
    struct buf b = BUF_INIT;
    buf_puts(&b, prefix);
    b64(&b, s, n);
    buf_puts(&b, "\r\n");
    send_str(c, b.data, b.len);
    OPENSSL_cleanse(b.data, b.len);
    buf_free(&b);
    c->st = st;
    arm(c);
}

/* message_size - octets the text will have on the wire: LF becomes CRLF, a final CRLF added; -1 on error */
static long long message_size(struct smtpc_conn *c)
{
    struct smtpc_job *job = c->job;
    long long size = job->len;
    char last = '\n';
    errno = 0;
    for (off_t done = 0; done < job->len;) {
        size_t want = job->len - done < CHUNK ? (size_t)(job->len - done) : CHUNK;
        ssize_t n = pread(job->fd, c->chunk, want, job->off + done);
        if (n <= 0)
            return -1;
        for (ssize_t i = 0; i < n; i++)
            size += c->chunk[i] == '\n';
        last = c->chunk[n - 1];
        done += n;
    }
    return last == '\n' ? size : size + 2;
}

/* mail_cmd - append "MAIL FROM:<...> params" to b */
static void mail_cmd(struct smtpc_conn *c, struct buf *b, long long size)
{
    struct smtpc_job *job = c->job;
    buf_printf(b, "MAIL FROM:<%s>", job->sender);
    if (c->ext.flags & SMTPC_EXT_SIZE)
        buf_printf(b, " SIZE=%lld", size);
    /* Without 8BITMIME at the peer an 8-bit body is still sent, as Postfix
     * does: RFC 6152 would allow refusing, but bouncing is worse in practice. */
    if (job->body_8bit && (c->ext.flags & SMTPC_EXT_8BITMIME))
        buf_puts(b, " BODY=8BITMIME");
    if (job->smtputf8)
        buf_puts(b, " SMTPUTF8");
    if (c->ext.flags & SMTPC_EXT_DSN) {
        if (job->ret == RET_FULL || job->ret == RET_HDRS)
            buf_puts(b, job->ret == RET_FULL ? " RET=FULL" : " RET=HDRS");
        char x[101 * 3 + 1];
        if (job->envid && job->envid[0] && xtext_encode(job->envid, strlen(job->envid), x, sizeof(x)) > 0)
            buf_printf(b, " ENVID=%s", x);
    }
    buf_puts(b, "\r\n");
}

/* rcpt_cmd - append "RCPT TO:<...> params" for recipient i to b */
static void rcpt_cmd(struct smtpc_conn *c, struct buf *b, size_t i)
{
    const struct smtpc_rcpt *r = &c->job->rcpts[i];
    buf_printf(b, "RCPT TO:<%s>", r->addr);
    if (c->ext.flags & SMTPC_EXT_DSN) {
        if (r->notify & NOTIFY_NEVER)
            buf_puts(b, " NOTIFY=NEVER");
        else if (r->notify) {
            const char *sep = " NOTIFY=";
            static const struct { int bit; const char *name; } nt[] = {
                {NOTIFY_SUCCESS, "SUCCESS"}, {NOTIFY_FAILURE, "FAILURE"}, {NOTIFY_DELAY, "DELAY"}};
            for (size_t k = 0; k < 3; k++)
                if (r->notify & nt[k].bit) {
                    buf_printf(b, "%s%s", sep, nt[k].name);
                    sep = ",";
                }
        }
        char x[ADDR_PATH_MAX * 2 * 3 + 1];
        if (r->orcpt_type && r->orcpt && r->orcpt[0] && !has_ctl(r->orcpt_type) &&
            strlen(r->orcpt_type) < 32 && xtext_encode(r->orcpt, strlen(r->orcpt), x, sizeof(x)) > 0)
            buf_printf(b, " ORCPT=%s;%s", r->orcpt_type, x);
    }
    buf_puts(b, "\r\n");
}

/* next_rcpt - the first recipient from i on that is to be sent */
static size_t next_rcpt(struct smtpc_conn *c, size_t i)
{
    while (i < c->job->nrcpt && c->rstate[i] != RC_UNSENT)
        i++;
    return i;
}

/* start_mail - the session is ready: check the envelope against the extensions, send MAIL (and
 * with PIPELINING all RCPTs and DATA too) */
static void start_mail(struct smtpc_conn *c)
{
    struct smtpc_job *job = c->job;
    long long size = 0;
    if (job->smtputf8 && !(c->ext.flags & SMTPC_EXT_SMTPUTF8)) {
        fail(c, 550, "5.6.7 SMTPUTF8 required but not offered by %s", job->host);
        return;
    }
    if (c->ext.flags & SMTPC_EXT_SIZE) {
        if ((size = message_size(c)) < 0) {
            fail(c, 451, "4.3.0 cannot read the message text: %s", errno ? strerror(errno) : "short file");
            return;
        }
        if (c->ext.size && (unsigned long long)size > c->ext.size) {
            fail(c, 552, "5.3.4 message too big for %s (%lld octets, limit %llu)", job->host, size,
                 c->ext.size);
            return;
        }
    }
    struct buf b = BUF_INIT;
    mail_cmd(c, &b, size);
    c->pipelined = (c->ext.flags & SMTPC_EXT_PIPELINING) != 0;
    if (c->pipelined) {
        for (size_t i = next_rcpt(c, 0); i < job->nrcpt; i = next_rcpt(c, i + 1))
            rcpt_cmd(c, &b, i);
        buf_puts(&b, "DATA\r\n");
    }
    send_str(c, b.data, b.len);
    buf_free(&b);
    c->st = ST_MAIL;
    arm(c);
}

/* after_ehlo - extensions known: STARTTLS, then AUTH, then the transaction */
static void after_ehlo(struct smtpc_conn *c)
{
    struct smtpc_job *job = c->job;
    if (!c->tls_active && job->tls >= SMTPC_TLS_MAY && job->tls != SMTPC_TLS_WRAPPER &&
        (c->ext.flags & SMTPC_EXT_STARTTLS)) {
        command(c, ST_STARTTLS, "STARTTLS");
        return;
    }
    if (!c->tls_active && (job->tls == SMTPC_TLS_ENCRYPT || job->tls == SMTPC_TLS_VERIFY)) {
        fail(c, 454, "4.7.5 TLS is required but was not offered by %s", job->host);
        return;
    }
    if (job->auth_user && (c->ext.auth_plain || c->ext.auth_login)) {
        if (!c->tls_active && job->tls != SMTPC_TLS_NONE) {
            fail(c, 454, "4.7.0 not sending credentials to %s without TLS", job->host);
            return;
        }
        const char *pass = job->auth_pass ? job->auth_pass : "";
        if (c->ext.auth_plain) {
            size_t ul = strlen(job->auth_user), pl = strlen(pass);
            char *s = xmalloc(ul + pl + 2);
            s[0] = '\0';
            memcpy(s + 1, job->auth_user, ul);
            s[ul + 1] = '\0';
            memcpy(s + ul + 2, pass, pl);
            send_b64(c, ST_AUTH, "AUTH PLAIN ", s, ul + pl + 2);
            OPENSSL_cleanse(s, ul + pl + 2);
            free(s);
        } else {
            command(c, ST_AUTH_USER, "AUTH LOGIN");
        }
        return;
    }
    start_mail(c);
}

/* send_body - send the next block of the text (or the final dot) */
static void send_body(struct smtpc_conn *c)
{
    struct smtpc_job *job = c->job;
    struct buf out = BUF_INIT;
    if (c->sent < job->len) {
        size_t want = job->len - c->sent < CHUNK ? (size_t)(job->len - c->sent) : CHUNK;
        ssize_t n = pread(job->fd, c->chunk, want, job->off + c->sent);
        if (n <= 0) {
            /* no final dot: the peer must not accept a truncated message */
            set_status(c, 451, "4.3.0 cannot read the message text: %s",
                       n < 0 ? strerror(errno) : "short file");
            finish(c);
            return;
        }
        buf_reserve(&out, (size_t)n * 2 + 8);
        for (ssize_t i = 0; i < n; i++) {
            char ch = c->chunk[i];
            if (c->bol && ch == '.')
                buf_putc(&out, '.');
            if (ch == '\n') {
                buf_append(&out, "\r\n", 2);
                c->bol = 1;
                continue;
            }
            buf_putc(&out, ch == '\r' ? ' ' : ch); /* a stray CR never goes out bare */
            c->bol = 0;
        }
        c->sent += n;
        send_str(c, out.data, out.len);
        buf_free(&out);
        c->st = ST_BODY;
        arm(c);
        return;
    }
    if (!c->bol)
        send_str(c, "\r\n", 2);
    send_str(c, ".\r\n", 3);
    c->rcpt_i = 0; /* LMTP: replies come per accepted recipient, in order */
    c->st = ST_DOT;
    arm(c);
}

/* set_rcpt - store a reply as recipient i's result */
static void set_rcpt(struct smtpc_conn *c, size_t i, const struct smtpc_reply *r, int state)
{
    struct smtpc_rcpt *rc = &c->job->rcpts[i];
    rc->code = r->code;
    if (state != RC_ACCEPTED && r->code < 400 && r->code / 100 != 2)
        rc->code = 451; /* a reply that fits no rule: not accepted */
    snprintf(rc->esc, sizeof(rc->esc), "%s", r->esc);
    sanitize(rc->text, sizeof(rc->text), r->text);
    c->rstate[i] = (unsigned char)state;
}

/* rcpts_done - every RCPT is answered: DATA, or give up when nobody was accepted */
static void rcpts_done(struct smtpc_conn *c)
{
    if (c->pipelined) {
        c->st = ST_DATA; /* its reply is on the way */
        arm(c);
    } else if (c->naccepted) {
        command(c, ST_DATA, "DATA");
    } else {
        quit(c);
    }
}

/* handle_reply - act on a complete reply in the current stage */
static void handle_reply(struct smtpc_conn *c, const struct smtpc_reply *r)
{
    struct smtpc_job *job = c->job;
    int ok = r->code / 100 == 2;
    switch (c->st) {
    case ST_GREETING:
        if (!ok) {
            set_status_reply(c, r);
            quit(c);
        } else {
            command(c, ST_EHLO, "%s %s", job->lmtp ? "LHLO" : "EHLO", job->helo_name);
        }
        break;
    case ST_EHLO:
        if (ok) {
            smtpc_ehlo_parse(r, &c->ext);
            after_ehlo(c);
        } else if (r->code / 100 == 5 && !job->lmtp) {
            command(c, ST_HELO, "HELO %s", job->helo_name);
        } else {
            set_status_reply(c, r);
            quit(c);
        }
        break;
    case ST_HELO:
        memset(&c->ext, 0, sizeof(c->ext));
        if (!ok) {
            set_status_reply(c, r);
            quit(c);
        } else {
            after_ehlo(c);
        }
        break;
    case ST_STARTTLS:
        if (r->code == 220)
            start_tls(c);
        else if (job->tls == SMTPC_TLS_MAY) {
            c->ext.flags &= ~(unsigned)SMTPC_EXT_STARTTLS; /* go on in plain text */
            after_ehlo(c);
        } else {
            fail(c, r->code / 100 == 4 ? r->code : 454, "4.7.5 TLS is required but STARTTLS failed at %s: %d %s",
                 job->host, r->code, r->text);
        }
        break;
    case ST_AUTH_USER:
    case ST_AUTH_PASS:
        if (r->code == 334) {
            const char *s = c->st == ST_AUTH_USER ? job->auth_user : (job->auth_pass ? job->auth_pass : "");
            send_b64(c, c->st == ST_AUTH_USER ? ST_AUTH_PASS : ST_AUTH, "", s, strlen(s));
            break;
        }
        /* fall through */
    case ST_AUTH:
        if (ok) {
            start_mail(c);
        } else {
            int code = r->code == 535 ? 535 : r->code / 100 == 4 ? r->code : 454;
            set_status(c, code, "%s%s%s (authentication at %s)", r->esc, r->esc[0] ? " " : "", r->text,
                       job->host);
            quit(c);
        }
        break;
    case ST_MAIL:
        if (!ok) {
            set_status_reply(c, r);
            c->mail_failed = 1;
        }
        c->rcpt_i = next_rcpt(c, 0);
        if (c->mail_failed && !c->pipelined)
            quit(c);
        else if (c->rcpt_i >= job->nrcpt)
            rcpts_done(c);
        else if (c->pipelined) {
            c->st = ST_RCPT;
            arm(c);
        } else {
            struct buf b = BUF_INIT;
            rcpt_cmd(c, &b, c->rcpt_i);
            send_str(c, b.data, b.len);
            buf_free(&b);
            c->st = ST_RCPT;
            arm(c);
        }
        break;
    case ST_RCPT:
        if (!c->mail_failed) {
            set_rcpt(c, c->rcpt_i, r, ok ? RC_ACCEPTED : RC_REJECTED);
            c->naccepted += ok;
        }
        c->rcpt_i = next_rcpt(c, c->rcpt_i + 1);
        if (c->rcpt_i >= job->nrcpt) {
            rcpts_done(c);
        } else if (c->pipelined) {
            arm(c);
        } else {
            struct buf b = BUF_INIT;
            rcpt_cmd(c, &b, c->rcpt_i);
            send_str(c, b.data, b.len);
            buf_free(&b);
            arm(c);
        }
        break;
    case ST_DATA:
        if (c->mail_failed || !c->naccepted) {
            if (r->code == 354) /* a broken peer wants the text anyway: end it empty */
                send_str(c, ".\r\n", 3);
            quit(c);
        } else if (r->code != 354) {
            set_status_reply(c, r);
            quit(c);
        } else {
            c->bol = 1;
            c->sent = 0;
            send_body(c);
        }
        break;
    case ST_DOT:
        if (!job->lmtp) {
            for (size_t i = 0; i < job->nrcpt; i++)
                if (c->rstate[i] == RC_ACCEPTED)
                    set_rcpt(c, i, r, RC_FINAL);
            quit(c);
            break;
        }
        while (c->rcpt_i < job->nrcpt && c->rstate[c->rcpt_i] != RC_ACCEPTED)
            c->rcpt_i++;
        if (c->rcpt_i < job->nrcpt)
            set_rcpt(c, c->rcpt_i, r, RC_FINAL);
        while (c->rcpt_i < job->nrcpt && c->rstate[c->rcpt_i] != RC_ACCEPTED)
            c->rcpt_i++;
        if (c->rcpt_i >= job->nrcpt)
            quit(c);
        else
            arm(c);
        break;
    case ST_QUIT:
        finish(c);
        break;
    default: /* a reply nobody asked for (e.g. during the body): the peer is confused */
        set_status(c, 451, "4.5.0 unexpected reply from %s during %s: %d", job->host, stage_name[c->st],
                   r->code);
        finish(c);
        break;
    }
}

/* reply_pending - cheap check whether in[scan..] may complete or break the
 * pending reply (so a long multi-line reply is parsed once, not per read) */
static int reply_pending(struct smtpc_conn *c)
{
    const char *p = c->in.data + c->scan, *end = c->in.data + c->in.len;
    while (p < end) {
        const char *lf = memchr(p, '\n', (size_t)(end - p));
        if (!lf)
            return (size_t)(end - p) <= SMTPC_LINE_MAX + 1; /* longer: let the parser reject it */
        if (lf - p < 4 || p[3] != '-' || ++c->scan_lines >= SMTPC_LINES_MAX)
            return 0; /* a last line (or a bad one) */
        p = lf + 1;
        c->scan = (size_t)(p - c->in.data);
    }
    return 1;
}

/* read_cb - take what arrived, parse and handle every complete reply */
static void read_cb(struct bufferevent *bev, void *arg)
{
    struct smtpc_conn *c = arg;
    struct evbuffer *input = bufferevent_get_input(bev);
    size_t n = evbuffer_get_length(input);
    if (n) {
        buf_reserve(&c->in, n);
        evbuffer_remove(input, c->in.data + c->in.len, n);
        c->in.len += n;
        c->in.data[c->in.len] = '\0';
    }
    while (c->st != ST_DONE && c->st != ST_HANDSHAKE && c->in.len > 0 && !reply_pending(c)) {
        struct smtpc_reply r;
        size_t used;
        enum smtpc_parse pr = smtpc_reply_parse(c->in.data, c->in.len, &r, &used);
        if (pr == SMTPC_MORE)
            return;
        if (pr == SMTPC_ERROR) {
            set_status(c, 451, "4.5.0 malformed reply from %s during %s", c->job->host, stage_name[c->st]);
            finish(c);
            return;
        }
        memmove(c->in.data, c->in.data + used, c->in.len - used);
        c->in.len -= used;
        c->in.data[c->in.len] = '\0';
        c->scan = c->scan_lines = 0;
        if (c->st == ST_CONNECT || c->st == ST_BODY) {
            /* nothing may arrive now; ST_CONNECT only before the TLS wrapper is up */
            set_status(c, 451, "4.5.0 unexpected reply from %s during %s", c->job->host, stage_name[c->st]);
            finish(c);
            return;
        }
        handle_reply(c, &r);
    }
}

/* write_cb - the output drained: during the text, send the next block */
static void write_cb(struct bufferevent *bev, void *arg)
{
    struct smtpc_conn *c = arg;
    (void)bev;
    if (c->st == ST_BODY)
        send_body(c);
}

/* event_cb - connected, handshake done, EOF or error */
static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct smtpc_conn *c = arg;
    struct smtpc_job *job = c->job;
    (void)bev;
    if (what & BEV_EVENT_CONNECTED) {
        if (c->st == ST_CONNECT) {
            if (job->tls == SMTPC_TLS_WRAPPER)
                tls_up(c);
            c->st = ST_GREETING;
            arm(c);
        } else if (c->st == ST_HANDSHAKE) {
            tls_up(c);
            command(c, ST_EHLO, "%s %s", job->lmtp ? "LHLO" : "EHLO", job->helo_name);
        }
        return;
    }
    if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
        return;
    int err = EVUTIL_SOCKET_ERROR();
    char why[256];
    if (c->st == ST_QUIT) {
        finish(c);
    } else if (c->st == ST_HANDSHAKE || (c->st == ST_CONNECT && job->tls == SMTPC_TLS_WRAPPER &&
                                         (errno = err, tls_error(c, why, sizeof(why))))) {
        errno = err;
        if (c->st == ST_HANDSHAKE)
            tls_error(c, why, sizeof(why));
        set_status(c, 454, "4.7.5 TLS handshake with %s failed: %s", job->host, why);
        finish(c);
    } else if (c->st == ST_CONNECT) {
        set_status(c, 421, "4.4.1 connect to %s: %s", job->host,
                   err ? strerror(err) : "connection closed");
        finish(c);
    } else {
        set_status(c, 421, "4.4.2 lost connection with %s while %s", job->host, stage_name[c->st]);
        finish(c);
    }
}

/* timer_cb - the peer took too long in the current stage */
static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct smtpc_conn *c = arg;
    (void)fd;
    (void)what;
    if (c->st == ST_QUIT) {
        finish(c);
        return;
    }
    set_status(c, 421, "4.4.2 timeout after %s with %s", stage_name[c->st], c->job->host);
    finish(c);
}

/* free_conn - release everything */
static void free_conn(struct smtpc_conn *c)
{
    close_conn(c);
    if (c->timer)
        event_free(c->timer);
    if (c->finish_ev)
        event_free(c->finish_ev);
    if (c->ctx)
        SSL_CTX_free(c->ctx);
    buf_free(&c->in);
    free(c->rstate);
    free(c->chunk);
    free(c);
}

/* finish_cb - report the outcome, then forget the connection */
static void finish_cb(evutil_socket_t fd, short what, void *arg)
{
    struct smtpc_conn *c = arg;
    struct smtpc_job *job = c->job;
    size_t ok = 0;
    (void)fd;
    (void)what;
    for (size_t i = 0; i < job->nrcpt; i++)
        ok += job->rcpts[i].code / 100 == 2;
    log_debug("smtpc: %s%s: status=%d delivered=%zu/%zu%s%s %s", job->lmtp ? "lmtp " : "", job->host,
              job->status, ok, job->nrcpt, job->tls_info[0] ? " tls=" : "", job->tls_info, job->reply);
    smtpc_done_fn done = c->done;
    void *darg = c->arg;
    free_conn(c);
    done(darg, job);
}

/* smtpc_start - begin delivering (see smtpc.h) */
struct smtpc_conn *smtpc_start(struct event_base *base, struct smtpc_job *job, smtpc_done_fn done, void *arg)
{
    struct smtpc_conn *c = xcalloc(1, sizeof(*c));
    c->base = base;
    c->job = job;
    c->done = done;
    c->arg = arg;
    c->rstate = xcalloc(job->nrcpt ? job->nrcpt : 1, 1);
    c->chunk = xmalloc(CHUNK);
    c->timer = evtimer_new(base, timer_cb, c);
    c->finish_ev = event_new(base, -1, 0, finish_cb, c);
    if (!c->timer || !c->finish_ev)
        log_fatalx("smtpc: cannot create events");
    job->status = 0;
    job->reply[0] = job->tls_info[0] = '\0';
    for (size_t i = 0; i < job->nrcpt; i++) {
        struct smtpc_rcpt *r = &job->rcpts[i];
        r->code = 0;
        r->esc[0] = r->text[0] = '\0';
        if (!r->addr || has_ctl(r->addr)) { /* never let a stored address inject a command */
            r->code = 553;
            snprintf(r->esc, sizeof(r->esc), "5.1.3");
            snprintf(r->text, sizeof(r->text), "invalid recipient address");
            c->rstate[i] = RC_REJECTED;
        }
    }
    c->st = ST_CONNECT;
    if (!job->sender || has_ctl(job->sender) || !job->helo_name || !job->helo_name[0] ||
        has_ctl(job->helo_name)) {
        set_status(c, 553, "5.1.7 invalid sender address or HELO name");
        finish(c);
        return c;
    }
    if (job->tls != SMTPC_TLS_NONE && !(c->ctx = ctx_new(job))) {
        set_status(c, 454, "4.7.5 cannot set up TLS for %s%s", job->host,
                   job->tls == SMTPC_TLS_VERIFY ? ": cannot load the CA certificates" : "");
        finish(c);
        return c;
    }
    if (job->tls == SMTPC_TLS_WRAPPER) {
        SSL *ssl = ssl_new(c);
        if (ssl)
            c->bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                                    BEV_OPT_CLOSE_ON_FREE);
        if (ssl && !c->bev)
            SSL_free(ssl);
    } else {
        c->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    }
    if (!c->bev) {
        set_status(c, 421, "4.4.1 connect to %s: cannot create a connection", job->host);
        finish(c);
        return c;
    }
    bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    arm(c);
    if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&job->addr, (int)job->addrlen) < 0) {
        set_status(c, 421, "4.4.1 connect to %s: %s", job->host, strerror(errno));
        finish(c);
    }
    return c;
}

/* smtpc_cancel - stop the attempt without calling done() */
void smtpc_cancel(struct smtpc_conn *c)
{
    if (c)
        free_conn(c);
}
