/* local_worker.h - the local delivery worker process
 *
 * Protocol over a socketpair, one text line per record, values in xtext:
 *   master -> worker:  D <qid> <idx>[,<idx>...]
 *   worker -> master:  F <idx> <address>               (alias target to forward)
 *                      R <idx> <O|T|P> <dsn> <text>    (result per recipient)
 *                      E <qid>                          (end of this message)
 */
#ifndef TERN_LOCAL_WORKER_H
#define TERN_LOCAL_WORKER_H

struct config;

/* local_worker_main - serve requests on fd until EOF; never returns */
_Noreturn void local_worker_main(int fd, const struct config *cfg);

#endif
