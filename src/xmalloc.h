/* xmalloc.h - allocators that never return NULL (they log and exit) */
#ifndef TERN_XMALLOC_H
#define TERN_XMALLOC_H
#include <stddef.h>
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
/* xgrow - array p (*alloc items of size bytes) with room for item n: *alloc doubles (first 16)
 * when n has reached it */
void *xgrow(void *p, size_t n, size_t *alloc, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#endif
