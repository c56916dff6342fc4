/* qmgr.c - queue manager: schedule attempts, route recipients, record results
 *
 * An attempt on a message reads its envelope, routes every recipient still to
 * do (route.c), and makes delivery jobs: one for the local recipients (to the
 * local delivery workers), one per SMTP/LMTP destination and
 * smtp_destination_recipient_limit recipients (to outbound.c), and
 * immediate results for "error:" routes.  Each finished job's results are
 * written into the queue file (recipient state bytes, one fdatasync) before
 * anything depends on them; when the last job of the attempt is in, the
 * message is either finished (reports queued, file removed) or retried
 * after a backoff.
 */
#include "qmgr.h"
#include "addr.h"
#include "bounce.h"
#include "buf.h"
#include "daemon.h"
#include "dsn.h"
#include "local_worker.h"
#include "log.h"
#include "outbound.h"
#include "queue.h"
#include "smtp_cmd.h"
#include "xmalloc.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* messages read into memory at once (each holds its envelope and an open file) */
#define ACTIVE_MAX 1000

/* why a recipient is still waiting (for mailq and delay notices) */
struct why {
    char dsn[16];
    char *text, *diag, *mta;
};

struct qmsg {
    char id[QID_LEN + 1];
    time_t next_try;
    int attempts;
    int jobs;          /* delivery jobs of the current attempt not yet finished (0: idle) */
    double dispatched; /* when the attempt began */
    struct qenv env;   /* during an attempt */
    int fd;            /* the queue file during an attempt, else -1 */
    int temp;          /* some recipient failed temporarily in this attempt */
    struct why *why;   /* env.nrcpt entries during an attempt */
    struct qmsg *hnext;   /* hash chain (by id) */
    struct qmsg *rnext;   /* ready FIFO */
    size_t heap_i;        /* 1 + index in the waiting heap, 0: not waiting */
};

struct worker {
    pid_t pid;
    struct bufferevent *bev;
    struct djob *job;
    int retire;        /* leave after the current job (SIGHUP: a fresh one replaces it) */
    struct worker *next;
};

#define HASH_BUCKETS 65536

static struct {
    struct qmsg **hash;          /* every known message, by id */
    struct qmsg *ready_head, **ready_tail;   /* due now, oldest first */
    struct qmsg **heap;          /* waiting for next_try: a binary min-heap */
    size_t nheap, heapcap;
    int nactive;                 /* messages in an attempt */
    struct worker *workers;      /* list; retiring ones included */
    struct djob *local_head, **local_tail;   /* local jobs waiting for a worker */
    struct event *timer;
    struct event *kick;          /* run the scheduler soon, outside any caller's loop */
    int stopping;
} S;

static double now_d(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + tv.tv_usec / 1e6;
}

static void sched_run(void);
static void job_done(struct djob *j);

static void kick(void)
{
    if (S.kick)
        event_active(S.kick, EV_TIMEOUT, 0);
}

/* ---- local delivery workers ---------------------------------------------- */

static void worker_readcb(struct bufferevent *bev, void *arg);
static void worker_eventcb(struct bufferevent *bev, short what, void *arg);

/* worker_spawn - a new worker process on the list; 0 or -1 */
static int worker_spawn(void)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(sv[0]);
        close(sv[1]);
        return -1;
    }
    if (pid == 0) {
        /* keep only our socket and the log: no listeners, no other worker's
         * socket (which would keep that worker from seeing EOF) */
        int keep = log_fileno();
        for (int fd = 3; fd < 65536; fd++)
            if (fd != sv[1] && fd != keep)
                close(fd);
        local_worker_main(sv[1], tern.cfg);
    }
    close(sv[1]);
    evutil_make_socket_nonblocking(sv[0]);
    struct worker *w = xcalloc(1, sizeof(*w));
    w->pid = pid;
    w->next = S.workers;
    S.workers = w;
    w->bev = bufferevent_socket_new(tern.base, sv[0], BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(w->bev, worker_readcb, NULL, worker_eventcb, w);
    bufferevent_enable(w->bev, EV_READ | EV_WRITE);
    return 0;
}

/* worker_remove - end the process (it exits at EOF after its message) and forget it; a
 * job it still held is finished as a temporary failure */
