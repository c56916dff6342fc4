/* outbound.c - outbound SMTP/LMTP delivery: destinations, MX hosts, connections
 *
 * One `struct dest` per route key ("smtp:example.net", "smtp:[relay]:587",
 * "lmtp:unix:/run/dovecot/lmtp") holds the jobs waiting for it.  A `struct
 * session` is one connection's life: resolve (MX, then addresses; or the
 * bracketed host; or the unix socket), try the addresses in order until one
 * gets as far as MAIL FROM, run the job's transaction, and while the
 * destination has more jobs run them over the same connection
 * (smtp_connection_reuse_count_limit).  Sessions per destination and in total
 * are limited.  When a session cannot reach any server, every job still
 * waiting for that destination fails with the same temporary error (as
 * Postfix's "delivery temporarily suspended") instead of hammering a dead host.
 */
#include "outbound.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "addr.h"
#include "daemon.h"
#include "log.h"
#include "mx.h"
#include "queue_file.h"
#include "smtp_cmd.h"
#include "smtpc.h"
#include "xmalloc.h"

struct dest {
    char key[320];
    struct djob *head, **tail;  /* waiting jobs */
    int active;                 /* sessions */
    struct dest *next;
};

struct session {
    struct dest *d;
    struct djob *job;
    struct route route;         /* of the first job: every job of d has the same next hop */
    char domain[256];
    struct mx_result mx;        /* the hosts to try */
    size_t host_i;
    struct addr_result addrs;
    size_t addr_i;
    int tried;                  /* addresses tried (smtp_mx_address_limit) */
    int reached;                /* some server got as far as a transaction */
    int perm_dns;               /* the last lookup said "no such host" */
    char last_err[600];         /* why the last host failed */
    char last_esc[16];
    int last_code;
    struct smtpc_job sj;
    struct smtpc_rcpt *rc;
    struct smtpc_conn *conn;    /* while a transaction runs, or idle between two */
    int ntx;                    /* transactions on this connection */
    char *auth_user, *auth_pass;
    char *helo, *ca_file;       /* copies: a SIGHUP frees the configuration they came from */
    int retried_fresh;          /* a reused connection broke before MAIL: tried once anew */
    struct session *next;
};

static struct {
    struct event_base *base;
    struct dest *dests;
    struct session *sessions;
    int nsessions;
    int quiescing;
    int pumping;                /* in pump(): destinations are not freed */
    int lookups;                /* DNS lookups outstanding */
    int dns_reinit;             /* dns_nameservers changed: new resolver once lookups == 0 */
    char *nameservers;          /* what the resolver was made with */
    struct event *reinit_ev;
    struct route_maps *maps;
} O;

static double now_d(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + tv.tv_usec / 1e6;
}

/* ---- jobs -------------------------------------------------------------- */

struct djob *djob_new(size_t n)
{
    struct djob *j = xcalloc(1, sizeof(*j));
    j->n = n;
    j->idx = xcalloc(n ? n : 1, sizeof(*j->idx));
    j->res = xcalloc(n ? n : 1, sizeof(*j->res));
    j->fd = -1;
    for (size_t k = 0; k < n; k++)
        djob_set(j, k, 'T', "4.3.0", "not tried");
    snprintf(j->relay, sizeof(j->relay), "none");
    return j;
}

void djob_free(struct djob *j)
{
    if (!j)
        return;
    for (size_t k = 0; k < j->n; k++) {
        for (size_t f = 0; f < j->res[k].nfwd; f++)
            free(j->res[k].fwd[f]);
        free(j->res[k].fwd);
    }
    free(j->res);
    free(j->idx);
    free(j);
}

void djob_set(struct djob *j, size_t k, char status, const char *dsn, const char *fmt, ...)
{
    struct djob_result *r = &j->res[k];
    va_list ap;
    r->status = status;
    snprintf(r->dsn, sizeof(r->dsn), "%s", dsn);
    va_start(ap, fmt);
    vsnprintf(r->text, sizeof(r->text), fmt, ap);
    va_end(ap);
    r->diag[0] = '\0';
}

/* set_all - every recipient of j gets the same result */
static void set_all(struct djob *j, char status, const char *dsn, const char *text, const char *diag)
{
    for (size_t k = 0; k < j->n; k++) {
        djob_set(j, k, status, dsn, "%s", text);
        snprintf(j->res[k].diag, sizeof(j->res[k].diag), "%s", diag ? diag : "");
    }
}

