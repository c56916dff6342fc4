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

/* bounce_note - remember why recipient idx of qid failed (fdatasync'd) */
int bounce_note(const char *qid, size_t idx, const char *status, const char *reason);

/* bounce_send - queue the report for env's B recipients whose NOTIFY asks for
 * failures; fd is the open queue file.  newid gets the report's id, or "" when
 * none is due (null sender, NOTIFY=NEVER ...).  0, or -1 (try again later). */
int bounce_send(const struct config *cfg, const struct qenv *env, int fd, char *newid);

/* bounce_forget - the message is finished: drop its notes */
void bounce_forget(const char *qid);

#endif