static void worker_remove(struct worker *w)
{
    for (struct worker **pp = &S.workers; *pp; pp = &(*pp)->next)
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    if (w->bev) {
        /* EOF tells the worker to exit after its message; shut down now, since
         * libevent may defer the close of a freed bufferevent */
        shutdown(bufferevent_getfd(w->bev), SHUT_RDWR);
        bufferevent_free(w->bev);
        w->bev = NULL;
    }
    if (w->pid > 0) {
        int st;
        waitpid(w->pid, &st, 0);
        w->pid = 0;
    }
    struct djob *j = w->job;
    w->job = NULL;
    if (j && !S.stopping) {
        for (size_t k = 0; k < j->n; k++)
            if (j->res[k].status == 'T' && strcmp(j->res[k].text, "not tried") == 0)
                djob_set(j, k, 'T', "4.3.0", "local delivery process exited");
        job_done(j);
    } else if (j) {
        djob_free(j);
    }
    free(w);
}

/* workers_wanted - start workers until local_delivery_workers are not retiring */
static void workers_wanted(void)
{
    int n = 0;
    for (struct worker *w = S.workers; w; w = w->next)
        n += !w->retire;
    for (; !S.stopping && n < tern.cfg->local_delivery_workers; n++)
        if (worker_spawn() < 0) {
            log_warn("cannot start a local delivery worker");
            break;
        }
}

static void local_dispatch(void)
{
    if (S.stopping)
        return;
    for (struct worker *w = S.workers; w && S.local_head; w = w->next) {
        if (!w->bev || w->job || w->retire)
            continue;
        struct djob *j = S.local_head;
        S.local_head = j->next;
        if (!S.local_head)
            S.local_tail = &S.local_head;
        j->next = NULL;
        j->t_begin = j->t_ready = now_d();
        w->job = j;
        struct evbuffer *out = bufferevent_get_output(w->bev);
        evbuffer_add_printf(out, "D %s ", j->qid);
        for (size_t k = 0; k < j->n; k++)
            evbuffer_add_printf(out, "%s%zu", k ? "," : "", j->idx[k]);
        evbuffer_add(out, "\n", 1);
    }
}

static void local_submit(struct djob *j)
{
    j->t_queued = now_d();
    j->next = NULL;
    *S.local_tail = j;
    S.local_tail = &j->next;
    local_dispatch();
}

/* parse_word - next space-separated word of *p */
static char *parse_word(char **p)
{
    char *s = *p;
    while (*s == ' ')
        s++;
    char *e = s + strcspn(s, " ");
    if (*e)
        *e++ = '\0';
    *p = e;
    return s;
}

/* job_slot - which entry of j is recipient index idx (j->n if none) */
static size_t job_slot(const struct djob *j, size_t idx)
{
    size_t k = 0;
    while (k < j->n && j->idx[k] != idx)
        k++;
    return k;
}

/* worker_line - one line from worker w; 1 if w is gone afterwards */
static int worker_line(struct worker *w, char *line)
{
    struct djob *j = w->job;
    char *p = line + 2;
    if (j == NULL || line[0] == '\0' || line[1] != ' ')
        return 0;
    if (line[0] == 'F') {
        size_t k = job_slot(j, strtoul(parse_word(&p), NULL, 10));
        char *word = parse_word(&p);
        char *addr = queue_xtext_decode(word, strlen(word));
        if (k < j->n && addr) {
            struct djob_result *r = &j->res[k];
            r->fwd = xrealloc(r->fwd, (r->nfwd + 1) * sizeof(char *));
            r->fwd[r->nfwd++] = addr;
        } else {
            free(addr);
        }
    } else if (line[0] == 'R') {
        size_t k = job_slot(j, strtoul(parse_word(&p), NULL, 10));
        char *st = parse_word(&p);
        char *dsn = parse_word(&p);
        char *word = parse_word(&p);
        char *text = queue_xtext_decode(word, strlen(word));
        if (k < j->n)
            djob_set(j, k, (st[0] == 'O' || st[0] == 'P') ? st[0] : 'T', dsn, "%s", text ? text : "?");
        free(text);
    } else if (line[0] == 'E') {
        w->job = NULL;
        job_done(j);
        if (w->retire) {
            worker_remove(w); /* idle now: it exits at once */
            return 1;
        }
    }
    return 0;
}

