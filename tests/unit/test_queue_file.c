/* test_queue_file.c - queue file envelope: encode/decode round trips, offsets, rejects */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "queue_file.h"
#include "smtp_cmd.h"

/* ---- round trips ---------------------------------------------------------- */

struct rc_spec {
    const char *addr;
    const char *orcpt;      /* NULL: absent */
    const char *orcpt_type; /* "" if absent */
    int notify;
    char state;
};

struct env_spec {
    const char *name;
    const char *id;
    long long arrival;
    long usec;
    const char *client_addr, *client_name, *helo, *proto, *sender;
    int body, smtputf8, ret;
    const char *envid; /* NULL: absent */
    struct rc_spec rcpts[6];
    size_t nrcpt;
};

#define N_SUCC_FAIL (NOTIFY_SUCCESS | NOTIFY_FAILURE)
#define N_ALL (NOTIFY_SUCCESS | NOTIFY_FAILURE | NOTIFY_DELAY)

static const struct env_spec env_cases[] = {
    {"plain", "6740A1B2C3D4", 1763789509, 123456, "192.0.2.1", "mail.example.org",
     "mail.example.org", "ESMTP", "alice@example.org", BODY_8BITMIME, 0, RET_NONE, NULL,
     {{"bob@example.net", "bob@example.net", "rfc822", N_SUCC_FAIL, 'Q'},
      {"carol@example.net", NULL, "", 0, 'D'}},
     2},
    {"null sender", "000000000000", 0, 0, "2001:db8::25", "", "[192.0.2.1]", "SMTP", "",
     BODY_NONE, 0, RET_NONE, NULL,
     {{"postmaster", NULL, "", 0, 'Q'}},
     1},
    {"spaces quotes plus equals", "FFFFFFFFFFFF", 2000000000, 999999, "198.51.100.7",
     "x.example", "helo with space", "ESMTP",
     "\"john doe\"@example.com",
     BODY_7BIT, 0, RET_HDRS, "ID with space+plus=eq",
     {{"\"a b\\\"c\"@example.com", "\"a b\"@example.com", "rfc822", NOTIFY_NEVER, 'Q'},
      {"a+tag=x@example.com", "a+tag=x@example.com", "rfc822", NOTIFY_FAILURE | NOTIFY_DELAY, 'B'},
      {"=?x?=@example.com", NULL, "", NOTIFY_SUCCESS, 'D'},
      {"plus+@example.com", "+", "rfc822", NOTIFY_DELAY, 'Q'}},
     4},
    {"utf8", "0123456789AB", 1700000000, 1, "192.0.2.99", "b\xc3\xbc" "cher.example",
     "b\xc3\xbc" "cher.example", "UTF8SMTP", "j\xc3\xb6ran@b\xc3\xbc" "cher.example",
     BODY_8BITMIME, 1, RET_FULL, "\xe7\x94\xa8-envid",
     {{"\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\x85\xac\xe5\x8f\xb8",
       "\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\x85\xac\xe5\x8f\xb8", "utf-8", N_ALL,
       'Q'},
      {"jo@example.com", "jo@example.com", "rfc822", 0, 'Q'}},
     2},
    {"all notify and states", "ABCDEF012345", 1763789509, 7, "127.0.0.1", "localhost",
     "localhost", "ESMTP", "a@b.example", BODY_NONE, 0, RET_FULL, "x",
     {{"r0@example.com", NULL, "", 0, 'Q'},
      {"r1@example.com", NULL, "", NOTIFY_NEVER, 'D'},
      {"r2@example.com", NULL, "", NOTIFY_SUCCESS, 'B'},
      {"r3@example.com", NULL, "", NOTIFY_FAILURE, 'Q'},
      {"r4@example.com", NULL, "", NOTIFY_DELAY, 'D'},
      {"r5@example.com", "", "rfc822", N_ALL, 'B'}},
     6},
};

