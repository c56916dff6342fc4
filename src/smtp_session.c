/* smtp_session.c - the SMTP server dialogue: commands, transactions, replies
 *
 * One struct smtp_session per connection, driven by libevent bufferevent
 * callbacks.  Input is processed command by command in arrival order, so
 * pipelined groups are answered in order; processing pauses while a message
 * is being committed (the 250 waits for the fsync) and while the client is
 * not reading its replies.  Message text goes through smtp_data.c.
 */
#include "smtp_internal.h"
#include "buf.h"
#include "login_map.h"
#include "tls.h"
#include "daemon.h"
#include "dns.h"
#include "log.h"
#include "net.h"
#include "queue.h"
#include "qmgr.h"
#include "smtp_cmd.h"
#include "smtp_data.h"
#include "smtp_reply.h"
#include "xmalloc.h"

#include <ctype.h>
#include <openssl/err.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static struct smtp_session *sessions;
static long nsessions;


long smtp_sessions_count(void)
{
    return nsessions;
}

/* smtp_reply - THE reply function: formats from the reply table, counts
 * errors, logs rejects, hangs up after 421 or at the error limit. */
void smtp_reply(struct smtp_session *s, enum reply_id id, ...)
{
    const struct reply_def *r = &reply_defs[id];
    char text[1024];
    va_list ap;
    va_start(ap, id);
    vsnprintf(text, sizeof(text), r->text, ap);
    va_end(ap);
    struct evbuffer *out = bufferevent_get_output(s->bev);
    if (r->esc[0])
        evbuffer_add_printf(out, "%d %s %s\r\n", r->code, r->esc, text);
    else
        evbuffer_add_printf(out, "%d %s\r\n", r->code, text);
    if (r->code >= 400 && id != R_TOO_MANY_RCPT) /* overshoot is normal client behaviour */
        s->errors++;
    if (r->code == 421 || r->code == 221 || r->code == 521) {
        session_close(s);
        return;
    }
    if (r->code >= 400 && s->errors >= tern.cfg->smtpd_hard_error_limit) {
        log_info("too many errors after %s from %s[%s]", r->name, s->client_name, s->client_addr);
        smtp_reply(s, R_TOO_MANY_ERRORS, tern.cfg->myhostname);
    }
}

/* log_reject - NOQUEUE line in Postfix format for pflogsumm */
static void log_reject(struct smtp_session *s, const char *cmd, enum reply_id id, const char *to,
                       const char *detail)
{
    const struct reply_def *r = &reply_defs[id];
    char from[ADDR_PATH_MAX * 2], rcpt[ADDR_PATH_MAX * 2], helo[300];
    log_printable(from, sizeof(from), s->in_mail ? s->sender.addr : "", ADDR_PATH_MAX, 1);
    log_printable(rcpt, sizeof(rcpt), to ? to : "", ADDR_PATH_MAX, 1);
    log_printable(helo, sizeof(helo), s->helo, sizeof(s->helo), 1);
    log_info("NOQUEUE: reject: %s from %s[%s]: %d %s <%s>: %s; from=<%s> to=<%s> proto=%s helo=<%s>",
             cmd, s->client_name, s->client_addr, r->code, r->esc, rcpt, detail, from, rcpt,
             s->esmtp ? "ESMTP" : "SMTP", helo);
}

/* transaction_reset - forget MAIL, RCPT and any message being received */
void transaction_reset(struct smtp_session *s)
{
    s->in_mail = 0;
    memset(&s->sender, 0, sizeof(s->sender));
    memset(&s->mp, 0, sizeof(s->mp));
    free(s->rcpts);
    s->rcpts = NULL;
    s->nrcpt = s->rcpt_cap = 0;
    s->bdat_used = s->bdat_last = s->bdat_discard = 0;
    s->bdat_left = 0;
    if (s->qw) {
        queue_writer_abort(s->qw);
        s->qw = NULL;
    }
    smtp_data_end(&s->data);
}

/* ---- HELO / EHLO ---------------------------------------------------- */

static int helo_arg(struct smtp_session *s, const char *args)
{
    while (*args == ' ')
        args++;
    if (*args == '\0')
        return -1;
    size_t n = strcspn(args, " ");
    if (n >= sizeof(s->helo))
        n = sizeof(s->helo) - 1;
    for (size_t i = 0; i < n; i++)
        s->helo[i] = (args[i] > ' ' && args[i] < 0x7f) ? args[i] : '?';
    s->helo[n] = '\0';
    return 0;
}

static void cmd_helo(struct smtp_session *s, const char *args)
{
    if (helo_arg(s, args) < 0) {
        smtp_reply(s, R_SYNTAX, "HELO hostname");
        return;
    }
    transaction_reset(s);
    s->esmtp = 0;
    evbuffer_add_printf(bufferevent_get_output(s->bev), "250 %s\r\n", tern.cfg->myhostname);
}