static void worker_readcb(struct bufferevent *bev, void *arg)
{
    struct worker *w = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    char *line;
    size_t n;
    while ((line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF)) != NULL) {
        int gone = worker_line(w, line);
        free(line);
        if (gone)
            break;
    }
    local_dispatch();
    kick();
}

static void worker_eventcb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct worker *w = arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        log_warnx("local delivery worker %ld exited", (long)w->pid);
        worker_remove(w);
        workers_wanted();
        local_dispatch();
        kick();
    }
}

/* ---- messages -------------------------------------------------------------- */

/* The scheduler never walks the whole queue: messages are found by id in a hash, due ones
 * wait in a FIFO, the others in a heap ordered by next_try (a dead destination with a large
 * backlog costs nothing per event). */

static size_t bucket_of(const char *id)
{
    uint32_t h = 2166136261u;
    for (; *id; id++)
        h = (h ^ (unsigned char)*id) * 16777619u;
    return h & (HASH_BUCKETS - 1);
}

static struct qmsg **msg_link(const char *id)
{
    struct qmsg **pp = &S.hash[bucket_of(id)];
    while (*pp && strcmp((*pp)->id, id) != 0)
        pp = &(*pp)->hnext;
    return pp;
}

static void ready_push(struct qmsg *m)
{
    m->rnext = NULL;
    *S.ready_tail = m;
    S.ready_tail = &m->rnext;
}

static struct qmsg *ready_pop(void)
{
    struct qmsg *m = S.ready_head;
    if (m) {
        S.ready_head = m->rnext;
        if (!S.ready_head)
            S.ready_tail = &S.ready_head;
        m->rnext = NULL;
    }
    return m;
}

static void heap_set(size_t i, struct qmsg *m)
{
    S.heap[i] = m;
    m->heap_i = i + 1;
}

/* wait_until - m is idle until t */
static void wait_until(struct qmsg *m, time_t t)
{
    m->next_try = t;
    if (S.nheap == S.heapcap) {
        S.heapcap = S.heapcap ? S.heapcap * 2 : 256;
        S.heap = xrealloc(S.heap, S.heapcap * sizeof(*S.heap));
    }
    size_t i = S.nheap++;
    while (i > 0 && S.heap[(i - 1) / 2]->next_try > t) {
        heap_set(i, S.heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_set(i, m);
}

/* heap_pop - the message waiting the shortest */
static struct qmsg *heap_pop(void)
{
    struct qmsg *top = S.heap[0], *last = S.heap[--S.nheap];
    top->heap_i = 0;
    if (S.nheap == 0)
        return top;
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= S.nheap)
            break;
        if (c + 1 < S.nheap && S.heap[c + 1]->next_try < S.heap[c]->next_try)
            c++;
        if (S.heap[c]->next_try >= last->next_try)
            break;
        heap_set(i, S.heap[c]);
        i = c;
    }
    heap_set(i, last);
    return top;
}

/* attempt_release - the attempt is over: forget the envelope and the file */
static void attempt_release(struct qmsg *m)
{
    if (m->why) {
        for (size_t i = 0; i < m->env.nrcpt; i++) {
            free(m->why[i].text);
            free(m->why[i].diag);
            free(m->why[i].mta);
        }
        free(m->why);
        m->why = NULL;
    }
    if (m->fd >= 0) {
        queue_env_free(&m->env);
        close(m->fd);
        m->fd = -1;
        S.nactive--;
    }
}

/* msg_drop - forget m (it is in an attempt: neither ready nor waiting) */
static void msg_drop(struct qmsg *m)
{
    attempt_release(m);
    struct qmsg **link = msg_link(m->id);
    if (*link == m) {
        *link = m->hnext;
        free(m);
    }
}

static void side_path(const char *dir, const char *qid, char *out, size_t outsz)
{
    snprintf(out, outsz, "%s/%s/%s", queue_dir(), dir, qid);
}

/* defer_note - remember why recipients wait, for mailq (informational, not fsync'd) */
static void defer_note(const char *qid, const char *text)
{
    char p[4200];
    side_path("defer", qid, p, sizeof(p));
    if (text == NULL) {
        unlink(p);
        return;
    }
    FILE *fp = fopen(p, "w");
    if (fp) {
        fputs(text, fp);
        fclose(fp);
    }
}

