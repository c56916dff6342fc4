/* qmgr.c - queue manager: schedule attempts, dispatch to workers, record results */
#include "qmgr.h"
#include "addr.h"
#include "bounce.h"
#include "buf.h"
#include "daemon.h"
#include "local_worker.h"
#include "log.h"
#include "queue.h"
#include "xmalloc.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct qmsg {
    char id[QID_LEN + 1];
    time_t arrival;
    time_t next_try;
    int attempts;
    int busy;          /* at a worker */
    int parked;        /* nothing left that tern can deliver now (bounce owed / remote) */
    double dispatched; /* when the worker got it */
    struct qmsg *next;
};

struct result {
    size_t idx;
    char status;       /* O, T, P */
    char dsn[16];
    char *text;
    char **fwd;        /* forward addresses */
    size_t nfwd;
};

struct worker {
    pid_t pid;
    struct bufferevent *bev;
    struct qmsg *job;
    struct result *res;
    size_t nres;
};

static struct {
    struct qmsg *msgs;
    struct worker *workers;
    int nworkers;
    struct event *timer;
    struct event *kick;    /* run the scheduler soon, outside any caller's loop */
    int stopping;
} S;

static double now_d(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + tv.tv_usec / 1e6;
}

static void sched_run(void);

/* ---- workers ---------------------------------------------------------- */

static void worker_readcb(struct bufferevent *bev, void *arg);
static void worker_eventcb(struct bufferevent *bev, short what, void *arg);

static int worker_spawn(struct worker *w)
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
    w->pid = pid;
    w->job = NULL;
    w->bev = bufferevent_socket_new(tern.base, sv[0], BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(w->bev, worker_readcb, NULL, worker_eventcb, w);
    bufferevent_enable(w->bev, EV_READ | EV_WRITE);
    return 0;
}

static void results_free(struct worker *w)
{
    for (size_t i = 0; i < w->nres; i++) {
        free(w->res[i].text);
        for (size_t k = 0; k < w->res[i].nfwd; k++)
            free(w->res[i].fwd[k]);
        free(w->res[i].fwd);
    }
    free(w->res);
    w->res = NULL;
    w->nres = 0;
}

static void worker_stop(struct worker *w)
{
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
    if (w->job) {
        w->job->busy = 0; /* not recorded: delivered again later */
        w->job = NULL;
    }
    results_free(w);
}

/* ---- recording results --------------------------------------------- */

static struct qmsg *msg_find(const char *id, struct qmsg ***link)
{
    struct qmsg **pp = &S.msgs;
    for (; *pp; pp = &(*pp)->next)
        if (strcmp((*pp)->id, id) == 0) {
            if (link)
                *link = pp;
            return *pp;
        }
    return NULL;
}

static void msg_drop(struct qmsg *m)
{
    struct qmsg **link;
    if (msg_find(m->id, &link)) {
        *link = m->next;
        free(m);
    }
}

