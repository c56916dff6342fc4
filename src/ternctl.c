/* ternctl.c - administration: list the queue (mailq), show a queued message */
#include "config.h"
#include "queue_file.h"
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

static void usage(void)
{
    fprintf(stderr, "usage: ternctl [-c config] [-o name=value]... COMMAND\n"
                    "commands:\n"
                    "  mailq        list the queue (Postfix mailq format)\n"
                    "  show QID     print a queued message's envelope and text\n");
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

int main(int argc, char **argv)
{
    const char *conf = "/etc/tern/tern.conf";
    char **ov = xcalloc((size_t)argc + 1, sizeof(char *));
    int nov = 0, opt;
    while ((opt = getopt(argc, argv, "c:o:")) != -1) {
        if (opt == 'c')
            conf = optarg;
        else if (opt == 'o')
            ov[nov++] = optarg;
        else
            usage();
    }
    if (optind >= argc)
        usage();
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
    else
        usage();
    config_free(cfg);
    free(ov);
    return rc;
}