static time_t backoff(const struct qmsg *m)
{
    long long d = tern.cfg->queue_retry_interval;
    for (int i = 1; i < m->attempts && d < tern.cfg->maximal_backoff_time; i++)
        d *= 2;
    if (d > tern.cfg->maximal_backoff_time)
        d = tern.cfg->maximal_backoff_time;
    return (time_t)(d < 1 ? 1 : d);
}

static const char *program_of(const struct djob *j)
{
    switch (j->route.kind) {
    case ROUTE_SMTP: return "smtp";
    case ROUTE_LMTP: return "lmtp";
    case ROUTE_ERROR: return "error";
    default: return "local";
    }
}

static double nonneg(double x)
{
    return x < 0 ? 0 : x;
}

/* log_delivery - the Postfix delivery line:
 * to=<..>, relay=.., delay=.., delays=a/b/c/d, dsn=.., status=.. (..) */
static void log_delivery(const struct qmsg *m, const struct djob *j, const char *addr,
                         const struct djob_result *r, const char *status)
{
    char to[ADDR_PATH_MAX * 2], t[800];
    log_printable(to, sizeof(to), addr, ADDR_PATH_MAX, 1);
    log_printable(t, sizeof(t), r->text, 700, 1);
    double arrival = (double)m->env.arrival + m->env.arrival_usec / 1e6;
    double a = nonneg(m->dispatched - arrival), b = nonneg(j->t_begin - m->dispatched);
    double c = nonneg(j->t_ready - j->t_begin), d = nonneg(j->t_end - j->t_ready);
    log_info_as(program_of(j),
                "%s: to=<%s>, relay=%s, delay=%.2g, delays=%.2g/%.2g/%.2g/%.2g, dsn=%s, status=%s (%s)",
                m->id, to, j->relay, nonneg(j->t_end - arrival), a, b, c, d, r->dsn, status, t);
}

/* success_reports - NOTIFY=SUCCESS recipients delivered by j: one report, queued (durably)
 * before their state is recorded, so it is never lost (at worst sent twice) */
static int success_reports(struct qmsg *m, const struct djob *j)
{
    const struct qenv *env = &m->env;
    if (env->sender[0] == '\0' || (j->route.kind == ROUTE_SMTP && j->peer_dsn))
        return 0; /* a DSN-capable next hop reports itself */
    struct dsn_rcpt *r = xcalloc(j->n, sizeof(*r));
    size_t n = 0;
    for (size_t k = 0; k < j->n; k++) {
        const struct qrcpt *q = &env->rcpts[j->idx[k]];
        if (j->res[k].status != 'O' || q->state != RCPT_QUEUED || !(q->notify & NOTIFY_SUCCESS))
            continue;
        r[n].final_rcpt = q->addr;
        r[n].orcpt_type = q->orcpt ? (q->orcpt_type[0] ? q->orcpt_type : "rfc822") : NULL;
        r[n].orcpt = q->orcpt;
        r[n].action = j->route.kind == ROUTE_SMTP ? "relayed" : "delivered";
        r[n].status = j->res[k].dsn[0] == '2' ? j->res[k].dsn : "2.0.0";
        r[n].remote_mta = j->remote_mta[0] ? j->remote_mta : NULL;
        r[n].diag = j->res[k].diag[0] ? j->res[k].diag : j->res[k].text;
        r[n].diag_type = j->res[k].diag[0] ? "smtp" : "x-unix";
        n++;
    }
    char newid[QID_LEN + 1] = "";
    int rc = bounce_report(tern.cfg, env, m->fd, r, n, env->ret != RET_FULL, newid);
    free(r);
    if (rc == 0 && newid[0]) {
        log_info_as("bounce", "%s: sender delivery status notification: %s", m->id, newid);
        sched_add(newid);
    }
    return rc;
}

/* delay_report - the first time a message has waited delay_warning_time, tell the sender
 * about the recipients still waiting (NOTIFY=DELAY, or no NOTIFY) */
