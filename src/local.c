/* local.c - local recipients: extension stripping, alias expansion, mailboxes, commands
 *
 * A recipient's local part is looked up in the aliases (whole, then without
 * its +extension), then as a user; "postmaster" falls back to "root".  Alias
 * targets are expanded recursively (depth 20) with loop detection: an alias
 * met again in its own chain delivers to the user of that name if one exists.
 * Every final delivery gets "Return-Path:" and "Delivered-To:" prepended and
 * is refused (5.4.6) when the message already carries that Delivered-To.
 *
 * Privileges when tern runs as root: user mailboxes are written with the
 * user's fsuid/fsgid (real layout only; with mailbox_base set, mailboxes are
 * written as the current user).  Alias files and commands run as the owner
 * of the alias (or :include:) file that named them, or as default_privs when
 * that owner is root - with or without mailbox_base, so a command is never
 * run as root.  Not root: everything runs as the current user.
 *
 * SIGPIPE: commands are fed through a pipe while SIGPIPE is blocked in the
 * calling thread (pthread_sigmask); EPIPE just ends the feeding and any
 * SIGPIPE raised meanwhile is consumed before the mask is restored, so the
 * delivery worker's own SIGPIPE disposition is left alone.
 */
#include "local.h"
#include "buf.h"
#include "log.h"
#include "xmalloc.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#define ALIAS_DEPTH_MAX 20
#define USER_MAX 64
#define CMD_TIME_LIMIT 600        /* seconds a delivery command may run */
#define CMD_OUTPUT_MAX 512        /* bytes of command output kept for the result text */
#define INCLUDE_MAX (1024 * 1024) /* largest :include: file */
#define HEADER_SCAN_MAX (4 * 1024 * 1024) /* header bytes scanned for Delivered-To */

/* runas - the identity a file or command delivery runs as */
struct runas {
    uid_t uid;
    gid_t gid;
};

/* user_info - a resolved local user and their mailbox */
struct user_info {
    char name[USER_MAX + 1];
    int real;       /* from getpwnam(): deliver with the user's fsuid/fsgid when root */
    uid_t uid;
    gid_t gid;
    char mailbox[PATH_MAX];
};

/* xp - the state of one local_deliver() expansion */
struct xp {
    const struct local_ctx *ctx;
    const struct local_msg *msg;
    const char *rcpt;       /* the original recipient, as written */
    char *orig_base;        /* its local part without extension, lower-cased */
    char *orig_ext;         /* its extension with the delimiter ("+tag"), or "" */
    char *domain;           /* its domain, as written */
    const char *chain[ALIAS_DEPTH_MAX + 2]; /* aliases and includes being expanded */
    size_t depth;
    char **seen;            /* keys of deliveries done, to do each once */
    size_t nseen;
    char **dt;              /* Delivered-To: values already in the message */
    size_t ndt;
    int dt_loaded;
    local_forward_fn forward;
    void *forward_arg;
    struct deliver_result res;
    int have;               /* res holds at least one target's result */
};

static void resolve_local(struct xp *x, const char *lp, const char *ext);

