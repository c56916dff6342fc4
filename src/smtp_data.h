/* smtp_data.h - message text reader for DATA (dot-stuffed) and BDAT (raw)
 *
 * The only place that decides where a message ends.  Only <CR><LF>.<CR><LF>
 * ends DATA.  Policy (docs/ARCHITECTURE.md "Line endings"): a bare CR, a bare
 * LF or a NUL anywhere in the text marks the message bad; it is still read to
 * its real end so the session stays in sync, then rejected with 550 5.6.0.
 * The same rules apply to BDAT chunks.  Lines are stored with LF endings.
 */
#ifndef TERN_SMTP_DATA_H
#define TERN_SMTP_DATA_H

#include <stddef.h>

struct queue_writer;

#define DATA_F_BADEOL 0x01  /* bare CR, bare LF or NUL */
#define DATA_F_LONG 0x02    /* a line longer than the limit */
#define DATA_F_TOOBIG 0x04  /* message_size_limit exceeded */
#define DATA_F_IOERR 0x08   /* the queue file could not be created/written */

enum data_mode { DATA_MODE_DOT, DATA_MODE_BDAT };

struct smtp_data {
    char *line;            /* partial line carried between reads */
    size_t len;            /* bytes of the partial line seen (may exceed what is kept) */
    size_t kept;           /* bytes kept in line[] */
    size_t max_line;       /* octets incl. CRLF */
    long long size_limit;  /* 0: none */
    long long size;        /* message octets as on the wire (CRLF counted as 2) */
    char tail[2];          /* last two octets of the partial line */
    int cr_pending;        /* the partial line ends in CR (bare unless LF follows) */
    int prev_crlf;         /* the previous line ended in CRLF (or DATA just began) */
    int in_headers;
    int flags;             /* DATA_F_* */
    char message_id[256];  /* Message-ID header, for the log */

    /* submission (RFC 6409 8): headers added at the end of the header block
     * when the message lacks them; "" = do not add */
    char fix_date[80], fix_msgid[300], fix_from[320];
    int seen_date, seen_msgid, seen_from;
    int received;          /* Received: headers in the client's text (hop count) */
};

void smtp_data_begin(struct smtp_data *d, long long max_line, long long size_limit);
/* smtp_data_feed - consume up to len bytes; returns bytes consumed (stops
 * right after the end of DATA, setting *ended).  Text goes to w unless the
 * message is already marked bad (w may be NULL: count only). */
size_t smtp_data_feed(struct smtp_data *d, const char *p, size_t len, enum data_mode mode,
                      struct queue_writer *w, int *ended);
/* smtp_data_flush - BDAT LAST: handle a final line without LF */
void smtp_data_flush(struct smtp_data *d, struct queue_writer *w);
/* smtp_data_finish - the text is complete: add still-missing headers */
void smtp_data_finish(struct smtp_data *d, struct queue_writer *w);
void smtp_data_end(struct smtp_data *d);   /* forget the message, keep the buffer */
void smtp_data_free(struct smtp_data *d);

#endif
