/* test_smtp_data.c - DATA/BDAT text reader: end of data, dot-unstuffing, bare CR/LF and
 * NUL policy, line length and size limits, and independence from how the input is
 * split into smtp_data_feed() calls.
 *
 * Every case runs with a NULL writer and with a real queue writer (queue_init(NULL,
 * tmpdir)); the stored text is read back from msg/QID after queue_writer_commit_sync().
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "queue.h"
#include "smtp_data.h"

static char qdir[64];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(qdir, sizeof(qdir), "/tmp/tern-data-XXXXXX");
    if (mkdtemp(qdir) == NULL)
        return -1;
    return queue_init(NULL, qdir);
}

static int group_teardown(void **state)
{
    (void)state;
    queue_shutdown();
    nftw(qdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

/* ---- the harness ------------------------------------------------------------------- */

struct outcome {
    int ended;
    size_t consumed;
    int flags;
    long long size;
    char msgid[256];
    int has_text;
    struct buf text;
};

/* chunkers: how many bytes the next feed() gets */
struct chunker {
    int kind;          /* 0 whole, 1 fixed size, 2 random, 3 one split point */
    size_t n;          /* fixed size / split point */
    unsigned long rng; /* random state */
    size_t fed;
};

static size_t next_chunk(struct chunker *c, size_t remaining)
{
    size_t n = remaining;
    switch (c->kind) {
    case 1:
        n = c->n;
        break;
    case 2: {
        c->rng = c->rng * 6364136223846793005UL + 1442695040888963407UL;
        unsigned long r = c->rng >> 33;
        n = (r & 3) < 2 ? 1 + (r >> 2) % 8 : (r & 3) == 2 ? 1 + (r >> 2) % 64 : 1 + (r >> 2) % 2048;
        break;
    }
    case 3:
        n = c->fed < c->n ? c->n - c->fed : remaining;
        break;
    }
    if (n == 0)
        n = 1;
    if (n > remaining)
        n = remaining;
    c->fed += n;
    return n;
}

static void run(const char *in, size_t len, enum data_mode mode, long long max_line, long long limit,
                int with_writer, struct chunker *ck, struct outcome *o)
{
    struct smtp_data d;
    memset(&d, 0, sizeof(d));
    smtp_data_begin(&d, max_line, limit);
    struct queue_writer *w = NULL;
    char qid[QID_LEN + 1] = "";
    if (with_writer) {
        w = queue_writer_open();
        assert_non_null(w);
        memcpy(qid, queue_writer_id(w), sizeof(qid));
    }
    size_t off = 0;
    int ended = 0;
    /* an empty feed consumes nothing and ends nothing */
    assert_int_equal(smtp_data_feed(&d, in, 0, mode, w, &ended), 0);
    assert_int_equal(ended, 0);
    while (off < len && !ended) {
        size_t n = next_chunk(ck, len - off);
        size_t used = smtp_data_feed(&d, in + off, n, mode, w, &ended);
        assert_true(used <= n);
        if (!ended)
            assert_int_equal(used, n);
        off += used;
    }
    if (mode == DATA_MODE_BDAT)
        smtp_data_flush(&d, w); /* BDAT LAST */
    memset(o, 0, sizeof(*o));
    o->ended = ended;
    o->consumed = off;
    o->flags = d.flags;
    o->size = d.size;
    memcpy(o->msgid, d.message_id, sizeof(o->msgid));
    if (w) {
        assert_int_equal(queue_writer_commit_sync(w), 0);
        char p[256];
        queue_path(qid, p, sizeof(p));
        int fd = open(p, O_RDONLY);
        assert_true(fd >= 0);
        char tmp[8192];
        ssize_t n;
        buf_append(&o->text, "", 0);
        while ((n = read(fd, tmp, sizeof(tmp))) > 0)
            buf_append(&o->text, tmp, (size_t)n);
        close(fd);
        assert_int_equal(queue_remove(qid), 0);
        o->has_text = 1;
    }
    smtp_data_free(&d);
}

