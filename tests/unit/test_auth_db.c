/* test_auth_db.c - the AUTH password file: crypt(3) hashes, errors, verification */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth_db.h"
#include "tmpfile_helper.h"

struct fx {
    char dir[64];
    char file[128];
    char yes[512], bcrypt[512], sha512[512]; /* hashes of "pw-yes", "pw-bcrypt", "pw-sha512" */
};

/* setup - a temporary directory and yescrypt, bcrypt and sha512-crypt hashes */
static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    if (tmp_dir_make(f->dir, sizeof(f->dir), "authdb") < 0)
        return -1;
    snprintf(f->file, sizeof(f->file), "%s/passwd", f->dir);
    if (auth_hash_password("pw-yes", NULL, f->yes, sizeof(f->yes)) < 0 ||
        auth_hash_password("pw-bcrypt", "$2b$", f->bcrypt, sizeof(f->bcrypt)) < 0 ||
        auth_hash_password("pw-sha512", "$6$", f->sha512, sizeof(f->sha512)) < 0)
        return -1;
    *state = f;
    return 0;
}

/* teardown - remove the temporary directory */
static int teardown(void **state)
{
    struct fx *f = *state;
    tmp_dir_remove(f->dir);
    free(f);
    return 0;
}

/* put - write text to path with mode */
static void put(const char *path, const char *text, mode_t mode)
{
    tmp_file_write(path, text);
    assert_int_equal(chmod(path, mode), 0);
}

/* load_text - write text (mode 0600) to the fixture's file and load it */
static struct auth_db *load_text(struct fx *f, const char *text, char *err, size_t errsz)
{
    put(f->file, text, 0600);
    err[0] = '\0';
    return auth_db_load(f->file, err, errsz);
}

/* refused - text does not load; the error starts with "PATH:line: " and holds want */
static void refused(struct fx *f, const char *text, int line, const char *want)
{
    char err[512];
    struct auth_db *db = load_text(f, text, err, sizeof(err));
    if (db != NULL)
        fail_msg("accepted: %s", text);
    assert_error_at(err, f->file, line, want);
}

/* test_schemes - load, look up and verify the three schemes; comments and blank lines */
static void test_schemes(void **state)
{
    struct fx *f = *state;
    assert_true(strncmp(f->yes, "$y$", 3) == 0);
    assert_true(strncmp(f->bcrypt, "$2b$", 4) == 0);
    assert_true(strncmp(f->sha512, "$6$", 3) == 0);
    char text[2048], err[512];
    snprintf(text, sizeof(text),
             "# tern AUTH users\n\nalice:%s\n  # indented comment\nbob:%s\r\ncarol:%s  \n", f->yes,
             f->bcrypt, f->sha512);
    struct auth_db *db = load_text(f, text, err, sizeof(err));
    if (db == NULL)
        fail_msg("%s", err);
    assert_string_equal(auth_db_hash(db, "alice"), f->yes);
    assert_string_equal(auth_db_hash(db, "bob"), f->bcrypt);
    assert_string_equal(auth_db_hash(db, "carol"), f->sha512);
    assert_null(auth_db_hash(db, "Alice")); /* user names are case-sensitive */
    assert_null(auth_db_hash(db, "dave"));
    assert_null(auth_db_hash(db, ""));
    assert_true(auth_hash_verify(auth_db_hash(db, "alice"), "pw-yes"));
    assert_true(auth_hash_verify(auth_db_hash(db, "bob"), "pw-bcrypt"));
    assert_true(auth_hash_verify(auth_db_hash(db, "carol"), "pw-sha512"));
    auth_db_free(db);
}

/* test_wrong_password - wrong passwords and bogus hashes never verify */
static void test_wrong_password(void **state)
{
    struct fx *f = *state;
    assert_false(auth_hash_verify(f->yes, "pw-Yes"));
    assert_false(auth_hash_verify(f->yes, "pw-yes "));
    assert_false(auth_hash_verify(f->yes, ""));
    assert_false(auth_hash_verify(f->yes, NULL));
    assert_false(auth_hash_verify(f->bcrypt, "pw-yes"));
    assert_false(auth_hash_verify(f->sha512, "pw-sha51"));
    assert_false(auth_hash_verify("", "pw-yes"));
    assert_false(auth_hash_verify("pw-yes", "pw-yes")); /* a plaintext "hash" never matches */
    assert_false(auth_hash_verify("*0", "pw-yes"));
}

/* test_unknown_user - a NULL hash (unknown user) never verifies */
static void test_unknown_user(void **state)
{
    (void)state;
    assert_int_equal(auth_hash_verify(NULL, "anything"), 0);
    assert_int_equal(auth_hash_verify(NULL, ""), 0);
    assert_int_equal(auth_hash_verify(NULL, NULL), 0);
    assert_null(auth_db_hash(NULL, "alice"));
}

