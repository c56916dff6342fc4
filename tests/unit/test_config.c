/* test_config.c - tern.conf parsing: defaults, syntax, expansion, typed values, overrides */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

/* conf_file - write text to a new temporary file; its name goes to path */
static void conf_file(const char *text, char *path, size_t pathsz)
{
    snprintf(path, pathsz, "/tmp/tern-conf-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t n = strlen(text);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    close(fd);
}

/* load_text - config_load of a file holding text, plus overrides */
static struct config *load_text(const char *text, char *const *ov, int n, char *err, size_t errsz,
                                char *path, size_t pathsz)
{
    conf_file(text, path, pathsz);
    struct config *c = config_load(path, ov, n, err, errsz);
    unlink(path);
    return c;
}

static struct config *load_over(const char *o1, char *err, size_t errsz)
{
    char *ov[1] = {(char *)o1};
    return config_load(NULL, ov, 1, err, errsz);
}

static int find_def(const char *name)
{
    for (size_t i = 0; i < cfg_ndefs; i++)
        if (strcmp(cfg_defs[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* ---- defaults --------------------------------------------------------------- */

static void test_defaults(void **state)
{
    (void)state;
    char err[512] = "";
    struct config *c = config_load(NULL, NULL, 0, err, sizeof(err));
    if (c == NULL)
        fail_msg("defaults do not load: %s", err);
    assert_null(c->path);
    assert_int_equal(c->message_size_limit, 10240000);
    assert_int_equal(c->smtpd_recipient_limit, 1000);
    assert_int_equal(c->smtpd_timeout, 300);
    assert_int_equal(c->smtpd_hard_error_limit, 20);
    assert_int_equal(c->smtpd_max_line_length, 1000);
    assert_int_equal(c->queue_retry_interval, 300);
    assert_int_equal(c->maximal_backoff_time, 4000);
    assert_int_equal(c->maximal_queue_lifetime, 5 * 86400);
    assert_int_equal(c->local_delivery_workers, 2);
    assert_int_equal(c->strict_rfc821_envelopes, 0);
    assert_int_equal(c->smtpd_helo_required, 0);
    assert_int_equal(c->smtputf8_enable, 1);
    assert_string_equal(c->queue_directory, "/var/spool/tern");
    assert_string_equal(c->mynetworks, "127.0.0.0/8, [::1]/128");
    assert_string_equal(c->smtp_listen, "0.0.0.0:25");
    assert_string_equal(c->mailbox_format, "mbox");
    assert_string_equal(c->recipient_delimiter, "+");
    assert_string_equal(c->mailbox_base, "");
    /* derived host names are filled in and expanded */
    assert_true(c->myhostname[0] != '\0');
    assert_true(c->mydomain[0] != '\0');
    assert_true(c->myorigin[0] != '\0');
    assert_null(strchr(c->mydestination, '$'));
    assert_null(strchr(c->smtpd_banner, '$'));
    char want[600];
    snprintf(want, sizeof(want), "%s ESMTP tern", c->myhostname);
    assert_string_equal(c->smtpd_banner, want);
    snprintf(want, sizeof(want), "%s, localhost.%s, localhost", c->myhostname, c->mydomain);
    assert_string_equal(c->mydestination, want);
    /* every setting is printed with a value */
    char *out = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&out, &len);
    config_print(c, fp, 0);
    fclose(fp);
    size_t lines = 0;
    for (const char *p = out; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, cfg_ndefs);
    free(out);
    config_free(c);
    config_free(NULL);
}

/* mydomain defaults to $myhostname without its first label */
static void test_derived_domain(void **state)
{
    (void)state;
    char err[512];
    struct config *c = load_over("myhostname=mx1.mail.example.org", err, sizeof(err));
    assert_non_null(c);
    assert_string_equal(c->myhostname, "mx1.mail.example.org");
    assert_string_equal(c->mydomain, "mail.example.org");
    assert_string_equal(c->smtpd_banner, "mx1.mail.example.org ESMTP tern");
    assert_string_equal(c->mydestination,
                        "mx1.mail.example.org, localhost.mail.example.org, localhost");
    config_free(c);
}

/* ---- file syntax --------------------------------------------------------------- */

static const char good_file[] =
    "# tern.conf for the unit test\n"
    "   # an indented comment\n"
    "\n"
    "myhostname = mail.example.org\n"
    "mydomain=example.org\n"
    "\t\n"
    "mydestination = $myhostname,\n"
    "    localhost.${mydomain},\n"
    "\tlocalhost   \n"
    "smtpd_banner = ${myhostname} ESMTP $mydomain-test\n"
    "myorigin = ${mydomain}x\n"
    "message_size_limit = 20m\n"
    "smtpd_timeout=2m\n"
    "smtpd_helo_required   =   yes   \n"
    "alias_maps =\n"
    "mynetworks = 10.0.0.0/8\n"
    "  192.168.0.0/16\n"
    "# trailing comment\n"
    "recipient_delimiter = +-\n"
    "mailbox_base = /srv/mail/$mydomain\n"
    "log_file = /var/log/tern = main.log\n"
    "pid_file = /run/tern.pid";                       /* no final newline */

static void test_file(void **state)
{
    (void)state;
    char err[512] = "", path[64];
    struct config *c = load_text(good_file, NULL, 0, err, sizeof(err), path, sizeof(path));
    if (c == NULL)
        fail_msg("good file rejected: %s", err);
    assert_string_equal(c->path, path);
    assert_string_equal(c->myhostname, "mail.example.org");
    assert_string_equal(c->mydomain, "example.org");
    assert_string_equal(c->mydestination, "mail.example.org, localhost.example.org, localhost");
    assert_string_equal(c->smtpd_banner, "mail.example.org ESMTP example.org-test");
    assert_string_equal(c->myorigin, "example.orgx");
    assert_int_equal(c->message_size_limit, 20 * 1024 * 1024);
    assert_int_equal(c->smtpd_timeout, 120);
    assert_int_equal(c->smtpd_helo_required, 1);
    assert_string_equal(c->alias_maps, "");
    assert_string_equal(c->mynetworks, "10.0.0.0/8 192.168.0.0/16");
    assert_string_equal(c->recipient_delimiter, "+-");
    assert_string_equal(c->mailbox_base, "/srv/mail/example.org");
    assert_string_equal(c->log_file, "/var/log/tern = main.log"); /* the first '=' splits */
    assert_string_equal(c->pid_file, "/run/tern.pid");
    /* untouched settings keep their defaults */
    assert_int_equal(c->smtpd_recipient_limit, 1000);
    assert_string_equal(c->queue_directory, "/var/spool/tern");
    config_free(c);
}

/* a later line for the same name wins */
static void test_file_repeat(void **state)
{
    (void)state;
    char err[512], path[64];
    struct config *c = load_text("smtpd_timeout = 10\nsmtpd_timeout = 20\n", NULL, 0, err,
                                 sizeof(err), path, sizeof(path));
    assert_non_null(c);
    assert_int_equal(c->smtpd_timeout, 20);
    config_free(c);
}

struct file_err {
    const char *text;
    int line;            /* expected FILE:LINE, 0: only FILE */
    const char *needle;  /* also in the message */
};

static const struct file_err file_errs[] = {
    {"no_such_setting = 1\n", 1, "no_such_setting"},
    {"# c\n\nmyhostname = a.example\nbogus_name = x\n", 4, "bogus_name"},
    {"myhostname = a.example\n\n\n   # c\nmydomainx = b\n", 5, "mydomainx"},
    /* a logical line is reported at its first line */
    {"myhostname = a\nunknown_one = x,\n  y,\n  z\n", 2, "unknown_one"},
    {"myhostname a.example\n", 1, "missing '='"},
    {"myhostname = a\njust some words\n", 2, "missing '='"},
    {"= value\n", 1, NULL},
    {"  indented = 1\n", 1, "continuation"},
    {"# comment\n\n\tmyhostname = x\n", 3, "continuation"},
    {"MyHostName = x\n", 1, "MyHostName"},   /* names are case-sensitive */
};

static void test_file_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(file_errs) / sizeof(file_errs[0]); i++) {
        const struct file_err *e = &file_errs[i];
        char err[512] = "", path[64], where[96];
        struct config *c = load_text(e->text, NULL, 0, err, sizeof(err), path, sizeof(path));
        if (c != NULL)
            fail_msg("case %zu accepted", i);
        snprintf(where, sizeof(where), "%s:%d:", path, e->line);
        if (strstr(err, where) == NULL)
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err, where);
        if (e->needle && strstr(err, e->needle) == NULL)
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err, e->needle);
    }
}