/* build - a qenv pointing at the spec's strings */
static void build(const struct env_spec *s, struct qenv *env, struct qrcpt *rc)
{
    memset(env, 0, sizeof(*env));
    snprintf(env->id, sizeof(env->id), "%s", s->id);
    env->arrival = (time_t)s->arrival;
    env->arrival_usec = s->usec;
    env->client_addr = (char *)s->client_addr;
    env->client_name = (char *)s->client_name;
    env->helo = (char *)s->helo;
    env->proto = (char *)s->proto;
    env->sender = (char *)s->sender;
    env->body = s->body;
    env->smtputf8 = s->smtputf8;
    env->ret = s->ret;
    env->envid = (char *)s->envid;
    for (size_t i = 0; i < s->nrcpt; i++) {
        memset(&rc[i], 0, sizeof(rc[i]));
        rc[i].addr = (char *)s->rcpts[i].addr;
        rc[i].orcpt = (char *)s->rcpts[i].orcpt;
        snprintf(rc[i].orcpt_type, sizeof(rc[i].orcpt_type), "%s", s->rcpts[i].orcpt_type);
        rc[i].notify = s->rcpts[i].notify;
        rc[i].state = s->rcpts[i].state;
    }
    env->rcpts = rc;
    env->nrcpt = s->nrcpt;
}

static void check_same(const struct env_spec *s, const struct qenv *d, const struct qenv *enc)
{
    assert_string_equal(d->id, s->id);
    assert_int_equal((long long)d->arrival, s->arrival);
    assert_int_equal(d->arrival_usec, s->usec);
    assert_string_equal(d->client_addr, s->client_addr);
    assert_string_equal(d->client_name, s->client_name);
    assert_string_equal(d->helo, s->helo);
    assert_string_equal(d->proto, s->proto);
    assert_non_null(d->sender);
    assert_string_equal(d->sender, s->sender);
    assert_int_equal(d->body, s->body);
    assert_int_equal(d->smtputf8, s->smtputf8);
    assert_int_equal(d->ret, s->ret);
    if (s->envid == NULL)
        assert_null(d->envid);
    else
        assert_string_equal(d->envid, s->envid);
    assert_int_equal(d->nrcpt, s->nrcpt);
    for (size_t i = 0; i < s->nrcpt; i++) {
        const struct qrcpt *r = &d->rcpts[i];
        assert_string_equal(r->addr, s->rcpts[i].addr);
        if (s->rcpts[i].orcpt == NULL)
            assert_null(r->orcpt);
        else
            assert_string_equal(r->orcpt, s->rcpts[i].orcpt);
        assert_string_equal(r->orcpt_type, s->rcpts[i].orcpt_type);
        assert_int_equal(r->notify, s->rcpts[i].notify);
        assert_int_equal(r->state, s->rcpts[i].state);
        assert_int_equal(r->state_off, enc->rcpts[i].state_off);
    }
    assert_int_equal(d->data_off, enc->data_off);
}

/* check_clean - the envelope holds printable ASCII and LF only, and each line has
 * exactly the number of fields of its record (no raw space from a value) */
static void check_clean(const char *p, size_t len)
{
    size_t lines = 0, spaces = 0;
    const char *line = p;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\n') {
            size_t want;
            if (strncmp(line, "client ", 7) == 0)
                want = 2;
            else if (strncmp(line, "rcpt ", 5) == 0)
                want = 5;
            else if (strncmp(line, "data\n", 5) == 0)
                want = 0;
            else
                want = 1;
            if (spaces != want)
                fail_msg("line \"%.*s\" has %zu spaces, want %zu", (int)(p + i - line), line, spaces, want);
            lines++;
            spaces = 0;
            line = p + i + 1;
            continue;
        }
        if (c == ' ')
            spaces++;
        else if (c < 0x21 || c > 0x7e)
            fail_msg("raw byte 0x%02x at %zu in the envelope", c, i);
    }
    assert_ptr_equal(line, p + len); /* ends with a complete line */
    assert_true(lines >= 13);
}