static void same(const struct outcome *ref, const struct outcome *o, const char *name, const char *how)
{
    if (o->ended != ref->ended || o->consumed != ref->consumed || o->flags != ref->flags ||
        o->size != ref->size || strcmp(o->msgid, ref->msgid) != 0)
        fail_msg("%s, %s: ended %d/%d consumed %zu/%zu flags %#x/%#x size %lld/%lld msgid \"%s\"/\"%s\"",
                 name, how, o->ended, ref->ended, o->consumed, ref->consumed, (unsigned)o->flags,
                 (unsigned)ref->flags, o->size, ref->size, o->msgid, ref->msgid);
    if (o->has_text && ref->has_text &&
        (o->text.len != ref->text.len || memcmp(o->text.data, ref->text.data, ref->text.len) != 0))
        fail_msg("%s, %s: stored text differs (%zu vs %zu bytes)", name, how, o->text.len, ref->text.len);
}

/* check_splits - the same outcome whatever way the input is cut into feeds */
static void check_splits(const char *in, size_t len, enum data_mode mode, long long max_line,
                         long long limit, const char *name, const struct outcome *ref)
{
    struct outcome o;
    char how[64];
    /* with the queue writer: bytewise, fixed sizes, random */
    static const size_t fixed[] = {1, 2, 3, 5, 999, 1001, 1002};
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        struct chunker ck = {1, fixed[i], 0, 0};
        run(in, len, mode, max_line, limit, 1, &ck, &o);
        snprintf(how, sizeof(how), "chunks of %zu", fixed[i]);
        same(ref, &o, name, how);
        buf_free(&o.text);
    }
    for (unsigned long seed = 1; seed <= 4; seed++) {
        struct chunker ck = {2, 0, seed * 7919, 0};
        run(in, len, mode, max_line, limit, 1, &ck, &o);
        snprintf(how, sizeof(how), "random chunks, seed %lu", seed);
        same(ref, &o, name, how);
        buf_free(&o.text);
    }
    /* NULL writer: whole, and every (or many) two-way split points */
    struct chunker whole = {0, 0, 0, 0};
    run(in, len, mode, max_line, limit, 0, &whole, &o);
    same(ref, &o, name, "whole, NULL writer");
    for (size_t at = 1; at < len; at++) {
        if (len > 1200 && at % 37 != 0) {
            /* long inputs: every 37th point and all points near line ends */
            int near = 0;
            for (size_t k = at >= 3 ? at - 3 : 0; k <= at + 3 && k < len; k++)
                if (in[k] == '\r' || in[k] == '\n' || in[k] == '.' || in[k] == '\0')
                    near = 1;
            if (!near)
                continue;
        }
        struct chunker ck = {3, at, 0, 0};
        run(in, len, mode, max_line, limit, 0, &ck, &o);
        snprintf(how, sizeof(how), "split at %zu, NULL writer", at);
        same(ref, &o, name, how);
    }
}

/* ---- the case table ------------------------------------------------------------------ */

struct dcase {
    const char *name;
    enum data_mode mode;
    const char *pre;
    size_t prelen;
    size_t nfill; /* 'a' octets between pre and post */
    const char *post;
    size_t postlen;
    long long max_line, limit;
    int ended;
    const char *left; /* bytes not consumed (left for the next command) */
    size_t leftlen;
    int flags;
    const char *tpre; /* expected stored text: tpre, tfill 'a's, tpost */
    size_t tprelen;
    size_t tfill;
    const char *tpost;
    size_t tpostlen;
};

#define C(name, mode, pre, nfill, post, maxl, lim, ended, left, flags, tpre, tfill, tpost)     \
    {name,  mode,          pre,  sizeof(pre) - 1,  nfill, post,          sizeof(post) - 1,      \
     maxl,  lim,           ended, left, sizeof(left) - 1, flags, tpre,  sizeof(tpre) - 1, tfill, \
     tpost, sizeof(tpost) - 1}

#define DOT DATA_MODE_DOT
#define BDAT DATA_MODE_BDAT
#define BAD DATA_F_BADEOL
#define LONG DATA_F_LONG
#define BIG DATA_F_TOOBIG

