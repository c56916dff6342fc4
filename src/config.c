/* config.c - parse tern.conf (Postfix main.cf style) against config_table.h */
#include "config.h"
#include "buf.h"
#include "route.h"
#include "xmalloc.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

const struct cfg_def cfg_defs[] = {
#define CFG(name, type, def, help) {#name, CFG_##type, def, help},
#include "config_table.h"
#undef CFG
};
const size_t cfg_ndefs = sizeof(cfg_defs) / sizeof(cfg_defs[0]);

static const size_t cfg_offsets[] = {
#define CFG(name, type, def, help) offsetof(struct config, name),
#include "config_table.h"
#undef CFG
};

/* raw values as strings, before expansion and typing */
struct cfg_raw {
    char *val[sizeof(cfg_defs) / sizeof(cfg_defs[0])];
    char where[sizeof(cfg_defs) / sizeof(cfg_defs[0])][4200]; /* "FILE:LINE" or "-o" of the value */
};

static int cfg_index(const char *name, size_t len)
{
    for (size_t i = 0; i < cfg_ndefs; i++)
        if (strlen(cfg_defs[i].name) == len && memcmp(cfg_defs[i].name, name, len) == 0)
            return (int)i;
    return -1;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* cfg_set - store "name = value" text; err gets "where: ..." */
static int cfg_set(struct cfg_raw *raw, const char *line, const char *where, char *err,
                   size_t errsz)
{
    const char *eq = strchr(line, '=');
    if (eq == NULL) {
        snprintf(err, errsz, "%s: missing '=' in \"%s\"", where, line);
        return -1;
    }
    char *name = xstrndup(line, (size_t)(eq - line));
    char *n = trim(name);
    int i = cfg_index(n, strlen(n));
    if (i < 0) {
        snprintf(err, errsz, "%s: unknown setting \"%s\"", where, n);
        free(name);
        return -1;
    }
    free(name);
    char *v = xstrdup(eq + 1);
    free(raw->val[i]);
    raw->val[i] = xstrdup(trim(v));
    snprintf(raw->where[i], sizeof(raw->where[i]), "%s", where);
    free(v);
    return 0;
}

/* expand - replace $name and ${name} with the raw value of name (recursive, depth-limited) */
static int expand(const struct cfg_raw *raw, const char *in, struct buf *out, int depth,
                  char *err, size_t errsz)
{
    if (depth > 8) {
        snprintf(err, errsz, "recursive $name expansion");
        return -1;
    }
    for (const char *p = in; *p; p++) {
        if (*p != '$') {
            buf_putc(out, *p);
            continue;
        }
        const char *s = p + 1;
        int brace = (*s == '{');
        if (brace)
            s++;
        const char *e = s;
        while (isalnum((unsigned char)*e) || *e == '_')
            e++;
        if (e == s || (brace && *e != '}')) {
            snprintf(err, errsz, "bad $name reference in \"%s\"", in);
            return -1;
        }
        int i = cfg_index(s, (size_t)(e - s));
        if (i < 0) {
            snprintf(err, errsz, "unknown setting $%.*s in \"%s\"", (int)(e - s), s, in);
            return -1;
        }
        if (expand(raw, raw->val[i], out, depth + 1, err, errsz) < 0)
            return -1;
        p = brace ? e : e - 1;
    }
    return 0;
}

static int parse_number(const char *v, enum cfg_type type, long long *out)
{
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)*v))
        return -1;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno)
        return -1;
    unsigned long long mul = 1;
    if (*end && end[1] == '\0') {
        char c = (char)tolower((unsigned char)*end);
        if (type == CFG_SIZE && c == 'k') mul = 1024ULL;
        else if (type == CFG_SIZE && c == 'm') mul = 1024ULL * 1024;
        else if (type == CFG_SIZE && c == 'g') mul = 1024ULL * 1024 * 1024;
        else if (type == CFG_TIME && c == 's') mul = 1;
        else if (type == CFG_TIME && c == 'm') mul = 60;
        else if (type == CFG_TIME && c == 'h') mul = 3600;
        else if (type == CFG_TIME && c == 'd') mul = 86400;
        else if (type == CFG_TIME && c == 'w') mul = 7 * 86400;
        else return -1;
    } else if (*end) {
        return -1;
    }
    if (n > (unsigned long long)(1LL << 52) / mul)
        return -1;
    *out = (long long)(n * mul);
    return 0;
}

static int parse_bool(const char *v, int *out)
{
    static const char *yes[] = {"yes", "true", "on", "1"}, *no[] = {"no", "false", "off", "0"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) { *out = 1; return 0; }
        if (strcasecmp(v, no[i]) == 0) { *out = 0; return 0; }
    }
    return -1;
}

