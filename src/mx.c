/* mx.c - asynchronous MX and A/AAAA lookups with libunbound inside the libevent loop
 *
 * One ub_ctx resolves in a background thread (ub_ctx_async(ctx, 1)); its answers
 * arrive on ub_fd(), which an EV_READ|EV_PERSIST event hands to ub_process(), so
 * every callback runs in the event loop thread.  Results that are known before a
 * query is sent (bad name, query not started) are delivered through a zero
 * timeout event of the request, never inside mx_lookup()/addr_lookup().
 */
#include "mx.h"
#include "config.h"
#include "log.h"
#include "xmalloc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unbound.h>
#include <unistd.h>

#if defined(__OpenBSD__) || defined(__FreeBSD__) || defined(__NetBSD__) || defined(__APPLE__) || \
    (defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 36)))
#define MX_HAVE_ARC4RANDOM 1
#endif

#define RR_A 1
#define RR_MX 15
#define RR_AAAA 28
#define RR_CLASS_IN 1
#define RCODE_NOERROR 0

enum req_kind { REQ_MX, REQ_ADDR };
enum q_outcome { Q_DATA, Q_NODATA, Q_NXDOMAIN, Q_TEMPFAIL };

struct mx_req;

struct mx_query {
    struct mx_req *req;
    int id;         /* unbound's async id */
    int active;     /* sent, answer not yet processed */
};

struct mx_req {
    struct mx_req *prev, *next;     /* the outstanding list */
    enum req_kind kind;
    char name[256];
    mx_fn mx_cb;
    addr_fn addr_cb;
    void *arg;
    struct mx_query q[2];           /* MX: q[0]; address: q[0] AAAA, q[1] A */
    int pending;                    /* queries still in flight */
    struct event *defer;            /* delivers results decided without the network */
    struct mx_result mx;
    enum q_outcome out6, out4;
    struct sockaddr_storage v6[MX_ADDRS_MAX], v4[MX_ADDRS_MAX];
    size_t n6, n4;
};

struct mx_rec {
    int pref;
    char name[256];
};

static struct event_base *mxbase;
static struct event_base *deferbase;  /* for answers made without a resolver (kept by destroy) */
static struct ub_ctx *ctx;
static struct event *ub_ev;
static struct mx_req *outstanding;
static int in_process;      /* inside ub_process(): ub_ctx_delete() must wait */
static int closing;         /* mx_shutdown() ran inside ub_process() */

/* rnd_below - uniform random number in [0, n) */
static uint32_t rnd_below(uint32_t n)
{
#ifdef MX_HAVE_ARC4RANDOM
    return arc4random_uniform(n);
#else
    static uint64_t state;
    if (state == 0) {
        int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
        if (fd < 0 || read(fd, &state, sizeof(state)) != (ssize_t)sizeof(state))
            state = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
        if (fd >= 0)
            close(fd);
        state |= 1;
    }
    state ^= state << 13;   /* xorshift64 */
    state ^= state >> 7;
    state ^= state << 17;
    return (uint32_t)(state % n);
#endif
}

/* host_ok - a host name we are willing to connect to: LDH plus '_', <= 253 */
static int host_ok(const char *n)
{
    size_t len = strlen(n);
    if (len == 0 || len > 253 || n[0] == '.' || strstr(n, "..") != NULL)
        return 0;
    for (; *n; n++)
        if (!((*n >= 'a' && *n <= 'z') || (*n >= 'A' && *n <= 'Z') || (*n >= '0' && *n <= '9') ||
              *n == '-' || *n == '.' || *n == '_'))
            return 0;
    return 1;
}

/* norm_name - copy src to dst lower-cased without a trailing dot; 0 if not a valid host name */
static int norm_name(char *dst, size_t dstsz, const char *src)
{
    size_t len = strlen(src);
    if (len > 0 && src[len - 1] == '.')
        len--;
    if (len >= dstsz)
        return 0;
    for (size_t i = 0; i < len; i++)
        dst[i] = (src[i] >= 'A' && src[i] <= 'Z') ? (char)(src[i] - 'A' + 'a') : src[i];
    dst[len] = '\0';
    return host_ok(dst);
}