/* defer_note - remember why recipients wait, for mailq (informational, not fsync'd) */
static void defer_note(const char *qid, const char *text)
{
    char p[4200];
    snprintf(p, sizeof(p), "%s/defer/%s", queue_dir(), qid);
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

/* forward_message - queue a copy of the message for alias targets elsewhere.
 * Synchronous (rare): the original recipient is marked done only after the
 * copy is durable. */
static int forward_message(const struct qenv *env, int fd, char **addrs, size_t n, char *newid)
{
    return queue_inject(env->sender, addrs, n, env->body, env->smtputf8, NULL, 0, fd, env->data_off,
                        newid);
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

static void log_delivery(const struct qenv *env, const char *addr, double dispatched, double done,
                         const char *dsn, const char *status, const char *text)
{
    char to[ADDR_PATH_MAX * 2], t[600];
    log_printable(to, sizeof(to), addr, ADDR_PATH_MAX, 1);
    log_printable(t, sizeof(t), text, 512, 1);
    double arrival = (double)env->arrival + env->arrival_usec / 1e6;
    double a = dispatched - arrival, d = done - dispatched;
    log_info_as("local", "%s: to=<%s>, relay=local, delay=%.2g, delays=%.2g/0/0/%.2g, dsn=%s, status=%s (%s)",
             env->id, to, done - arrival, a < 0 ? 0 : a, d < 0 ? 0 : d, dsn, status, t);
}

/* apply_results - write the worker's verdicts into the queue file */
static void apply_results(struct worker *w)
{
    struct qmsg *m = w->job;
    char path[4200], err[256];
    queue_path(m->id, path, sizeof(path));
    int fd = open(path, O_RDWR | O_CLOEXEC);
    struct qenv env;
    if (fd < 0 || queue_env_read(fd, &env, err, sizeof(err)) < 0) {
        log_warn("%s: cannot update queue file", m->id);
        if (fd >= 0)
            close(fd);
        m->next_try = time(NULL) + 60;
        return;
    }
    double done = now_d();
    int temp = 0;
    struct buf notes = BUF_INIT;
    int expired = time(NULL) - env.arrival > tern.cfg->maximal_queue_lifetime;
    for (size_t i = 0; i < w->nres; i++) {
        struct result *r = &w->res[i];
        if (r->idx >= env.nrcpt || env.rcpts[r->idx].state != RCPT_QUEUED)
            continue;
        struct qrcpt *rc = &env.rcpts[r->idx];
        char text[700];
        snprintf(text, sizeof(text), "%s", r->text);
        if (r->status == 'O' && r->nfwd > 0) {
            char newid[QID_LEN + 1];
            if (forward_message(&env, fd, r->fwd, r->nfwd, newid) < 0) {
                r->status = 'T';
                snprintf(r->dsn, sizeof(r->dsn), "4.3.0");
                snprintf(text, sizeof(text), "cannot queue forwarded copy: %s", strerror(errno));
            } else {
                snprintf(text, sizeof(text), "forwarded as %s", newid);
                sched_add(newid);
            }
        }
        if (r->status == 'T' && expired) {
            r->status = 'P';
            snprintf(text + strlen(text), sizeof(text) - strlen(text), "; message expired");
        }
        if (r->status == 'O') {
            queue_set_rcpt_state(fd, rc->state_off, RCPT_DONE);
            rc->state = RCPT_DONE;
            log_delivery(&env, rc->addr, m->dispatched, done, r->dsn, "sent", text);
        } else if (r->status == 'P') {
            if (bounce_note(m->id, r->idx, r->dsn, text) < 0)
                log_warn("%s: cannot record the bounce reason", m->id);
            queue_set_rcpt_state(fd, rc->state_off, RCPT_BOUNCE);
            rc->state = RCPT_BOUNCE;
            log_delivery(&env, rc->addr, m->dispatched, done, r->dsn, "bounced", text);
        } else {
            temp = 1;
            log_delivery(&env, rc->addr, m->dispatched, done, r->dsn, "deferred", text);
            buf_printf(&notes, "%s: %s %s\n", rc->addr, r->dsn, text);
        }
    }
    if (queue_sync_fd(fd) < 0)
        log_warn("%s: fdatasync", m->id);
    close(fd);
    if (temp) {
        m->attempts++;
        m->next_try = time(NULL) + backoff(m);
        defer_note(m->id, notes.data);
    } else {
        m->next_try = 0;
    }
    buf_free(&notes);
    queue_env_free(&env);
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

static char *xtext_dup(const char *s)
{
    char *out = queue_xtext_decode(s, strlen(s));
    return out ? out : xstrdup("?");
}

static struct result *result_for(struct worker *w, size_t idx)
{
    for (size_t i = 0; i < w->nres; i++)
        if (w->res[i].idx == idx)
            return &w->res[i];
    w->res = xrealloc(w->res, (w->nres + 1) * sizeof(*w->res));
    struct result *r = &w->res[w->nres++];
    memset(r, 0, sizeof(*r));
    r->idx = idx;
    r->status = 'T';
    return r;
}

static void worker_line(struct worker *w, char *line)
{
    char *p = line + 2;
    if (line[0] == 'F' && line[1] == ' ') {
        size_t idx = strtoul(parse_word(&p), NULL, 10);
        struct result *r = result_for(w, idx);
        r->fwd = xrealloc(r->fwd, (r->nfwd + 1) * sizeof(char *));
        r->fwd[r->nfwd++] = xtext_dup(parse_word(&p));
    } else if (line[0] == 'R' && line[1] == ' ') {
        size_t idx = strtoul(parse_word(&p), NULL, 10);
        struct result *r = result_for(w, idx);
        char *st = parse_word(&p);
        r->status = (st[0] == 'O' || st[0] == 'P') ? st[0] : 'T';
        snprintf(r->dsn, sizeof(r->dsn), "%s", parse_word(&p));
        free(r->text);
        r->text = xtext_dup(parse_word(&p));
    } else if (line[0] == 'E' && line[1] == ' ' && w->job) {
        struct qmsg *m = w->job;
        apply_results(w);
        results_free(w);
        w->job = NULL;
        m->busy = 0;
    }
}

static void worker_readcb(struct bufferevent *bev, void *arg)
{
    struct worker *w = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    char *line;
    size_t n;
    while ((line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF)) != NULL) {
        worker_line(w, line);
        free(line);
    }
    sched_run();
}

static void worker_eventcb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct worker *w = arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        log_warnx("local delivery worker %ld exited", (long)w->pid);
        worker_stop(w);
        if (!S.stopping && worker_spawn(w) < 0)
            log_warn("cannot restart local delivery worker");
        sched_run();
    }
}

