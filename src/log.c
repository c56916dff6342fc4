/* log.c - Postfix-style log lines to stderr or a file */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int log_verbose;
static char log_program[32] = "tern";
static char log_host[256] = "localhost";
static char log_path[4096];
static int log_fd = 2;

int log_init(const char *program, const char *path)
{
    log_set_program(program);
    log_path[0] = '\0';
    if (path != NULL && *path != '\0') {
        if (strlen(path) >= sizeof(log_path))
            return -1;
        strcpy(log_path, path);
        int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        if (fd < 0)
            return -1;
        if (log_fd > 2)
            close(log_fd);
        log_fd = fd;
    }
    return 0;
}

void log_set_program(const char *program)
{
    snprintf(log_program, sizeof(log_program), "%s", program);
}

void log_set_hostname(const char *hostname)
{
    snprintf(log_host, sizeof(log_host), "%s", hostname);
    char *dot = strchr(log_host, '.');
    if (dot)
        *dot = '\0';
}

int log_fileno(void)
{
    return log_fd;
}

/* log_reopen - reopen the log file (after rotation, on SIGHUP) */
void log_reopen(void)
{
    if (log_path[0] == '\0')
        return;
    int fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return;
    if (log_fd > 2)
        close(log_fd);
    log_fd = fd;
}

static void log_vwrite_as(const char *program, const char *level, const char *fmt, va_list ap,
                          int with_errno)
{
    int saved = errno;
    char line[4096];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    size_t n = strftime(line, sizeof(line), "%b %e %H:%M:%S ", &tm);
    n += (size_t)snprintf(line + n, sizeof(line) - n, "%s tern/%s[%ld]: %s", log_host,
                          program, (long)getpid(), level);
    if (n < sizeof(line))
        n += (size_t)vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    if (with_errno && n < sizeof(line))
        n += (size_t)snprintf(line + n, sizeof(line) - n, ": %s", strerror(saved));
    if (n > sizeof(line) - 2)
        n = sizeof(line) - 2;
    line[n++] = '\n';
    /* one write() per line so concurrent writers (delivery workers) never interleave */
    ssize_t w = write(log_fd, line, n);
    (void)w;
    errno = saved;
}

static void log_vwrite(const char *level, const char *fmt, va_list ap, int with_errno)
{
    log_vwrite_as(log_program, level, fmt, ap, with_errno);
}

void log_info_as(const char *program, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vwrite_as(program, "", fmt, ap, 0);
    va_end(ap);
}

#define LOG_BODY(level, with_errno)          \
    va_list ap;                              \
    va_start(ap, fmt);                       \
    log_vwrite(level, fmt, ap, with_errno);  \
    va_end(ap)

void log_info(const char *fmt, ...) { LOG_BODY("", 0); }
void log_warn(const char *fmt, ...) { LOG_BODY("warning: ", 1); }
void log_warnx(const char *fmt, ...) { LOG_BODY("warning: ", 0); }
void log_debug(const char *fmt, ...)
{
    if (!log_verbose)
        return;
    LOG_BODY("debug: ", 0);
}
void log_fatal(const char *fmt, ...)
{
    LOG_BODY("fatal: ", 1);
    exit(1);
}
void log_fatalx(const char *fmt, ...)
{
    LOG_BODY("fatal: ", 0);
    exit(1);
}

char *log_printable(char *dst, size_t dstsz, const char *src, size_t len, int utf8)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    if (dstsz == 0)
        return dst;
    for (size_t i = 0; i < len && src[i] != '\0'; i++) {
        unsigned char c = (unsigned char)src[i];
        if ((c >= 0x20 && c < 0x7f && c != '\\') || (utf8 && c >= 0x80)) {
            if (o + 1 >= dstsz)
                break;
            dst[o++] = (char)c;
        } else {
            if (o + 4 >= dstsz)
                break;
            dst[o++] = '\\';
            dst[o++] = 'x';
            dst[o++] = hex[c >> 4];
            dst[o++] = hex[c & 15];
        }
    }
    dst[o] = '\0';
    return dst;
}
