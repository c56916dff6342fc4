/* qmgr.h - the queue manager: which message is delivered when, by whom
 *
 * Runs in the event loop of ternd.  Keeps a small record per queued message
 * (id, arrival, next attempt, attempts), reads the envelope from disk when an
 * attempt is due, and hands local recipients to the local delivery workers
 * (separate processes, see local_worker.c).  Results come back over a
 * socketpair and are written into the queue file (recipient state bytes,
 * fdatasync) before the message is removed.
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