static void cmd_ehlo(struct smtp_session *s, const char *args)
{
    if (helo_arg(s, args) < 0) {
        smtp_reply(s, R_SYNTAX, "EHLO hostname");
        return;
    }
    transaction_reset(s);
    s->esmtp = 1;
    const struct config *c = tern.cfg;
    struct evbuffer *out = bufferevent_get_output(s->bev);
    evbuffer_add_printf(out, "250-%s\r\n250-PIPELINING\r\n250-SIZE %lld\r\n", c->myhostname,
                        c->message_size_limit);
    if (!c->disable_vrfy_command)
        evbuffer_add_printf(out, "250-VRFY\r\n");
    if (c->smtpd_expn_enable && s->in_mynetworks)
        evbuffer_add_printf(out, "250-EXPN\r\n");
    if (tls_server_available() && !s->tls && s->kind != LISTEN_SMTPS)
        evbuffer_add_printf(out, "250-STARTTLS\r\n");
    if (auth_offered(s))
        evbuffer_add_printf(out, "250-AUTH PLAIN LOGIN\r\n");
    evbuffer_add_printf(out, "250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n");
    if (c->smtputf8_enable)
        evbuffer_add_printf(out, "250-SMTPUTF8\r\n");
    evbuffer_add_printf(out, "250-CHUNKING\r\n250 DSN\r\n");
}

/* ---- MAIL / RCPT ---------------------------------------------------- */

/* no_params - after HELO (not EHLO) no ESMTP parameter is allowed */
static enum param_status no_params(const char *rest, char *bad, size_t badsz)
{
    while (*rest == ' ')
        rest++;
    if (*rest == '\0')
        return PARAM_OK;
    snprintf(bad, badsz, "%.*s", (int)strcspn(rest, " ="), rest);
    return PARAM_UNKNOWN;
}

static int addr_flags(int mail)
{
    return (mail ? ADDR_F_MAIL : 0) | (tern.cfg->strict_rfc821_envelopes ? ADDR_F_STRICT : 0) |
           (tern.cfg->smtputf8_enable ? ADDR_F_UTF8 : 0);
}

/* envelope_arg - parse the path and ESMTP parameters of MAIL (mp != NULL) or
 * RCPT (rp != NULL); on error reply and return -1.  After HELO no parameter
 * is allowed. */
static int envelope_arg(struct smtp_session *s, const char *args, struct addr *a,
                        struct mail_params *mp, struct rcpt_params *rp)
{
    const char *rest;
    char pr[ADDR_PATH_MAX * 2], bad[64] = "";
    enum addr_status st = addr_parse_path(args, addr_flags(mp != NULL), a, &rest);
    if (st != ADDR_OK) {
        log_printable(pr, sizeof(pr), args, 300, 1);
        smtp_reply(s, mp ? R_BAD_SENDER : R_BAD_RCPT, pr, addr_status_text(st));
        return -1;
    }
    enum param_status ps = s->esmtp ? PARAM_OK : no_params(rest, bad, sizeof(bad));
    if (ps == PARAM_OK) {
        const char *p = s->esmtp ? rest : "";
        ps = mp ? smtp_mail_params(p, mp, bad, sizeof(bad)) : smtp_rcpt_params(p, rp, bad, sizeof(bad));
    }
    if (ps != PARAM_OK) {
        log_printable(pr, sizeof(pr), bad, sizeof(bad), 0);
        smtp_reply(s, ps == PARAM_UNKNOWN ? R_PARAM_UNKNOWN : R_PARAM_BAD, pr);
        return -1;
    }
    return 0;
}

static void cmd_mail(struct smtp_session *s, const char *args)
{
    if (args == NULL) {
        smtp_reply(s, R_SYNTAX, "MAIL FROM:<address>");
        return;
    }
    if (tern.cfg->smtpd_helo_required && s->helo[0] == '\0') {
        smtp_reply(s, R_BAD_SEQ, "send HELO/EHLO first");
        return;
    }
    if (s->in_mail) {
        smtp_reply(s, R_BAD_SEQ, "nested MAIL command");
        return;
    }
    if (s->kind != LISTEN_SMTP && s->auth_user[0] == '\0') {
        smtp_reply(s, R_AUTH_REQUIRED);
        return;
    }
    struct addr a;
    struct mail_params mp;
    char pr[ADDR_PATH_MAX * 2];
    if (envelope_arg(s, args, &a, &mp, NULL) < 0)
        return;
    if (mp.smtputf8 && !tern.cfg->smtputf8_enable) {
        smtp_reply(s, R_PARAM_UNKNOWN, "SMTPUTF8");
        return;
    }
    if (a.utf8 && !mp.smtputf8) {
        log_printable(pr, sizeof(pr), a.addr, sizeof(a.addr), 1);
        smtp_reply(s, R_UTF8_NEEDED, pr);
        return;
    }
    if (tern.cfg->message_size_limit > 0 && mp.size > tern.cfg->message_size_limit) {
        smtp_reply(s, R_TOO_BIG);
        return;
    }
    if (s->auth_user[0] && !login_map_owns(tern.login_map, tern.cfg, s->auth_user, a.addr)) {
        char u[300];
        log_printable(pr, sizeof(pr), a.addr, sizeof(a.addr), 1);
        log_printable(u, sizeof(u), s->auth_user, sizeof(s->auth_user), 1);
        log_reject(s, "MAIL", R_SENDER_NOT_OWNED, a.addr, "Sender address rejected: not owned by user");
        smtp_reply(s, R_SENDER_NOT_OWNED, pr, u);
        return;
    }
    s->in_mail = 1;
    s->sender = a;
    s->mp = mp;
    smtp_reply(s, R_MAIL_OK);
}

