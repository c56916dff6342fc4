/* test_dsn.c - delivery status notifications: MIME structure, per-recipient fields, sanitising
 *
 * Each report is parsed back here (boundary, parts, header blocks).  With
 * TERN_DSN_DUMP=DIR every report is also written to DIR/NAME.eml with the
 * expected shape in DIR/NAME.expect, for tests/e2e/test_dsn_format.py.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "dsn.h"

#define NOW ((time_t)1767225600) /* Thu, 01 Jan 2026 00:00:00 +0000 */
#define MAXPARTS 8
#define ENVELOPE "TERN 1\nid 0123456789AB\ndata\n" /* stands in for the queue file's envelope */

static const char plain_msg[] = "From: a@example.org\nTo: b@example.net\nSubject: hi\n\nbody line 1\n"
                                "body line 2\n";

/* span - a piece of the report */
struct span {
    const char *p;
    size_t n;
};

struct report {
    struct buf out;
    char boundary[128];
    struct span head;               /* the report's own header block */
    struct span part_head[MAXPARTS], part_body[MAXPARTS];
    size_t nparts;
};

/* original_fd - a temporary file holding ENVELOPE then text; *off is where text starts */
static int original_fd(const char *text, size_t len, off_t *off)
{
    char path[] = "/tmp/test_dsn.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    assert_int_equal(write(fd, ENVELOPE, strlen(ENVELOPE)), (ssize_t)strlen(ENVELOPE));
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    *off = (off_t)strlen(ENVELOPE);
    return fd;
}

/* base_msg - a report about queue id 0123456789AB from mx.example.com */
static struct dsn_msg base_msg(void)
{
    struct dsn_msg m = {
        .reporting_mta = "mx.example.com",
        .from = "MAILER-DAEMON@mx.example.com",
        .to = "sender@example.org",
        .qid = "0123456789AB",
        .envid = NULL,
        .arrival = NOW - 3600,
        .now = NOW,
    };
    return m;
}

/* fail_rcpt - a permanently failed recipient */
static struct dsn_rcpt fail_rcpt(const char *addr)
{
    struct dsn_rcpt r = {
        .final_rcpt = addr,
        .action = "failed",
        .status = "5.1.1",
        .remote_mta = "mx.example.net",
        .diag = "550 5.1.1 <user@example.net>: Recipient address rejected",
        .last_attempt = NOW - 60,
    };
    return r;
}

/* dump - write the report and its expected shape when TERN_DSN_DUMP is set */
static void dump(const char *name, const struct buf *out, const struct dsn_msg *m, const struct dsn_rcpt *r,
                 size_t n)
{
    const char *dir = getenv("TERN_DSN_DUMP");
    if (!dir || !*dir)
        return;
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s.eml", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(out->data, 1, out->len, f), out->len);
    fclose(f);
    snprintf(path, sizeof(path), "%s/%s.expect", dir, name);
    f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "nrcpt=%zu\nret_hdrs=%d\nsmtputf8=%d\nenvid=%d\norcpt=", n, m->ret_hdrs, m->smtputf8,
            m->envid != NULL);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s%d", i ? "," : "", r[i].orcpt != NULL);
    fprintf(f, "\n");
    fclose(f);
}

/* line_count - lines of s[0..n) that start with prefix */
static size_t line_count(struct span s, const char *prefix)
{
    size_t c = 0, pl = strlen(prefix);
    for (const char *p = s.p, *end = s.p + s.n; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t ln = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (ln >= pl && memcmp(p, prefix, pl) == 0)
            c++;
        p += ln + 1;
    }
    return c;
}

/* header_lines_ok - every line of a header block is "Name: value" (no injected or broken lines) */
static void header_lines_ok(struct span s)
{
    for (const char *p = s.p, *end = s.p + s.n; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t ln = nl ? (size_t)(nl - p) : (size_t)(end - p);
        size_t name = strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-");
        if (name == 0 || name + 1 >= ln || p[name] != ':' || p[name + 1] != ' ')
            fail_msg("bad header line: %.*s", (int)ln, p);
        if (ln > 998)
            fail_msg("header line of %zu octets", ln);
        p += ln + 1;
    }
}

/* find_line - the first line at or after p equal to s, or NULL */
static const char *find_line(const char *p, const char *end, const char *s)
{
    size_t sl = strlen(s);
    for (; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t ln = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (ln == sl && memcmp(p, s, sl) == 0)
            return p;
        p += ln + 1;
    }
    return NULL;
}