static const struct dcase cases[] = {
    /* end of data and dot-unstuffing */
    C("basic", DOT, "Subject: x\r\n\r\nhello\r\n.\r\n", 0, "", 1000, 0, 1, "", 0,
      "Subject: x\n\nhello\n", 0, ""),
    C("empty message", DOT, ".\r\n", 0, "", 1000, 0, 1, "", 0, "", 0, ""),
    C("empty line then end", DOT, "\r\n.\r\n", 0, "", 1000, 0, 1, "", 0, "\n", 0, ""),
    C("unstuffing", DOT, "..x\r\n...\r\n..\r\n. \r\n.x.\r\nx.\r\n.\r\n", 0, "", 1000, 0, 1, "", 0,
      ".x\n..\n.\n \nx.\nx.\n", 0, ""),
    C("dot line is not the end", DOT, "a\r\n.x\r\n", 0, "", 1000, 0, 0, "", 0, "a\nx\n", 0, ""),
    C("pipelined commands stay", DOT, "a\r\n.\r\nMAIL FROM:<>\r\nRCPT TO:<b@c.example>\r\n", 0, "",
      1000, 0, 1, "MAIL FROM:<>\r\nRCPT TO:<b@c.example>\r\n", 0, "a\n", 0, ""),
    C("second end left", DOT, ".\r\n.\r\n", 0, "", 1000, 0, 1, ".\r\n", 0, "", 0, ""),
    C("end then partial", DOT, "x\r\n.\r\nQU", 0, "", 1000, 0, 1, "QU", 0, "x\n", 0, ""),
    C("no CRLF yet", DOT, "abc", 0, "", 1000, 0, 0, "", 0, "", 0, ""),
    C("dot CR pending", DOT, "a\r\n.\r", 0, "", 1000, 0, 0, "", 0, "a\n", 0, ""),
    C("dot pending", DOT, "a\r\n.", 0, "", 1000, 0, 0, "", 0, "a\n", 0, ""),
    C("headers", DOT, "From: a@b\r\nMessage-ID: <1@x.example>\r\n\r\nMessage-ID: <2@y>\r\n.\r\n", 0,
      "", 1000, 0, 1, "", 0, "From: a@b\nMessage-ID: <1@x.example>\n\nMessage-ID: <2@y>\n", 0, ""),
    /* bad octets: the message is marked and read to its real end */
    C("NUL in text", DOT, "a\0b\r\n.\r\n", 0, "", 1000, 0, 1, "", BAD, "", 0, ""),
    C("bare CR in line", DOT, "ok\r\na\rb\r\n.\r\n", 0, "", 1000, 0, 1, "", BAD, "ok\n", 0, ""),
    C("bare LF line end", DOT, "a\nb\r\n.\r\n", 0, "", 1000, 0, 1, "", BAD, "", 0, ""),
    C("text after bad line not stored", DOT, "ok\r\nbad\nlater\r\n.\r\n", 0, "", 1000, 0, 1, "",
      BAD, "ok\n", 0, ""),
    C("CR CR LF dot CR LF is an end", DOT, "x\r\r\n.\r\nNEXT", 0, "", 1000, 0, 1, "NEXT", BAD, "",
      0, ""),
    C("NUL CR LF dot CR LF is an end", DOT, "x\0\r\n.\r\n", 0, "", 1000, 0, 1, "", BAD, "", 0, ""),
    C("LF CR LF dot CR LF is an end", DOT, "x\n\r\n.\r\n", 0, "", 1000, 0, 1, "", BAD, "", 0, ""),
    C("dot LF dot CRLF", DOT, "x\r\n.\n.\r\nS\r\n", 0, "", 1000, 0, 0, "", BAD, "x\n", 0, ""),
    /* line length (max_line counts the CRLF) */
    C("998 octets", DOT, "", 998, "\r\n.\r\n", 1000, 0, 1, "", 0, "", 998, "\n"),
    C("999 octets", DOT, "", 999, "\r\n.\r\n", 1000, 0, 1, "", LONG, "", 0, ""),
    C("1000 octets", DOT, "", 1000, "\r\n.\r\n", 1000, 0, 1, "", LONG, "", 0, ""),
    C("1001 octets", DOT, "", 1001, "\r\n.\r\n", 1000, 0, 1, "", LONG, "", 0, ""),
    C("5000 octets, end still found", DOT, "x\r\n", 5000, "\r\n.\r\nNEXT\r\n", 1000, 0, 1,
      "NEXT\r\n", LONG, "x\n", 0, ""),
    C("5000 octets, no end", DOT, "", 5000, "\r\nmore\r\n", 1000, 0, 0, "", LONG, "", 0, ""),
    C("long line then fine lines", DOT, "", 1500, "\r\nok\r\n.\r\n", 1000, 0, 1, "", LONG, "", 0, ""),
    C("stuffed 998", DOT, ".", 997, "\r\n.\r\n", 1000, 0, 1, "", 0, "", 997, "\n"),
    C("stuffed 999", DOT, ".", 998, "\r\n.\r\n", 1000, 0, 1, "", LONG, "", 0, ""),
    C("998 after text", DOT, "x\r\n", 998, "\r\ny\r\n.\r\n", 1000, 0, 1, "", 0, "x\n", 998, "\ny\n"),
    C("limit 2000: 1998", DOT, "", 1998, "\r\n.\r\n", 2000, 0, 1, "", 0, "", 1998, "\n"),
    C("limit 2000: 1999", DOT, "", 1999, "\r\n.\r\n", 2000, 0, 1, "", LONG, "", 0, ""),
    /* size limit: octets of the text with CRLF, without the stuffed dots and the end */
    C("size at limit", DOT, "aaaaaaaa\r\naaaaaaaa\r\n.\r\n", 0, "", 1000, 20, 1, "", 0,
      "aaaaaaaa\naaaaaaaa\n", 0, ""),
    C("size over limit", DOT, "aaaaaaaa\r\naaaaaaaa\r\na\r\n.\r\n", 0, "", 1000, 20, 1, "", BIG,
      "aaaaaaaa\naaaaaaaa\n", 0, ""),
    C("size: stuffed dots not counted", DOT, "..aaaaaaa\r\n..aaaaaaa\r\n.\r\n", 0, "", 1000, 20, 1,
      "", 0, ".aaaaaaa\n.aaaaaaa\n", 0, ""),
    C("size: big message, no limit", DOT, "", 998, "\r\n.\r\n", 1000, 0, 1, "", 0, "", 998, "\n"),
    C("size and bad octets", DOT, "aaaaaaaaaa\r\naaaaaaaaaa\r\nb\nc\r\n.\r\n", 0, "", 1000, 20, 1,
      "", BIG | BAD, "aaaaaaaaaa\n", 0, ""),
    C("size limit, then the end is still found", DOT, "", 900, "\r\n.\r\nQUIT\r\n", 1000, 100, 1,
      "QUIT\r\n", BIG, "", 0, ""),
    /* BDAT: no dot handling, no end detection */
    C("bdat raw", BDAT, "a\r\n.\r\n..b\r\n", 0, "", 1000, 0, 0, "", 0, "a\n.\n..b\n", 0, ""),
    C("bdat end sequence is text", BDAT, "\r\n.\r\n", 0, "", 1000, 0, 0, "", 0, "\n.\n", 0, ""),
    C("bdat final line without LF", BDAT, "line1\r\nlast", 0, "", 1000, 0, 0, "", 0,
      "line1\nlast\n", 0, ""),
    C("bdat final CR", BDAT, "line1\r\nlast\r", 0, "", 1000, 0, 0, "", BAD, "line1\n", 0, ""),
    C("bdat bare LF", BDAT, "a\nb\r\n", 0, "", 1000, 0, 0, "", BAD, "", 0, ""),
    C("bdat NUL", BDAT, "ok\r\na\0\r\n", 0, "", 1000, 0, 0, "", BAD, "ok\n", 0, ""),
    C("bdat bare CR", BDAT, "a\rb\r\n", 0, "", 1000, 0, 0, "", BAD, "", 0, ""),
    C("bdat 998", BDAT, "", 998, "\r\n", 1000, 0, 0, "", 0, "", 998, "\n"),
    C("bdat 999", BDAT, "", 999, "\r\n", 1000, 0, 0, "", LONG, "", 0, ""),
    C("bdat 998 final without LF", BDAT, "x\r\n", 998, "", 1000, 0, 0, "", 0, "x\n", 998, "\n"),
    C("bdat 999 final without LF", BDAT, "x\r\n", 999, "", 1000, 0, 0, "", LONG, "x\n", 0, ""),
    C("bdat 3000 final without LF", BDAT, "", 3000, "", 1000, 0, 0, "", LONG, "", 0, ""),
    C("bdat long line then text", BDAT, "", 2500, "\r\nok\r\n", 1000, 0, 0, "", LONG, "", 0, ""),
    C("bdat size", BDAT, "aaaaaaaa\r\naaaaaaaa\r\na", 0, "", 1000, 20, 0, "", BIG,
      "aaaaaaaa\naaaaaaaa\n", 0, ""),
    C("bdat empty", BDAT, "", 0, "", 1000, 0, 0, "", 0, "", 0, ""),
};

