/* queue_file.h - the on-disk queue file format (pure encode/decode, no policy)
 *
 * A queue file is a text envelope followed by the message:
 *
 *   TERN 1
 *   id 6740A1B2C3D4
 *   time 1763789509.123456
 *   client 192.0.2.1 mail.example.org
 *   helo <xtext>
 *   proto ESMTP
 *   sender <xtext>                 (empty value: the null sender <>)
 *   body 8BITMIME                  (7BIT, 8BITMIME or -)
 *   smtputf8 0|1
 *   ret FULL|HDRS|-
 *   envid <xtext>|-
 *   rcpt Q <notify> <orcpt-type|-> <orcpt-xtext|-> <address-xtext>
 *   ...
 *   data
 *   <message text with LF line ends>
 *
 * Every variable value is xtext (RFC 3461) so no CR, LF, space or control
 * byte from a client can reach the file unescaped.  The character after
 * "rcpt " is the recipient's status, rewritten in place with pwrite():
 * Q queued (to do), D delivered, B failed permanently (bounce owed).
 */
#ifndef TERN_QUEUE_FILE_H
#define TERN_QUEUE_FILE_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#define QID_LEN 12
#define QUEUE_ENVELOPE_MAX (4 * 1024 * 1024)

enum rcpt_state { RCPT_QUEUED = 'Q', RCPT_DONE = 'D', RCPT_BOUNCE = 'B' };

struct qrcpt {
    char *addr;
    char *orcpt;            /* NULL if absent */
    char orcpt_type[16];    /* "" if absent */
    int notify;             /* NOTIFY_* bits */
    char state;             /* enum rcpt_state */
    off_t state_off;        /* where the state byte lives in the file */
};

struct qenv {
    char id[QID_LEN + 1];
    time_t arrival;
    long arrival_usec;
    char *client_addr, *client_name, *helo, *proto;
    char *sender;
    int body;               /* enum body_type */
    int smtputf8;
    int ret;                /* enum dsn_ret */
    char *envid;            /* NULL if absent */
    struct qrcpt *rcpts;
    size_t nrcpt;
    off_t data_off;         /* first byte of the message text */
};

/* queue_env_encode - append the envelope (through the "data" line) to out;
 * sets each rcpt's state_off relative to where the envelope starts in out. */
struct buf;
void queue_env_encode(struct qenv *env, struct buf *out);

/* queue_env_decode - parse an envelope from the first len bytes of p (which
 * need only contain the envelope).  Returns 0, or -1 with a reason in err.
 * On success env owns its strings (queue_env_free). */
int queue_env_decode(const char *p, size_t len, struct qenv *env, char *err, size_t errsz);

/* queue_env_read - read and decode the envelope of the open queue file fd */
int queue_env_read(int fd, struct qenv *env, char *err, size_t errsz);

void queue_env_free(struct qenv *env);

/* queue_xtext_encode - s as a new xtext string, for the queue and the
 * master/worker protocol (no space, CR, LF or control byte survives) */
char *queue_xtext_encode(const char *s);
/* queue_xtext_decode - the xtext word [p, p+n) as a new string, NULL if malformed */
char *queue_xtext_decode(const char *p, size_t n);

/* queue_id_valid - 12 uppercase hex digits */
int queue_id_valid(const char *id);

#endif