/* split_head - split [p, end) at the first blank line into head and body */
static void split_head(const char *p, const char *end, struct span *head, struct span *body)
{
    const char *blank = p < end && *p == '\n' ? p : memmem(p, (size_t)(end - p), "\n\n", 2);
    assert_non_null(blank);
    head->p = p;
    head->n = (size_t)(blank - p) + (blank == p ? 0 : 1);
    body->p = blank + (blank == p ? 1 : 2);
    body->n = (size_t)(end - body->p);
}

/* parse_report - find the boundary, the parts and their headers */
static void parse_report(struct report *rep)
{
    const char *s = rep->out.data, *end = s + rep->out.len;
    struct span body;
    split_head(s, end, &rep->head, &body);
    header_lines_ok(rep->head);
    const char *b = memmem(rep->head.p, rep->head.n, "boundary=\"", 10);
    assert_non_null(b);
    b += 10;
    const char *q = memchr(b, '"', (size_t)(end - b));
    assert_non_null(q);
    assert_true((size_t)(q - b) > 0 && (size_t)(q - b) <= 70);
    snprintf(rep->boundary, sizeof(rep->boundary), "--%.*s", (int)(q - b), b);
    char close[140];
    snprintf(close, sizeof(close), "%s--", rep->boundary);
    const char *closing = find_line(body.p, end, close);
    assert_non_null(closing);
    assert_true(closing + strlen(close) + 1 == end); /* nothing after the closing delimiter */
    const char *p = find_line(body.p, closing, rep->boundary);
    rep->nparts = 0;
    while (p) {
        assert_true(rep->nparts < MAXPARTS);
        p += strlen(rep->boundary) + 1;
        const char *next = find_line(p, closing, rep->boundary);
        const char *stop = next ? next : closing;
        split_head(p, stop, &rep->part_head[rep->nparts], &rep->part_body[rep->nparts]);
        header_lines_ok(rep->part_head[rep->nparts]);
        rep->nparts++;
        p = next;
    }
}

/* has_line - the span has exactly one line that starts with prefix */
static void has_line(struct span s, const char *prefix, size_t want)
{
    size_t c = line_count(s, prefix);
    if (c != want)
        fail_msg("\"%s\": %zu lines, want %zu", prefix, c, want);
}

/* blocks - split the delivery-status body into its header blocks */
static size_t blocks(struct span body, struct span *blk, size_t max)
{
    size_t n = 0;
    const char *p = body.p, *end = body.p + body.n;
    while (p < end && n < max) {
        const char *blank = memmem(p, (size_t)(end - p), "\n\n", 2);
        const char *stop = blank ? blank + 1 : end;
        blk[n].p = p;
        blk[n].n = (size_t)(stop - p);
        header_lines_ok(blk[n]);
        n++;
        p = blank ? blank + 2 : end;
    }
    return n;
}

