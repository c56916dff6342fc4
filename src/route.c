/* route.c - where a recipient's mail goes: transport, next hop, TLS level, SASL credentials
 *
 * The three map files are small "KEY  VALUE" tables kept sorted by their lower-case key and
 * searched with bsearch.  Values are parsed when the file is read, so a typo is reported with
 * its file and line at startup (or SIGHUP) and never at delivery time.  Route keys are
 * computed at lookup time because they depend on smtp_port.
 */
#include "route.h"

#include "config.h"
#include "mapfile.h"
#include "xmalloc.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LMTP_PORT 24
#define DEFAULT_ERROR "mail for this destination is refused"

/* ---- map tables --------------------------------------------------------------------------- */

struct entry {
    char *key; /* lower case */
    unsigned long line;
    void *val; /* struct route (transport), struct tls_val, struct sasl_val */
};

struct table {
    struct entry *e; /* sorted by key */
    size_t n;
    void (*val_free)(void *val);
};

struct tls_val {
    enum smtpc_tls level;
    int wrapper_verify;
};

struct sasl_val {
    char *user;
    char *pass;
};

struct route_maps {
    struct table transport; /* values: template routes; ROUTE_SMTP with spec "" = the domain */
    struct table tls;
    struct table sasl;
};

/* key_check - validate a destination key (lower case); NULL, or why not */
typedef const char *(*key_fn)(const char *key);
/* value_parse - parse the rest of a line into *val (allocated); NULL, or why not */
typedef const char *(*value_fn)(char *value, void **val);

/* has_control - does s contain a control byte? */
static int has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 1;
    return 0;
}

/* lower_copy - s in lower case, without one trailing dot (unless s is "."), into out;
 * 0, or -1 when it does not fit */
static int lower_copy(const char *s, char *out, size_t outsz)
{
    size_t n = strlen(s);
    if (n > 1 && s[n - 1] == '.')
        n--;
    if (n >= outsz)
        return -1;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)tolower((unsigned char)s[i]);
    out[n] = '\0';
    return 0;
}

/* rtrim - drop trailing white space (and the line end) in place */
static void rtrim(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
}

/* table_free - release the entries of t */
static void table_free(struct table *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->e[i].key);
        if (t->val_free != NULL)
            t->val_free(t->e[i].val);
        else
            free(t->e[i].val);
    }
    free(t->e);
    t->e = NULL;
    t->n = 0;
}

/* parse_line - "KEY  VALUE" (line end already trimmed) into e; NULL, or why not */
static const char *parse_line(char *s, struct entry *e, key_fn keyf, value_fn valf)
{
    s += strspn(s, " \t");
    char *k = s;
    s += strcspn(s, " \t");
    if (*s != '\0')
        *s++ = '\0';
    s += strspn(s, " \t");
    if (has_control(k))
        return "control character in destination";
    char lk[300];
    if (lower_copy(k, lk, sizeof(lk)) < 0)
        return "destination too long";
    const char *why = keyf(lk);
    if (why != NULL)
        return why;
    if (*s == '\0')
        return "destination without a value";
    why = valf(s, &e->val);
    if (why != NULL)
        return why;
    e->key = xstrdup(lk);
    return NULL;
}

/* entry_cmp - qsort order: by key, then line */
static int entry_cmp(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c != 0 ? c : (x->line > y->line) - (x->line < y->line);
}

/* table_reader - where table_line puts the entries of one map file */
struct table_reader {
    struct table *t;
    size_t alloc;
    key_fn keyf;
    value_fn valf;
};

/* table_line - mapfile_line_fn: one "KEY  VALUE" line into the table */
static const char *table_line(void *arg, char *line, unsigned long lineno)
{
    struct table_reader *r = arg;
    struct table *t = r->t;
    rtrim(line);
    t->e = xgrow(t->e, t->n, &r->alloc, sizeof(*t->e));
    struct entry *e = &t->e[t->n];
    memset(e, 0, sizeof(*e));
    e->line = lineno;
    const char *why = parse_line(line, e, r->keyf, r->valf);
    if (why == NULL)
        t->n++;
    return why;
}

