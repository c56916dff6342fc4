/* smtp_reply.c - the reply table and the registry of enhanced status codes */
#include "smtp_reply.h"

#include <string.h>

const struct reply_def reply_defs[R__COUNT] = {
#define REPLY(id, code, esc, text) [id] = {#id, code, esc, text},
#include "reply_table.h"
#undef REPLY
};

/* enhanced codes (subject.detail) from RFC 3463, 3886, 4954, 6531, 7372 and the IANA registry */
static const char *const esc_registry[] = {
    "0.0", "1.0", "1.1", "1.2", "1.3", "1.4", "1.5", "1.6", "1.7", "1.8", "1.10",
    "2.0", "2.1", "2.2", "2.3", "2.4", "3.0", "3.1", "3.2", "3.3", "3.4", "3.5",
    "4.0", "4.1", "4.2", "4.3", "4.4", "4.5", "4.6", "4.7", "5.0", "5.1", "5.2", "5.3",
    "5.4", "5.5", "5.6", "6.0", "6.1", "6.2", "6.3", "6.4", "6.5", "6.6", "6.7", "6.8",
    "6.9", "6.10", "7.0", "7.1", "7.2", "7.3", "7.4", "7.5", "7.6", "7.7", "7.8",
    "7.9", "7.10", "7.11", "7.12", "7.13", "7.14", "7.15", "7.16", "7.17", "7.18",
    "7.19", "7.20", "7.21", "7.22", "7.23", "7.24", "7.25", "7.26", "7.27",
};

int reply_esc_registered(const char *esc)
{
    if ((esc[0] != '2' && esc[0] != '4' && esc[0] != '5') || esc[1] != '.')
        return 0;
    for (size_t i = 0; i < sizeof(esc_registry) / sizeof(esc_registry[0]); i++)
        if (strcmp(esc + 2, esc_registry[i]) == 0)
            return 1;
    return 0;
}