/* set_result - fill a result */
static void set_result(struct deliver_result *r, enum deliver_status st, const char *dsn,
                       const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void set_result(struct deliver_result *r, enum deliver_status st, const char *dsn,
                       const char *fmt, ...)
{
    va_list ap;
    r->status = st;
    snprintf(r->dsn, sizeof(r->dsn), "%s", dsn);
    va_start(ap, fmt);
    vsnprintf(r->text, sizeof(r->text), fmt, ap);
    va_end(ap);
}

/* merge - keep the worst result (PERM > TEMP > OK) with its text */
static void merge(struct xp *x, const struct deliver_result *r)
{
    if (!x->have || r->status > x->res.status)
        x->res = *r;
    x->have = 1;
}

/* fail - merge a failure result */
static void fail(struct xp *x, enum deliver_status st, const char *dsn, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void fail(struct xp *x, enum deliver_status st, const char *dsn, const char *fmt, ...)
{
    struct deliver_result r;
    va_list ap;
    r.status = st;
    snprintf(r.dsn, sizeof(r.dsn), "%s", dsn);
    va_start(ap, fmt);
    vsnprintf(r.text, sizeof(r.text), fmt, ap);
    va_end(ap);
    merge(x, &r);
}

/* lower_dup - lower-cased copy */
static char *lower_dup(const char *s, size_t n)
{
    char *d = xstrndup(s, n);
    for (char *p = d; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return d;
}

/* ext_offset - where the extension of local part lp starts (its length if none) */
static size_t ext_offset(const struct config *cfg, const char *lp)
{
    if (cfg->recipient_delimiter[0] == '\0')
        return strlen(lp);
    size_t n = strcspn(lp, cfg->recipient_delimiter);
    return n == 0 ? strlen(lp) : n; /* "+foo" is a name, not an empty user */
}

/* local_is_mydestination - domain is one of mydestination */
int local_is_mydestination(const struct config *cfg, const char *domain)
{
    if (domain == NULL || *domain == '\0')
        return 0;
    return config_list_contains(cfg->mydestination, domain);
}

/* safe_user_name - [a-z0-9._-], not starting with '.', at most USER_MAX */
static int safe_user_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > USER_MAX || s[0] == '.')
        return 0;
    for (; *s; s++)
        if (!(islower((unsigned char)*s) || isdigit((unsigned char)*s) || *s == '.' ||
              *s == '_' || *s == '-'))
            return 0;
    return 1;
}

/* user_lookup - resolve a lower-cased user name to its mailbox; 0 if unknown */
static int user_lookup(const struct config *cfg, const char *name, struct user_info *u)
{
    int maildir = strcmp(cfg->mailbox_format, "maildir") == 0;
    memset(u, 0, sizeof(*u));
    if (cfg->mailbox_base[0] != '\0') {
        if (!safe_user_name(name))
            return 0;
        snprintf(u->name, sizeof(u->name), "%s", name);
        u->uid = geteuid();
        u->gid = getegid();
        snprintf(u->mailbox, sizeof(u->mailbox), "%s/%s%s", cfg->mailbox_base, name,
                 maildir ? "/" : "");
        return 1;
    }
    if (strlen(name) > USER_MAX || strchr(name, '/') != NULL || name[0] == '.' || !*name)
        return 0;
    struct passwd *pw = getpwnam(name);
    if (pw == NULL)
        return 0;
    snprintf(u->name, sizeof(u->name), "%s", name);
    u->real = 1;
    u->uid = pw->pw_uid;
    u->gid = pw->pw_gid;
    if (maildir)
        snprintf(u->mailbox, sizeof(u->mailbox), "%s/%s", pw->pw_dir,
                 cfg->home_mailbox[0] ? cfg->home_mailbox : "Maildir/");
    else
        snprintf(u->mailbox, sizeof(u->mailbox), "%s/%s", cfg->mail_spool_directory, name);
    return 1;
}

/* local_recipient_ok - alias, user or postmaster */
int local_recipient_ok(const struct local_ctx *ctx, const char *local)
{
    struct user_info u;
    if (local == NULL || *local == '\0')
        return 0;
    char *lp = lower_dup(local, strlen(local));
    char *base = xstrndup(lp, ext_offset(ctx->cfg, lp));
    int ok = alias_lookup(ctx->aliases, lp) != NULL || alias_lookup(ctx->aliases, base) != NULL ||
             user_lookup(ctx->cfg, base, &u) || strcmp(base, "postmaster") == 0;
    free(lp);
    free(base);
    return ok;
}

/* ------------------------------------------------------- message headers */

/* dt_add - remember one Delivered-To: value (logical header line, name included) */
static void dt_add(struct xp *x, const char *hdr, size_t n)
{
    if (n < 13 || strncasecmp(hdr, "Delivered-To:", 13) != 0)
        return;
    const char *s = hdr + 13, *e = hdr + n;
    while (s < e && (isspace((unsigned char)*s) || *s == '<'))
        s++;
    while (e > s && (isspace((unsigned char)e[-1]) || e[-1] == '>'))
        e--;
    x->dt = xrealloc(x->dt, (x->ndt + 1) * sizeof(*x->dt));
    x->dt[x->ndt++] = xstrndup(s, (size_t)(e - s));
}

/* dt_load - collect the Delivered-To: headers of the message's header block */
static void dt_load(struct xp *x)
{
    const struct local_msg *m = x->msg;
    char chunk[8192];
    struct buf hdr = BUF_INIT;
    int bol = 1, done = 0;
    x->dt_loaded = 1;
    for (off_t pos = 0; !done && pos < m->body_len && pos < HEADER_SCAN_MAX;) {
        size_t want = sizeof(chunk);
        if ((off_t)want > m->body_len - pos)
            want = (size_t)(m->body_len - pos);
        ssize_t r = pread(m->fd, chunk, want, m->body_off + pos);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        for (ssize_t i = 0; i < r && !done; i++) {
            char c = chunk[i];
            if (bol && c != ' ' && c != '\t') { /* a new header or the end of the block */
                dt_add(x, buf_str(&hdr), hdr.len);
                buf_reset(&hdr);
                done = c == '\n';
            }
            bol = c == '\n';
            if (c != '\n' && hdr.len < 4096)
                buf_putc(&hdr, c);
        }
        pos += r;
    }
    if (!done)
        dt_add(x, buf_str(&hdr), hdr.len);
    buf_free(&hdr);
}

/* loop_check - the message already went to addr: -1 after merging a 5.4.6 failure */
static int loop_check(struct xp *x, const char *addr)
{
    if (!x->dt_loaded)
        dt_load(x);
    for (size_t i = 0; i < x->ndt; i++) {
        if (strcasecmp(x->dt[i], addr) == 0) {
            fail(x, DELIVER_PERM, "5.4.6", "mail forwarding loop for %s", addr);
            return -1;
        }
    }
    return 0;
}

/* seen_once - 1 the first time key is seen in this expansion, then 0 */
static int seen_once(struct xp *x, const char *kind, const char *value)
{
    char *key = xasprintf("%s:%s", kind, value);
    for (size_t i = 0; i < x->nseen; i++) {
        if (strcmp(x->seen[i], key) == 0) {
            free(key);
            return 0;
        }
    }
    x->seen = xrealloc(x->seen, (x->nseen + 1) * sizeof(*x->seen));
    x->seen[x->nseen++] = key;
    return 1;
}

/* rcpt_address - the address a delivery for local name `name` is made to */
static char *rcpt_address(const struct xp *x, const char *name, const char *ext)
{
    if (strcmp(name, x->orig_base) == 0 && strcmp(ext, x->orig_ext) == 0)
        return xstrdup(x->rcpt);
    return xasprintf("%s%s@%s", name, ext, x->domain);
}

/* clean_header_value - a copy with CR, LF and other control bytes replaced by '?' */
static char *clean_header_value(const char *s)
{
    char *d = xstrdup(s);
    for (char *p = d; *p; p++)
        if (iscntrl((unsigned char)*p))
            *p = '?';
    return d;
}

/* make_prepend - "Return-Path: <SENDER>\nDelivered-To: RCPT\n" */
static char *make_prepend(const struct xp *x, const char *addr)
{
    char *s = clean_header_value(x->msg->sender), *a = clean_header_value(addr);
    char *p = xasprintf("Return-Path: <%s>\nDelivered-To: %s\n", s, a);
    free(s);
    free(a);
    return p;
}

/* ------------------------------------------------------------ privileges */

/* fs_enter - when root, switch the file-system ids to uid/gid; -1 if that failed */
static int fs_enter(uid_t uid, gid_t gid)
{
    if (geteuid() != 0)
        return 0;
    setfsgid(gid);
    setfsuid(uid);
    if ((uid_t)setfsuid((uid_t)-1) != uid || (gid_t)setfsgid((gid_t)-1) != gid) {
        setfsuid(0);
        setfsgid(0);
        return -1;
    }
    return 0;
}

/* fs_leave - back to root's file-system ids */
static void fs_leave(void)
{
    if (geteuid() != 0)
        return;
    setfsuid(0);
    setfsgid(0);
}

/* mail_gid - the "mail" group (owner group of mbox files), or fallback */
static gid_t mail_gid(gid_t fallback)
{
    struct group *g = getgrnam("mail");
    return g ? g->gr_gid : fallback;
}

/* runas_for - who runs files/commands named by a file owned by owner */
static int runas_for(struct xp *x, const struct runas *owner, struct runas *out)
{
    if (geteuid() != 0) {
        out->uid = geteuid();
        out->gid = getegid();
        return 0;
    }
    if (owner->uid != 0) {
        *out = *owner;
        return 0;
    }
    struct passwd *pw = getpwnam(x->ctx->cfg->default_privs);
    if (pw == NULL || pw->pw_uid == 0) {
        fail(x, DELIVER_TEMP, "4.3.0", "default_privs user \"%s\" %s",
             x->ctx->cfg->default_privs, pw ? "is root" : "does not exist");
        return -1;
    }
    out->uid = pw->pw_uid;
    out->gid = pw->pw_gid;
    return 0;
}

/* ---------------------------------------------------------- deliveries */

/* mbox_precreate - as root, create a missing spool mbox 0600 user:mail */
static void mbox_precreate(const struct user_info *u)
{
    int fd = open(u->mailbox, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return; /* exists, or mbox_deliver() reports the error */
    if (fchown(fd, u->uid, mail_gid(u->gid)) < 0)
        log_warn("cannot chown %s", u->mailbox);
    close(fd);
}

/* deliver_user - write a user's mailbox */
static void deliver_user(struct xp *x, const struct user_info *u, const char *ext)
{
    const struct config *cfg = x->ctx->cfg;
    int maildir = strcmp(cfg->mailbox_format, "maildir") == 0;
    struct deliver_result r;
    if (!seen_once(x, "mailbox", u->mailbox))
        return;
    char *addr = rcpt_address(x, u->name, ext);
    if (loop_check(x, addr) < 0) {
        free(addr);
        return;
    }
    char *prepend = make_prepend(x, addr);
    int as_user = u->real && geteuid() == 0;
    gid_t gid = u->gid;
    if (!u->real && !maildir && mkdir(cfg->mailbox_base, 0700) < 0 && errno != EEXIST)
        log_warn("cannot create mailbox_base %s", cfg->mailbox_base);
    if (as_user && !maildir) {
        mbox_precreate(u);
        gid = mail_gid(u->gid); /* the dotlock is made in the group-mail spool directory */
    }
    if (as_user && fs_enter(u->uid, gid) < 0)
        set_result(&r, DELIVER_TEMP, "4.3.0", "cannot switch to uid %ld", (long)u->uid);
    else if (maildir)
        maildir_deliver(u->mailbox, x->msg, prepend, &r);
    else
        mbox_deliver(u->mailbox, x->msg, prepend, &r);
    if (as_user)
        fs_leave();
    merge(x, &r);
    free(prepend);
    free(addr);
}

/* deliver_file - append to an mbox-format file named by an alias */
static void deliver_file(struct xp *x, const char *path, const char *name, const char *ext,
                         const struct runas *owner)
{
    struct runas ra;
    struct deliver_result r;
    if (!seen_once(x, "file", path) || runas_for(x, owner, &ra) < 0)
        return;
    char *addr = rcpt_address(x, name, ext);
    if (loop_check(x, addr) < 0) {
        free(addr);
        return;
    }
    char *prepend = make_prepend(x, addr);
    if (fs_enter(ra.uid, ra.gid) < 0)
        set_result(&r, DELIVER_TEMP, "4.3.0", "cannot switch to uid %ld", (long)ra.uid);
    else if (mbox_deliver(path, x->msg, prepend, &r) == 0)
        set_result(&r, DELIVER_OK, "2.0.0", "delivered to file: %s", path);
    fs_leave();
    merge(x, &r);
    free(prepend);
    free(addr);
}

/* cmd_env - the environment of a delivery command (envelope data only here) */
struct cmd_env {
    char *v[12];
};

/* cmd_env_build - PATH, SHELL, HOME, USER, LOGNAME, SENDER, RECIPIENT, ... */
static void cmd_env_build(struct cmd_env *e, const struct xp *x, const struct runas *ra,
                          const char *ext, const char *addr)
{
    struct passwd *pw = getpwuid(ra->uid);
    const char *home = pw ? pw->pw_dir : "/", *user = pw ? pw->pw_name : "";
    const char *at = strrchr(addr, '@');
    size_t lplen = at ? (size_t)(at - addr) : strlen(addr);
    int i = 0;
    e->v[i++] = xstrdup("PATH=/usr/bin:/bin");
    e->v[i++] = xstrdup("SHELL=/bin/sh");
    e->v[i++] = xasprintf("HOME=%s", home);
    e->v[i++] = xasprintf("USER=%s", user);
    e->v[i++] = xasprintf("LOGNAME=%s", user);
    e->v[i++] = xasprintf("SENDER=%s", x->msg->sender);
    e->v[i++] = xasprintf("RECIPIENT=%s", addr);
    e->v[i++] = xasprintf("LOCAL=%.*s", (int)lplen, addr);
    e->v[i++] = xasprintf("DOMAIN=%s", at ? at + 1 : "");
    e->v[i++] = xasprintf("EXTENSION=%s", ext[0] ? ext + 1 : "");
    e->v[i++] = xasprintf("ORIGINAL_RECIPIENT=%s", x->rcpt);
    e->v[i] = NULL;
}

/* cmd_env_free - release the environment strings */
static void cmd_env_free(struct cmd_env *e)
{
    for (int i = 0; e->v[i]; i++)
        free(e->v[i]);
}

/* cmd_child - in the forked child: plumbing, identity, exec /bin/sh -c command */
static _Noreturn void cmd_child(int in_fd, int out_fd, const char *command,
                                const struct runas *ra, char *const envp[])
{
    sigset_t none;
    sigemptyset(&none);
    for (int s = 1; s < NSIG; s++)
        if (s != SIGKILL && s != SIGSTOP)
            signal(s, SIG_DFL);
    sigprocmask(SIG_SETMASK, &none, NULL);
    setpgid(0, 0); /* so a timeout can kill the whole pipeline */
    /* move both ends above 2 first so neither dup2() can clobber the other */
    in_fd = fcntl(in_fd, F_DUPFD_CLOEXEC, 3);
    out_fd = fcntl(out_fd, F_DUPFD_CLOEXEC, 3);
    if (in_fd < 0 || out_fd < 0 || dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 ||
        dup2(out_fd, 2) < 0)
        _exit(EX_OSERR);
    if (close_range(3, ~0U, 0) < 0)
        for (int fd = 3; fd < 1024; fd++)
            close(fd);
    if (geteuid() == 0 &&
        (setgroups(1, &ra->gid) < 0 || setgid(ra->gid) < 0 || setuid(ra->uid) < 0))
        _exit(EX_OSERR);
    const char *home = NULL;
    for (int i = 0; envp[i]; i++)
        if (strncmp(envp[i], "HOME=", 5) == 0)
            home = envp[i] + 5;
    if (home == NULL || chdir(home) < 0)
        if (chdir("/") < 0)
            _exit(EX_OSERR);
    char *argv[] = {"sh", "-c", (char *)command, NULL};
    execve("/bin/sh", argv, envp);
    _exit(EX_OSERR);
}

/* cmd_feed - state of a running command: message in, output captured */
struct cmd_feed {
    int in_fd, out_fd;
    off_t pos;              /* bytes of prepend + message sent */
    off_t total;
    const char *prepend;
    size_t plen;
    const struct local_msg *msg;
    char out[CMD_OUTPUT_MAX + 1];
    size_t olen;
    char chunk[8192];
    size_t clen, coff;      /* unsent part of chunk */
};

/* feed_write - send the next piece of prepend + message; -1 when done feeding */
static int feed_write(struct cmd_feed *f)
{
    if (f->coff == f->clen) {
        f->coff = f->clen = 0;
        if (f->pos < (off_t)f->plen) {
            f->clen = f->plen - (size_t)f->pos;
            if (f->clen > sizeof(f->chunk))
                f->clen = sizeof(f->chunk);
            memcpy(f->chunk, f->prepend + f->pos, f->clen);
        } else if (f->pos < f->total) {
            off_t mpos = f->pos - (off_t)f->plen, left = f->msg->body_len - mpos;
            size_t want = left < (off_t)sizeof(f->chunk) ? (size_t)left : sizeof(f->chunk);
            ssize_t r = pread(f->msg->fd, f->chunk, want, f->msg->body_off + mpos);
            if (r < 0 && errno == EINTR)
                return 0;
            if (r <= 0)
                return -1;
            f->clen = (size_t)r;
        } else {
            return -1;
        }
    }
    ssize_t w = write(f->in_fd, f->chunk + f->coff, f->clen - f->coff);
    if (w < 0)
        return (errno == EAGAIN || errno == EINTR) ? 0 : -1; /* EPIPE: the command quit reading */
    f->coff += (size_t)w;
    f->pos += w;
    return 0;
}

/* feed_read - drain command output, keeping the first CMD_OUTPUT_MAX bytes; -1 at EOF */
static int feed_read(struct cmd_feed *f)
{
    char tmp[4096];
    ssize_t r = read(f->out_fd, tmp, sizeof(tmp));
    if (r < 0)
        return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
    if (r == 0)
        return -1;
    size_t k = (size_t)r;
    if (k > CMD_OUTPUT_MAX - f->olen)
        k = CMD_OUTPUT_MAX - f->olen;
    memcpy(f->out + f->olen, tmp, k);
    f->olen += k;
    return 0;
}

/* feed_loop - poll until the message is sent and the output closed, or the deadline */
static int feed_loop(struct cmd_feed *f, time_t deadline)
{
    while (f->in_fd >= 0 || f->out_fd >= 0) {
        struct pollfd p[2] = {{.fd = f->in_fd, .events = POLLOUT}, {.fd = f->out_fd, .events = POLLIN}};
        time_t now = time(NULL);
        if (now >= deadline)
            return -1;
        int n = poll(p, 2, (int)(deadline - now) * 1000);
        if (n < 0 && errno != EINTR)
            return -1;
        if (n <= 0)
            continue;
        if (f->in_fd >= 0 && (p[0].revents & (POLLOUT | POLLERR | POLLHUP)) && feed_write(f) < 0) {
            close(f->in_fd);
            f->in_fd = -1;
        }
        if (f->out_fd >= 0 && (p[1].revents & (POLLIN | POLLERR | POLLHUP)) && feed_read(f) < 0) {
            close(f->out_fd);
            f->out_fd = -1;
        }
    }
    return 0;
}

/* cmd_wait - reap the child by the deadline, killing its process group after it */
static int cmd_wait(pid_t pid, time_t deadline, int timed_out, int *status)
{
    long nap = 1000;
    while (!timed_out) {
        pid_t w = waitpid(pid, status, WNOHANG);
        if (w == pid)
            return 0;
        if (w < 0 && errno != EINTR)
            return -1;
        if (time(NULL) >= deadline)
            break;
        usleep((useconds_t)nap);
        if (nap < 100000)
            nap *= 2;
    }
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
    while (waitpid(pid, status, 0) < 0 && errno == EINTR)
        ;
    return 1;
}

/* cmd_status - map the command's wait status to a result (sysexits.h) */
static void cmd_status(struct deliver_result *r, int status, const char *command,
                       const char *out, size_t olen)
{
    char text[CMD_OUTPUT_MAX * 4 + 1];
    while (olen > 0 && isspace((unsigned char)out[olen - 1]))
        olen--;
    log_printable(text, sizeof(text), out, olen, 1);
    if (WIFSIGNALED(status)) {
        set_result(r, DELIVER_TEMP, "4.3.0", "command killed by signal %d: %s",
                   WTERMSIG(status), text);
        return;
    }
    int code = WEXITSTATUS(status);
    const char *dsn = NULL;
    switch (code) {
    case 0:
        set_result(r, DELIVER_OK, "2.0.0", "delivered to command: %s", command);
        return;
    case EX_NOUSER: dsn = "5.1.1"; break;
    case EX_NOHOST: dsn = "5.1.2"; break;
    case EX_UNAVAILABLE: dsn = "5.3.0"; break;
    case EX_DATAERR: dsn = "5.6.0"; break;
    case EX_NOPERM: dsn = "5.7.1"; break;
    default: break;
    }
    if (dsn)
        set_result(r, DELIVER_PERM, dsn, "command failed with status %d: %s", code, text);
    else
        set_result(r, DELIVER_TEMP, "4.3.0", "command failed with status %d: %s", code, text);
}

/* cmd_run - run command with the message on its stdin; fills r */
static void cmd_run(const struct xp *x, const char *command, const struct runas *ra,
                    const char *prepend, char *const envp[], struct deliver_result *r)
{
    int in[2], out[2], status = 0;
    if (pipe2(in, O_CLOEXEC) < 0) {
        set_result(r, DELIVER_TEMP, "4.3.0", "cannot create pipe: %s", strerror(errno));
        return;
    }
    if (pipe2(out, O_CLOEXEC) < 0) {
        set_result(r, DELIVER_TEMP, "4.3.0", "cannot create pipe: %s", strerror(errno));
        close(in[0]), close(in[1]);
        return;
    }
    pid_t pid = fork();
    if (pid == 0)
        cmd_child(in[0], out[1], command, ra, envp);
    close(in[0]);
    close(out[1]);
    if (pid < 0) {
        set_result(r, DELIVER_TEMP, "4.3.0", "cannot fork: %s", strerror(errno));
        close(in[1]), close(out[0]);
        return;
    }
    struct cmd_feed *f = xcalloc(1, sizeof(*f));
    f->in_fd = in[1];
    f->out_fd = out[0];
    f->prepend = prepend;
    f->plen = strlen(prepend);
    f->msg = x->msg;
    f->total = (off_t)f->plen + x->msg->body_len;
    fcntl(f->in_fd, F_SETFL, O_NONBLOCK);
    fcntl(f->out_fd, F_SETFL, O_NONBLOCK);

    sigset_t pipe_set, old;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    time_t deadline = time(NULL) + CMD_TIME_LIMIT;
    int timed_out = feed_loop(f, deadline) < 0;
    struct timespec zero = {0, 0};
    while (sigtimedwait(&pipe_set, NULL, &zero) > 0) /* consume a SIGPIPE we caused */
        ;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (f->in_fd >= 0)
        close(f->in_fd);
    if (f->out_fd >= 0)
        close(f->out_fd);

    int w = cmd_wait(pid, deadline, timed_out, &status);
    if (w < 0)
        set_result(r, DELIVER_TEMP, "4.3.0", "cannot wait for command: %s", strerror(errno));
    else if (w > 0)
        set_result(r, DELIVER_TEMP, "4.3.0", "command time limit (%ds) exceeded: %s",
                   CMD_TIME_LIMIT, command);
    else
        cmd_status(r, status, command, f->out, f->olen);
    free(f);
}

/* deliver_pipe - run an alias command with the message on stdin */
static void deliver_pipe(struct xp *x, const char *command, const char *name, const char *ext,
                         const struct runas *owner)
{
    struct runas ra;
    struct deliver_result r;
    struct cmd_env env;
    char key[64];
    if (runas_for(x, owner, &ra) < 0)
        return;
    snprintf(key, sizeof(key), "%ld", (long)ra.uid);
    char *k = xasprintf("%s:%s", key, command);
    int first = seen_once(x, "command", k);
    free(k);
    if (!first)
        return;
    char *addr = rcpt_address(x, name, ext);
    if (loop_check(x, addr) < 0) {
        free(addr);
        return;
    }
    char *prepend = make_prepend(x, addr);
    cmd_env_build(&env, x, &ra, ext, addr);
    cmd_run(x, command, &ra, prepend, env.v, &r);
    merge(x, &r);
    cmd_env_free(&env);
    free(prepend);
    free(addr);
}

/* ------------------------------------------------------------ expansion */

/* in_chain - name is being expanded already */
static int in_chain(const struct xp *x, const char *name)
{
    for (size_t i = 0; i < x->depth; i++)
        if (strcmp(x->chain[i], name) == 0)
            return 1;
    return 0;
}

/* push_chain - enter an alias or include; -1 (failure merged) past the depth limit */
static int push_chain(struct xp *x, const char *name)
{
    if (x->depth >= ALIAS_DEPTH_MAX) {
        fail(x, DELIVER_PERM, "5.4.6", "alias expansion too deep (more than %d levels) at \"%s\"",
             ALIAS_DEPTH_MAX, name);
        return -1;
    }
    x->chain[x->depth++] = name;
    return 0;
}

static void expand_targets(struct xp *x, const struct alias_target *t, size_t n,
                           const char *name, const char *ext, const struct runas *owner);

/* expand_include - read :include: file targets and expand them */
static void expand_include(struct xp *x, const char *path, const char *name, const char *ext)
{
    char key[PATH_MAX + 16], err[512];
    struct stat st;
    snprintf(key, sizeof(key), ":include:%s", path);
    if (in_chain(x, key)) {
        fail(x, DELIVER_PERM, "5.4.6", "mail forwarding loop: %s includes itself", path);
        return;
    }
    FILE *fp = fopen(path, "re");
    if (fp == NULL || fstat(fileno(fp), &st) < 0) {
        fail(x, DELIVER_TEMP, "4.3.0", "cannot read include file %s: %s", path, strerror(errno));
        if (fp)
            fclose(fp);
        return;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > INCLUDE_MAX) {
        fail(x, DELIVER_TEMP, "4.3.0", "include file %s is not a regular file of at most %d bytes",
             path, INCLUDE_MAX);
        fclose(fp);
        return;
    }
    struct buf all = BUF_INIT;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, fp)) >= 0) {
        char *s = line;
        while (isspace((unsigned char)*s))
            s++;
        if (*s == '#' || *s == '\0')
            continue;
        buf_puts(&all, s);
        buf_putc(&all, ',');
    }
    free(line);
    fclose(fp);
    struct alias_target *t = NULL;
    long n = alias_parse_targets(buf_str(&all), &t, err, sizeof(err));
    buf_free(&all);
    if (n < 0) {
        fail(x, DELIVER_TEMP, "4.3.0", "bad include file %s: %s", path, err);
        return;
    }
    struct runas owner = {st.st_uid, st.st_gid};
    if (push_chain(x, key) == 0) {
        expand_targets(x, t, (size_t)n, name, ext, &owner);
        x->depth--;
    }
    alias_targets_free(t, (size_t)n);
}