/* load_table - read path (empty: no map) into t; 0, or -1 with err set */
static int load_table(const char *path, struct table *t, key_fn keyf, value_fn valf, char *err,
                      size_t errsz)
{
    if (path == NULL || path[0] == '\0')
        return 0;
    struct table_reader r = {t, 0, keyf, valf};
    int rc = mapfile_load(path, table_line, &r, err, errsz);
    if (rc < 0 || t->n < 2)
        return rc;
    qsort(t->e, t->n, sizeof(*t->e), entry_cmp);
    for (size_t i = 1; i < t->n; i++) {
        if (strcmp(t->e[i - 1].key, t->e[i].key) == 0) {
            char why[80];
            snprintf(why, sizeof(why), "duplicate destination (first on line %lu)",
                     t->e[i - 1].line);
            return mapfile_fail(err, errsz, path, t->e[i].line, why);
        }
    }
    return 0;
}

/* key_cmp - bsearch: a key against an entry */
static int key_cmp(const void *key, const void *elem)
{
    return strcmp(key, ((const struct entry *)elem)->key);
}

/* table_get - the value for key (lower case), or NULL */
static const void *table_get(const struct table *t, const char *key)
{
    if (t->n == 0 || key == NULL || key[0] == '\0')
        return NULL;
    const struct entry *e = bsearch(key, t->e, t->n, sizeof(*t->e), key_cmp);
    return e != NULL ? e->val : NULL;
}

/* table_get_domain - the value for domain (lower case), else for its ".parent" entries */
static const void *table_get_domain(const struct table *t, const char *domain)
{
    const void *v = table_get(t, domain);
    if (v != NULL || domain == NULL || domain[0] == '[')
        return v;
    for (const char *p = strchr(domain, '.'); p != NULL && v == NULL; p = strchr(p + 1, '.'))
        v = table_get(t, p);
    return v;
}

/* ---- next hops ---------------------------------------------------------------------------- */

/* is_ipv4 / is_ipv6 - address text as inet_pton reads it */
static int is_ipv4(const char *s)
{
    struct in_addr a;
    return inet_pton(AF_INET, s, &a) == 1;
}

static int is_ipv6(const char *s)
{
    struct in6_addr a;
    return inet_pton(AF_INET6, s, &a) == 1;
}

/* host_name_ok - a host name ([A-Za-z0-9._-], no empty label) or an IPv4 address */
static int host_name_ok(const char *h)
{
    size_t n = strlen(h);
    if (n == 0 || n >= sizeof(((struct nexthop *)0)->host))
        return 0;
    if (strspn(h, "0123456789.") == n)
        return is_ipv4(h);
    if (h[0] == '.' || h[0] == '-' || strstr(h, "..") != NULL)
        return 0;
    for (const char *p = h; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-' && *p != '_')
            return 0;
    return 1;
}

/* parse_port - 1..65535, digits only; the port or -1 */
static int parse_port(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 5 || strspn(s, "0123456789") != n)
        return -1;
    int p = atoi(s);
    return p >= 1 && p <= 65535 ? p : -1;
}

/* parse_bracketed - "[host]" or "[host]:port" into out (mx = 0); 0 or -1 */
static int parse_bracketed(const char *s, struct nexthop *out)
{
    const char *close = strchr(s, ']');
    if (close == NULL)
        return -1;
    size_t n = (size_t)(close - s - 1);
    if (n == 0 || n >= sizeof(out->host))
        return -1;
    char h[sizeof(out->host)];
    memcpy(h, s + 1, n);
    h[n] = '\0';
    const char *addr = h;
    if (strchr(h, ':') != NULL) {
        if (strncasecmp(h, "ipv6:", 5) == 0)
            addr += 5;
        if (!is_ipv6(addr))
            return -1;
    } else if (!host_name_ok(h)) {
        return -1;
    }
    if (close[1] != '\0') {
        if (close[1] != ':' || (out->port = parse_port(close + 2)) < 0)
            return -1;
    }
    snprintf(out->host, sizeof(out->host), "%s", addr);
    return 0;
}