/* test_plaintext_refused - plaintext and unsupported hashes are refused, not echoed */
static void test_plaintext_refused(void **state)
{
    struct fx *f = *state;
    char err[512];
    refused(f, "alice:secret\n", 1, "not a crypt(3) hash");
    assert_null(load_text(f, "# c\nalice:hunter2\n", err, sizeof(err)));
    assert_null(strstr(err, "hunter2")); /* never echo what may be a password */
    refused(f, "alice:$1$abcdefgh$0123456789012345678901\n", 1, "unsupported hash scheme");
    refused(f, "alice:$apr1$abc$def\n", 1, "unsupported");
    refused(f, "alice:{SSHA}abcdef\n", 1, "not a crypt(3) hash");
    refused(f, "alice:\n", 1, "not a crypt(3) hash");
}

/* test_duplicate_refused - a user given twice is refused with both line numbers */
static void test_duplicate_refused(void **state)
{
    struct fx *f = *state;
    char text[2048];
    snprintf(text, sizeof(text), "alice:%s\nbob:%s\n# x\nalice:%s\n", f->yes, f->bcrypt, f->sha512);
    refused(f, text, 4, "duplicate user (first on line 1)");
    /* differing only in case: two users */
    char err[512];
    snprintf(text, sizeof(text), "alice:%s\nAlice:%s\n", f->yes, f->bcrypt);
    struct auth_db *db = load_text(f, text, err, sizeof(err));
    assert_non_null(db);
    assert_string_equal(auth_db_hash(db, "Alice"), f->bcrypt);
    auth_db_free(db);
}

/* test_bad_lines - malformed lines are refused with PATH:LINE */
static void test_bad_lines(void **state)
{
    struct fx *f = *state;
    char text[2048], trunc[512];
    snprintf(text, sizeof(text), "alice:%s\nbob\n", f->yes);
    refused(f, text, 2, "expected user:hash");
    snprintf(text, sizeof(text), "# one\n:%s\n", f->yes);
    refused(f, text, 2, "empty user name");
    snprintf(text, sizeof(text), "al ice:%s\n", f->yes);
    refused(f, text, 1, "white space");
    snprintf(text, sizeof(text), " alice:%s\n", f->yes);
    refused(f, text, 1, "white space");
    snprintf(text, sizeof(text), "al\x01ice:%s\n", f->yes);
    refused(f, text, 1, "control");
    snprintf(text, sizeof(text), "alice:%s:1000:1000::/home/alice\n", f->yes);
    refused(f, text, 1, "malformed hash");
    snprintf(text, sizeof(text), "alice:%s x\n", f->yes);
    refused(f, text, 1, "malformed hash");
    snprintf(trunc, sizeof(trunc), "%s", f->yes);
    trunc[strlen(trunc) - 1] = '\0'; /* a cut-and-paste accident */
    snprintf(text, sizeof(text), "alice:%s\n", trunc);
    refused(f, text, 1, "truncated");
    snprintf(trunc, sizeof(trunc), "%s", f->bcrypt);
    trunc[strlen(trunc) - 3] = '\0';
    snprintf(text, sizeof(text), "bob:%s\n", trunc);
    refused(f, text, 1, "malformed hash");
    refused(f, "alice:$y$\n", 1, "malformed");
    refused(f, "alice:$6$\n", 1, "malformed");
    refused(f, "alice:$2b$\n", 1, "malformed");
    char user[300];
    memset(user, 'u', 256);
    user[256] = '\0';
    snprintf(text, sizeof(text), "%s:%s\n", user, f->yes);
    refused(f, text, 1, "user name too long");
}

/* test_nul_byte_refused - a NUL byte in a line is refused */
static void test_nul_byte_refused(void **state)
{
    struct fx *f = *state;
    char text[1024], err[512];
    int n = snprintf(text, sizeof(text), "alice:%s\nbob@:%s\n", f->yes, f->yes);
    *strchr(text, '@') = '\0'; /* "bob\0:hash" on line 2 */
    tmp_file_put(f->file, text, (size_t)n);
    assert_int_equal(chmod(f->file, 0600), 0);
    assert_null(auth_db_load(f->file, err, sizeof(err)));
    assert_non_null(strstr(err, ":2: "));
}

