/* work.h - a small thread pool for blocking work done off the event loop
 * (password hashing for AUTH).  run() executes in a pool thread; done()
 * then executes in the event loop.  Jobs are never cancelled: an owner that
 * goes away marks its job as orphaned itself. */
#ifndef TERN_WORK_H
#define TERN_WORK_H

struct event_base;

typedef void (*work_fn)(void *arg);

int work_init(struct event_base *base, int nthreads);
void work_submit(work_fn run, work_fn done, void *arg);
/* work_shutdown - finish queued jobs (running their done()), stop the threads */
void work_shutdown(void);

#endif