/* parse_plain - "host" or "host:port"; 0 or -1 */
static int parse_plain(const char *s, int lmtp, struct nexthop *out)
{
    const char *colon = strchr(s, ':');
    size_t n = colon != NULL ? (size_t)(colon - s) : strlen(s);
    if (colon != NULL && strchr(colon + 1, ':') != NULL)
        return -1; /* an IPv6 address must be bracketed */
    if (n == 0 || n >= sizeof(out->host))
        return -1;
    memcpy(out->host, s, n);
    out->host[n] = '\0';
    if (!host_name_ok(out->host))
        return -1;
    if (colon != NULL && (out->port = parse_port(colon + 1)) < 0)
        return -1;
    out->mx = !lmtp && !is_ipv4(out->host);
    return 0;
}

int nexthop_parse(const char *s, int lmtp, struct nexthop *out)
{
    memset(out, 0, sizeof(*out));
    if (s == NULL || s[0] == '\0' || strlen(s) >= sizeof(((struct route *)0)->spec))
        return -1;
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return -1;
    int rc;
    if (lmtp && strncasecmp(s, "unix:", 5) == 0) {
        const char *path = s + 5;
        if (path[0] != '/' || strlen(path) >= sizeof(out->host))
            return -1;
        snprintf(out->host, sizeof(out->host), "%s", path);
        out->unix_sock = 1;
        return 0;
    }
    if (lmtp && strncasecmp(s, "inet:", 5) == 0)
        s += 5;
    if (s[0] == '[')
        rc = parse_bracketed(s, out);
    else
        rc = parse_plain(s, lmtp, out);
    if (rc < 0)
        memset(out, 0, sizeof(*out));
    return rc;
}

/* canon_host - a host for a route key: IP addresses in canonical form, names in lower case
 * without a trailing dot */
static void canon_host(const char *h, char *out, size_t outsz)
{
    struct in6_addr a6;
    struct in_addr a4;
    char t[INET6_ADDRSTRLEN];
    if (inet_pton(AF_INET6, h, &a6) == 1 && inet_ntop(AF_INET6, &a6, t, sizeof(t)) != NULL)
        snprintf(out, outsz, "%s", t);
    else if (inet_pton(AF_INET, h, &a4) == 1 && inet_ntop(AF_INET, &a4, t, sizeof(t)) != NULL)
        snprintf(out, outsz, "%s", t);
    else if (lower_copy(h, out, outsz) < 0)
        snprintf(out, outsz, "%s", h);
}

/* make_key - fill r->key from its kind and next hop */
static void make_key(struct route *r, const struct config *cfg)
{
    char h[sizeof(r->hop.host)];
    int dflt = (int)cfg->smtp_port;
    switch (r->kind) {
    case ROUTE_LOCAL:
        snprintf(r->key, sizeof(r->key), "local");
        return;
    case ROUTE_ERROR:
        snprintf(r->key, sizeof(r->key), "error");
        return;
    case ROUTE_SMTP:
        canon_host(r->hop.host, h, sizeof(h));
        if (r->hop.mx && (r->hop.port == 0 || r->hop.port == dflt))
            snprintf(r->key, sizeof(r->key), "smtp:%s", h);
        else if (r->hop.mx)
            snprintf(r->key, sizeof(r->key), "smtp:%s:%d", h, r->hop.port);
        else
            snprintf(r->key, sizeof(r->key), "smtp:[%s]:%d", h, r->hop.port ? r->hop.port : dflt);
        return;
    case ROUTE_LMTP:
        if (r->hop.unix_sock) {
            snprintf(r->key, sizeof(r->key), "lmtp:unix:%s", r->hop.host);
            return;
        }
        canon_host(r->hop.host, h, sizeof(h));
        snprintf(r->key, sizeof(r->key), "lmtp:[%s]:%d", h, r->hop.port ? r->hop.port : LMTP_PORT);
        return;
    }
}

/* ---- transports --------------------------------------------------------------------------- */

/* esc_len - length of a leading enhanced status code "C.SSS.DDD" followed by space or end
 * (any class digit), or 0 */
