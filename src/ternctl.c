/* ternctl.c - administration: list the queue (mailq), show a queued message,
 * set AUTH passwords */
#include "auth_db.h"
#include "config.h"
#include "queue_file.h"
#include "sasl.h"
#include "xmalloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CRYPT_HASH_MAX 512 /* >= CRYPT_OUTPUT_SIZE of <crypt.h> */
#define DEFAULT_CONF "/etc/tern/tern.conf"

static void usage(void)
{
    fprintf(stderr, "usage: ternctl [-c config] [-o name=value]... COMMAND\n"
                    "commands:\n"
                    "  mailq        list the queue (Postfix mailq format)\n"
                    "  show QID     print a queued message's envelope and text\n"
                    "  passwd USER [FILE]\n"
                    "               set USER's AUTH password in FILE (default:\n"
                    "               smtpd_sasl_password_file); the password is read\n"
                    "               from standard input, or asked twice on a terminal\n");
    exit(2);
}

static int qid_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* print_reason - the last delivery problem recorded for a message, if any */
static void print_reason(const char *dir, const char *qid, const char *addr)
{
    char p[4200], line[1024];
    snprintf(p, sizeof(p), "%s/defer/%s", dir, qid);
    FILE *fp = fopen(p, "r");
    if (fp == NULL)
        return;
    size_t al = strlen(addr);
    while (fgets(line, sizeof(line), fp)) {
        line[strcspn(line, "\n")] = '\0';
        if (strncmp(line, addr, al) == 0 && line[al] == ':')
            printf("%*s(%s)\n", 41, "", line + al + 2);
    }
    fclose(fp);
}

static int cmd_mailq(const struct config *cfg)
{
    char p[4200];
    snprintf(p, sizeof(p), "%s/msg", cfg->queue_directory);
    DIR *d = opendir(p);
    if (d == NULL) {
        fprintf(stderr, "ternctl: %s: %s\n", p, strerror(errno));
        return 1;
    }
    char **ids = NULL;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!queue_id_valid(de->d_name))
            continue;
        ids = xrealloc(ids, (n + 1) * sizeof(char *));
        ids[n++] = xstrdup(de->d_name);
    }
    closedir(d);
    if (n == 0) {
        printf("Mail queue is empty\n");
        free(ids);
        return 0;
    }
    qsort(ids, n, sizeof(char *), qid_cmp);
    printf("-Queue ID-   --Size-- ----Arrival Time---- -Sender/Recipient-------\n");
    long long total = 0;
    size_t shown = 0;
    for (size_t i = 0; i < n; i++) {
        char path[4200], err[256];
        snprintf(path, sizeof(path), "%s/msg/%s", cfg->queue_directory, ids[i]);
        int fd = open(path, O_RDONLY);
        struct qenv env;
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0 || queue_env_read(fd, &env, err, sizeof(err)) < 0) {
            if (fd >= 0)
                close(fd);
            free(ids[i]);
            continue; /* removed meanwhile, or being written */
        }
        close(fd);
        long long size = (long long)(st.st_size - env.data_off);
        char when[64];
        struct tm tm;
        localtime_r(&env.arrival, &tm);
        strftime(when, sizeof(when), "%a %b %e %H:%M:%S", &tm);
        printf("%-12s %8lld %s  %s\n", env.id, size, when,
               env.sender[0] ? env.sender : "MAILER-DAEMON");
        for (size_t r = 0; r < env.nrcpt; r++) {
            if (env.rcpts[r].state == RCPT_DONE)
                continue;
            print_reason(cfg->queue_directory, env.id, env.rcpts[r].addr);
            printf("%*s%s%s\n", 41, "", env.rcpts[r].addr,
                   env.rcpts[r].state == RCPT_BOUNCE ? " (failed, bounce pending)" : "");
        }
        printf("\n");
        total += size;
        shown++;
        queue_env_free(&env);
        free(ids[i]);
    }
    free(ids);
    printf("-- %lld Kbytes in %zu Request%s.\n", (total + 1023) / 1024, shown, shown == 1 ? "" : "s");
    return 0;
}

static int cmd_show(const struct config *cfg, const char *qid)
{
    if (!queue_id_valid(qid)) {
        fprintf(stderr, "ternctl: bad queue id\n");
        return 2;
    }
    char path[4200];
    snprintf(path, sizeof(path), "%s/msg/%s", cfg->queue_directory, qid);
    FILE *fp = fopen(path, "r");
    if (fp == NULL) {
        fprintf(stderr, "ternctl: %s: %s\n", qid, strerror(errno));
        return 1;
    }
    char buf[65536];
    size_t r;
    while ((r = fread(buf, 1, sizeof(buf), fp)) > 0)
        fwrite(buf, 1, r, stdout);
    fclose(fp);
    return 0;
}