static char *make_input(const char *pre, size_t prelen, size_t nfill, const char *post, size_t postlen,
                        size_t *len)
{
    *len = prelen + nfill + postlen;
    char *in = malloc(*len + 1);
    memcpy(in, pre, prelen);
    memset(in + prelen, 'a', nfill);
    memcpy(in + prelen + nfill, post, postlen);
    return in;
}

static void test_cases(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        const struct dcase *c = &cases[k];
        size_t len, tlen;
        char *in = make_input(c->pre, c->prelen, c->nfill, c->post, c->postlen, &len);
        char *want = make_input(c->tpre, c->tprelen, c->tfill, c->tpost, c->tpostlen, &tlen);

        struct outcome ref;
        struct chunker whole = {0, 0, 0, 0};
        run(in, len, c->mode, c->max_line, c->limit, 1, &whole, &ref);
        if (ref.ended != c->ended)
            fail_msg("%s: ended %d, want %d", c->name, ref.ended, c->ended);
        if (ref.consumed != len - c->leftlen)
            fail_msg("%s: consumed %zu of %zu, want %zu", c->name, ref.consumed, len, len - c->leftlen);
        assert_memory_equal(in + ref.consumed, c->left, c->leftlen);
        if (ref.flags != c->flags)
            fail_msg("%s: flags %#x, want %#x", c->name, (unsigned)ref.flags, (unsigned)c->flags);
        if (ref.text.len != tlen || memcmp(ref.text.data, want, tlen) != 0)
            fail_msg("%s: stored \"%.60s\" (%zu bytes), want \"%.60s\" (%zu bytes)", c->name,
                     ref.text.data, ref.text.len, want, tlen);
        check_splits(in, len, c->mode, c->max_line, c->limit, c->name, &ref);
        buf_free(&ref.text);
        free(want);
        free(in);
    }
}

