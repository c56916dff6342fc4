/* mailbox.c - Maildir and mbox (mboxrd) writers
 *
 * Maildir: the message is written in tmp/ under a provisional unique name,
 * fsync'd, then renamed into new/ as time.V<dev>I<ino>M<usec>.host,S=<size>
 * (dev/ino of the file itself) and new/ is fsync'd.
 *
 * mbox: Debian policy 11.6 locking (fcntl, then PATH.lock dotlock with stale
 * locks removed after 5 minutes), a From_ line, the prepend, the message with
 * Dovecot's private headers dropped and ^>*From_ lines quoted (mboxrd), a
 * final blank line, fsync; on error the file is truncated to its old size.
 *
 * The message text is copied with pread() in 64 KiB chunks, never whole.
 */
#include "local.h"
#include "log.h"
#include "xmalloc.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#define CHUNK (64 * 1024)
#define LOCK_WAIT 30        /* seconds to wait for the fcntl lock and for the dotlock */
#define DOTLOCK_STALE 300   /* a dotlock older than this is removed */
#define LINE_PREFIX 32      /* bytes of a line start needed to classify it */

/* set_result - fill res */
static void set_result(struct deliver_result *res, enum deliver_status st, const char *dsn,
                       const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void set_result(struct deliver_result *res, enum deliver_status st, const char *dsn,
                       const char *fmt, ...)
{
    va_list ap;
    res->status = st;
    snprintf(res->dsn, sizeof(res->dsn), "%s", dsn);
    va_start(ap, fmt);
    vsnprintf(res->text, sizeof(res->text), fmt, ap);
    va_end(ap);
}

/* io_error - a temporary failure for errno e; a full disk or quota is "mailbox full" */
static int io_error(struct deliver_result *res, int e, const char *what, const char *path)
{
    if (e == ENOSPC || e == EDQUOT)
        set_result(res, DELIVER_TEMP, "4.2.2", "mailbox full: %s: %s", path, strerror(e));
    else
        set_result(res, DELIVER_TEMP, "4.2.0", "%s %s: %s", what, path, strerror(e));
    return -1;
}

/* write_all - write n bytes, retrying on EINTR and short writes */
static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        if (w == 0) {
            errno = EIO;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* read_chunk - pread up to CHUNK bytes of the message at pos; 0 at its end, -1 on error */
static ssize_t read_chunk(const struct local_msg *msg, off_t pos, char *buf)
{
    off_t left = msg->body_len - pos;
    size_t want = left < CHUNK ? (size_t)left : CHUNK;
    if (left <= 0)
        return 0;
    for (;;) {
        ssize_t r = pread(msg->fd, buf, want, msg->body_off + pos);
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0) {
            errno = EIO; /* the queue file is shorter than its envelope says */
            return -1;
        }
        return r;
    }
}

/* ---------------------------------------------------------------- Maildir */

/* path_fmt - snprintf into a path buffer; -1 with ENAMETOOLONG if it does not fit */
static int path_fmt(char *out, size_t sz, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int path_fmt(char *out, size_t sz, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, sz, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sz) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

/* mkdir_p - create dir and missing parents with mode 0700 */
static int mkdir_p(const char *dir)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s", dir) >= (int)sizeof(tmp)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = tmp + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
            return -1;
        *p = c;
        if (c == '\0')
            break;
    }
    return 0;
}

/* maildir_host - gethostname() with '/' and ':' escaped as in the Maildir spec */
static void maildir_host(char *out, size_t outsz)
{
    char h[256] = "localhost";
    size_t o = 0;
    gethostname(h, sizeof(h) - 1);
    h[sizeof(h) - 1] = '\0';
    for (const char *p = h; *p && o + 5 < outsz; p++) {
        if (*p == '/' || *p == ':') {
            memcpy(out + o, *p == '/' ? "\\057" : "\\072", 4);
            o += 4;
        } else {
            out[o++] = *p;
        }
    }
    out[o] = '\0';
}