static void delay_report(struct qmsg *m)
{
    const struct qenv *env = &m->env;
    char p[4200];
    struct stat st;
    if (tern.cfg->delay_warning_time <= 0 || env->sender[0] == '\0' ||
        time(NULL) - env->arrival < tern.cfg->delay_warning_time)
        return;
    side_path("warned", m->id, p, sizeof(p));
    if (stat(p, &st) == 0)
        return;
    struct dsn_rcpt *r = xcalloc(env->nrcpt, sizeof(*r));
    size_t n = 0;
    for (size_t i = 0; i < env->nrcpt; i++) {
        const struct qrcpt *q = &env->rcpts[i];
        if (q->state != RCPT_QUEUED || (q->notify != 0 && !(q->notify & NOTIFY_DELAY)))
            continue;
        const struct why *w = &m->why[i];
        r[n].final_rcpt = q->addr;
        r[n].orcpt_type = q->orcpt ? (q->orcpt_type[0] ? q->orcpt_type : "rfc822") : NULL;
        r[n].orcpt = q->orcpt;
        r[n].action = "delayed";
        r[n].status = w->dsn[0] == '4' ? w->dsn : "4.0.0";
        r[n].remote_mta = w->mta;
        r[n].diag = w->diag ? w->diag : w->text;
        r[n].diag_type = w->diag ? "smtp" : "x-unix";
        n++;
    }
    char newid[QID_LEN + 1] = "";
    if (bounce_report(tern.cfg, env, m->fd, r, n, 1, newid) == 0) {
        int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        if (fd >= 0)
            close(fd);
        if (newid[0]) {
            log_info_as("bounce", "%s: sender delay notification: %s", m->id, newid);
            sched_add(newid);
        }
    }
    free(r);
}

/* finish - nothing is left to deliver: report permanent failures to the
 * sender (the report is durable before the original goes), then remove */
static void finish(struct qmsg *m)
{
    int bounces = 0;
    for (size_t i = 0; i < m->env.nrcpt; i++)
        bounces += m->env.rcpts[i].state == RCPT_BOUNCE;
    if (bounces > 0) {
        char newid[QID_LEN + 1] = "";
        if (bounce_send(tern.cfg, &m->env, m->fd, newid) < 0) {
            log_warn("%s: cannot queue the non-delivery report; will retry", m->id);
            attempt_release(m);
            wait_until(m, time(NULL) + 60);
            return;
        }
        if (newid[0])
            sched_add(newid);
    }
    char p[4200];
    queue_remove(m->id);
    defer_note(m->id, NULL);
    bounce_forget(m->id);
    side_path("warned", m->id, p, sizeof(p));
    unlink(p);
    log_info_as("qmgr", "%s: removed", m->id);
    msg_drop(m);
}

/* round_done - every job of the attempt is in */
static void round_done(struct qmsg *m)
{
    size_t queued = 0;
    for (size_t i = 0; i < m->env.nrcpt; i++)
        queued += m->env.rcpts[i].state == RCPT_QUEUED;
    if (queued == 0) {
        finish(m);
        return;
    }
    struct buf notes = BUF_INIT;
    for (size_t i = 0; i < m->env.nrcpt; i++)
        if (m->env.rcpts[i].state == RCPT_QUEUED && m->why[i].text)
            buf_printf(&notes, "%s: %s %s\n", m->env.rcpts[i].addr, m->why[i].dsn, m->why[i].text);
    defer_note(m->id, notes.len ? notes.data : "");
    buf_free(&notes);
    delay_report(m);
    m->attempts++;
    attempt_release(m);
    wait_until(m, time(NULL) + backoff(m));
}

/* forward_message - queue a copy of the message for alias targets elsewhere.
 * Synchronous (rare): the original recipient is marked done only after the
 * copy is durable. */
static int forward_message(const struct qmsg *m, char **addrs, size_t n, char *newid)
{
    return queue_inject(m->env.sender, addrs, n, m->env.body, m->env.smtputf8, NULL, 0, m->fd,
                        m->env.data_off, newid);
}