/* dot_atom - the local part needs no quotes (RFC 5322 dot-atom) */
static int dot_atom(const char *l)
{
    static const char atext[] = "!#$%&'*+-/=?^_`{|}~";
    if (*l == '\0' || *l == '.' || l[strlen(l) - 1] == '.' || strstr(l, ".."))
        return 0;
    for (; *l; l++)
        if (!isalnum((unsigned char)*l) && *l != '.' && !strchr(atext, *l) && !((unsigned char)*l & 0x80))
            return 0;
    return 1;
}

/* rcpt_canonical - "alice"@dom is alice@dom (RFC 5321 4.1.2): store one spelling */
static void rcpt_canonical(struct addr *a)
{
    if (a->quoted && dot_atom(a->local)) {
        snprintf(a->addr, sizeof(a->addr), "%s@%s", a->local, a->domain);
        a->quoted = 0;
    }
}

/* rcpt_allowed - relay control: local domains, or trusted clients.  Source
 * routes are already dropped; '%', '!' and quoted '@' stay in the local part,
 * so they can only ever name a local user. */
static enum reply_id rcpt_allowed(struct smtp_session *s, const struct addr *a)
{
    if (a->domain[0] == '\0' || local_is_mydestination(tern.cfg, a->domain))
        return local_recipient_ok(&tern.lctx, a->domain[0] ? a->local : "postmaster")
                   ? R_RCPT_OK
                   : R_USER_UNKNOWN;
    if (s->in_mynetworks || s->auth_user[0])
        return R_RCPT_OK;
    return R_RELAY_DENIED;
}

static void cmd_rcpt(struct smtp_session *s, const char *args)
{
    if (args == NULL) {
        smtp_reply(s, R_SYNTAX, "RCPT TO:<address>");
        return;
    }
    if (!s->in_mail) {
        smtp_reply(s, R_BAD_SEQ, "need MAIL command");
        return;
    }
    struct addr a;
    struct rcpt_params rp;
    char pr[ADDR_PATH_MAX * 2];
    if (envelope_arg(s, args, &a, NULL, &rp) < 0)
        return;
    if (a.domain[0])
        rcpt_canonical(&a);
    log_printable(pr, sizeof(pr), a.addr, sizeof(a.addr), 1);
    if (a.utf8 && !s->mp.smtputf8) {
        smtp_reply(s, R_UTF8_NEEDED, pr);
        return;
    }
    if (s->nrcpt >= (size_t)tern.cfg->smtpd_recipient_limit) {
        smtp_reply(s, R_TOO_MANY_RCPT);
        return;
    }
    enum reply_id verdict = rcpt_allowed(s, &a);
    if (verdict != R_RCPT_OK) {
        log_reject(s, "RCPT", verdict, a.addr,
                   verdict == R_RELAY_DENIED ? "Relay access denied" : "User unknown in local recipient table");
        smtp_reply(s, verdict, pr);
        return;
    }
    if (a.domain[0] == '\0') /* <postmaster>: RFC 5321 4.5.1, deliver to our postmaster */
        snprintf(a.addr, sizeof(a.addr), "postmaster@%s", tern.cfg->myhostname);
    if (s->nrcpt == s->rcpt_cap) {
        s->rcpt_cap = s->rcpt_cap ? s->rcpt_cap * 2 : 4;
        s->rcpts = xrealloc(s->rcpts, s->rcpt_cap * sizeof(*s->rcpts));
    }
    s->rcpts[s->nrcpt].addr = a;
    s->rcpts[s->nrcpt].params = rp;
    s->nrcpt++;
    smtp_reply(s, R_RCPT_OK);
}

/* ---- DATA / BDAT ---------------------------------------------------- */

/* received_header - RFC 5321 4.4 trace header, Postfix layout */
static void received_header(struct smtp_session *s, struct buf *b, const char *qid)
{
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z (%Z)", &tm);
    char proto[16];
    snprintf(proto, sizeof(proto), "%s%s%s", s->mp.smtputf8 ? "UTF8SMTP" : s->esmtp ? "ESMTP" : "SMTP",
             s->tls ? "S" : "", s->auth_user[0] ? "A" : "");
    if (s->auth_user[0] && tern.cfg->submission_hide_client)
        buf_printf(b, "Received: by %s (tern) with %s id %s", tern.cfg->myhostname, proto, qid);
    else {
        buf_printf(b, "Received: from %s (%s [%s])\n", s->helo[0] ? s->helo : "unknown", s->client_name,
                   s->client_addr);
        if (s->tls)
            buf_printf(b, "\t(using %s)\n", s->tls_info);
        buf_printf(b, "\tby %s (tern) with %s id %s", tern.cfg->myhostname, proto, qid);
    }
    if (s->nrcpt == 1)
        buf_printf(b, "\n\tfor <%s>", s->rcpts[0].addr.addr);
    buf_printf(b, "; %s\n", date);
}

