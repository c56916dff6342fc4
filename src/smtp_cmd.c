/* smtp_cmd.c - SMTP command line lexing and ESMTP parameter parsing (pure, no I/O)
 *
 * Parameters are walked as (pointer, length) spans of the caller's line; a
 * value is only copied once it is validated and known to fit its field.
 */
#include "smtp_cmd.h"

#include <limits.h>
#include <string.h>

/* ascii_lower - tolower for ASCII only (locale-independent) */
static unsigned char ascii_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

/* is_digit - ASCII decimal digit */
static int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* is_alnum - ASCII letter or digit */
static int is_alnum(unsigned char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* prefix_ci - s starts with word (ignoring ASCII case); stops at s's NUL */
static int prefix_ci(const char *s, const char *word)
{
    for (; *word; s++, word++)
        if (ascii_lower((unsigned char)*s) != ascii_lower((unsigned char)*word))
            return 0;
    return 1;
}

/* span_eq_ci - the span [p, p+n) equals word, ignoring ASCII case */
static int span_eq_ci(const char *p, size_t n, const char *word)
{
    if (strlen(word) != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (ascii_lower((unsigned char)p[i]) != ascii_lower((unsigned char)word[i]))
            return 0;
    return 1;
}

/* looks_http - an HTTP request line or a "Name: value" header line */
static int looks_http(const char *line)
{
    static const char *const methods[] = {
        "GET ", "POST ", "HEAD ", "PUT ", "CONNECT ", "OPTIONS ", "DELETE ",
    };
    size_t i = 0;

    for (size_t m = 0; m < sizeof(methods) / sizeof(methods[0]); m++)
        if (prefix_ci(line, methods[m]))
            return 1;
    /* header-like: a field name (visible ASCII, no ':') then ": " (as Postfix's /^[^ ]+: /) */
    while ((unsigned char)line[i] > ' ' && (unsigned char)line[i] < 0x7f && line[i] != ':')
        i++;
    return i > 0 && line[i] == ':' && line[i + 1] == ' ';
}

static const struct {
    const char *name;
    enum smtp_verb verb;
} verbs[] = {
    {"HELO", CMD_HELO}, {"EHLO", CMD_EHLO}, {"MAIL", CMD_MAIL}, {"RCPT", CMD_RCPT},
    {"DATA", CMD_DATA}, {"BDAT", CMD_BDAT}, {"RSET", CMD_RSET}, {"NOOP", CMD_NOOP},
    {"HELP", CMD_HELP}, {"VRFY", CMD_VRFY}, {"EXPN", CMD_EXPN}, {"QUIT", CMD_QUIT},
    {"STARTTLS", CMD_STARTTLS}, {"AUTH", CMD_AUTH},
};

/* verb_args - argument text after a recognised verb of length len */
static const char *verb_args(const char *line, size_t len, enum smtp_verb v)
{
    const char *a = line + len;

    if (v == CMD_MAIL || v == CMD_RCPT) {
        const char *kw = v == CMD_MAIL ? "FROM:" : "TO:";
        if (*a != ' ' || !prefix_ci(a + 1, kw))
            return NULL; /* "MAIL FROM <a>", "MAIL FROM :<a>", "MAIL TO:<a>", "MAIL" */
        return a + 1 + strlen(kw);
    }
    return *a == ' ' ? a + 1 : a;
}

/* smtp_cmd_lex - identify the verb of a command line and where its arguments start */
enum smtp_verb smtp_cmd_lex(const char *line, const char **args)
{
    const char *dummy;

    if (!args)
        args = &dummy;
    *args = "";
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
        size_t len = strlen(verbs[i].name);
        if (prefix_ci(line, verbs[i].name) && (line[len] == '\0' || line[len] == ' ')) {
            *args = verb_args(line, len, verbs[i].verb);
            return verbs[i].verb;
        }
    }
    return looks_http(line) ? CMD_HTTP : CMD_UNKNOWN;
}

/* one "keyword[=value]" token of a parameter list */
struct param {
    const char *tok;  /* whole token */
    size_t toklen;
    const char *key;
    size_t keylen;
    const char *val;  /* NULL when there is no '=' */
    size_t vallen;
};

/* next_param - split off the next space-separated token; 0 at the end of the list */
static int next_param(const char **sp, struct param *pr)
{
    const char *s = *sp, *eq;

    while (*s == ' ')
        s++;
    if (*s == '\0')
        return 0;
    pr->tok = s;
    pr->toklen = strcspn(s, " ");
    eq = memchr(s, '=', pr->toklen);
    pr->key = s;
    pr->keylen = eq ? (size_t)(eq - s) : pr->toklen;
    pr->val = eq ? eq + 1 : NULL;
    pr->vallen = eq ? pr->toklen - pr->keylen - 1 : 0;
    *sp = s + pr->toklen;
    return 1;
}

/* keyword_valid - esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") */
static int keyword_valid(const struct param *pr)
{
    if (pr->keylen == 0 || !is_alnum((unsigned char)pr->key[0]))
        return 0;
    for (size_t i = 1; i < pr->keylen; i++)
        if (!is_alnum((unsigned char)pr->key[i]) && pr->key[i] != '-')
            return 0;
    return 1;
}

/* value_valid - esmtp-value = 1*(%d33-60 / %d62-126); a missing value is not valid */
static int value_valid(const struct param *pr)
{
    if (!pr->val || pr->vallen == 0)
        return 0;
    for (size_t i = 0; i < pr->vallen; i++) {
        unsigned char c = (unsigned char)pr->val[i];
        if (c < 33 || c > 126 || c == '=')
            return 0;
    }
    return 1;
}

/* set_bad - copy the offending keyword (or token) into badbuf, printable ASCII only */
static void set_bad(char *badbuf, size_t badsz, const struct param *pr)
{
    const char *p = pr->keylen ? pr->key : pr->tok;
    size_t n = pr->keylen ? pr->keylen : pr->toklen;

    if (!badbuf || badsz == 0)
        return;
    if (n > badsz - 1)
        n = badsz - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        badbuf[i] = (c > ' ' && c < 0x7f) ? (char)c : '?';
    }
    badbuf[n] = '\0';
}