static void test_file_missing(void **state)
{
    (void)state;
    char err[512] = "";
    assert_null(config_load("/nonexistent/dir/tern.conf", NULL, 0, err, sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent/dir/tern.conf"));
}

static void test_file_long_line(void **state)
{
    (void)state;
    size_t n = 20000;
    char *text = malloc(n + 64);
    strcpy(text, "myhostname = a\nsmtpd_banner = ");
    size_t l = strlen(text);
    memset(text + l, 'x', n);
    strcpy(text + l + n, "\n");
    char err[512] = "", path[64];
    assert_null(load_text(text, NULL, 0, err, sizeof(err), path, sizeof(path)));
    char where[96];
    snprintf(where, sizeof(where), "%s:2:", path);
    assert_non_null(strstr(err, where));
    free(text);
}

/* ---- $name expansion -------------------------------------------------------------- */

struct exp_case {
    const char *value;       /* for smtpd_banner, with myhostname=h.example mydomain=example */
    const char *want;        /* NULL: an error */
};

static const struct exp_case exp_cases[] = {
    {"$myhostname", "h.example"},
    {"${myhostname}", "h.example"},
    {"a$myhostname.b", "ah.example.b"},
    {"${myhostname}x", "h.examplex"},
    {"$myhostname$mydomain", "h.exampleexample"},
    {"${mydomain}${mydomain}", "exampleexample"},
    {"$mydomain-x $mydomain_", NULL},   /* "mydomain_" is not a setting */
    {"$myhostnamex", NULL},
    {"$nosuch", NULL},
    {"${nosuch}", NULL},
    {"${myhostname", NULL},
    {"${}", NULL},
    {"$", NULL},
    {"a $ b", NULL},
    {"$.x", NULL},
    {"$smtpd_banner", NULL},            /* refers to itself */
    {"no references", "no references"},
    {"$recipient_delimiter$recipient_delimiter", "++"},
};

static void test_expansion(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(exp_cases) / sizeof(exp_cases[0]); i++) {
        char banner[256];
        snprintf(banner, sizeof(banner), "smtpd_banner=%s", exp_cases[i].value);
        char *ov[3] = {"myhostname=h.example", "mydomain=example", banner};
        char err[512] = "";
        struct config *c = config_load(NULL, ov, 3, err, sizeof(err));
        if (exp_cases[i].want == NULL) {
            if (c != NULL)
                fail_msg("\"%s\" accepted as \"%s\"", exp_cases[i].value, c->smtpd_banner);
            assert_true(err[0] != '\0');
            continue;
        }
        if (c == NULL)
            fail_msg("\"%s\" rejected: %s", exp_cases[i].value, err);
        assert_string_equal(c->smtpd_banner, exp_cases[i].want);
        config_free(c);
    }
}

/* mutual references end in an error, not a crash */
static void test_expansion_loop(void **state)
{
    (void)state;
    char *ov[2] = {"myhostname=$mydomain.x", "mydomain=$myhostname"};
    char err[512] = "";
    assert_null(config_load(NULL, ov, 2, err, sizeof(err)));
    assert_non_null(strstr(err, "recursive"));
    /* a deep but finite chain is fine */
    char *ov2[4] = {"myhostname=a.example", "mydomain=$myhostname", "myorigin=${mydomain}",
                    "smtpd_banner=$myorigin $mydomain $myhostname"};
    struct config *c = config_load(NULL, ov2, 4, err, sizeof(err));
    assert_non_null(c);
    assert_string_equal(c->smtpd_banner, "a.example a.example a.example");
    config_free(c);
}

/* ---- typed values ------------------------------------------------------------------- */

struct val_case {
    const char *setting; /* name=value */
    int ok;
    long long want;      /* the typed value when ok */
};

static const struct val_case val_cases[] = {
    /* SIZE */
    {"message_size_limit=0", 1, 0},
    {"message_size_limit=1", 1, 1},
    {"message_size_limit=123456", 1, 123456},
    {"message_size_limit=10k", 1, 10240},
    {"message_size_limit=10K", 1, 10240},
    {"message_size_limit=2m", 1, 2097152},
    {"message_size_limit=2M", 1, 2097152},
    {"message_size_limit=1g", 1, 1073741824},
    {"message_size_limit=3G", 1, 3LL * 1073741824},
    {"message_size_limit = 7k ", 1, 7168},
    {"message_size_limit=10x", 0, 0},
    {"message_size_limit=10kb", 0, 0},
    {"message_size_limit=10s", 0, 0},
    {"message_size_limit=1t", 0, 0},
    {"message_size_limit=k", 0, 0},
    {"message_size_limit=1.5m", 0, 0},
    {"message_size_limit=-1", 0, 0},
    {"message_size_limit=+1", 0, 0},
    {"message_size_limit=", 0, 0},
    {"message_size_limit=1 0", 0, 0},
    {"message_size_limit=0x10", 0, 0},
    {"message_size_limit=99999999999999999999999", 0, 0},
    {"message_size_limit=5000000000g", 0, 0},
    /* TIME */
    {"smtpd_timeout=45", 1, 45},
    {"smtpd_timeout=45s", 1, 45},
    {"smtpd_timeout=45S", 1, 45},
    {"smtpd_timeout=2m", 1, 120},
    {"smtpd_timeout=3h", 1, 10800},
    {"smtpd_timeout=2d", 1, 172800},
    {"smtpd_timeout=1w", 1, 604800},
    {"smtpd_timeout=1W", 1, 604800},
    {"smtpd_timeout=0", 1, 0},
    {"smtpd_timeout=5y", 0, 0},
    {"smtpd_timeout=5mm", 0, 0},
    {"smtpd_timeout=5k", 0, 0},
    {"smtpd_timeout=s", 0, 0},
    {"smtpd_timeout=-5s", 0, 0},
    {"smtpd_timeout=1.5h", 0, 0},
    {"smtpd_timeout=", 0, 0},
    {"smtpd_timeout=soon", 0, 0},
    /* INT */
    {"smtpd_hard_error_limit=0", 1, 0},
    {"smtpd_hard_error_limit=5", 1, 5},
    {"smtpd_hard_error_limit=100000", 1, 100000},
    {"smtpd_hard_error_limit=abc", 0, 0},
    {"smtpd_hard_error_limit=-5", 0, 0},
    {"smtpd_hard_error_limit=5k", 0, 0},
    {"smtpd_hard_error_limit=5s", 0, 0},
    {"smtpd_hard_error_limit=1e3", 0, 0},
    {"smtpd_hard_error_limit=0x10", 0, 0},
    {"smtpd_hard_error_limit=", 0, 0},
    {"smtpd_hard_error_limit=10 00", 0, 0},
    /* BOOL */
    {"smtpd_helo_required=yes", 1, 1},
    {"smtpd_helo_required=YES", 1, 1},
    {"smtpd_helo_required=true", 1, 1},
    {"smtpd_helo_required=True", 1, 1},
    {"smtpd_helo_required=on", 1, 1},
    {"smtpd_helo_required=1", 1, 1},
    {"smtpd_helo_required=no", 1, 0},
    {"smtpd_helo_required=NO", 1, 0},
    {"smtpd_helo_required=false", 1, 0},
    {"smtpd_helo_required=off", 1, 0},
    {"smtpd_helo_required=0", 1, 0},
    {"smtpd_helo_required=maybe", 0, 0},
    {"smtpd_helo_required=2", 0, 0},
    {"smtpd_helo_required=yess", 0, 0},
    {"smtpd_helo_required=y", 0, 0},
    {"smtpd_helo_required=", 0, 0},
    /* validation */
    {"smtpd_recipient_limit=100", 1, 100},
    {"smtpd_recipient_limit=99", 0, 0},
    {"smtpd_recipient_limit=0", 0, 0},
    {"smtpd_max_line_length=1000", 1, 1000},
    {"smtpd_max_line_length=999", 0, 0},
    {"local_delivery_workers=1", 1, 1},
    {"local_delivery_workers=64", 1, 64},
    {"local_delivery_workers=0", 0, 0},
    {"local_delivery_workers=65", 0, 0},
    {"smtpd_session_limit=0", 0, 0},
    {"smtpd_session_limit=1", 1, 1},
};

static long long typed(const struct config *c, const char *name)
{
    int i = find_def(name);
    assert_true(i >= 0);
    if (strcmp(name, "message_size_limit") == 0) return c->message_size_limit;
    if (strcmp(name, "smtpd_timeout") == 0) return c->smtpd_timeout;
    if (strcmp(name, "smtpd_hard_error_limit") == 0) return c->smtpd_hard_error_limit;
    if (strcmp(name, "smtpd_helo_required") == 0) return c->smtpd_helo_required;
    if (strcmp(name, "smtpd_recipient_limit") == 0) return c->smtpd_recipient_limit;
    if (strcmp(name, "smtpd_max_line_length") == 0) return c->smtpd_max_line_length;
    if (strcmp(name, "local_delivery_workers") == 0) return c->local_delivery_workers;
    if (strcmp(name, "smtpd_session_limit") == 0) return c->smtpd_session_limit;
    fail_msg("no accessor for %s", name);
    return -1;
}

static void test_values_override(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(val_cases) / sizeof(val_cases[0]); i++) {
        const struct val_case *v = &val_cases[i];
        char name[64];
        size_t nl = strcspn(v->setting, " =");
        snprintf(name, sizeof(name), "%.*s", (int)nl, v->setting);
        char err[512] = "";
        struct config *c = load_over(v->setting, err, sizeof(err));
        if (!v->ok) {
            if (c != NULL)
                fail_msg("\"%s\" accepted", v->setting);
            if (strstr(err, name) == NULL)
                fail_msg("\"%s\": error \"%s\" does not name the setting", v->setting, err);
            continue;
        }
        if (c == NULL)
            fail_msg("\"%s\" rejected: %s", v->setting, err);
        if (typed(c, name) != v->want)
            fail_msg("\"%s\": got %lld, want %lld", v->setting, typed(c, name), v->want);
        config_free(c);
    }
}

