/* addr.c - RFC 5321 / RFC 6531 path parsing and RFC 3461 xtext
 *
 * Everything here works on (pointer, length) spans of the caller's string:
 * nothing is copied into the output until the piece has been validated and
 * its length checked against the destination.  No allocation, no globals.
 */
#include "addr.h"

#include <arpa/inet.h>
#include <string.h>

/* is_ctrl - C0 control or DEL */
static int is_ctrl(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

/* is_digit - ASCII decimal digit */
static int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* is_alnum - ASCII letter or digit (locale-independent) */
static int is_alnum(unsigned char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* is_atext - RFC 5322 atext, ASCII part */
static int is_atext(unsigned char c)
{
    return is_alnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* ascii_lower - tolower for ASCII only */
static unsigned char ascii_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

/* caseeq - the n bytes at a equal the n bytes of b, ignoring ASCII case */
static int caseeq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ascii_lower((unsigned char)a[i]) != ascii_lower((unsigned char)b[i]))
            return 0;
    return 1;
}

/* utf8_seq_len - length of the well-formed UTF-8 sequence at u, 0 if malformed */
static size_t utf8_seq_len(const unsigned char *u, size_t avail)
{
    unsigned char lo = 0x80, hi = 0xBF;
    size_t n;

    if (u[0] == 0)
        return 0;
    if (u[0] < 0x80)
        return 1;
    if (u[0] >= 0xC2 && u[0] <= 0xDF) {
        n = 2;
    } else if (u[0] >= 0xE0 && u[0] <= 0xEF) {
        n = 3;
        if (u[0] == 0xE0)
            lo = 0xA0; /* overlong */
        if (u[0] == 0xED)
            hi = 0x9F; /* surrogates */
    } else if (u[0] >= 0xF0 && u[0] <= 0xF4) {
        n = 4;
        if (u[0] == 0xF0)
            lo = 0x90; /* overlong */
        if (u[0] == 0xF4)
            hi = 0x8F; /* > U+10FFFF */
    } else {
        return 0; /* C0, C1 overlongs, F5..FF, stray continuation */
    }
    if (avail < n || u[1] < lo || u[1] > hi)
        return 0;
    for (size_t k = 2; k < n; k++)
        if (u[k] < 0x80 || u[k] > 0xBF)
            return 0;
    return n;
}

/* addr_utf8_valid - well-formed UTF-8 (no overlongs, no surrogates, no NUL) */
int addr_utf8_valid(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;

    while (i < len) {
        size_t n = utf8_seq_len(u + i, len - i);
        if (n == 0)
            return 0;
        i += n;
    }
    return 1;
}

/* has_8bit - any octet >= 0x80 in the span */
static int has_8bit(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] >= 0x80)
            return 1;
    return 0;
}

/* label_valid - one LDH label (1..63 octets, no edge hyphen); U-label octets if utf8 */
static int label_valid(const char *p, size_t n, int utf8)
{
    if (n == 0 || n > 63 || p[0] == '-' || p[n - 1] == '-')
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c >= 0x80 && !utf8)
            return 0;
        if (c < 0x80 && !is_alnum(c) && c != '-')
            return 0;
    }
    return !has_8bit(p, n) || addr_utf8_valid(p, n);
}

/* domain_name_valid - dot-separated labels, no empty label, no trailing dot */
static int domain_name_valid(const char *p, size_t n, int utf8)
{
    size_t start = 0;

    if (n == 0 || n > ADDR_DOMAIN_MAX)
        return 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || p[i] == '.') {
            if (!label_valid(p + start, i - start, utf8))
                return 0;
            start = i + 1;
        }
    }
    return 1;
}

/* ipv4_valid - dotted quad, each part 1-3 digits with value <= 255 */
static int ipv4_valid(const char *p, size_t n)
{
    size_t i = 0;

    for (int part = 0; part < 4; part++) {
        unsigned v = 0;
        size_t digits = 0;
        if (part > 0) {
            if (i >= n || p[i] != '.')
                return 0;
            i++;
        }
        while (i < n && digits < 3 && is_digit((unsigned char)p[i])) {
            v = v * 10 + (unsigned)(p[i] - '0');
            i++;
            digits++;
        }
        if (digits == 0 || v > 255)
            return 0;
    }
    return i == n;
}

/* ipv6_valid - IPv6 address text as accepted by inet_pton(AF_INET6) */
static int ipv6_valid(const char *p, size_t n)
{
    char tmp[64];
    unsigned char bin[16];

    if (n == 0 || n >= sizeof(tmp))
        return 0;
    memcpy(tmp, p, n);
    tmp[n] = '\0';
    return inet_pton(AF_INET6, tmp, bin) == 1;
}

