/* daemon.h - state shared by the parts of ternd that run in the event loop */
#ifndef TERN_DAEMON_H
#define TERN_DAEMON_H

#include "aliases.h"
#include "config.h"
#include "local.h"

struct auth_db;
struct login_map;

struct event_base;

struct daemon {
    struct event_base *base;
    struct config *cfg;        /* replaced on SIGHUP; never cache its fields */
    struct alias_db *aliases;  /* for RCPT checks and EXPN */
    struct local_ctx lctx;
    struct auth_db *auth_db;        /* NULL: AUTH not offered */
    struct login_map *login_map;    /* NULL: default sender ownership rules */
    int shutting_down;
};

extern struct daemon tern;

#endif