/* build - build a report, check the common structure; returns the parsed report */
static void build(const char *name, const struct dsn_msg *m, const struct dsn_rcpt *r, size_t n,
                  const char *orig, size_t origlen, struct report *rep)
{
    off_t off;
    int fd = original_fd(orig, origlen, &off);
    memset(rep, 0, sizeof(*rep));
    assert_int_equal(dsn_build(m, r, n, fd, off, (off_t)origlen, &rep->out), 0);
    close(fd);
    dump(name, &rep->out, m, r, n);
    parse_report(rep);
    assert_int_equal(rep->nparts, 3);
    /* top-level header, each field once */
    static const char *top[] = {"From: Mail Delivery System <", "To: <", "Subject: ", "Date: ", "Message-ID: <",
                                "Auto-Submitted: auto-replied", "MIME-Version: 1.0", "Content-Type: multipart/report;"};
    for (size_t i = 0; i < sizeof(top) / sizeof(top[0]); i++)
        has_line(rep->head, top[i], 1);
    has_line(rep->head, m->smtputf8 ? "Content-Type: multipart/report; report-type=global-delivery-status;"
                                    : "Content-Type: multipart/report; report-type=delivery-status;", 1);
    /* the boundary occurs nowhere in the original */
    assert_null(memmem(orig, origlen, rep->boundary + 2, strlen(rep->boundary + 2)));
    /* no control byte but LF outside the original */
    struct span own = {rep->out.data, (size_t)(rep->part_body[2].p - rep->out.data)};
    for (size_t i = 0; i < own.n; i++)
        if ((unsigned char)own.p[i] < 0x20 && own.p[i] != '\n')
            fail_msg("control byte %#x at %zu", (unsigned char)own.p[i], i);
    /* part types */
    has_line(rep->part_head[0], m->smtputf8 ? "Content-Type: text/plain; charset=utf-8"
                                            : "Content-Type: text/plain; charset=us-ascii", 1);
    has_line(rep->part_head[1], m->smtputf8 ? "Content-Type: message/global-delivery-status"
                                            : "Content-Type: message/delivery-status", 1);
    const char *t3 = m->ret_hdrs ? (m->smtputf8 ? "Content-Type: message/global-headers"
                                                : "Content-Type: text/rfc822-headers")
                                 : (m->smtputf8 ? "Content-Type: message/global" : "Content-Type: message/rfc822");
    has_line(rep->part_head[2], t3, 1);
    /* the delivery-status part: one per-message block, one block per recipient */
    struct span blk[64];
    size_t nb = blocks(rep->part_body[1], blk, 64);
    assert_int_equal(nb, n + 1);
    has_line(blk[0], "Reporting-MTA: dns; mx.example.com", 1);
    has_line(blk[0], "X-Tern-Queue-ID: 0123456789AB", 1);
    has_line(blk[0], "Arrival-Date: ", 1);
    has_line(blk[0], "Original-Envelope-Id: ", m->envid ? 1 : 0);
    for (size_t i = 0; i < n; i++) {
        struct span b = blk[i + 1];
        has_line(b, "Final-Recipient: ", 1);
        has_line(b, "Action: ", 1);
        has_line(b, "Status: ", 1);
        has_line(b, "Original-Recipient: ", r[i].orcpt ? 1 : 0);
        has_line(b, "Remote-MTA: dns; ", r[i].remote_mta ? 1 : 0);
        has_line(b, "Diagnostic-Code: ", r[i].diag ? 1 : 0);
        has_line(b, "Last-Attempt-Date: ", r[i].last_attempt ? 1 : 0);
    }
}

/* contains - the span holds the string */
static int contains(struct span s, const char *str)
{
    return memmem(s.p, s.n, str, strlen(str)) != NULL;
}

static void test_failed_one(void **state)
{
    (void)state;
    struct dsn_msg m = base_msg();
    struct dsn_rcpt r = fail_rcpt("user@example.net");
    struct report rep;
    build("failed_one", &m, &r, 1, plain_msg, strlen(plain_msg), &rep);
    has_line(rep.head, "Subject: Undelivered Mail Returned to Sender", 1);
    has_line(rep.head, "From: Mail Delivery System <MAILER-DAEMON@mx.example.com>", 1);
    has_line(rep.head, "To: <sender@example.org>", 1);
    has_line(rep.head, "Date: Thu, 01 Jan 2026 00:00:00 +0000", 1);
    has_line(rep.head, "Message-ID: <0123456789AB.1767225600@mx.example.com>", 1);
    assert_string_equal(rep.boundary, "--0123456789AB.1767225600/mx.example.com");
    has_line(rep.part_body[0], "This is the mail system at host mx.example.com.", 1);
    has_line(rep.part_body[0], "I'm sorry to have to inform you that your message could not", 1);
    has_line(rep.part_body[0], "<user@example.net>: host mx.example.net said: 550 5.1.1 <user@example.net>: "
                               "Recipient address rejected", 1);
    has_line(rep.part_body[1], "Final-Recipient: rfc822; user@example.net", 1);
    has_line(rep.part_body[1], "Action: failed", 1);
    has_line(rep.part_body[1], "Status: 5.1.1", 1);
    has_line(rep.part_body[1], "Remote-MTA: dns; mx.example.net", 1);
    has_line(rep.part_body[1], "Diagnostic-Code: smtp; 550 5.1.1 <user@example.net>: Recipient address rejected",
             1);
    has_line(rep.part_body[1], "Last-Attempt-Date: Wed, 31 Dec 2025 23:59:00 +0000", 1);
    has_line(rep.part_body[1], "Arrival-Date: Wed, 31 Dec 2025 23:00:00 +0000", 1);
    /* the whole original, as it was */
    assert_true(rep.part_body[2].n >= strlen(plain_msg));
    assert_memory_equal(rep.part_body[2].p, plain_msg, strlen(plain_msg));
    buf_free(&rep.out);
}