static void default_hostnames(struct cfg_raw *raw)
{
    int h = cfg_index("myhostname", 10), d = cfg_index("mydomain", 8), o = cfg_index("myorigin", 8);
    if (raw->val[h][0] == '\0') {
        char name[256] = "localhost";
        gethostname(name, sizeof(name) - 1);
        name[sizeof(name) - 1] = '\0';
        free(raw->val[h]);
        raw->val[h] = xstrdup(name);
    }
    if (raw->val[d][0] == '\0') {
        const char *dot = strchr(raw->val[h], '.');
        free(raw->val[d]);
        raw->val[d] = xstrdup(dot && dot[1] ? dot + 1 : "localdomain");
    }
    if (raw->val[o][0] == '\0') {
        char line[256] = "";
        FILE *fp = fopen("/etc/mailname", "r");
        if (fp) {
            if (fgets(line, sizeof(line), fp) == NULL)
                line[0] = '\0';
            fclose(fp);
        }
        char *t = trim(line);
        free(raw->val[o]);
        raw->val[o] = xstrdup(*t ? t : "$myhostname");
    }
}

static int config_validate(const struct config *c, char *err, size_t errsz)
{
    if (strcmp(c->mailbox_format, "mbox") != 0 && strcmp(c->mailbox_format, "maildir") != 0) {
        snprintf(err, errsz, "mailbox_format: must be mbox or maildir, not \"%s\"", c->mailbox_format);
        return -1;
    }
    if (c->smtpd_recipient_limit < 100) {
        snprintf(err, errsz, "smtpd_recipient_limit: must be at least 100 (RFC 5321 4.5.3.1.8)");
        return -1;
    }
    if (c->smtpd_max_line_length < 1000) {
        snprintf(err, errsz, "smtpd_max_line_length: must be at least 1000");
        return -1;
    }
    if (c->local_delivery_workers < 1 || c->local_delivery_workers > 64) {
        snprintf(err, errsz, "local_delivery_workers: must be between 1 and 64");
        return -1;
    }
    if (c->queue_directory[0] != '/') {
        snprintf(err, errsz, "queue_directory: must be an absolute path");
        return -1;
    }
    if (c->smtpd_session_limit < 1) {
        snprintf(err, errsz, "smtpd_session_limit: must be at least 1");
        return -1;
    }
    /* relayhost, local_transport, smtp_tls_security_level, smtp_port */
    return route_config_check(c, err, errsz);
}

/* WHERE - where setting i got its value: "FILE:LINE", "-o", or the file for defaults */
#define WHERE(i) (raw.where[i][0] ? raw.where[i] : (file ? file : "(defaults)"))

struct config *config_load(const char *file, char *const *overrides, int n, char *err,
                           size_t errsz)
{
    struct cfg_raw *rawp = xcalloc(1, sizeof(*rawp));
#define raw (*rawp)
    struct config *c = NULL;
    for (size_t i = 0; i < cfg_ndefs; i++)
        raw.val[i] = xstrdup(cfg_defs[i].def);

    if (file != NULL) {
        FILE *fp = fopen(file, "r");
        if (fp == NULL) {
            snprintf(err, errsz, "%s: %s", file, strerror(errno));
            goto fail;
        }
        char line[8192];
        struct buf logical = BUF_INIT;
        int lineno = 0, start = 0, bad = 0;
        char where[4200];
        for (;;) {
            char *got = fgets(line, sizeof(line), fp);
            if (got)
                lineno++;
            if (got && strchr(line, '\n') == NULL && !feof(fp)) {
                snprintf(err, errsz, "%s:%d: line too long", file, lineno);
                bad = 1;
                break;
            }
            /* a line starting with white space continues the previous one */
            if (got && (line[0] == ' ' || line[0] == '\t') && *trim(line) != '\0' &&
                logical.len > 0) {
                buf_putc(&logical, ' ');
                buf_puts(&logical, trim(line));
                continue;
            }
            if (logical.len > 0) {
                snprintf(where, sizeof(where), "%s:%d", file, start);
                if (cfg_set(&raw, logical.data, where, err, errsz) < 0) {
                    bad = 1;
                    break;
                }
                buf_reset(&logical);
            }
            if (!got)
                break;
            char *t = trim(line);
            if (*t == '#' || *t == '\0')
                continue;
            if (line[0] == ' ' || line[0] == '\t') {
                snprintf(err, errsz, "%s:%d: continuation line without a setting", file, lineno);
                bad = 1;
                break;
            }
            start = lineno;
            buf_puts(&logical, t);
        }
        buf_free(&logical);
        fclose(fp);
        if (bad)
            goto fail;
    }
    for (int i = 0; i < n; i++)
        if (cfg_set(&raw, overrides[i], "-o", err, errsz) < 0)
            goto fail;

    default_hostnames(&raw);

    c = xcalloc(1, sizeof(*c));
    c->path = file ? xstrdup(file) : NULL;
    for (size_t i = 0; i < cfg_ndefs; i++) {
        struct buf v = BUF_INIT;
        char sub[512];
        if (expand(&raw, raw.val[i], &v, 0, sub, sizeof(sub)) < 0) {
            snprintf(err, errsz, "%s: %s: %s", WHERE(i), cfg_defs[i].name, sub);
            buf_free(&v);
            goto fail;
        }
        c->explicit_set[i] = raw.where[i][0] != '\0';
        char *field = (char *)c + cfg_offsets[i];
        const char *s = buf_str(&v);
        int bad = 0;
        switch (cfg_defs[i].type) {
        case CFG_STR:
        case CFG_LIST:
            *(char **)field = xstrdup(s);
            break;
        case CFG_INT:
        case CFG_SIZE:
        case CFG_TIME:
            bad = parse_number(s, cfg_defs[i].type, (long long *)field) < 0;
            break;
        case CFG_BOOL:
            bad = parse_bool(s, (int *)field) < 0;
            break;
        }
        if (bad) {
            snprintf(err, errsz, "%s: %s: bad value \"%s\"", WHERE(i), cfg_defs[i].name, s);
            buf_free(&v);
            goto fail;
        }
        buf_free(&v);
    }
    {
        char sub[512];
        if (config_validate(c, sub, sizeof(sub)) < 0) {
            /* the message starts with the setting's name: point at its line */
            size_t nl = strcspn(sub, ":");
            int i = cfg_index(sub, nl);
            snprintf(err, errsz, "%s: %s", i >= 0 ? WHERE(i) : (file ? file : "-o"), sub);
            goto fail;
        }
    }
    for (size_t i = 0; i < cfg_ndefs; i++)
        free(raw.val[i]);
    free(rawp);
    return c;
fail:
    for (size_t i = 0; i < cfg_ndefs; i++)
        free(raw.val[i]);
    free(rawp);
    config_free(c);
    return NULL;
#undef raw
}