/* expand_address - an address target: local again, or forwarded */
static void expand_address(struct xp *x, const char *addr, const char *ext)
{
    const char *at = strrchr(addr, '@');
    if (at == NULL) {
        resolve_local(x, addr, ext);
        return;
    }
    if (at == addr || at[1] == '\0') {
        fail(x, DELIVER_PERM, "5.1.3", "bad address in alias: %s", addr);
        return;
    }
    if (local_is_mydestination(x->ctx->cfg, at + 1)) {
        char *lp = xstrndup(addr, (size_t)(at - addr));
        resolve_local(x, lp, ext);
        free(lp);
        return;
    }
    if (!seen_once(x, "forward", addr))
        return;
    if (x->forward)
        x->forward(x->forward_arg, addr);
    struct deliver_result r;
    set_result(&r, DELIVER_OK, "2.0.0", "forwarded to %s", addr);
    merge(x, &r);
}

/* expand_targets - deliver to every target of one alias (or include file) */
static void expand_targets(struct xp *x, const struct alias_target *t, size_t n,
                           const char *name, const char *ext, const struct runas *owner)
{
    for (size_t i = 0; i < n; i++) {
        switch (t[i].type) {
        case ALIAS_ADDR: expand_address(x, t[i].value, ext); break;
        case ALIAS_FILE: deliver_file(x, t[i].value, name, ext, owner); break;
        case ALIAS_PIPE: deliver_pipe(x, t[i].value, name, ext, owner); break;
        case ALIAS_INCLUDE: expand_include(x, t[i].value, name, ext); break;
        }
    }
}