/* apply - record job j's results in the queue file and the log */
static void apply(struct qmsg *m, struct djob *j)
{
    struct qenv *env = &m->env;
    int expired = time(NULL) - env->arrival > tern.cfg->maximal_queue_lifetime;
    size_t left = 0;
    for (size_t i = 0; i < env->nrcpt; i++)
        left += env->rcpts[i].state == RCPT_QUEUED;
    /* alias copies first: a recipient counts as done only once its copy is queued */
    for (size_t k = 0; k < j->n; k++) {
        struct djob_result *r = &j->res[k];
        if (r->status != 'O' || r->nfwd == 0)
            continue;
        char newid[QID_LEN + 1];
        if (forward_message(m, r->fwd, r->nfwd, newid) < 0) {
            djob_set(j, k, 'T', "4.3.0", "cannot queue forwarded copy: %s", strerror(errno));
        } else {
            snprintf(r->text, sizeof(r->text), "forwarded as %s", newid);
            sched_add(newid);
        }
    }
    for (size_t k = 0; k < j->n; k++) {
        struct djob_result *r = &j->res[k];
        if (r->status == 'T' && expired) {
            r->status = 'P';
            size_t l = strlen(r->text);
            snprintf(r->text + l, sizeof(r->text) - l, "; message expired");
        }
    }
    if (success_reports(m, j) < 0) {
        /* the notices could not be queued: deliver again rather than lose them */
        for (size_t k = 0; k < j->n; k++)
            if (j->res[k].status == 'O' && (env->rcpts[j->idx[k]].notify & NOTIFY_SUCCESS))
                djob_set(j, k, 'T', "4.3.0", "cannot queue the delivery status notification");
    }
    /* when this job delivers every recipient still to do, the file is simply removed:
     * no state bytes, no fdatasync (a crash before the unlink delivers again) */
    size_t ok = 0;
    for (size_t k = 0; k < j->n; k++)
        ok += j->res[k].status == 'O' && env->rcpts[j->idx[k]].state == RCPT_QUEUED;
    size_t bounced = 0;
    for (size_t i = 0; i < env->nrcpt; i++)
        bounced += env->rcpts[i].state == RCPT_BOUNCE;
    int write_states = !(m->jobs == 1 && ok == left && bounced == 0);
    int changed = 0;
    for (size_t k = 0; k < j->n; k++) {
        struct djob_result *r = &j->res[k];
        struct qrcpt *rc = &env->rcpts[j->idx[k]];
        if (rc->state != RCPT_QUEUED)
            continue;
        if (r->status == 'O') {
            if (write_states)
                queue_set_rcpt_state(m->fd, rc->state_off, RCPT_DONE);
            rc->state = RCPT_DONE;
            changed = 1;
            log_delivery(m, j, rc->addr, r, "sent");
        } else if (r->status == 'P') {
            if (bounce_note(m->id, j->idx[k], r->dsn, r->text, j->remote_mta[0] ? j->remote_mta : NULL,
                            r->diag[0] ? r->diag : NULL) < 0)
                log_warn("%s: cannot record the bounce reason", m->id);
            queue_set_rcpt_state(m->fd, rc->state_off, RCPT_BOUNCE);
            rc->state = RCPT_BOUNCE;
            changed = 1;
            log_delivery(m, j, rc->addr, r, "bounced");
        } else {
            struct why *w = &m->why[j->idx[k]];
            snprintf(w->dsn, sizeof(w->dsn), "%s", r->dsn);
            free(w->text);
            free(w->diag);
            free(w->mta);
            w->text = xstrdup(r->text);
            w->diag = r->diag[0] ? xstrdup(r->diag) : NULL;
            w->mta = j->remote_mta[0] ? xstrdup(j->remote_mta) : NULL;
            m->temp = 1;
            log_delivery(m, j, rc->addr, r, "deferred");
        }
    }
    if (changed && write_states && queue_sync_fd(m->fd) < 0)
        log_warn("%s: fdatasync", m->id);
}

/* job_done - a delivery job is back (from a worker, outbound.c, or an error route) */
static void job_done(struct djob *j)
{
    struct qmsg *m = j->arg;
    apply(m, j);
    djob_free(j);
    if (--m->jobs == 0)
        round_done(m);
    kick();
}

/* ---- attempts ---------------------------------------------------------------- */

/* route_of - the route for recipient address addr */
static void route_of(const char *addr, struct route *r, char *domain, size_t domsz)
{
    const char *at = strrchr(addr, '@');
    snprintf(domain, domsz, "%s", at ? at + 1 : "");
    if (at == NULL) {
        memset(r, 0, sizeof(*r));
        r->kind = ROUTE_LOCAL;
        snprintf(r->key, sizeof(r->key), "local");
        return;
    }
    if (route_lookup(outbound_maps(), tern.cfg, domain, r) < 0 && r->kind != ROUTE_ERROR) {
        r->kind = ROUTE_ERROR;
        snprintf(r->error, sizeof(r->error), "4.3.5 configuration error");
    }
    if (r->kind == ROUTE_LOCAL)
        snprintf(r->key, sizeof(r->key), "local");
    if (r->kind == ROUTE_SMTP || r->kind == ROUTE_LMTP) {
        /* TLS policy and credentials may depend on the domain: a connection is shared
         * only by jobs that agree on them */
        int wv = 0;
        const char *user = NULL, *pass;
        enum smtpc_tls tls = route_tls(outbound_maps(), tern.cfg, domain, r, &wv);
        if (!route_sasl(outbound_maps(), r, domain, &user, &pass))
            user = NULL;
        size_t l = strlen(r->key);
        snprintf(r->key + l, sizeof(r->key) - l, " tls=%d%d%s%s", (int)tls, wv, user ? " auth=" : "",
                 user ? user : "");
    }
}

