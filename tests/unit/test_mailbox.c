/* test_mailbox.c - Maildir and mbox (mboxrd) writers, byte for byte */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "local.h"

struct fx {
    char dir[64];
};

/* rm_rf - remove a test directory tree */
static void rm_rf(const char *path)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
    assert_int_equal(system(cmd), 0);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    strcpy(f->dir, "/tmp/tern-mbox-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    rm_rf(f->dir);
    free(f);
    return 0;
}

/* msg_make - a memfd holding junk + text at offset 7, as a queue file would */
static void msg_make(struct local_msg *m, const char *text, const char *sender)
{
    int fd = memfd_create("msg", MFD_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "ENVELOP", 7), 7);
    size_t n = strlen(text);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    assert_int_equal(write(fd, "TRAILER", 7), 7); /* must not be copied */
    memset(m, 0, sizeof(*m));
    m->qid = "4F2A1B";
    m->sender = sender;
    m->fd = fd;
    m->body_off = 7;
    m->body_len = (off_t)n;
    m->arrival = 1767225600; /* 2026-01-01 00:00:00 UTC */
}

/* slurp - whole file as a string */
static char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    rewind(fp);
    char *s = malloc((size_t)n + 1);
    assert_int_equal(fread(s, 1, (size_t)n, fp), (size_t)n);
    s[n] = '\0';
    fclose(fp);
    if (len)
        *len = (size_t)n;
    return s;
}

/* count_entries - regular entries of a directory; name of the last one in out */
static int count_entries(const char *dir, char *out, size_t outsz)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        n++;
        if (out)
            snprintf(out, outsz, "%s", e->d_name);
    }
    closedir(d);
    return n;
}

static void test_mbox_format(void **state)
{
    struct fx *f = *state;
    struct local_msg m;
    struct deliver_result r;
    char path[128];
    setenv("TZ", "UTC", 1);
    tzset();
    msg_make(&m,
             "Received: from x\n"
             "Status: RO\n"
             "X-Status: A\n"
             "Subject: hi\n"
             "CONTENT-LENGTH: 12\n"
             "X-Keywords: a\n"
             "  b-continued\n"
             "X-UID  : 5\n"
             "X-IMAPbase: 1 2\n"
             "X-IMAP: 1\n"
             "X-Statusx: kept\n"
             "From: a@b\n"
             "\n"
             "From me\n"
             ">From you\n"
             ">>From x\n"
             "From\n"
             " From not\n"
             "Status: body keeps it\n"
             "xFrom y\n"
             "last line without newline",
             "alice@example.org");
    snprintf(path, sizeof(path), "%s/mbox", f->dir);
    assert_int_equal(mbox_deliver(path, &m, "Return-Path: <alice@example.org>\nDelivered-To: bob@d\n", &r), 0);
    assert_int_equal(r.status, DELIVER_OK);
    assert_string_equal(r.dsn, "2.0.0");
    assert_string_equal(r.text, "delivered to mailbox");
    const char *want =
        "From alice@example.org  Thu Jan  1 00:00:00 2026\n"
        "Return-Path: <alice@example.org>\n"
        "Delivered-To: bob@d\n"
        "Received: from x\n"
        "Subject: hi\n"
        "X-Statusx: kept\n"
        "From: a@b\n"
        "\n"
        ">From me\n"
        ">>From you\n"
        ">>>From x\n"
        "From\n"
        " From not\n"
        "Status: body keeps it\n"
        "xFrom y\n"
        "last line without newline\n"
        "\n";
    char *got = slurp(path, NULL);
    assert_string_equal(got, want);
    free(got);

    /* a second message is appended after the blank line; null sender is MAILER-DAEMON */
    struct local_msg m2;
    msg_make(&m2, "Subject: two\n\nbody\n", "");
    m2.arrival = 1767225600 + 86400 * 40 + 3600 * 13 + 61; /* Tue Feb 10 13:01:01 2026 */
    assert_int_equal(mbox_deliver(path, &m2, "", &r), 0);
    got = slurp(path, NULL);
    const char *tail = "\n\nFrom MAILER-DAEMON  Tue Feb 10 13:01:01 2026\nSubject: two\n\nbody\n\n";
    assert_non_null(strstr(got, tail));
    assert_string_equal(got + strlen(got) - strlen(tail), tail);
    free(got);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    char lock[160];
    snprintf(lock, sizeof(lock), "%s.lock", path);
    assert_int_equal(access(lock, F_OK), -1); /* dotlock removed */
    close(m.fd);
    close(m2.fd);
}