/* ---- smuggling ------------------------------------------------------------------------- */

static const struct {
    const char *seq;
    size_t len;
    const char *text; /* stored before the bad line */
} smuggle[] = {
#define SM(s, t) {s, sizeof(s) - 1, t}
    SM("\n.\n", "Subject: x\n\n"),
    SM("\n.\r\n", "Subject: x\n\n"),
    SM("\r.\r\n", "Subject: x\n\n"),
    SM("\r\n.\n", "Subject: x\n\nbody\n"),
    SM("\r\n.\r\r\n", "Subject: x\n\nbody\n"),
    SM("\r\n.\0\r\n", "Subject: x\n\nbody\n"),
    SM("\r\n\0.\r\n", "Subject: x\n\nbody\n"),
    SM("\r\n.\r\0\n", "Subject: x\n\nbody\n"),
    SM("\r\n.\r\0\r\n", "Subject: x\n\nbody\n"),
    SM("\r\n\r.\r\n", "Subject: x\n\nbody\n"),
    SM("\r\n.\r", "Subject: x\n\nbody\n"),
    SM("\r\n.\n.\r\n", "Subject: x\n\nbody\n"),
    SM("\n\n.\n\n", "Subject: x\n\n"),
    SM("\r\r.\r\r", "Subject: x\n\n"),
    SM("\0\r\n.\0", "Subject: x\n\n"),
#undef SM
};

static const char smuggled[] = "MAIL FROM:<evil@example.com>\r\nRCPT TO:<victim@example.com>\r\n"
                               "DATA\r\nSubject: forged\r\n\r\nevil\r\n";