/* job_done - hand the results back (the job belongs to the caller again) */
static void job_done(struct djob *j)
{
    if (j->t_begin == 0)
        j->t_begin = now_d();
    if (j->t_ready == 0)
        j->t_ready = j->t_begin;
    j->t_end = now_d();
    j->done(j);
}

/* ---- the resolver --------------------------------------------------------- */

/* reinit_cb - dns_nameservers changed and no lookup is outstanding: a new resolver */
static void reinit_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    if (O.lookups > 0 || !O.dns_reinit)
        return;
    O.dns_reinit = 0;
    free(O.nameservers);
    O.nameservers = xstrdup(tern.cfg->dns_nameservers);
    if (mx_init(O.base, O.nameservers) < 0)
        log_warnx("outbound DNS resolver unavailable: MX lookups will fail temporarily");
    else
        log_info("outbound DNS resolver: %s", O.nameservers[0] ? O.nameservers : "/etc/resolv.conf");
}

static void lookup_done(void)
{
    if (--O.lookups == 0 && O.dns_reinit)
        event_active(O.reinit_ev, EV_TIMEOUT, 0);
}

void outbound_reload(void)
{
    if (O.nameservers && strcmp(O.nameservers, tern.cfg->dns_nameservers) != 0) {
        O.dns_reinit = 1;
        if (O.lookups == 0)
            event_active(O.reinit_ev, EV_TIMEOUT, 0);
    }
}

/* ---- destinations -------------------------------------------------------- */

static struct dest *dest_get(const char *key)
{
    for (struct dest *d = O.dests; d; d = d->next)
        if (strcmp(d->key, key) == 0)
            return d;
    struct dest *d = xcalloc(1, sizeof(*d));
    snprintf(d->key, sizeof(d->key), "%s", key);
    d->tail = &d->head;
    d->next = O.dests;
    O.dests = d;
    return d;
}

static struct djob *dest_pop(struct dest *d)
{
    struct djob *j = d->head;
    if (j) {
        d->head = j->next;
        if (!d->head)
            d->tail = &d->head;
        j->next = NULL;
    }
    return j;
}

/* dest_gc - forget an idle destination with nothing waiting */
static void dest_gc(struct dest *d)
{
    if (d->active || d->head || O.pumping)
        return;
    for (struct dest **pp = &O.dests; *pp; pp = &(*pp)->next)
        if (*pp == d) {
            *pp = d->next;
            free(d);
            return;
        }
}

/* ---- sessions ------------------------------------------------------------ */

static void session_start(struct dest *d, struct djob *j);
static void try_next(struct session *s);
static void smtp_done(void *arg, struct smtpc_job *sj);

/* pump - start sessions for waiting jobs while the limits allow */
static void pump(void)
{
    if (O.quiescing)
        return;
    long long per = tern.cfg->smtp_destination_concurrency_limit;
    long long total = tern.cfg->smtp_connection_limit;
    if (per < 1)
        per = 1;
    if (total < 1)
        total = 1;
    if (O.pumping)
        return; /* the outer pump() goes on */
    O.pumping = 1;
    int progress = 1;
    while (progress && O.nsessions < total) {
        progress = 0;
        for (struct dest *d = O.dests; d && O.nsessions < total; d = d->next)
            if (d->head && d->active < per) {
                session_start(d, dest_pop(d));
                progress = 1;
            }
    }
    O.pumping = 0;
    struct dest *next;
    for (struct dest *d = O.dests; d; d = next) {
        next = d->next;
        dest_gc(d);
    }
}