/* message_open - create the queue file and write envelope + Received: */
static int message_open(struct smtp_session *s)
{
    s->qw = queue_writer_open();
    if (s->qw == NULL) {
        log_warn("cannot create queue file");
        return -1;
    }
    const char *qid = queue_writer_id(s->qw);
    struct qenv env;
    memset(&env, 0, sizeof(env));
    struct timeval tv;
    gettimeofday(&tv, NULL);
    snprintf(env.id, sizeof(env.id), "%s", qid);
    env.arrival = tv.tv_sec;
    env.arrival_usec = tv.tv_usec;
    env.client_addr = s->client_addr;
    env.client_name = s->client_name;
    env.helo = s->helo;
    char proto[16];
    snprintf(proto, sizeof(proto), "%s%s%s", s->esmtp ? "ESMTP" : "SMTP", s->tls ? "S" : "",
             s->auth_user[0] ? "A" : "");
    env.proto = proto;
    env.sender = s->sender.addr;
    env.body = s->mp.body;
    env.smtputf8 = s->mp.smtputf8;
    env.ret = s->mp.ret;
    env.envid = s->mp.envid[0] ? s->mp.envid : NULL;
    env.rcpts = xcalloc(s->nrcpt, sizeof(*env.rcpts));
    env.nrcpt = s->nrcpt;
    for (size_t i = 0; i < s->nrcpt; i++) {
        struct qrcpt *r = &env.rcpts[i];
        r->addr = s->rcpts[i].addr.addr;
        r->orcpt = s->rcpts[i].params.orcpt_type[0] ? s->rcpts[i].params.orcpt : NULL;
        snprintf(r->orcpt_type, sizeof(r->orcpt_type), "%s", s->rcpts[i].params.orcpt_type);
        r->notify = s->rcpts[i].params.notify;
        r->state = RCPT_QUEUED;
    }
    struct buf b = BUF_INIT;
    queue_env_encode(&env, &b);
    received_header(s, &b, qid);
    free(env.rcpts);
    queue_writer_write(s->qw, b.data, b.len);
    buf_free(&b);
    if (s->auth_user[0]) {
        char u[300];
        log_printable(u, sizeof(u), s->auth_user, sizeof(s->auth_user), 1);
        log_info("%s: client=%s[%s], sasl_method=%s, sasl_username=%s", qid, s->client_name,
                 s->client_addr, s->auth_mech, u);
    } else
        log_info("%s: client=%s[%s]", qid, s->client_name, s->client_addr);
    return 0;
}

static void commit_done(void *arg, const char *qid, int err);

/* message_finish - the whole text is in: reject it, or commit and wait */
static void message_finish(struct smtp_session *s)
{
    if (s->qw)
        smtp_data_finish(&s->data, s->qw);
    int flags = s->data.flags;
    if (flags == 0 && s->qw && queue_writer_failed(s->qw))
        flags = DATA_F_IOERR;
    /* our own Received: makes one more (Postfix's hopcount_limit) */
    int hops = flags == 0 && s->data.received + 1 > tern.cfg->hopcount_limit;
    if (flags != 0 || s->qw == NULL || hops) {
        if (hops)
            smtp_reply(s, R_TOO_MANY_HOPS, s->data.received + 1);
        else if (flags & DATA_F_TOOBIG)
            smtp_reply(s, R_TOO_BIG);
        else if (flags & DATA_F_BADEOL)
            smtp_reply(s, R_BAD_DATA);
        else if (flags & DATA_F_LONG)
            smtp_reply(s, R_LONG_LINE, tern.cfg->smtpd_max_line_length);
        else if (s->qw && (queue_writer_failed(s->qw) == ENOSPC || queue_writer_failed(s->qw) == EDQUOT))
            smtp_reply(s, R_QUEUE_FULL);
        else
            smtp_reply(s, R_QUEUE_ERROR);
        if (s->qw)
            log_info("%s: reject: message text from %s[%s] (flags=%#x)", queue_writer_id(s->qw),
                     s->client_name, s->client_addr, (unsigned)flags);
        transaction_reset(s);
        if (s->state != S_CLOSING)
            s->state = S_CMD;
        return;
    }
    char from[ADDR_PATH_MAX * 2];
    log_printable(from, sizeof(from), s->sender.addr, sizeof(s->sender.addr), 1);
    if (s->data.message_id[0])
        log_info("%s: message-id=%s", queue_writer_id(s->qw), s->data.message_id);
    log_info_as("qmgr", "%s: from=<%s>, size=%lld, nrcpt=%zu (queue active)", queue_writer_id(s->qw), from,
             (long long)s->data.size, s->nrcpt);
    struct queue_writer *w = s->qw;
    s->qw = NULL;
    s->state = S_COMMIT;
    s->ticket = xcalloc(1, sizeof(*s->ticket));
    s->ticket->session = s;
    queue_writer_commit(w, commit_done, s->ticket);
}

/* commit_done - the message is durable (or not): now, and only now, reply */
static void commit_done(void *arg, const char *qid, int err)
{
    struct commit_ticket *t = arg;
    struct smtp_session *s = t->session;
    free(t);
    if (err == 0)
        sched_add(qid);
    else {
        errno = err;
        log_warn("%s: queue commit failed", qid);
    }
    if (s == NULL)
        return; /* the client left before its 250: the message is kept all the same */
    s->ticket = NULL;
    if (err == 0)
        smtp_reply(s, R_QUEUED, qid);
    else
        smtp_reply(s, err == ENOSPC || err == EDQUOT ? R_QUEUE_FULL : R_QUEUE_ERROR);
    transaction_reset(s);
    if (s->state == S_COMMIT)
        s->state = S_CMD;
    if (tern.shutting_down && s->state == S_CMD)
        smtp_reply(s, R_SHUTDOWN, tern.cfg->myhostname);
    session_process(s);
}