/* user_problem - why USER cannot be a password file user name, or NULL */
static const char *user_problem(const char *user)
{
    if (user[0] == '\0')
        return "empty user name";
    if (strlen(user) > SASL_FIELD_MAX)
        return "user name too long";
    if (user[0] == '#')
        return "user name starts with '#'";
    for (const unsigned char *p = (const unsigned char *)user; *p; p++)
        if (*p <= 0x20 || *p == 0x7f || *p == ':')
            return "':', white space or control character in user name";
    return NULL;
}

/* password_problem - why pw (len bytes) cannot be an AUTH password, or NULL */
static const char *password_problem(const char *pw, size_t len)
{
    if (len == 0)
        return "empty password";
    if (memchr(pw, '\0', len) != NULL)
        return "NUL byte in password";
    if (len > SASL_FIELD_MAX)
        return "password longer than 255 bytes";
    return NULL;
}

/* read_stdin_password - the first line of standard input, newline stripped;
 * returns a heap copy or NULL (message printed) */
static char *read_stdin_password(void)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len = getline(&line, &cap, stdin);
    if (len < 0)
        len = 0;
    if (len > 0 && line[len - 1] == '\n')
        line[--len] = '\0';
    if (len > 0 && line[len - 1] == '\r')
        line[--len] = '\0';
    const char *why = password_problem(line != NULL ? line : "", (size_t)len);
    if (why != NULL) {
        fprintf(stderr, "ternctl: %s\n", why);
        if (line != NULL)
            explicit_bzero(line, cap);
        free(line);
        return NULL;
    }
    return line;
}

/* free_secret - wipe and free a password */
static void free_secret(char *s)
{
    if (s == NULL)
        return;
    explicit_bzero(s, strlen(s));
    free(s);
}

/* ask_password - prompt twice on the terminal; a heap copy or NULL (message printed) */
static char *ask_password(void)
{
    char *p1 = getpass("New password: ");
    char *first = xstrdup(p1 != NULL ? p1 : "");
    if (p1 != NULL)
        explicit_bzero(p1, strlen(p1));
    const char *why = password_problem(first, strlen(first));
    char *p2 = why == NULL ? getpass("Retype new password: ") : NULL;
    if (why == NULL && (p2 == NULL || strcmp(first, p2) != 0))
        why = "passwords do not match";
    if (p2 != NULL)
        explicit_bzero(p2, strlen(p2));
    if (why != NULL) {
        fprintf(stderr, "ternctl: %s\n", why);
        free_secret(first);
        return NULL;
    }
    return first;
}

/* copy_entries - copy in to out, every line for user replaced by one "user:hash"
 * line; returns 1 when user's line was found */
static int copy_entries(FILE *in, FILE *out, const char *user, const char *hash)
{
    char *line = NULL;
    size_t cap = 0, ul = strlen(user);
    ssize_t len;
    int found = 0;
    while ((len = getline(&line, &cap, in)) >= 0) {
        if (strncmp(line, user, ul) == 0 && line[ul] == ':') {
            if (!found)
                fprintf(out, "%s:%s\n", user, hash);
            found = 1; /* a later duplicate is dropped */
            continue;
        }
        fwrite(line, 1, (size_t)len, out);
        if (len > 0 && line[len - 1] != '\n')
            fputc('\n', out);
    }
    free(line);
    return found;
}