static void test_round_trip(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof(env_cases) / sizeof(env_cases[0]); k++) {
        const struct env_spec *s = &env_cases[k];
        struct qenv env, dec;
        struct qrcpt rc[6];
        build(s, &env, rc);
        struct buf b = BUF_INIT;
        queue_env_encode(&env, &b);

        check_clean(b.data, b.len);
        assert_int_equal(env.data_off, (off_t)b.len);
        assert_memory_equal(b.data + b.len - 5, "data\n", 5);
        assert_memory_equal(b.data, "TERN 1\n", 7);
        /* each state_off points at the state byte of its own "rcpt " line */
        for (size_t i = 0; i < s->nrcpt; i++) {
            off_t o = rc[i].state_off;
            assert_true(o >= 5 && (size_t)o < b.len);
            assert_memory_equal(b.data + o - 5, "rcpt ", 5);
            assert_int_equal(b.data[o - 6], '\n');
            assert_int_equal(b.data[o], s->rcpts[i].state);
            assert_int_equal(b.data[o + 1], ' ');
            if (i > 0)
                assert_true(o > rc[i - 1].state_off);
        }

        char err[256] = "";
        if (queue_env_decode(b.data, b.len, &dec, err, sizeof(err)) != 0)
            fail_msg("case \"%s\": decode failed: %s", s->name, err);
        check_same(s, &dec, &env);
        queue_env_free(&dec);

        /* the decoder reads only the envelope: message text after it is ignored */
        struct buf m = BUF_INIT;
        buf_append(&m, b.data, b.len);
        buf_puts(&m, "TERN 1\nrcpt X junk\nfoo\n\ndata\n");
        buf_append(&m, "\0\r\n", 3);
        assert_int_equal(queue_env_decode(m.data, m.len, &dec, err, sizeof(err)), 0);
        check_same(s, &dec, &env);
        queue_env_free(&dec);

        /* and a second encode of the decoded envelope gives the same bytes */
        assert_int_equal(queue_env_decode(b.data, b.len, &dec, err, sizeof(err)), 0);
        struct buf b2 = BUF_INIT;
        queue_env_encode(&dec, &b2);
        assert_int_equal(b2.len, b.len);
        assert_memory_equal(b2.data, b.data, b.len);
        queue_env_free(&dec);

        buf_free(&b2);
        buf_free(&m);
        buf_free(&b);
    }
}

/* the exact layout of docs/ARCHITECTURE.md */
static void test_encode_exact(void **state)
{
    (void)state;
    struct qenv env;
    struct qrcpt rc[6];
    build(&env_cases[0], &env, rc);
    struct buf b = BUF_INIT;
    queue_env_encode(&env, &b);
    static const char want[] = "TERN 1\n"
                               "id 6740A1B2C3D4\n"
                               "time 1763789509.123456\n"
                               "client 192.0.2.1 mail.example.org\n"
                               "helo mail.example.org\n"
                               "proto ESMTP\n"
                               "sender alice@example.org\n"
                               "body 8BITMIME\n"
                               "smtputf8 0\n"
                               "ret -\n"
                               "envid -\n"
                               "rcpt Q 6 rfc822 bob@example.net bob@example.net\n"
                               "rcpt D 0 - - carol@example.net\n"
                               "data\n";
    assert_string_equal(b.data, want);
    assert_int_equal(env.data_off, sizeof(want) - 1);
    assert_int_equal(rc[0].state_off, strstr(want, "rcpt Q") - want + 5);
    assert_int_equal(rc[1].state_off, strstr(want, "rcpt D") - want + 5);
    buf_free(&b);
}

/* xtext of the variable values, exactly */
static void test_encode_xtext(void **state)
{
    (void)state;
    struct qenv env;
    struct qrcpt rc[6];
    build(&env_cases[2], &env, rc);
    struct buf b = BUF_INIT;
    queue_env_encode(&env, &b);
    assert_non_null(strstr(b.data, "\nhelo helo+20with+20space\n"));
    assert_non_null(strstr(b.data, "\nsender \"john+20doe\"@example.com\n"));
    assert_non_null(strstr(b.data, "\nbody 7BIT\n"));
    assert_non_null(strstr(b.data, "\nret HDRS\n"));
    assert_non_null(strstr(b.data, "\nenvid ID+20with+20space+2Bplus+3Deq\n"));
    assert_non_null(strstr(b.data, "\nrcpt B 12 rfc822 a+2Btag+3Dx@example.com a+2Btag+3Dx@example.com\n"));
    assert_non_null(strstr(b.data, "\nrcpt D 2 - - +3D?x?+3D@example.com\n"));
    assert_non_null(strstr(b.data, "\nrcpt Q 8 rfc822 +2B plus+2B@example.com\n"));
    buf_free(&b);

    build(&env_cases[1], &env, rc);
    queue_env_encode(&env, &b);
    assert_non_null(strstr(b.data, "\nsender \n")); /* the null sender */
    assert_non_null(strstr(b.data, "\nclient 2001:db8::25 \n"));
    assert_non_null(strstr(b.data, "\nbody -\n"));
    buf_free(&b);

    build(&env_cases[3], &env, rc);
    queue_env_encode(&env, &b);
    assert_non_null(strstr(b.data, "\nsmtputf8 1\n"));
    assert_non_null(strstr(b.data, "\nret FULL\n"));
    assert_non_null(strstr(b.data, "\nsender j+C3+B6ran@b+C3+BCcher.example\n"));
    buf_free(&b);
}

