/* test_aliases.c - /etc/aliases parsing: entries, continuations, quoting, errors */
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

#include "aliases.h"
#include "tmpfile_helper.h"

struct fx {
    char dir[64];
    char file[128];
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    if (tmp_dir_make(f->dir, sizeof(f->dir), "alias") < 0)
        return -1;
    snprintf(f->file, sizeof(f->file), "%s/aliases", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    tmp_dir_remove(f->dir);
    free(f);
    return 0;
}

/* load_text - write text to the fixture's alias file and load it */
static struct alias_db *load_text(struct fx *f, const char *text, char *err, size_t errsz)
{
    tmp_file_write(f->file, text);
    err[0] = '\0';
    return alias_load(f->file, err, errsz);
}

/* check_target - target i has type and value */
static void check_target(const struct alias_entry *e, size_t i, enum alias_target_type type,
                         const char *value)
{
    assert_true(i < e->ntargets);
    assert_int_equal(e->targets[i].type, type);
    assert_string_equal(e->targets[i].value, value);
}

static void test_parse_file(void **state)
{
    struct fx *f = *state;
    char err[512];
    struct alias_db *db = load_text(f,
        "# Debian-style aliases\n"
        "\n"
        "mailer-daemon: postmaster\n"
        "Postmaster:    root\n"
        "root: alice, bob@example.org,\n"
        "\tcarol\n"
        "# a comment between continuations\n"
        "   , dave\n"
        "archive: /var/mail/archive\n"
        "bugs: \"|/usr/bin/bugtrack --queue incoming\"\n"
        "bare: |/usr/bin/procmail -a x\n"
        "list: :include:/etc/mail/list.txt\n"
        "quoted: \"/path with space/file\", \"some, body\"@example.org, \"a\\\"b\"\n"
        "MixedCase : Target\n"
        "root: ignored-duplicate\n"
        "  \n",
        err, sizeof(err));
    assert_non_null(db);
    assert_string_equal(err, "");

    const struct alias_entry *e = alias_lookup(db, "ROOT");
    assert_non_null(e);
    assert_string_equal(e->name, "root");
    assert_int_equal(e->ntargets, 4);
    check_target(e, 0, ALIAS_ADDR, "alice");
    check_target(e, 1, ALIAS_ADDR, "bob@example.org");
    check_target(e, 2, ALIAS_ADDR, "carol");
    check_target(e, 3, ALIAS_ADDR, "dave");
    char src[200];
    snprintf(src, sizeof(src), "%s:5", f->file);
    assert_string_equal(e->source, src);
    struct stat st;
    assert_int_equal(stat(f->file, &st), 0);
    assert_int_equal(e->owner, st.st_uid);
    assert_int_equal(e->group, st.st_gid);

    e = alias_lookup(db, "postmaster");
    assert_non_null(e);
    assert_string_equal(e->name, "postmaster");
    check_target(e, 0, ALIAS_ADDR, "root");

    e = alias_lookup(db, "archive");
    check_target(e, 0, ALIAS_FILE, "/var/mail/archive");
    e = alias_lookup(db, "bugs");
    check_target(e, 0, ALIAS_PIPE, "/usr/bin/bugtrack --queue incoming");
    e = alias_lookup(db, "bare");
    check_target(e, 0, ALIAS_PIPE, "/usr/bin/procmail -a x");
    e = alias_lookup(db, "list");
    check_target(e, 0, ALIAS_INCLUDE, "/etc/mail/list.txt");
    e = alias_lookup(db, "quoted");
    assert_int_equal(e->ntargets, 3);
    check_target(e, 0, ALIAS_FILE, "/path with space/file");
    check_target(e, 1, ALIAS_ADDR, "\"some, body\"@example.org");
    check_target(e, 2, ALIAS_ADDR, "a\"b");
    e = alias_lookup(db, "mixedcase");
    assert_non_null(e);
    assert_string_equal(e->name, "mixedcase");
    check_target(e, 0, ALIAS_ADDR, "Target");

    assert_null(alias_lookup(db, "nobody-here"));
    assert_null(alias_lookup(db, "roo"));
    assert_null(alias_lookup(NULL, "root"));
    alias_free(db);
}

static void test_parse_targets(void **state)
{
    (void)state;
    struct alias_target *t;
    char err[256];
    long n = alias_parse_targets(" a , \"|cmd \\\"x, y\\\" z\", /f ,, :include:/i,", &t, err,
                                 sizeof(err));
    assert_int_equal(n, 4);
    assert_int_equal(t[0].type, ALIAS_ADDR);
    assert_string_equal(t[0].value, "a");
    assert_int_equal(t[1].type, ALIAS_PIPE);
    assert_string_equal(t[1].value, "cmd \"x, y\" z");
    assert_int_equal(t[2].type, ALIAS_FILE);
    assert_string_equal(t[2].value, "/f");
    assert_int_equal(t[3].type, ALIAS_INCLUDE);
    assert_string_equal(t[3].value, "/i");
    alias_targets_free(t, (size_t)n);

    assert_int_equal(alias_parse_targets("", &t, err, sizeof(err)), 0);
    alias_targets_free(t, 0);
    assert_int_equal(alias_parse_targets("\"unterminated, x", &t, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "quote"));
    assert_int_equal(alias_parse_targets("a b", &t, err, sizeof(err)), -1);
    assert_int_equal(alias_parse_targets("\"|\"", &t, err, sizeof(err)), -1);
    assert_int_equal(alias_parse_targets(":include:relative", &t, err, sizeof(err)), -1);
}

/* expect_error - loading text fails with "FILE:LINE: ..." containing what */
static void expect_error(struct fx *f, const char *text, int line, const char *what)
{
    char err[512];
    struct alias_db *db = load_text(f, text, err, sizeof(err));
    assert_null(db);
    assert_error_at(err, f->file, line, what);
}

static void test_errors(void **state)
{
    struct fx *f = *state;
    expect_error(f, "ok: a\n# c\nno colon here\n", 3, "missing ':'");
    expect_error(f, "ok: a\n\n: b\n", 3, "empty alias name");
    expect_error(f, "  leading: continuation\n", 1, "continuation");
    expect_error(f, "a: b\nc: \"|unterminated\n", 2, "quote");
    expect_error(f, "a: b\nc:\n", 2, "no targets");
    expect_error(f, "a: b\nmulti:\n  x,\n  \"y\n", 2, "quote");
    expect_error(f, "two words: x\n", 1, "white space");
}

static void test_missing_and_multiple_files(void **state)
{
    struct fx *f = *state;
    char err[512], list[400], second[160];
    snprintf(second, sizeof(second), "%s/second", f->dir);
    tmp_file_write(f->file, "a: first\n");
    tmp_file_write(second, "a: second\nb: other\n");
    snprintf(list, sizeof(list), "%s/missing, %s %s", f->dir, f->file, second);
    struct alias_db *db = alias_load(list, err, sizeof(err));
    assert_non_null(db);
    check_target(alias_lookup(db, "a"), 0, ALIAS_ADDR, "first");
    check_target(alias_lookup(db, "b"), 0, ALIAS_ADDR, "other");
    alias_free(db);

    db = alias_load("", err, sizeof(err));
    assert_non_null(db);
    assert_null(alias_lookup(db, "a"));
    alias_free(db);
}

static void test_many_entries(void **state)
{
    struct fx *f = *state;
    char err[512];
    FILE *fp = fopen(f->file, "w");
    assert_non_null(fp);
    for (int i = 0; i < 5000; i++)
        fprintf(fp, "User%d: target%d\n", i, i);
    fclose(fp);
    struct alias_db *db = alias_load(f->file, err, sizeof(err));
    assert_non_null(db);
    for (int i = 0; i < 5000; i += 7) {
        char name[32], want[32];
        snprintf(name, sizeof(name), "user%d", i);
        snprintf(want, sizeof(want), "target%d", i);
        const struct alias_entry *e = alias_lookup(db, name);
        assert_non_null(e);
        check_target(e, 0, ALIAS_ADDR, want);
    }
    assert_null(alias_lookup(db, "user5000"));
    alias_free(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_parse_file, setup, teardown),
        cmocka_unit_test(test_parse_targets),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_and_multiple_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_entries, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
