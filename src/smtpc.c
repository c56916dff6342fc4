/* smtpc.c - outbound SMTP / LMTP client: one transaction at a time per connection
 *
 * A state machine driven by one read callback: every reply goes through
 * smtpc_reply_parse() (bounded, CVE-2020-8794), then handle_reply() acts on
 * it according to the current stage.  The message text is read with pread()
 * in 64 KiB blocks, LF turned into CRLF, dot-stuffed; no bare CR or LF is
 * ever emitted (NOTES.md: smuggling).  done() always runs from finish_cb,
 * an event of our own, so never inside smtpc_start() nor inside a
 * bufferevent callback.
 *
 * A transaction ends in txn_end(): QUIT, or with job->reuse and a healthy
 * session RSET (when it stopped before the end of data) and ST_IDLE.  An idle
 * connection has no job (the caller may free it): everything the idle,
 * releasing and closing paths need is kept in the connection itself.
 */
#include "smtpc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <sys/un.h>
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
    ST_AUTH_PASS, ST_MAIL, ST_RCPT, ST_DATA, ST_BODY, ST_DOT, ST_RSET, ST_QUIT, ST_IDLE, ST_DONE,
    ST_COUNT
};

static const char *const stage_name[] = {
    "connect", "greeting", "EHLO", "HELO", "STARTTLS", "TLS handshake", "AUTH", "AUTH",
    "AUTH", "MAIL FROM", "RCPT TO", "DATA", "message body", "end of data", "RSET", "QUIT", "idle",
    "end",
};

/* RFC 5321 4.5.3.2 client timeouts in seconds, per stage (RSET and idle are not defined there:
 * the RFC's five minutes for other commands, and 300 s of idleness as Postfix would allow) */
static const int stage_timeout[] = {30, 300, 300, 300, 300, 300, 300, 300, 300, 300, 300, 120, 180,
                                    600, 300, 300, 300, 300};

_Static_assert(sizeof(stage_name) / sizeof(stage_name[0]) == ST_COUNT, "stage_name");
_Static_assert(sizeof(stage_timeout) / sizeof(stage_timeout[0]) == ST_COUNT, "stage_timeout");

#define RELEASE_WAIT 5 /* seconds smtpc_release waits for the reply to QUIT */

/* per-recipient progress */
enum { RC_UNSENT, RC_REJECTED, RC_ACCEPTED, RC_FINAL };