/* many recipients: more than the decoder's allocation step, and more than one
 * 16 KiB read in queue_env_read */
static void test_many_rcpts_and_read(void **state)
{
    (void)state;
    enum { N = 1200 };
    struct qenv env;
    memset(&env, 0, sizeof(env));
    snprintf(env.id, sizeof(env.id), "1234567890AB");
    env.arrival = 1;
    env.client_addr = "192.0.2.1";
    env.client_name = "c.example";
    env.helo = "h";
    env.proto = "ESMTP";
    env.sender = "s@example.com";
    struct qrcpt *rc = calloc(N, sizeof(*rc));
    char (*names)[64] = calloc(N, 64);
    for (int i = 0; i < N; i++) {
        snprintf(names[i], 64, "recipient.number.%d+x=y@example.com", i);
        rc[i].addr = names[i];
        rc[i].state = "QDB"[i % 3];
        rc[i].notify = i % 16;
    }
    env.rcpts = rc;
    env.nrcpt = N;
    struct buf b = BUF_INIT;
    queue_env_encode(&env, &b);
    assert_true(b.len > 3 * 16384);

    /* the file: envelope, then a message that itself looks like an envelope
     * and holds NULs */
    char path[] = "/tmp/tern-qf-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    assert_int_equal(write(fd, b.data, b.len), (ssize_t)b.len);
    static const char body[] = "\ndata\nTERN 1\n\0\0rcpt Q 0 - - x\ndata\n";
    for (int i = 0; i < 2000; i++)
        assert_int_equal(write(fd, body, sizeof(body)), (ssize_t)sizeof(body));

    struct qenv dec;
    char err[256] = "";
    if (queue_env_read(fd, &dec, err, sizeof(err)) != 0)
        fail_msg("queue_env_read: %s", err);
    assert_int_equal(dec.nrcpt, N);
    assert_int_equal(dec.data_off, env.data_off);
    assert_string_equal(dec.id, "1234567890AB");
    for (int i = 0; i < N; i++) {
        assert_string_equal(dec.rcpts[i].addr, names[i]);
        assert_int_equal(dec.rcpts[i].state, "QDB"[i % 3]);
        assert_int_equal(dec.rcpts[i].notify, i % 16);
        assert_int_equal(dec.rcpts[i].state_off, rc[i].state_off);
        char c;
        assert_int_equal(pread(fd, &c, 1, dec.rcpts[i].state_off), 1);
        assert_int_equal(c, "QDB"[i % 3]);
    }
    queue_env_free(&dec);
    close(fd);
    buf_free(&b);
    free(names);
    free(rc);
}

/* an envelope split across the reads exactly at "data" */
static void test_read_small_files(void **state)
{
    (void)state;
    struct qenv env, dec;
    struct qrcpt rc[6];
    build(&env_cases[2], &env, rc);
    struct buf b = BUF_INIT;
    queue_env_encode(&env, &b);
    char err[256];

    for (int variant = 0; variant < 3; variant++) {
        char path[] = "/tmp/tern-qf-XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        unlink(path);
        size_t n = variant == 2 ? b.len - 1 : b.len; /* variant 2: "data" without its LF */
        assert_int_equal(write(fd, b.data, n), (ssize_t)n);
        if (variant == 1)
            assert_int_equal(write(fd, "body\n", 5), 5);
        int r = queue_env_read(fd, &dec, err, sizeof(err));
        if (variant == 2) {
            assert_int_equal(r, -1);
        } else {
            assert_int_equal(r, 0);
            check_same(&env_cases[2], &dec, &env);
            queue_env_free(&dec);
        }
        close(fd);
    }
    /* an empty file */
    char path[] = "/tmp/tern-qf-XXXXXX";
    int fd = mkstemp(path);
    unlink(path);
    assert_int_equal(queue_env_read(fd, &dec, err, sizeof(err)), -1);
    close(fd);
    /* a bad descriptor */
    assert_int_equal(queue_env_read(-1, &dec, err, sizeof(err)), -1);
    assert_true(err[0] != '\0');
    buf_free(&b);
}

