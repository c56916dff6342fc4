/* smtp_internal.h - the SMTP session, shared by smtp_session.c and smtp_auth.c only */
#ifndef TERN_SMTP_INTERNAL_H
#define TERN_SMTP_INTERNAL_H

#include <sys/socket.h>

#include "addr.h"
#include "smtp_cmd.h"
#include "smtp_data.h"
#include "smtp_reply.h"
#include "smtp_session.h"

#define CMD_LINE_MAX 512          /* RFC 5321 4.5.3.1.4, including CRLF */
#define OUTPUT_PAUSE (256 * 1024) /* stop reading commands while this much is unsent */
#define INPUT_HIGHWAT (256 * 1024)

enum session_state {
    S_CONNECT,   /* looking up the client's name; greeting not sent yet */
    S_CMD,       /* reading commands */
    S_DATA,      /* reading DATA text */
    S_BDAT,      /* reading a BDAT chunk */
    S_COMMIT,    /* waiting for the queue commit */
    S_AUTH,      /* AUTH exchange: reading a base64 response line */
    S_AUTH_WAIT, /* AUTH: checking the password (work thread) or delaying a failure */
    S_CLOSING,   /* reply sent, waiting for output to drain */
};

/* A commit in flight.  It outlives its session if the client goes away:
 * the message is durable either way and must still be scheduled. */
struct commit_ticket {
    struct smtp_session *session;  /* NULL once the session is gone */
};

struct smtp_rcpt {
    struct addr addr;
    struct rcpt_params params;
};

struct auth_job;

struct smtp_session {
    struct bufferevent *bev;
    enum listen_kind kind;
    struct dns_req *dns;         /* client name lookup in flight */
    struct event *close_ev;
    struct smtp_session *prev, *next;
    enum session_state state;
    char client_addr[64];
    char client_name[256];
    struct sockaddr_storage sa;
    int in_mynetworks;

    /* HELO/EHLO */
    char helo[256];
    int esmtp;

    /* transaction */
    int in_mail;
    struct addr sender;
    struct mail_params mp;
    struct smtp_rcpt *rcpts;
    size_t nrcpt, rcpt_cap;
    int bdat_used;               /* a BDAT chunk was seen in this transaction */
    unsigned long long bdat_size; /* octets announced by the current BDAT */
    unsigned long long bdat_left; /* octets of the current chunk still to read */
    int bdat_last;
    int bdat_discard;            /* chunk read only to stay in sync (bad sequence) */
    struct queue_writer *qw;
    struct smtp_data data;

    /* counters */
    int errors;
    int pause_output;
    int cmd_discarding;          /* inside an over-long command line */
    int peer_eof;                /* the client half-closed: answer what it sent, then close */
    struct commit_ticket *ticket;

    /* TLS */
    int tls;                     /* the TLS handshake completed */
    int tls_pending;             /* handshake under way */
    char tls_info[160];          /* "TLSv1.3 with cipher ..." */
    int tls_closed;              /* close_notify sent */
    int close_polls;             /* close_cb rounds waiting for output to drain */

    /* AUTH (smtp_auth.c) */
    char auth_user[256];         /* "" until authenticated */
    char auth_mech[16];          /* PLAIN / LOGIN during and after the exchange */
    int auth_step;               /* LOGIN: 1 = want user name, 2 = want password */
    char auth_login[256];        /* LOGIN: the user name given */
    int auth_failures;
    struct auth_job *auth_job;   /* password check in flight */
    struct event *auth_delay;    /* failure reply delay */

    int ncmd[CMD__COUNT];
    int ncmd_bad[CMD__COUNT];
};

/* smtp_reply - THE reply function (smtp_session.c) */
void smtp_reply(struct smtp_session *s, enum reply_id id, ...);
/* session_process - handle buffered input until the session must wait */
void session_process(struct smtp_session *s);
void session_close(struct smtp_session *s);
/* session_read_line - take one line of at most max octets (incl. CRLF) off
 * the input into line (size max); returns its length (CRLF removed), -1 if
 * no complete line yet, -2 if the line was bad and has been answered. */
long session_read_line(struct smtp_session *s, char *line, size_t max);

/* session_bev_setup - callbacks, limits and timeouts of s->bev */
void session_bev_setup(struct smtp_session *s);
void session_free(struct smtp_session *s);
/* transaction_reset - forget MAIL, RCPT and any message being received */
void transaction_reset(struct smtp_session *s);

/* smtp_starttls.c */
void cmd_starttls(struct smtp_session *s, const char *args);
/* tls_established - mark the session TLS once the handshake is complete */
void tls_established(struct smtp_session *s);
/* tls_event - handle handshake completion or failure; 1 if the event was consumed */
int tls_event(struct smtp_session *s, short what);

/* smtp_auth.c */
int auth_offered(const struct smtp_session *s);
void cmd_auth(struct smtp_session *s, const char *args);
/* auth_continue - S_AUTH: read and handle one response line; 1 if progress */
int auth_continue(struct smtp_session *s);
/* auth_release - the session is going away */
void auth_release(struct smtp_session *s);

#endif