/* key_index - index of the parameter's keyword in keys[], -1 if unknown */
static int key_index(const struct param *pr, const char *const *keys, int nkeys)
{
    for (int i = 0; i < nkeys; i++)
        if (span_eq_ci(pr->key, pr->keylen, keys[i]))
            return i;
    return -1;
}

/* lookup_param - syntax, known keyword and duplicate checks; *k = keyword index */
static enum param_status lookup_param(const struct param *pr, const char *const *keys, int nkeys,
                                      unsigned *seen, int *k)
{
    if (!keyword_valid(pr))
        return PARAM_BAD_VALUE;
    *k = key_index(pr, keys, nkeys);
    if (*k < 0)
        return PARAM_UNKNOWN;
    if (*seen & (1u << *k))
        return PARAM_BAD_VALUE; /* duplicate */
    *seen |= 1u << *k;
    if (pr->val && !value_valid(pr))
        return PARAM_BAD_VALUE; /* "KEY=" or a value with forbidden octets */
    return PARAM_OK;
}

/* parse_size - SIZE=1*20DIGIT without overflow */
static enum param_status parse_size(const struct param *pr, long long *size)
{
    long long v = 0;

    if (!pr->val || pr->vallen > 20)
        return PARAM_BAD_VALUE;
    for (size_t i = 0; i < pr->vallen; i++) {
        int d = pr->val[i] - '0';
        if (!is_digit((unsigned char)pr->val[i]) || v > (LLONG_MAX - d) / 10)
            return PARAM_BAD_VALUE;
        v = v * 10 + d;
    }
    *size = v;
    return PARAM_OK;
}

/* parse_choice - value is one of words[] (case-insensitive); *out = its index + 1 */
static enum param_status parse_choice(const struct param *pr, const char *const *words, int n, int *out)
{
    if (!pr->val)
        return PARAM_BAD_VALUE;
    for (int i = 0; i < n; i++) {
        if (span_eq_ci(pr->val, pr->vallen, words[i])) {
            *out = i + 1;
            return PARAM_OK;
        }
    }
    return PARAM_BAD_VALUE;
}

/* mail_value - interpret the value of MAIL parameter number k */
static enum param_status mail_value(const struct param *pr, int k, struct mail_params *p)
{
    static const char *const bodies[] = {"7BIT", "8BITMIME"};
    static const char *const rets[] = {"FULL", "HDRS"};
    int c = 0;
    enum param_status st;

    switch (k) {
    case 0: /* SIZE */
        return parse_size(pr, &p->size);
    case 1: /* BODY (BINARYMIME is not offered) */
        st = parse_choice(pr, bodies, 2, &c);
        p->body = c == 1 ? BODY_7BIT : c == 2 ? BODY_8BITMIME : BODY_NONE;
        return st;
    case 2: /* SMTPUTF8 takes no value */
        p->smtputf8 = 1;
        return pr->val ? PARAM_BAD_VALUE : PARAM_OK;
    case 3: /* RET */
        st = parse_choice(pr, rets, 2, &c);
        p->ret = c == 1 ? RET_FULL : c == 2 ? RET_HDRS : RET_NONE;
        return st;
    case 4: /* ENVID: xtext, at most 100 characters decoded */
        if (!pr->val || xtext_decode(pr->val, pr->vallen, p->envid, sizeof(p->envid)) < 0) {
            p->envid[0] = '\0';
            return PARAM_BAD_VALUE;
        }
        return PARAM_OK;
    default: /* AUTH: "<>" or xtext, ignored */
        if (!pr->val || !(span_eq_ci(pr->val, pr->vallen, "<>") || xtext_valid(pr->val, pr->vallen)))
            return PARAM_BAD_VALUE;
        return PARAM_OK;
    }
}

