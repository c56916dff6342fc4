/* login_map.h - which envelope senders an authenticated user may use
 * (like Postfix's smtpd_sender_login_maps with reject_sender_login_mismatch) */
#ifndef TERN_LOGIN_MAP_H
#define TERN_LOGIN_MAP_H

#include <stddef.h>

struct config;
struct login_map;

/* login_map_load - lines "ADDRESS  login[, login...]" where ADDRESS is
 * user@domain or @domain (any user of the domain); '#' comments; keys are
 * case-insensitive.  Errors: "PATH:LINE: ...". */
struct login_map *login_map_load(const char *path, char *err, size_t errsz);
void login_map_free(struct login_map *m);

/* login_map_owns - may `login` use envelope sender `sender` ("" = null sender,
 * always allowed)?  With a map: sender (extension after recipient_delimiter
 * removed) must map to login, exact address first, then @domain.  Without a
 * map (m == NULL): sender equals login (case-insensitive), or login has no
 * '@' and sender is login@D (extension removed) with D in mydestination or
 * equal to myorigin. */
int login_map_owns(const struct login_map *m, const struct config *cfg, const char *login,
                   const char *sender);

#endif
