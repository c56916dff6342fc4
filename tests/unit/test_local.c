/* test_local.c - local recipients, alias expansion, commands, files, loops */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aliases.h"
#include "config.h"
#include "local.h"
#include "tmpfile_helper.h"

struct fx {
    char dir[64];
    char out[128];       /* writable by the user commands run as (nobody when root) */
    struct config *cfg;
    struct alias_db *db;
    struct local_ctx ctx;
    char forwarded[1024];
    int nforwarded;
};

/* forward_cb - record forwarded addresses, comma separated */
static void forward_cb(void *arg, const char *address)
{
    struct fx *f = arg;
    size_t n = strlen(f->forwarded);
    snprintf(f->forwarded + n, sizeof(f->forwarded) - n, "%s%s", n ? "," : "", address);
    f->nforwarded++;
}

/* make_cfg - config with mailbox_base under the fixture (format mbox or maildir) */
static struct config *make_cfg(struct fx *f, const char *format, int real_layout)
{
    char base[160], spool[160], fmt[64], err[512];
    if (real_layout)
        snprintf(base, sizeof(base), "mailbox_base=");
    else
        snprintf(base, sizeof(base), "mailbox_base=%s/mail", f->dir);
    snprintf(spool, sizeof(spool), "mail_spool_directory=%s/spool", f->dir);
    snprintf(fmt, sizeof(fmt), "mailbox_format=%s", format);
    char *ov[] = {base, spool, fmt, "myhostname=mx.example.org",
                  "mydestination=example.org, localhost, $myhostname", "recipient_delimiter=+",
                  "default_privs=nobody", "alias_maps="};
    struct config *c = config_load(NULL, ov, 8, err, sizeof(err));
    if (c == NULL)
        fail_msg("config_load: %s", err);
    return c;
}

/* load_aliases - write the alias file (with @DIR@ and @OUT@ replaced) and load it */
static void load_aliases(struct fx *f, const char *text)
{
    char path[160], err[512];
    snprintf(path, sizeof(path), "%s/aliases", f->dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    for (const char *p = text; *p; p++) {
        if (strncmp(p, "@DIR@", 5) == 0)
            fputs(f->dir, fp), p += 4;
        else if (strncmp(p, "@OUT@", 5) == 0)
            fputs(f->out, fp), p += 4;
        else
            fputc(*p, fp);
    }
    fclose(fp);
    alias_free(f->db);
    f->db = alias_load(path, err, sizeof(err));
    if (f->db == NULL)
        fail_msg("alias_load: %s", err);
    f->ctx.aliases = f->db;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    char path[160];
    if (tmp_dir_make(f->dir, sizeof(f->dir), "local") < 0)
        return -1;
    chmod(f->dir, 0755); /* commands run as nobody when the tests run as root */
    snprintf(f->out, sizeof(f->out), "%s/out", f->dir);
    mkdir(f->out, 0777);
    chmod(f->out, 0777);
    snprintf(path, sizeof(path), "%s/mail", f->dir);
    mkdir(path, 0700);
    snprintf(path, sizeof(path), "%s/spool", f->dir);
    mkdir(path, 0755);
    f->cfg = make_cfg(f, "mbox", 0);
    f->ctx.cfg = f->cfg;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    tmp_dir_remove(f->dir);
    alias_free(f->db);
    config_free(f->cfg);
    free(f);
    return 0;
}

/* msg_make - a memfd message at offset 3 */
static void msg_make(struct local_msg *m, const char *text, const char *sender)
{
    int fd = memfd_create("msg", MFD_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "ENV", 3), 3);
    size_t n = strlen(text);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    memset(m, 0, sizeof(*m));
    m->qid = "ABC123";
    m->sender = sender;
    m->fd = fd;
    m->body_off = 3;
    m->body_len = (off_t)n;
    m->arrival = 1767225600;
}