/* maildir_copy - write prepend and message into fd */
static int maildir_copy(int fd, const struct local_msg *msg, const char *prepend)
{
    char *buf = xmalloc(CHUNK);
    int rc = write_all(fd, prepend, strlen(prepend));
    for (off_t pos = 0; rc == 0 && pos < msg->body_len;) {
        ssize_t r = read_chunk(msg, pos, buf);
        if (r < 0 || write_all(fd, buf, (size_t)r) < 0)
            rc = -1;
        else
            pos += r;
    }
    free(buf);
    return rc;
}

/* maildir_open_tmp - create tmp/<provisional name>; fills tmppath */
static int maildir_open_tmp(const char *dir, const struct timeval *tv, const char *host,
                            char *tmppath, size_t sz)
{
    static unsigned counter;
    for (int tries = 0; tries < 100; tries++) {
        if (path_fmt(tmppath, sz, "%s/tmp/%lld.M%ldP%ldQ%u.%s", dir, (long long)tv->tv_sec,
                     (long)tv->tv_usec, (long)getpid(), ++counter, host) < 0)
            return -1;
        int fd = open(tmppath, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd >= 0 || errno != EEXIST)
            return fd;
    }
    errno = EEXIST;
    return -1;
}

/* fsync_dir - make a rename in dir durable */
static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

/* maildir_prepare - create DIR, DIR/tmp, DIR/new, DIR/cur when missing */
static int maildir_prepare(const char *dir, struct deliver_result *res)
{
    static const char *sub[] = {"tmp", "new", "cur"};
    char path[PATH_MAX];
    if (mkdir_p(dir) < 0)
        return io_error(res, errno, "cannot create maildir", dir);
    for (int i = 0; i < 3; i++) {
        if (path_fmt(path, sizeof(path), "%s/%s", dir, sub[i]) < 0 ||
            (mkdir(path, 0700) < 0 && errno != EEXIST))
            return io_error(res, errno, "cannot create maildir", path);
    }
    return 0;
}

/* maildir_fail - remove the tmp file and report errno e */
static int maildir_fail(struct deliver_result *res, int e, const char *tmppath, const char *dir)
{
    unlink(tmppath);
    return io_error(res, e, "cannot write maildir file in", dir);
}

/* maildir_deliver - write the message into maildir/new */
int maildir_deliver(const char *maildir, const struct local_msg *msg, const char *prepend,
                    struct deliver_result *res)
{
    char dir[PATH_MAX], host[1024], tmppath[PATH_MAX], newdir[PATH_MAX], newpath[PATH_MAX];
    struct timeval tv;
    struct stat st;

    size_t dl = strlen(maildir);
    while (dl > 1 && maildir[dl - 1] == '/')
        dl--;
    if (dl >= PATH_MAX - 16)
        return io_error(res, ENAMETOOLONG, "bad maildir", maildir);
    memcpy(dir, maildir, dl);
    dir[dl] = '\0';
    if (maildir_prepare(dir, res) < 0)
        return -1;
    maildir_host(host, sizeof(host));
    gettimeofday(&tv, NULL);
    int fd = maildir_open_tmp(dir, &tv, host, tmppath, sizeof(tmppath));
    if (fd < 0)
        return io_error(res, errno, "cannot create file in", dir);
    if (maildir_copy(fd, msg, prepend) < 0 || fsync(fd) < 0 || fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        return maildir_fail(res, e, tmppath, dir);
    }
    if (close(fd) < 0)
        return maildir_fail(res, errno, tmppath, dir);
    if (path_fmt(newdir, sizeof(newdir), "%s/new", dir) < 0 ||
        path_fmt(newpath, sizeof(newpath), "%s/%lld.V%llxI%llxM%ld.%s,S=%lld", newdir,
                 (long long)tv.tv_sec, (unsigned long long)st.st_dev,
                 (unsigned long long)st.st_ino, (long)tv.tv_usec, host,
                 (long long)st.st_size) < 0 ||
        rename(tmppath, newpath) < 0)
        return maildir_fail(res, errno, tmppath, dir);
    if (fsync_dir(newdir) < 0) {
        int e = errno;
        unlink(newpath); /* not durable: let the retry deliver it instead of a duplicate */
        return io_error(res, e, "cannot sync", newdir);
    }
    set_result(res, DELIVER_OK, "2.0.0", "delivered to maildir");
    return 0;
}