/* error_job - results of an error: route, right away */
static void error_job(struct djob *j)
{
    const char *e = j->route.error;
    char esc[16] = "5.0.0";
    size_t n = strspn(e, "0123456789.");
    if (n >= 5 && n < sizeof(esc) && (e[0] == '4' || e[0] == '5')) {
        memcpy(esc, e, n);
        esc[n] = '\0';
        e += n;
        while (*e == ' ')
            e++;
    }
    for (size_t k = 0; k < j->n; k++)
        djob_set(j, k, esc[0] == '4' ? 'T' : 'P', esc, "%s", e[0] ? e : "mail for this destination is refused");
    j->t_begin = j->t_ready = j->t_end = now_d();
}

/* attempt - read the envelope, route the recipients, hand out the jobs */
static void attempt(struct qmsg *m)
{
    char path[4200], err[256];
    queue_path(m->id, path, sizeof(path));
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0 || queue_env_read(fd, &m->env, err, sizeof(err)) < 0) {
        if (fd < 0 && errno == ENOENT) {
            msg_drop(m);
            return;
        }
        log_warnx("%s: cannot read queue file", m->id);
        if (fd >= 0)
            close(fd);
        wait_until(m, time(NULL) + 300);
        return;
    }
    m->fd = fd;
    S.nactive++;
    m->dispatched = now_d();
    m->temp = 0;
    m->why = xcalloc(m->env.nrcpt ? m->env.nrcpt : 1, sizeof(*m->why));

    /* group the recipients still to do by destination */
    size_t n = m->env.nrcpt;
    struct route *routes = xcalloc(n ? n : 1, sizeof(*routes));
    char (*domains)[256] = xcalloc(n ? n : 1, sizeof(*domains));
    unsigned char *taken = xcalloc(n ? n : 1, 1);
    struct djob *jobs = NULL, **tail = &jobs;
    long long limit = tern.cfg->smtp_destination_recipient_limit;
    if (limit < 1)
        limit = 1;
    for (size_t i = 0; i < n; i++)
        if (m->env.rcpts[i].state == RCPT_QUEUED)
            route_of(m->env.rcpts[i].addr, &routes[i], domains[i], sizeof(domains[i]));
        else
            taken[i] = 1;
    for (size_t i = 0; i < n; i++) {
        if (taken[i])
            continue;
        /* recipients with the same next hop go together */
        size_t cnt = 0;
        for (size_t k = i; k < n; k++)
            cnt += !taken[k] && strcmp(routes[k].key, routes[i].key) == 0;
        size_t per = routes[i].kind == ROUTE_LOCAL ? cnt : (size_t)limit;
        while (cnt > 0) {
            size_t take = cnt < per ? cnt : per;
            struct djob *j = djob_new(take);
            snprintf(j->qid, sizeof(j->qid), "%s", m->id);
            j->env = &m->env;
            j->fd = m->fd;
            j->route = routes[i];
            snprintf(j->domain, sizeof(j->domain), "%s", domains[i]);
            j->done = job_done;
            j->arg = m;
            if (routes[i].kind == ROUTE_LOCAL)
                snprintf(j->relay, sizeof(j->relay), "local");
            size_t got = 0;
            for (size_t k = i; k < n && got < take; k++)
                if (!taken[k] && strcmp(routes[k].key, routes[i].key) == 0) {
                    j->idx[got++] = k;
                    taken[k] = 1;
                }
            cnt -= take;
            *tail = j;
            tail = &j->next;
            m->jobs++;
        }
    }
    free(routes);
    free(domains);
    free(taken);
    if (m->jobs == 0) {
        finish(m);
        return;
    }
    /* hand them out; error routes last, since they may finish the message right away */
    struct djob *errors = NULL, *next;
    for (struct djob *j = jobs; j; j = next) {
        next = j->next;
        j->next = NULL;
        if (j->route.kind == ROUTE_LOCAL) {
            local_submit(j);
        } else if (j->route.kind == ROUTE_ERROR) {
            error_job(j);
            j->next = errors;
            errors = j;
        } else {
            outbound_submit(j);
        }
    }
    for (struct djob *j = errors; j; j = next) {
        next = j->next;
        j->next = NULL;
        job_done(j);
    }
}