static size_t esc_len(const char *s)
{
    if (!isdigit((unsigned char)s[0]) || s[1] != '.')
        return 0;
    size_t i = 2, d = strspn(s + i, "0123456789");
    if (d < 1 || d > 3 || s[i + d] != '.')
        return 0;
    i += d + 1;
    d = strspn(s + i, "0123456789");
    if (d < 1 || d > 3 || (s[i + d] != '\0' && s[i + d] != ' ' && s[i + d] != '\t'))
        return 0;
    return i + d;
}

/* set_error - r becomes ROUTE_ERROR with "CODE text" from the error transport's text */
static const char *set_error(struct route *r, const char *text)
{
    char t[sizeof(r->error)];
    for (const char *p = text; *p; p++)
        if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f)
            return "control character in error text";
    text += strspn(text, " \t");
    size_t cl = esc_len(text);
    if (cl > 0 && text[0] != '4' && text[0] != '5')
        return "error code must be 4.X.X or 5.X.X";
    const char *code = cl > 0 ? text : "5.0.0";
    size_t codelen = cl > 0 ? cl : 5;
    text += cl;
    text += strspn(text, " \t");
    if (text[0] == '\0')
        text = DEFAULT_ERROR;
    if ((size_t)snprintf(t, sizeof(t), "%.*s %s", (int)codelen, code, text) >= sizeof(t))
        return "error text too long";
    for (char *p = t; *p; p++)
        if (*p == '\t')
            *p = ' ';
    r->kind = ROUTE_ERROR;
    memcpy(r->error, t, sizeof(t));
    return NULL;
}

/* parse_transport - "transport[:nexthop]" into the template r; smtp_ok: smtp/relay/error
 * allowed (transport_maps) or only local/lmtp (local_transport); NULL, or why not */
static const char *parse_transport(const char *v, int smtp_ok, struct route *r)
{
    memset(r, 0, sizeof(*r));
    const char *colon = strchr(v, ':');
    size_t n = colon != NULL ? (size_t)(colon - v) : strlen(v);
    const char *nh = colon != NULL ? colon + 1 : "";
    if (smtp_ok && n == 5 && strncasecmp(v, "error", 5) == 0)
        return set_error(r, nh);
    if (has_control(v))
        return "control character in transport";
    if (smtp_ok && ((n == 4 && strncasecmp(v, "smtp", 4) == 0) ||
                    (n == 5 && strncasecmp(v, "relay", 5) == 0))) {
        r->kind = ROUTE_SMTP;
        if (nh[0] == '\0')
            return NULL; /* to the domain itself, MX */
        if (nexthop_parse(nh, 0, &r->hop) < 0)
            return "bad next hop";
        snprintf(r->spec, sizeof(r->spec), "%s", nh);
        return NULL;
    }
    if (n == 4 && strncasecmp(v, "lmtp", 4) == 0) {
        r->kind = ROUTE_LMTP;
        if (nh[0] == '\0')
            return "lmtp needs a next hop (unix:/path, host:port or [host]:port)";
        if (nexthop_parse(nh, 1, &r->hop) < 0)
            return "bad next hop";
        snprintf(r->spec, sizeof(r->spec), "%s", nh);
        return NULL;
    }
    if (n == 5 && strncasecmp(v, "local", 5) == 0) {
        if (nh[0] != '\0')
            return "local takes no next hop";
        r->kind = ROUTE_LOCAL;
        return NULL;
    }
    return smtp_ok ? "unknown transport (smtp, relay, lmtp, local or error)"
                   : "unknown transport (local or lmtp)";
}

/* transport_key - domain, .domain, * or an address literal */
static const char *transport_key(const char *k)
{
    if (strcmp(k, "*") == 0)
        return NULL;
    if (k[0] == '\0' || strcmp(k, ".") == 0 || strncmp(k, "..", 2) == 0)
        return "bad destination";
    if (strchr(k, '@') != NULL)
        return "destination must be a domain, .domain or *, not an address";
    return NULL;
}

/* transport_value - a transport_maps value */
static const char *transport_value(char *v, void **val)
{
    struct route r;
    const char *why = parse_transport(v, 1, &r);
    if (why == NULL) {
        *val = xmalloc(sizeof(r));
        memcpy(*val, &r, sizeof(r));
    }
    return why;
}