static void test_failed_three_orcpt_envid(void **state)
{
    (void)state;
    struct dsn_msg m = base_msg();
    m.envid = "QQ314159";
    struct dsn_rcpt r[3] = {fail_rcpt("a@example.net"), fail_rcpt("b@example.net"), fail_rcpt("c@example.net")};
    r[0].orcpt_type = "rfc822", r[0].orcpt = "alias@example.org";
    r[1].orcpt = "other@example.org"; /* no type: rfc822 */
    r[2].remote_mta = NULL, r[2].diag = NULL, r[2].last_attempt = 0, r[2].status = "5.2.2";
    struct report rep;
    build("failed_three", &m, r, 3, plain_msg, strlen(plain_msg), &rep);
    has_line(rep.part_body[1], "Original-Envelope-Id: QQ314159", 1);
    has_line(rep.part_body[1], "Original-Recipient: rfc822;alias@example.org", 1);
    has_line(rep.part_body[1], "Original-Recipient: rfc822;other@example.org", 1);
    has_line(rep.part_body[1], "Final-Recipient: rfc822; c@example.net", 1);
    has_line(rep.part_body[1], "Status: 5.2.2", 1);
    has_line(rep.part_body[0], "<c@example.net>: failed (status 5.2.2)", 1);
    has_line(rep.part_body[0], "<b@example.net>: host mx.example.net said: ", 1);
    buf_free(&rep.out);
}

static void test_delayed(void **state)
{
    (void)state;
    struct dsn_msg m = base_msg();
    struct dsn_rcpt r = fail_rcpt("slow@example.net");
    r.action = "delayed", r.status = "4.4.1", r.diag = "connect to mx.example.net: Connection timed out";
    r.diag_type = "x-unix";
    struct report rep;
    build("delayed_one", &m, &r, 1, plain_msg, strlen(plain_msg), &rep);
    has_line(rep.head, "Subject: Delayed Mail (still being retried)", 1);
    has_line(rep.part_body[1], "Action: delayed", 1);
    has_line(rep.part_body[1], "Diagnostic-Code: x-unix; connect to mx.example.net: Connection timed out", 1);
    assert_true(contains(rep.part_body[0], "THIS IS A WARNING ONLY"));
    has_line(rep.part_head[2], "Content-Description: Delayed Message", 1);
    buf_free(&rep.out);
}

static void test_delivered_three(void **state)
{
    (void)state;
    struct dsn_msg m = base_msg();
    m.envid = "env-1";
    struct dsn_rcpt r[3];
    const char *who[3] = {"x@example.net", "y@example.net", "z@example.net"};
    for (int i = 0; i < 3; i++) {
        r[i] = fail_rcpt(who[i]);
        r[i].action = i == 2 ? "relayed" : "delivered", r[i].status = "2.0.0";
        r[i].diag = "250 2.0.0 Ok: queued as 12345";
        r[i].orcpt = i == 1 ? "orig-y@example.net" : NULL;
    }
    struct report rep;
    build("delivered_three", &m, r, 3, plain_msg, strlen(plain_msg), &rep);
    has_line(rep.head, "Subject: Successful Mail Delivery Report", 1);
    has_line(rep.part_body[1], "Action: delivered", 2);
    has_line(rep.part_body[1], "Action: relayed", 1);
    has_line(rep.part_body[1], "Status: 2.0.0", 3);
    assert_true(contains(rep.part_body[0], "successfully delivered"));
    buf_free(&rep.out);
}

static void test_mixed_and_bad_values(void **state)
{
    (void)state;
    struct dsn_msg m = base_msg();
    struct dsn_rcpt r[2] = {fail_rcpt("ok@example.net"), fail_rcpt("bad@example.net")};
    r[0].action = "delivered", r[0].status = NULL;
    r[1].action = "exploded", r[1].status = "5.1.1\nX-Evil: 1";
    struct report rep;
    build("mixed", &m, r, 2, plain_msg, strlen(plain_msg), &rep);
    has_line(rep.head, "Subject: Undelivered Mail Returned to Sender", 1);
    has_line(rep.part_body[1], "Status: 2.0.0", 1);
    has_line(rep.part_body[1], "Action: failed", 1);
    has_line(rep.part_body[1], "Status: 5.0.0", 1);
    buf_free(&rep.out);
}