/* deliver - deliver text to rcpt; returns the result */
static struct deliver_result deliver(struct fx *f, const char *rcpt, const char *sender,
                                     const char *text)
{
    struct local_msg m;
    struct deliver_result r;
    memset(&r, 0x55, sizeof(r));
    msg_make(&m, text, sender);
    f->forwarded[0] = '\0';
    f->nforwarded = 0;
    local_deliver(&f->ctx, &m, rcpt, forward_cb, f, &r);
    close(m.fd);
    return r;
}

/* slurp - file contents, or NULL when missing */
static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "r");
    if (fp == NULL)
        return NULL;
    char *s = calloc(1, 1 << 20);
    size_t n = fread(s, 1, (1 << 20) - 1, fp);
    s[n] = '\0';
    fclose(fp);
    return s;
}

/* mbox_of - contents of mailbox_base/USER */
static char *mbox_of(struct fx *f, const char *user)
{
    char path[200];
    snprintf(path, sizeof(path), "%s/mail/%s", f->dir, user);
    return slurp(path);
}

/* count_str - occurrences of needle in hay */
static int count_str(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; p && (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

static const char *MSG = "Received: by mx\nSubject: test\n\nhello\n";

static void test_mydestination_and_recipient_ok(void **state)
{
    struct fx *f = *state;
    load_aliases(f, "root: alice\nlist: a, b\nteam+special: dave\n");
    assert_true(local_is_mydestination(f->cfg, "EXAMPLE.org"));
    assert_true(local_is_mydestination(f->cfg, "mx.example.org"));
    assert_false(local_is_mydestination(f->cfg, "other.org"));
    assert_false(local_is_mydestination(f->cfg, ""));

    assert_true(local_recipient_ok(&f->ctx, "alice"));
    assert_true(local_recipient_ok(&f->ctx, "Alice+Tag"));
    assert_true(local_recipient_ok(&f->ctx, "LIST+x"));
    assert_true(local_recipient_ok(&f->ctx, "team+special"));
    assert_true(local_recipient_ok(&f->ctx, "postmaster"));
    assert_true(local_recipient_ok(&f->ctx, "first.last_x-y"));
    assert_false(local_recipient_ok(&f->ctx, ""));
    assert_false(local_recipient_ok(&f->ctx, "../etc"));
    assert_false(local_recipient_ok(&f->ctx, ".hidden"));
    assert_false(local_recipient_ok(&f->ctx, "a/b"));
    assert_false(local_recipient_ok(&f->ctx, "bad!name"));
    assert_false(local_recipient_ok(&f->ctx, "x123456789012345678901234567890123456789012345678901234567890123456789"));

    /* real layout: getpwnam() users */
    struct config *real = make_cfg(f, "mbox", 1);
    struct local_ctx rc = {real, NULL};
    assert_true(local_recipient_ok(&rc, "root"));
    assert_true(local_recipient_ok(&rc, "ROOT+ext"));
    assert_true(local_recipient_ok(&rc, "postmaster"));
    assert_false(local_recipient_ok(&rc, "no-such-user-tern"));
    config_free(real);
}

static void test_user_mbox(void **state)
{
    struct fx *f = *state;
    struct deliver_result r = deliver(f, "Alice+Tag@Example.ORG", "s@x.org", MSG);
    assert_int_equal(r.status, DELIVER_OK);
    assert_string_equal(r.dsn, "2.0.0");
    assert_string_equal(r.text, "delivered to mailbox");
    char *got = mbox_of(f, "alice");
    assert_non_null(got);
    assert_string_equal(got, "From s@x.org  Thu Jan  1 00:00:00 2026\n"
                             "Return-Path: <s@x.org>\n"
                             "Delivered-To: Alice+Tag@Example.ORG\n"
                             "Received: by mx\nSubject: test\n\nhello\n\n");
    free(got);

    r = deliver(f, "bob@example.org", "", MSG);
    assert_int_equal(r.status, DELIVER_OK);
    got = mbox_of(f, "bob");
    assert_non_null(strstr(got, "From MAILER-DAEMON  "));
    assert_non_null(strstr(got, "Return-Path: <>\nDelivered-To: bob@example.org\n"));
    free(got);
}

static void test_user_maildir(void **state)
{
    struct fx *f = *state;
    config_free(f->cfg);
    f->cfg = make_cfg(f, "maildir", 0);
    f->ctx.cfg = f->cfg;
    struct deliver_result r = deliver(f, "carol@example.org", "s@x.org", MSG);
    assert_int_equal(r.status, DELIVER_OK);
    assert_string_equal(r.text, "delivered to maildir");
    char path[200], file[600];
    snprintf(path, sizeof(path), "%s/mail/carol/new", f->dir);
    DIR *d = opendir(path);
    assert_non_null(d);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') {
            n++;
            snprintf(file, sizeof(file), "%s/%s", path, e->d_name);
        }
    closedir(d);
    assert_int_equal(n, 1);
    char *got = slurp(file);
    assert_string_equal(got, "Return-Path: <s@x.org>\nDelivered-To: carol@example.org\n"
                             "Received: by mx\nSubject: test\n\nhello\n");
    free(got);
    snprintf(path, sizeof(path), "%s/mail/carol/cur", f->dir);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
}

static void test_unknown_user(void **state)
{
    struct fx *f = *state;
    struct deliver_result r = deliver(f, "bad!name@example.org", "s@x", MSG);
    assert_int_equal(r.status, DELIVER_PERM);
    assert_string_equal(r.dsn, "5.1.1");
    assert_string_equal(r.text, "unknown user: \"bad!name\"");

    struct config *real = make_cfg(f, "mbox", 1);
    f->ctx.cfg = real;
    r = deliver(f, "No-Such-User-Tern@example.org", "s@x", MSG);
    assert_int_equal(r.status, DELIVER_PERM);
    assert_string_equal(r.dsn, "5.1.1");
    assert_string_equal(r.text, "unknown user: \"no-such-user-tern\"");
    f->ctx.cfg = f->cfg;
    config_free(real);
}

static void test_alias_lists(void **state)
{
    struct fx *f = *state;
    load_aliases(f, "team: alice, bob,\n  sub\nsub: carol, alice, \\dave\n"
                    "team+special: erin\ndave: nobody-gets-this\n");
    struct deliver_result r = deliver(f, "Team+X@example.org", "s@x", MSG);
    assert_int_equal(r.status, DELIVER_OK);
    assert_string_equal(r.dsn, "2.0.0");
    char *a = mbox_of(f, "alice"), *b = mbox_of(f, "bob"), *c = mbox_of(f, "carol");
    char *d = mbox_of(f, "dave");
    assert_int_equal(count_str(a, "\nSubject: test\n"), 1); /* twice in the tree, once delivered */
    assert_non_null(strstr(a, "Delivered-To: alice+X@example.org\n"));
    assert_non_null(strstr(b, "Delivered-To: bob+X@example.org\n"));
    assert_non_null(strstr(c, "Delivered-To: carol+X@example.org\n"));
    assert_non_null(d); /* "\dave" skips dave's alias */
    assert_null(mbox_of(f, "nobody-gets-this"));
    assert_null(mbox_of(f, "team"));
    free(a), free(b), free(c), free(d);

    /* the whole local part matches before the stripped one */
    r = deliver(f, "team+special@example.org", "s@x", MSG);
    assert_int_equal(r.status, DELIVER_OK);
    char *e = mbox_of(f, "erin");
    assert_non_null(strstr(e, "Delivered-To: erin+special@example.org\n"));
    free(e);
    a = mbox_of(f, "alice");
    assert_int_equal(count_str(a, "\nSubject: test\n"), 1);
    free(a);
}

static void test_alias_loops(void **state)
{
    struct fx *f = *state;
    load_aliases(f, "a1: b1\nb1: a1\nroot: root, alice\nl=a: l=b\nl=b: l=a\n"
                    "d0: d1\nd1: d2\nd2: d3\nd3: d4\nd4: d5\nd5: d6\nd6: d7\nd7: d8\nd8: d9\n"
                    "d9: d10\nd10: d11\nd11: d12\nd12: d13\nd13: d14\nd14: d15\nd15: d16\n"
                    "d16: d17\nd17: d18\nd18: d19\nd19: d20\nd20: d21\nd21: d22\n");
    /* a loop ends at the user named like the alias met again */
    struct deliver_result r = deliver(f, "a1@example.org", "s@x", MSG);
    assert_int_equal(r.status, DELIVER_OK);
    char *a1 = mbox_of(f, "a1");
    assert_non_null(a1);
    assert_null(mbox_of(f, "b1"));
    free(a1);

    r = deliver(f, "root@example.org", "s@x", MSG);
    assert_int_equal(r.status, DELIVER_OK);
    char *root = mbox_of(f, "root"), *alice = mbox_of(f, "alice");
    assert_non_null(strstr(root, "Delivered-To: root@example.org\n"));
    assert_non_null(strstr(alice, "Delivered-To: alice@example.org\n"));
    free(root), free(alice);

    /* no such user: a permanent loop error */
    r = deliver(f, "l=a@example.org", "s@x", MSG);
    assert_int_equal(r.status, DELIVER_PERM);
    assert_string_equal(r.dsn, "5.4.6");
    assert_non_null(strstr(r.text, "mail forwarding loop"));

    r = deliver(f, "d0@example.org", "s@x", MSG);
    assert_int_equal(r.status, DELIVER_PERM);
    assert_string_equal(r.dsn, "5.4.6");
    assert_non_null(strstr(r.text, "too deep"));
    assert_null(mbox_of(f, "d22"));

    /* 19 levels are fine */
    r = deliver(f, "d3@example.org", "s@x", MSG);
    assert_int_equal(r.status, DELIVER_OK);
    char *d22 = mbox_of(f, "d22");
    assert_non_null(d22);
    free(d22);
}

static void test_postmaster_fallback(void **state)
{
    struct fx *f = *state;
    struct config *real = make_cfg(f, "mbox", 1);
    f->ctx.cfg = real;
    f->ctx.aliases = NULL;
    struct deliver_result r = deliver(f, "PostMaster@example.org", "s@x", MSG);
    assert_int_equal(r.status, DELIVER_OK);
    char path[200];
    snprintf(path, sizeof(path), "%s/spool/root", f->dir);
    char *got = slurp(path);
    assert_non_null(got);
    assert_non_null(strstr(got, "Delivered-To: root@example.org\n"));
    free(got);
    f->ctx.cfg = f->cfg;
    config_free(real);
}

static void test_real_layout_as_root(void **state)
{
    struct fx *f = *state;
    struct group *mail = getgrnam("mail");
    struct passwd *nobody = getpwnam("nobody");
    if (geteuid() != 0 || mail == NULL || nobody == NULL)
        skip();
    gid_t mail_gid = mail->gr_gid;
    uid_t nobody_uid = nobody->pw_uid;
    char spool[160], path[200];
    snprintf(spool, sizeof(spool), "%s/spool", f->dir);
    assert_int_equal(chown(spool, 0, mail_gid), 0);
    assert_int_equal(chmod(spool, 02775), 0);
    struct config *real = make_cfg(f, "mbox", 1);
    f->ctx.cfg = real;
    f->ctx.aliases = NULL;
    struct deliver_result r = deliver(f, "nobody@example.org", "s@x", MSG);
    assert_int_equal(r.status, DELIVER_OK);
    snprintf(path, sizeof(path), "%s/nobody", spool);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_uid, nobody_uid);
    assert_int_equal(st.st_gid, mail_gid);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(geteuid(), 0); /* fs ids restored: we can still create root files */
    f->ctx.cfg = f->cfg;
    config_free(real);
}

