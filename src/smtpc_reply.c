/* smtpc_reply.c - parsing a peer's SMTP replies and EHLO keywords (client side)
 *
 * Every access is bounded by len (OpenSMTPD CVE-2020-8794 read past a short
 * "250-" line).  A partial final line yields SMTPC_MORE unless what has
 * arrived is already malformed, so a hostile peer cannot make us wait for
 * bytes that could never make the reply valid.
 */
#include "smtpc_reply.h"

#include <limits.h>
#include <string.h>
#include <strings.h>

/* is_digit - ASCII digit test without locale */
static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* check_head - validate the first n (<= 4) octets of a line: three digits
 * (first 2..5), then ' ' or '-'; code must equal want unless want is 0.
 * Returns the code (or 0 if fewer than 3 digits available), -1 if invalid. */
static int check_head(const char *p, size_t n, int want)
{
    if (n > 0 && (p[0] < '2' || p[0] > '5'))
        return -1;
    for (size_t i = 1; i < n && i < 3; i++)
        if (!is_digit(p[i]))
            return -1;
    if (n > 3 && p[3] != ' ' && p[3] != '-')
        return -1;
    if (n < 3) {
        /* a partial code must still be able to match the first line's */
        if (want) {
            char w[3] = {(char)('0' + want / 100), (char)('0' + want / 10 % 10), (char)('0' + want % 10)};
            if (memcmp(p, w, n) != 0)
                return -1;
        }
        return 0;
    }
    int code = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
    if (want && code != want)
        return -1;
    return code;
}

/* esc_part - length of a 1-3 digit run at p[0..n), 0 if none or longer */
static size_t esc_part(const char *p, size_t n)
{
    size_t i = 0;
    while (i < n && i < 4 && is_digit(p[i]))
        i++;
    return (i >= 1 && i <= 3) ? i : 0;
}

/* esc_len - length of an enhanced status code "C.N.N" of class cls at
 * the start of p[0..n), followed by ' ' or the end; 0 if none */
static size_t esc_len(const char *p, size_t n, char cls)
{
    if (n < 5 || p[0] != cls || p[1] != '.')
        return 0;
    size_t i = 2, k = esc_part(p + i, n - i);
    if (!k)
        return 0;
    i += k;
    if (i >= n || p[i] != '.')
        return 0;
    i++;
    k = esc_part(p + i, n - i);
    if (!k)
        return 0;
    i += k;
    if (i < n && p[i] != ' ')
        return 0;
    return i;
}

/* text_add - append n octets of one line's text to r->text, '\n'-joined, truncated */
static void text_add(struct smtpc_reply *r, size_t *tlen, const char *p, size_t n)
{
    size_t room = sizeof(r->text) - 1 - *tlen;
    if (r->lines > 1 && room > 0) {
        r->text[(*tlen)++] = '\n';
        room--;
    }
    if (n > room)
        n = room;
    memcpy(r->text + *tlen, p, n);
    *tlen += n;
    r->text[*tlen] = '\0';
}

/* first_line_text - record the enhanced code of the first line and its remaining text */
static void first_line_text(struct smtpc_reply *r, size_t *tlen, const char *p, size_t n)
{
    size_t e = esc_len(p, n, (char)('0' + r->code / 100));
    if (e && e < sizeof(r->esc)) {
        memcpy(r->esc, p, e);
        r->esc[e] = '\0';
        p += e;
        n -= e;
        if (n > 0) { /* the space after the code */
            p++;
            n--;
        }
    }
    text_add(r, tlen, p, n);
}

/* partial_line - judge an unterminated line at p[0..n): SMTPC_MORE or SMTPC_ERROR */
static enum smtpc_parse partial_line(const char *p, size_t n, int want)
{
    if (memchr(p, '\0', n))
        return SMTPC_ERROR;
    size_t head = n < 4 ? n : 4;
    if (n == 4 && p[3] == '\r')
        head = 3; /* "250" + CR: the LF may follow */
    if (check_head(p, head, want) < 0)
        return SMTPC_ERROR;
    /* content may be SMTPC_LINE_MAX octets, then CR, then LF */
    if (n > SMTPC_LINE_MAX + 1 || (n == SMTPC_LINE_MAX + 1 && p[n - 1] != '\r'))
        return SMTPC_ERROR;
    return SMTPC_MORE;
}