/* ------------------------------------------------------------------- mbox */

/* mbox_writer - output buffer and the per-line state of the mboxrd filter */
struct mbox_writer {
    int fd;
    int err;            /* errno of the first write error */
    size_t olen;
    int in_headers;     /* before the first empty line of the message */
    int drop;           /* the current header (and its continuations) is dropped */
    int decided;        /* the current line's start has been classified */
    int skipping;       /* rest of the current line is dropped */
    int at_bol;         /* output ends with '\n' */
    size_t gt;          /* leading '>' characters of the current line, not yet output */
    size_t plen;
    char pre[LINE_PREFIX];
    char out[CHUNK];
};

/* mw_flush - write the buffered output */
static void mw_flush(struct mbox_writer *w)
{
    if (w->err == 0 && w->olen > 0 && write_all(w->fd, w->out, w->olen) < 0)
        w->err = errno;
    w->olen = 0;
}

/* mw_put - buffer output bytes */
static void mw_put(struct mbox_writer *w, const char *p, size_t n)
{
    if (n == 0)
        return;
    w->at_bol = p[n - 1] == '\n';
    while (n > 0) {
        if (w->olen == sizeof(w->out))
            mw_flush(w);
        size_t k = sizeof(w->out) - w->olen;
        if (k > n)
            k = n;
        memcpy(w->out + w->olen, p, k);
        w->olen += k;
        p += k;
        n -= k;
    }
}

/* dropped_header - header name (line start) is one mbox readers keep for themselves */
static int dropped_header(const char *p, size_t n)
{
    static const char *names[] = {"Status",  "X-Status", "X-Keywords",    "X-UID",
                                  "X-IMAP", "X-IMAPbase", "Content-Length"};
    size_t k = 0;
    while (k < n && p[k] != ':' && p[k] != ' ' && p[k] != '\t' && p[k] != '\n')
        k++;
    size_t name_len = k;
    while (k < n && (p[k] == ' ' || p[k] == '\t'))
        k++;
    if (k >= n || p[k] != ':')
        return 0;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strlen(names[i]) == name_len && strncasecmp(p, names[i], name_len) == 0)
            return 1;
    return 0;
}

/* mw_decide - classify the current line from its prefix and output the prefix */
static void mw_decide(struct mbox_writer *w)
{
    w->decided = 1;
    if (w->in_headers && w->gt == 0) {
        if (w->plen > 0 && w->pre[0] == '\n') {
            w->in_headers = 0; /* the empty line ending the header block */
        } else if (w->plen > 0 && (w->pre[0] == ' ' || w->pre[0] == '\t')) {
            /* a continuation keeps the fate of its header */
        } else {
            w->drop = dropped_header(w->pre, w->plen);
        }
        if (w->in_headers && w->drop) {
            w->skipping = 1;
            return;
        }
    } else if (w->in_headers) {
        w->drop = 0;
    }
    if (w->plen >= 5 && memcmp(w->pre, "From ", 5) == 0)
        mw_put(w, ">", 1);
    for (size_t i = 0; i < w->gt; i++)
        mw_put(w, ">", 1);
    mw_put(w, w->pre, w->plen);
}

/* mw_newline - reset the per-line state after '\n' */
static void mw_newline(struct mbox_writer *w)
{
    w->decided = w->skipping = 0;
    w->gt = w->plen = 0;
}

