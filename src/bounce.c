/* bounce.c - record permanent failures and queue the non-delivery report */
#include "bounce.h"
#include "addr.h"
#include "buf.h"
#include "config.h"
#include "dsn.h"
#include "log.h"
#include "queue.h"
#include "smtp_cmd.h"
#include "xmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct note {
    char status[16];
    char *reason;
};

static void note_path(const char *qid, char *out, size_t outsz)
{
    snprintf(out, outsz, "%s/bounce/%s", queue_dir(), qid);
}

int bounce_note(const char *qid, size_t idx, const char *status, const char *reason)
{
    char p[4200];
    snprintf(p, sizeof(p), "%s/bounce", queue_dir());
    if (mkdir(p, 0700) < 0 && errno != EEXIST)
        return -1;
    note_path(qid, p, sizeof(p));
    int fd = open(p, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    char *x = queue_xtext_encode(reason);
    char *line = xasprintf("%zu %s %s\n", idx, status, x[0] ? x : "-");
    int ok = write(fd, line, strlen(line)) == (ssize_t)strlen(line) && fdatasync(fd) == 0;
    free(line);
    free(x);
    close(fd);
    return ok ? 0 : -1;
}

/* read_notes - reasons by recipient index (missing ones stay empty) */
static void read_notes(const char *qid, struct note *notes, size_t n)
{
    char p[4200], line[4096];
    note_path(qid, p, sizeof(p));
    FILE *fp = fopen(p, "r");
    if (fp == NULL)
        return;
    while (fgets(line, sizeof(line), fp)) {
        size_t idx;
        char status[16], reason[4000];
        if (sscanf(line, "%zu %15s %3999s", &idx, status, reason) != 3 || idx >= n)
            continue;
        char *dec = queue_xtext_decode(reason, strlen(reason));
        if (dec == NULL)
            dec = xstrdup("delivery failed");
        snprintf(notes[idx].status, sizeof(notes[idx].status), "%s", status);
        free(notes[idx].reason);
        notes[idx].reason = dec;
    }
    fclose(fp);
}

int bounce_send(const struct config *cfg, const struct qenv *env, int fd, char *newid)
{
    newid[0] = '\0';
    if (env->sender[0] == '\0') {
        log_info("%s: not bouncing to the null sender", env->id);
        return 0;
    }
    struct note *notes = xcalloc(env->nrcpt, sizeof(*notes));
    struct dsn_rcpt *r = xcalloc(env->nrcpt, sizeof(*r));
    size_t n = 0;
    read_notes(env->id, notes, env->nrcpt);
    for (size_t i = 0; i < env->nrcpt; i++) {
        const struct qrcpt *q = &env->rcpts[i];
        if (q->state != RCPT_BOUNCE || (q->notify != 0 && !(q->notify & NOTIFY_FAILURE)))
            continue;
        r[n].final_rcpt = q->addr;
        r[n].orcpt_type = q->orcpt ? (q->orcpt_type[0] ? q->orcpt_type : "rfc822") : NULL;
        r[n].orcpt = q->orcpt;
        r[n].action = "failed";
        r[n].status = notes[i].status[0] ? notes[i].status : "5.0.0";
        r[n].diag = notes[i].reason;
        r[n].diag_type = "x-unix";
        n++;
    }
    int rc = 0;
    if (n > 0) {
        char from[300];
        snprintf(from, sizeof(from), "MAILER-DAEMON@%s", cfg->myhostname);
        struct dsn_msg m = {.reporting_mta = cfg->myhostname, .from = from, .to = env->sender,
                            .qid = env->id, .envid = env->envid, .arrival = env->arrival,
                            .now = time(NULL), .ret_hdrs = env->ret == RET_HDRS,
                            .smtputf8 = env->smtputf8};
        struct buf text = BUF_INIT;
        off_t size = lseek(fd, 0, SEEK_END);
        char *to[1] = {env->sender};
        rc = dsn_build(&m, r, n, fd, env->data_off, size - env->data_off, &text);
        if (rc == 0)
            rc = queue_inject("", to, 1, BODY_NONE, env->smtputf8, text.data, text.len, -1, 0, newid);
        if (rc == 0)
            log_info_as("bounce", "%s: sender non-delivery notification: %s", env->id, newid);
        buf_free(&text);
    }
    for (size_t i = 0; i < env->nrcpt; i++)
        free(notes[i].reason);
    free(notes);
    free(r);
    return rc;
}

void bounce_forget(const char *qid)
{
    char p[4200];
    note_path(qid, p, sizeof(p));
    unlink(p);
}
