/* test_login_map.c - sender login maps: exact and @domain keys, extensions, default rules */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "login_map.h"
#include "tmpfile_helper.h"

struct fx {
    char dir[64];
    char file[128];
    struct config *cfg; /* mydestination example.org, localhost; myorigin example.org */
};

/* load_cfg - defaults plus overrides (count n) */
static struct config *load_cfg(char **ov, int n)
{
    char err[512];
    struct config *c = config_load(NULL, ov, n, err, sizeof(err));
    if (c == NULL)
        fail_msg("config: %s", err);
    return c;
}

/* setup - a temporary directory and the configuration of the default rules */
static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    if (tmp_dir_make(f->dir, sizeof(f->dir), "loginmap") < 0)
        return -1;
    snprintf(f->file, sizeof(f->file), "%s/sender_logins", f->dir);
    char *ov[] = {"mydestination=example.org, localhost", "myorigin=example.org",
                  "recipient_delimiter=+"};
    f->cfg = load_cfg(ov, 3);
    *state = f;
    return 0;
}

/* teardown - remove the temporary directory */
static int teardown(void **state)
{
    struct fx *f = *state;
    tmp_dir_remove(f->dir);
    config_free(f->cfg);
    free(f);
    return 0;
}

/* load_text - write text to the fixture's map file and load it */
static struct login_map *load_text(struct fx *f, const char *text, char *err, size_t errsz)
{
    tmp_file_write(f->file, text);
    err[0] = '\0';
    return login_map_load(f->file, err, errsz);
}

/* load_ok - text loads */
static struct login_map *load_ok(struct fx *f, const char *text)
{
    char err[512];
    struct login_map *m = load_text(f, text, err, sizeof(err));
    if (m == NULL)
        fail_msg("%s", err);
    return m;
}

/* refused - text does not load; the error starts with "PATH:line: " and holds want */
static void refused(struct fx *f, const char *text, int line, const char *want)
{
    char err[512];
    struct login_map *m = load_text(f, text, err, sizeof(err));
    if (m != NULL)
        fail_msg("accepted: %s", text);
    assert_error_at(err, f->file, line, want);
}

static const char map_text[] = "# sender            logins\n"
                               "alice@example.org    alice\n"
                               "\n"
                               "@example.com         carol, dave\n"
                               "bob@example.com      bob\n"
                               "shared@example.org   alice,bob   erin\n"
                               "  # indented comment\n"
                               "Mixed@Example.NET    Mixed\n"
                               "alice+lists@example.org frank\n";

/* test_exact_and_domain - exact address keys, then @domain keys */
static void test_exact_and_domain(void **state)
{
    struct fx *f = *state;
    struct login_map *m = load_ok(f, map_text);
    const struct config *c = f->cfg;
    assert_true(login_map_owns(m, c, "alice", "alice@example.org"));
    assert_false(login_map_owns(m, c, "bob", "alice@example.org"));
    assert_true(login_map_owns(m, c, "carol", "anyone@example.com"));
    assert_true(login_map_owns(m, c, "dave", "anyone@example.com"));
    assert_false(login_map_owns(m, c, "bob", "anyone@example.com"));
    /* an exact key decides; @domain is not consulted */
    assert_true(login_map_owns(m, c, "bob", "bob@example.com"));
    assert_false(login_map_owns(m, c, "carol", "bob@example.com"));
    /* not in the map: nobody, not even under the default rules */
    assert_false(login_map_owns(m, c, "alice", "alice@other.net"));
    assert_false(login_map_owns(m, c, "bob", "bob@example.org"));
    assert_false(login_map_owns(m, c, "alice", "alice"));
    login_map_free(m);
}

/* test_several_logins - an address shared by several logins */
static void test_several_logins(void **state)
{
    struct fx *f = *state;
    struct login_map *m = load_ok(f, map_text);
    assert_true(login_map_owns(m, f->cfg, "alice", "shared@example.org"));
    assert_true(login_map_owns(m, f->cfg, "bob", "shared@example.org"));
    assert_true(login_map_owns(m, f->cfg, "erin", "shared@example.org"));
    assert_false(login_map_owns(m, f->cfg, "carol", "shared@example.org"));
    assert_false(login_map_owns(m, f->cfg, "ali", "shared@example.org"));
    assert_false(login_map_owns(m, f->cfg, "", "shared@example.org"));
    login_map_free(m);
}

/* test_case_insensitive_keys - addresses compare case-insensitively, logins exactly */
static void test_case_insensitive_keys(void **state)
{
    struct fx *f = *state;
    struct login_map *m = load_ok(f, map_text);
    assert_true(login_map_owns(m, f->cfg, "alice", "ALICE@Example.Org"));
    assert_true(login_map_owns(m, f->cfg, "carol", "X@EXAMPLE.COM"));
    assert_true(login_map_owns(m, f->cfg, "Mixed", "mixed@example.net"));
    assert_true(login_map_owns(m, f->cfg, "Mixed", "MIXED@EXAMPLE.NET"));
    /* login names are exact, like the password file's user names */
    assert_false(login_map_owns(m, f->cfg, "Alice", "alice@example.org"));
    assert_false(login_map_owns(m, f->cfg, "mixed", "mixed@example.net"));
    login_map_free(m);
}