void config_free(struct config *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < cfg_ndefs; i++)
        if (cfg_defs[i].type == CFG_STR || cfg_defs[i].type == CFG_LIST)
            free(*(char **)((char *)c + cfg_offsets[i]));
    free(c->path);
    free(c);
}

static void value_string(const struct config *c, size_t i, char *out, size_t outsz)
{
    const char *field = (const char *)c + cfg_offsets[i];
    switch (cfg_defs[i].type) {
    case CFG_STR:
    case CFG_LIST:
        snprintf(out, outsz, "%s", *(char *const *)field);
        break;
    case CFG_INT:
    case CFG_SIZE:
    case CFG_TIME:
        snprintf(out, outsz, "%lld%s", *(const long long *)field,
                 cfg_defs[i].type == CFG_TIME ? "s" : "");
        break;
    case CFG_BOOL:
        snprintf(out, outsz, "%s", *(const int *)field ? "yes" : "no");
        break;
    }
}

void config_print(const struct config *c, FILE *fp, int nondefault_only)
{
    for (size_t i = 0; i < cfg_ndefs; i++) {
        char v[4096];
        if (nondefault_only && !c->explicit_set[i])
            continue;
        value_string(c, i, v, sizeof(v));
        fprintf(fp, "%s = %s\n", cfg_defs[i].name, v);
    }
}

void config_doc(FILE *fp)
{
    static const char *tname[] = {"string", "integer", "size", "time", "boolean", "list"};
    fprintf(fp, "# tern configuration reference\n\n"
                "Generated by `ternd --config-doc` from src/config_table.h; do not edit by hand.\n\n"
                "The file (default /etc/tern/tern.conf) holds `name = value` lines. A line that\n"
                "starts with white space continues the previous one; `#` starts a comment line.\n"
                "Values may refer to other settings as `$name` or `${name}`. Sizes take k/m/g,\n"
                "times s/m/h/d/w suffixes. `ternd -o name=value` overrides a setting.\n\n");
    for (size_t i = 0; i < cfg_ndefs; i++)
        fprintf(fp, "## %s\n\n- type: %s\n- default: `%s`\n\n%s\n\n", cfg_defs[i].name,
                tname[cfg_defs[i].type], cfg_defs[i].def, cfg_defs[i].help);
}

size_t config_list_next(const char **p, char *out, size_t outsz)
{
    const char *s = *p;
    while (*s == ',' || isspace((unsigned char)*s))
        s++;
    const char *e = s;
    while (*e && *e != ',' && !isspace((unsigned char)*e))
        e++;
    size_t n = (size_t)(e - s);
    *p = e;
    if (n == 0 || outsz == 0)
        return 0;
    if (n >= outsz)
        n = outsz - 1;
    memcpy(out, s, n);
    out[n] = '\0';
    return n;
}

int config_list_contains(const char *list, const char *item)
{
    size_t want = strlen(item);
    const char *p = list;
    for (;;) {
        while (*p == ',' || isspace((unsigned char)*p))
            p++;
        if (*p == '\0')
            return 0;
        const char *e = p;
        while (*e && *e != ',' && !isspace((unsigned char)*e))
            e++;
        if ((size_t)(e - p) == want && strncasecmp(p, item, want) == 0)
            return 1;
        p = e;
    }
}
