/* dsn.h - delivery status notifications (RFC 3464 bounces and success/delay reports) */
#ifndef TERN_DSN_H
#define TERN_DSN_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

struct buf;

struct dsn_rcpt {
    const char *final_rcpt;     /* the recipient tern tried (address) */
    const char *orcpt_type;     /* ORCPT type ("rfc822", "utf-8") or NULL */
    const char *orcpt;          /* ORCPT value (decoded) or NULL */
    const char *action;         /* "failed", "delayed", "delivered", "relayed", "expanded" */
    const char *status;         /* "5.1.1" */
    const char *remote_mta;     /* "mx.example.net" or NULL */
    const char *diag;           /* the peer's reply ("550 5.1.1 no such user") or NULL */
    const char *diag_type;      /* "smtp" (default when NULL) or "x-unix" */
    time_t last_attempt;        /* 0: omit Last-Attempt-Date */
};

struct dsn_msg {
    const char *reporting_mta;  /* myhostname */
    const char *from;           /* "MAILER-DAEMON@myhostname" */
    const char *to;             /* the original envelope sender (never empty: no DSN to <>) */
    const char *qid;            /* queue id of the original message */
    const char *envid;          /* ENVID or NULL */
    time_t arrival;             /* Arrival-Date of the original */
    time_t now;                 /* Date of the report */
    int ret_hdrs;               /* return only the headers (RET=HDRS, or original too big) */
    int smtputf8;               /* original used SMTPUTF8: message/global-* types (RFC 6533) */
};

/* dsn_build - append a complete report message (header and multipart/report
 * body, LF line ends, ready to be queued with the null sender) to out: a
 * human-readable text part naming each recipient and reason, a
 * message/delivery-status part (per-message fields: Reporting-MTA,
 * X-Postfix-Queue-ID-like X-Tern-Queue-ID, Original-Envelope-Id, Arrival-Date; per
 * recipient: Original-Recipient, Final-Recipient, Action, Status, Remote-MTA,
 * Diagnostic-Code, Last-Attempt-Date), and the original message
 * (message/rfc822) or its headers (text/rfc822-headers), read from fd at
 * [off, off + len) with LF line ends.  Every field value is folded/sanitised so
 * no CR/LF or control byte from a peer or client can inject header lines.
 * The subject says what happened ("Undelivered Mail Returned to Sender",
 * "Delayed Mail (still being retried)", "Successful Mail Delivery Report").
 * Returns 0, or -1 on a read error. */
int dsn_build(const struct dsn_msg *m, const struct dsn_rcpt *r, size_t n, int fd, off_t off,
              off_t len, struct buf *out);

#endif