static void test_forward(void **state)
{
    struct fx *f = *state;
    load_aliases(f, "fwd: someone@remote.net, alice@localhost, Carol@EXAMPLE.org, someone@remote.net\n"
                    "bad: x@\n");
    struct deliver_result r = deliver(f, "fwd@example.org", "s@x", MSG);
    assert_int_equal(r.status, DELIVER_OK);
    assert_string_equal(f->forwarded, "someone@remote.net");
    assert_int_equal(f->nforwarded, 1);
    char *a = mbox_of(f, "alice"), *c = mbox_of(f, "carol");
    assert_non_null(a);
    assert_non_null(c);
    free(a), free(c);

    r = deliver(f, "bad@example.org", "s@x", MSG);
    assert_int_equal(r.status, DELIVER_PERM);
    assert_int_equal(f->nforwarded, 0);
}

/* read_out - contents of OUT/name */
static char *read_out(struct fx *f, const char *name)
{
    char path[200];
    snprintf(path, sizeof(path), "%s/%s", f->out, name);
    return slurp(path);
}

static void test_pipe_env_and_no_injection(void **state)
{
    struct fx *f = *state;
    setenv("TERN_TEST_CANARY", "leaked", 1);
    load_aliases(f, "pipe: \"|env > @OUT@/env; cat > @OUT@/msg; echo \\\"$SENDER\\\" > @OUT@/sender\"\n");
    char sender[700], pw1[200], pw2[200], pw3[200];
    snprintf(pw1, sizeof(pw1), "%s/pwned1", f->out);
    snprintf(pw2, sizeof(pw2), "%s/pwned2", f->out);
    snprintf(pw3, sizeof(pw3), "%s/pwned3", f->out);
    snprintf(sender, sizeof(sender), "\"`touch %s`$(touch %s);touch %s\"@ex.com", pw1, pw2, pw3);
    struct deliver_result r = deliver(f, "Pipe+Ext@example.org", sender, MSG);
    assert_int_equal(r.status, DELIVER_OK);
    assert_string_equal(r.dsn, "2.0.0");
    assert_non_null(strstr(r.text, "delivered to command: env > "));
    assert_int_equal(access(pw1, F_OK), -1);
    assert_int_equal(access(pw2, F_OK), -1);
    assert_int_equal(access(pw3, F_OK), -1);

    char *env = read_out(f, "env"), line[1024];
    assert_non_null(env);
    struct passwd *pw = getpwuid(geteuid() == 0 ? getpwnam("nobody")->pw_uid : geteuid());
    assert_non_null(pw);
    const char *want[] = {"PATH=/usr/bin:/bin", "SHELL=/bin/sh", "RECIPIENT=Pipe+Ext@example.org",
                          "LOCAL=Pipe+Ext", "DOMAIN=example.org", "EXTENSION=Ext",
                          "ORIGINAL_RECIPIENT=Pipe+Ext@example.org"};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        snprintf(line, sizeof(line), "\n%s\n", want[i]);
        char *with_nl = malloc(strlen(env) + 2);
        sprintf(with_nl, "\n%s", env);
        if (strstr(with_nl, line) == NULL)
            fail_msg("missing %s in:\n%s", want[i], env);
        free(with_nl);
    }
    snprintf(line, sizeof(line), "SENDER=%s\n", sender);
    assert_non_null(strstr(env, line));
    snprintf(line, sizeof(line), "USER=%s\n", pw->pw_name);
    assert_non_null(strstr(env, line));
    snprintf(line, sizeof(line), "LOGNAME=%s\n", pw->pw_name);
    assert_non_null(strstr(env, line));
    snprintf(line, sizeof(line), "HOME=%s\n", pw->pw_dir);
    assert_non_null(strstr(env, line));
    assert_null(strstr(env, "TERN_TEST_CANARY"));
    free(env);

    char *msg = read_out(f, "msg");
    char want_msg[2048];
    snprintf(want_msg, sizeof(want_msg),
             "Return-Path: <%s>\nDelivered-To: Pipe+Ext@example.org\n%s", sender, MSG);
    assert_string_equal(msg, want_msg);
    free(msg);
    char *s = read_out(f, "sender");
    snprintf(line, sizeof(line), "%s\n", sender);
    assert_string_equal(s, line);
    free(s);
    unsetenv("TERN_TEST_CANARY");
}

