/* dsn.c - delivery status notifications (RFC 3464 / RFC 6522 multipart/report, RFC 6533)
 *
 * Every value that came from a client or a peer (addresses, ORCPT, ENVID,
 * diagnostic text, remote MTA name) goes through clean(): control bytes
 * become spaces, invalid or (without SMTPUTF8) 8-bit bytes become '?', and
 * the value is capped, so no field can span or inject lines.  The original
 * message is read with pread() in chunks and copied as it is.
 */
#include "dsn.h"
#include "buf.h"
#include "xmalloc.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#define DSN_VALUE_MAX 900       /* octets of any one sanitised value */
#define DSN_LINE_MAX 998        /* octets of a line we write ourselves */
#define DSN_CHUNK 65536         /* pread() size */
#define DSN_BOUNDARY_MAX 70     /* RFC 2046 */

enum dsn_kind { KIND_DELIVERED, KIND_DELAYED, KIND_FAILED };

/* utf8_seq - length of a well-formed UTF-8 sequence at p[0..n), 0 if invalid */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    size_t k;
    unsigned min;
    unsigned v;
    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        k = 2, min = 0x80, v = p[0] & 0x1fu;
    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        k = 3, min = 0x800, v = p[0] & 0x0fu;
    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        k = 4, min = 0x10000, v = p[0] & 0x07u;
    } else {
        return 0;
    }
    if (k > n)
        return 0;
    for (size_t i = 1; i < k; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        v = (v << 6) | (p[i] & 0x3fu);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    return k;
}

/* clean - copy src into dst (size cap + 1) as one safe line: controls become
 * spaces, bad or unwanted 8-bit bytes '?', no sequence cut, trailing blanks
 * trimmed.  Returns the length. */
static size_t clean(char *dst, size_t cap, const char *src, int utf8)
{
    const unsigned char *s = (const unsigned char *)(src ? src : "");
    size_t n = strlen((const char *)s), i = 0, o = 0;
    while (i < n && o < cap) {
        size_t k = s[i] >= 0x80 && utf8 ? utf8_seq(s + i, n - i) : 0;
        if (k > 0) {
            if (o + k > cap)
                break;
            memcpy(dst + o, s + i, k);
            o += k, i += k;
            continue;
        }
        unsigned char c = s[i++];
        dst[o++] = (char)(c < 0x20 || c == 0x7f ? ' ' : c >= 0x80 ? '?' : c);
    }
    while (o > 0 && dst[o - 1] == ' ')
        o--;
    dst[o] = '\0';
    return o;
}

/* token - copy src into dst (size dstsz) if it is a clean [A-Za-z0-9._-] word that fits, else dflt */
static void token(char *dst, size_t dstsz, const char *src, const char *dflt)
{
    const char *s = src ? src : "";
    size_t n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-");
    if (n == 0 || s[n] != '\0' || n >= dstsz)
        s = dflt;
    snprintf(dst, dstsz, "%s", s);
}

/* put_field - append "name: value\n" with value sanitised */
static void put_field(struct buf *out, const char *name, const char *prefix, const char *value, int utf8)
{
    char v[DSN_VALUE_MAX + 1];
    clean(v, DSN_VALUE_MAX, value, utf8);
    buf_printf(out, "%s: %s%s\n", name, prefix, v);
}

/* put_date - append an RFC 5322 date-time for t in local time */
static void put_date(struct buf *out, const char *name, time_t t)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    if (!localtime_r(&t, &tm)) {
        t = 0;
        gmtime_r(&t, &tm);
    }
    long off = tm.tm_gmtoff / 60;
    char sign = off < 0 ? '-' : '+';
    if (off < 0)
        off = -off;
    buf_printf(out, "%s: %s, %02d %s %04d %02d:%02d:%02d %c%02ld%02ld\n", name, days[tm.tm_wday % 7],
               tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec,
               sign, off / 60, off % 60);
}

