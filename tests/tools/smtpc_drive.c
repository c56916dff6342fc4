/* smtpc_drive.c - run one smtpc delivery from the command line (for tests/e2e/test_smtpc.py)
 *
 * smtpc_drive --host 127.0.0.1 --port N [--lmtp] [--tls none|may|encrypt|verify|wrapper]
 *   [--ca FILE] [--name HOST] [--helo NAME] [--auth USER:PASS] [--from ADDR]
 *   [--to ADDR[,NOTIFY[,ORCPT]]]... [--8bit] [--smtputf8] [--envid X] [--ret full|hdrs]
 *   [--timeout-scale N] [-v] FILE
 * NOTIFY: NEVER or SUCCESS+FAILURE+DELAY (any of them); ORCPT: "type;addr" or "addr" (rfc822).
 * Prints "status=<n> reply=<text>", one "rcpt=<addr> code=<n> esc=<x> text=<t>" per recipient,
 * then "tls=<info>"; exits 0 (2 on usage errors).
 */
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "smtp_cmd.h"
#include "smtpc.h"
#include "xmalloc.h"

/* usage - complain and exit 2 */
static void usage(const char *why)
{
    fprintf(stderr, "smtpc_drive: %s\n", why);
    exit(2);
}

/* parse_notify - "NEVER" or names joined by '+' */
static int parse_notify(const char *s)
{
    int bits = 0;
    char *dup = xstrdup(s), *save = NULL;
    for (char *w = strtok_r(dup, "+", &save); w; w = strtok_r(NULL, "+", &save)) {
        if (!strcasecmp(w, "NEVER"))
            bits |= NOTIFY_NEVER;
        else if (!strcasecmp(w, "SUCCESS"))
            bits |= NOTIFY_SUCCESS;
        else if (!strcasecmp(w, "FAILURE"))
            bits |= NOTIFY_FAILURE;
        else if (!strcasecmp(w, "DELAY"))
            bits |= NOTIFY_DELAY;
        else
            usage("bad NOTIFY");
    }
    free(dup);
    return bits;
}

/* parse_rcpt - "ADDR[,NOTIFY[,ORCPT]]" */
static void parse_rcpt(struct smtpc_rcpt *r, const char *arg)
{
    char *s = xstrdup(arg); /* kept for the life of the program */
    memset(r, 0, sizeof(*r));
    char *notify = strchr(s, ',');
    if (notify) {
        *notify++ = '\0';
        char *orcpt = strchr(notify, ',');
        if (orcpt) {
            *orcpt++ = '\0';
            char *semi = strchr(orcpt, ';');
            if (semi) {
                *semi = '\0';
                r->orcpt_type = orcpt;
                r->orcpt = semi + 1;
            } else {
                r->orcpt_type = "rfc822";
                r->orcpt = orcpt;
            }
        }
        if (*notify)
            r->notify = parse_notify(notify);
    }
    r->addr = s;
}

/* on_done - print the outcome and stop the loop */
static void on_done(void *arg, struct smtpc_job *job)
{
    struct event_base *base = arg;
    printf("status=%d reply=%s\n", job->status, job->reply);
    for (size_t i = 0; i < job->nrcpt; i++)
        printf("rcpt=%s code=%d esc=%s text=%s\n", job->rcpts[i].addr, job->rcpts[i].code,
               job->rcpts[i].esc, job->rcpts[i].text);
    printf("tls=%s\n", job->tls_info);
    fflush(stdout);
    event_base_loopexit(base, NULL);
}

/* main - parse arguments, run one delivery */
int main(int argc, char **argv)
{
    static const char *const tls_names[] = {"none", "may", "encrypt", "verify", "wrapper"};
    struct smtpc_job job;
    const char *host = "127.0.0.1", *port = NULL, *name = NULL, *file = NULL;
    char *auth = NULL;
    struct smtpc_rcpt *rcpts = xcalloc((size_t)argc, sizeof(*rcpts));

    memset(&job, 0, sizeof(job));
    job.sender = "";
    job.helo_name = "client.tern.test";
    job.timeout_scale = 1;
    log_init("smtpc_drive", NULL);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
#define ARG() (more ? argv[++i] : (usage("missing value"), ""))
        if (!strcmp(a, "--host"))
            host = ARG();
        else if (!strcmp(a, "--port"))
            port = ARG();
        else if (!strcmp(a, "--lmtp"))
            job.lmtp = 1;
        else if (!strcmp(a, "--tls")) {
            const char *t = ARG();
            size_t k = 0;
            while (k < 5 && strcmp(t, tls_names[k]))
                k++;
            if (k == 5)
                usage("bad --tls");
            job.tls = (enum smtpc_tls)k;
        } else if (!strcmp(a, "--ca"))
            job.ca_file = ARG();
        else if (!strcmp(a, "--name"))
            name = ARG();
        else if (!strcmp(a, "--helo"))
            job.helo_name = ARG();
        else if (!strcmp(a, "--auth"))
            auth = xstrdup(ARG());
        else if (!strcmp(a, "--from"))
            job.sender = ARG();
        else if (!strcmp(a, "--to"))
            parse_rcpt(&rcpts[job.nrcpt++], ARG());
        else if (!strcmp(a, "--8bit"))
            job.body_8bit = 1;
        else if (!strcmp(a, "--smtputf8"))
            job.smtputf8 = 1;
        else if (!strcmp(a, "--envid"))
            job.envid = ARG();
        else if (!strcmp(a, "--ret")) {
            const char *r = ARG();
            job.ret = !strcasecmp(r, "full") ? RET_FULL : !strcasecmp(r, "hdrs") ? RET_HDRS : RET_NONE;
        } else if (!strcmp(a, "--timeout-scale"))
            job.timeout_scale = atoi(ARG());
        else if (!strcmp(a, "-v"))
            log_verbose = 1;
        else if (a[0] == '-')
            usage("unknown option");
        else
            file = a;
#undef ARG
    }
    if (!port || !file)
        usage("--port and FILE are required");
    if (auth) {
        char *colon = strchr(auth, ':');
        if (!colon)
            usage("--auth USER:PASS");
        *colon = '\0';
        job.auth_user = auth;
        job.auth_pass = colon + 1;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV}, *ai;
    if (getaddrinfo(host, port, &hints, &ai) != 0)
        usage("bad --host/--port");
    memcpy(&job.addr, ai->ai_addr, ai->ai_addrlen);
    job.addrlen = ai->ai_addrlen;
    freeaddrinfo(ai);
    snprintf(job.host, sizeof(job.host), "%s", name ? name : host);
    job.rcpts = rcpts;
    job.fd = open(file, O_RDONLY);
    struct stat st;
    if (job.fd < 0 || fstat(job.fd, &st) < 0)
        usage("cannot open FILE");
    job.len = st.st_size;

    struct event_base *base = event_base_new();
    smtpc_start(base, &job, on_done, base);
    event_base_dispatch(base);
    event_base_free(base);
    close(job.fd);
    for (size_t i = 0; i < job.nrcpt; i++)
        free((char *)rcpts[i].addr);
    free(rcpts);
    free(auth);
    return 0;
}
