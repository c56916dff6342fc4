/* buf.h - the one growable byte buffer (always NUL-terminated) */
#ifndef TERN_BUF_H
#define TERN_BUF_H
#include <stddef.h>

struct buf {
    char *data;   /* NUL-terminated; NULL until first append */
    size_t len;
    size_t cap;
};

#define BUF_INIT {NULL, 0, 0}

void buf_reserve(struct buf *b, size_t extra);
void buf_append(struct buf *b, const void *p, size_t n);
void buf_puts(struct buf *b, const char *s);
void buf_putc(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_reset(struct buf *b);
void buf_free(struct buf *b);
const char *buf_str(const struct buf *b); /* "" when empty */

#endif