static void test_pipe_status(void **state)
{
    struct fx *f = *state;
    load_aliases(f, "nouser: \"|cat >/dev/null; exit 67\"\n"
                    "tempfail: \"|exit 75\"\n"
                    "other: \"|echo oops, it broke; exit 1\"\n"
                    "killed: \"|kill -9 $$\"\n"
                    "noread: |true\n"
                    "mix: alice, \"|exit 75\"\n"
                    "mix2: \"|exit 75\", \"|exit 77\", bob\n");
    struct deliver_result r = deliver(f, "nouser@example.org", "s@x", MSG);
    assert_int_equal(r.status, DELIVER_PERM);
    assert_string_equal(r.dsn, "5.1.1");
    r = deliver(f, "tempfail@example.org", "s@x", MSG);
    assert_int_equal(r.status, DELIVER_TEMP);
    assert_string_equal(r.dsn, "4.3.0");
    r = deliver(f, "other@example.org", "s@x", MSG);
    assert_int_equal(r.status, DELIVER_TEMP);
    assert_non_null(strstr(r.text, "oops, it broke"));
    r = deliver(f, "killed@example.org", "s@x", MSG);
    assert_int_equal(r.status, DELIVER_TEMP);
    assert_non_null(strstr(r.text, "signal 9"));

    /* a command that never reads a big message: EPIPE is no failure, the exit status decides */
    size_t big = 1 << 20;
    char *text = malloc(big + 1);
    memset(text, 'x', big);
    for (size_t i = 99; i < big; i += 100)
        text[i] = '\n';
    text[big] = '\0';
    memcpy(text, "Subject: big\n\n", 14);
    r = deliver(f, "noread@example.org", "s@x", text);
    free(text);
    assert_int_equal(r.status, DELIVER_OK);
    assert_string_equal(r.text, "delivered to command: true");

    r = deliver(f, "mix@example.org", "s@x", MSG);
    assert_int_equal(r.status, DELIVER_TEMP);
    char *a = mbox_of(f, "alice");
    assert_non_null(a);
    free(a);
    r = deliver(f, "mix2@example.org", "s@x", MSG);
    assert_int_equal(r.status, DELIVER_PERM);
    assert_string_equal(r.dsn, "5.7.1");
    assert_non_null(strstr(r.text, "77"));
}