/* values the envelope's own syntax uses must survive too */
static void test_round_trip_dash(void **state)
{
    (void)state;
    struct qenv env, dec;
    struct qrcpt rc[6];
    build(&env_cases[0], &env, rc);
    env.envid = "-";
    rc[0].orcpt = "-";
    struct buf b = BUF_INIT;
    queue_env_encode(&env, &b);
    char err[256];
    assert_int_equal(queue_env_decode(b.data, b.len, &dec, err, sizeof(err)), 0);
    int envid_ok = dec.envid != NULL && strcmp(dec.envid, "-") == 0;
    int orcpt_ok = dec.rcpts[0].orcpt != NULL && strcmp(dec.rcpts[0].orcpt, "-") == 0;
    queue_env_free(&dec);
    buf_free(&b);
    assert_true(envid_ok);
    assert_true(orcpt_ok);
}

/* ---- rejects -------------------------------------------------------------- */

#define HEAD "TERN 1\nid 6740A1B2C3D4\ntime 1763789509.123456\nclient 192.0.2.1 h.example\n" \
             "helo h.example\nproto ESMTP\n"
#define MID "sender a@example.org\nbody 8BITMIME\nsmtputf8 0\nret -\nenvid -\n"
#define RCPT "rcpt Q 6 rfc822 b@example.net b@example.net\n"
#define GOOD HEAD MID RCPT "data\n"

struct bad_case {
    const char *why;
    const char *text;
};

static const struct bad_case bad_cases[] = {
    {"empty", ""},
    {"magic only partly", "TERN"},
    {"no magic", "id 6740A1B2C3D4\n" MID RCPT "data\n"},
    {"wrong version", "TERN 2\nid 6740A1B2C3D4\n" MID RCPT "data\n"},
    {"lowercase magic", "tern 1\nid 6740A1B2C3D4\n" MID RCPT "data\n"},
    {"CRLF magic", "TERN 1\r\nid 6740A1B2C3D4\n" MID RCPT "data\n"},
    {"leading junk", "\nTERN 1\n" MID RCPT "data\n"},
    {"unknown record", HEAD MID "x-foo bar\n" RCPT "data\n"},
    {"unknown record data-like", HEAD MID RCPT "data extra\n"},
    {"empty line", HEAD MID "\n" RCPT "data\n"},
    {"CR line end", HEAD MID RCPT "data\r\n"},
    {"bad state", HEAD MID "rcpt X 0 - - b@example.net\n" "data\n"},
    {"lowercase state", HEAD MID "rcpt q 0 - - b@example.net\n" "data\n"},
    {"two-byte state", HEAD MID "rcpt QD 0 - - b@example.net\n" "data\n"},
    {"empty state", HEAD MID "rcpt  0 - - b@example.net\n" "data\n"},
    {"rcpt too few fields", HEAD MID "rcpt Q 0 - b@example.net\n" "data\n"},
    {"rcpt too many fields", HEAD MID "rcpt Q 0 - - b@example.net x\n" "data\n"},
    {"no data line", HEAD MID RCPT},
    {"data without LF", HEAD MID RCPT "data"},
    {"missing id", "TERN 1\ntime 1.0\nclient a b\nhelo h\nproto ESMTP\n" MID RCPT "data\n"},
    {"missing sender", HEAD "body 8BITMIME\nsmtputf8 0\nret -\nenvid -\n" RCPT "data\n"},
    {"no recipients", HEAD MID "data\n"},
    {"lowercase id", "TERN 1\nid 6740a1b2c3d4\n" MID RCPT "data\n"},
    {"short id", "TERN 1\nid 6740A1B2C3D\n" MID RCPT "data\n"},
    {"long id", "TERN 1\nid 6740A1B2C3D45\n" MID RCPT "data\n"},
    {"id with slash", "TERN 1\nid ../../etc/pw\n" MID RCPT "data\n"},
    {"bad time", HEAD "time soon\n" MID RCPT "data\n"},
    {"bad xtext sender +ZZ", HEAD "sender a+ZZ@example.org\n" RCPT "data\n"},
    {"bad xtext sender =", HEAD "sender a=b@example.org\n" RCPT "data\n"},
    {"bad xtext sender short", HEAD "sender a+4\n" RCPT "data\n"},
    {"xtext decoding to CR", HEAD "sender a+0D@example.org\n" RCPT "data\n"},
    {"raw space in sender", HEAD "sender a b\n" RCPT "data\n"},
    {"bad xtext helo", "TERN 1\nid 6740A1B2C3D4\nhelo +0A\n" MID RCPT "data\n"},
    {"bad xtext proto", "TERN 1\nid 6740A1B2C3D4\nproto +\n" MID RCPT "data\n"},
    {"bad xtext client", "TERN 1\nid 6740A1B2C3D4\nclient 1.2.3.4 +GG\n" MID RCPT "data\n"},
    {"client one field", "TERN 1\nid 6740A1B2C3D4\nclient 1.2.3.4\n" MID RCPT "data\n"},
    {"bad xtext envid", HEAD "sender a@b\nenvid x+2\n" RCPT "data\n"},
    {"bad xtext rcpt", HEAD MID "rcpt Q 0 - - b+0A@example.net\n" "data\n"},
    {"bad xtext orcpt", HEAD MID "rcpt Q 0 rfc822 x+4 b@example.net\n" "data\n"},
    {"raw UTF-8 in rcpt", HEAD MID "rcpt Q 0 - - j\xc3\xb6@example.net\n" "data\n"},
    {"NUL in record", HEAD MID "rcpt Q 0 - - b\0@example.net\n" "data\n"},
    {"bad record after rcpts", HEAD MID RCPT "rcpt Z 0 - - c@example.net\n" "data\n"},
};

