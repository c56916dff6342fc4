/* xmalloc.c - allocators that never return NULL */
#include "xmalloc.h"
#include "log.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        log_fatalx("out of memory (%zu bytes)", n);
    return p;
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL)
        log_fatalx("out of memory (%zu x %zu bytes)", n, size);
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        log_fatalx("out of memory (%zu bytes)", n);
    return q;
}

void *xgrow(void *p, size_t n, size_t *alloc, size_t size)
{
    if (n < *alloc)
        return p;
    size_t a = *alloc ? *alloc * 2 : 16;
    if (size != 0 && a > SIZE_MAX / size)
        log_fatalx("out of memory (%zu x %zu bytes)", a, size);
    *alloc = a;
    return xrealloc(p, a * size);
}

char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *p = NULL;
    int r = vasprintf(&p, fmt, ap);
    va_end(ap);
    if (r < 0)
        log_fatalx("out of memory (asprintf)");
    return p;
}
