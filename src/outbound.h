/* outbound.h - delivery jobs, and outbound SMTP/LMTP delivery in the event loop
 *
 * A delivery job is "these recipients of this message, by this route".  The
 * queue manager (qmgr.c) makes the jobs; local ones go to the local delivery
 * workers, SMTP and LMTP ones to this module, which keeps one queue per
 * destination (route key), resolves MX and host addresses (mx.c), tries the
 * hosts in order, runs the transaction (smtpc.c), reuses a connection for the
 * next job of the same destination, and limits concurrency per destination
 * and in total.  The job's results go back through job->done().
 */
#ifndef TERN_OUTBOUND_H
#define TERN_OUTBOUND_H

#include <stddef.h>

#include "route.h"

struct config;
struct event_base;
struct qenv;

/* the outcome for one recipient of a job */
struct djob_result {
    char status;                /* 'O' delivered, 'T' temporary failure, 'P' permanent failure */
    char dsn[16];               /* enhanced status code "2.0.0" */
    char text[700];             /* for the log and mailq: "host mx[ip] said: 550 5.1.1 ..." */
    char diag[600];             /* Diagnostic-Code (the peer's reply "550 5.1.1 ...") or "" */
    char **fwd;                 /* local: alias targets elsewhere, to be queued as a new message */
    size_t nfwd;
};

struct djob {
    /* what (set by qmgr) */
    char qid[16];
    const struct qenv *env;     /* alive until done() returns */
    int fd;                     /* the open queue file */
    struct route route;
    char domain[256];           /* the recipients' domain (MX lookup, TLS policy) */
    size_t *idx;                /* recipient indexes into env->rcpts */
    size_t n;
    /* outcome (set before done) */
    struct djob_result *res;    /* n entries, parallel to idx; preset to 'T' */
    char relay[300];            /* "host[ip]:port", "local", "none" */
    char remote_mta[256];       /* DSN Remote-MTA or "" */
    int peer_dsn;               /* the next hop took the DSN parameters (no "relayed" notice) */
    double t_queued, t_begin, t_ready, t_end;   /* for delays=a/b/c/d */
    void (*done)(struct djob *j);
    void *arg;
    struct djob *next;          /* queue link (owner: whoever holds the job) */
};

/* djob_new - a job for n recipients, results preset to 'T' "4.3.0 not tried" */
struct djob *djob_new(size_t n);
void djob_free(struct djob *j);
/* djob_set - record result k of j: status, dsn, then a printf text */
void djob_set(struct djob *j, size_t k, char status, const char *dsn, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* outbound_load_maps - (re)read transport_maps, smtp_tls_policy_maps and
 * smtp_sasl_password_maps; on error the old maps stay.  0 or -1 with err */
int outbound_load_maps(char *err, size_t errsz);
const struct route_maps *outbound_maps(void);
/* outbound_reload - after SIGHUP: a changed dns_nameservers takes effect once no lookup
 * is outstanding */
void outbound_reload(void);
/* outbound_init - start the resolver (dns_nameservers) */
int outbound_init(struct event_base *base);
/* outbound_submit - deliver j (SMTP or LMTP route); j->done runs later from the event loop */
void outbound_submit(struct djob *j);
/* outbound_quiesce - start nothing new; connections finish their transaction and quit */
void outbound_quiesce(void);
/* outbound_busy - transactions or lookups in progress */
int outbound_busy(void);
/* outbound_shutdown - drop everything now (pending jobs are freed without done()) */
void outbound_shutdown(void);

#endif
