/* work.c - thread pool with completion callbacks in the event loop */
#include "work.h"
#include "log.h"
#include "xmalloc.h"

#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#define WORK_MAX_THREADS 8

struct job {
    work_fn run, done;
    void *arg;
    struct job *next;
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct job *todo, *todo_tail, *finished;
    pthread_t threads[WORK_MAX_THREADS];
    int nthreads;
    int stopping;
    int pipe[2];
    struct event *ev;
} W = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static void *work_thread(void *unused)
{
    (void)unused;
    pthread_mutex_lock(&W.lock);
    for (;;) {
        while (W.todo == NULL && !W.stopping)
            pthread_cond_wait(&W.cond, &W.lock);
        if (W.todo == NULL)
            break;
        struct job *j = W.todo;
        W.todo = j->next;
        if (W.todo == NULL)
            W.todo_tail = NULL;
        pthread_mutex_unlock(&W.lock);
        j->run(j->arg);
        pthread_mutex_lock(&W.lock);
        j->next = W.finished;
        W.finished = j;
        char c = 1;
        ssize_t r = write(W.pipe[1], &c, 1);
        (void)r; /* a full pipe already means "wake up" */
    }
    pthread_mutex_unlock(&W.lock);
    return NULL;
}

/* work_done - event loop: call done() of finished jobs */
static void work_done(evutil_socket_t fd, short what, void *unused)
{
    (void)what;
    (void)unused;
    char drain[64];
    while (read(fd, drain, sizeof(drain)) > 0)
        ;
    pthread_mutex_lock(&W.lock);
    struct job *list = W.finished;
    W.finished = NULL;
    pthread_mutex_unlock(&W.lock);
    while (list) {
        struct job *j = list;
        list = j->next;
        j->done(j->arg);
        free(j);
    }
}

int work_init(struct event_base *base, int nthreads)
{
    if (nthreads < 1 || nthreads > WORK_MAX_THREADS)
        nthreads = 1;
    if (pipe2(W.pipe, O_NONBLOCK | O_CLOEXEC) < 0)
        return -1;
    W.ev = event_new(base, W.pipe[0], EV_READ | EV_PERSIST, work_done, NULL);
    event_add(W.ev, NULL);
    W.stopping = 0;
    for (int i = 0; i < nthreads; i++) {
        if (pthread_create(&W.threads[i], NULL, work_thread, NULL) != 0)
            return -1;
        W.nthreads++;
    }
    return 0;
}

void work_submit(work_fn run, work_fn done, void *arg)
{
    struct job *j = xcalloc(1, sizeof(*j));
    j->run = run;
    j->done = done;
    j->arg = arg;
    pthread_mutex_lock(&W.lock);
    if (W.todo_tail)
        W.todo_tail->next = j;
    else
        W.todo = j;
    W.todo_tail = j;
    pthread_cond_signal(&W.cond);
    pthread_mutex_unlock(&W.lock);
}

void work_shutdown(void)
{
    pthread_mutex_lock(&W.lock);
    W.stopping = 1;
    pthread_cond_broadcast(&W.cond);
    pthread_mutex_unlock(&W.lock);
    for (int i = 0; i < W.nthreads; i++)
        pthread_join(W.threads[i], NULL);
    W.nthreads = 0;
    if (W.ev) {
        work_done(W.pipe[0], 0, NULL);
        event_free(W.ev);
        W.ev = NULL;
        close(W.pipe[0]);
        close(W.pipe[1]);
    }
}