/* mw_feed - run message bytes through the mboxrd filter */
static void mw_feed(struct mbox_writer *w, const char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (w->decided) {
            const char *nl = memchr(p + i, '\n', n - i);
            size_t k = nl ? (size_t)(nl - (p + i)) + 1 : n - i;
            if (!w->skipping)
                mw_put(w, p + i, k);
            i += k;
            if (nl)
                mw_newline(w);
            continue;
        }
        char c = p[i++];
        if (c == '>' && w->plen == 0) {
            w->gt++;
            continue;
        }
        w->pre[w->plen++] = c;
        if (c == '\n' || w->plen == sizeof(w->pre)) {
            mw_decide(w);
            if (c == '\n')
                mw_newline(w);
        }
    }
}

/* mw_finish - flush a pending partial line; end with "\n" and one empty line */
static void mw_finish(struct mbox_writer *w)
{
    if (!w->decided && (w->plen > 0 || w->gt > 0))
        mw_decide(w);
    if (!w->at_bol)
        mw_put(w, "\n", 1);
    mw_put(w, "\n", 1);
    mw_flush(w);
}

/* from_line - "From SENDER  Www Mmm dd hh:mm:ss yyyy\n" (asctime layout, local time) */
static void from_line(char *out, size_t outsz, const char *sender, time_t when)
{
    static const char *wday[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    char s[1024];
    struct tm tm;
    size_t o = 0;
    if (sender == NULL || *sender == '\0')
        sender = "MAILER-DAEMON";
    /* white space or control bytes would break the From_ line: never emit them */
    for (const char *p = sender; *p && o + 1 < sizeof(s); p++)
        s[o++] = (isspace((unsigned char)*p) || iscntrl((unsigned char)*p)) ? '_' : *p;
    s[o] = '\0';
    localtime_r(&when, &tm);
    snprintf(out, outsz, "From %s  %s %s %2d %02d:%02d:%02d %d\n", s, wday[tm.tm_wday % 7],
             mon[tm.tm_mon % 12], tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             tm.tm_year + 1900);
}

/* mbox_fcntl_lock - F_SETLK retried for up to LOCK_WAIT seconds */
static int mbox_fcntl_lock(int fd, short type)
{
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    time_t deadline = time(NULL) + LOCK_WAIT;
    for (;;) {
        if (fcntl(fd, F_SETLK, &fl) == 0)
            return 0;
        if (errno != EACCES && errno != EAGAIN && errno != EINTR)
            return -1;
        if (type == F_UNLCK || time(NULL) >= deadline) {
            errno = EAGAIN;
            return -1;
        }
        usleep(100 * 1000);
    }
}

/* dotlock_take - create PATH.lock; 1 taken, 0 skipped (EACCES on the directory), -1 error */
static int dotlock_take(const char *lockpath)
{
    time_t deadline = time(NULL) + LOCK_WAIT;
    for (;;) {
        int fd = open(lockpath, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd >= 0) {
            char pid[32];
            int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
            if (write_all(fd, pid, (size_t)n) < 0 || close(fd) < 0) {
                int e = errno;
                unlink(lockpath);
                errno = e;
                return -1;
            }
            return 1;
        }
        if (errno == EACCES) {
            log_warn("cannot create dotlock %s, locking with fcntl() only", lockpath);
            return 0;
        }
        if (errno != EEXIST)
            return -1;
        struct stat st;
        if (lstat(lockpath, &st) == 0 && time(NULL) - st.st_mtime > DOTLOCK_STALE) {
            log_warnx("removing stale dotlock %s", lockpath);
            unlink(lockpath);
            continue;
        }
        if (time(NULL) >= deadline) {
            errno = EAGAIN;
            return -1;
        }
        usleep(200 * 1000);
    }
}

/* mbox_open - open the mailbox for appending; refuse symlinks, non-files and hard links */
static int mbox_open(const char *path, struct stat *st, struct deliver_result *res)
{
    /* O_NONBLOCK: never hang on a FIFO planted at PATH */
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC,
                  0600);
    if (fd < 0) {
        if (errno == ELOOP)
            set_result(res, DELIVER_TEMP, "4.2.0", "mailbox %s is a symbolic link", path);
        else
            io_error(res, errno, "cannot open mailbox", path);
        return -1;
    }
    const char *bad = NULL;
    if (fstat(fd, st) < 0) {
        io_error(res, errno, "cannot stat mailbox", path);
        close(fd);
        return -1;
    }
    if (!S_ISREG(st->st_mode))
        bad = "is not a regular file";
    else if (st->st_nlink > 1)
        bad = "has more than one hard link";
    if (bad) {
        set_result(res, DELIVER_TEMP, "4.2.0", "mailbox %s %s", path, bad);
        close(fd);
        return -1;
    }
    fcntl(fd, F_SETFL, O_WRONLY | O_APPEND);
    return fd;
}