static void session_free(struct session *s)
{
    for (struct session **pp = &O.sessions; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    O.nsessions--;
    s->d->active--;
    dest_gc(s->d);
    free(s->rc);
    free(s->auth_user);
    free(s->auth_pass);
    free(s->helo);
    free(s->ca_file);
    free(s);
}

/* session_end - the session is over: release the connection, start what waits */
static void session_end(struct session *s)
{
    if (s->conn)
        smtpc_release(s->conn);
    s->conn = NULL;
    session_free(s);
    pump();
}

/* suspend_dest - no server could be reached: fail what waits for d the same way */
static void suspend_dest(struct dest *d, const char *dsn, const char *why)
{
    struct djob *j;
    char text[700];
    snprintf(text, sizeof(text), "delivery temporarily suspended: %s", why);
    while ((j = dest_pop(d)) != NULL) {
        j->t_begin = now_d();
        set_all(j, 'T', dsn, text, NULL);
        job_done(j);
    }
}

/* fail_job - the current job failed before any server was reached */
static void fail_job(struct session *s, char status, const char *dsn, const char *text)
{
    struct djob *j = s->job;
    s->job = NULL;
    set_all(j, status, dsn, text, NULL);
    if (status == 'T')
        suspend_dest(s->d, dsn, text);
    job_done(j);
    session_end(s);
}

/* split_reply - "4.4.1 connect to ...": the enhanced code (or a default from code) and the text */
static const char *split_reply(const char *reply, int code, char *esc, size_t escsz)
{
    const char *p = reply;
    if (p[0] >= '2' && p[0] <= '5' && p[1] == '.') {
        size_t n = strspn(p, "0123456789.");
        if (n < escsz && n >= 5) {
            memcpy(esc, p, n);
            esc[n] = '\0';
            p += n;
            while (*p == ' ')
                p++;
            return p;
        }
    }
    snprintf(esc, escsz, "%d.0.0", code >= 500 ? 5 : code >= 400 ? 4 : 2);
    return p;
}

/* lookup_addr_of - next MX host: look up its addresses (or take the IP literal / unix path) */
static void addr_cb(void *arg, const struct addr_result *r);

static int fill_literal(const char *host, struct addr_result *r)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)&r->addrs[0];
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&r->addrs[0];
    memset(r, 0, sizeof(*r));
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        r->naddrs = 1;
        return 1;
    }
    memset(r, 0, sizeof(*r));
    if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        r->naddrs = 1;
        return 1;
    }
    return 0;
}

static void next_host(struct session *s)
{
    if (s->host_i >= s->mx.nhosts || s->tried >= tern.cfg->smtp_mx_address_limit) {
        /* every server failed: the last reason counts */
        if (!s->reached && s->perm_dns && s->tried == 0)
            fail_job(s, 'P', "5.4.4", s->last_err);
        else if (s->last_code >= 500)
            fail_job(s, 'P', s->last_esc[0] == '5' ? s->last_esc : "5.0.0", s->last_err);
        else
            fail_job(s, 'T', s->last_esc[0] == '4' ? s->last_esc : "4.4.1",
                     s->last_err[0] ? s->last_err : "no server to try");
        return;
    }
    const char *host = s->mx.hosts[s->host_i].name;
    s->addr_i = 0;
    if (s->route.hop.unix_sock) {
        memset(&s->addrs, 0, sizeof(s->addrs));
        s->addrs.naddrs = 1; /* the path is filled in at connect */
        try_next(s);
    } else if (fill_literal(host, &s->addrs)) {
        try_next(s);
    } else {
        O.lookups++;
        addr_lookup(host, addr_cb, s);
    }
}

static void addr_cb(void *arg, const struct addr_result *r)
{
    struct session *s = arg;
    const char *host = s->mx.hosts[s->host_i].name;
    lookup_done();
    if (r->status != 0 || r->naddrs == 0) {
        s->perm_dns = r->status == 1;
        snprintf(s->last_esc, sizeof(s->last_esc), "%s", r->status == 1 ? "5.4.4" : "4.4.3");
        snprintf(s->last_err, sizeof(s->last_err),
                 "Host or domain name not found. Name service error for name=%s type=A: %s", host,
                 r->status == 1 ? "Host not found" : "Host not found, try again");
        s->last_code = 0;
        s->host_i++;
        next_host(s);
        return;
    }
    s->perm_dns = 0;
    s->addrs = *r;
    try_next(s);
}

/* fill_job - the smtpc job for s->job over address a (the connection parameters are used
 * only when a new connection is made) */
static void fill_job(struct session *s)
{
    struct djob *j = s->job;
    const struct qenv *env = j->env;
    struct smtpc_job *sj = &s->sj;
    free(s->rc);
    s->rc = xcalloc(j->n, sizeof(*s->rc));
    for (size_t k = 0; k < j->n; k++) {
        const struct qrcpt *q = &env->rcpts[j->idx[k]];
        s->rc[k].addr = q->addr;
        s->rc[k].notify = q->notify;
        s->rc[k].orcpt_type = q->orcpt ? (q->orcpt_type[0] ? q->orcpt_type : "rfc822") : NULL;
        s->rc[k].orcpt = q->orcpt;
    }
    sj->sender = env->sender;
    sj->rcpts = s->rc;
    sj->nrcpt = j->n;
    sj->body_8bit = env->body == BODY_8BITMIME;
    sj->smtputf8 = env->smtputf8;
    sj->ret = env->ret;
    sj->envid = env->envid;
    sj->fd = j->fd;
    sj->off = env->data_off;
    off_t end = lseek(j->fd, 0, SEEK_END);
    sj->len = end > env->data_off ? end - env->data_off : 0;
    sj->reuse = tern.cfg->smtp_connection_reuse_count_limit > 1;
}