/* the same values from a file: errors name the file and the setting */
static void test_values_file(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(val_cases) / sizeof(val_cases[0]); i++) {
        const struct val_case *v = &val_cases[i];
        char name[64], text[256];
        size_t nl = strcspn(v->setting, " =");
        snprintf(name, sizeof(name), "%.*s", (int)nl, v->setting);
        snprintf(text, sizeof(text), "# values\nmyhostname = h.example\n%s\n", v->setting);
        char err[512] = "", path[64];
        struct config *c = load_text(text, NULL, 0, err, sizeof(err), path, sizeof(path));
        if (!v->ok) {
            if (c != NULL)
                fail_msg("\"%s\" accepted", v->setting);
            if (strstr(err, path) == NULL || strstr(err, name) == NULL)
                fail_msg("\"%s\": error \"%s\" lacks file or setting", v->setting, err);
            continue;
        }
        if (c == NULL)
            fail_msg("\"%s\" rejected: %s", v->setting, err);
        assert_int_equal(typed(c, name), v->want);
        config_free(c);
    }
}

/* config.h promises "FILE:LINE: ..." for every error in a file */
static void test_value_error_line(void **state)
{
    (void)state;
    char err[512] = "", path[64], where[96];
    struct config *c = load_text("myhostname = h.example\n\nsmtpd_timeout = 5y\n", NULL, 0, err,
                                 sizeof(err), path, sizeof(path));
    assert_null(c);
    snprintf(where, sizeof(where), "%s:3", path);
    assert_non_null(strstr(err, where));
}