/* submission_fixes - RFC 6409 8: what to add to a submitted message that lacks it */
static void submission_fixes(struct smtp_session *s, const char *qid)
{
    struct smtp_data *d = &s->data;
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
    snprintf(d->fix_date, sizeof(d->fix_date), "Date: %s", date);
    snprintf(d->fix_msgid, sizeof(d->fix_msgid), "Message-ID: <%lld.%s@%s>", (long long)now, qid,
             tern.cfg->myhostname);
    if (strchr(s->auth_user, '@'))
        snprintf(d->fix_from, sizeof(d->fix_from), "From: <%s>", s->auth_user);
    else
        snprintf(d->fix_from, sizeof(d->fix_from), "From: <%s@%s>", s->auth_user, tern.cfg->myorigin);
    d->seen_date = d->seen_msgid = d->seen_from = 0;
}

static int data_start(struct smtp_session *s)
{
    smtp_data_begin(&s->data, tern.cfg->smtpd_max_line_length, tern.cfg->message_size_limit);
    if (message_open(s) < 0) {
        s->data.flags |= DATA_F_IOERR;
        return -1;
    }
    if (s->auth_user[0])
        submission_fixes(s, queue_writer_id(s->qw));
    return 0;
}

static void cmd_data(struct smtp_session *s, const char *args)
{
    if (*args) {
        smtp_reply(s, R_SYNTAX, "DATA");
        return;
    }
    if (!s->in_mail) {
        smtp_reply(s, R_BAD_SEQ, "need MAIL command");
        return;
    }
    if (s->bdat_used) {
        smtp_reply(s, R_BAD_SEQ, "DATA after BDAT");
        return;
    }
    if (s->nrcpt == 0) {
        smtp_reply(s, R_NO_RCPT);
        return;
    }
    if (data_start(s) < 0) {
        int e = errno;
        transaction_reset(s);
        smtp_reply(s, e == ENOSPC || e == EDQUOT ? R_QUEUE_FULL : R_QUEUE_ERROR);
        return;
    }
    smtp_reply(s, R_DATA_GO);
    s->state = S_DATA;
}

static void cmd_bdat(struct smtp_session *s, const char *args)
{
    unsigned long long size;
    int last;
    if (smtp_bdat_args(args, &size, &last) < 0) {
        /* the chunk size is unknown: the session cannot stay in sync */
        smtp_reply(s, R_SYNTAX, "BDAT size [LAST]");
        session_close(s);
        return;
    }
    s->bdat_left = s->bdat_size = size;
    s->bdat_last = last;
    s->bdat_discard = 0;
    if (!s->in_mail || s->nrcpt == 0) {
        s->bdat_discard = 1; /* read the chunk, then say 503/554 */
    } else if (!s->bdat_used) {
        s->bdat_used = 1;
        if (data_start(s) < 0)
            s->data.flags |= DATA_F_IOERR;
    }
    s->state = S_BDAT;
}

/* bdat_chunk_done - the chunk is read: reply for it */
static void bdat_chunk_done(struct smtp_session *s)
{
    s->state = S_CMD;
    if (s->bdat_discard) {
        if (!s->in_mail)
            smtp_reply(s, R_BAD_SEQ, "need MAIL command");
        else
            smtp_reply(s, R_NO_RCPT);
        return;
    }
    if (s->bdat_last) {
        smtp_data_flush(&s->data, s->qw);
        message_finish(s);
        return;
    }
    if (s->data.flags) {
        /* fail now; the transaction is over (RFC 3030 4.2: a failed chunk ends it) */
        message_finish(s);
        return;
    }
    smtp_reply(s, R_BDAT_OK, s->bdat_size);
}

/* ---- other commands ------------------------------------------------- */

static void cmd_rset(struct smtp_session *s, const char *args)
{
    if (*args) {
        smtp_reply(s, R_SYNTAX, "RSET");
        return;
    }
    transaction_reset(s);
    smtp_reply(s, R_OKAY);
}

static void cmd_noop(struct smtp_session *s, const char *args)
{
    (void)args;
    smtp_reply(s, R_OKAY);
}

static void cmd_help(struct smtp_session *s, const char *args)
{
    (void)args;
    smtp_reply(s, R_HELP);
}

static void cmd_vrfy(struct smtp_session *s, const char *args)
{
    if (tern.cfg->disable_vrfy_command) {
        smtp_reply(s, R_DISABLED, "VRFY");
        return;
    }
    if (*args == '\0') {
        smtp_reply(s, R_SYNTAX, "VRFY address");
        return;
    }
    smtp_reply(s, R_VRFY);
}