/* literal_valid - address literal "[1.2.3.4]" or "[IPv6:...]" */
static int literal_valid(const char *p, size_t n)
{
    if (n < 3 || p[0] != '[' || p[n - 1] != ']')
        return 0;
    p++;
    n -= 2;
    if (n > 5 && caseeq(p, "IPv6:", 5))
        return ipv6_valid(p + 5, n - 5);
    return ipv4_valid(p, n);
}

/* domain_span_valid - Domain or address-literal in [p, p+n) */
static int domain_span_valid(const char *p, size_t n, int utf8)
{
    if (n == 0 || n > ADDR_DOMAIN_MAX)
        return 0;
    if (p[0] == '[')
        return literal_valid(p, n);
    return domain_name_valid(p, n, utf8);
}

/* addr_domain_valid - RFC 5321 Domain or address-literal (UTF-8 U-labels if utf8) */
int addr_domain_valid(const char *domain, int utf8)
{
    return domain_span_valid(domain, strlen(domain), utf8);
}

/* dot_string_valid - RFC 5321 Dot-string: atext (and UTF-8 if utf8) atoms joined by single dots */
static int dot_string_valid(const char *p, size_t n, int utf8)
{
    if (n == 0 || p[0] == '.' || p[n - 1] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '.') {
            if (p[i - 1] == '.')
                return 0;
        } else if (c >= 0x80) {
            if (!utf8)
                return 0;
        } else if (!is_atext(c)) {
            return 0;
        }
    }
    return !has_8bit(p, n) || addr_utf8_valid(p, n);
}

/* quoted_string - validate a Quoted-string span (quotes included), write its unquoted value */
static int quoted_string(const char *p, size_t n, int utf8, char *out, size_t outsz)
{
    size_t o = 0;

    if (n < 2 || p[0] != '"' || p[n - 1] != '"')
        return 0;
    for (size_t i = 1; i < n - 1; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\\') {
            if (i + 1 >= n - 1)
                return 0; /* the backslash would escape the closing quote */
            c = (unsigned char)p[++i];
            if (c < 32 || c > 126)
                return 0; /* quoted-pairSMTP = '\' %d32-126 */
        } else if (c == '"' || (c < 0x80 && (c < 32 || c > 126)) || (c >= 0x80 && !utf8)) {
            return 0;
        }
        if (o + 1 >= outsz)
            return 0;
        out[o++] = (char)c;
    }
    if (o == 0)
        return 0; /* "" is grammatical but names nobody: refuse it */
    out[o] = '\0';
    return !has_8bit(p, n) || addr_utf8_valid(p, n);
}

/* find_last_at - index of the last '@' outside a quoted string (n if none); 0 if a quote is open */
static int find_last_at(const char *p, size_t n, size_t *at)
{
    int inq = 0;

    *at = n;
    for (size_t i = 0; i < n; i++) {
        if (inq) {
            if (p[i] == '\\' && i + 1 < n)
                i++;
            else if (p[i] == '"')
                inq = 0;
        } else if (p[i] == '"') {
            inq = 1;
        } else if (p[i] == '@') {
            *at = i;
        }
    }
    return !inq;
}

/* parse_local - Local-part span: Dot-string or Quoted-string; fills out->local */
static enum addr_status parse_local(const char *p, size_t n, int utf8, struct addr *out)
{
    if (n > ADDR_LOCAL_MAX)
        return ADDR_ERR_LOCAL_LONG;
    if (n > 0 && p[0] == '"') {
        if (!quoted_string(p, n, utf8, out->local, sizeof(out->local)))
            return ADDR_ERR_SYNTAX;
        out->quoted = 1;
        return ADDR_OK;
    }
    if (!dot_string_valid(p, n, utf8))
        return ADDR_ERR_SYNTAX;
    memcpy(out->local, p, n);
    out->local[n] = '\0';
    return ADDR_OK;
}

/* copy_addr - store the mailbox as written into out->addr */
static enum addr_status copy_addr(const char *p, size_t n, struct addr *out)
{
    if (n >= sizeof(out->addr))
        return ADDR_ERR_PATH_LONG;
    memcpy(out->addr, p, n);
    out->addr[n] = '\0';
    return ADDR_OK;
}

/* no_domain - a mailbox without '@': only "postmaster" in RCPT, without source route */
static enum addr_status no_domain(const char *p, size_t n, int flags, int routed, struct addr *out)
{
    enum addr_status st = parse_local(p, n, flags & ADDR_F_UTF8, out);

    if (st != ADDR_OK)
        return st;
    if ((flags & ADDR_F_MAIL) || routed || out->quoted || n != 10 || !caseeq(p, "postmaster", 10))
        return ADDR_ERR_NO_DOMAIN;
    return copy_addr(p, n, out);
}

/* parse_mailbox - Mailbox = Local-part "@" ( Domain / address-literal ) */
static enum addr_status parse_mailbox(const char *p, size_t n, int flags, int routed, struct addr *out)
{
    size_t at;
    enum addr_status st;