/* ---- TLS levels --------------------------------------------------------------------------- */

/* parse_level - a TLS level name; 0, or -1 when unknown */
static int parse_level(const char *s, enum smtpc_tls *level, int *wrapper_verify)
{
    static const struct {
        const char *name;
        enum smtpc_tls level;
        int wrapper_verify;
    } levels[] = {
        {"none", SMTPC_TLS_NONE, 0},        {"may", SMTPC_TLS_MAY, 0},
        {"encrypt", SMTPC_TLS_ENCRYPT, 0},  {"verify", SMTPC_TLS_VERIFY, 0},
        {"wrapper", SMTPC_TLS_WRAPPER, 0},  {"wrapper-verify", SMTPC_TLS_WRAPPER, 1},
    };
    for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
        if (strcasecmp(s, levels[i].name) == 0) {
            *level = levels[i].level;
            *wrapper_verify = levels[i].wrapper_verify;
            return 0;
        }
    }
    return -1;
}

/* tls_key - domain, .domain or a next hop as written */
static const char *tls_key(const char *k)
{
    if (strcmp(k, "*") == 0)
        return "\"*\" is not supported: set smtp_tls_security_level";
    if (k[0] == '\0' || strcmp(k, ".") == 0 || strncmp(k, "..", 2) == 0)
        return "bad destination";
    return NULL;
}

/* tls_value - a smtp_tls_policy_maps value: exactly one level */
static const char *tls_value(char *v, void **val)
{
    struct tls_val t;
    if (v[strcspn(v, " \t")] != '\0')
        return "expected \"destination level\"";
    if (parse_level(v, &t.level, &t.wrapper_verify) < 0)
        return "bad TLS level (none, may, encrypt, verify, wrapper or wrapper-verify)";
    *val = xmalloc(sizeof(t));
    memcpy(*val, &t, sizeof(t));
    return NULL;
}

/* ---- SASL passwords ----------------------------------------------------------------------- */

/* sasl_key - any next hop or domain */
static const char *sasl_key(const char *k)
{
    return k[0] == '\0' || strcmp(k, "*") == 0 ? "bad next hop" : NULL;
}

/* sasl_value - "user:password" */
static const char *sasl_value(char *v, void **val)
{
    char *colon = strchr(v, ':');
    if (colon == NULL)
        return "expected user:password";
    if (colon == v)
        return "empty user name";
    if (has_control(v))
        return "control character in user:password";
    struct sasl_val *s = xmalloc(sizeof(*s));
    s->user = xstrndup(v, (size_t)(colon - v));
    s->pass = xstrdup(colon + 1);
    *val = s;
    return NULL;
}

/* sasl_free - wipe and free a struct sasl_val */
static void sasl_free(void *val)
{
    struct sasl_val *s = val;
    if (s == NULL)
        return;
    explicit_bzero(s->user, strlen(s->user));
    explicit_bzero(s->pass, strlen(s->pass));
    free(s->user);
    free(s->pass);
    free(s);
}

/* ---- interface ---------------------------------------------------------------------------- */

struct route_maps *route_maps_load(const struct config *cfg, char *err, size_t errsz)
{
    struct route_maps *rm = xcalloc(1, sizeof(*rm));
    rm->sasl.val_free = sasl_free;
    if (load_table(cfg->transport_maps, &rm->transport, transport_key, transport_value, err,
                   errsz) < 0 ||
        load_table(cfg->smtp_tls_policy_maps, &rm->tls, tls_key, tls_value, err, errsz) < 0 ||
        load_table(cfg->smtp_sasl_password_maps, &rm->sasl, sasl_key, sasl_value, err,
                   errsz) < 0) {
        route_maps_free(rm);
        return NULL;
    }
    return rm;
}

void route_maps_free(struct route_maps *rm)
{
    if (rm == NULL)
        return;
    table_free(&rm->transport);
    table_free(&rm->tls);
    table_free(&rm->sasl);
    free(rm);
}

