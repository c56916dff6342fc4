/* tls.c - server-side TLS context: TLS 1.2+ only, modern ciphers, reloadable */
#include "tls.h"
#include "config.h"
#include "log.h"

#include <openssl/err.h>
#include <stdio.h>
#include <string.h>

static SSL_CTX *server_ctx;

static void ssl_error(char *err, size_t errsz, const char *what, const char *file)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "";
    if (e)
        ERR_error_string_n(e, buf, sizeof(buf));
    ERR_clear_error();
    snprintf(err, errsz, "%s %s: %s", what, file, buf[0] ? buf : "failed");
}

int tls_server_load(const struct config *cfg, char *err, size_t errsz)
{
    if (cfg->smtpd_tls_cert_file[0] == '\0') {
        tls_server_free();
        return 0;
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        ssl_error(err, errsz, "SSL_CTX_new", "");
        return -1;
    }
    int minv = strcmp(cfg->smtpd_tls_min_version, "TLSv1.3") == 0 ? TLS1_3_VERSION : TLS1_2_VERSION;
    if (strcmp(cfg->smtpd_tls_min_version, "TLSv1.2") != 0 && minv != TLS1_3_VERSION) {
        snprintf(err, errsz, "smtpd_tls_min_version: TLSv1.2 or TLSv1.3, not \"%s\"",
                 cfg->smtpd_tls_min_version);
        SSL_CTX_free(ctx);
        return -1;
    }
    SSL_CTX_set_min_proto_version(ctx, minv);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS); /* idle sessions hold no TLS buffers */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (SSL_CTX_set_cipher_list(ctx, cfg->smtpd_tls_ciphers) != 1) {
        ssl_error(err, errsz, "smtpd_tls_ciphers", cfg->smtpd_tls_ciphers);
        SSL_CTX_free(ctx);
        return -1;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->smtpd_tls_cert_file) != 1) {
        ssl_error(err, errsz, "cannot load certificate", cfg->smtpd_tls_cert_file);
        SSL_CTX_free(ctx);
        return -1;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, cfg->smtpd_tls_key_file, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        ssl_error(err, errsz, "cannot load private key", cfg->smtpd_tls_key_file);
        SSL_CTX_free(ctx);
        return -1;
    }
    tls_server_free(); /* SSL objects keep their own reference to the old context */
    server_ctx = ctx;
    return 0;
}

int tls_server_available(void)
{
    return server_ctx != NULL;
}

SSL *tls_server_ssl(void)
{
    return server_ctx ? SSL_new(server_ctx) : NULL;
}

void tls_describe(SSL *ssl, char *out, size_t outsz)
{
    int alg = 0;
    const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
    int bits = c ? SSL_CIPHER_get_bits(c, &alg) : 0;
    snprintf(out, outsz, "%s with cipher %s (%d/%d bits)", SSL_get_version(ssl),
             c ? SSL_CIPHER_get_name(c) : "unknown", bits, alg);
}

void tls_server_free(void)
{
    if (server_ctx)
        SSL_CTX_free(server_ctx);
    server_ctx = NULL;
}