/* fwd_addr - "ip", "ip@port", "ip:port", "[v6]", "[v6]:port" to unbound's "ip[@port]"; 0 if malformed */
static int fwd_addr(const char *item, char *out, size_t outsz)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *port = NULL;
    const char *end;
    if (item[0] == '[') {
        end = strchr(item, ']');
        if (end == NULL || (end[1] != '\0' && end[1] != ':'))
            return 0;
        port = end[1] == ':' ? end + 2 : NULL;
        item++;
    } else if ((end = strchr(item, '@')) != NULL) {
        port = end + 1;
    } else if ((end = strchr(item, ':')) != NULL && strchr(end + 1, ':') == NULL) {
        port = end + 1;     /* exactly one ':': IPv4 with a port */
    } else {
        end = item + strlen(item);
    }
    if ((size_t)(end - item) >= sizeof(host))
        return 0;
    memcpy(host, item, (size_t)(end - item));
    host[end - item] = '\0';
    unsigned char bin[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, host, bin) != 1 && inet_pton(AF_INET6, host, bin) != 1)
        return 0;
    if (port == NULL)
        return snprintf(out, outsz, "%s", host) < (int)outsz;
    char *stop;
    errno = 0;
    long p = strtol(port, &stop, 10);
    if (*port < '0' || *port > '9' || *stop != '\0' || errno != 0 || p < 1 || p > 65535)
        return 0;
    return snprintf(out, outsz, "%s@%ld", host, p) < (int)outsz;
}

/* add_forwarders - every server of the LIST as a forwarder for "."; -1 if none is usable */
static int add_forwarders(const char *nameservers)
{
    const char *p = nameservers;
    char item[128], addr[128];
    int n = 0;
    while (config_list_next(&p, item, sizeof(item)) > 0) {
        if (!fwd_addr(item, addr, sizeof(addr)) || ub_ctx_set_fwd(ctx, addr) != 0) {
            log_warnx("dns_nameservers: bad server \"%s\"", item);
            continue;
        }
        n++;
    }
    return n > 0 ? 0 : -1;
}

/* set_options - resolver settings; loopback forwarders (dnsmasq, a local cache) must work */
static int set_options(void)
{
    static const char *const opts[][2] = {
        {"do-not-query-localhost:", "no"},
        {"infra-cache-max-rtt:", "5000"},   /* a dead server: TEMPFAIL after ~11 s, not minutes */
        {"infra-keep-probing:", "yes"},     /* ... and it is tried again as soon as it is back */
        {"infra-host-ttl:", "60"},
        {"outgoing-range:", "256"},
    };
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
        int err = ub_ctx_set_option(ctx, opts[i][0], opts[i][1]);
        if (err != 0) {
            log_warnx("mx: unbound option %s %s: %s", opts[i][0], opts[i][1], ub_strerror(err));
            return -1;
        }
    }
    return 0;
}

/* destroy - free the unbound context and its event */
static void destroy(void)
{
    if (ub_ev)
        event_free(ub_ev);
    if (ctx)
        ub_ctx_delete(ctx);
    ub_ev = NULL;
    ctx = NULL;
    mxbase = NULL;
    closing = 0;
}

/* ub_readable - answers on unbound's pipe: run their callbacks */
static void ub_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    in_process = 1;
    int err = ub_process(ctx);
    in_process = 0;
    if (closing)
        destroy();
    else if (err != 0)
        log_warnx("mx: ub_process: %s", ub_strerror(err));
}

/* mx_init - resolver in the event loop; nameservers: dns_nameservers (LIST of ip or ip@port /
 * ip:port; empty: /etc/resolv.conf).  Returns 0 or -1. */