/* deliver_named_user - deliver straight to user `name`, or fail as unknown */
static void deliver_named_user(struct xp *x, const char *name, const char *ext, int loop)
{
    struct user_info u;
    if (user_lookup(x->ctx->cfg, name, &u))
        deliver_user(x, &u, ext);
    else if (loop)
        fail(x, DELIVER_PERM, "5.4.6", "mail forwarding loop for %s", name);
    else
        fail(x, DELIVER_PERM, "5.1.1", "unknown user: \"%s\"", name);
}

/* resolve_local - a local part: alias (whole, then without extension), user, postmaster */
static void resolve_local(struct xp *x, const char *lp_in, const char *ext_in)
{
    int direct = lp_in[0] == '\\'; /* "\\user": the mailbox, no alias lookup */
    const char *written = lp_in + direct;
    char *lp = lower_dup(written, strlen(written));
    size_t eo = ext_offset(x->ctx->cfg, lp);
    char *base = xstrndup(lp, eo);
    char *ext = xstrdup(lp[eo] ? written + eo : ext_in); /* own extension, or inherited */
    const struct alias_entry *e = NULL;
    struct user_info u;
    if (!direct && (e = alias_lookup(x->ctx->aliases, lp)) == NULL && lp[eo] != '\0')
        e = alias_lookup(x->ctx->aliases, base);
    if (e != NULL && in_chain(x, e->name)) {
        char *ubase = xstrndup(e->name, ext_offset(x->ctx->cfg, e->name));
        deliver_named_user(x, ubase, ext, 1);
        free(ubase);
    } else if (e != NULL) {
        struct runas owner = {e->owner, e->group};
        if (push_chain(x, e->name) == 0) {
            expand_targets(x, e->targets, e->ntargets, base, ext, &owner);
            x->depth--;
        }
    } else if (user_lookup(x->ctx->cfg, base, &u)) {
        deliver_user(x, &u, ext);
    } else if (!direct && strcmp(base, "postmaster") == 0) {
        if (in_chain(x, "postmaster"))
            fail(x, DELIVER_PERM, "5.4.6", "mail forwarding loop for postmaster");
        else if (push_chain(x, "postmaster") == 0) { /* unaliased postmaster: as if to root */
            resolve_local(x, "root", ext);
            x->depth--;
        }
    } else {
        fail(x, DELIVER_PERM, "5.1.1", "unknown user: \"%s\"", base);
    }
    free(lp);
    free(base);
    free(ext);
}

