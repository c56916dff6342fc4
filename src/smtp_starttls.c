/* smtp_starttls.c - STARTTLS (RFC 3207) and the TLS handshake of server sessions */
#include "daemon.h"
#include "log.h"
#include "smtp_internal.h"
#include "tls.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <stdio.h>
#include <string.h>

/* cmd_starttls - RFC 3207: 220, then TLS; what the client pipelined after
 * STARTTLS is discarded (CVE-2011-0411) and the session starts over */
void cmd_starttls(struct smtp_session *s, const char *args)
{
    if (*args) {
        smtp_reply(s, R_SYNTAX, "STARTTLS");
        return;
    }
    if (s->tls || s->tls_pending) {
        smtp_reply(s, R_BAD_SEQ, "TLS already active");
        return;
    }
    if (!tls_server_available() || s->kind == LISTEN_SMTPS) {
        smtp_reply(s, R_NO_TLS);
        return;
    }
    SSL *ssl = tls_server_ssl();
    if (ssl == NULL) {
        smtp_reply(s, R_TLS_UNAVAIL);
        return;
    }
    smtp_reply(s, R_TLS_GO);
    struct bufferevent *plain = s->bev;
    struct evbuffer *in = bufferevent_get_input(plain);
    size_t junk = evbuffer_get_length(in);
    if (junk > 0) {
        log_warnx("%s[%s]: %zu octets pipelined after STARTTLS discarded", s->client_name,
                  s->client_addr, junk);
        evbuffer_drain(in, junk);
    }
    s->bev = bufferevent_openssl_filter_new(tern.base, plain, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                            BEV_OPT_CLOSE_ON_FREE);
    if (s->bev == NULL) {
        SSL_free(ssl);
        s->bev = plain;
        session_close(s);
        return;
    }
    s->tls_pending = 1;
    session_bev_setup(s);
    /* forget everything said before TLS */
    transaction_reset(s);
    s->helo[0] = '\0';
    s->esmtp = 0;
    s->auth_user[0] = '\0';
}

/* tls_established - the handshake is complete: from now on the session is
 * TLS.  Called from the CONNECTED event and before reading, since data that
 * came with the client's Finished can reach the read callback first. */
void tls_established(struct smtp_session *s)
{
    SSL *ssl = bufferevent_openssl_get_ssl(s->bev);
    if (!s->tls_pending || ssl == NULL || !SSL_is_init_finished(ssl))
        return;
    s->tls_pending = 0;
    s->tls = 1;
    tls_describe(ssl, s->tls_info, sizeof(s->tls_info));
    log_info("Anonymous TLS connection established from %s[%s]: %s", s->client_name,
             s->client_addr, s->tls_info);
}

/* tls_event - handshake finished or failed */
int tls_event(struct smtp_session *s, short what)
{
    if (what & BEV_EVENT_CONNECTED) {
        tls_established(s);
        return 1;
    }
    if (s->tls_pending && (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF))) {
        unsigned long e = bufferevent_get_openssl_error(s->bev);
        char why[256] = "lost connection";
        if (e)
            ERR_error_string_n(e, why, sizeof(why));
        log_info("SSL_accept error from %s[%s]: %s", s->client_name, s->client_addr, why);
        session_free(s);
        return 1;
    }
    return 0;
}