/* rcpt_kind - what a recipient's action says happened */
static enum dsn_kind rcpt_kind(const struct dsn_rcpt *r)
{
    if (!r->action || strcmp(r->action, "failed") == 0)
        return KIND_FAILED;
    if (strcmp(r->action, "delayed") == 0)
        return KIND_DELAYED;
    if (strcmp(r->action, "delivered") == 0 || strcmp(r->action, "relayed") == 0 ||
        strcmp(r->action, "expanded") == 0)
        return KIND_DELIVERED;
    return KIND_FAILED;
}

/* report_kind - the worst outcome among the recipients (it names the report) */
static enum dsn_kind report_kind(const struct dsn_rcpt *r, size_t n)
{
    enum dsn_kind k = KIND_DELIVERED;
    for (size_t i = 0; i < n; i++)
        if (rcpt_kind(&r[i]) > k)
            k = rcpt_kind(&r[i]);
    return k;
}

/* action_of - the Action value: one of RFC 3464's, "failed" for anything else */
static const char *action_of(const struct dsn_rcpt *r)
{
    static const char *ok[] = {"failed", "delayed", "delivered", "relayed", "expanded"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        if (r->action && strcmp(r->action, ok[i]) == 0)
            return ok[i];
    return "failed";
}

/* status_ok - s is "C.N.N" with C in 2,4,5 and 1-3 digit parts */
static int status_ok(const char *s)
{
    if (!s || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
        return 0;
    s += 2;
    for (int part = 0; part < 2; part++) {
        size_t d = strspn(s, "0123456789");
        if (d < 1 || d > 3)
            return 0;
        s += d;
        if (part == 0 && *s++ != '.')
            return 0;
    }
    return *s == '\0';
}

/* status_of - the Status value, a generic one matching the action when missing or malformed */
static const char *status_of(const struct dsn_rcpt *r)
{
    if (status_ok(r->status))
        return r->status;
    switch (rcpt_kind(r)) {
    case KIND_DELIVERED: return "2.0.0";
    case KIND_DELAYED: return "4.0.0";
    default: return "5.0.0";
    }
}

/* has_8bit - s has a byte >= 0x80 */
static int has_8bit(const char *s)
{
    for (; s && *s; s++)
        if ((unsigned char)*s >= 0x80)
            return 1;
    return 0;
}

/* read_full - pread exactly n octets at off; -1 on error or early end of file */
static int read_full(int fd, char *p, size_t n, off_t off)
{
    while (n > 0) {
        ssize_t r = pread(fd, p, n, off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r, n -= (size_t)r, off += r;
    }
    return 0;
}

/* header_len - octets of the original's header block (through the last header's LF,
 * not the blank line; all of it if there is no blank line); -1 on a read error */
static off_t header_len(int fd, off_t off, off_t len, char *chunk)
{
    char prev = '\n';
    for (off_t pos = 0; pos < len;) {
        size_t n = len - pos < DSN_CHUNK ? (size_t)(len - pos) : DSN_CHUNK;
        if (read_full(fd, chunk, n, off + pos) < 0)
            return -1;
        for (size_t i = 0; i < n; i++) {
            if (chunk[i] == '\n' && prev == '\n')
                return pos + (off_t)i;
            prev = chunk[i];
        }
        pos += (off_t)n;
    }
    return len;
}

/* scan - does needle occur in the original [off, off + len)?  Also notes 8-bit octets.
 * 1 found, 0 not, -1 read error */
static int scan(int fd, off_t off, off_t len, const char *needle, char *chunk, int *eight)
{
    size_t nl = strlen(needle), keep = 0;
    int found = 0;
    for (off_t pos = 0; pos < len;) {
        size_t room = DSN_CHUNK - keep;
        size_t n = len - pos < (off_t)room ? (size_t)(len - pos) : room;
        if (read_full(fd, chunk + keep, n, off + pos) < 0)
            return -1;
        for (size_t i = keep; i < keep + n && !*eight; i++)
            if ((unsigned char)chunk[i] >= 0x80)
                *eight = 1;
        size_t have = keep + n;
        if (!found && memmem(chunk, have, needle, nl))
            found = 1;
        keep = have < nl - 1 ? have : nl - 1;
        memmove(chunk, chunk + have - keep, keep);
        pos += (off_t)n;
    }
    return found;
}

/* pick_boundary - a boundary that does not occur in the included original:
 * "QID.NOW/host", else that plus a random suffix.  0, or -1 on a read error */
static int pick_boundary(const struct dsn_msg *m, int fd, off_t off, off_t len, char *chunk, char *b,
                         int *eight)
{
    char qid[32], host[256];
    token(qid, sizeof(qid), m->qid, "NOQUEUE");
    token(host, sizeof(host), m->reporting_mta, "localhost");
    int pre = snprintf(b, DSN_BOUNDARY_MAX + 1, "%s.%lld/", qid, (long long)m->now);
    int room = DSN_BOUNDARY_MAX - 17 - pre; /* leave room for "=" and 16 hex digits */
    snprintf(b + pre, DSN_BOUNDARY_MAX + 1 - (size_t)pre, "%.*s", room, host);
    size_t base = strlen(b);
    for (unsigned attempt = 0; attempt < 16; attempt++) {
        if (attempt > 0) {
            unsigned long long rnd = 0;
            if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != (ssize_t)sizeof(rnd))
                rnd = (unsigned long long)getpid() * 0x9e3779b97f4a7c15ull ^ (unsigned long long)attempt
                      ^ (unsigned long long)(uintptr_t)&rnd;
            snprintf(b + base, DSN_BOUNDARY_MAX + 1 - base, "=%016llx", rnd);
        }
        int r = scan(fd, off, len, b, chunk, eight);
        if (r <= 0)
            return r;
    }
    return -1;
}

/* put_header - the report's own message header */
static void put_header(const struct dsn_msg *m, enum dsn_kind kind, const char *boundary, int eight,
                       struct buf *out)
{
    static const char *subject[] = {"Successful Mail Delivery Report", "Delayed Mail (still being retried)",
                                    "Undelivered Mail Returned to Sender"};
    char host[256], from[DSN_VALUE_MAX + 1], qid[32];
    token(host, sizeof(host), m->reporting_mta, "localhost");
    token(qid, sizeof(qid), m->qid, "NOQUEUE");
    if (m->from && *m->from)
        clean(from, DSN_VALUE_MAX, m->from, m->smtputf8);
    else
        snprintf(from, sizeof(from), "MAILER-DAEMON@%s", host);
    buf_printf(out, "From: Mail Delivery System <%s>\n", from);
    char to[DSN_VALUE_MAX + 1];
    clean(to, DSN_VALUE_MAX, m->to, m->smtputf8);
    buf_printf(out, "To: <%s>\n", to);
    buf_printf(out, "Subject: %s\n", subject[kind]);
    put_date(out, "Date", m->now);
    buf_printf(out, "Message-ID: <%s.%lld@%s>\n", qid, (long long)m->now, host);
    buf_puts(out, "Auto-Submitted: auto-replied\nMIME-Version: 1.0\n");
    buf_printf(out, "Content-Type: multipart/report; report-type=%sdelivery-status; boundary=\"%s\"\n",
               m->smtputf8 ? "global-" : "", boundary);
    if (eight || m->smtputf8)
        buf_puts(out, "Content-Transfer-Encoding: 8bit\n");
    buf_puts(out, "\nThis is a MIME-encapsulated message.\n\n");
}

/* put_capped_line - append "<addr>: text\n" cut to DSN_LINE_MAX octets (never inside a UTF-8 sequence) */
static void put_capped_line(struct buf *out, const char *addr, const char *text)
{
    size_t start = out->len;
    buf_printf(out, "<%s>: %s", addr, text);
    if (out->len - start > DSN_LINE_MAX) {
        size_t cut = start + DSN_LINE_MAX;
        while (cut > start && ((unsigned char)out->data[cut] & 0xc0) == 0x80)
            cut--;
        out->len = cut;
        out->data[cut] = '\0';
    }
    buf_putc(out, '\n');
}

/* put_intro - the opening paragraph of the human-readable part */
static void put_intro(enum dsn_kind kind, const char *host, struct buf *out)
{
    if (kind == KIND_DELAYED)
        buf_puts(out, "####################################################################\n"
                      "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\n"
                      "####################################################################\n\n");
    buf_printf(out, "This is the mail system at host %s.\n\n", host);
    if (kind == KIND_FAILED)
        buf_puts(out, "I'm sorry to have to inform you that your message could not\n"
                      "be delivered to one or more recipients. It's attached below.\n\n"
                      "For further assistance, please send mail to postmaster.\n\n"
                      "If you do so, please include this problem report. You can\n"
                      "delete your own text from the attached returned message.\n\n");
    else if (kind == KIND_DELAYED)
        buf_puts(out, "Your message could not be delivered yet to one or more\n"
                      "recipients. The mail system will keep trying to deliver it;\n"
                      "you will be notified if delivery finally fails.\n\n");
    else
        buf_puts(out, "Your message was successfully delivered to the destination(s)\n"
                      "listed below. If the message was delivered to mailbox you will\n"
                      "receive no further notifications. Otherwise you may still receive\n"
                      "notifications of mail delivery errors from other systems.\n\n");
    buf_puts(out, "                   The mail system\n\n");
}

/* put_text_part - part 1: the explanation and one line per recipient */
static void put_text_part(const struct dsn_msg *m, const struct dsn_rcpt *r, size_t n, enum dsn_kind kind,
                          const char *boundary, struct buf *out)
{
    char host[256];
    token(host, sizeof(host), m->reporting_mta, "localhost");
    buf_printf(out, "--%s\nContent-Description: Notification\nContent-Type: text/plain; charset=%s\n",
               boundary, m->smtputf8 ? "utf-8" : "us-ascii");
    if (m->smtputf8)
        buf_puts(out, "Content-Transfer-Encoding: 8bit\n");
    buf_putc(out, '\n');
    put_intro(kind, host, out);
    for (size_t i = 0; i < n; i++) {
        char addr[DSN_VALUE_MAX + 1], diag[DSN_VALUE_MAX + 1], mta[DSN_VALUE_MAX + 1];
        char text[2 * DSN_VALUE_MAX + 64];
        clean(addr, 256, r[i].final_rcpt, m->smtputf8);
        clean(diag, DSN_VALUE_MAX, r[i].diag, m->smtputf8);
        clean(mta, 255, r[i].remote_mta, m->smtputf8);
        if (*diag && *mta)
            snprintf(text, sizeof(text), "host %s said: %s", mta, diag);
        else if (*diag)
            snprintf(text, sizeof(text), "%s", diag);
        else
            snprintf(text, sizeof(text), "%s (status %s)", action_of(&r[i]), status_of(&r[i]));
        put_capped_line(out, addr, text);
    }
    buf_putc(out, '\n');
}

/* put_rcpt_block - the per-recipient fields of the delivery-status part */
static void put_rcpt_block(const struct dsn_msg *m, const struct dsn_rcpt *r, struct buf *out)
{
    char type[32];
    int u = m->smtputf8;
    if (r->orcpt) {
        token(type, sizeof(type), r->orcpt_type, "rfc822");
        char pre[40];
        snprintf(pre, sizeof(pre), "%s;", type);
        put_field(out, "Original-Recipient", pre, r->orcpt, u);
    }
    put_field(out, "Final-Recipient", u && has_8bit(r->final_rcpt) ? "utf-8; " : "rfc822; ", r->final_rcpt, u);
    buf_printf(out, "Action: %s\nStatus: %s\n", action_of(r), status_of(r));
    if (r->remote_mta)
        put_field(out, "Remote-MTA", "dns; ", r->remote_mta, u);
    if (r->diag) {
        token(type, sizeof(type), r->diag_type, "smtp");
        char pre[40];
        snprintf(pre, sizeof(pre), "%s; ", type);
        put_field(out, "Diagnostic-Code", pre, r->diag, u);
    }
    if (r->last_attempt)
        put_date(out, "Last-Attempt-Date", r->last_attempt);
}

/* put_status_part - part 2: message/delivery-status (or its global form) */
static void put_status_part(const struct dsn_msg *m, const struct dsn_rcpt *r, size_t n,
                            const char *boundary, struct buf *out)
{
    char host[256], qid[32];
    token(host, sizeof(host), m->reporting_mta, "localhost");
    token(qid, sizeof(qid), m->qid, "NOQUEUE");
    buf_printf(out, "--%s\nContent-Description: Delivery report\nContent-Type: message/%sdelivery-status\n",
               boundary, m->smtputf8 ? "global-" : "");
    if (m->smtputf8)
        buf_puts(out, "Content-Transfer-Encoding: 8bit\n");
    buf_printf(out, "\nReporting-MTA: dns; %s\nX-Tern-Queue-ID: %s\n", host, qid);
    if (m->envid)
        put_field(out, "Original-Envelope-Id", "", m->envid, m->smtputf8);
    put_date(out, "Arrival-Date", m->arrival);
    for (size_t i = 0; i < n; i++) {
        buf_putc(out, '\n');
        put_rcpt_block(m, &r[i], out);
    }
    buf_putc(out, '\n');
}

/* copy_original - append the original's [off, off + len) to out; -1 on a read error */
static int copy_original(int fd, off_t off, off_t len, struct buf *out)
{
    for (off_t pos = 0; pos < len;) {
        size_t n = len - pos < DSN_CHUNK ? (size_t)(len - pos) : DSN_CHUNK;
        buf_reserve(out, n);
        if (read_full(fd, out->data + out->len, n, off + pos) < 0)
            return -1;
        out->len += n;
        out->data[out->len] = '\0';
        pos += (off_t)n;
    }
    if (out->len > 0 && out->data[out->len - 1] != '\n')
        buf_putc(out, '\n');
    return 0;
}

/* put_original_part - part 3: the original message or its header block */
static int put_original_part(const struct dsn_msg *m, enum dsn_kind kind, const char *boundary, int eight,
                             int fd, off_t off, off_t len, struct buf *out)
{
    static const char *what[] = {"Delivered Message", "Delayed Message", "Undelivered Message"};
    const char *type = m->ret_hdrs ? (m->smtputf8 ? "message/global-headers" : "text/rfc822-headers")
                                   : (m->smtputf8 ? "message/global" : "message/rfc822");
    buf_printf(out, "--%s\nContent-Description: %s%s\nContent-Type: %s\n", boundary, what[kind],
               m->ret_hdrs ? " Headers" : "", type);
    if (eight || m->smtputf8)
        buf_puts(out, "Content-Transfer-Encoding: 8bit\n");
    buf_putc(out, '\n');
    if (copy_original(fd, off, len, out) < 0)
        return -1;
    buf_printf(out, "\n--%s--\n", boundary);
    return 0;
}

/* dsn_build - append a complete report message to out (see dsn.h); out is unchanged on error */
int dsn_build(const struct dsn_msg *m, const struct dsn_rcpt *r, size_t n, int fd, off_t off, off_t len,
              struct buf *out)
{
    char boundary[DSN_BOUNDARY_MAX + 1];
    int eight = 0;
    if (off < 0 || len < 0)
        return -1;
    size_t start = out->len;
    char *chunk = xmalloc(DSN_CHUNK);
    if (m->ret_hdrs)
        len = header_len(fd, off, len, chunk);
    int bad = len < 0 || pick_boundary(m, fd, off, len, chunk, boundary, &eight) < 0;
    free(chunk);
    if (bad)
        return -1;
    enum dsn_kind kind = report_kind(r, n);
    put_header(m, kind, boundary, eight, out);
    put_text_part(m, r, n, kind, boundary, out);
    put_status_part(m, r, n, boundary, out);
    if (put_original_part(m, kind, boundary, eight, fd, off, len, out) < 0) {
        out->len = start;
        if (out->data)
            out->data[start] = '\0';
        return -1;
    }
    return 0;
}