/* test_extensions - the extension after recipient_delimiter is removed before lookup */
static void test_extensions(void **state)
{
    struct fx *f = *state;
    struct login_map *m = load_ok(f, map_text);
    const struct config *c = f->cfg;
    assert_true(login_map_owns(m, c, "alice", "alice+tag@example.org"));
    assert_true(login_map_owns(m, c, "alice", "Alice+Tag+More@EXAMPLE.org"));
    assert_false(login_map_owns(m, c, "bob", "alice+tag@example.org"));
    assert_false(login_map_owns(m, c, "alice", "alice-tag@example.org")); /* not a delimiter */
    /* a key with the extension is looked up first and decides */
    assert_true(login_map_owns(m, c, "frank", "alice+lists@example.org"));
    assert_false(login_map_owns(m, c, "alice", "alice+lists@example.org"));
    assert_false(login_map_owns(m, c, "frank", "alice@example.org"));
    /* a delimiter that starts the local part is not an extension */
    assert_true(login_map_owns(m, c, "carol", "+tag@example.com"));
    /* several delimiter characters */
    char *ov[] = {"recipient_delimiter=+-"};
    struct config *c2 = load_cfg(ov, 1);
    assert_true(login_map_owns(m, c2, "alice", "alice-tag@example.org"));
    assert_true(login_map_owns(m, c2, "alice", "alice+tag@example.org"));
    config_free(c2);
    char *none[] = {"recipient_delimiter="};
    struct config *c3 = load_cfg(none, 1);
    assert_false(login_map_owns(m, c3, "alice", "alice+tag@example.org"));
    assert_true(login_map_owns(m, c3, "alice", "alice@example.org"));
    config_free(c3);
    login_map_free(m);
}

/* test_null_sender - the null sender is always allowed */
static void test_null_sender(void **state)
{
    struct fx *f = *state;
    struct login_map *m = load_ok(f, map_text);
    assert_true(login_map_owns(m, f->cfg, "alice", ""));
    assert_true(login_map_owns(m, f->cfg, "nobody", ""));
    assert_true(login_map_owns(NULL, f->cfg, "alice", ""));
    login_map_free(m);
}

/* test_default_rules - without a map: login@mydestination, or the login address itself */
static void test_default_rules(void **state)
{
    struct fx *f = *state;
    const struct config *c = f->cfg;
    assert_true(login_map_owns(NULL, c, "alice", "alice@example.org"));
    assert_true(login_map_owns(NULL, c, "alice", "alice@localhost"));
    assert_true(login_map_owns(NULL, c, "alice", "ALICE@EXAMPLE.ORG"));
    assert_true(login_map_owns(NULL, c, "alice", "alice+tag@example.org"));
    assert_true(login_map_owns(NULL, c, "alice", "alice"));
    assert_false(login_map_owns(NULL, c, "alice", "alice@other.net"));
    assert_false(login_map_owns(NULL, c, "alice", "alice@sub.example.org"));
    assert_false(login_map_owns(NULL, c, "alice", "bob@example.org"));
    assert_false(login_map_owns(NULL, c, "alice", "alicex@example.org"));
    assert_false(login_map_owns(NULL, c, "alice", "ali@example.org"));
    assert_false(login_map_owns(NULL, c, "alice", "alice-x@example.org"));
    assert_false(login_map_owns(NULL, c, "alice", "alice@"));
    assert_false(login_map_owns(NULL, c, "", "alice@example.org"));
    /* a login that is an address owns exactly that address (docs/DECISIONS.md 15) */
    assert_true(login_map_owns(NULL, c, "carol@other.net", "carol@other.net"));
    assert_true(login_map_owns(NULL, c, "carol@other.net", "CAROL@Other.Net"));
    assert_false(login_map_owns(NULL, c, "carol@other.net", "carol+x@other.net"));
    assert_true(login_map_owns(NULL, c, "carol@example.org", "carol@example.org"));
    assert_false(login_map_owns(NULL, c, "carol@other.net", "carol@example.org"));
    assert_false(login_map_owns(NULL, c, "carol@other.net", "dave@other.net"));
}

/* test_default_myorigin - without a map: login@myorigin too */
static void test_default_myorigin(void **state)
{
    (void)state;
    char *ov[] = {"mydestination=localhost", "myorigin=origin.test", "recipient_delimiter=+"};
    struct config *c = load_cfg(ov, 3);
    assert_true(login_map_owns(NULL, c, "alice", "alice@origin.test"));
    assert_true(login_map_owns(NULL, c, "alice", "alice@Origin.Test"));
    assert_true(login_map_owns(NULL, c, "alice", "alice@localhost"));
    assert_false(login_map_owns(NULL, c, "alice", "alice@example.org"));
    config_free(c);
}

/* test_load_errors - malformed map lines are refused with PATH:LINE */
static void test_load_errors(void **state)
{
    struct fx *f = *state;
    refused(f, "alice@example.org alice\nbob@example.org\n", 2, "without a login");
    refused(f, "alice alice\n", 1, "expected user@domain or @domain");
    refused(f, "alice@ alice\n", 1, "expected user@domain");
    refused(f, "# c\n, , ,\n", 2, "expected user@domain");
    refused(f, "@example.com a\nx@y b\n@EXAMPLE.com c\n", 3, "duplicate address (first on line 1)");
    refused(f, "a@b \x01x\n", 1, "control");
    char err[512], path[200];
    snprintf(path, sizeof(path), "%s/nope", f->dir);
    assert_null(login_map_load(path, err, sizeof(err)));
    assert_non_null(strstr(err, path));
    struct login_map *m = load_ok(f, "# empty\n\n");
    assert_false(login_map_owns(m, f->cfg, "alice", "alice@example.org"));
    assert_true(login_map_owns(m, f->cfg, "alice", ""));
    login_map_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_exact_and_domain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_several_logins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_case_insensitive_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_extensions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_null_sender, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_myorigin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