static void cmd_expn(struct smtp_session *s, const char *args)
{
    if (!tern.cfg->smtpd_expn_enable || !s->in_mynetworks) {
        smtp_reply(s, R_DISABLED, "EXPN");
        return;
    }
    char name[ADDR_LOCAL_MAX + 1];
    size_t n = strcspn(args, "@ ");
    if (n == 0 || n > ADDR_LOCAL_MAX) {
        smtp_reply(s, R_SYNTAX, "EXPN alias");
        return;
    }
    for (size_t i = 0; i < n; i++)
        name[i] = (char)tolower((unsigned char)args[i]);
    name[n] = '\0';
    const struct alias_entry *e = tern.aliases ? alias_lookup(tern.aliases, name) : NULL;
    if (e == NULL) {
        smtp_reply(s, R_USER_UNKNOWN, name);
        return;
    }
    struct evbuffer *out = bufferevent_get_output(s->bev);
    for (size_t i = 0; i < e->ntargets; i++) {
        char t[600];
        log_printable(t, sizeof(t), e->targets[i].value, 512, 1);
        evbuffer_add_printf(out, "250%c2.1.5 <%s>\r\n", i + 1 < e->ntargets ? '-' : ' ', t);
    }
}

static void cmd_quit(struct smtp_session *s, const char *args)
{
    (void)args;
    smtp_reply(s, R_BYE);
}

static void cmd_http(struct smtp_session *s, const char *args)
{
    (void)args;
    log_warnx("non-SMTP command from %s[%s]", s->client_name, s->client_addr);
    smtp_reply(s, R_HTTP);
}

/* The dispatch table: one row per command (names are used in the disconnect log line). */
static const struct smtp_cmd_def {
    enum smtp_verb verb;
    const char *name;
    void (*fn)(struct smtp_session *, const char *);
} smtp_cmds[] = {
    [CMD_UNKNOWN] = {CMD_UNKNOWN, "unknown", NULL},
    [CMD_HELO] = {CMD_HELO, "helo", cmd_helo},
    [CMD_EHLO] = {CMD_EHLO, "ehlo", cmd_ehlo},
    [CMD_MAIL] = {CMD_MAIL, "mail", cmd_mail},
    [CMD_RCPT] = {CMD_RCPT, "rcpt", cmd_rcpt},
    [CMD_DATA] = {CMD_DATA, "data", cmd_data},
    [CMD_BDAT] = {CMD_BDAT, "bdat", cmd_bdat},
    [CMD_RSET] = {CMD_RSET, "rset", cmd_rset},
    [CMD_NOOP] = {CMD_NOOP, "noop", cmd_noop},
    [CMD_HELP] = {CMD_HELP, "help", cmd_help},
    [CMD_VRFY] = {CMD_VRFY, "vrfy", cmd_vrfy},
    [CMD_EXPN] = {CMD_EXPN, "expn", cmd_expn},
    [CMD_QUIT] = {CMD_QUIT, "quit", cmd_quit},
    [CMD_STARTTLS] = {CMD_STARTTLS, "starttls", cmd_starttls},
    [CMD_AUTH] = {CMD_AUTH, "auth", cmd_auth},
    [CMD_HTTP] = {CMD_HTTP, "http", cmd_http},
};
_Static_assert(sizeof(smtp_cmds) / sizeof(smtp_cmds[0]) == CMD__COUNT, "one row per verb");

/* ---- input ---------------------------------------------------------- */

/* read_command - take one command line off the input; returns 1 if a line
 * was consumed (handled, or answered with an error), 0 if more input is needed */
long session_read_line(struct smtp_session *s, char *line, size_t max)
{
    struct evbuffer *in = bufferevent_get_input(s->bev);
    size_t avail = evbuffer_get_length(in);
    if (avail == 0)
        return -1;
    size_t look = avail < max ? avail : max;
    unsigned char *p = evbuffer_pullup(in, (ev_ssize_t)look);
    unsigned char *lf = memchr(p, '\n', look);
    if (lf == NULL) {
        if (avail < max)
            return -1;
        /* over-long: discard through the next LF, then answer */
        evbuffer_drain(in, look);
        s->cmd_discarding = 1;
        return -2;
    }
    size_t len = (size_t)(lf - p) + 1;
    if (s->cmd_discarding) {
        s->cmd_discarding = 0;
        evbuffer_drain(in, len);
        smtp_reply(s, R_LINE_TOO_LONG);
        return -2;
    }
    int crlf = len >= 2 && p[len - 2] == '\r';
    size_t clen = len - (crlf ? 2 : 1);
    memcpy(line, p, clen);
    line[clen] = '\0';
    evbuffer_drain(in, len);
    if (!crlf || memchr(line, '\r', clen)) {
        smtp_reply(s, R_BARE_EOL);
        return -2;
    }
    if (memchr(line, '\0', clen)) {
        smtp_reply(s, R_NUL);
        return -2;
    }
    return (long)clen;
}

/* read_command - take one command line off the input and run it; returns 1
 * if a line was consumed, 0 if more input is needed */
static int read_command(struct smtp_session *s)
{
    char line[CMD_LINE_MAX];
    long n = session_read_line(s, line, sizeof(line));
    if (n < 0)
        return n == -2;
    const char *args = "";
    enum smtp_verb v = smtp_cmd_lex(line, &args);
    if (v == CMD_UNKNOWN) {
        char pr[128];
        log_printable(pr, sizeof(pr), line, 60, 1);
        log_debug("unknown command from %s[%s]: %s", s->client_name, s->client_addr, pr);
        s->ncmd_bad[CMD_UNKNOWN]++;
        smtp_reply(s, R_UNKNOWN_CMD);
        return 1;
    }
    int before = s->errors;
    smtp_cmds[v].fn(s, args);
    s->ncmd[v]++;
    if (s->errors > before)
        s->ncmd_bad[v]++;
    return 1;
}