/* mbox_append - write From_ line, prepend and filtered message; 0 or -1 with errno */
static int mbox_append(int fd, const struct local_msg *msg, const char *prepend)
{
    struct mbox_writer *w = xcalloc(1, sizeof(*w));
    char *buf = xmalloc(CHUNK), from[1200];
    int rc = 0;
    w->fd = fd;
    w->in_headers = 1;
    from_line(from, sizeof(from), msg->sender, msg->arrival);
    mw_put(w, from, strlen(from));
    mw_put(w, prepend, strlen(prepend));
    for (off_t pos = 0; pos < msg->body_len && w->err == 0;) {
        ssize_t r = read_chunk(msg, pos, buf);
        if (r < 0) {
            w->err = errno;
            break;
        }
        mw_feed(w, buf, (size_t)r);
        pos += r;
    }
    if (w->err == 0)
        mw_finish(w);
    if (w->err == 0 && fsync(fd) < 0)
        w->err = errno;
    if (w->err != 0) {
        errno = w->err;
        rc = -1;
    }
    free(buf);
    free(w);
    return rc;
}

/* mbox_deliver - append the message to an mbox file under fcntl and dot locks */
int mbox_deliver(const char *path, const struct local_msg *msg, const char *prepend,
                 struct deliver_result *res)
{
    struct stat st;
    char lockpath[PATH_MAX + 8];
    int dotlocked = 0, rc = -1;

    if (snprintf(lockpath, sizeof(lockpath), "%s.lock", path) >= (int)sizeof(lockpath))
        return io_error(res, ENAMETOOLONG, "bad mailbox name", path);
    int fd = mbox_open(path, &st, res);
    if (fd < 0)
        return -1;
    if (mbox_fcntl_lock(fd, F_WRLCK) < 0) {
        io_error(res, errno, "cannot lock mailbox", path);
        goto out;
    }
    dotlocked = dotlock_take(lockpath);
    if (dotlocked < 0) {
        io_error(res, errno, "cannot create dotlock for", path);
        goto unlock;
    }
    if (fstat(fd, &st) < 0) {
        io_error(res, errno, "cannot stat mailbox", path);
        goto unlock;
    }
    if (mbox_append(fd, msg, prepend) < 0) {
        int e = errno;
        if (ftruncate(fd, st.st_size) < 0)
            log_warn("cannot truncate %s back to %lld bytes", path, (long long)st.st_size);
        io_error(res, e, "cannot write mailbox", path);
        goto unlock;
    }
    set_result(res, DELIVER_OK, "2.0.0", "delivered to mailbox");
    rc = 0;
unlock:
    if (dotlocked > 0 && unlink(lockpath) < 0)
        log_warn("cannot remove %s", lockpath);
    mbox_fcntl_lock(fd, F_UNLCK);
out:
    close(fd);
    return rc;
}