static void test_decode_rejects(void **state)
{
    (void)state;
    /* the template itself is good */
    struct qenv env;
    char err[256];
    assert_int_equal(queue_env_decode(GOOD, sizeof(GOOD) - 1, &env, err, sizeof(err)), 0);
    assert_int_equal(env.data_off, sizeof(GOOD) - 1);
    assert_int_equal(env.nrcpt, 1);
    queue_env_free(&env);

    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        const struct bad_case *c = &bad_cases[i];
        /* length from the literal: "NUL in record" holds a NUL */
        size_t len = strlen(c->text);
        if (strcmp(c->why, "NUL in record") == 0)
            len = sizeof(HEAD MID "rcpt Q 0 - - b\0@example.net\n" "data\n") - 1;
        /* a private copy so ASan sees any read past the end */
        char *copy = malloc(len ? len : 1);
        memcpy(copy, c->text, len);
        strcpy(err, "");
        memset(&env, 0x5a, sizeof(env));
        int r = queue_env_decode(copy, len, &env, err, sizeof(err));
        if (r != -1)
            fail_msg("\"%s\" accepted", c->why);
        if (err[0] == '\0')
            fail_msg("\"%s\": no error text", c->why);
        /* nothing left to free */
        assert_null(env.rcpts);
        assert_int_equal(env.nrcpt, 0);
        assert_null(env.sender);
        free(copy);
    }
}

/* truncations of a good envelope at every length are rejected (and never read
 * past the given length) */
static void test_decode_truncated(void **state)
{
    (void)state;
    static const char good[] = GOOD;
    for (size_t n = 0; n < sizeof(good) - 1; n++) {
        char *copy = malloc(n ? n : 1);
        memcpy(copy, good, n);
        struct qenv env;
        char err[128];
        if (queue_env_decode(copy, n, &env, err, sizeof(err)) != -1)
            fail_msg("truncated at %zu accepted", n);
        free(copy);
    }
}

/* ---- queue_id_valid -------------------------------------------------------- */

static const struct {
    const char *id;
    int ok;
} id_cases[] = {
    {"6740A1B2C3D4", 1},  {"000000000000", 1},  {"FFFFFFFFFFFF", 1},  {"0123456789AB", 1},
    {"6740a1b2c3d4", 0},  {"6740A1B2C3D", 0},   {"6740A1B2C3D45", 0}, {"", 0},
    {"6740A1B2C3DG", 0},  {"6740A1B2C3D ", 0},  {" 6740A1B2C3D", 0},  {"6740A1B2C3D\n", 0},
    {"../../etc/pa", 0},  {"6740A1B2C3D-", 0},  {"GGGGGGGGGGGG", 0},  {"6740A1B2C3D4.", 0},
    {"0x0123456789", 0},  {"+12345678901", 0},
};

static void test_queue_id_valid(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(id_cases) / sizeof(id_cases[0]); i++)
        if (queue_id_valid(id_cases[i].id) != id_cases[i].ok)
            fail_msg("queue_id_valid(\"%s\") != %d", id_cases[i].id, id_cases[i].ok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_encode_exact),
        cmocka_unit_test(test_encode_xtext),
        cmocka_unit_test(test_many_rcpts_and_read),
        cmocka_unit_test(test_read_small_files),
        cmocka_unit_test(test_round_trip_dash),
        cmocka_unit_test(test_decode_rejects),
        cmocka_unit_test(test_decode_truncated),
        cmocka_unit_test(test_queue_id_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
