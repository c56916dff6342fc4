/* smtp_auth.c - SMTP AUTH (RFC 4954): PLAIN and LOGIN, password checks off
 * the event loop, failure delays, per-session and per-address limits */
#include "auth_db.h"
#include "daemon.h"
#include "log.h"
#include "sasl.h"
#include "smtp_internal.h"
#include "work.h"
#include "xmalloc.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define IPFAIL_SLOTS 4096

/* a password check in flight; outlives its session if the client leaves */
struct auth_job {
    struct smtp_session *s;     /* NULL once the session is gone */
    char user[SASL_FIELD_MAX + 1];
    char password[SASL_FIELD_MAX + 1];
    char *hash;                 /* copy of the stored hash, NULL for unknown users */
    int ok;
};

/* failures per client address within smtpd_auth_client_window */
static struct ipfail {
    char ip[64];
    int count;
    time_t start;
} ipfail[IPFAIL_SLOTS];

/* ipfail_find - the entry of ip (expired ones are dropped on the way); with
 * create, a new one in a free slot or in place of the oldest */
static struct ipfail *ipfail_find(const char *ip, int create)
{
    time_t now = time(NULL), window = (time_t)tern.cfg->smtpd_auth_client_window;
    struct ipfail *slot = NULL;
    for (size_t i = 0; i < IPFAIL_SLOTS; i++) {
        struct ipfail *f = &ipfail[i];
        if (f->ip[0] && now - f->start > window)
            f->ip[0] = '\0';
        if (f->ip[0] && strcmp(f->ip, ip) == 0)
            return f;
        if (f->ip[0] == '\0') {
            if (slot == NULL || slot->ip[0])
                slot = f;
        } else if (slot == NULL || (slot->ip[0] && f->start < slot->start)) {
            slot = f;
        }
    }
    if (!create)
        return NULL;
    memset(slot, 0, sizeof(*slot));
    snprintf(slot->ip, sizeof(slot->ip), "%s", ip);
    slot->start = now;
    return slot;
}

static int ip_blocked(const struct smtp_session *s)
{
    if (tern.cfg->smtpd_auth_client_limit <= 0)
        return 0;
    struct ipfail *f = ipfail_find(s->client_addr, 0);
    return f && f->count >= tern.cfg->smtpd_auth_client_limit;
}

int auth_offered(const struct smtp_session *s)
{
    return tern.auth_db != NULL && (s->tls || !tern.cfg->smtpd_tls_auth_only);
}

/* auth_end - the exchange is over (answered): back to commands */
static void auth_end(struct smtp_session *s)
{
    s->auth_step = 0;
    explicit_bzero(s->auth_login, sizeof(s->auth_login));
    if (s->state == S_AUTH || s->state == S_AUTH_WAIT)
        s->state = S_CMD;
}

static void auth_run(void *arg)
{
    struct auth_job *j = arg;
    j->ok = auth_hash_verify(j->hash, j->password);
    explicit_bzero(j->password, sizeof(j->password));
}

/* auth_fail_reply - after the delay: 535, and 421 at the session limit */
static void auth_fail_reply(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct smtp_session *s = arg;
    auth_end(s);
    smtp_reply(s, R_AUTH_FAILED);
    if (s->auth_failures >= tern.cfg->smtpd_auth_failure_limit && s->state != S_CLOSING) {
        log_info("too many AUTH failures from %s[%s]", s->client_name, s->client_addr);
        smtp_reply(s, R_TOO_MANY_ERRORS, tern.cfg->myhostname);
    }
    session_process(s);
}

static void auth_done(void *arg)
{
    struct auth_job *j = arg;
    struct smtp_session *s = j->s;
    free(j->hash);
    if (s == NULL) {
        free(j);
        return;
    }
    s->auth_job = NULL;
    if (j->ok) {
        snprintf(s->auth_user, sizeof(s->auth_user), "%s", j->user);
        free(j);
        auth_end(s);
        smtp_reply(s, R_AUTH_OK);
        session_process(s);
        return;
    }
    char u[300];
    log_printable(u, sizeof(u), j->user, sizeof(j->user), 1);
    free(j);
    s->auth_failures++;
    struct ipfail *f = ipfail_find(s->client_addr, 1);
    f->count++;
    /* fail2ban's postfix filter matches this line */
    log_warnx("%s[%s]: SASL %s authentication failed: authentication failure, sasl_username=%s",
              s->client_name, s->client_addr, s->auth_mech, u);
    if (s->auth_delay == NULL)
        s->auth_delay = evtimer_new(tern.base, auth_fail_reply, s);
    long ms = 500L * (s->auth_failures < 8 ? s->auth_failures : 8);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(s->auth_delay, &tv);
}

/* auth_check - hand user and password to a pool thread */
static void auth_check(struct smtp_session *s, const char *user, const char *password)
{
    struct auth_job *j = xcalloc(1, sizeof(*j));
    j->s = s;
    snprintf(j->user, sizeof(j->user), "%s", user);
    snprintf(j->password, sizeof(j->password), "%s", password);
    const char *h = auth_db_hash(tern.auth_db, user);
    j->hash = h ? xstrdup(h) : NULL;
    s->auth_job = j;
    s->state = S_AUTH_WAIT;
    work_submit(auth_run, auth_done, j);
}

