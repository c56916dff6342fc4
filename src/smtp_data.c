/* smtp_data.c - message text: end-of-data detection, dot-unstuffing, line checks */
#include "smtp_data.h"
#include "queue.h"
#include "xmalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void smtp_data_begin(struct smtp_data *d, long long max_line, long long size_limit)
{
    char *keep = d->line;
    size_t keep_max = d->max_line;
    memset(d, 0, sizeof(*d));
    d->max_line = (size_t)max_line;
    d->line = keep;
    if (d->line == NULL || keep_max < d->max_line) {
        free(d->line);
        d->line = xmalloc(d->max_line + 1);
    }
    d->size_limit = size_limit;
    d->prev_crlf = 1;
    d->in_headers = 1;
    d->seen_date = d->seen_msgid = d->seen_from = 1; /* nothing to add unless asked */
}

void smtp_data_end(struct smtp_data *d)
{
    d->len = d->kept = 0;
    d->flags = 0;
    d->size = 0;
}

void smtp_data_free(struct smtp_data *d)
{
    free(d->line);
    d->line = NULL;
    d->max_line = 0;
}

/* header_is - line c (n octets) is header `name` (case-insensitive) */
static int header_is(const char *c, size_t n, const char *name)
{
    size_t l = strlen(name);
    return n > l && c[l] == ':' && strncasecmp(c, name, l) == 0;
}

/* is_header_line - "name:" (printable, no space) or a continuation line */
static int is_header_line(const char *c, size_t n)
{
    if (n > 0 && (c[0] == ' ' || c[0] == '\t'))
        return 1;
    for (size_t i = 0; i < n; i++) {
        if (c[i] == ':')
            return i > 0;
        if (c[i] <= ' ' || c[i] >= 0x7f)
            return 0;
    }
    return 0;
}

/* add_missing - write the headers a submission lacks (Date, Message-ID, From) */
static void add_missing(struct smtp_data *d, struct queue_writer *w)
{
    const char *fix[3] = {d->seen_date ? "" : d->fix_date, d->seen_msgid ? "" : d->fix_msgid,
                          d->seen_from ? "" : d->fix_from};
    for (int i = 0; i < 3; i++) {
        if (fix[i][0] == '\0')
            continue;
        size_t n = strlen(fix[i]);
        d->size += (long long)n + 2;
        if (w && d->flags == 0) {
            queue_writer_write(w, fix[i], n);
            queue_writer_write(w, "\n", 1);
        }
    }
    d->seen_date = d->seen_msgid = d->seen_from = 1;
}

/* note_header - track the header block: Message-ID for the log, headers a
 * submission must have; at its end add what is missing (and, when the block
 * ends with a body line instead of an empty line, insert the empty line). */
static void note_header(struct smtp_data *d, const char *c, size_t n, struct queue_writer *w)
{
    if (n == 0 || !is_header_line(c, n)) {
        d->in_headers = 0;
        int adding = (!d->seen_date && d->fix_date[0]) || (!d->seen_msgid && d->fix_msgid[0]) ||
                     (!d->seen_from && d->fix_from[0]);
        add_missing(d, w);
        if (adding && n != 0 && w && d->flags == 0)
            queue_writer_write(w, "\n", 1); /* keep the body out of the header block */
        return;
    }
    if (header_is(c, n, "Received"))
        d->received++;
    else if (header_is(c, n, "Date"))
        d->seen_date = 1;
    else if (header_is(c, n, "From"))
        d->seen_from = 1;
    else if (header_is(c, n, "Message-ID")) {
        d->seen_msgid = 1;
        if (d->message_id[0] != '\0')
            return;
        size_t i = 11;
        while (i < n && (c[i] == ' ' || c[i] == '\t'))
            i++;
        size_t m = n - i < sizeof(d->message_id) - 1 ? n - i : sizeof(d->message_id) - 1;
        for (size_t k = 0; k < m; k++) {
            unsigned char ch = (unsigned char)c[i + k];
            d->message_id[k] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
        }
        d->message_id[m] = '\0';
    }
}

void smtp_data_finish(struct smtp_data *d, struct queue_writer *w)
{
    if (d->in_headers)
        add_missing(d, w);
    d->in_headers = 0;
}

/* long_line_done - a line over the limit was read (and not kept); its bare
 * CR/NUL were noted by carry(), its line end is checked here */