/* sync_dir - fsync the directory holding path, so a rename in it is durable */
static int sync_dir(const char *path)
{
    char *dir = xstrdup(path), *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = '\0';
    else if (slash != NULL)
        *slash = '\0';
    int fd = open(slash != NULL ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = fd >= 0 && fsync(fd) == 0 ? 0 : -1;
    if (fd >= 0)
        close(fd);
    free(dir);
    return rc;
}

/* open_tmp - create path.tmp mode 0640, owned like the file it replaces */
static FILE *open_tmp(const char *tmp, FILE *old)
{
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd < 0) {
        fprintf(stderr, "ternctl: %s: %s%s\n", tmp, strerror(errno),
                errno == EEXIST ? " (another ternctl passwd running? if not, remove it)" : "");
        return NULL;
    }
    struct stat st;
    int bad = fchmod(fd, 0640) < 0;
    if (!bad && old != NULL && fstat(fileno(old), &st) == 0 && fchown(fd, st.st_uid, st.st_gid) < 0)
        bad = geteuid() == 0; /* others may only keep their own group: fine */
    FILE *fp = bad ? NULL : fdopen(fd, "w");
    if (fp == NULL) {
        fprintf(stderr, "ternctl: %s: %s\n", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
    }
    return fp;
}

/* write_entries - write the new file to tmp and close it; 0 or -1 (message printed) */
static int write_entries(FILE *out, FILE *old, const char *tmp, const char *user,
                         const char *hash)
{
    if (old == NULL || !copy_entries(old, out, user, hash))
        fprintf(out, "%s:%s\n", user, hash);
    int bad = (old != NULL && ferror(old)) || fflush(out) != 0 || fsync(fileno(out)) != 0;
    int e = errno;
    if (fclose(out) != 0 && !bad) {
        bad = 1;
        e = errno;
    }
    if (bad)
        fprintf(stderr, "ternctl: %s: %s\n", tmp, strerror(e));
    return bad ? -1 : 0;
}

/* replace_entry - rewrite path atomically with user's line set to user:hash */
static int replace_entry(const char *path, const char *user, const char *hash)
{
    FILE *old = fopen(path, "re");
    if (old == NULL && errno != ENOENT) {
        fprintf(stderr, "ternctl: %s: %s\n", path, strerror(errno));
        return 1;
    }
    char *tmp = xasprintf("%s.tmp", path);
    FILE *out = open_tmp(tmp, old);
    int rc = out != NULL && write_entries(out, old, tmp, user, hash) == 0 ? 0 : 1;
    if (old != NULL)
        fclose(old);
    if (rc == 0 && rename(tmp, path) < 0) {
        fprintf(stderr, "ternctl: rename %s: %s\n", tmp, strerror(errno));
        rc = 1;
    }
    if (rc != 0 && out != NULL)
        unlink(tmp);
    if (rc == 0 && sync_dir(path) < 0)
        fprintf(stderr, "ternctl: warning: fsync of the directory of %s: %s\n", path,
                strerror(errno));
    free(tmp);
    return rc;
}

/* check_file - load the rewritten file as ternd will, and warn about problems */
static void check_file(const char *path)
{
    char err[1024];
    struct auth_db *db = auth_db_load(path, err, sizeof(err));
    if (db == NULL)
        fprintf(stderr, "ternctl: warning: ternd will refuse the file: %s\n", err);
    auth_db_free(db);
}

/* cmd_passwd - set user's password in file (or smtpd_sasl_password_file) */
static int cmd_passwd(const struct config *cfg, const char *user, const char *file)
{
    if (file == NULL)
        file = cfg->smtpd_sasl_password_file;
    if (file == NULL || file[0] == '\0') {
        fprintf(stderr, "ternctl: passwd: no FILE given and smtpd_sasl_password_file is empty\n");
        return 2;
    }
    const char *why = user_problem(user);
    if (why != NULL) {
        fprintf(stderr, "ternctl: passwd: %s\n", why);
        return 2;
    }
    char *pw = isatty(STDIN_FILENO) ? ask_password() : read_stdin_password();
    if (pw == NULL)
        return 1;
    char hash[CRYPT_HASH_MAX];
    int rc = auth_hash_password(pw, NULL, hash, sizeof(hash));
    free_secret(pw);
    if (rc < 0) {
        fprintf(stderr, "ternctl: passwd: cannot hash the password\n");
        return 1;
    }
    rc = replace_entry(file, user, hash);
    if (rc == 0) {
        printf("ternctl: password of %s set in %s\n", user, file);
        check_file(file);
    }
    return rc;
}

int main(int argc, char **argv)
{
    const char *conf = DEFAULT_CONF;
    int conf_given = 0;
    char **ov = xcalloc((size_t)argc + 1, sizeof(char *));
    int nov = 0, opt;
    while ((opt = getopt(argc, argv, "c:o:")) != -1) {
        if (opt == 'c') {
            conf = optarg;
            conf_given = 1;
        } else if (opt == 'o') {
            ov[nov++] = optarg;
        } else {
            usage();
        }
    }
    if (optind >= argc)
        usage();
    if (!conf_given && access(conf, F_OK) < 0 && errno == ENOENT)
        conf = NULL; /* no default configuration file: defaults only */
    char err[1024];
    struct config *cfg = config_load(conf, ov, nov, err, sizeof(err));
    if (cfg == NULL) {
        fprintf(stderr, "ternctl: %s\n", err);
        return 2;
    }
    int rc = 2;
    if (strcmp(argv[optind], "mailq") == 0)
        rc = cmd_mailq(cfg);
    else if (strcmp(argv[optind], "show") == 0 && optind + 1 < argc)
        rc = cmd_show(cfg, argv[optind + 1]);
    else if (strcmp(argv[optind], "passwd") == 0 && optind + 1 < argc && optind + 3 >= argc)
        rc = cmd_passwd(cfg, argv[optind + 1], optind + 2 < argc ? argv[optind + 2] : NULL);
    else
        usage();
    config_free(cfg);
    free(ov);
    return rc;
}