/* ---- overrides ------------------------------------------------------------------------ */

static void test_overrides_win(void **state)
{
    (void)state;
    static const char text[] = "myhostname = file.example\n"
                               "smtpd_timeout = 10m\n"
                               "mydestination = $myhostname\n"
                               "message_size_limit = 1k\n";
    char *ov[3] = {"smtpd_timeout=20s", "myhostname = over.example", "smtpd_timeout=30s"};
    char err[512] = "", path[64];
    struct config *c = load_text(text, ov, 3, err, sizeof(err), path, sizeof(path));
    if (c == NULL)
        fail_msg("rejected: %s", err);
    assert_int_equal(c->smtpd_timeout, 30);                  /* the last override wins */
    assert_string_equal(c->myhostname, "over.example");
    assert_string_equal(c->mydestination, "over.example"); /* expanded after overrides */
    assert_int_equal(c->message_size_limit, 1024);          /* the file still counts */
    config_free(c);

    /* a bad override */
    char *bad1[1] = {"no_such=1"};
    assert_null(config_load(NULL, bad1, 1, err, sizeof(err)));
    assert_non_null(strstr(err, "no_such"));
    assert_non_null(strstr(err, "-o"));
    char *bad2[1] = {"smtpd_timeout"};
    assert_null(config_load(NULL, bad2, 1, err, sizeof(err)));
    assert_non_null(strstr(err, "="));
    /* a bad override after a good file */
    char *bad3[1] = {"smtpd_timeout=forever"};
    assert_null(load_text(text, bad3, 1, err, sizeof(err), path, sizeof(path)));
    assert_non_null(strstr(err, "smtpd_timeout"));
}

