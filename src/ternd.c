/* ternd.c - the tern mail server: start-up, signals, listeners, shutdown */
#include "aliases.h"
#include "auth_db.h"
#include "login_map.h"
#include "work.h"
#include "config.h"
#include "daemon.h"
#include "dns.h"
#include "log.h"
#include "net.h"
#include "outbound.h"
#include "queue.h"
#include "qmgr.h"
#include "smtp_session.h"
#include "tls.h"
#include "xmalloc.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SHUTDOWN_GRACE 10 /* seconds busy sessions get to finish after SIGTERM */

struct daemon tern;

static struct evconnlistener *listeners[64];
static int nlisteners;
static struct event *shutdown_timer;
static int shutdown_ticks;

static void usage(void)
{
    fprintf(stderr, "usage: ternd [-c config] [-o name=value]... [-n] [-v]\n"
                    "       ternd --config-doc\n"
                    "  -c FILE  configuration file (default /etc/tern/tern.conf)\n"
                    "  -o N=V   override a setting\n"
                    "  -n       check the configuration, print non-default settings, exit\n"
                    "  -v       verbose logging\n");
    exit(2);
}

static const enum listen_kind kinds[] = {LISTEN_SMTP, LISTEN_SUBMISSION, LISTEN_SMTPS};

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
                      void *arg)
{
    (void)l;
    smtp_session_start(fd, sa, (socklen_t)len, *(const enum listen_kind *)arg);
}

static void accept_error_cb(struct evconnlistener *l, void *arg)
{
    (void)l;
    (void)arg;
    log_warn("accept");
}

static int listen_all(const char *list, const enum listen_kind *kind)
{
    const char *p = list;
    char item[256];
    while (config_list_next(&p, item, sizeof(item)) > 0) {
        struct sockaddr_storage ss;
        socklen_t len;
        if (net_parse_hostport(item, &ss, &len) < 0) {
            log_warnx("smtp_listen: bad address \"%s\"", item);
            return -1;
        }
        if (nlisteners == (int)(sizeof(listeners) / sizeof(listeners[0])))
            return -1;
        struct evconnlistener *l = evconnlistener_new_bind(
            tern.base, accept_cb, (void *)kind,
            LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 1024,
            (struct sockaddr *)&ss, (int)len);
        if (l == NULL) {
            log_warn("cannot listen on %s", item);
            return -1;
        }
        evconnlistener_set_error_cb(l, accept_error_cb);
        listeners[nlisteners++] = l;
        log_info("listening on %s", item);
    }
    return 0;
}

static void shutdown_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    shutdown_ticks++;
    if ((smtp_sessions_count() == 0 && !sched_busy()) || shutdown_ticks > SHUTDOWN_GRACE * 10)
        event_base_loopbreak(tern.base);
}

static void on_sigterm(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    (void)arg;
    if (tern.shutting_down)
        return;
    log_info("terminating on signal %d", (int)sig);
    tern.shutting_down = 1;
    for (int i = 0; i < nlisteners; i++)
        evconnlistener_free(listeners[i]);
    nlisteners = 0;
    smtp_sessions_shutdown();
    sched_quiesce();
    shutdown_timer = event_new(tern.base, -1, EV_PERSIST, shutdown_tick, NULL);
    event_add(shutdown_timer, &(struct timeval){0, 100000});
}

static char *conf_file;
static char **overrides;
static int noverrides;

static void load_aliases(void)
{
    char err[512] = "";
    struct alias_db *db = alias_load(tern.cfg->alias_maps, err, sizeof(err));
    if (db == NULL && err[0]) {
        log_warnx("%s", err);
        return; /* keep the old table */
    }
    alias_free(tern.aliases);
    tern.aliases = db;
    tern.lctx.aliases = db;
}

/* load_auth - the AUTH password file and sender login map; on error keep the old ones */
static int load_auth(const struct config *c)
{
    char err[512];
    struct auth_db *db = NULL;
    struct login_map *map = NULL;
    if (c->smtpd_sasl_password_file[0] &&
        (db = auth_db_load(c->smtpd_sasl_password_file, err, sizeof(err))) == NULL) {
        log_warnx("%s", err);
        return -1;
    }
    if (c->smtpd_sender_login_maps[0] &&
        (map = login_map_load(c->smtpd_sender_login_maps, err, sizeof(err))) == NULL) {
        log_warnx("%s", err);
        auth_db_free(db);
        return -1;
    }
    auth_db_free(tern.auth_db);
    login_map_free(tern.login_map);
    tern.auth_db = db;
    tern.login_map = map;
    return 0;
}