    if (!find_last_at(p, n, &at))
        return ADDR_ERR_SYNTAX; /* unterminated quoted string */
    if (at == n)
        return no_domain(p, n, flags, routed, out);
    st = parse_local(p, at, flags & ADDR_F_UTF8, out);
    if (st != ADDR_OK)
        return st;
    const char *d = p + at + 1;
    size_t dn = n - at - 1;
    if (dn == 0)
        return ADDR_ERR_NO_DOMAIN;
    if (dn > ADDR_DOMAIN_MAX)
        return ADDR_ERR_DOMAIN_LONG;
    if (!domain_span_valid(d, dn, flags & ADDR_F_UTF8))
        return ADDR_ERR_DOMAIN;
    memcpy(out->domain, d, dn);
    out->domain[dn] = '\0';
    out->literal = d[0] == '[';
    return copy_addr(p, n, out);
}

/* skip_route - A-d-l ":" ("@a,@b:"): *used = its length, 0 if there is no source route */
static enum addr_status skip_route(const char *p, size_t n, int utf8, size_t *used)
{
    size_t i = 0;

    *used = 0;
    if (n == 0 || p[0] != '@')
        return ADDR_OK;
    for (;;) {
        if (i >= n || p[i] != '@')
            return ADDR_ERR_SYNTAX;
        size_t start = ++i;
        while (i < n && p[i] != ',' && p[i] != ':')
            i++;
        if (i >= n)
            return ADDR_ERR_SYNTAX; /* "@dom" alone: no ':' */
        if (!domain_span_valid(p + start, i - start, utf8))
            return ADDR_ERR_DOMAIN;
        if (p[i++] == ':')
            break;
    }
    if (i >= n)
        return ADDR_ERR_SYNTAX; /* nothing after ':' */
    *used = i;
    return ADDR_OK;
}

/* find_close - p is at '<': span inside the brackets up to the first unquoted '>' */
static enum addr_status find_close(const char *p, const char **in, size_t *n)
{
    int inq = 0;

    for (size_t i = 1; p[i] != '\0'; i++) {
        if (inq) {
            if (p[i] == '\\' && p[i + 1] != '\0')
                i++;
            else if (p[i] == '"')
                inq = 0;
        } else if (p[i] == '"') {
            inq = 1;
        } else if (p[i] == '<') {
            return ADDR_ERR_UNBALANCED;
        } else if (p[i] == '>') {
            *in = p + 1;
            *n = i - 1;
            return ADDR_OK;
        }
    }
    return ADDR_ERR_UNBALANCED;
}

/* bare_extent - an address without brackets runs to the first space (non-strict only) */
static enum addr_status bare_extent(const char *p, int flags, size_t *n)
{
    *n = strcspn(p, " ");
    if (memchr(p, '<', *n) || memchr(p, '>', *n))
        return ADDR_ERR_UNBALANCED;
    if ((flags & ADDR_F_STRICT) || *n == 0)
        return ADDR_ERR_SYNTAX;
    return ADDR_OK;
}

/* check_8bit - non-ASCII (anywhere in the path) needs ADDR_F_UTF8 and well-formed UTF-8 */
static enum addr_status check_8bit(const char *p, size_t n, int flags)
{
    if (!has_8bit(p, n))
        return ADDR_OK;
    if (!(flags & ADDR_F_UTF8) || !addr_utf8_valid(p, n))
        return ADDR_ERR_UTF8;
    return ADDR_OK;
}

/* find_path - locate the path: inside span (without brackets) in *in, *n; *end after it */
static enum addr_status find_path(const char *p, int flags, const char **in, size_t *n,
                                  const char **end)
{
    enum addr_status st;

    if (*p != '<') {
        st = bare_extent(p, flags, n);
        *in = p;
        *end = p + *n;
        return st;
    }
    st = find_close(p, in, n);
    if (st != ADDR_OK)
        return st;
    *end = *in + *n + 1;
    if (**end == '>')
        return ADDR_ERR_UNBALANCED;
    if (**end != '\0' && **end != ' ')
        return ADDR_ERR_SYNTAX;
    return ADDR_OK;
}

/* has_ctrl - any control byte in the NUL-terminated string */
static int has_ctrl(const char *s)
{
    for (; *s; s++)
        if (is_ctrl((unsigned char)*s))
            return 1;
    return 0;
}

/* parse_path - addr_parse_path without the clean-up on failure */
static enum addr_status parse_path(const char *arg, int flags, struct addr *out, const char **end)
{
    const char *p = arg, *in;
    size_t n, used;
    enum addr_status st;