static void long_line_done(struct smtp_data *d, size_t whole, int has_lf, int crlf)
{
    d->prev_crlf = crlf;
    d->flags |= DATA_F_LONG;
    if (has_lf && !crlf)
        d->flags |= DATA_F_BADEOL;
    d->size += (long long)whole + (crlf ? 0 : 2);
    if (d->size_limit > 0 && d->size > d->size_limit)
        d->flags |= DATA_F_TOOBIG;
}

/* line_done - one complete line of len bytes, ending in LF unless it is the
 * final line of a BDAT message.  Returns 1 at the end of DATA. */
static int line_done(struct smtp_data *d, const char *line, size_t len, enum data_mode mode,
                     struct queue_writer *w)
{
    int has_lf = len > 0 && line[len - 1] == '\n';
    int crlf = has_lf && len >= 2 && line[len - 2] == '\r';
    size_t clen = has_lf ? len - (crlf ? 2 : 1) : len;

    if (mode == DATA_MODE_DOT && crlf && d->prev_crlf && clen == 1 && line[0] == '.')
        return 1;
    d->prev_crlf = crlf;
    if ((has_lf && !crlf) || memchr(line, '\r', clen) || memchr(line, '\0', clen))
        d->flags |= DATA_F_BADEOL;
    if (clen + 2 > d->max_line)
        d->flags |= DATA_F_LONG;
    const char *c = line;
    if (mode == DATA_MODE_DOT && clen > 0 && c[0] == '.') {
        c++;
        clen--;
    }
    d->size += (long long)clen + 2;
    if (d->size_limit > 0 && d->size > d->size_limit)
        d->flags |= DATA_F_TOOBIG;
    if (d->in_headers)
        note_header(d, c, clen, w);
    if (d->flags == 0 && w != NULL) {
        queue_writer_write(w, c, clen);
        queue_writer_write(w, "\n", 1);
    }
    return 0;
}

/* partial_done - the carried line is complete (or final): dispatch it */
static int partial_done(struct smtp_data *d, enum data_mode mode, struct queue_writer *w)
{
    size_t whole = d->len, kept = d->kept;
    int has_lf = d->tail[1] == '\n';
    int crlf = has_lf && d->tail[0] == '\r';
    d->len = d->kept = 0;
    d->tail[0] = d->tail[1] = 0;
    d->cr_pending = 0;
    if (whole > kept)
        return long_line_done(d, whole, has_lf, crlf), 0;
    return line_done(d, d->line, whole, mode, w);
}

/* carry - append part of a line to the partial-line buffer.  Bytes beyond
 * the limit are not kept, so bare CRs and NULs are looked for here. */
static void carry(struct smtp_data *d, const char *s, size_t n)
{
    size_t room = d->max_line + 1 - d->kept;
    size_t copy = n < room ? n : room;
    memcpy(d->line + d->kept, s, copy);
    d->kept += copy;
    d->len += n;
    if (d->cr_pending && n > 0 && s[0] != '\n')
        d->flags |= DATA_F_BADEOL;
    for (const char *c = memchr(s, '\r', n); c; c = memchr(c + 1, '\r', n - (size_t)(c + 1 - s)))
        if (c + 1 < s + n && c[1] != '\n')
            d->flags |= DATA_F_BADEOL;
    if (memchr(s, '\0', n))
        d->flags |= DATA_F_BADEOL;
    d->cr_pending = n > 0 && s[n - 1] == '\r';
    if (n >= 2) {
        d->tail[0] = s[n - 2];
        d->tail[1] = s[n - 1];
    } else if (n == 1) {
        d->tail[0] = d->tail[1];
        d->tail[1] = s[0];
    }
}

size_t smtp_data_feed(struct smtp_data *d, const char *p, size_t len, enum data_mode mode,
                      struct queue_writer *w, int *ended)
{
    size_t used = 0;
    while (used < len) {
        const char *s = p + used;
        size_t n = len - used;
        const char *lf = memchr(s, '\n', n);
        size_t take = lf ? (size_t)(lf - s) + 1 : n;
        used += take;
        if (d->len == 0 && lf && take <= d->max_line + 1) {
            /* fast path: the whole line is in this segment */
            if (line_done(d, s, take, mode, w)) {
                *ended = 1;
                return used;
            }
            continue;
        }
        carry(d, s, take);
        if (lf && partial_done(d, mode, w)) {
            *ended = 1;
            return used;
        }
    }
    return used;
}

void smtp_data_flush(struct smtp_data *d, struct queue_writer *w)
{
    if (d->len > 0)
        partial_done(d, DATA_MODE_BDAT, w);
}
