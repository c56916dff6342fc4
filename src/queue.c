/* queue.c - queue files: unique ids, buffered writing, group commit, recovery */
#include "queue.h"
#include "buf.h"
#include "log.h"
#include "xmalloc.h"

#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#define WBUF_SIZE 65536

struct queue_writer {
    char id[QID_LEN + 1];
    int fd;
    int err;                 /* first errno, sticky */
    off_t size;              /* bytes written or buffered */
    size_t blen;
    char *wbuf;
    queue_commit_fn cb;      /* commit phase */
    void *arg;
    struct queue_writer *next;
};

static struct {
    char dir[4096];
    int msgdir_fd;
    int notify_pipe[2];
    struct event *notify_ev;
    pthread_t thread;
    int thread_running;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct queue_writer *pending, *pending_tail;  /* to the commit thread */
    struct queue_writer *done, *done_tail;        /* back to the event loop */
    int stopping;
    unsigned counter;
} q = {.msgdir_fd = -1, .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

const char *queue_dir(void)
{
    return q.dir;
}

void queue_path(const char *qid, char *out, size_t outsz)
{
    snprintf(out, outsz, "%s/msg/%s", q.dir, qid);
}

static void tmp_path(const char *qid, char *out, size_t outsz)
{
    snprintf(out, outsz, "%s/tmp/%s", q.dir, qid);
}

/* commit_batch - fsync each file, rename into msg/, fsync msg/ once */
static void commit_batch(struct queue_writer *batch)
{
    int renamed = 0;
    for (struct queue_writer *w = batch; w; w = w->next) {
        char from[4200], to[4200];
        if (w->err == 0 && fsync(w->fd) < 0)
            w->err = errno;
        tmp_path(w->id, from, sizeof(from));
        queue_path(w->id, to, sizeof(to));
        if (w->err == 0 && rename(from, to) < 0)
            w->err = errno;
        if (w->err != 0)
            unlink(from);
        else
            renamed++;
    }
    if (renamed > 0 && fsync(q.msgdir_fd) < 0) {
        int e = errno;
        /* the directory entry may not be durable: acknowledge nothing */
        for (struct queue_writer *w = batch; w; w = w->next) {
            if (w->err == 0) {
                char to[4200];
                queue_path(w->id, to, sizeof(to));
                unlink(to);
                w->err = e;
            }
        }
    }
}

/* commit_thread - take every pending commit as one batch, repeatedly */
static void *commit_thread(void *unused)
{
    (void)unused;
    pthread_mutex_lock(&q.lock);
    for (;;) {
        while (q.pending == NULL && !q.stopping)
            pthread_cond_wait(&q.cond, &q.lock);
        if (q.pending == NULL && q.stopping)
            break;
        struct queue_writer *batch = q.pending;
        q.pending = q.pending_tail = NULL;
        pthread_mutex_unlock(&q.lock);

        commit_batch(batch);

        pthread_mutex_lock(&q.lock);
        struct queue_writer *last = batch;
        while (last->next)
            last = last->next;
        if (q.done_tail)
            q.done_tail->next = batch;
        else
            q.done = batch;
        q.done_tail = last;
        char c = 1;
        ssize_t r = write(q.notify_pipe[1], &c, 1);
        (void)r; /* a full pipe already means "wake up" */
    }
    pthread_mutex_unlock(&q.lock);
    return NULL;
}

/* commit_done - event loop side: run callbacks of committed files */
static void commit_done(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    (void)arg;
    char drain[256];
    while (read(fd, drain, sizeof(drain)) > 0)
        ;
    pthread_mutex_lock(&q.lock);
    struct queue_writer *list = q.done;
    q.done = q.done_tail = NULL;
    pthread_mutex_unlock(&q.lock);
    while (list) {
        struct queue_writer *w = list;
        list = w->next;
        close(w->fd);
        if (w->cb)
            w->cb(w->arg, w->id, w->err);
        free(w->wbuf);
        free(w);
    }
}

static int mkdir_p(const char *path, mode_t mode)
{
    if (mkdir(path, mode) == 0 || errno == EEXIST)
        return 0;
    return -1;
}

int queue_init(struct event_base *base, const char *dir)
{
    char p[4200];
    snprintf(q.dir, sizeof(q.dir), "%s", dir);
    if (mkdir_p(dir, 0700) < 0)
        return -1;
    const char *subs[] = {"tmp", "msg", "corrupt"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s/%s", dir, subs[i]);
        if (mkdir_p(p, 0700) < 0)
            return -1;
    }
    snprintf(p, sizeof(p), "%s/msg", dir);
    q.msgdir_fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (q.msgdir_fd < 0)
        return -1;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    q.counter = (unsigned)(tv.tv_usec ^ getpid());
    if (base == NULL)
        return 0;
    if (pipe2(q.notify_pipe, O_NONBLOCK | O_CLOEXEC) < 0)
        return -1;
    q.notify_ev = event_new(base, q.notify_pipe[0], EV_READ | EV_PERSIST, commit_done, NULL);
    event_add(q.notify_ev, NULL);
    q.stopping = 0;
    if (pthread_create(&q.thread, NULL, commit_thread, NULL) != 0)
        return -1;
    q.thread_running = 1;
    return 0;
}

void queue_shutdown(void)
{
    if (q.thread_running) {
        pthread_mutex_lock(&q.lock);
        q.stopping = 1;
        pthread_cond_signal(&q.cond);
        pthread_mutex_unlock(&q.lock);
        pthread_join(q.thread, NULL);
        q.thread_running = 0;
        commit_done(q.notify_pipe[0], 0, NULL);
    }
    if (q.notify_ev) {
        event_free(q.notify_ev);
        q.notify_ev = NULL;
        close(q.notify_pipe[0]);
        close(q.notify_pipe[1]);
    }
    if (q.msgdir_fd >= 0)
        close(q.msgdir_fd);
    q.msgdir_fd = -1;
}

/* new_id - 8 hex digits of time, 4 of a counter: unique with O_EXCL + msg/ check */
static void new_id(char *id)
{
    snprintf(id, QID_LEN + 1, "%08X%04X", (unsigned)time(NULL), (q.counter++) & 0xffff);
}

struct queue_writer *queue_writer_open(void)
{
    struct queue_writer *w = xcalloc(1, sizeof(*w));
    for (int tries = 0; tries < 100; tries++) {
        char p[4200], m[4200];
        new_id(w->id);
        queue_path(w->id, m, sizeof(m));
        if (access(m, F_OK) == 0)
            continue;
        tmp_path(w->id, p, sizeof(p));
        w->fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (w->fd >= 0) {
            w->wbuf = xmalloc(WBUF_SIZE);
            return w;
        }
        if (errno != EEXIST)
            break;
    }
    int e = errno;
    free(w);
    errno = e;
    return NULL;
}

const char *queue_writer_id(const struct queue_writer *w)
{
    return w->id;
}

static void writer_flush(struct queue_writer *w)
{
    size_t off = 0;
    while (w->err == 0 && off < w->blen) {
        ssize_t n = write(w->fd, w->wbuf + off, w->blen - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            w->err = n < 0 ? errno : EIO;
        else
            off += (size_t)n;
    }
    w->blen = 0;
}

void queue_writer_write(struct queue_writer *w, const void *p, size_t n)
{
    if (w->err)
        return;
    w->size += (off_t)n;
    if (w->blen + n > WBUF_SIZE)
        writer_flush(w);
    if (n >= WBUF_SIZE) {
        size_t off = 0;
        while (w->err == 0 && off < n) {
            ssize_t r = write(w->fd, (const char *)p + off, n - off);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                w->err = r < 0 ? errno : EIO;
            else
                off += (size_t)r;
        }
        return;
    }
    memcpy(w->wbuf + w->blen, p, n);
    w->blen += n;
}

int queue_writer_failed(const struct queue_writer *w)
{
    return w->err;
}

off_t queue_writer_size(const struct queue_writer *w)
{
    return w->size;
}

void queue_writer_commit(struct queue_writer *w, queue_commit_fn cb, void *arg)
{
    writer_flush(w);
    w->cb = cb;
    w->arg = arg;
    w->next = NULL;
    pthread_mutex_lock(&q.lock);
    if (q.pending_tail)
        q.pending_tail->next = w;
    else
        q.pending = w;
    q.pending_tail = w;
    pthread_cond_signal(&q.cond);
    pthread_mutex_unlock(&q.lock);
}

int queue_writer_commit_sync(struct queue_writer *w)
{
    writer_flush(w);
    w->next = NULL;
    commit_batch(w);
    int err = w->err;
    close(w->fd);
    free(w->wbuf);
    free(w);
    errno = err;
    return err ? -1 : 0;
}

int queue_inject(const char *sender, char *const *addrs, size_t n, int body, int smtputf8,
                 const char *text, size_t tlen, int fd, off_t off, char *newid)
{
    struct queue_writer *w = queue_writer_open();
    if (w == NULL)
        return -1;
    struct qenv ne;
    memset(&ne, 0, sizeof(ne));
    struct timeval tv;
    gettimeofday(&tv, NULL);
    snprintf(ne.id, sizeof(ne.id), "%s", w->id);
    ne.arrival = tv.tv_sec;
    ne.arrival_usec = tv.tv_usec;
    ne.client_addr = "127.0.0.1";
    ne.client_name = "localhost";
    ne.helo = "";
    ne.proto = "local";
    ne.sender = (char *)sender;
    ne.body = body;
    ne.smtputf8 = smtputf8;
    ne.rcpts = xcalloc(n, sizeof(*ne.rcpts));
    ne.nrcpt = n;
    for (size_t i = 0; i < n; i++) {
        ne.rcpts[i].addr = addrs[i];
        ne.rcpts[i].state = RCPT_QUEUED;
    }
    struct buf b = BUF_INIT;
    queue_env_encode(&ne, &b);
    free(ne.rcpts);
    queue_writer_write(w, b.data, b.len);
    buf_free(&b);
    if (text) {
        queue_writer_write(w, text, tlen);
    } else {
        char chunk[65536];
        ssize_t r;
        while ((r = pread(fd, chunk, sizeof(chunk), off)) > 0) {
            queue_writer_write(w, chunk, (size_t)r);
            off += r;
        }
        if (r < 0) {
            queue_writer_abort(w);
            return -1;
        }
    }
    snprintf(newid, QID_LEN + 1, "%s", w->id);
    return queue_writer_commit_sync(w);
}

void queue_writer_abort(struct queue_writer *w)
{
    char p[4200];
    tmp_path(w->id, p, sizeof(p));
    close(w->fd);
    unlink(p);
    free(w->wbuf);
    free(w);
}

/* remove_tmp - incomplete messages were never acknowledged: delete them */
static void remove_tmp(void)
{
    char p[4200];
    snprintf(p, sizeof(p), "%s/tmp", q.dir);
    DIR *d = opendir(p);
    if (d == NULL)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if (unlinkat(dirfd(d), de->d_name, 0) == 0)
            log_info("%s: removed incomplete queue file", de->d_name);
    }
    closedir(d);
}

long queue_recover(queue_recover_fn fn, void *arg)
{
    remove_tmp();
    char p[4200];
    snprintf(p, sizeof(p), "%s/msg", q.dir);
    DIR *d = opendir(p);
    if (d == NULL)
        return -1;
    long n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        int fd = openat(dirfd(d), de->d_name, O_RDONLY | O_CLOEXEC);
        struct qenv env;
        char err[256] = "cannot open";
        int ok = fd >= 0 && queue_id_valid(de->d_name) &&
                 queue_env_read(fd, &env, err, sizeof(err)) == 0;
        if (fd >= 0)
            close(fd);
        if (ok && strcmp(env.id, de->d_name) != 0) {
            snprintf(err, sizeof(err), "id mismatch");
            ok = 0;
            queue_env_free(&env);
        }
        if (!ok) {
            char to[4200];
            snprintf(to, sizeof(to), "%s/corrupt/%s", q.dir, de->d_name);
            log_warnx("%s: corrupt queue file (%s), moved to corrupt/", de->d_name, err);
            renameat(dirfd(d), de->d_name, AT_FDCWD, to);
            continue;
        }
        queue_env_free(&env);
        fn(arg, de->d_name);
        n++;
    }
    closedir(d);
    return n;
}

int queue_set_rcpt_state(int fd, off_t state_off, char state)
{
    return pwrite(fd, &state, 1, state_off) == 1 ? 0 : -1;
}

int queue_sync_fd(int fd)
{
    return fdatasync(fd);
}

int queue_remove(const char *qid)
{
    char p[4200];
    queue_path(qid, p, sizeof(p));
    return unlink(p);
}
