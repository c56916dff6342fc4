/* smtpc_drive.c - run smtpc deliveries from the command line (for tests/e2e/test_smtpc.py)
 *
 * smtpc_drive (--port N [--host 127.0.0.1] | --unix PATH) [--lmtp]
 *   [--tls none|may|encrypt|verify|wrapper] [--ca FILE] [--name HOST] [--helo NAME]
 *   [--auth USER:PASS] [--from ADDR] [--to ADDR[,NOTIFY[,ORCPT]]]... [--8bit] [--smtputf8]
 *   [--envid X] [--ret full|hdrs] [--timeout-scale N]
 *   [--messages N] [--reuse] [--pause MS] [--at-end release|cancel] [-v] FILE
 * NOTIFY: NEVER or SUCCESS+FAILURE+DELAY (any of them); ORCPT: "type;addr" or "addr" (rfc822).
 * --unix: connect to an AF_UNIX socket (host name "localhost" unless --name).
 * --messages N: send the message N times with job.reuse set (--reuse sets it for one message):
 *   each next one with smtpc_next on the idle connection, after --pause MS milliseconds (default
 *   0: from inside done()).  When smtpc_next returns -1 the driver prints "next=-1" and makes a
 *   fresh connection with smtpc_start, as it does when the previous connection was not kept.
 *   The last idle connection is given to smtpc_release (or smtpc_cancel with --at-end cancel,
 *   as at shutdown: the event base is freed right after).
 * Prints per message "status=<n> reply=<text>", one "rcpt=<addr> code=<n> esc=<x> text=<t>" per
 * recipient, "tls=<info>", then "session_failed=<0|1> peer_dsn=<0|1> reusable=<0|1>
 * times=<ok|bad> peer_addr=<relay>"; exits 0 (2 on usage errors).
 */
#include <fcntl.h>
#include <netdb.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/un.h>
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

/* the run: one job sent `left` more times */
struct drive {
    struct event_base *base;
    struct smtpc_job *job;
    struct smtpc_conn *conn;   /* while a transaction runs or the connection is idle */
    int left;
    long pause_ms;
    int cancel_at_end;
    struct event *pause_ev;
};

static void on_done(void *arg, struct smtpc_job *job);

/* send_next - the next message: on the idle connection if there is one, else a fresh one */
static void send_next(struct drive *d)
{
    if (d->conn) {
        if (smtpc_next(d->conn, d->job, on_done, d) == 0)
            return;
        printf("next=-1\n");
        fflush(stdout);
    }
    d->conn = smtpc_start(d->base, d->job, on_done, d);
}

/* pause_cb - the pause between two messages is over */
static void pause_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    send_next(arg);
}

/* on_done - print the outcome; then the next message, or give up the connection */
static void on_done(void *arg, struct smtpc_job *job)
{
    struct drive *d = arg;
    int times_ok = job->t_begin > 1e9 && job->t_begin <= job->t_ready && job->t_ready <= job->t_end;
    if (!job->reusable)
        d->conn = NULL; /* freed by smtpc */
    printf("status=%d reply=%s\n", job->status, job->reply);
    for (size_t i = 0; i < job->nrcpt; i++)
        printf("rcpt=%s code=%d esc=%s text=%s\n", job->rcpts[i].addr, job->rcpts[i].code,
               job->rcpts[i].esc, job->rcpts[i].text);
    printf("tls=%s\n", job->tls_info);
    printf("session_failed=%d peer_dsn=%d reusable=%d times=%s peer_addr=%s\n", job->session_failed,
           job->peer_dsn, job->reusable, times_ok ? "ok" : "bad", job->peer_addr);
    fflush(stdout);
    if (d->left > 0) {
        d->left--;
        if (d->pause_ms > 0) {
            struct timeval tv = {d->pause_ms / 1000, (d->pause_ms % 1000) * 1000};
            evtimer_add(d->pause_ev, &tv);
        } else {
            send_next(d);
        }
        return;
    }
    if (d->conn && d->cancel_at_end) {
        smtpc_cancel(d->conn);
        event_base_loopexit(d->base, NULL);
    } else if (d->conn) {
        smtpc_release(d->conn); /* the loop runs until its QUIT is over */
    }
    d->conn = NULL;
}

/* main - parse arguments, run one delivery */
int main(int argc, char **argv)
{
    static const char *const tls_names[] = {"none", "may", "encrypt", "verify", "wrapper"};
    struct smtpc_job job;
    const char *host = "127.0.0.1", *port = NULL, *name = NULL, *file = NULL, *unix_path = NULL;
    char *auth = NULL;
    struct drive d = {0};
    int messages = 1;
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
        else if (!strcmp(a, "--unix"))
            unix_path = ARG();
        else if (!strcmp(a, "--messages"))
            messages = atoi(ARG());
        else if (!strcmp(a, "--reuse"))
            job.reuse = 1;
        else if (!strcmp(a, "--pause"))
            d.pause_ms = atol(ARG());
        else if (!strcmp(a, "--at-end")) {
            const char *e = ARG();
            if (strcmp(e, "release") && strcmp(e, "cancel"))
                usage("bad --at-end");
            d.cancel_at_end = !strcmp(e, "cancel");
        }
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
    if ((!port && !unix_path) || !file)
        usage("--port (or --unix) and FILE are required");
    if (messages < 1)
        usage("bad --messages");
    if (messages > 1)
        job.reuse = 1;
    if (auth) {
        char *colon = strchr(auth, ':');
        if (!colon)
            usage("--auth USER:PASS");
        *colon = '\0';
        job.auth_user = auth;
        job.auth_pass = colon + 1;
    }
    if (unix_path) {
        struct sockaddr_un *un = (struct sockaddr_un *)&job.addr;
        if (strlen(unix_path) >= sizeof(un->sun_path))
            usage("--unix path too long");
        un->sun_family = AF_UNIX;
        memcpy(un->sun_path, unix_path, strlen(unix_path) + 1);
        job.addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(unix_path) + 1);
        snprintf(job.host, sizeof(job.host), "%s", name ? name : "localhost");
    } else {
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                                 .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV}, *ai;
        if (getaddrinfo(host, port, &hints, &ai) != 0)
            usage("bad --host/--port");
        memcpy(&job.addr, ai->ai_addr, ai->ai_addrlen);
        job.addrlen = ai->ai_addrlen;
        freeaddrinfo(ai);
        snprintf(job.host, sizeof(job.host), "%s", name ? name : host);
    }
    job.rcpts = rcpts;
    job.fd = open(file, O_RDONLY);
    struct stat st;
    if (job.fd < 0 || fstat(job.fd, &st) < 0)
        usage("cannot open FILE");
    job.len = st.st_size;

    struct event_base *base = event_base_new();
    d.base = base;
    d.job = &job;
    d.left = messages - 1;
    d.pause_ev = evtimer_new(base, pause_cb, &d);
    d.conn = smtpc_start(base, &job, on_done, &d);
    event_base_dispatch(base);
    event_free(d.pause_ev);
    event_base_free(base);
    close(job.fd);
    for (size_t i = 0; i < job.nrcpt; i++)
        free((char *)rcpts[i].addr);
    free(rcpts);
    free(auth);
    return 0;
}