static void test_mbox_headers_only_and_empty(void **state)
{
    struct fx *f = *state;
    struct local_msg m;
    struct deliver_result r;
    char path[128];
    setenv("TZ", "UTC", 1);
    tzset();
    snprintf(path, sizeof(path), "%s/a", f->dir);
    /* the message ends inside a dropped header: no stray bytes, still newline + blank */
    msg_make(&m, "Subject: s\nStatus: RO", "a@b");
    assert_int_equal(mbox_deliver(path, &m, "", &r), 0);
    char *got = slurp(path, NULL);
    assert_string_equal(got, "From a@b  Thu Jan  1 00:00:00 2026\nSubject: s\n\n");
    free(got);
    close(m.fd);

    snprintf(path, sizeof(path), "%s/b", f->dir);
    msg_make(&m, "", "a b@c\n");
    assert_int_equal(mbox_deliver(path, &m, "X: y\n", &r), 0);
    got = slurp(path, NULL);
    /* white space and control bytes in the sender cannot break the From_ line */
    assert_string_equal(got, "From a_b@c_  Thu Jan  1 00:00:00 2026\nX: y\n\n");
    free(got);
    close(m.fd);
}

static void test_mbox_long_lines_and_chunks(void **state)
{
    struct fx *f = *state;
    struct local_msg m;
    struct deliver_result r;
    char path[128];
    setenv("TZ", "UTC", 1);
    tzset();
    /* > 64 KiB so the copy takes several chunks; quoting must work across chunk edges */
    struct buf_s {
        char *p;
        size_t n;
    } in = {malloc(400000), 0}, out = {malloc(500000), 0};
    const char *hdr = "Subject: big\n\n";
    memcpy(in.p, hdr, strlen(hdr));
    in.n = strlen(hdr);
    for (int i = 0; in.n < 200000; i++) {
        int gts = i % 50;
        char line[128];
        memset(line, '>', (size_t)gts);
        int k = snprintf(line + gts, sizeof(line) - (size_t)gts, "From line %d\n", i);
        memcpy(in.p + in.n, line, (size_t)(gts + k));
        in.n += (size_t)(gts + k);
        out.p[out.n++] = '>';
        memcpy(out.p + out.n, line, (size_t)(gts + k));
        out.n += (size_t)(gts + k);
    }
    /* a 100000-byte line of '>' then "From " */
    memset(in.p + in.n, '>', 100000);
    memcpy(in.p + in.n + 100000, "From z\n", 8);
    in.n += 100007;
    out.p[out.n++] = '>';
    memset(out.p + out.n, '>', 100000);
    memcpy(out.p + out.n + 100000, "From z\n\n", 9);
    out.n += 100008;
    in.p[in.n] = '\0';
    out.p[out.n] = '\0';
    msg_make(&m, in.p, "s@d");
    snprintf(path, sizeof(path), "%s/big", f->dir);
    assert_int_equal(mbox_deliver(path, &m, "", &r), 0);
    size_t len;
    char *got = slurp(path, &len);
    const char *from = "From s@d  Thu Jan  1 00:00:00 2026\nSubject: big\n\n";
    assert_memory_equal(got, from, strlen(from));
    assert_int_equal(len, strlen(from) + out.n);
    assert_memory_equal(got + strlen(from), out.p, out.n);
    free(got);
    free(in.p);
    free(out.p);
    close(m.fd);
}