/* ---- scheduling ----------------------------------------------------- */

static struct worker *idle_worker(void)
{
    for (int i = 0; i < S.nworkers; i++)
        if (S.workers[i].bev && S.workers[i].job == NULL)
            return &S.workers[i];
    return NULL;
}

static int rcpt_is_local(const char *addr)
{
    const char *at = strrchr(addr, '@');
    return at == NULL || local_is_mydestination(tern.cfg, at + 1);
}

/* finish - nothing is left to deliver: report permanent failures to the
 * sender (the report is durable before the original goes), then remove */
static void finish(struct qmsg *m, const struct qenv *env)
{
    int bounces = 0;
    for (size_t i = 0; i < env->nrcpt; i++)
        bounces += env->rcpts[i].state == RCPT_BOUNCE;
    if (bounces > 0) {
        char path[4200], newid[QID_LEN + 1] = "";
        queue_path(m->id, path, sizeof(path));
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || bounce_send(tern.cfg, env, fd, newid) < 0) {
            log_warn("%s: cannot queue the non-delivery report; will retry", m->id);
            if (fd >= 0)
                close(fd);
            m->next_try = time(NULL) + 60;
            return;
        }
        close(fd);
        if (newid[0])
            sched_add(newid);
    }
    queue_remove(m->id);
    defer_note(m->id, NULL);
    bounce_forget(m->id);
    log_info_as("qmgr", "%s: removed", m->id);
    msg_drop(m);
}

/* attempt - read the envelope; dispatch local recipients; park or remove */
static void attempt(struct qmsg *m, struct worker *w)
{
    char path[4200], err[256];
    queue_path(m->id, path, sizeof(path));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct qenv env;
    if (fd < 0 || queue_env_read(fd, &env, err, sizeof(err)) < 0) {
        if (fd < 0 && errno == ENOENT) {
            msg_drop(m);
            return;
        }
        log_warnx("%s: cannot read queue file", m->id);
        if (fd >= 0)
            close(fd);
        m->next_try = time(NULL) + 300;
        return;
    }
    close(fd);
    struct buf req = BUF_INIT;
    size_t queued = 0, remote = 0, bounce = 0;
    for (size_t i = 0; i < env.nrcpt; i++) {
        if (env.rcpts[i].state == RCPT_BOUNCE)
            bounce++;
        if (env.rcpts[i].state != RCPT_QUEUED)
            continue;
        queued++;
        if (!rcpt_is_local(env.rcpts[i].addr)) {
            remote++;
            continue;
        }
        buf_printf(&req, "%s%zu", req.len ? "," : "", i);
    }
    if (req.len > 0) {
        m->busy = 1;
        m->dispatched = now_d();
        w->job = m;
        evbuffer_add_printf(bufferevent_get_output(w->bev), "D %s %s\n", m->id, req.data);
    } else if (queued == 0) {
        finish(m, &env);
    } else {
        if (remote > 0 && m->attempts == 0) {
            static const char why[] = "delivery to non-local destinations is not available yet";
            struct buf notes = BUF_INIT;
            for (size_t i = 0; i < env.nrcpt; i++) {
                if (env.rcpts[i].state != RCPT_QUEUED || rcpt_is_local(env.rcpts[i].addr))
                    continue;
                log_delivery(&env, env.rcpts[i].addr, now_d(), now_d(), "4.4.0", "deferred", why);
                buf_printf(&notes, "%s: 4.4.0 %s\n", env.rcpts[i].addr, why);
            }
            defer_note(m->id, notes.data);
            buf_free(&notes);
        }
        m->parked = 1; /* waits for outbound delivery / bounce generation */
    }
    buf_free(&req);
    queue_env_free(&env);
}

