/* smtpc.h - outbound SMTP / LMTP client: one transaction at a time per connection
 *
 * Delivers one queued message to one next-hop address in the event loop and
 * reports a result per recipient.  With job->reuse a healthy connection is
 * kept idle after the transaction, for the caller to run the next one on it
 * (smtpc_next) or to close it (smtpc_release); which connection to reuse and
 * concurrency limits belong to the caller (qmgr).  This module speaks the
 * protocol carefully:
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
    int tls_verify;         /* with SMTPC_TLS_WRAPPER: check the certificate as VERIFY does */
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
    int reuse;              /* keep a healthy connection idle afterwards (see smtpc_next) */
    /* outcome (every attempt sets all of it) */
    int status;             /* 0 = transaction done (see per-recipient codes);
                               4xx/5xx = the whole attempt failed with that code (connection,
                               greeting, MAIL, DATA...): applies to every recipient not coded */
    char reply[512];        /* text for status (the peer's reply or "connect: ...") */
    char tls_info[160];     /* "TLSv1.3 with cipher ..." when TLS was used */
    int reusable;           /* 1: the connection is idle and now the caller's (see below) */
    int session_failed;     /* 1: status != 0 and the attempt failed before MAIL FROM was sent
                               (connect, greeting, EHLO/HELO/LHLO, STARTTLS, TLS, AUTH): another
                               MX host may do better.  0 otherwise (also for refusals of the
                               message made here, e.g. SIZE or SMTPUTF8) */
    int peer_dsn;           /* the peer offered DSN (RFC 3461) in its EHLO reply */
    double t_begin;         /* gettimeofday() seconds: smtpc_start / smtpc_next was called, */
    double t_ready;         /* MAIL FROM was about to be sent (= t_begin for smtpc_next;
                               = t_end if the session never got that far), */
    double t_end;           /* done() is about to be called */
    char peer_addr[80];     /* "host[ip]:port" ("host[path]" for AF_UNIX), as Postfix's relay= */
};

typedef void (*smtpc_done_fn)(void *arg, struct smtpc_job *job);

/* smtpc_start - begin delivering; done() runs from the event loop when the
 * attempt is over (never inside smtpc_start).  Returns a handle for
 * smtpc_cancel, which stops the attempt without calling done().
 *
 * Without job->reuse the connection is closed (QUIT) and the handle freed
 * before done() runs: job->reusable is 0.  With job->reuse, a transaction that
 * ends with the session healthy (the final reply to the end of data, all of
 * them for LMTP; or MAIL, every RCPT or DATA refused, then RSET answered 250;
 * or a refusal made here before MAIL; never after a 421) leaves the connection idle instead, and
 * done() reports job->reusable = 1: the handle then belongs to the caller, who
 * must call exactly one of smtpc_next, smtpc_release or smtpc_cancel on it.
 * The job may be freed once done() has been called.
 *
 * While idle, anything from the peer (a 421, EOF, an error) or 300 s
 * (divided by timeout_scale) without use closes the socket, with no
 * callback; smtpc_next reports it then. */
struct smtpc_conn;
struct smtpc_conn *smtpc_start(struct event_base *base, struct smtpc_job *job, smtpc_done_fn done,
                               void *arg);

/* smtpc_next - run the transaction of job on the idle connection c: same peer
 * and TLS/AUTH session, so job->addr, addrlen, host, lmtp, tls, ca_file,
 * auth_*, helo_name are ignored (host, lmtp, tls_info and peer_addr of the
 * connection are copied into job).  Starts with MAIL FROM, pipelined when
 * the peer offered PIPELINING.  Returns 0: done() follows from the event loop
 * (never inside smtpc_next), as for smtpc_start.  Returns -1 if the connection
 * was closed or broke while idle: c is freed, done() is not called, and the
 * caller makes a fresh connection. */
int smtpc_next(struct smtpc_conn *c, struct smtpc_job *job, smtpc_done_fn done, void *arg);

/* smtpc_release - give up the idle connection c: QUIT is sent and c freed in
 * the background once the peer answers or closes, or after at most 5 s; no
 * callback.  This needs the event loop to keep running: at shutdown, right
 * before event_base_free, use smtpc_cancel instead. */
void smtpc_release(struct smtpc_conn *c);
/* smtpc_shutdown - free every released connection whose QUIT is not over yet (before the
 * event base goes away) */
void smtpc_shutdown(void);

/* smtpc_cancel - stop the attempt without calling done(), or drop an idle
 * connection: everything is freed at once, nothing more is sent.  NULL is ignored. */
void smtpc_cancel(struct smtpc_conn *c);

#endif