static void sched_run(void)
{
    if (S.stopping)
        return;
    time_t now = time(NULL);
    while (S.nheap > 0 && S.heap[0]->next_try <= now)
        ready_push(heap_pop());
    struct qmsg *m;
    while (S.nactive < ACTIVE_MAX && (m = ready_pop()) != NULL)
        attempt(m);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    sched_run();
}

void sched_add(const char *qid)
{
    if (!S.hash) {
        S.hash = xcalloc(HASH_BUCKETS, sizeof(*S.hash));
        S.ready_tail = &S.ready_head;
    }
    struct qmsg **link = msg_link(qid);
    if (*link)
        return;
    struct qmsg *m = xcalloc(1, sizeof(*m));
    snprintf(m->id, sizeof(m->id), "%s", qid);
    m->fd = -1;
    *link = m;
    ready_push(m); /* behind the others: older messages first */
    kick();
}

static int mkdir_q(const char *name)
{
    char p[4200];
    snprintf(p, sizeof(p), "%s/%s", queue_dir(), name);
    return mkdir(p, 0700) < 0 && errno != EEXIST ? -1 : 0;
}

int sched_init(void)
{
    /* the maps were loaded by ternd before it listened (outbound_load_maps) */
    if (mkdir_q("defer") < 0 || mkdir_q("warned") < 0)
        return -1;
    if (outbound_init(tern.base) < 0)
        log_warnx("outbound DNS resolver unavailable: MX lookups will fail temporarily");
    S.local_tail = &S.local_head;
    for (long long i = 0; i < tern.cfg->local_delivery_workers; i++)
        if (worker_spawn() < 0)
            return -1;
    S.timer = event_new(tern.base, -1, EV_PERSIST, timer_cb, NULL);
    S.kick = event_new(tern.base, -1, 0, timer_cb, NULL);
    struct timeval one = {1, 0};
    event_add(S.timer, &one);
    return 0;
}

void sched_reload(void)
{
    char err[512];
    if (outbound_load_maps(err, sizeof(err)) < 0)
        log_warnx("keeping the old maps: %s", err);
    outbound_reload();
    /* new workers (with the new configuration) replace the old ones: idle ones go now,
     * busy ones after their message (worker_line) */
    struct worker *next;
    for (struct worker *w = S.workers; w; w = next) {
        next = w->next;
        if (w->job)
            w->retire = 1;
        else
            worker_remove(w);
    }
    workers_wanted();
    local_dispatch();
    sched_run();
}

int sched_busy(void)
{
    for (struct worker *w = S.workers; w; w = w->next)
        if (w->job)
            return 1;
    return outbound_busy();
}

void sched_quiesce(void)
{
    S.stopping = 1;
    outbound_quiesce();
}

void sched_shutdown(void)
{
    S.stopping = 1;
    while (S.workers)
        worker_remove(S.workers);
    while (S.local_head) {
        struct djob *j = S.local_head;
        S.local_head = j->next;
        djob_free(j);
    }
    S.local_tail = &S.local_head;
    outbound_shutdown();
    if (S.timer)
        event_free(S.timer);
    S.timer = NULL;
    if (S.kick)
        event_free(S.kick);
    S.kick = NULL;
    for (size_t b = 0; S.hash && b < HASH_BUCKETS; b++)
        while (S.hash[b]) {
            struct qmsg *m = S.hash[b];
            S.hash[b] = m->hnext;
            attempt_release(m);
            free(m);
        }
    free(S.hash);
    S.hash = NULL;
    free(S.heap);
    S.heap = NULL;
    S.nheap = S.heapcap = 0;
    S.ready_head = NULL;
    S.ready_tail = &S.ready_head;
}