/* decode - base64 response into out; replies 501 and ends the exchange on error */
static long decode(struct smtp_session *s, const char *b64, unsigned char *out, size_t outsz)
{
    long n = sasl_b64_decode(b64, strlen(b64), out, outsz);
    if (n < 0) {
        auth_end(s);
        smtp_reply(s, R_AUTH_BADB64);
    }
    return n;
}

static void auth_plain(struct smtp_session *s, const char *b64)
{
    unsigned char msg[3 * (SASL_FIELD_MAX + 1) + 8];
    char user[SASL_FIELD_MAX + 1], pw[SASL_FIELD_MAX + 1];
    long n = decode(s, b64, msg, sizeof(msg));
    if (n < 0)
        return;
    if (sasl_plain_parse(msg, (size_t)n, user, sizeof(user), pw, sizeof(pw)) < 0) {
        explicit_bzero(msg, sizeof(msg));
        auth_end(s);
        smtp_reply(s, R_AUTH_BADB64);
        return;
    }
    explicit_bzero(msg, sizeof(msg));
    auth_check(s, user, pw);
    explicit_bzero(pw, sizeof(pw));
}

/* auth_login_step - LOGIN: user name (step 1) or password (step 2) */
static void auth_login_step(struct smtp_session *s, const char *b64)
{
    unsigned char msg[SASL_FIELD_MAX + 8];
    char field[SASL_FIELD_MAX + 1];
    long n = decode(s, b64, msg, sizeof(msg));
    if (n < 0)
        return;
    int bad = sasl_login_field(msg, (size_t)n, s->auth_step == 1, field, sizeof(field)) < 0;
    explicit_bzero(msg, sizeof(msg));
    if (bad) {
        auth_end(s);
        smtp_reply(s, R_AUTH_BADB64);
        return;
    }
    if (s->auth_step == 1) {
        snprintf(s->auth_login, sizeof(s->auth_login), "%s", field);
        s->auth_step = 2;
        s->state = S_AUTH;
        smtp_reply(s, R_AUTH_CHALLENGE, "UGFzc3dvcmQ6"); /* "Password:" */
        return;
    }
    auth_check(s, s->auth_login, field);
    explicit_bzero(field, sizeof(field));
}

void cmd_auth(struct smtp_session *s, const char *args)
{
    if (tern.auth_db == NULL) {
        smtp_reply(s, R_NO_AUTH);
        return;
    }
    if (!s->tls && tern.cfg->smtpd_tls_auth_only) {
        smtp_reply(s, R_AUTH_ENCRYPT);
        return;
    }
    if (!s->esmtp) {
        smtp_reply(s, R_BAD_SEQ, "send EHLO first");
        return;
    }
    if (s->auth_user[0]) {
        smtp_reply(s, R_BAD_SEQ, "already authenticated");
        return;
    }
    if (s->in_mail) {
        smtp_reply(s, R_BAD_SEQ, "MAIL transaction in progress");
        return;
    }
    if (ip_blocked(s)) {
        log_warnx("%s[%s]: AUTH refused: too many failures from this address", s->client_name,
                  s->client_addr);
        smtp_reply(s, R_AUTH_TEMP);
        return;
    }
    char mech[21]; /* SASL mechanism names have at most 20 characters (RFC 4422 3.1) */
    size_t ml = strcspn(args, " ");
    if (ml == 0 || ml >= sizeof(mech)) {
        smtp_reply(s, R_SYNTAX, "AUTH mechanism [initial-response]");
        return;
    }
    memcpy(mech, args, ml);
    mech[ml] = '\0';
    const char *initial = args[ml] == ' ' ? args + ml + 1 : NULL;
    if (initial && (*initial == '\0' || strchr(initial, ' '))) {
        smtp_reply(s, R_SYNTAX, "AUTH mechanism [initial-response]");
        return;
    }
    if (strcasecmp(mech, "PLAIN") == 0) {
        snprintf(s->auth_mech, sizeof(s->auth_mech), "PLAIN");
        if (initial)
            auth_plain(s, initial);
        else {
            s->state = S_AUTH;
            smtp_reply(s, R_AUTH_CHALLENGE, "");
        }
    } else if (strcasecmp(mech, "LOGIN") == 0) {
        snprintf(s->auth_mech, sizeof(s->auth_mech), "LOGIN");
        s->auth_step = 1;
        if (initial)
            auth_login_step(s, initial);
        else {
            s->state = S_AUTH;
            smtp_reply(s, R_AUTH_CHALLENGE, "VXNlcm5hbWU6"); /* "Username:" */
        }
    } else {
        smtp_reply(s, R_AUTH_MECH);
    }
}

int auth_continue(struct smtp_session *s)
{
    char line[SASL_LINE_MAX + 2];
    long n = session_read_line(s, line, sizeof(line));
    if (n == -1)
        return 0;
    if (n == -2) { /* over-long or malformed: answered; the exchange is over */
        auth_end(s);
        return 1;
    }
    if (strcmp(line, "*") == 0) {
        auth_end(s);
        smtp_reply(s, R_AUTH_ABORTED);
        return 1;
    }
    s->state = S_CMD; /* until the next step says otherwise */
    if (strcmp(s->auth_mech, "PLAIN") == 0)
        auth_plain(s, line);
    else
        auth_login_step(s, line);
    explicit_bzero(line, sizeof(line));
    return 1;
}

void auth_release(struct smtp_session *s)
{
    if (s->auth_job)
        s->auth_job->s = NULL;
    s->auth_job = NULL;
    if (s->auth_delay)
        event_free(s->auth_delay);
    s->auth_delay = NULL;
}