/* ---- config_print ------------------------------------------------------------------------ */

static char *print_conf(const struct config *c, int nondefault_only)
{
    char *out = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&out, &len);
    assert_non_null(fp);
    config_print(c, fp, nondefault_only);
    fclose(fp);
    return out;
}

static void test_print_nondefault(void **state)
{
    (void)state;
    char err[512];
    struct config *c = config_load(NULL, NULL, 0, err, sizeof(err));
    assert_non_null(c);
    char *out = print_conf(c, 1);
    assert_string_equal(out, "");
    free(out);
    config_free(c);

    /* settings given explicitly (file or -o), in table order, like postconf -n: a
     * setting set to its default value (smtpd_timeout = 5m is 300s) is shown too */
    char *ov[4] = {"smtpd_helo_required=yes", "message_size_limit=20m", "smtpd_timeout=5m",
                   "alias_maps="};
    c = config_load(NULL, ov, 4, err, sizeof(err));
    assert_non_null(c);
    out = print_conf(c, 1);
    assert_string_equal(out, "message_size_limit = 20971520\n"
                             "smtpd_timeout = 300s\n"
                             "smtpd_helo_required = yes\n"
                             "alias_maps = \n");
    free(out);
    config_free(c);

    char *ov2[2] = {"maximal_queue_lifetime=1w", "strict_rfc821_envelopes=on"};
    c = config_load(NULL, ov2, 2, err, sizeof(err));
    assert_non_null(c);
    out = print_conf(c, 1);
    assert_string_equal(out, "strict_rfc821_envelopes = yes\n"
                             "maximal_queue_lifetime = 604800s\n");
    free(out);
    config_free(c);
}