static void test_smuggling(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof(smuggle) / sizeof(smuggle[0]); k++) {
        for (int real_end = 0; real_end <= 1; real_end++) {
            struct buf in = BUF_INIT;
            buf_puts(&in, "Subject: x\r\n\r\nbody");
            buf_append(&in, smuggle[k].seq, smuggle[k].len);
            buf_puts(&in, smuggled);
            if (real_end)
                buf_puts(&in, ".\r\nQUIT\r\n");
            else /* the test data itself must hold no real end */
                assert_null(memmem(in.data, in.len, "\r\n.\r\n", 5));

            char name[64];
            snprintf(name, sizeof(name), "smuggling variant %zu%s", k, real_end ? " + real end" : "");
            struct outcome ref;
            struct chunker whole = {0, 0, 0, 0};
            run(in.data, in.len, DATA_MODE_DOT, 1000, 0, 1, &whole, &ref);
            if (ref.ended != real_end)
                fail_msg("%s: ended %d", name, ref.ended);
            if (!(ref.flags & DATA_F_BADEOL))
                fail_msg("%s: DATA_F_BADEOL not set (flags %#x)", name, (unsigned)ref.flags);
            assert_int_equal(ref.flags, DATA_F_BADEOL);
            assert_int_equal(ref.consumed, in.len - (real_end ? 6 : 0));
            assert_string_equal(ref.text.data, smuggle[k].text);
            check_splits(in.data, in.len, DATA_MODE_DOT, 1000, 0, name, &ref);
            buf_free(&ref.text);
            buf_free(&in);
        }
    }
}

/* the same sequences in BDAT chunks mark the message bad too */
static void test_smuggling_bdat(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof(smuggle) / sizeof(smuggle[0]); k++) {
        struct buf in = BUF_INIT;
        buf_puts(&in, "Subject: x\r\n\r\nbody");
        buf_append(&in, smuggle[k].seq, smuggle[k].len);
        buf_puts(&in, smuggled);
        struct outcome ref;
        struct chunker whole = {0, 0, 0, 0};
        run(in.data, in.len, DATA_MODE_BDAT, 1000, 0, 1, &whole, &ref);
        assert_int_equal(ref.ended, 0);
        assert_int_equal(ref.consumed, in.len);
        assert_int_equal(ref.flags, DATA_F_BADEOL);
        buf_free(&ref.text);
        buf_free(&in);
    }
}

/* ---- state handling ------------------------------------------------------------------- */

/* a BDAT line continues across chunks; only flush ends the final one */
static void test_bdat_flush(void **state)
{
    (void)state;
    struct smtp_data d;
    memset(&d, 0, sizeof(d));
    smtp_data_begin(&d, 1000, 0);
    struct queue_writer *w = queue_writer_open();
    assert_non_null(w);
    char qid[QID_LEN + 1];
    memcpy(qid, queue_writer_id(w), sizeof(qid));
    int ended = 0;
    assert_int_equal(smtp_data_feed(&d, "one\r\ntw", 7, DATA_MODE_BDAT, w, &ended), 7);
    assert_int_equal(queue_writer_size(w), 4); /* "one\n": the partial line waits */
    assert_int_equal(smtp_data_feed(&d, "o\r", 2, DATA_MODE_BDAT, w, &ended), 2);
    assert_int_equal(queue_writer_size(w), 4);
    assert_int_equal(smtp_data_feed(&d, "\nthr", 4, DATA_MODE_BDAT, w, &ended), 4);
    assert_int_equal(queue_writer_size(w), 8);
    smtp_data_flush(&d, w);
    assert_int_equal(queue_writer_size(w), 12);
    smtp_data_flush(&d, w); /* nothing left: no effect */
    assert_int_equal(queue_writer_size(w), 12);
    assert_int_equal(d.flags, 0);
    assert_int_equal(ended, 0);
    assert_int_equal(queue_writer_commit_sync(w), 0);
    char p[256];
    queue_path(qid, p, sizeof(p));
    int fd = open(p, O_RDONLY);
    char got[64];
    ssize_t n = read(fd, got, sizeof(got));
    close(fd);
    assert_int_equal(n, 12);
    assert_memory_equal(got, "one\ntwo\nthr\n", 12);
    queue_remove(qid);
    smtp_data_free(&d);
}

