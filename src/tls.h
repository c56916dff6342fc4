/* tls.h - the server TLS context (OpenSSL 3) */
#ifndef TERN_TLS_H
#define TERN_TLS_H

#include <stddef.h>
#include <openssl/ssl.h>

struct config;

/* tls_server_load - build a new context from smtpd_tls_* settings and make
 * it current (the old one stays alive for sessions using it).  cert_file
 * empty: TLS is off (returns 0).  On error returns -1, err says why, and the
 * current context is kept (SIGHUP with a broken key changes nothing). */
int tls_server_load(const struct config *cfg, char *err, size_t errsz);
int tls_server_available(void);
/* tls_server_ssl - a new SSL object for one connection, or NULL */
SSL *tls_server_ssl(void);
/* tls_describe - "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)" */
void tls_describe(SSL *ssl, char *out, size_t outsz);
void tls_server_free(void);

#endif
