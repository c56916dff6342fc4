/* smtpc.h - outbound SMTP / LMTP client: one connection, one transaction
 *
 * Delivers one queued message to one next-hop address in the event loop and
 * reports a result per recipient.  Connection reuse and concurrency limits
 * belong to the caller (qmgr); this module speaks the protocol carefully:
 * EHLO then HELO fallback, PIPELINING when offered, SIZE announced,
 * 8BITMIME/SMTPUTF8 honoured, DSN parameters passed on when offered,
 * opportunistic or required STARTTLS, AUTH PLAIN/LOGIN for a smarthost,
 * RFC 5321 4.5.3.2 client timeouts, dot-stuffing with CRLF line ends.
 */
#ifndef TERN_SMTPC_H
#define TERN_SMTPC_H

#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

struct event_base;

enum smtpc_tls { SMTPC_TLS_NONE, SMTPC_TLS_MAY, SMTPC_TLS_ENCRYPT, SMTPC_TLS_VERIFY, SMTPC_TLS_WRAPPER };

struct smtpc_rcpt {
    const char *addr;
    int notify;             /* NOTIFY_* bits from smtp_cmd.h, 0 = none */
    const char *orcpt_type; /* NULL = none */
    const char *orcpt;
    /* results */
    int code;               /* final reply code for this recipient (0 = not tried) */
    char esc[16];
    char text[512];         /* the peer's reply, one line, sanitised */
};

struct smtpc_job {
    /* where */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char host[256];         /* peer name for logs, SNI and verification */
    int lmtp;               /* LHLO and one reply per recipient after the data */
    enum smtpc_tls tls;
    const char *ca_file;    /* SMTPC_TLS_VERIFY: CA bundle (NULL: system default) */
    const char *auth_user;  /* smarthost AUTH (NULL: none); only over TLS unless tls == NONE */
    const char *auth_pass;
    const char *helo_name;  /* myhostname */
    int timeout_scale;      /* 1 = RFC 5321 timeouts; tests use larger values to shrink them
                               (seconds are divided by this) */
    /* what */
    const char *sender;     /* "" = null sender */
    struct smtpc_rcpt *rcpts;
    size_t nrcpt;
    int body_8bit;          /* BODY=8BITMIME was given */
    int smtputf8;
    int ret;                /* enum dsn_ret */
    const char *envid;
    int fd;                 /* the message text, LF line ends */
    off_t off, len;
    /* outcome */
    int status;             /* 0 = transaction done (see per-recipient codes);
                               4xx/5xx = the whole attempt failed with that code (connection,
                               greeting, MAIL, DATA...): applies to every recipient not coded */
    char reply[512];        /* text for status (the peer's reply or "connect: ...") */
    char tls_info[160];     /* "TLSv1.3 with cipher ..." when TLS was used */
};

typedef void (*smtpc_done_fn)(void *arg, struct smtpc_job *job);

/* smtpc_start - begin delivering; done() runs from the event loop when the
 * attempt is over (never inside smtpc_start).  Returns a handle for
 * smtpc_cancel, which stops the attempt without calling done(). */
struct smtpc_conn;
struct smtpc_conn *smtpc_start(struct event_base *base, struct smtpc_job *job, smtpc_done_fn done,
                               void *arg);
void smtpc_cancel(struct smtpc_conn *c);

#endif
