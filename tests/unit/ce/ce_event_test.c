/* SPDX-License-Identifier: MIT */
/* The event model: lookup, clone, equality, set_ext, and hr_ce_validate on built events. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ce/event.h"
#include "util/err.h"

static hr_ce_event_t *make(void)
{
    hr_ce_event_t *ev = calloc(1, sizeof *ev);
    ev->specversion = strdup("1.0");
    ev->id = strdup("1");
    ev->source = strdup("/s");
    ev->type = strdup("t");
    return ev;
}

static void test_get_and_set_ext(void **state)
{
    (void)state;
    hr_ce_event_t *ev = make();
    assert_int_equal(hr_ce_set_ext(ev, "zeta", "z", HR_CE_STRING), 0);
    assert_int_equal(hr_ce_set_ext(ev, "alpha", "5", HR_CE_INT), 0);
    assert_int_equal(hr_ce_set_ext(ev, "mid", "true", HR_CE_BOOL), 0);
    assert_int_equal(hr_ce_set_ext(ev, "alpha", "6", HR_CE_INT), 0); /* replaces */
    assert_int_equal(ev->n_exts, 3);
    assert_string_equal(ev->exts[0].name, "alpha");
    assert_string_equal(ev->exts[1].name, "mid");
    assert_string_equal(ev->exts[2].name, "zeta");
    assert_string_equal(hr_ce_get(ev, "alpha"), "6");
    assert_string_equal(hr_ce_get(ev, "zeta"), "z");
    assert_string_equal(hr_ce_get(ev, "type"), "t");
    assert_null(hr_ce_get(ev, "subject"));
    assert_null(hr_ce_get(ev, "nope"));
    assert_null(hr_ce_get(ev, "data"));
    hr_ce_error_t err;
    assert_int_equal(hr_ce_validate(ev, &err), 0);
    hr_ce_event_free(ev);
    hr_ce_event_free(NULL);
    hr_ce_events_free(NULL, 0);
}

static void test_clone_equal(void **state)
{
    (void)state;
    hr_ce_event_t *ev = make(), *c;
    hr_ce_set_ext(ev, "x", "1", HR_CE_INT);
    ev->data_kind = HR_CE_DATA_BINARY;
    ev->data = malloc(3);
    memcpy(ev->data, "a\0b", 3);
    ev->data_len = 3;
    assert_int_equal(hr_ce_event_clone(ev, &c), 0);
    assert_true(hr_ce_event_equal(ev, c));
    c->data[2] = 'c';
    assert_false(hr_ce_event_equal(ev, c));
    c->data[2] = 'b';
    c->exts[0].kind = HR_CE_STRING;
    assert_false(hr_ce_event_equal(ev, c));
    c->exts[0].kind = HR_CE_INT;
    free(c->subject);
    c->subject = strdup("s");
    assert_false(hr_ce_event_equal(ev, c));
    hr_ce_event_free(c);
    hr_ce_event_free(ev);
}

static void test_validate_built(void **state)
{
    (void)state;
    hr_ce_error_t err;
    static const struct {
        const char *name, *value;
        hr_ce_kind_t kind;
        const char *field; /* NULL: valid */
    } cases[] = {
        {"n", "2147483647", HR_CE_INT, NULL},
        {"n", "-2147483648", HR_CE_INT, NULL},
        {"n", "2147483648", HR_CE_INT, "n"},
        {"n", "-0", HR_CE_INT, "n"},
        {"n", "007", HR_CE_INT, "n"},
        {"n", "1.5", HR_CE_INT, "n"},
        {"n", "", HR_CE_INT, "n"},
        {"b", "true", HR_CE_BOOL, NULL},
        {"b", "TRUE", HR_CE_BOOL, "b"},
        {"data", "x", HR_CE_STRING, "data"},
        {"id", "x", HR_CE_STRING, "id"},
        {"time", "x", HR_CE_STRING, "time"},
        {"Upper", "x", HR_CE_STRING, "Upper"},
        {"s", "tab\there", HR_CE_STRING, "s"},
        {"s", "\xc3\x28", HR_CE_STRING, "s"},
        {"s", "", HR_CE_STRING, NULL},
        {"s", "x", (hr_ce_kind_t)9, "s"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hr_ce_event_t *ev = make();
        hr_ce_set_ext(ev, cases[i].name, cases[i].value, cases[i].kind);
        memset(&err, 0, sizeof err);
        int rc = hr_ce_validate(ev, &err);
        if (cases[i].field == NULL && rc != 0) {
            fail_msg("case %zu rejected: %s", i, err.msg);
        }
        if (cases[i].field != NULL && (rc != HR_EINVAL || strcmp(err.field, cases[i].field) != 0)) {
            fail_msg("case %zu: rc %d field %s", i, rc, err.field);
        }
        hr_ce_event_free(ev);
    }
    /* data consistency */
    hr_ce_event_t *ev = make();
    ev->data_kind = HR_CE_DATA_JSON;
    ev->data = (uint8_t *)strdup("{\"a\":");
    ev->data_len = 5;
    assert_int_equal(hr_ce_validate(ev, &err), HR_EINVAL);
    assert_string_equal(err.field, "data");
    memcpy(ev->data, " [1] ", 5);
    assert_int_equal(hr_ce_validate(ev, &err), 0);
    ev->data_kind = HR_CE_DATA_TEXT;
    ev->data[0] = (uint8_t)0xff;
    assert_int_equal(hr_ce_validate(ev, &err), HR_EINVAL);
    ev->data_kind = HR_CE_DATA_BINARY;
    assert_int_equal(hr_ce_validate(ev, &err), 0);
    ev->data_kind = HR_CE_DATA_NONE;
    assert_int_equal(hr_ce_validate(ev, &err), HR_EINVAL);
    hr_ce_event_free(ev);
    /* a NULL error pointer is allowed */
    ev = make();
    free(ev->id);
    ev->id = NULL;
    assert_int_equal(hr_ce_validate(ev, NULL), HR_EINVAL);
    hr_ce_event_free(ev);
}

static void test_long_value_in_message(void **state)
{
    (void)state;
    hr_ce_event_t *ev = make();
    char big[2000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    big[5] = ' ';
    free(ev->source);
    ev->source = strdup(big);
    hr_ce_error_t err;
    assert_int_equal(hr_ce_validate(ev, &err), HR_EINVAL);
    assert_string_equal(err.field, "source");
    assert_non_null(strstr(err.msg, "..."));
    assert_true(strlen(err.msg) < sizeof err.msg);
    hr_ce_event_free(ev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_and_set_ext),
        cmocka_unit_test(test_clone_equal),
        cmocka_unit_test(test_validate_built),
        cmocka_unit_test(test_long_value_in_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