static void test_print_all_round_trip(void **state)
{
    (void)state;
    char err[512], path[64];
    char *ov[3] = {"myhostname=p.example", "smtpd_timeout=1h", "mynetworks=10.0.0.0/8 [::1]/128"};
    struct config *c = config_load(NULL, ov, 3, err, sizeof(err));
    assert_non_null(c);
    char *out = print_conf(c, 0);
    /* one "name = value" line per setting, in table order */
    const char *p = out;
    for (size_t i = 0; i < cfg_ndefs; i++) {
        size_t nl = strlen(cfg_defs[i].name);
        if (strncmp(p, cfg_defs[i].name, nl) != 0 || strncmp(p + nl, " = ", 3) != 0)
            fail_msg("line %zu: \"%.40s\", want %s", i, p, cfg_defs[i].name);
        p = strchr(p, '\n');
        assert_non_null(p);
        p++;
    }
    assert_string_equal(p, "");
    assert_non_null(strstr(out, "\nsmtpd_timeout = 3600s\n"));
    assert_non_null(strstr(out, "\nstrict_rfc821_envelopes = no\n"));
    assert_non_null(strstr(out, "\nmessage_size_limit = 10240000\n"));
    assert_non_null(strstr(out, "\nsmtpd_banner = p.example ESMTP tern\n"));

    /* what config_print writes, config_load reads back to the same settings */
    struct config *c2 = load_text(out, NULL, 0, err, sizeof(err), path, sizeof(path));
    if (c2 == NULL)
        fail_msg("printed config does not load: %s", err);
    char *out2 = print_conf(c2, 0);
    assert_string_equal(out2, out);
    free(out2);
    free(out);
    config_free(c2);
    config_free(c);
}

/* ---- lists ---------------------------------------------------------------------------- */

struct list_case {
    const char *list;
    const char *items[6]; /* NULL-terminated */
};

static const struct list_case list_cases[] = {
    {"a, b  c,,d\t e", {"a", "b", "c", "d", "e", NULL}},
    {"", {NULL}},
    {" , ,, \t", {NULL}},
    {"single", {"single", NULL}},
    {",lead,trail,", {"lead", "trail", NULL}},
    {"127.0.0.0/8, [::1]/128", {"127.0.0.0/8", "[::1]/128", NULL}},
    {"x\ny", {"x", "y", NULL}},
};