int mx_init(struct event_base *base, const char *nameservers)
{
    if (in_process) {
        log_warnx("mx: mx_init called from a lookup callback");
        return -1;
    }
    if (ctx)
        mx_shutdown();
    ctx = ub_ctx_create();
    if (ctx == NULL) {
        log_warnx("mx: ub_ctx_create failed");
        return -1;
    }
    mxbase = base;
    deferbase = base;
    int err = ub_ctx_async(ctx, 1);
    if (err == 0 && set_options() != 0)
        err = UB_SYNTAX;
    if (err == 0 && (nameservers == NULL || nameservers[0] == '\0')) {
        if (ub_ctx_resolvconf(ctx, NULL) != 0)
            log_warnx("mx: no usable /etc/resolv.conf: resolving from the root servers");
        if (ub_ctx_hosts(ctx, NULL) != 0)
            log_warnx("mx: cannot read /etc/hosts");
    } else if (err == 0 && add_forwarders(nameservers) != 0) {
        err = UB_SYNTAX;
    }
    int fd = err == 0 ? ub_fd(ctx) : -1;
    if (fd >= 0)
        ub_ev = event_new(base, fd, EV_READ | EV_PERSIST, ub_readable, NULL);
    if (ub_ev == NULL || event_add(ub_ev, NULL) != 0) {
        if (err != 0)
            log_warnx("mx: resolver setup: %s", ub_strerror(err));
        destroy();
        return -1;
    }
    return 0;
}

/* req_unlink - take r off the outstanding list */
static void req_unlink(struct mx_req *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        outstanding = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
}

/* req_free - release r (already unlinked) */
static void req_free(struct mx_req *r)
{
    if (r->defer)
        event_free(r->defer);
    free(r);
}

/* mx_shutdown - cancel outstanding queries (their callbacks do not run) and free everything */
void mx_shutdown(void)
{
    while (outstanding) {
        struct mx_req *r = outstanding;
        for (int i = 0; i < 2; i++)
            if (r->q[i].active && ctx)
                ub_cancel(ctx, r->q[i].id);
        req_unlink(r);
        req_free(r);
    }
    if (in_process)
        closing = 1;    /* called from a callback: ub_readable() frees the context after ub_process() */
    else
        destroy();
}

/* addr_build - IPv6 addresses first, then IPv4, into the caller's result */
static void addr_build(const struct mx_req *r, struct addr_result *res)
{
    memset(res, 0, sizeof(*res));
    size_t room6 = MX_ADDRS_MAX - (r->n4 < MX_ADDRS_MAX / 2 ? r->n4 : MX_ADDRS_MAX / 2);
    for (size_t i = 0; i < r->n6 && i < room6; i++)
        res->addrs[res->naddrs++] = r->v6[i];
    for (size_t i = 0; i < r->n4 && res->naddrs < MX_ADDRS_MAX; i++)
        res->addrs[res->naddrs++] = r->v4[i];
    if (res->naddrs > 0)
        res->status = 0;
    else if (r->out6 == Q_TEMPFAIL || r->out4 == Q_TEMPFAIL)
        res->status = 2;
    else
        res->status = 1;
}

/* req_finish - unlink r, run its callback, free it */
static void req_finish(struct mx_req *r)
{
    req_unlink(r);
    if (r->kind == REQ_MX) {
        r->mx_cb(r->arg, &r->mx);
    } else {
        struct addr_result *res = xmalloc(sizeof(*res));
        addr_build(r, res);
        r->addr_cb(r->arg, res);
        free(res);
    }
    req_free(r);
}

/* outcome - classify an unbound answer */
static enum q_outcome outcome(int err, const struct ub_result *res)
{
    if (err != 0 || res == NULL || res->bogus)
        return Q_TEMPFAIL;
    if (res->nxdomain)
        return Q_NXDOMAIN;
    if (res->rcode != RCODE_NOERROR)
        return Q_TEMPFAIL;      /* SERVFAIL, REFUSED, ... */
    return res->havedata ? Q_DATA : Q_NODATA;
}

/* wire_name - uncompressed wire-format name at p (n bytes) to dotted text; length used or -1 */
static int wire_name(const unsigned char *p, size_t n, char *out, size_t outsz)
{
    size_t i = 0, o = 0;
    while (i < n) {
        size_t lab = p[i++];
        if (lab == 0) {
            out[o] = '\0';
            return (int)i;
        }
        if (lab > 63 || lab > n - i || o + lab + 2 > outsz)
            return -1;
        for (size_t k = 0; k < lab; k++) {
            if (p[i + k] == '.' || p[i + k] == '\0')
                return -1;
            out[o++] = (char)p[i + k];
        }
        out[o++] = '.';
        i += lab;
    }
    return -1;
}