/* config_error - out becomes the temporary "4.3.5 configuration error: ..."; returns -1 */
static int config_error(struct route *out, const char *setting, const char *value)
{
    memset(out, 0, sizeof(*out));
    out->kind = ROUTE_ERROR;
    snprintf(out->error, sizeof(out->error), "4.3.5 configuration error: bad %s \"%.200s\"",
             setting, value);
    snprintf(out->key, sizeof(out->key), "error");
    return -1;
}

/* bad_domain - out becomes the permanent "5.1.2 bad destination domain"; returns 0 */
static int bad_domain(struct route *out)
{
    memset(out, 0, sizeof(*out));
    out->kind = ROUTE_ERROR;
    snprintf(out->error, sizeof(out->error), "5.1.2 bad destination domain");
    snprintf(out->key, sizeof(out->key), "error");
    return 0;
}

/* domain_ok - a plausible recipient domain (lower case): no space, control or
 * punctuation that a host name cannot have; UTF-8 allowed */
static int domain_ok(const char *d)
{
    if (d[0] == '\0' || d[0] == '.' || strstr(d, "..") != NULL)
        return 0;
    for (const char *p = d; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (!isalnum(c) && c < 0x80 && c != '.' && c != '-' && c != '_')
            return 0;
    }
    return 1;
}

/* literal_addr - the address of an address literal (lower case) "[1.2.3.4]" or
 * "[ipv6:addr]" into host; 0, or -1 when malformed */
static int literal_addr(const char *dom, char *host, size_t hostsz)
{
    size_t n = strlen(dom);
    if (n < 3 || dom[0] != '[' || dom[n - 1] != ']' || n - 2 >= hostsz)
        return -1;
    const char *a = dom + 1;
    int v6 = strncmp(a, "ipv6:", 5) == 0;
    if (v6)
        a += 5;
    snprintf(host, hostsz, "%.*s", (int)(dom + n - 1 - a), a);
    return (v6 ? is_ipv6(host) : is_ipv4(host)) ? 0 : -1;
}

/* route_direct - smtp to the domain itself (already checked): MX lookup, or the address of
 * a literal */
static int route_direct(const struct config *cfg, const char *dom, struct route *out)
{
    memset(out, 0, sizeof(*out));
    out->kind = ROUTE_SMTP;
    snprintf(out->spec, sizeof(out->spec), "%s", dom);
    if (dom[0] == '[') {
        if (literal_addr(dom, out->hop.host, sizeof(out->hop.host)) < 0)
            return bad_domain(out);
    } else {
        snprintf(out->hop.host, sizeof(out->hop.host), "%s", dom);
        out->hop.mx = 1;
    }
    make_key(out, cfg);
    return 0;
}

/* route_apply - out from a transport template for domain dom */
static int route_apply(const struct route *t, const struct config *cfg, const char *dom,
                       struct route *out)
{
    if (t->kind == ROUTE_SMTP && t->spec[0] == '\0')
        return route_direct(cfg, dom, out);
    *out = *t;
    make_key(out, cfg);
    return 0;
}

/* local_route - the route of local_transport */
static int local_route(const struct config *cfg, struct route *out)
{
    const char *lt = cfg->local_transport != NULL ? cfg->local_transport : "local";
    struct route t;
    if (parse_transport(lt, 0, &t) != NULL)
        return config_error(out, "local_transport", lt);
    return route_apply(&t, cfg, "", out);
}

int route_lookup(const struct route_maps *rm, const struct config *cfg, const char *domain,
                 struct route *out)
{
    char dom[256];
    memset(out, 0, sizeof(*out));
    char lit[sizeof(out->hop.host)];
    if (domain == NULL || lower_copy(domain, dom, sizeof(dom)) < 0)
        return bad_domain(out);
    if (dom[0] == '[' ? literal_addr(dom, lit, sizeof(lit)) < 0 : !domain_ok(dom))
        return bad_domain(out);
    const struct table *tm = rm != NULL ? &rm->transport : NULL;
    const struct route *t = tm != NULL ? table_get_domain(tm, dom) : NULL;
    if (t != NULL)
        return route_apply(t, cfg, dom, out);
    if (config_list_contains(cfg->mydestination, dom))
        return local_route(cfg, out);
    if (tm != NULL && (t = table_get(tm, "*")) != NULL)
        return route_apply(t, cfg, dom, out);
    const char *relay = cfg->relayhost != NULL ? cfg->relayhost : "";
    if (relay[0] != '\0') {
        if (nexthop_parse(relay, 0, &out->hop) < 0)
            return config_error(out, "relayhost", relay);
        out->kind = ROUTE_SMTP;
        snprintf(out->spec, sizeof(out->spec), "%s", relay);
        make_key(out, cfg);
        return 0;
    }
    return route_direct(cfg, dom, out);
}

