/* local_worker.c - the local delivery process: one message at a time, on request */
#include "local_worker.h"
#include "addr.h"
#include "aliases.h"
#include "local.h"
#include "log.h"
#include "queue.h"
#include "xmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct worker_out {
    FILE *fp;
    size_t idx;
};

/* put_xtext - write s as one xtext word */
static void put_xtext(FILE *fp, const char *s)
{
    char *x = queue_xtext_encode(s);
    fputs(x, fp);
    free(x);
}

static void forward_cb(void *arg, const char *address)
{
    struct worker_out *o = arg;
    fprintf(o->fp, "F %zu ", o->idx);
    put_xtext(o->fp, address);
    fputc('\n', o->fp);
}

/* deliver_one - deliver the listed recipients of one queued message */
static void deliver_one(const struct local_ctx *ctx, const char *qid, char *idxlist, FILE *out)
{
    char path[4200], err[256];
    queue_path(qid, path, sizeof(path));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct qenv env;
    int ok = fd >= 0 && queue_env_read(fd, &env, err, sizeof(err)) == 0;
    if (fd < 0)
        snprintf(err, sizeof(err), "%s", strerror(errno));
    off_t size = fd >= 0 ? lseek(fd, 0, SEEK_END) : 0;
    for (char *tok = strtok(idxlist, ","); tok; tok = strtok(NULL, ",")) {
        size_t idx = (size_t)strtoul(tok, NULL, 10);
        struct deliver_result res;
        memset(&res, 0, sizeof(res));
        if (!ok || idx >= env.nrcpt) {
            res.status = DELIVER_TEMP;
            snprintf(res.dsn, sizeof(res.dsn), "4.3.0");
            snprintf(res.text, sizeof(res.text), "cannot read queue file: %s", ok ? "bad index" : err);
        } else {
            struct local_msg msg = {.qid = qid, .sender = env.sender, .fd = fd,
                                    .body_off = env.data_off, .body_len = size - env.data_off,
                                    .arrival = env.arrival};
            struct worker_out o = {out, idx};
            local_deliver(ctx, &msg, env.rcpts[idx].addr, forward_cb, &o, &res);
        }
        fprintf(out, "R %zu %c %s ", idx,
                res.status == DELIVER_OK ? 'O' : res.status == DELIVER_TEMP ? 'T' : 'P',
                res.dsn[0] ? res.dsn : "4.0.0");
        put_xtext(out, res.text);
        fputc('\n', out);
    }
    if (ok)
        queue_env_free(&env);
    if (fd >= 0)
        close(fd);
    fprintf(out, "E %s\n", qid);
    fflush(out);
}

void local_worker_main(int fd, const struct config *cfg)
{
    log_set_program("local");
    signal(SIGPIPE, SIG_IGN);   /* a command that stops reading must not kill us */
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_IGN);
    signal(SIGINT, SIG_IGN);    /* Ctrl-C reaches the whole group: the master decides */
    char err[512] = "";
    struct alias_db *aliases = alias_load(cfg->alias_maps, err, sizeof(err));
    if (aliases == NULL && err[0])
        log_warnx("%s", err);
    struct local_ctx ctx = {.cfg = cfg, .aliases = aliases};
    FILE *in = fdopen(fd, "r");
    FILE *out = fdopen(dup(fd), "w");
    if (in == NULL || out == NULL)
        log_fatal("fdopen");
    char line[65536];
    while (fgets(line, sizeof(line), in) != NULL) {
        char qid[QID_LEN + 1];
        char *sp;
        line[strcspn(line, "\n")] = '\0';
        if (line[0] != 'D' || line[1] != ' ' || strlen(line) < 2 + QID_LEN + 2 ||
            line[2 + QID_LEN] != ' ') {
            log_warnx("bad request from master");
            continue;
        }
        memcpy(qid, line + 2, QID_LEN);
        qid[QID_LEN] = '\0';
        sp = line + 3 + QID_LEN;
        if (!queue_id_valid(qid))
            continue;
        deliver_one(&ctx, qid, sp, out);
    }
    _exit(0);
}