/* parse_mx - rdata (preference + name) to rec; 0 ok, -1 malformed.  The root name gives "" */
static int parse_mx(const unsigned char *d, size_t n, struct mx_rec *rec)
{
    char text[256];
    if (d == NULL || n < 3)
        return -1;
    rec->pref = (d[0] << 8) | d[1];
    int used = wire_name(d + 2, n - 2, text, sizeof(text));
    if (used < 0 || (size_t)used != n - 2)
        return -1;
    if (text[0] == '\0') {
        rec->name[0] = '\0';
        return 0;
    }
    return norm_name(rec->name, sizeof(rec->name), text) ? 0 : -1;
}

/* order_recs - shuffle, then stable sort by preference: equal preferences end up in random order */
static void order_recs(struct mx_rec *v, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = rnd_below((uint32_t)i);
        struct mx_rec t = v[i - 1];
        v[i - 1] = v[j];
        v[j] = t;
    }
    for (size_t i = 1; i < n; i++) {
        struct mx_rec t = v[i];
        size_t j = i;
        for (; j > 0 && v[j - 1].pref > t.pref; j--)
            v[j] = v[j - 1];
        v[j] = t;
    }
}

/* mx_fill - the MX records of res into r->mx */
static void mx_fill(struct mx_req *r, const struct ub_result *res)
{
    size_t cnt = 0;
    while (res->data[cnt])
        cnt++;
    struct mx_rec *v = xcalloc(cnt ? cnt : 1, sizeof(*v));
    size_t n = 0;
    int nullmx = 0;
    for (size_t i = 0; i < cnt; i++) {
        if (res->len[i] < 0 || parse_mx((const unsigned char *)res->data[i], (size_t)res->len[i], &v[n]) != 0)
            continue;
        if (v[n].name[0] == '\0')
            nullmx++;   /* "MX 0 ." among other MX records is ignored (RFC 7505 3) */
        else
            n++;
    }
    if (n == 0 && nullmx > 0 && cnt == 1) {
        r->mx.status = MX_NULL_MX;
    } else if (n == 0) {
        r->mx.status = MX_TEMPFAIL;     /* only unusable records */
    } else {
        order_recs(v, n);
        r->mx.status = MX_OK;
        for (size_t i = 0; i < n && i < MX_HOSTS_MAX; i++) {
            memcpy(r->mx.hosts[i].name, v[i].name, sizeof(v[i].name));
            r->mx.hosts[i].pref = v[i].pref;
        }
        r->mx.nhosts = n < MX_HOSTS_MAX ? n : MX_HOSTS_MAX;
    }
    free(v);
}

/* mx_done - unbound's answer to an MX query */
static void mx_done(void *data, int err, struct ub_result *res)
{
    struct mx_query *q = data;
    struct mx_req *r = q->req;
    q->active = 0;
    switch (outcome(err, res)) {
    case Q_DATA:
        mx_fill(r, res);
        break;
    case Q_NODATA:
        r->mx.status = MX_NO_MX;
        snprintf(r->mx.hosts[0].name, sizeof(r->mx.hosts[0].name), "%s", r->name);
        r->mx.hosts[0].pref = 0;
        r->mx.nhosts = 1;
        break;
    case Q_NXDOMAIN:
        r->mx.status = MX_NXDOMAIN;
        break;
    case Q_TEMPFAIL:
        r->mx.status = MX_TEMPFAIL;
        break;
    }
    if (res)
        ub_resolve_free(res);
    req_finish(r);
}

/* addrs_take - A or AAAA rdata of res into r->v4 / r->v6 */
static void addrs_take(struct mx_req *r, const struct ub_result *res, int v6)
{
    for (size_t i = 0; res->data[i]; i++) {
        struct sockaddr_storage ss;
        memset(&ss, 0, sizeof(ss));
        if (v6 && res->len[i] == 16 && r->n6 < MX_ADDRS_MAX) {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
            s6->sin6_family = AF_INET6;
            memcpy(&s6->sin6_addr, res->data[i], 16);
            r->v6[r->n6++] = ss;
        } else if (!v6 && res->len[i] == 4 && r->n4 < MX_ADDRS_MAX) {
            struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
            s4->sin_family = AF_INET;
            memcpy(&s4->sin_addr, res->data[i], 4);
            r->v4[r->n4++] = ss;
        }
    }
}