/* read_data - feed DATA text or a BDAT chunk; returns 1 if progress was made */
static int read_data(struct smtp_session *s)
{
    struct evbuffer *in = bufferevent_get_input(s->bev);
    size_t avail = evbuffer_get_length(in);
    if (avail == 0)
        return 0;
    int bdat = s->state == S_BDAT;
    size_t want = avail;
    if (bdat && s->bdat_left < want)
        want = (size_t)s->bdat_left;
    struct evbuffer_iovec vec[16];
    int n = evbuffer_peek(in, (ev_ssize_t)want, NULL, vec, 16);
    size_t consumed = 0;
    int ended = 0;
    struct queue_writer *w = s->qw;
    if (bdat && s->bdat_discard)
        consumed = want; /* read only to stay in sync */
    for (int i = 0; i < n && i < 16 && consumed < want && !ended; i++) {
        size_t len = vec[i].iov_len;
        if (len > want - consumed)
            len = want - consumed;
        consumed += smtp_data_feed(&s->data, vec[i].iov_base, len, bdat ? DATA_MODE_BDAT : DATA_MODE_DOT, w, &ended);
    }
    evbuffer_drain(in, consumed);
    if (bdat) {
        s->bdat_left -= consumed;
        if (s->bdat_left == 0)
            bdat_chunk_done(s);
    } else if (ended) {
        s->state = S_CMD;
        message_finish(s);
    }
    return consumed > 0 || (bdat && s->bdat_left == 0);
}

/* session_process - handle all complete input, in order, until we must wait */
void session_process(struct smtp_session *s)
{
    for (;;) {
        if (s->state == S_CLOSING || s->state == S_COMMIT || s->state == S_CONNECT ||
            s->state == S_AUTH_WAIT)
            return;
        if (evbuffer_get_length(bufferevent_get_output(s->bev)) > OUTPUT_PAUSE) {
            s->pause_output = 1; /* resumed by session_writecb */
            return;
        }
        int progress;
        if (s->state == S_BDAT && s->bdat_left == 0) {
            bdat_chunk_done(s); /* "BDAT 0 LAST" */
            progress = 1;
        } else if (s->state == S_DATA || s->state == S_BDAT) {
            progress = read_data(s);
        } else if (s->state == S_AUTH) {
            progress = auth_continue(s);
        } else {
            progress = read_command(s);
        }
        if (!progress) {
            if (s->peer_eof && s->state == S_CMD)
                session_close(s); /* everything the client sent is answered */
            return;
        }
    }
}

static void session_readcb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    struct smtp_session *s = arg;
    if (s->tls_pending)
        tls_established(s);
    session_process(s);
}

static void session_writecb(struct bufferevent *bev, void *arg)
{
    struct smtp_session *s = arg;
    if (s->state == S_CLOSING) {
        if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
            event_active(s->close_ev, EV_TIMEOUT, 0);
        return;
    }
    if (s->pause_output) {
        s->pause_output = 0;
        session_process(s);
    }
}

static void session_eventcb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct smtp_session *s = arg;
    if (tls_event(s, what))
        return;
    if ((what & BEV_EVENT_TIMEOUT) && s->state != S_CLOSING) {
        log_info("timeout after %s from %s[%s]",
                 s->state == S_DATA || s->state == S_BDAT ? "DATA" : "command", s->client_name,
                 s->client_addr);
        smtp_reply(s, R_TIMEOUT, tern.cfg->myhostname);
        /* give the 421 the write timeout to leave, then free */
        bufferevent_set_timeouts(s->bev, NULL, &(struct timeval){10, 0});
        return;
    }
    if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) && s->state != S_CLOSING &&
        s->state != S_DATA && s->state != S_BDAT) {
        /* half-close (shutdown(SHUT_WR), nc -N): answer what was sent, then close */
        s->peer_eof = 1;
        bufferevent_disable(s->bev, EV_READ);
        session_process(s);
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
        if (s->state == S_DATA || s->state == S_BDAT)
            log_info("lost connection after DATA from %s[%s]", s->client_name, s->client_addr);
        session_free(s);
    }
}

/* output_pending - octets not yet handed to the kernel (a TLS filter has
 * its own output and its socket bufferevent's) */
static size_t output_pending(struct smtp_session *s)
{
    size_t n = evbuffer_get_length(bufferevent_get_output(s->bev));
    struct bufferevent *under = bufferevent_get_underlying(s->bev);
    if (under)
        n += evbuffer_get_length(bufferevent_get_output(under));
    return n;
}

/* close_cb - free the session once its last reply (and the TLS close_notify)
 * has left; polls briefly because the socket below a TLS filter has no
 * callback of ours, and gives up after about 5 seconds */
static void close_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct smtp_session *s = arg;
    struct timeval poll = {0, 20000};
    if (output_pending(s) > 0 && s->close_polls++ < 250) {
        evtimer_add(s->close_ev, &poll);
        return;
    }
    if (s->tls && !s->tls_closed) {
        s->tls_closed = 1;
        SSL_shutdown(bufferevent_openssl_get_ssl(s->bev)); /* close_notify */
        evtimer_add(s->close_ev, &poll);
        return;
    }
    session_free(s);
}