/* try_next - connect to the next address of the current host */
static void try_next(struct session *s)
{
    if (O.quiescing) {
        fail_job(s, 'T', "4.3.2", "delivery interrupted: the mail system is stopping");
        return;
    }
    if (s->addr_i >= s->addrs.naddrs || s->tried >= tern.cfg->smtp_mx_address_limit) {
        s->host_i++;
        next_host(s);
        return;
    }
    struct smtpc_job *sj = &s->sj;
    const char *host = s->mx.hosts[s->host_i].name;
    memset(sj, 0, sizeof(*sj));
    if (s->route.hop.unix_sock) {
        struct sockaddr_un *sun = (struct sockaddr_un *)&sj->addr;
        sun->sun_family = AF_UNIX;
        snprintf(sun->sun_path, sizeof(sun->sun_path), "%s", s->route.hop.host);
        sj->addrlen = sizeof(*sun);
        snprintf(sj->host, sizeof(sj->host), "localhost");
    } else {
        int port = s->route.hop.port ? s->route.hop.port
                   : s->route.kind == ROUTE_LMTP ? 24 : (int)tern.cfg->smtp_port;
        struct sockaddr_storage *a = &s->addrs.addrs[s->addr_i];
        sj->addr = *a;
        if (a->ss_family == AF_INET6) {
            ((struct sockaddr_in6 *)&sj->addr)->sin6_port = htons((uint16_t)port);
            sj->addrlen = sizeof(struct sockaddr_in6);
        } else {
            ((struct sockaddr_in *)&sj->addr)->sin_port = htons((uint16_t)port);
            sj->addrlen = sizeof(struct sockaddr_in);
        }
        snprintf(sj->host, sizeof(sj->host), "%s", host);
    }
    s->addr_i++;
    s->tried++;
    sj->lmtp = s->route.kind == ROUTE_LMTP;
    int wrapper_verify = 0;
    sj->tls = route_tls(outbound_maps(), tern.cfg, s->domain, &s->route, &wrapper_verify);
    sj->tls_verify = wrapper_verify;
    sj->ca_file = s->ca_file;
    sj->auth_user = s->auth_user;
    sj->auth_pass = s->auth_pass;
    sj->helo_name = s->helo;
    sj->timeout_scale = 1;
    fill_job(s);
    s->ntx = 1;
    s->conn = smtpc_start(O.base, sj, smtp_done, s);
}

/* describe_status - the attempt's failure as Postfix words it: a message made here names the
 * server as host[ip]:port; a reply of the server is "host X said: ..." */
static void describe_status(const struct smtpc_job *sj, char *out, size_t outsz, char *esc)
{
    char e[16];
    const char *text = split_reply(sj->reply, sj->status, e, sizeof(e));
    const char *h = sj->host[0] ? strstr(text, sj->host) : NULL;
    if (h) {
        size_t hl = strlen(sj->host);
        if (h[hl] == '[') /* already "host[ip]" */
            snprintf(out, outsz, "%s", text);
        else
            snprintf(out, outsz, "%.*s%s%s", (int)(h - text), text, sj->peer_addr, h + hl);
    } else {
        snprintf(out, outsz, "host %s said: %d %s%s%s", sj->peer_addr, sj->status, e, text[0] ? " " : "",
                 text);
    }
    if (esc)
        snprintf(esc, 16, "%s", e);
}

