/* test_work.c - the thread pool runs jobs off the loop and completes them in it */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <event2/event.h>
#include <pthread.h>

#include "work.h"

#define NJOBS 200

struct job {
    int ran, done;
    pthread_t run_thread, done_thread;
};

static struct event_base *base;
static int ndone;

static void run(void *arg)
{
    struct job *j = arg;
    j->ran = 1;
    j->run_thread = pthread_self();
}

static void done(void *arg)
{
    struct job *j = arg;
    assert_int_equal(j->ran, 1); /* done() only after run() */
    j->done++;
    j->done_thread = pthread_self();
    if (++ndone == NJOBS)
        event_base_loopbreak(base);
}

static void test_jobs_complete_in_loop(void **state)
{
    (void)state;
    static struct job jobs[NJOBS];
    base = event_base_new();
    assert_int_equal(work_init(base, 2), 0);
    for (int i = 0; i < NJOBS; i++)
        work_submit(run, done, &jobs[i]);
    struct timeval limit = {10, 0};
    event_base_loopexit(base, &limit);
    event_base_dispatch(base);
    work_shutdown();
    assert_int_equal(ndone, NJOBS);
    for (int i = 0; i < NJOBS; i++) {
        assert_int_equal(jobs[i].done, 1);
        assert_true(pthread_equal(jobs[i].done_thread, pthread_self()));
        assert_false(pthread_equal(jobs[i].run_thread, pthread_self()));
    }
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_jobs_complete_in_loop)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
