/* smtp_reply.h - the reply table (ids, codes, enhanced status codes) */
#ifndef TERN_SMTP_REPLY_H
#define TERN_SMTP_REPLY_H

enum reply_id {
#define REPLY(id, code, esc, text) id,
#include "reply_table.h"
#undef REPLY
    R__COUNT
};

struct reply_def {
    const char *name;
    int code;
    const char *esc;   /* "" for 220/354, which carry no enhanced code */
    const char *text;  /* printf format */
};

extern const struct reply_def reply_defs[R__COUNT];

/* reply_esc_registered - the enhanced code is one tern knows from RFC 3463 / IANA */
int reply_esc_registered(const char *esc);

#endif