enum smtpc_tls route_tls(const struct route_maps *rm, const struct config *cfg, const char *domain,
                         const struct route *r, int *wrapper_verify)
{
    int wv = 0;
    enum smtpc_tls level = SMTPC_TLS_NONE;
    if (wrapper_verify != NULL)
        *wrapper_verify = 0;
    if (r->kind == ROUTE_LOCAL || r->kind == ROUTE_ERROR ||
        (r->kind == ROUTE_LMTP && r->hop.unix_sock))
        return SMTPC_TLS_NONE;
    const struct tls_val *v = NULL;
    char k[300];
    if (rm != NULL && lower_copy(r->spec, k, sizeof(k)) == 0)
        v = table_get(&rm->tls, k);
    if (v == NULL && rm != NULL && domain != NULL && lower_copy(domain, k, sizeof(k)) == 0)
        v = table_get_domain(&rm->tls, k);
    if (v != NULL) {
        level = v->level;
        wv = v->wrapper_verify;
    } else if (parse_level(cfg->smtp_tls_security_level, &level, &wv) < 0) {
        level = SMTPC_TLS_ENCRYPT;
        wv = 0;
    }
    if (wrapper_verify != NULL)
        *wrapper_verify = wv;
    return level;
}

int route_sasl(const struct route_maps *rm, const struct route *r, const char *domain,
               const char **user, const char **pass)
{
    if (rm == NULL || r == NULL || (r->kind != ROUTE_SMTP && r->kind != ROUTE_LMTP))
        return 0;
    char k[300];
    const struct sasl_val *v = NULL;
    if (lower_copy(r->spec, k, sizeof(k)) == 0)
        v = table_get(&rm->sasl, k);
    if (v == NULL && lower_copy(r->hop.host, k, sizeof(k)) == 0)
        v = table_get(&rm->sasl, k);
    if (v == NULL && domain != NULL && lower_copy(domain, k, sizeof(k)) == 0)
        v = table_get(&rm->sasl, k);
    if (v == NULL)
        return 0;
    *user = v->user;
    *pass = v->pass;
    return 1;
}

int route_config_check(const struct config *cfg, char *err, size_t errsz)
{
    struct nexthop h;
    struct route r;
    enum smtpc_tls level;
    int wv;
    if (cfg->relayhost != NULL && cfg->relayhost[0] != '\0' &&
        nexthop_parse(cfg->relayhost, 0, &h) < 0) {
        snprintf(err, errsz, "relayhost: bad next hop \"%s\" (host, [host], host:port, "
                 "[host]:port)", cfg->relayhost);
        return -1;
    }
    const char *lt = cfg->local_transport != NULL ? cfg->local_transport : "local";
    const char *why = parse_transport(lt, 0, &r);
    if (why != NULL) {
        snprintf(err, errsz, "local_transport: %s: \"%s\" (local, lmtp:unix:/path, "
                 "lmtp:host:port)", why, lt);
        return -1;
    }
    if (parse_level(cfg->smtp_tls_security_level, &level, &wv) < 0) {
        snprintf(err, errsz, "smtp_tls_security_level: must be none, may, encrypt, verify, "
                 "wrapper or wrapper-verify, not \"%s\"", cfg->smtp_tls_security_level);
        return -1;
    }
    if (cfg->smtp_port < 1 || cfg->smtp_port > 65535) {
        snprintf(err, errsz, "smtp_port: must be between 1 and 65535");
        return -1;
    }
    return 0;
}