/* smtpc_reply_parse - parse one reply at the start of buf[0..len) (see smtpc_reply.h) */
enum smtpc_parse smtpc_reply_parse(const char *buf, size_t len, struct smtpc_reply *r, size_t *used)
{
    size_t pos = 0, tlen = 0;
    memset(r, 0, sizeof(*r));
    *used = 0;
    for (;;) {
        const char *p = buf + pos;
        size_t avail = len - pos;
        size_t scan = avail < SMTPC_LINE_MAX + 2 ? avail : SMTPC_LINE_MAX + 2;
        const char *lf = memchr(p, '\n', scan);
        if (!lf)
            return partial_line(p, avail, r->code);
        size_t n = (size_t)(lf - p); /* content length, before CR */
        int bare = !(n > 0 && p[n - 1] == '\r');
        if (!bare)
            n--;
        if (n > SMTPC_LINE_MAX || n < 3 || memchr(p, '\0', n))
            return SMTPC_ERROR;
        int code = check_head(p, n < 4 ? n : 4, r->code);
        if (code <= 0)
            return SMTPC_ERROR;
        r->code = code;
        r->lines++;
        if (bare)
            r->bare_lf = 1;
        const char *t = p + (n > 3 ? 4 : 3);
        size_t tn = n > 3 ? n - 4 : 0;
        if (r->lines == 1)
            first_line_text(r, &tlen, t, tn);
        else
            text_add(r, &tlen, t, tn);
        pos += (size_t)(lf - p) + 1;
        if (n == 3 || p[3] == ' ') {
            *used = pos;
            return SMTPC_DONE;
        }
        if (r->lines >= SMTPC_LINES_MAX)
            return SMTPC_ERROR;
    }
}

/* is_sep - a separator between EHLO words */
static int is_sep(char c)
{
    return c == ' ' || c == '\t';
}

/* word_is - the n-octet word w equals kw, ignoring case */
static int word_is(const char *w, size_t n, const char *kw)
{
    return strlen(kw) == n && strncasecmp(w, kw, n) == 0;
}

/* parse_size - the SIZE value in p[0..n): digits with overflow check; 0 if absent, bad or too big */
static unsigned long long parse_size(const char *p, size_t n)
{
    unsigned long long v = 0;
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit(p[i]))
            return 0;
        unsigned d = (unsigned)(p[i] - '0');
        if (v > (ULLONG_MAX - d) / 10)
            return 0; /* beyond any limit we could enforce: treat as unlimited */
        v = v * 10 + d;
    }
    return v;
}

/* auth_mechs - note PLAIN and LOGIN among the mechanisms in p[0..n) */
static void auth_mechs(const char *p, size_t n, struct smtpc_ext *ext)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && is_sep(p[i]))
            i++;
        size_t s = i;
        while (i < n && !is_sep(p[i]))
            i++;
        if (word_is(p + s, i - s, "PLAIN"))
            ext->auth_plain = 1;
        else if (word_is(p + s, i - s, "LOGIN"))
            ext->auth_login = 1;
    }
}

static const struct {
    const char *kw;
    unsigned flag;
} ehlo_kw[] = {
    {"PIPELINING", SMTPC_EXT_PIPELINING}, {"SIZE", SMTPC_EXT_SIZE},
    {"8BITMIME", SMTPC_EXT_8BITMIME},     {"SMTPUTF8", SMTPC_EXT_SMTPUTF8},
    {"DSN", SMTPC_EXT_DSN},               {"CHUNKING", SMTPC_EXT_CHUNKING},
    {"STARTTLS", SMTPC_EXT_STARTTLS},     {"AUTH", SMTPC_EXT_AUTH},
    {"ENHANCEDSTATUSCODES", SMTPC_EXT_ENHANCEDSTATUSCODES},
};

/* ehlo_line - interpret one EHLO keyword line p[0..n) */
static void ehlo_line(const char *p, size_t n, struct smtpc_ext *ext)
{
    size_t i = 0;
    while (i < n && is_sep(p[i]))
        i++;
    size_t s = i;
    while (i < n && !is_sep(p[i]) && p[i] != '=')
        i++;
    const char *kw = p + s;
    size_t kn = i - s;
    int old_auth = i < n && p[i] == '=';
    if (old_auth && !word_is(kw, kn, "AUTH"))
        return; /* "KEYWORD=..." is only known for AUTH */
    for (size_t k = 0; k < sizeof(ehlo_kw) / sizeof(ehlo_kw[0]); k++) {
        if (!word_is(kw, kn, ehlo_kw[k].kw))
            continue;
        ext->flags |= ehlo_kw[k].flag;
        if (i < n)
            i++; /* the separator or '=' */
        while (i < n && is_sep(p[i]))
            i++;
        size_t vn = n - i;
        while (vn > 0 && is_sep(p[i + vn - 1]))
            vn--;
        if (ehlo_kw[k].flag == SMTPC_EXT_SIZE)
            ext->size = parse_size(p + i, vn);
        else if (ehlo_kw[k].flag == SMTPC_EXT_AUTH)
            auth_mechs(p + i, vn, ext);
        return;
    }
}

/* smtpc_ehlo_parse - keywords of an EHLO reply; a non-2xx reply offers nothing */
void smtpc_ehlo_parse(const struct smtpc_reply *r, struct smtpc_ext *ext)
{
    memset(ext, 0, sizeof(*ext));
    if (r->code < 200 || r->code > 299)
        return;
    const char *p = r->text;
    const char *end = memchr(r->text, '\0', sizeof(r->text));
    if (!end)
        end = r->text + sizeof(r->text);
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    while (nl) { /* the first line is the greeting name */
        p = nl + 1;
        nl = memchr(p, '\n', (size_t)(end - p));
        ehlo_line(p, nl ? (size_t)(nl - p) : (size_t)(end - p), ext);
    }
}