static void sched_run(void)
{
    if (S.stopping)
        return;
    time_t now = time(NULL);
    struct qmsg *next;
    for (struct qmsg *m = S.msgs; m; m = next) {
        next = m->next;
        if (m->busy || m->parked || m->next_try > now)
            continue;
        struct worker *w = idle_worker();
        if (w == NULL)
            return;
        attempt(m, w);
    }
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
    if (msg_find(qid, NULL))
        return;
    struct qmsg *m = xcalloc(1, sizeof(*m));
    snprintf(m->id, sizeof(m->id), "%s", qid);
    m->arrival = time(NULL);
    /* append, so older messages are tried first */
    struct qmsg **pp = &S.msgs;
    while (*pp)
        pp = &(*pp)->next;
    *pp = m;
    if (S.kick)
        event_active(S.kick, EV_TIMEOUT, 0);
}

int sched_init(void)
{
    char p[4200];
    snprintf(p, sizeof(p), "%s/defer", queue_dir());
    if (mkdir(p, 0700) < 0 && errno != EEXIST)
        return -1;
    S.nworkers = (int)tern.cfg->local_delivery_workers;
    S.workers = xcalloc((size_t)S.nworkers, sizeof(*S.workers));
    for (int i = 0; i < S.nworkers; i++)
        if (worker_spawn(&S.workers[i]) < 0)
            return -1;
    S.timer = event_new(tern.base, -1, EV_PERSIST, timer_cb, NULL);
    S.kick = event_new(tern.base, -1, 0, timer_cb, NULL);
    struct timeval one = {1, 0};
    event_add(S.timer, &one);
    return 0;
}

void sched_reload(void)
{
    for (int i = 0; i < S.nworkers; i++)
        worker_stop(&S.workers[i]);
    free(S.workers);
    S.nworkers = (int)tern.cfg->local_delivery_workers;
    S.workers = xcalloc((size_t)S.nworkers, sizeof(*S.workers));
    for (int i = 0; i < S.nworkers; i++)
        if (worker_spawn(&S.workers[i]) < 0)
            log_warn("cannot start local delivery worker");
    for (struct qmsg *m = S.msgs; m; m = m->next)
        m->parked = 0;
    sched_run();
}

int sched_busy(void)
{
    for (int i = 0; i < S.nworkers; i++)
        if (S.workers[i].job)
            return 1;
    return 0;
}

void sched_quiesce(void)
{
    S.stopping = 1;
}

void sched_shutdown(void)
{
    S.stopping = 1;
    for (int i = 0; i < S.nworkers; i++)
        worker_stop(&S.workers[i]);
    free(S.workers);
    S.workers = NULL;
    S.nworkers = 0;
    if (S.timer)
        event_free(S.timer);
    S.timer = NULL;
    if (S.kick)
        event_free(S.kick);
    S.kick = NULL;
    while (S.msgs) {
        struct qmsg *m = S.msgs;
        S.msgs = m->next;
        free(m);
    }
}