/* test_permissions - a file others may read is refused; 0640 and 0600 are fine */
static void test_permissions(void **state)
{
    struct fx *f = *state;
    char text[1024], err[512];
    snprintf(text, sizeof(text), "alice:%s\n", f->yes);
    put(f->file, text, 0644);
    assert_null(auth_db_load(f->file, err, sizeof(err)));
    assert_non_null(strstr(err, f->file));
    assert_non_null(strstr(err, "readable by others"));
    put(f->file, text, 0604);
    assert_null(auth_db_load(f->file, err, sizeof(err)));
    put(f->file, text, 0640); /* group-readable: ternd's group may read it */
    struct auth_db *db = auth_db_load(f->file, err, sizeof(err));
    assert_non_null(db);
    auth_db_free(db);
    put(f->file, text, 0600);
    db = auth_db_load(f->file, err, sizeof(err));
    assert_non_null(db);
    auth_db_free(db);
}

/* test_missing_and_empty - a missing file or a directory is an error; an empty file is not */
static void test_missing_and_empty(void **state)
{
    struct fx *f = *state;
    char err[512], path[200];
    snprintf(path, sizeof(path), "%s/nope", f->dir);
    assert_null(auth_db_load(path, err, sizeof(err)));
    assert_non_null(strstr(err, path));
    assert_null(auth_db_load(f->dir, err, sizeof(err))); /* a directory */
    struct auth_db *db = load_text(f, "# nobody yet\n\n", err, sizeof(err));
    assert_non_null(db);
    assert_null(auth_db_hash(db, "alice"));
    auth_db_free(db);
}

/* test_hash_roundtrip - auth_hash_password output verifies, for each scheme, with fresh salts */
static void test_hash_roundtrip(void **state)
{
    (void)state;
    static const char *const prefixes[] = {NULL, "$y$", "$2b$", "$6$", "$5$"};
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        char h[512], h2[512];
        assert_int_equal(auth_hash_password("s3cr\xc3\xa9t pass", prefixes[i], h, sizeof(h)), 0);
        assert_true(strncmp(h, prefixes[i] ? prefixes[i] : "$y$", 3) == 0);
        assert_true(auth_hash_verify(h, "s3cr\xc3\xa9t pass"));
        assert_false(auth_hash_verify(h, "s3cr\xc3\xa9t pas"));
        /* a fresh salt every time */
        assert_int_equal(auth_hash_password("s3cr\xc3\xa9t pass", prefixes[i], h2, sizeof(h2)), 0);
        assert_string_not_equal(h, h2);
    }
    char small[20];
    assert_int_equal(auth_hash_password("x", NULL, small, sizeof(small)), -1);
    char h[512];
    assert_int_equal(auth_hash_password("x", "$nope$", h, sizeof(h)), -1);
    assert_int_equal(auth_hash_password(NULL, NULL, h, sizeof(h)), -1);
}

/* round trip through the file: a hash written by auth_hash_password loads and verifies */
static void test_file_roundtrip(void **state)
{
    struct fx *f = *state;
    char h5[512], text[2048], err[512];
    assert_int_equal(auth_hash_password("five", "$5$", h5, sizeof(h5)), 0);
    snprintf(text, sizeof(text), "dave:%s\nj\xc3\xb6rg@example.org:%s\n", h5, f->yes);
    struct auth_db *db = load_text(f, text, err, sizeof(err));
    if (db == NULL)
        fail_msg("%s", err);
    assert_true(auth_hash_verify(auth_db_hash(db, "dave"), "five"));
    assert_true(auth_hash_verify(auth_db_hash(db, "j\xc3\xb6rg@example.org"), "pw-yes"));
    auth_db_free(db);
}

struct job {
    const char *hash;
    const char *pw;
    int want, bad;
};

/* verify_many - thread body: verify a few times, count wrong answers */
static void *verify_many(void *arg)
{
    struct job *j = arg;
    for (int i = 0; i < 3; i++)
        if (auth_hash_verify(j->hash, j->pw) != j->want)
            j->bad++;
    return NULL;
}

/* test_threads - concurrent verification in several threads gives the right answers */
static void test_threads(void **state)
{
    struct fx *f = *state;
    struct job jobs[6] = {
        {f->yes, "pw-yes", 1, 0},       {f->yes, "wrong", 0, 0},   {f->bcrypt, "pw-bcrypt", 1, 0},
        {f->sha512, "pw-sha512", 1, 0}, {NULL, "pw-yes", 0, 0},   {f->sha512, "pw-yes", 0, 0},
    };
    pthread_t t[6];
    for (int i = 0; i < 6; i++)
        assert_int_equal(pthread_create(&t[i], NULL, verify_many, &jobs[i]), 0);
    for (int i = 0; i < 6; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(jobs[i].bad, 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_schemes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_password, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_user, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plaintext_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nul_byte_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_permissions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_and_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hash_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