/* session_close - stop reading; free once the last reply has been sent */
void session_close(struct smtp_session *s)
{
    if (s->state == S_CLOSING)
        return;
    s->state = S_CLOSING;
    bufferevent_disable(s->bev, EV_READ);
    event_active(s->close_ev, EV_TIMEOUT, 0);
}

void session_free(struct smtp_session *s)
{
    char stats[512] = "";
    size_t o = 0;
    int total = 0;
    for (int v = 0; v < CMD__COUNT; v++) {
        int n = s->ncmd[v] + (v == CMD_UNKNOWN ? s->ncmd_bad[v] : 0);
        if (n == 0)
            continue;
        total += n;
        if (s->ncmd_bad[v] && v != CMD_UNKNOWN)
            o += (size_t)snprintf(stats + o, sizeof(stats) - o, " %s=%d/%d", smtp_cmds[v].name,
                                  n - s->ncmd_bad[v], n);
        else
            o += (size_t)snprintf(stats + o, sizeof(stats) - o, " %s=%d", smtp_cmds[v].name, n);
        if (o >= sizeof(stats))
            o = sizeof(stats) - 1;
    }
    log_info("disconnect from %s[%s]%s commands=%d", s->client_name, s->client_addr, stats, total);
    if (s->ticket)
        s->ticket->session = NULL;
    auth_release(s);
    dns_cancel(s->dns);
    transaction_reset(s);
    smtp_data_free(&s->data);
    if (s->prev)
        s->prev->next = s->next;
    else
        sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    nsessions--;
    event_free(s->close_ev);
    bufferevent_free(s->bev);
    free(s);
}

/* session_greet - the client's name is known: log the connection, say 220 */
static void session_greet(void *arg, const char *name)
{
    struct smtp_session *s = arg;
    s->dns = NULL;
    snprintf(s->client_name, sizeof(s->client_name), "%s", name ? name : "unknown");
    log_info("connect from %s[%s]", s->client_name, s->client_addr);
    s->state = S_CMD;
    if (tern.shutting_down) {
        smtp_reply(s, R_SHUTDOWN, tern.cfg->myhostname);
        return;
    }
    if (nsessions > tern.cfg->smtpd_session_limit) {
        smtp_reply(s, R_TOO_MANY_CONN, tern.cfg->myhostname);
        return;
    }
    smtp_reply(s, R_GREETING, tern.cfg->smtpd_banner);
    session_process(s); /* anything the client sent too early */
}

/* session_bev_setup - callbacks, limits and timeouts of the session's bufferevent */
void session_bev_setup(struct smtp_session *s)
{
    bufferevent_setcb(s->bev, session_readcb, session_writecb, session_eventcb, s);
    bufferevent_setwatermark(s->bev, EV_READ, 0, INPUT_HIGHWAT);
    bufferevent_setwatermark(s->bev, EV_WRITE, 16384, 0);
    struct timeval tmo = {tern.cfg->smtpd_timeout, 0};
    bufferevent_set_timeouts(s->bev, &tmo, &tmo);
    bufferevent_enable(s->bev, EV_READ | EV_WRITE);
    if (s->tls_pending || s->kind == LISTEN_SMTPS)
        bufferevent_openssl_set_allow_dirty_shutdown(s->bev, 1);
}

void smtp_session_start(evutil_socket_t fd, const struct sockaddr *sa, socklen_t len,
                        enum listen_kind kind)
{
    struct smtp_session *s = xcalloc(1, sizeof(*s));
    s->kind = kind;
    memcpy(&s->sa, sa, len < sizeof(s->sa) ? len : sizeof(s->sa));
    net_addr_text(sa, s->client_addr, sizeof(s->client_addr));
    snprintf(s->client_name, sizeof(s->client_name), "unknown");
    s->in_mynetworks = net_cidr_match(tern.cfg->mynetworks, sa, NULL, 0) == 1;
    SSL *ssl = kind == LISTEN_SMTPS ? tls_server_ssl() : NULL;
    if (kind == LISTEN_SMTPS && ssl == NULL) {
        log_warnx("no TLS context for the smtps listener: dropping %s", s->client_addr);
        evutil_closesocket(fd);
        free(s);
        return;
    }
    if (ssl) {
        s->bev = bufferevent_openssl_socket_new(tern.base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                                BEV_OPT_CLOSE_ON_FREE);
        s->tls_pending = 1;
    } else {
        s->bev = bufferevent_socket_new(tern.base, fd, BEV_OPT_CLOSE_ON_FREE);
    }
    s->close_ev = evtimer_new(tern.base, close_cb, s);
    s->state = S_CONNECT;
    s->next = sessions;
    if (sessions)
        sessions->prev = s;
    sessions = s;
    nsessions++;
    session_bev_setup(s);
    if (tern.cfg->smtpd_peername_lookup && !tern.shutting_down)
        s->dns = dns_client_name(sa, session_greet, s);
    else
        session_greet(s, NULL);
}

void smtp_sessions_shutdown(void)
{
    for (struct smtp_session *s = sessions; s; s = s->next)
        if (s->state == S_CMD)
            smtp_reply(s, R_SHUTDOWN, tern.cfg->myhostname);
}

void smtp_sessions_abort(void)
{
    while (sessions)
        session_free(sessions);
}