static void test_file_target(void **state)
{
    struct fx *f = *state;
    load_aliases(f, "arch: @OUT@/archive, \"@OUT@/with space\"\n");
    struct deliver_result r = deliver(f, "arch@example.org", "s@x", MSG);
    assert_int_equal(r.status, DELIVER_OK);
    char want[300];
    snprintf(want, sizeof(want), "delivered to file: %s/archive", f->out);
    assert_string_equal(r.text, want);
    char *got = read_out(f, "archive");
    assert_string_equal(got, "From s@x  Thu Jan  1 00:00:00 2026\n"
                             "Return-Path: <s@x>\nDelivered-To: arch@example.org\n"
                             "Received: by mx\nSubject: test\n\nhello\n\n");
    free(got);
    got = read_out(f, "with space");
    assert_non_null(got);
    free(got);
    if (geteuid() == 0) { /* written as default_privs, never as root */
        char path[200];
        struct stat st;
        snprintf(path, sizeof(path), "%s/archive", f->out);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_uid, getpwnam("nobody")->pw_uid);
    }
}

static void test_include(void **state)
{
    struct fx *f = *state;
    char path[200];
    snprintf(path, sizeof(path), "%s/list.txt", f->dir);
    FILE *fp = fopen(path, "w");
    fprintf(fp, "# members\nalice, bob\n\n  \"|cat > %s/inc\"\nremote@far.away\n", f->out);
    fclose(fp);
    snprintf(path, sizeof(path), "%s/self.txt", f->dir);
    fp = fopen(path, "w");
    fprintf(fp, ":include:%s/self.txt\n", f->dir);
    fclose(fp);
    snprintf(path, sizeof(path), "%s/empty.txt", f->dir);
    fp = fopen(path, "w");
    fprintf(fp, "# nobody yet\n\n");
    fclose(fp);
    load_aliases(f, "inc: :include:@DIR@/list.txt\nself: :include:@DIR@/self.txt\n"
                    "missing: :include:@DIR@/nope.txt\nempty: :include:@DIR@/empty.txt\n");

    struct deliver_result r = deliver(f, "inc@example.org", "s@x", MSG);
    assert_int_equal(r.status, DELIVER_OK);
    assert_string_equal(f->forwarded, "remote@far.away");
    char *a = mbox_of(f, "alice"), *b = mbox_of(f, "bob"), *c = read_out(f, "inc");
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    assert_non_null(strstr(c, "Delivered-To: inc@example.org\nReceived: by mx\n"));
    free(a), free(b), free(c);

    r = deliver(f, "self@example.org", "s@x", MSG);
    assert_int_equal(r.status, DELIVER_PERM);
    assert_string_equal(r.dsn, "5.4.6");
    r = deliver(f, "missing@example.org", "s@x", MSG);
    assert_int_equal(r.status, DELIVER_TEMP);
    r = deliver(f, "empty@example.org", "s@x", MSG);
    assert_int_equal(r.status, DELIVER_PERM);
    assert_non_null(strstr(r.text, "no recipients"));
}

