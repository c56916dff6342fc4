/* local.h - local delivery: recipient resolution, alias expansion, mailboxes.
 *
 * Runs in the local delivery worker processes (see docs/ARCHITECTURE.md);
 * local_recipient_ok() is also used by the SMTP server at RCPT time.
 */
#ifndef TERN_LOCAL_H
#define TERN_LOCAL_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "aliases.h"
#include "config.h"

struct local_ctx {
    const struct config *cfg;
    const struct alias_db *aliases;  /* may be NULL: no aliases */
};

/* The message to deliver: its text (LF line ends, already starting with
 * tern's Received: header) is body_len bytes at offset body_off of fd. */
struct local_msg {
    const char *qid;
    const char *sender;     /* envelope sender, "" for the null sender */
    int fd;
    off_t body_off;
    off_t body_len;
    time_t arrival;
};

enum deliver_status { DELIVER_OK = 0, DELIVER_TEMP, DELIVER_PERM };

struct deliver_result {
    enum deliver_status status;
    char dsn[16];       /* "2.0.0", "4.2.0", "5.1.1" ... */
    char text[512];     /* "delivered to maildir", "cannot open mailbox: ..." */
};

/* local_recipient_ok - is local part `local` (quoting removed, extension
 * included) a deliverable local recipient?  True for aliases (after
 * stripping recipient_delimiter extension), for existing users (getpwnam, or
 * any safe name when mailbox_base is set), and always for postmaster. */
int local_recipient_ok(const struct local_ctx *ctx, const char *local);

/* forward callback: a non-local address an alias expanded to */
typedef void (*local_forward_fn)(void *arg, const char *address);

/* local_deliver - deliver msg to the local recipient `rcpt` (local@domain
 * with domain in mydestination).  Strips the extension, expands aliases
 * recursively (loop detection, postmaster -> root when unaliased), writes
 * each mailbox/file, runs each command, and calls forward() for each
 * non-local target.  The result is the worst over all targets. */
void local_deliver(const struct local_ctx *ctx, const struct local_msg *msg, const char *rcpt,
                   local_forward_fn forward, void *forward_arg, struct deliver_result *res);

/* local_is_mydestination - domain (case-insensitive) is one of mydestination */
int local_is_mydestination(const struct config *cfg, const char *domain);

/* Mailbox writers (also used directly by tests).  `prepend` is text (LF line
 * ends) put before the message: Return-Path:, Delivered-To:.  When running
 * as root the caller has already switched to the recipient's uid/gid
 * (setfsuid) so files are created with the right owner. */
int maildir_deliver(const char *maildir, const struct local_msg *msg, const char *prepend,
                    struct deliver_result *res);
int mbox_deliver(const char *path, const struct local_msg *msg, const char *prepend,
                 struct deliver_result *res);

#endif