    if (has_ctrl(arg))
        return ADDR_ERR_CTRL;
    if (flags & ADDR_F_STRICT) {
        if (*p == ' ')
            return ADDR_ERR_SYNTAX;
    } else {
        while (*p == ' ')
            p++;
    }
    st = find_path(p, flags, &in, &n, end);
    if (st == ADDR_OK)
        st = check_8bit(in, n, flags);
    if (st != ADDR_OK)
        return st;
    if (n == 0) { /* "<>" (bare empty paths were refused by bare_extent) */
        out->is_null = 1;
        return (flags & ADDR_F_MAIL) ? ADDR_OK : ADDR_ERR_NULL_RCPT;
    }
    st = skip_route(in, n, flags & ADDR_F_UTF8, &used);
    if (st == ADDR_OK)
        st = parse_mailbox(in + used, n - used, flags, used > 0, out);
    out->utf8 = has_8bit(in + used, n - used); /* of the mailbox: the source route is dropped */
    if (st == ADDR_OK && n + 2 > ADDR_PATH_MAX)
        st = ADDR_ERR_PATH_LONG;
    return st;
}

/* addr_parse_path - parse what follows "MAIL FROM:" / "RCPT TO:" (see addr.h) */
enum addr_status addr_parse_path(const char *arg, int flags, struct addr *out, const char **rest)
{
    const char *end = arg;
    enum addr_status st;

    memset(out, 0, sizeof(*out));
    st = parse_path(arg, flags, out, &end);
    if (st != ADDR_OK) {
        memset(out, 0, sizeof(*out));
        end = arg;
    }
    if (rest)
        *rest = end;
    return st;
}

/* addr_status_text - short human text for a status */
const char *addr_status_text(enum addr_status st)
{
    switch (st) {
    case ADDR_OK: return "OK";
    case ADDR_ERR_SYNTAX: return "Syntax error in mailbox address";
    case ADDR_ERR_UNBALANCED: return "Unbalanced '<' or '>'";
    case ADDR_ERR_NO_DOMAIN: return "Domain name required";
    case ADDR_ERR_LOCAL_LONG: return "Local part too long (max 64 octets)";
    case ADDR_ERR_DOMAIN_LONG: return "Domain too long (max 255 octets)";
    case ADDR_ERR_PATH_LONG: return "Path too long (max 256 octets)";
    case ADDR_ERR_CTRL: return "Control character in address";
    case ADDR_ERR_UTF8: return "Non-ASCII address needs SMTPUTF8 and valid UTF-8";
    case ADDR_ERR_NULL_RCPT: return "Null recipient not allowed";
    case ADDR_ERR_DOMAIN: return "Invalid domain or address literal";
    }
    return "Unknown address error";
}

/* is_xchar - RFC 3461 xchar: '!'..'~' except '+' and '=' */
static int is_xchar(unsigned char c)
{
    return c >= '!' && c <= '~' && c != '+' && c != '=';
}

/* hexval - value of an uppercase hex digit, -1 otherwise (RFC 3461 hexchar) */
static int hexval(unsigned char c)
{
    if (is_digit(c))
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* xtext_walk - decode xtext; out may be NULL to only validate; returns length or -1 */
static long xtext_walk(const char *in, size_t inlen, char *out, size_t outsz)
{
    size_t o = 0;

    if (out && outsz == 0)
        return -1;
    for (size_t i = 0; i < inlen; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '+') {
            if (inlen - i < 3)
                return -1;
            int hi = hexval((unsigned char)in[i + 1]), lo = hexval((unsigned char)in[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (unsigned char)(hi * 16 + lo);
            if (is_ctrl(c))
                return -1; /* never let CR, LF or NUL out */
            i += 2;
        } else if (!is_xchar(c)) {
            return -1;
        }
        if (out) {
            if (o + 1 >= outsz)
                return -1;
            out[o] = (char)c;
        }
        o++;
    }
    if (out)
        out[o] = '\0';
    return (long)o;
}

/* xtext_decode - decode RFC 3461 xtext into out (NUL-terminated); length or -1 */
long xtext_decode(const char *in, size_t inlen, char *out, size_t outsz)
{
    return xtext_walk(in, inlen, out, outsz);
}

/* xtext_valid - 1 if in is well-formed xtext whose decoded bytes are not controls */
int xtext_valid(const char *in, size_t inlen)
{
    return xtext_walk(in, inlen, NULL, 0) >= 0;
}

/* xtext_encode - encode bytes as xtext (xchars as is, others "+HH"); length or -1 */
long xtext_encode(const char *in, size_t inlen, char *out, size_t outsz)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;

    for (size_t i = 0; i < inlen; i++) {
        unsigned char c = (unsigned char)in[i];
        size_t need = is_xchar(c) ? 1 : 3;
        if (o + need >= outsz)
            return -1;
        if (need == 1) {
            out[o++] = (char)c;
        } else {
            out[o++] = '+';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    if (o >= outsz)
        return -1;
    out[o] = '\0';
    return (long)o;
}