/* rcpt_result - the smtpc outcome for recipient k into the job */
static void rcpt_result(struct session *s, size_t k)
{
    struct smtpc_job *sj = &s->sj;
    struct djob *j = s->job;
    const struct smtpc_rcpt *r = &sj->rcpts[k];
    struct djob_result *res = &j->res[k];
    if (r->code != 0) {
        char esc[16];
        if (r->esc[0])
            snprintf(esc, sizeof(esc), "%s", r->esc);
        else
            snprintf(esc, sizeof(esc), "%d.0.0", r->code / 100);
        char st = r->code / 100 == 2 ? 'O' : r->code / 100 == 5 ? 'P' : 'T';
        if (st == 'O')
            djob_set(j, k, st, esc, "%d %s%s%s", r->code, r->esc, r->esc[0] ? " " : "", r->text);
        else
            djob_set(j, k, st, esc, "host %s said: %d %s%s%s", sj->peer_addr, r->code, r->esc,
                     r->esc[0] ? " " : "", r->text);
        snprintf(res->diag, sizeof(res->diag), "%d %s%s%s", r->code, r->esc, r->esc[0] ? " " : "",
                 r->text);
        return;
    }
    /* no reply of its own: the attempt's status applies */
    char esc[16] = "4.4.2", text[600] = "lost connection";
    int code = sj->status ? sj->status : 451;
    if (sj->status)
        describe_status(sj, text, sizeof(text), esc);
    djob_set(j, k, code >= 500 ? 'P' : 'T', esc, "%s", text);
    snprintf(res->diag, sizeof(res->diag), "%d %s %s", code, esc,
             split_reply(sj->status ? sj->reply : "lost connection", code, esc, sizeof(esc)));
}

/* reused_broke - a transaction on a reused connection failed with the connection lost
 * before any reply to MAIL FROM */
static int reused_broke(const struct session *s, const struct smtpc_job *sj)
{
    if (s->ntx < 2 || s->retried_fresh || sj->status == 0 || sj->status / 100 != 4 ||
        strstr(sj->reply, "lost connection") == NULL)
        return 0;
    for (size_t k = 0; k < sj->nrcpt; k++)
        if (sj->rcpts[k].code != 0)
            return 0;
    return strstr(sj->reply, "MAIL FROM") != NULL;
}

/* smtp_done - a transaction (or connection attempt) is over */
static void smtp_done(void *arg, struct smtpc_job *sj)
{
    struct session *s = arg;
    struct djob *j = s->job;
    s->conn = sj->reusable ? s->conn : NULL;
    if (sj->status && sj->session_failed) {
        /* this server did not get as far as a transaction: try the next one */
        describe_status(sj, s->last_err, sizeof(s->last_err), s->last_esc);
        s->last_code = sj->status;
        if (j->t_begin == 0)
            j->t_begin = sj->t_begin;
        try_next(s);
        return;
    }
    if (reused_broke(s, sj)) {
        /* the idle connection went away under us (the peer closed after its last 250):
         * not this message's fault, so once more on a fresh connection */
        s->retried_fresh = 1;
        s->conn = NULL;
        s->host_i = 0;
        s->tried = 0;
        s->ntx = 0;
        next_host(s);
        return;
    }
    s->reached = 1;
    snprintf(j->relay, sizeof(j->relay), "%s", sj->peer_addr);
    snprintf(j->remote_mta, sizeof(j->remote_mta), "%s", sj->host);
    j->peer_dsn = sj->peer_dsn && !sj->lmtp;
    if (j->t_begin == 0)
        j->t_begin = sj->t_begin;
    j->t_ready = sj->t_ready;
    for (size_t k = 0; k < j->n; k++)
        rcpt_result(s, k);
    s->job = NULL;
    job_done(j);
    /* the same connection for the next job of this destination */
    struct djob *next = NULL;
    if (s->conn && !O.quiescing && s->ntx < tern.cfg->smtp_connection_reuse_count_limit)
        next = dest_pop(s->d);
    if (next == NULL) {
        session_end(s);
        return;
    }
    s->job = next;
    s->retried_fresh = 0;
    next->t_begin = now_d();
    fill_job(s);
    s->ntx++;
    if (smtpc_next(s->conn, sj, smtp_done, s) < 0) {
        /* it went away while idle: a fresh connection from the first host */
        s->conn = NULL;
        s->host_i = 0;
        s->tried = 0;
        next_host(s);
    }
}