/* smtp_mail_params - parse MAIL FROM parameters (SIZE BODY SMTPUTF8 RET ENVID AUTH) */
enum param_status smtp_mail_params(const char *s, struct mail_params *p, char *badbuf, size_t badsz)
{
    static const char *const keys[] = {"SIZE", "BODY", "SMTPUTF8", "RET", "ENVID", "AUTH"};
    struct param pr;
    unsigned seen = 0;
    int k = -1;

    memset(p, 0, sizeof(*p));
    p->size = -1;
    if (badbuf && badsz)
        badbuf[0] = '\0';
    while (next_param(&s, &pr)) {
        enum param_status st = lookup_param(&pr, keys, 6, &seen, &k);
        if (st == PARAM_OK)
            st = mail_value(&pr, k, p);
        if (st != PARAM_OK) {
            set_bad(badbuf, badsz, &pr);
            return st;
        }
    }
    return PARAM_OK;
}

/* notify_word - NOTIFY list item to its bit, 0 if unknown */
static int notify_word(const char *p, size_t n)
{
    if (span_eq_ci(p, n, "NEVER"))
        return NOTIFY_NEVER;
    if (span_eq_ci(p, n, "SUCCESS"))
        return NOTIFY_SUCCESS;
    if (span_eq_ci(p, n, "FAILURE"))
        return NOTIFY_FAILURE;
    if (span_eq_ci(p, n, "DELAY"))
        return NOTIFY_DELAY;
    return 0;
}

/* parse_notify - NOTIFY=NEVER or a comma list of SUCCESS, FAILURE, DELAY (no duplicates) */
static enum param_status parse_notify(const struct param *pr, int *notify)
{
    const char *v = pr->val;
    size_t n = pr->vallen, i = 0;
    int bits = 0;

    if (!v)
        return PARAM_BAD_VALUE;
    for (;;) {
        size_t start = i;
        while (i < n && v[i] != ',')
            i++;
        int b = notify_word(v + start, i - start);
        if (b == 0 || (bits & b))
            return PARAM_BAD_VALUE;
        bits |= b;
        if (i == n)
            break;
        i++; /* a trailing ',' yields an empty item next round: refused */
    }
    if ((bits & NOTIFY_NEVER) && bits != NOTIFY_NEVER)
        return PARAM_BAD_VALUE;
    *notify = bits;
    return PARAM_OK;
}

/* parse_orcpt - ORCPT=addr-type;xtext with addr-type rfc822 or utf-8 */
static enum param_status parse_orcpt(const struct param *pr, struct rcpt_params *p)
{
    const char *semi = pr->val ? memchr(pr->val, ';', pr->vallen) : NULL;
    const char *type;
    size_t tlen;

    if (!semi)
        return PARAM_BAD_VALUE;
    tlen = (size_t)(semi - pr->val);
    if (span_eq_ci(pr->val, tlen, "rfc822"))
        type = "rfc822";
    else if (span_eq_ci(pr->val, tlen, "utf-8"))
        type = "utf-8";
    else
        return PARAM_BAD_VALUE;
    size_t xlen = pr->vallen - tlen - 1;
    if (xlen == 0 || xtext_decode(semi + 1, xlen, p->orcpt, sizeof(p->orcpt)) < 0) {
        p->orcpt[0] = '\0';
        return PARAM_BAD_VALUE;
    }
    memcpy(p->orcpt_type, type, strlen(type) + 1);
    return PARAM_OK;
}

/* smtp_rcpt_params - parse RCPT TO parameters (NOTIFY ORCPT) */
enum param_status smtp_rcpt_params(const char *s, struct rcpt_params *p, char *badbuf, size_t badsz)
{
    static const char *const keys[] = {"NOTIFY", "ORCPT"};
    struct param pr;
    unsigned seen = 0;
    int k = -1;

    memset(p, 0, sizeof(*p));
    if (badbuf && badsz)
        badbuf[0] = '\0';
    while (next_param(&s, &pr)) {
        enum param_status st = lookup_param(&pr, keys, 2, &seen, &k);
        if (st == PARAM_OK)
            st = k == 0 ? parse_notify(&pr, &p->notify) : parse_orcpt(&pr, p);
        if (st != PARAM_OK) {
            set_bad(badbuf, badsz, &pr);
            return st;
        }
    }
    return PARAM_OK;
}

/* smtp_bdat_args - "<size> [LAST]" with size <= 2^53; 0 and fills size/last, or -1 */
int smtp_bdat_args(const char *s, unsigned long long *size, int *last)
{
    const unsigned long long max = 1ULL << 53;
    unsigned long long v = 0;
    int is_last = 0;

    while (*s == ' ')
        s++;
    if (!is_digit((unsigned char)*s))
        return -1;
    for (; is_digit((unsigned char)*s); s++) {
        v = v * 10 + (unsigned long long)(*s - '0');
        if (v > max)
            return -1; /* checked every digit, so v * 10 cannot wrap */
    }
    if (*s != '\0' && *s != ' ')
        return -1;
    while (*s == ' ')
        s++;
    if (prefix_ci(s, "LAST")) {
        is_last = 1;
        s += 4;
        while (*s == ' ')
            s++;
    }
    if (*s != '\0')
        return -1;
    *size = v;
    *last = is_last;
    return 0;
}
