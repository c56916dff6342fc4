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
    char *mta;
    char *diag;
};

static void note_path(const char *qid, char *out, size_t outsz)
{
    snprintf(out, outsz, "%s/bounce/%s", queue_dir(), qid);
}

/* xword - s as one xtext word, "-" for NULL or empty */
static char *xword(const char *s)
{
    if (s == NULL || s[0] == '\0')
        return xstrdup("-");
    return queue_xtext_encode(s);
}

int bounce_note(const char *qid, size_t idx, const char *status, const char *reason,
                const char *remote_mta, const char *diag)
{
    char p[4200];
    snprintf(p, sizeof(p), "%s/bounce", queue_dir());
    if (mkdir(p, 0700) < 0 && errno != EEXIST)
        return -1;
    note_path(qid, p, sizeof(p));
    int fd = open(p, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    char *x = xword(reason), *m = xword(remote_mta), *d = xword(diag);
    char *line = xasprintf("%zu %s %s %s %s\n", idx, status, x, m, d);
    int ok = write(fd, line, strlen(line)) == (ssize_t)strlen(line) && fdatasync(fd) == 0;
    free(line);
    free(x);
    free(m);
    free(d);
    close(fd);
    return ok ? 0 : -1;
}

/* read_notes - reasons by recipient index (missing ones stay empty) */
static void read_notes(const char *qid, struct note *notes, size_t n)
{
    char p[4200], line[12000];
    note_path(qid, p, sizeof(p));
    FILE *fp = fopen(p, "r");
    if (fp == NULL)
        return;
    while (fgets(line, sizeof(line), fp)) {
        size_t idx;
        char status[16], reason[4000], mta[1000] = "-", diag[4000] = "-";
        if (sscanf(line, "%zu %15s %3999s %999s %3999s", &idx, status, reason, mta, diag) < 3 ||
            idx >= n)
            continue;
        struct note *nt = &notes[idx];
        free(nt->reason);
        free(nt->mta);
        free(nt->diag);
        nt->reason = strcmp(reason, "-") ? queue_xtext_decode(reason, strlen(reason)) : NULL;
        if (nt->reason == NULL)
            nt->reason = xstrdup("delivery failed");
        nt->mta = strcmp(mta, "-") ? queue_xtext_decode(mta, strlen(mta)) : NULL;
        nt->diag = strcmp(diag, "-") ? queue_xtext_decode(diag, strlen(diag)) : NULL;
        snprintf(nt->status, sizeof(nt->status), "%s", status);
    }
    fclose(fp);
}

int bounce_report(const struct config *cfg, const struct qenv *env, int fd, const struct dsn_rcpt *r,
                  size_t n, int ret_hdrs, char *newid)
{
    newid[0] = '\0';
    if (env->sender[0] == '\0' || n == 0)
        return 0;
    char from[300];
    snprintf(from, sizeof(from), "MAILER-DAEMON@%s", cfg->myhostname);
    struct dsn_msg m = {.reporting_mta = cfg->myhostname, .from = from, .to = env->sender,
                        .qid = env->id, .envid = env->envid, .arrival = env->arrival,
                        .now = time(NULL), .ret_hdrs = ret_hdrs, .smtputf8 = env->smtputf8};
    struct buf text = BUF_INIT;
    off_t size = lseek(fd, 0, SEEK_END);
    char *to[1] = {env->sender};
    int rc = dsn_build(&m, r, n, fd, env->data_off, size - env->data_off, &text);
    if (rc == 0)
        rc = queue_inject("", to, 1, BODY_NONE, env->smtputf8, text.data, text.len, -1, 0, newid);
    buf_free(&text);
    return rc;
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
        r[n].remote_mta = notes[i].mta;
        r[n].diag = notes[i].diag ? notes[i].diag : notes[i].reason;
        r[n].diag_type = notes[i].diag ? "smtp" : "x-unix";
        n++;
    }
    int rc = bounce_report(cfg, env, fd, r, n, env->ret == RET_HDRS, newid);
    if (rc == 0 && newid[0])
        log_info_as("bounce", "%s: sender non-delivery notification: %s", env->id, newid);
    for (size_t i = 0; i < env->nrcpt; i++) {
        free(notes[i].reason);
        free(notes[i].mta);
        free(notes[i].diag);
    }
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
