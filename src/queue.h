/* queue.h - the durable message queue: writing, group commit, recovery
 *
 * Layout under queue_directory:
 *   tmp/QID   a message being received (deleted at start-up: never acknowledged)
 *   msg/QID   a committed message: fsync'd file, fsync'd directory entry
 *   corrupt/  committed files that cannot be parsed (kept for the admin)
 *
 * queue_commit() hands the open file to the commit thread, which fsyncs
 * every file of the batch, renames each from tmp/ to msg/, then fsyncs msg/
 * once for the whole batch (group commit) before the callbacks run in the
 * event loop.  Only then may the SMTP server say 250.
 */
#ifndef TERN_QUEUE_H
#define TERN_QUEUE_H

#include <stddef.h>
#include <sys/types.h>

#include "queue_file.h"

struct event_base;
struct queue_writer;

/* queue_init - create/open the queue directories, start the commit thread */
int queue_init(struct event_base *base, const char *dir);
/* queue_shutdown - finish pending commits, stop the thread */
void queue_shutdown(void);
const char *queue_dir(void);

/* queue_writer_open - allocate a unique queue id and create tmp/QID.
 * Returns NULL with errno set on failure. */
struct queue_writer *queue_writer_open(void);
const char *queue_writer_id(const struct queue_writer *w);

/* queue_writer_write - buffered append; errors are sticky (checked at commit) */
void queue_writer_write(struct queue_writer *w, const void *p, size_t n);
int queue_writer_failed(const struct queue_writer *w); /* errno of first failure or 0 */
off_t queue_writer_size(const struct queue_writer *w);

/* commit callback: err 0 = durable in msg/; else errno (ENOSPC, EIO ...) */
typedef void (*queue_commit_fn)(void *arg, const char *qid, int err);

/* queue_writer_commit - flush and commit asynchronously; the writer is
 * consumed.  cb runs later in the event loop (never from inside this call). */
void queue_writer_commit(struct queue_writer *w, queue_commit_fn cb, void *arg);
/* queue_writer_commit_sync - the same, done now in the calling thread;
 * returns 0 or -1 with errno.  For rare paths (forwarding), not for SMTP. */
int queue_writer_commit_sync(struct queue_writer *w);
/* queue_inject - queue a locally made message now (forwarded copies,
 * bounces): envelope from sender, addrs[n], body/smtputf8; text from `text`
 * (tlen octets) if non-NULL, else copied from fd starting at off to EOF.
 * Committed synchronously; newid (QID_LEN + 1) receives the id.  0 or -1. */
int queue_inject(const char *sender, char *const *addrs, size_t n, int body, int smtputf8,
                 const char *text, size_t tlen, int fd, off_t off, char *newid);
/* queue_writer_abort - discard the file; the writer is consumed */
void queue_writer_abort(struct queue_writer *w);

/* queue_recover - delete everything in tmp/, call fn for every valid message in msg/
 * (invalid ones move to corrupt/).  Returns the number of messages. */
typedef void (*queue_recover_fn)(void *arg, const char *qid);
long queue_recover(queue_recover_fn fn, void *arg);

/* queue_path - "DIR/msg/QID" into out */
void queue_path(const char *qid, char *out, size_t outsz);

/* queue_set_rcpt_state - rewrite the state byte of recipient records; the
 * caller fsyncs once with queue_sync_fd() after a batch of changes. */
int queue_set_rcpt_state(int fd, off_t state_off, char state);
int queue_sync_fd(int fd);
/* queue_remove - unlink msg/QID */
int queue_remove(const char *qid);

#endif