static void test_ret_hdrs(void **state)
{
    (void)state;
    struct dsn_msg m = base_msg();
    m.ret_hdrs = 1;
    struct dsn_rcpt r = fail_rcpt("user@example.net");
    struct report rep;
    build("ret_hdrs", &m, &r, 1, plain_msg, strlen(plain_msg), &rep);
    const char *hdrs = "From: a@example.org\nTo: b@example.net\nSubject: hi\n";
    assert_true(rep.part_body[2].n >= strlen(hdrs));
    assert_memory_equal(rep.part_body[2].p, hdrs, strlen(hdrs));
    assert_false(contains(rep.part_body[2], "body line"));
    has_line(rep.part_head[2], "Content-Description: Undelivered Message Headers", 1);
    buf_free(&rep.out);
    /* a message with no body: everything is header */
    const char *nobody = "Subject: only\nX-A: b";
    build("ret_hdrs_nobody", &m, &r, 1, nobody, strlen(nobody), &rep);
    assert_true(contains(rep.part_body[2], "X-A: b\n"));
    buf_free(&rep.out);
}

static void test_smtputf8(void **state)
{
    (void)state;
    static const char msg[] = "From: J\xc3\xb6rg <j\xc3\xb6rg@example.org>\nSubject: gr\xc3\xbc\xc3\x9f\x65\n\n"
                              "K\xc3\xa4se\n";
    struct dsn_msg m = base_msg();
    m.smtputf8 = 1;
    m.to = "j\xc3\xb6rg@example.org";
    struct dsn_rcpt r = fail_rcpt("m\xc3\xbcller@example.net");
    r.orcpt_type = "utf-8", r.orcpt = "m\xc3\xbcller@example.net";
    struct report rep;
    build("smtputf8_full", &m, &r, 1, msg, sizeof(msg) - 1, &rep);
    has_line(rep.head, "To: <j\xc3\xb6rg@example.org>", 1);
    has_line(rep.head, "Content-Transfer-Encoding: 8bit", 1);
    has_line(rep.part_body[1], "Final-Recipient: utf-8; m\xc3\xbcller@example.net", 1);
    has_line(rep.part_body[1], "Original-Recipient: utf-8;m\xc3\xbcller@example.net", 1);
    buf_free(&rep.out);
    m.ret_hdrs = 1;
    build("smtputf8_hdrs", &m, &r, 1, msg, sizeof(msg) - 1, &rep);
    assert_false(contains(rep.part_body[2], "K\xc3\xa4se"));
    buf_free(&rep.out);
    /* without SMTPUTF8, 8-bit octets in values become '?' */
    m = base_msg();
    r.orcpt_type = "rfc822";
    build("eightbit_no_utf8", &m, &r, 1, plain_msg, strlen(plain_msg), &rep);
    has_line(rep.part_body[1], "Final-Recipient: rfc822; m??ller@example.net", 1);
    has_line(rep.part_head[2], "Content-Transfer-Encoding: 8bit", 0);
    buf_free(&rep.out);
}

static void test_boundary_collision(void **state)
{
    (void)state;
    static const char msg[] = "Subject: trap\n\n--0123456789AB.1767225600/mx.example.com\nfake part\n"
                              "--0123456789AB.1767225600/mx.example.com--\n";
    struct dsn_msg m = base_msg();
    struct dsn_rcpt r = fail_rcpt("user@example.net");
    struct report rep;
    build("boundary_collision", &m, &r, 1, msg, sizeof(msg) - 1, &rep);
    assert_string_not_equal(rep.boundary, "--0123456789AB.1767225600/mx.example.com");
    assert_true(contains(rep.part_body[2], "fake part"));
    buf_free(&rep.out);
    /* the collision only in the body matters not with RET=HDRS; in the header it does */
    static const char msg2[] = "X-B: 0123456789AB.1767225600/mx.example.com\n\nbody\n";
    m.ret_hdrs = 1;
    build("boundary_collision_hdrs", &m, &r, 1, msg2, sizeof(msg2) - 1, &rep);
    assert_string_not_equal(rep.boundary, "--0123456789AB.1767225600/mx.example.com");
    buf_free(&rep.out);
}

static void test_injection(void **state)
{
    (void)state;
    struct dsn_msg m = base_msg();
    m.to = "sender@example.org>\nBcc: <victim@example.com";
    m.envid = "E1\r\nX-Evil-Envid: 1";
    struct dsn_rcpt r = fail_rcpt("user@example.net\nX-Evil-Rcpt: 1");
    r.diag = "550 5.1.1 no\r\nX-Injected: yes\r\n\r\nFrom: evil\x01\x1b[31m\x7f end\r\n";
    r.remote_mta = "mx.example.net\rX-Evil-Mta: 1";
    r.orcpt_type = "rfc822\nX-Evil-Type: 1";
    r.orcpt = "o@example.net\n\nAction: delivered";
    r.diag_type = "smtp\n";
    struct report rep;
    build("injection", &m, &r, 1, plain_msg, strlen(plain_msg), &rep);
    struct span own = {rep.out.data, (size_t)(rep.part_body[2].p - rep.out.data)};
    static const char *evil[] = {"X-Injected", "X-Evil", "From: evil", "Bcc:", "Action: delivered"};
    for (size_t i = 0; i < sizeof(evil) / sizeof(evil[0]); i++)
        has_line(own, evil[i], 0);
    has_line(rep.part_body[1], "Diagnostic-Code: smtp; 550 5.1.1 no  X-Injected: yes    From: evil  [31m  end", 1);
    has_line(rep.part_body[1], "Original-Recipient: rfc822;o@example.net  Action: delivered", 1);
    buf_free(&rep.out);
}