static void test_list_next(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof(list_cases) / sizeof(list_cases[0]); k++) {
        const struct list_case *lc = &list_cases[k];
        const char *p = lc->list;
        char item[64];
        size_t i = 0, n;
        while ((n = config_list_next(&p, item, sizeof(item))) > 0) {
            if (lc->items[i] == NULL)
                fail_msg("\"%s\": extra item \"%s\"", lc->list, item);
            assert_string_equal(item, lc->items[i]);
            assert_int_equal(n, strlen(lc->items[i]));
            i++;
        }
        if (lc->items[i] != NULL)
            fail_msg("\"%s\": item \"%s\" missing", lc->list, lc->items[i]);
        /* at the end it stays at the end */
        assert_int_equal(config_list_next(&p, item, sizeof(item)), 0);
    }
    /* a small output buffer truncates the item and still moves past all of it */
    const char *p = "abcdef,gh";
    char small[4];
    memset(small, 'Z', sizeof(small));
    assert_int_equal(config_list_next(&p, small, sizeof(small)), 3);
    assert_string_equal(small, "abc");
    assert_int_equal(config_list_next(&p, small, sizeof(small)), 2);
    assert_string_equal(small, "gh");
    assert_int_equal(config_list_next(&p, small, sizeof(small)), 0);
}

static const struct {
    const char *list, *item;
    int want;
} contains_cases[] = {
    {"a.example, localhost", "localhost", 1},
    {"a.example, localhost", "LocalHost", 1},
    {"a.example, LOCALHOST", "localhost", 1},
    {"a.example, localhost", "a.example", 1},
    {"a.example, localhost", "host", 0},
    {"a.example, localhost", "local", 0},
    {"a.example, localhost", "a.example,", 0},
    {"a.example, localhost", "", 0},
    {"", "a", 0},
    {"x y\tz", "z", 1},
};

static void test_list_contains(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(contains_cases) / sizeof(contains_cases[0]); i++)
        if (config_list_contains(contains_cases[i].list, contains_cases[i].item) != contains_cases[i].want)
            fail_msg("config_list_contains(\"%s\", \"%s\") != %d", contains_cases[i].list,
                     contains_cases[i].item, contains_cases[i].want);
}

static void test_list_contains_long(void **state)
{
    (void)state;
    char list[1600], item[1100];
    memset(list, 'x', 1500);
    list[1500] = '\0';
    memset(item, 'x', 1023);
    item[1023] = '\0';
    int prefix = config_list_contains(list, item);   /* must be 0: a different item */
    int self = config_list_contains(list, list);     /* must be 1 */
    assert_int_equal(prefix, 0);
    assert_int_equal(self, 1);
}

/* ---- the table -------------------------------------------------------------------------- */

static void test_table(void **state)
{
    (void)state;
    assert_true(cfg_ndefs >= 30);
    for (size_t i = 0; i < cfg_ndefs; i++) {
        assert_non_null(cfg_defs[i].name);
        assert_non_null(cfg_defs[i].def);
        assert_true(cfg_defs[i].help != NULL && cfg_defs[i].help[0] != '\0');
        for (size_t j = 0; j < i; j++)
            if (strcmp(cfg_defs[i].name, cfg_defs[j].name) == 0)
                fail_msg("%s defined twice", cfg_defs[i].name);
    }
    assert_true(find_def("smtpd_recipient_limit") >= 0);
    assert_int_equal(find_def("nonexistent"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_derived_domain),
        cmocka_unit_test(test_file),
        cmocka_unit_test(test_file_repeat),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_file_missing),
        cmocka_unit_test(test_file_long_line),
        cmocka_unit_test(test_expansion),
        cmocka_unit_test(test_expansion_loop),
        cmocka_unit_test(test_values_override),
        cmocka_unit_test(test_values_file),
        cmocka_unit_test(test_value_error_line),
        cmocka_unit_test(test_overrides_win),
        cmocka_unit_test(test_print_nondefault),
        cmocka_unit_test(test_print_all_round_trip),
        cmocka_unit_test(test_list_next),
        cmocka_unit_test(test_list_contains),
        cmocka_unit_test(test_list_contains_long),
        cmocka_unit_test(test_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