static void test_mbox_refuses_unsafe(void **state)
{
    struct fx *f = *state;
    struct local_msg m;
    struct deliver_result r;
    char path[128], target[128], link2[128];
    msg_make(&m, "Subject: x\n\nbody\n", "a@b");
    snprintf(target, sizeof(target), "%s/target", f->dir);
    snprintf(path, sizeof(path), "%s/symlink", f->dir);
    assert_int_equal(symlink(target, path), 0);
    assert_int_equal(mbox_deliver(path, &m, "", &r), -1);
    assert_int_equal(r.status, DELIVER_TEMP);
    assert_int_equal(access(target, F_OK), -1);

    int fd = open(target, O_CREAT | O_WRONLY, 0600);
    close(fd);
    snprintf(link2, sizeof(link2), "%s/hardlink", f->dir);
    assert_int_equal(link(target, link2), 0);
    assert_int_equal(mbox_deliver(link2, &m, "", &r), -1);
    assert_int_equal(r.status, DELIVER_TEMP);
    assert_non_null(strstr(r.text, "hard link"));

    snprintf(path, sizeof(path), "%s/fifo", f->dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_int_equal(mbox_deliver(path, &m, "", &r), -1); /* must not hang */
    assert_int_equal(r.status, DELIVER_TEMP);

    snprintf(path, sizeof(path), "%s/nodir/mbox", f->dir);
    assert_int_equal(mbox_deliver(path, &m, "", &r), -1);
    assert_int_equal(r.status, DELIVER_TEMP);
    assert_string_equal(r.dsn, "4.2.0");
    close(m.fd);
}

static void test_mbox_stale_dotlock(void **state)
{
    struct fx *f = *state;
    struct local_msg m;
    struct deliver_result r;
    char path[128], lock[140];
    msg_make(&m, "Subject: x\n\nbody\n", "a@b");
    snprintf(path, sizeof(path), "%s/mb", f->dir);
    snprintf(lock, sizeof(lock), "%s.lock", path);
    int fd = open(lock, O_CREAT | O_WRONLY, 0600);
    close(fd);
    struct timespec old[2] = {{time(NULL) - 600, 0}, {time(NULL) - 600, 0}};
    assert_int_equal(utimensat(AT_FDCWD, lock, old, 0), 0);
    assert_int_equal(mbox_deliver(path, &m, "", &r), 0);
    assert_int_equal(access(lock, F_OK), -1);
    close(m.fd);
}

static void test_maildir(void **state)
{
    struct fx *f = *state;
    struct local_msg m;
    struct deliver_result r;
    char md[128], sub[160], name[512], file[800];
    const char *text = "Subject: md\n\nFrom here\nStatus: kept\n";
    msg_make(&m, text, "a@b");
    snprintf(md, sizeof(md), "%s/users/bob/Maildir/", f->dir);
    assert_int_equal(maildir_deliver(md, &m, "Delivered-To: bob@d\n", &r), 0);
    assert_int_equal(r.status, DELIVER_OK);
    assert_string_equal(r.dsn, "2.0.0");
    assert_string_equal(r.text, "delivered to maildir");

    snprintf(sub, sizeof(sub), "%s/users/bob/Maildir/tmp", f->dir);
    assert_int_equal(count_entries(sub, NULL, 0), 0);
    snprintf(sub, sizeof(sub), "%s/users/bob/Maildir/cur", f->dir);
    assert_int_equal(count_entries(sub, NULL, 0), 0);
    struct stat st;
    assert_int_equal(stat(sub, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    snprintf(sub, sizeof(sub), "%s/users/bob/Maildir/new", f->dir);
    assert_int_equal(count_entries(sub, name, sizeof(name)), 1);

    /* time.V<dev>I<ino>M<usec>.host,S=<size> */
    snprintf(file, sizeof(file), "%s/%s", sub, name);
    assert_int_equal(stat(file, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    char host[256] = "", esc[1024] = "", want[1400];
    gethostname(host, sizeof(host) - 1);
    size_t o = 0;
    for (char *p = host; *p; p++)
        o += (size_t)sprintf(esc + o, "%s", *p == '/' ? "\\057" : *p == ':' ? "\\072" : (char[]){*p, 0});
    long long secs;
    long usec;
    char rest[1024];
    assert_int_equal(sscanf(name, "%lld.V%*[0-9a-f]I%*[0-9a-f]M%ld.%1023s", &secs, &usec, rest), 3);
    snprintf(want, sizeof(want), "%lld.V%llxI%llxM%ld.%s,S=%lld", secs,
             (unsigned long long)st.st_dev, (unsigned long long)st.st_ino, usec, esc,
             (long long)st.st_size);
    assert_string_equal(name, want);
    assert_true(secs > 1700000000);
    assert_true(usec >= 0 && usec < 1000000);

    size_t len;
    char *got = slurp(file, &len);
    assert_int_equal((long long)len, (long long)st.st_size);
    assert_string_equal(got, "Delivered-To: bob@d\nSubject: md\n\nFrom here\nStatus: kept\n");
    free(got);

    /* a second delivery gets a different name */
    assert_int_equal(maildir_deliver(md, &m, "", &r), 0);
    assert_int_equal(count_entries(sub, NULL, 0), 2);
    close(m.fd);
}

static void test_maildir_errors(void **state)
{
    struct fx *f = *state;
    struct local_msg m;
    struct deliver_result r;
    char md[128], file[128];
    msg_make(&m, "Subject: x\n\nbody\n", "a@b");
    snprintf(file, sizeof(file), "%s/plainfile", f->dir);
    int fd = open(file, O_CREAT | O_WRONLY, 0600);
    close(fd);
    snprintf(md, sizeof(md), "%s/plainfile/Maildir", f->dir);
    assert_int_equal(maildir_deliver(md, &m, "", &r), -1);
    assert_int_equal(r.status, DELIVER_TEMP);
    assert_int_equal(r.dsn[0], '4');

    /* the message file is shorter than body_len: nothing is left in tmp/ or new/ */
    m.body_len += 100;
    snprintf(md, sizeof(md), "%s/md2", f->dir);
    assert_int_equal(maildir_deliver(md, &m, "", &r), -1);
    assert_int_equal(r.status, DELIVER_TEMP);
    char sub[160];
    snprintf(sub, sizeof(sub), "%s/tmp", md);
    assert_int_equal(count_entries(sub, NULL, 0), 0);
    snprintf(sub, sizeof(sub), "%s/new", md);
    assert_int_equal(count_entries(sub, NULL, 0), 0);

    /* mbox: a failed copy truncates the mailbox back to its old size */
    char path[128];
    struct local_msg ok;
    msg_make(&ok, "Subject: ok\n\nbody\n", "a@b");
    snprintf(path, sizeof(path), "%s/trunc", f->dir);
    assert_int_equal(mbox_deliver(path, &ok, "", &r), 0);
    size_t before, after;
    free(slurp(path, &before));
    assert_int_equal(mbox_deliver(path, &m, "", &r), -1);
    assert_int_equal(r.status, DELIVER_TEMP);
    free(slurp(path, &after));
    assert_int_equal(before, after);
    close(m.fd);
    close(ok.fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_mbox_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mbox_headers_only_and_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mbox_long_lines_and_chunks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mbox_refuses_unsafe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mbox_stale_dotlock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_maildir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_maildir_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