static void test_long_values(void **state)
{
    (void)state;
    char *diag = malloc(5001), *addr = malloc(2001);
    memset(diag, 'd', 5000), diag[5000] = '\0';
    memset(addr, 'a', 2000), addr[2000] = '\0';
    struct dsn_msg m = base_msg();
    m.envid = addr;
    struct dsn_rcpt r = fail_rcpt(addr);
    r.diag = diag;
    r.remote_mta = addr;
    struct report rep;
    /* an original line of 5000 octets is copied as it is */
    struct buf orig = BUF_INIT;
    buf_puts(&orig, "Subject: long\n\n");
    buf_puts(&orig, diag);
    build("long_values", &m, &r, 1, orig.data, orig.len, &rep);
    struct span own = {rep.out.data, (size_t)(rep.part_body[2].p - rep.out.data)};
    for (const char *p = own.p, *end = own.p + own.n; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        assert_true((size_t)(nl - p) <= 998);
        p = nl + 1;
    }
    char want[1000] = "Diagnostic-Code: smtp; ";
    size_t wl = strlen(want);
    memset(want + wl, 'd', 900), want[wl + 900] = '\n', want[wl + 901] = '\0';
    assert_non_null(memmem(own.p, own.n, want, strlen(want)));
    assert_true(contains(rep.part_body[2], diag));
    /* the original did not end in LF: one is added before the delimiter */
    assert_int_equal(rep.part_body[2].p[orig.len], '\n');
    buf_free(&rep.out);
    buf_free(&orig);
    free(diag);
    free(addr);
}

static void test_read_errors(void **state)
{
    (void)state;
    struct dsn_msg m = base_msg();
    struct dsn_rcpt r = fail_rcpt("user@example.net");
    off_t off;
    int fd = original_fd(plain_msg, strlen(plain_msg), &off);
    close(fd);
    struct buf out = BUF_INIT;
    buf_puts(&out, "before");
    assert_int_equal(dsn_build(&m, &r, 1, fd, off, (off_t)strlen(plain_msg), &out), -1);
    assert_string_equal(buf_str(&out), "before");
    m.ret_hdrs = 1;
    assert_int_equal(dsn_build(&m, &r, 1, fd, off, (off_t)strlen(plain_msg), &out), -1);
    assert_string_equal(buf_str(&out), "before");
    /* a file shorter than the claimed length is a read error too */
    fd = original_fd(plain_msg, strlen(plain_msg), &off);
    m.ret_hdrs = 0;
    assert_int_equal(dsn_build(&m, &r, 1, fd, off, (off_t)strlen(plain_msg) + 10, &out), -1);
    assert_int_equal(dsn_build(&m, &r, 1, fd, -1, 10, &out), -1);
    assert_string_equal(buf_str(&out), "before");
    close(fd);
    buf_free(&out);
}

static void test_empty_original(void **state)
{
    (void)state;
    struct dsn_msg m = base_msg();
    struct dsn_rcpt r = fail_rcpt("user@example.net");
    struct report rep;
    build("empty_original", &m, &r, 1, "", 0, &rep);
    buf_free(&rep.out);
}

int main(void)
{
    setenv("TZ", "UTC", 1);
    tzset();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failed_one),        cmocka_unit_test(test_failed_three_orcpt_envid),
        cmocka_unit_test(test_delayed),           cmocka_unit_test(test_delivered_three),
        cmocka_unit_test(test_mixed_and_bad_values), cmocka_unit_test(test_ret_hdrs),
        cmocka_unit_test(test_smtputf8),          cmocka_unit_test(test_boundary_collision),
        cmocka_unit_test(test_injection),         cmocka_unit_test(test_long_values),
        cmocka_unit_test(test_read_errors),       cmocka_unit_test(test_empty_original),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