/* mx_cb - the MX hosts of the destination domain */
static void mx_cb(void *arg, const struct mx_result *r)
{
    struct session *s = arg;
    const char *dom = s->route.hop.host;
    lookup_done();
    switch (r->status) {
    case MX_NULL_MX:
        fail_job(s, 'P', "5.1.10",
                 "Domain does not accept mail (nullMX)");
        return;
    case MX_NXDOMAIN: {
        char t[600];
        snprintf(t, sizeof(t), "Host or domain name not found. Name service error for name=%s "
                 "type=MX: Host not found", dom);
        fail_job(s, 'P', "5.4.4", t);
        return;
    }
    case MX_TEMPFAIL: {
        char t[600];
        snprintf(t, sizeof(t), "Host or domain name not found. Name service error for name=%s "
                 "type=MX: Host not found, try again", dom);
        fail_job(s, 'T', "4.4.3", t);
        return;
    }
    default:
        break;
    }
    s->mx = *r;
    /* this host is an MX of the domain: only better hosts may take the mail (RFC 5321
     * 5.1); hosts of our preference or worse are dropped, and with none left it loops */
    for (size_t i = 0; i < s->mx.nhosts; i++)
        if (strcasecmp(s->mx.hosts[i].name, tern.cfg->myhostname) == 0) {
            int mine = s->mx.hosts[i].pref;
            size_t k = 0;
            for (size_t h = 0; h < s->mx.nhosts; h++)
                if (s->mx.hosts[h].pref < mine)
                    s->mx.hosts[k++] = s->mx.hosts[h];
            s->mx.nhosts = k;
            if (k == 0) {
                char t[600];
                snprintf(t, sizeof(t), "mail for %s loops back to myself", dom);
                fail_job(s, 'P', "5.4.6", t);
                return;
            }
            break;
        }
    next_host(s);
}

/* session_start - a new connection for j: resolve, then try the servers */
static void session_start(struct dest *d, struct djob *j)
{
    struct session *s = xcalloc(1, sizeof(*s));
    s->d = d;
    s->job = j;
    s->route = j->route;
    snprintf(s->domain, sizeof(s->domain), "%s", j->domain);
    s->next = O.sessions;
    O.sessions = s;
    O.nsessions++;
    d->active++;
    j->t_begin = now_d();
    s->helo = xstrdup(tern.cfg->smtp_helo_name);
    s->ca_file = tern.cfg->smtp_tls_CAfile[0] ? xstrdup(tern.cfg->smtp_tls_CAfile) : NULL;
    const char *user, *pass;
    if (route_sasl(outbound_maps(), &s->route, s->domain, &user, &pass)) {
        s->auth_user = xstrdup(user);
        s->auth_pass = xstrdup(pass);
    }
    if (s->route.hop.mx) {
        O.lookups++;
        mx_lookup(s->route.hop.host, mx_cb, s);
        return;
    }
    s->mx.status = MX_OK;
    s->mx.nhosts = 1;
    snprintf(s->mx.hosts[0].name, sizeof(s->mx.hosts[0].name), "%s", s->route.hop.host);
    next_host(s);
}

/* ---- interface ------------------------------------------------------------ */

const struct route_maps *outbound_maps(void)
{
    return O.maps;
}

int outbound_load_maps(char *err, size_t errsz)
{
    struct route_maps *m = route_maps_load(tern.cfg, err, errsz);
    if (m == NULL)
        return -1;
    route_maps_free(O.maps);
    O.maps = m;
    return 0;
}

int outbound_init(struct event_base *base)
{
    O.base = base;
    O.quiescing = 0;
    O.nameservers = xstrdup(tern.cfg->dns_nameservers);
    O.reinit_ev = event_new(base, -1, 0, reinit_cb, NULL);
    return mx_init(base, O.nameservers);
}

void outbound_submit(struct djob *j)
{
    struct dest *d = dest_get(j->route.key);
    j->t_queued = now_d();
    j->next = NULL;
    *d->tail = j;
    d->tail = &j->next;
    pump();
}

void outbound_quiesce(void)
{
    O.quiescing = 1;
}

int outbound_busy(void)
{
    /* a lookup in progress does not hold up a shutdown: try_next stops there */
    for (struct session *s = O.sessions; s; s = s->next)
        if (s->conn)
            return 1;
    return 0;
}

void outbound_shutdown(void)
{
    O.quiescing = 1;
    while (O.sessions) {
        struct session *s = O.sessions;
        if (s->conn)
            smtpc_cancel(s->conn);
        s->conn = NULL;
        djob_free(s->job);
        s->job = NULL;
        session_free(s);
    }
    while (O.dests) {
        struct dest *d = O.dests;
        struct djob *j;
        while ((j = dest_pop(d)) != NULL)
            djob_free(j);
        O.dests = d->next;
        free(d);
    }
    smtpc_shutdown();
    mx_shutdown();
    if (O.reinit_ev)
        event_free(O.reinit_ev);
    O.reinit_ev = NULL;
    free(O.nameservers);
    O.nameservers = NULL;
    route_maps_free(O.maps);
    O.maps = NULL;
}
