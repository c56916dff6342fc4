/* test_reply.c - every row of the reply table is consistent */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "smtp_reply.h"

static void test_codes_match_class(void **state)
{
    (void)state;
    for (int i = 0; i < R__COUNT; i++) {
        const struct reply_def *r = &reply_defs[i];
        assert_non_null(r->name);
        assert_true(r->code >= 200 && r->code <= 559);
        if ((r->code == 220 && r->esc[0] == '\0') || r->code == 354 || r->code == 334) {
            assert_string_equal(r->esc, "");
            continue;
        }
        assert_int_equal(r->esc[0] - '0', r->code / 100);
        assert_true(reply_esc_registered(r->esc));
    }
}

static void test_registry(void **state)
{
    (void)state;
    assert_true(reply_esc_registered("5.7.1"));
    assert_true(reply_esc_registered("2.0.0"));
    assert_false(reply_esc_registered("5.9.9"));
    assert_false(reply_esc_registered("3.0.0"));
    assert_false(reply_esc_registered("5.7.1x"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codes_match_class),
        cmocka_unit_test(test_registry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