/* begin() resets everything and grows the line buffer when max_line grows */
static void test_begin_reuse(void **state)
{
    (void)state;
    struct smtp_data d;
    memset(&d, 0, sizeof(d));
    int ended = 0;
    char line[3000];
    memset(line, 'a', sizeof(line));

    smtp_data_begin(&d, 1000, 10);
    /* leave a partial long line and flags behind */
    static const char first[] = "x\nyyyyyyyyyyyyyyyyyyyyyy\r\n";
    assert_int_equal(smtp_data_feed(&d, first, sizeof(first) - 1, DATA_MODE_DOT, NULL, &ended),
                     sizeof(first) - 1);
    assert_int_equal(smtp_data_feed(&d, line, 1500, DATA_MODE_DOT, NULL, &ended), 1500);
    assert_true(d.flags & DATA_F_BADEOL);
    assert_true(d.flags & DATA_F_TOOBIG);

    static const long long maxes[] = {2000, 1000, 2998, 1000};
    for (size_t i = 0; i < sizeof(maxes) / sizeof(maxes[0]); i++) {
        smtp_data_begin(&d, maxes[i], 0);
        assert_int_equal(d.flags, 0);
        assert_int_equal(d.size, 0);
        assert_int_equal(d.len, 0);
        assert_int_equal(d.message_id[0], '\0');
        /* a line of max_line octets minus CRLF, split so it is carried (ASan checks the buffer) */
        size_t n = (size_t)maxes[i] - 2;
        ended = 0;
        assert_int_equal(smtp_data_feed(&d, line, 10, DATA_MODE_DOT, NULL, &ended), 10);
        assert_int_equal(smtp_data_feed(&d, line + 10, n - 10, DATA_MODE_DOT, NULL, &ended), n - 10);
        assert_int_equal(smtp_data_feed(&d, "\r\n.\r\n", 5, DATA_MODE_DOT, NULL, &ended), 5);
        assert_int_equal(ended, 1);
        if (d.flags != 0)
            fail_msg("max_line %lld: flags %#x", maxes[i], (unsigned)d.flags);
        /* and one octet more is too long */
        smtp_data_begin(&d, maxes[i], 0);
        ended = 0;
        assert_int_equal(smtp_data_feed(&d, line, 5, DATA_MODE_DOT, NULL, &ended), 5);
        assert_int_equal(smtp_data_feed(&d, line + 5, n - 4, DATA_MODE_DOT, NULL, &ended), n - 4);
        assert_int_equal(smtp_data_feed(&d, "\r\n.\r\n", 5, DATA_MODE_DOT, NULL, &ended), 5);
        assert_int_equal(ended, 1);
        assert_int_equal(d.flags, DATA_F_LONG);
    }
    /* end() forgets the message */
    smtp_data_end(&d);
    assert_int_equal(d.flags, 0);
    assert_int_equal(d.size, 0);
    assert_int_equal(d.len, 0);
    smtp_data_free(&d);
    assert_null(d.line);
    smtp_data_free(&d); /* twice is harmless */
}

/* a new DATA right after the end: nothing of the old message leaks into it */
static void test_back_to_back(void **state)
{
    (void)state;
    static const char in[] = "first\r\n.\r\n.\r\n";
    struct smtp_data d;
    memset(&d, 0, sizeof(d));
    smtp_data_begin(&d, 1000, 0);
    int ended = 0;
    size_t used = smtp_data_feed(&d, in, sizeof(in) - 1, DATA_MODE_DOT, NULL, &ended);
    assert_int_equal(ended, 1);
    assert_int_equal(used, 10);
    smtp_data_end(&d);
    smtp_data_begin(&d, 1000, 0);
    ended = 0;
    assert_int_equal(smtp_data_feed(&d, in + used, sizeof(in) - 1 - used, DATA_MODE_DOT, NULL, &ended), 3);
    assert_int_equal(ended, 1);
    assert_int_equal(d.size, 0);
    assert_int_equal(d.flags, 0);
    smtp_data_free(&d);
}

