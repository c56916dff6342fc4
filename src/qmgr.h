/* qmgr.h - the queue manager: which message is delivered when, by whom
 *
 * Runs in the event loop of ternd.  Keeps a small record per queued message
 * (id, next attempt, attempts) in a hash by id, with due messages in a FIFO and
 * the others in a heap by next attempt.  When an attempt is due it reads the
 * envelope, routes the recipients (route.c) and hands out delivery jobs: local
 * recipients to the local delivery workers (processes, local_worker.c), SMTP and
 * LMTP ones to outbound.c.  Results are written into the queue file
 * (recipient state bytes, fdatasync) before the message is removed or retried.
 */
#ifndef TERN_QMGR_H
#define TERN_QMGR_H

/* sched_init - start the workers and the retry timer */
int sched_init(void);
/* sched_add - a newly committed (or recovered) message */
void sched_add(const char *qid);
/* sched_reload - restart workers so they see the new configuration */
void sched_reload(void);
/* sched_quiesce - dispatch nothing new, restart no worker (SIGTERM) */
void sched_quiesce(void);
/* sched_shutdown - stop workers (waits for their current message) */
void sched_shutdown(void);
/* sched_busy - deliveries in progress */
int sched_busy(void);

#endif