static void test_delivered_to_loop(void **state)
{
    struct fx *f = *state;
    load_aliases(f, "fan: alice, bob\n");
    const char *looped = "Received: by mx\nDELIVERED-TO: <Alice@Example.org>\nSubject: x\n\n"
                         "Delivered-To: bob@example.org\n";
    struct deliver_result r = deliver(f, "alice@example.org", "s@x", looped);
    assert_int_equal(r.status, DELIVER_PERM);
    assert_string_equal(r.dsn, "5.4.6");
    assert_string_equal(r.text, "mail forwarding loop for alice@example.org");
    assert_null(mbox_of(f, "alice"));

    /* a Delivered-To: in the body does not count; folded headers do */
    r = deliver(f, "bob@example.org", "s@x", looped);
    assert_int_equal(r.status, DELIVER_OK);
    r = deliver(f, "carol@example.org", "s@x", "Delivered-To:\n carol@example.org\n\nbody\n");
    assert_int_equal(r.status, DELIVER_PERM);
    assert_string_equal(r.dsn, "5.4.6");

    /* worst result wins, other targets are still delivered */
    r = deliver(f, "fan@example.org", "s@x", looped);
    assert_int_equal(r.status, DELIVER_PERM);
    char *b = mbox_of(f, "bob");
    assert_int_equal(count_str(b, "\nSubject: x\n"), 2);
    free(b);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_mydestination_and_recipient_ok),
        T(test_user_mbox),
        T(test_user_maildir),
        T(test_unknown_user),
        T(test_alias_lists),
        T(test_alias_loops),
        T(test_postmaster_fallback),
        T(test_real_layout_as_root),
        T(test_forward),
        T(test_pipe_env_and_no_injection),
        T(test_pipe_status),
        T(test_file_target),
        T(test_include),
        T(test_delivered_to_loop),
    };
    setenv("TZ", "UTC", 1);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