static void test_message_id(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        const char *want;
    } ids[] = {
        {"Message-ID: <a@b.example>\r\n\r\n.\r\n", "<a@b.example>"},
        {"message-id:\t <x@y>\r\n\r\n.\r\n", "<x@y>"},
        {"Message-ID: <1@x>\r\nMessage-ID: <2@x>\r\n\r\n.\r\n", "<1@x>"},
        {"Subject: a\r\n\r\nMessage-ID: <body@x>\r\n.\r\n", ""},
        {"Message-ID: <\x1b[2J@x>\r\n\r\n.\r\n", "<?[2J@x>"},
        {"Message-ID: <\xc3\xa9@x>\r\n\r\n.\r\n", "<??@x>"},
        {"Message-ID:\r\n\r\n.\r\n", ""},
    };
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        struct smtp_data d;
        memset(&d, 0, sizeof(d));
        smtp_data_begin(&d, 1000, 0);
        int ended = 0;
        size_t n = strlen(ids[i].in);
        assert_int_equal(smtp_data_feed(&d, ids[i].in, n, DATA_MODE_DOT, NULL, &ended), n);
        assert_int_equal(ended, 1);
        assert_string_equal(d.message_id, ids[i].want);
        smtp_data_free(&d);
    }
    /* a very long Message-ID is cut, not overrun */
    struct buf in = BUF_INIT;
    buf_puts(&in, "Message-ID: <");
    for (int i = 0; i < 600; i++)
        buf_putc(&in, 'm');
    buf_puts(&in, ">\r\n\r\n.\r\n");
    struct smtp_data d;
    memset(&d, 0, sizeof(d));
    smtp_data_begin(&d, 1000, 0);
    int ended = 0;
    smtp_data_feed(&d, in.data, in.len, DATA_MODE_DOT, NULL, &ended);
    assert_int_equal(ended, 1);
    assert_int_equal(strlen(d.message_id), sizeof(d.message_id) - 1);
    smtp_data_free(&d);
    buf_free(&in);
}

/* ---- over-long lines that are also bad ---------------------------------------------------- */

static const struct {
    const char *name;
    const char *pre;
    size_t prelen;
    size_t nfill;
    const char *post;
    size_t postlen;
} long_bad[] = {
#define LB(name, pre, n, post) {name, pre, sizeof(pre) - 1, n, post, sizeof(post) - 1}
    LB("long line ending in bare LF", "x\r\n", 5000, "\n.\r\nMAIL FROM:<e@x.example>\r\n"),
    LB("long line with a NUL", "\0", 5000, "\r\nok\r\n"),
    LB("long line with a bare CR", "b\rc", 5000, "\r\nok\r\n"),
    LB("1001 octets and bare LF", "", 1001, "\nok\r\n"),
#undef LB
};

static void test_long_bad_lines(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof(long_bad) / sizeof(long_bad[0]); k++) {
        size_t len;
        char *in = make_input(long_bad[k].pre, long_bad[k].prelen, long_bad[k].nfill,
                              long_bad[k].post, long_bad[k].postlen, &len);
        struct outcome ref;
        struct chunker whole = {0, 0, 0, 0};
        run(in, len, DATA_MODE_DOT, 1000, 0, 1, &whole, &ref);
        /* too long, not ended, all consumed, and the bare CR/LF/NUL is still seen */
        assert_true(ref.flags & DATA_F_LONG);
        assert_int_equal(ref.ended, 0);
        assert_int_equal(ref.consumed, len);
        check_splits(in, len, DATA_MODE_DOT, 1000, 0, long_bad[k].name, &ref);
        if (!(ref.flags & DATA_F_BADEOL))
            print_message("%s: DATA_F_BADEOL not set (flags %#x)\n", long_bad[k].name,
                          (unsigned)ref.flags);
        assert_true(ref.flags & DATA_F_BADEOL);
        buf_free(&ref.text);
        free(in);
    }
}

/* an over-long line still counts toward message_size_limit */
static void test_long_line_over_size_limit(void **state)
{
    (void)state;
    size_t len;
    char *in = make_input("", 0, 5000, "\r\n.\r\n", 5, &len);
    struct outcome ref;
    struct chunker whole = {0, 0, 0, 0};
    run(in, len, DATA_MODE_DOT, 1000, 1000, 1, &whole, &ref);
    assert_int_equal(ref.ended, 1);
    assert_int_equal(ref.consumed, len);
    assert_true(ref.flags & DATA_F_LONG);
    assert_true(ref.flags & DATA_F_TOOBIG);
    check_splits(in, len, DATA_MODE_DOT, 1000, 1000, "long line over size limit", &ref);
    buf_free(&ref.text);
    free(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases),
        cmocka_unit_test(test_smuggling),
        cmocka_unit_test(test_smuggling_bdat),
        cmocka_unit_test(test_bdat_flush),
        cmocka_unit_test(test_begin_reuse),
        cmocka_unit_test(test_back_to_back),
        cmocka_unit_test(test_message_id),
        cmocka_unit_test(test_long_bad_lines),
        cmocka_unit_test(test_long_line_over_size_limit),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