struct smtpc_conn {
    struct event_base *base;
    struct smtpc_job *job;     /* NULL while idle or released */
    smtpc_done_fn done;
    void *arg;
    struct bufferevent *bev;
    SSL_CTX *ctx;
    struct event *timer, *finish_ev;
    enum stage st;
    struct smtpc_ext ext;
    /* the session, kept across transactions */
    char host[256];
    char peer_addr[80];
    char tls_info[160];
    int lmtp, timeout_scale;
    int tls_active;
    int unusable;              /* the peer said 421 (RFC 5321 3.8): it is closing */
    int releasing;             /* smtpc_release: free without callback once QUIT is over */
    struct smtpc_conn *rel_prev, *rel_next;   /* the list of releasing connections */
    /* the transaction */
    int session_ok;            /* the attempt got past the session setup (see job->session_failed) */
    int pipelined, mail_failed;
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
    if (!c->job || c->job->status)
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

/* now - wall-clock seconds */
static double now(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/* arm - (re)start the timer for the current stage, scaled by the timeout_scale of the job */
static void arm(struct smtpc_conn *c)
{
    int secs = c->releasing && c->st == ST_QUIT ? RELEASE_WAIT : stage_timeout[c->st];
    long long us = (long long)secs * 1000000;
    if (c->timeout_scale > 1)
        us /= c->timeout_scale;
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

/* finish - end the attempt and the connection now; done() follows from the event loop */
static void finish(struct smtpc_conn *c)
{
    if (c->st == ST_DONE)
        return;
    c->st = ST_DONE;
    close_conn(c);
    event_active(c->finish_ev, 0, 0);
}

/* go_idle - end the attempt, keeping the connection: done() follows from the event loop */
static void go_idle(struct smtpc_conn *c)
{
    c->st = ST_IDLE;
    arm(c);
    event_active(c->finish_ev, 0, 0);
}

/* idle_dead - the idle connection broke or timed out: close it, no callback (if done() is
 * still to come, it reports reusable = 0; else smtpc_next returns -1) */
static void idle_dead(struct smtpc_conn *c)
{
    log_debug("smtpc: %s: idle connection closed", c->host);
    close_conn(c);
    c->st = ST_DONE;
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

/* txn_end - the transaction is over.  rset: it stopped before the end of data, so the peer
 * still holds a transaction.  With job->reuse and a healthy session keep the connection
 * (after RSET if needed); otherwise say QUIT */
static void txn_end(struct smtpc_conn *c, int rset)
{
    if (!c->job->reuse || c->unusable || !c->bev)
        quit(c);
    else if (rset)
        command(c, ST_RSET, "RSET");
    else
        go_idle(c);
}

/* fail - the session failed with a locally made reply; say QUIT politely */
#define fail(c, code, ...) (set_status((c), (code), __VA_ARGS__), quit(c))

/* refuse - this message cannot go over this session (nothing of it was sent yet) */
#define refuse(c, code, ...) (set_status((c), (code), __VA_ARGS__), txn_end((c), 0))

/* verifying - the peer's certificate and name are checked */
static int verifying(const struct smtpc_job *job)
{
    return job->tls == SMTPC_TLS_VERIFY || (job->tls == SMTPC_TLS_WRAPPER && job->tls_verify);
}

/* ssl_new - an SSL object for job->host: SNI and, for VERIFY, the name check */
static SSL *ssl_new(struct smtpc_conn *c)
{
    unsigned char tmp[16];
    int is_ip = inet_pton(AF_INET, c->host, tmp) == 1 || inet_pton(AF_INET6, c->host, tmp) == 1;
    SSL *ssl = SSL_new(c->ctx);
    if (!ssl)
        return NULL;
    if (!is_ip && c->host[0])
        SSL_set_tlsext_host_name(ssl, c->host);
    if (verifying(c->job)) {
        int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), c->host)
                       : SSL_set1_host(ssl, c->host);
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
    if (verifying(job)) {
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
        set_status(c, 454, "4.7.5 cannot set up TLS for %s", c->host);
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
        tls_describe(ssl, c->tls_info, sizeof(c->tls_info));
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

/* message_size - octets the text will have on the wire: LF becomes CRLF, a final CRLF added;
 * -1 on error.  *eight: some octet has the high bit set. */
static long long message_size(struct smtpc_conn *c, int *eight)
{
    struct smtpc_job *job = c->job;
    long long size = job->len;
    char last = '\n';
    unsigned char any = 0;
    errno = 0;
    for (off_t done = 0; done < job->len;) {
        size_t want = job->len - done < CHUNK ? (size_t)(job->len - done) : CHUNK;
        ssize_t n = pread(job->fd, c->chunk, want, job->off + done);
        if (n <= 0)
            return -1;
        for (ssize_t i = 0; i < n; i++) {
            size += c->chunk[i] == '\n';
            any |= (unsigned char)c->chunk[i];
        }
        last = c->chunk[n - 1];
        done += n;
    }
    *eight = (any & 0x80) != 0;
    return last == '\n' ? size : size + 2;
}

/* mail_cmd - append "MAIL FROM:<...> params" to b */
static void mail_cmd(struct smtpc_conn *c, struct buf *b, long long size)
{
    struct smtpc_job *job = c->job;
    buf_printf(b, "MAIL FROM:<%s>", job->sender);
    if (c->ext.flags & SMTPC_EXT_SIZE)
        buf_printf(b, " SIZE=%lld", size);
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
        refuse(c, 550, "5.6.7 SMTPUTF8 required but not offered by %s", c->host);
        return;
    }
    int need8 = job->body_8bit && !(c->ext.flags & SMTPC_EXT_8BITMIME);
    if ((c->ext.flags & SMTPC_EXT_SIZE) || need8) {
        int eight = 0;
        if ((size = message_size(c, &eight)) < 0) {
            refuse(c, 451, "4.3.0 cannot read the message text: %s", errno ? strerror(errno) : "short file");
            return;
        }
        /* RFC 6152 3: 8-bit text only to a server that says 8BITMIME; a message declared
         * 8BITMIME whose octets are all 7-bit goes as it is (docs/DECISIONS.md) */
        if (need8 && eight) {
            refuse(c, 554, "5.6.3 8-bit message, but %s does not offer 8BITMIME", c->host);
            return;
        }
        if (c->ext.size && (unsigned long long)size > c->ext.size) {
            refuse(c, 552, "5.3.4 message too big for %s (%lld octets, limit %llu)", c->host, size,
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

/* session_ready - the session is set up: the transaction begins */
static void session_ready(struct smtpc_conn *c)
{
    c->session_ok = 1;
    c->job->t_ready = now();
    start_mail(c);
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
        fail(c, 454, "4.7.5 TLS is required but was not offered by %s", c->host);
        return;
    }
    if (job->auth_user && (c->ext.auth_plain || c->ext.auth_login)) {
        if (!c->tls_active && job->tls != SMTPC_TLS_NONE) {
            fail(c, 454, "4.7.0 not sending credentials to %s without TLS", c->host);
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
    session_ready(c);
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
        txn_end(c, 1);
    }
}

/* handle_reply - act on a complete reply in the current stage */
static void handle_reply(struct smtpc_conn *c, const struct smtpc_reply *r)
{
    struct smtpc_job *job = c->job; /* NULL in ST_QUIT after smtpc_release */
    int ok = r->code / 100 == 2;
    if (r->code == 421)
        c->unusable = 1;
    switch (c->st) {
    case ST_GREETING:
        if (!ok) {
            set_status_reply(c, r);
            quit(c);
        } else {
            command(c, ST_EHLO, "%s %s", c->lmtp ? "LHLO" : "EHLO", job->helo_name);
        }
        break;
    case ST_EHLO:
        if (ok) {
            smtpc_ehlo_parse(r, &c->ext);
            after_ehlo(c);
        } else if (r->code / 100 == 5 && !c->lmtp) {
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
                 c->host, r->code, r->text);
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
            session_ready(c);
        } else {
            int code = r->code == 535 ? 535 : r->code / 100 == 4 ? r->code : 454;
            set_status(c, code, "%s%s%s (authentication at %s)", r->esc, r->esc[0] ? " " : "", r->text,
                       c->host);
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
            txn_end(c, 1);
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
            if (r->code == 354) { /* a broken peer wants the text anyway: end it empty */
                send_str(c, ".\r\n", 3);
                quit(c);
            } else {
                txn_end(c, 1);
            }
        } else if (r->code != 354) {
            set_status_reply(c, r);
            txn_end(c, 1);
        } else {
            c->bol = 1;
            c->sent = 0;
            send_body(c);
        }
        break;
    case ST_DOT:
        if (!c->lmtp) {
            for (size_t i = 0; i < job->nrcpt; i++)
                if (c->rstate[i] == RC_ACCEPTED)
                    set_rcpt(c, i, r, RC_FINAL);
            txn_end(c, 0);
            break;
        }
        while (c->rcpt_i < job->nrcpt && c->rstate[c->rcpt_i] != RC_ACCEPTED)
            c->rcpt_i++;
        if (c->rcpt_i < job->nrcpt)
            set_rcpt(c, c->rcpt_i, r, RC_FINAL);
        while (c->rcpt_i < job->nrcpt && c->rstate[c->rcpt_i] != RC_ACCEPTED)
            c->rcpt_i++;
        if (c->rcpt_i >= job->nrcpt)
            txn_end(c, 0);
        else
            arm(c);
        break;
    case ST_RSET: /* the outcome is known already: only whether the session goes on depends on it */
        if (ok && !c->unusable)
            go_idle(c);
        else
            quit(c);
        break;
    case ST_QUIT:
        finish(c);
        break;
    default: /* a reply nobody asked for (e.g. during the body): the peer is confused */
        set_status(c, 451, "4.5.0 unexpected reply from %s during %s: %d", c->host, stage_name[c->st],
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
    while (c->st != ST_DONE && c->st != ST_HANDSHAKE && c->st != ST_IDLE && c->in.len > 0 &&
           !reply_pending(c)) {
        struct smtpc_reply r;
        size_t used;
        enum smtpc_parse pr = smtpc_reply_parse(c->in.data, c->in.len, &r, &used);
        if (pr == SMTPC_MORE)
            return;
        if (pr == SMTPC_ERROR) {
            if (c->st != ST_RSET) /* after RSET the outcome is known already */
                set_status(c, 451, "4.5.0 malformed reply from %s during %s", c->host, stage_name[c->st]);
            finish(c);
            return;
        }
        memmove(c->in.data, c->in.data + used, c->in.len - used);
        c->in.len -= used;
        c->in.data[c->in.len] = '\0';
        c->scan = c->scan_lines = 0;
        if (c->st == ST_CONNECT || c->st == ST_BODY) {
            /* nothing may arrive now; ST_CONNECT only before the TLS wrapper is up */
            set_status(c, 451, "4.5.0 unexpected reply from %s during %s", c->host, stage_name[c->st]);
            finish(c);
            return;
        }
        handle_reply(c, &r);
    }
    if (c->st == ST_IDLE && c->in.len > 0) /* e.g. "421 idle timeout": nothing is expected */
        idle_dead(c);
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
            /* no Nagle: the end of the data (".") must not wait for the peer's delayed ACK
             * of the text before it (40 ms per message on Linux) */
            int one = 1;
            if (job->addr.ss_family != AF_UNIX)
                setsockopt(bufferevent_getfd(c->bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            if (job->tls == SMTPC_TLS_WRAPPER)
                tls_up(c);
            c->st = ST_GREETING;
            arm(c);
        } else if (c->st == ST_HANDSHAKE) {
            tls_up(c);
            command(c, ST_EHLO, "%s %s", c->lmtp ? "LHLO" : "EHLO", job->helo_name);
        }
        return;
    }
    if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
        return;
    int err = EVUTIL_SOCKET_ERROR();
    char why[256];
    if (c->st == ST_IDLE) {
        idle_dead(c);
    } else if (c->st == ST_QUIT || c->st == ST_RSET) {
        finish(c);
    } else if (c->st == ST_HANDSHAKE || (c->st == ST_CONNECT && job->tls == SMTPC_TLS_WRAPPER &&
                                         (errno = err, tls_error(c, why, sizeof(why))))) {
        errno = err;
        if (c->st == ST_HANDSHAKE)
            tls_error(c, why, sizeof(why));
        set_status(c, 454, "4.7.5 TLS handshake with %s failed: %s", c->host, why);
        finish(c);
    } else if (c->st == ST_CONNECT) {
        set_status(c, 421, "4.4.1 connect to %s: %s", c->host,
                   err ? strerror(err) : "connection closed");
        finish(c);
    } else {
        set_status(c, 421, "4.4.2 lost connection with %s while %s", c->host, stage_name[c->st]);
        finish(c);
    }
}

/* timer_cb - the peer took too long in the current stage */
static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct smtpc_conn *c = arg;
    (void)fd;
    (void)what;
    if (c->st == ST_IDLE) {
        idle_dead(c);
        return;
    }
    if (c->st == ST_QUIT || c->st == ST_RSET) {
        finish(c);
        return;
    }
    set_status(c, 421, "4.4.2 timeout after %s with %s", stage_name[c->st], c->host);
    finish(c);
}

/* free_conn - release everything */
/* connections saying QUIT after smtpc_release, freed by smtpc_shutdown if still there */
static struct smtpc_conn *releasing_list;

static void free_conn(struct smtpc_conn *c)
{
    if (c->releasing) {
        if (c->rel_prev)
            c->rel_prev->rel_next = c->rel_next;
        else
            releasing_list = c->rel_next;
        if (c->rel_next)
            c->rel_next->rel_prev = c->rel_prev;
    }
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

/* finish_cb - report the outcome; then keep the idle connection for the caller or forget it */
static void finish_cb(evutil_socket_t fd, short what, void *arg)
{
    struct smtpc_conn *c = arg;
    struct smtpc_job *job = c->job;
    size_t ok = 0;
    (void)fd;
    (void)what;
    if (c->releasing || !job) { /* smtpc_release: nobody waits */
        free_conn(c);
        return;
    }
    /* recipients accepted at RCPT but without a final reply share the failure */
    for (size_t i = 0; job->status && i < job->nrcpt; i++)
        if (c->rstate[i] == RC_ACCEPTED) {
            job->rcpts[i].code = 0;
            job->rcpts[i].esc[0] = job->rcpts[i].text[0] = '\0';
        }
    for (size_t i = 0; i < job->nrcpt; i++)
        ok += job->rcpts[i].code / 100 == 2;
    job->reusable = c->st == ST_IDLE; /* not if it died while this event was pending */
    job->session_failed = job->status != 0 && !c->session_ok;
    job->peer_dsn = (c->ext.flags & SMTPC_EXT_DSN) != 0;
    snprintf(job->tls_info, sizeof(job->tls_info), "%s", c->tls_info);
    job->t_end = now();
    if (job->t_ready == 0)
        job->t_ready = job->t_end;
    log_debug("smtpc: %s%s: status=%d delivered=%zu/%zu%s%s reusable=%d %s", c->lmtp ? "lmtp " : "",
              c->peer_addr, job->status, ok, job->nrcpt, c->tls_info[0] ? " tls=" : "", c->tls_info,
              job->reusable, job->reply);
    smtpc_done_fn done = c->done;
    void *darg = c->arg;
    if (job->reusable) { /* the caller's now: smtpc_next, smtpc_release or smtpc_cancel */
        c->job = NULL;
        c->done = NULL;
        c->arg = NULL;
    } else {
        free_conn(c);
    }
    done(darg, job);
}

/* peer_format - c->peer_addr: "host[ip]:port" or "host[path]", as Postfix logs a relay */
static void peer_format(struct smtpc_conn *c, const struct smtpc_job *job)
{
    char tmp[512], ip[INET6_ADDRSTRLEN] = "";
    if (job->addr.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&job->addr;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
        snprintf(tmp, sizeof(tmp), "%s[%s]:%u", c->host, ip, (unsigned)ntohs(in->sin_port));
    } else if (job->addr.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&job->addr;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
        snprintf(tmp, sizeof(tmp), "%s[%s]:%u", c->host, ip, (unsigned)ntohs(in6->sin6_port));
    } else if (job->addr.ss_family == AF_UNIX) {
        const struct sockaddr_un *un = (const struct sockaddr_un *)&job->addr;
        size_t off = offsetof(struct sockaddr_un, sun_path), max = 0;
        if (job->addrlen > off)
            max = job->addrlen - off < sizeof(un->sun_path) ? job->addrlen - off : sizeof(un->sun_path);
        snprintf(tmp, sizeof(tmp), "%s[%.*s]", c->host, (int)strnlen(un->sun_path, max), un->sun_path);
    } else {
        snprintf(tmp, sizeof(tmp), "%s", c->host);
    }
    sanitize(c->peer_addr, sizeof(c->peer_addr), tmp);
}

/* job_begin - a new attempt on c: reset job's outcome and c's transaction, check the
 * recipients; returns 0 if the sender cannot be sent */
static int job_begin(struct smtpc_conn *c, struct smtpc_job *job)
{
    job->status = 0;
    job->reply[0] = '\0';
    snprintf(job->tls_info, sizeof(job->tls_info), "%s", c->tls_info);
    snprintf(job->peer_addr, sizeof(job->peer_addr), "%s", c->peer_addr);
    job->reusable = job->session_failed = job->peer_dsn = 0;
    job->t_begin = now();
    job->t_ready = job->t_end = 0;
    free(c->rstate);
    c->rstate = xcalloc(job->nrcpt ? job->nrcpt : 1, 1);
    c->session_ok = c->pipelined = c->mail_failed = 0;
    c->rcpt_i = c->naccepted = 0;
    c->sent = 0;
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
    return job->sender && !has_ctl(job->sender);
}

/* smtpc_start - begin delivering (see smtpc.h) */
struct smtpc_conn *smtpc_start(struct event_base *base, struct smtpc_job *job, smtpc_done_fn done, void *arg)
{
    struct smtpc_conn *c = xcalloc(1, sizeof(*c));
    c->base = base;
    c->job = job;
    c->done = done;
    c->arg = arg;
    c->lmtp = job->lmtp;
    c->timeout_scale = job->timeout_scale;
    snprintf(c->host, sizeof(c->host), "%s", job->host);
    peer_format(c, job);
    c->chunk = xmalloc(CHUNK);
    c->timer = evtimer_new(base, timer_cb, c);
    c->finish_ev = event_new(base, -1, 0, finish_cb, c);
    if (!c->timer || !c->finish_ev)
        log_fatalx("smtpc: cannot create events");
    c->st = ST_CONNECT;
    if (!job_begin(c, job) || !job->helo_name || !job->helo_name[0] || has_ctl(job->helo_name)) {
        c->session_ok = 1; /* no fault of the peer: another one would not do better */
        set_status(c, 553, "5.1.7 invalid sender address or HELO name");
        finish(c);
        return c;
    }
    if (job->tls != SMTPC_TLS_NONE && !(c->ctx = ctx_new(job))) {
        set_status(c, 454, "4.7.5 cannot set up TLS for %s%s", c->host,
                   verifying(job) ? ": cannot load the CA certificates" : "");
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
        set_status(c, 421, "4.4.1 connect to %s: cannot create a connection", c->host);
        finish(c);
        return c;
    }
    bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    arm(c);
    if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&job->addr, (int)job->addrlen) < 0) {
        set_status(c, 421, "4.4.1 connect to %s: %s", c->host, strerror(errno));
        finish(c);
    }
    return c;
}

/* idle_broken - the idle peer sent something or closed, and the event loop has not said so
 * yet (smtpc_next may run before the read callback) */
static int idle_broken(struct smtpc_conn *c)
{
    struct bufferevent *b = c->bev, *u;
    if (!b || c->in.len > 0)
        return 1;
    for (;; b = u) {
        if (evbuffer_get_length(bufferevent_get_input(b)) > 0)
            return 1;
        if (!(u = bufferevent_get_underlying(b)))
            break;
    }
    evutil_socket_t fd = bufferevent_getfd(b);
    char ch;
    if (fd < 0)
        return 1;
    ssize_t n = recv(fd, &ch, 1, MSG_PEEK | MSG_DONTWAIT);
    return n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* smtpc_next - the next transaction on an idle connection (see smtpc.h) */
int smtpc_next(struct smtpc_conn *c, struct smtpc_job *job, smtpc_done_fn done, void *arg)
{
    if (!c)
        return -1;
    if (c->st != ST_IDLE || idle_broken(c)) {
        log_debug("smtpc: %s: idle connection lost before reuse", c->host);
        free_conn(c);
        return -1;
    }
    c->job = job;
    c->done = done;
    c->arg = arg;
    c->timeout_scale = job->timeout_scale;
    snprintf(job->host, sizeof(job->host), "%s", c->host);
    job->lmtp = c->lmtp;
    int sender_ok = job_begin(c, job);
    c->session_ok = 1;
    job->t_ready = job->t_begin;
    if (!sender_ok)
        refuse(c, 553, "5.1.7 invalid sender address");
    else
        start_mail(c);
    return 0;
}

/* smtpc_release - QUIT and free the idle connection in the background (see smtpc.h) */
void smtpc_release(struct smtpc_conn *c)
{
    if (!c)
        return;
    if (c->st != ST_IDLE || !c->bev) {
        free_conn(c);
        return;
    }
    c->releasing = 1;
    c->rel_next = releasing_list;
    if (releasing_list)
        releasing_list->rel_prev = c;
    releasing_list = c;
    command(c, ST_QUIT, "QUIT");
}

/* smtpc_shutdown - free the released connections still waiting for their QUIT reply */
void smtpc_shutdown(void)
{
    while (releasing_list)
        free_conn(releasing_list);
}

/* smtpc_cancel - stop the attempt without calling done(), or drop an idle connection */
void smtpc_cancel(struct smtpc_conn *c)
{
    if (c)
        free_conn(c);
}