static void on_sighup(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    (void)arg;
    char err[1024];
    struct config *c = config_load(conf_file, overrides, noverrides, err, sizeof(err));
    if (c == NULL) {
        log_warnx("reload failed, keeping the old configuration: %s", err);
        return;
    }
    if (tls_server_load(c, err, sizeof(err)) < 0) {
        log_warnx("reload failed, keeping the old configuration: TLS: %s", err);
        config_free(c);
        return;
    }
    if (strcmp(c->smtp_listen, tern.cfg->smtp_listen) != 0 ||
        strcmp(c->submission_listen, tern.cfg->submission_listen) != 0 ||
        strcmp(c->smtps_listen, tern.cfg->smtps_listen) != 0 ||
        strcmp(c->queue_directory, tern.cfg->queue_directory) != 0)
        log_warnx("smtp_listen and queue_directory changes take effect at restart");
    config_free(tern.cfg);
    tern.cfg = c;
    tern.lctx.cfg = c;
    log_reopen();
    log_set_hostname(c->myhostname);
    load_aliases();
    if (load_auth(c) < 0)
        log_warnx("keeping the old AUTH password file and login map");
    sched_reload();
    log_info("reloaded configuration %s", conf_file ? conf_file : "(defaults)");
}

static void recover_cb(void *arg, const char *qid)
{
    (void)arg;
    sched_add(qid);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {{"config-doc", no_argument, NULL, 'D'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    int check = 0, opt;
    conf_file = "/etc/tern/tern.conf";
    overrides = xcalloc((size_t)argc + 1, sizeof(char *));
    while ((opt = getopt_long(argc, argv, "c:o:nvh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c': conf_file = optarg; break;
        case 'o': overrides[noverrides++] = optarg; break;
        case 'n': check = 1; break;
        case 'v': log_verbose = 1; break;
        case 'D': config_doc(stdout); return 0;
        default: usage();
        }
    }
    if (optind != argc)
        usage();
    char err[1024];
    tern.cfg = config_load(conf_file, overrides, noverrides, err, sizeof(err));
    if (tern.cfg == NULL) {
        fprintf(stderr, "ternd: %s\n", err);
        return 2;
    }
    if (check) {
        config_print(tern.cfg, stdout, 1);
        return 0;
    }
    if (log_init("smtpd", tern.cfg->log_file) < 0) {
        fprintf(stderr, "ternd: cannot open log file %s: %s\n", tern.cfg->log_file, strerror(errno));
        return 1;
    }
    log_set_hostname(tern.cfg->myhostname);
    signal(SIGPIPE, SIG_IGN);
    tern.lctx.cfg = tern.cfg;
    load_aliases();
    if (load_auth(tern.cfg) < 0)
        log_fatalx("cannot start without the AUTH configuration");

    tern.base = event_base_new();
    if (tern.base == NULL)
        log_fatalx("event_base_new failed");
    /* signals first: a SIGHUP or SIGTERM that comes as soon as the port answers is handled */
    struct event *ev_term = evsignal_new(tern.base, SIGTERM, on_sigterm, NULL);
    struct event *ev_int = evsignal_new(tern.base, SIGINT, on_sigterm, NULL);
    struct event *ev_hup = evsignal_new(tern.base, SIGHUP, on_sighup, NULL);
    event_add(ev_term, NULL);
    event_add(ev_int, NULL);
    event_add(ev_hup, NULL);
    if (work_init(tern.base, 2) < 0)
        log_fatal("cannot start worker threads");
    if (dns_init(tern.base, tern.cfg->dns_nameservers) < 0)
        log_warnx("DNS resolver unavailable: clients will be \"unknown\"");
    if (queue_init(tern.base, tern.cfg->queue_directory) < 0)
        log_fatal("queue directory %s", tern.cfg->queue_directory);
    if (tls_server_load(tern.cfg, err, sizeof(err)) < 0)
        log_fatalx("TLS: %s", err);
    if (tern.cfg->smtps_listen[0] && !tls_server_available())
        log_fatalx("smtps_listen needs smtpd_tls_cert_file");
    if (outbound_load_maps(err, sizeof(err)) < 0)
        log_fatalx("%s", err);
    if (listen_all(tern.cfg->smtp_listen, &kinds[0]) < 0 ||
        listen_all(tern.cfg->submission_listen, &kinds[1]) < 0 ||
        listen_all(tern.cfg->smtps_listen, &kinds[2]) < 0)
        log_fatalx("cannot open listeners");
    if (sched_init() < 0)
        log_fatal("cannot start local delivery");
    long n = queue_recover(recover_cb, NULL);
    if (n > 0)
        log_info("recovered %ld queued message%s", n, n == 1 ? "" : "s");

    if (tern.cfg->pid_file[0]) {
        FILE *fp = fopen(tern.cfg->pid_file, "w");
        if (fp) {
            fprintf(fp, "%ld\n", (long)getpid());
            fclose(fp);
        }
    }
    log_info("daemon started -- tern, pid %ld", (long)getpid());
    event_base_dispatch(tern.base);

    smtp_sessions_abort();
    sched_shutdown();
    queue_shutdown();
    work_shutdown();
    dns_shutdown();
    tls_server_free();
    if (shutdown_timer)
        event_free(shutdown_timer);
    event_free(ev_term);
    event_free(ev_int);
    event_free(ev_hup);
    for (int i = 0; i < nlisteners; i++)
        evconnlistener_free(listeners[i]);
    event_base_free(tern.base);
    alias_free(tern.aliases);
    auth_db_free(tern.auth_db);
    login_map_free(tern.login_map);
    if (tern.cfg->pid_file[0])
        unlink(tern.cfg->pid_file);
    log_info("stopped");
    config_free(tern.cfg);
    free(overrides);
    return 0;
}