/* addr_done - unbound's answer to the AAAA (q[0]) or A (q[1]) query; the callback runs after both */
static void addr_done(void *data, int err, struct ub_result *res)
{
    struct mx_query *q = data;
    struct mx_req *r = q->req;
    int v6 = q == &r->q[0];
    q->active = 0;
    enum q_outcome o = outcome(err, res);
    if (o == Q_DATA)
        addrs_take(r, res, v6);
    if (v6)
        r->out6 = o;
    else
        r->out4 = o;
    if (res)
        ub_resolve_free(res);
    if (--r->pending == 0)
        req_finish(r);
}

/* deferred - results decided without the network, delivered from the loop */
static void deferred(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    req_finish(arg);
}

/* req_defer - deliver r's current result from the event loop */
static void req_defer(struct mx_req *r)
{
    static const struct timeval now = {0, 0};
    if (r->defer == NULL)
        r->defer = evtimer_new(mxbase ? mxbase : deferbase, deferred, r);
    if (r->defer == NULL || evtimer_add(r->defer, &now) != 0)
        log_fatalx("mx: cannot schedule a callback");
}

/* req_new - a request for name, on the outstanding list */
static struct mx_req *req_new(enum req_kind kind, void *arg)
{
    struct mx_req *r = xcalloc(1, sizeof(*r));
    r->kind = kind;
    r->arg = arg;
    r->q[0].req = r->q[1].req = r;
    r->next = outstanding;
    if (outstanding)
        outstanding->prev = r;
    outstanding = r;
    return r;
}

/* query_start - send one query; 0 or -1 */
static int query_start(struct mx_req *r, int i, int rrtype, ub_callback_type cb)
{
    int err = ub_resolve_async(ctx, r->name, rrtype, RR_CLASS_IN, &r->q[i], cb, &r->q[i].id);
    if (err != 0) {
        log_warnx("mx: query %s type %d: %s", r->name, rrtype, ub_strerror(err));
        return -1;
    }
    r->q[i].active = 1;
    r->pending++;
    return 0;
}

/* not_ready - no resolver (mx_init failed or was not called): the lookup fails temporarily,
 * still reported from the event loop when mx_init was ever given one; 1 if so */
static int not_ready(void)
{
    if (ctx && !closing)
        return 0;
    log_warnx("mx: lookup without a resolver");
    return 1;
}

/* mx_lookup - MX of domain; hosts sorted by preference, equal preferences in
 * random order; the callback runs later from the event loop, never inside the call */
void mx_lookup(const char *domain, mx_fn cb, void *arg)
{
    if (not_ready() && deferbase == NULL) {
        struct mx_result res = {.status = MX_TEMPFAIL};
        cb(arg, &res);
        return;
    }
    struct mx_req *r = req_new(REQ_MX, arg);
    r->mx_cb = cb;
    if (not_ready()) {
        r->mx.status = MX_TEMPFAIL;
        req_defer(r);
        return;
    }
    if (!norm_name(r->name, sizeof(r->name), domain)) {
        r->mx.status = MX_NXDOMAIN;     /* no such name can exist in the DNS */
        req_defer(r);
    } else if (query_start(r, 0, RR_MX, mx_done) != 0) {
        r->mx.status = MX_TEMPFAIL;
        req_defer(r);
    }
}

/* addr_lookup - A and AAAA of host (both queried) */
void addr_lookup(const char *host, addr_fn cb, void *arg)
{
    if (not_ready() && deferbase == NULL) {
        struct addr_result res = {.status = 2};
        cb(arg, &res);
        return;
    }
    struct mx_req *r = req_new(REQ_ADDR, arg);
    r->addr_cb = cb;
    r->out6 = r->out4 = Q_TEMPFAIL;
    if (not_ready()) {
        req_defer(r);
        return;
    }
    if (!norm_name(r->name, sizeof(r->name), host)) {
        r->out6 = r->out4 = Q_NXDOMAIN;
        req_defer(r);
        return;
    }
    if (query_start(r, 0, RR_AAAA, addr_done) != 0) {
        req_defer(r);
        return;
    }
    if (query_start(r, 1, RR_A, addr_done) != 0) {
        ub_cancel(ctx, r->q[0].id);     /* report a temporary failure for both, later */
        r->q[0].active = 0;
        r->pending = 0;
        req_defer(r);
    }
}
