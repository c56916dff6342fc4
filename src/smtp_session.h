/* smtp_session.h - one SMTP server session (RFC 5321 and extensions) */
#ifndef TERN_SMTP_SESSION_H
#define TERN_SMTP_SESSION_H

#include <event2/util.h>
#include <sys/socket.h>

/* the services a listener offers */
enum listen_kind {
    LISTEN_SMTP,        /* port 25: STARTTLS offered, AUTH optional */
    LISTEN_SUBMISSION,  /* port 587: STARTTLS offered, AUTH required before MAIL */
    LISTEN_SMTPS,       /* port 465: implicit TLS, AUTH required before MAIL */
};

/* smtp_session_start - take over an accepted socket */
void smtp_session_start(evutil_socket_t fd, const struct sockaddr *sa, socklen_t len,
                        enum listen_kind kind);
/* smtp_sessions_shutdown - say 421 to idle sessions and close them; busy ones close
 * after their current transaction */
void smtp_sessions_shutdown(void);
/* smtp_sessions_abort - drop every session now (abandons uncommitted messages) */
void smtp_sessions_abort(void);
long smtp_sessions_count(void);

#endif
