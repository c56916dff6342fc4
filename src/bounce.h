/* bounce.h - non-delivery reports for recipients that failed permanently
 *
 * The reason of each permanent failure is kept in queue_directory/bounce/QID
 * ("<index> <status> <reason-xtext>" lines) until the message is finished;
 * then one RFC 3464 report for all of them is queued to the sender (never to
 * the null sender: no bounce for a bounce) and the original is removed.
 */
#ifndef TERN_BOUNCE_H
#define TERN_BOUNCE_H

#include <stddef.h>

#include "queue_file.h"

struct config;

/* bounce_note - remember why recipient idx of qid failed (fdatasync'd): status "5.1.1",
 * reason for people, remote_mta (NULL: local failure) and diag (the server's reply, for
 * Diagnostic-Code: smtp; NULL: the reason, as x-unix) */
int bounce_note(const char *qid, size_t idx, const char *status, const char *reason,
                const char *remote_mta, const char *diag);

/* bounce_send - queue the report for env's B recipients whose NOTIFY asks for
 * failures; fd is the open queue file.  newid gets the report's id, or "" when
 * none is due (null sender, NOTIFY=NEVER ...).  0, or -1 (try again later). */
int bounce_send(const struct config *cfg, const struct qenv *env, int fd, char *newid);

/* bounce_report - queue a report about recipients r[0..n) of env (delivered, relayed,
 * delayed or failed; dsn.h) to its sender; fd is the open queue file, ret_hdrs: only the
 * headers of the original.  newid gets the id, "" when none was due (null sender, n == 0).
 * 0 or -1. */
struct dsn_rcpt;
int bounce_report(const struct config *cfg, const struct qenv *env, int fd, const struct dsn_rcpt *r,
                  size_t n, int ret_hdrs, char *newid);

/* bounce_forget - the message is finished: drop its notes */
void bounce_forget(const char *qid);

#endif