/* xp_free - release the expansion state */
static void xp_free(struct xp *x)
{
    for (size_t i = 0; i < x->nseen; i++)
        free(x->seen[i]);
    for (size_t i = 0; i < x->ndt; i++)
        free(x->dt[i]);
    free(x->seen);
    free(x->dt);
    free(x->orig_base);
    free(x->orig_ext);
    free(x->domain);
}

/* local_deliver - deliver to one local recipient, expanding aliases */
void local_deliver(const struct local_ctx *ctx, const struct local_msg *msg, const char *rcpt,
                   local_forward_fn forward, void *forward_arg, struct deliver_result *res)
{
    struct xp x;
    memset(&x, 0, sizeof(x));
    x.ctx = ctx;
    x.msg = msg;
    x.rcpt = rcpt;
    x.forward = forward;
    x.forward_arg = forward_arg;
    const char *at = strrchr(rcpt, '@');
    size_t lplen = at ? (size_t)(at - rcpt) : strlen(rcpt);
    x.domain = xstrdup(at ? at + 1 : ctx->cfg->myhostname);
    char *lp = xstrndup(rcpt, lplen);
    char *lower = lower_dup(lp, lplen);
    size_t eo = ext_offset(ctx->cfg, lower);
    x.orig_base = xstrndup(lower, eo);
    x.orig_ext = xstrdup(lp + eo);
    if (lplen == 0)
        fail(&x, DELIVER_PERM, "5.1.3", "empty local part in \"%s\"", rcpt);
    else
        resolve_local(&x, lp, "");
    if (!x.have)
        fail(&x, DELIVER_PERM, "5.1.1", "alias for \"%s\" expanded to no recipients", lower);
    *res = x.res;
    free(lp);
    free(lower);
    xp_free(&x);
}
