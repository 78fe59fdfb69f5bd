/* SPDX-License-Identifier: MIT */
/* Trigger documents: defaults, every member, and a table of invalid documents with the path
 * each error must name. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "broker/trigger.h"

static hr_trigger_spec_t *parse_ok(const char *json)
{
    char err[256], path[128];
    hr_trigger_spec_t *s = NULL;
    int rc = hr_trigger_parse("t", json, strlen(json), &s, err, sizeof err, path, sizeof path);
    if (rc != 0) {
        fail_msg("rejected %s: [%s] %s", json, path, err);
    }
    return s;
}

static void test_defaults(void **state)
{
    (void)state;
    hr_trigger_spec_t *s = parse_ok("{\"sink\":\"http://127.0.0.1:9/x\"}");
    assert_string_equal(s->bus, "default");
    assert_int_equal(s->retry, 5);
    assert_int_equal(s->backoff, HR_BACKOFF_EXPONENTIAL);
    assert_int_equal(s->backoff_delay_ms, 200);
    assert_int_equal(s->max_backoff_ms, 30000);
    assert_int_equal(s->timeout_ms, 10000);
    assert_int_equal(s->retry_after_max_ms, 60000);
    assert_int_equal(s->max_age_ms, 0);
    assert_int_equal(s->format, HR_FORMAT_BINARY);
    assert_int_equal(s->ordering, HR_ORDERING_NONE);
    assert_int_equal(s->max_in_flight, 64);
    assert_int_equal(s->pipeline, 1);
    assert_int_equal(s->start, HR_START_LATEST);
    assert_null(s->dead_letter_sink);
    assert_null(s->reply_bus);
    assert_string_equal(s->filters_json, "[]");
    hr_trigger_spec_unref(s);
}

static void test_all_members_round_trip(void **state)
{
    (void)state;
    const char *doc =
        "{\"bus\":\"orders\",\"filters\":[{\"exact\":{\"type\":\"a\"}}],"
        "\"sink\":\"https://example.test/x\",\"delivery\":{\"retry\":2,\"backoff_policy\":"
        "\"linear\",\"backoff_delay\":\"PT1S\",\"max_backoff\":\"PT5S\",\"timeout\":\"PT2S\","
        "\"retry_after_max\":\"PT3S\",\"max_age\":\"PT1H\",\"dead_letter_sink\":"
        "\"http://127.0.0.1:9/dlq\",\"pipeline\":8},\"format\":\"structured\",\"ordering\":\"key\","
        "\"max_in_flight\":7,\"rate_limit\":2.5,\"start\":42,\"reply_bus\":\"replies\","
        "\"headers\":{\"authorization\":\"Bearer x\"}}";
    hr_trigger_spec_t *s = parse_ok(doc);
    assert_int_equal(s->retry, 2);
    assert_int_equal(s->backoff, HR_BACKOFF_LINEAR);
    assert_int_equal(s->max_age_ms, 3600000);
    assert_int_equal(s->pipeline, 8);
    assert_int_equal(s->start, HR_START_SEQ);
    assert_int_equal(s->start_value, 42);
    assert_true(s->rate_limit == 2.5);
    assert_int_equal(s->n_headers, 1);
    /* the serialized document parses back to the same spec */
    hr_buf_t out = HR_BUF_INIT;
    hr_trigger_spec_to_json(s, &out);
    hr_trigger_spec_t *s2 = parse_ok((const char *)out.data);
    hr_buf_t out2 = HR_BUF_INIT;
    hr_trigger_spec_to_json(s2, &out2);
    assert_string_equal(out.data, out2.data);
    hr_buf_free(&out);
    hr_buf_free(&out2);
    hr_trigger_spec_unref(s);
    hr_trigger_spec_unref(s2);
}

static void test_start_forms(void **state)
{
    (void)state;
    hr_trigger_spec_t *s = parse_ok("{\"sink\":\"http://h/\",\"start\":\"earliest\"}");
    assert_int_equal(s->start, HR_START_EARLIEST);
    hr_trigger_spec_unref(s);
    s = parse_ok("{\"sink\":\"http://h/\",\"start\":\"17\"}");
    assert_int_equal(s->start, HR_START_SEQ);
    assert_int_equal(s->start_value, 17);
    hr_trigger_spec_unref(s);
    s = parse_ok("{\"sink\":\"http://h/\",\"start\":\"1970-01-01T00:00:01Z\"}");
    assert_int_equal(s->start, HR_START_TIME);
    assert_int_equal(s->start_value, 1000000000ull);
    hr_trigger_spec_unref(s);
    s = parse_ok("{\"sink\":\"http://h/\",\"filter\":{\"attributes\":{\"type\":\"x\"}}}");
    assert_true(s->legacy_filter);
    hr_trigger_spec_unref(s);
}

static void test_invalid_table(void **state)
{
    (void)state;
    static const struct {
        const char *doc, *path;
    } rows[] = {
        {"[]", "body"},
        {"{", "body"},
        {"{}", "sink"},
        {"{\"sink\":\"ftp://h/\"}", "sink"},
        {"{\"sink\":\"http://\"}", "sink"},
        {"{\"sink\":\"http://h/a b\"}", "sink"},
        {"{\"sink\":5}", "sink"},
        {"{\"sink\":\"http://h/\",\"bogus\":1}", "bogus"},
        {"{\"sink\":\"http://h/\",\"bus\":3}", "bus"},
        {"{\"sink\":\"http://h/\",\"format\":\"xml\"}", "format"},
        {"{\"sink\":\"http://h/\",\"ordering\":\"fifo\"}", "ordering"},
        {"{\"sink\":\"http://h/\",\"max_in_flight\":0}", "max_in_flight"},
        {"{\"sink\":\"http://h/\",\"max_in_flight\":10001}", "max_in_flight"},
        {"{\"sink\":\"http://h/\",\"rate_limit\":-1}", "rate_limit"},
        {"{\"sink\":\"http://h/\",\"start\":\"soon\"}", "start"},
        {"{\"sink\":\"http://h/\",\"start\":0}", "start"},
        {"{\"sink\":\"http://h/\",\"delivery\":[]}", "delivery"},
        {"{\"sink\":\"http://h/\",\"delivery\":{\"retry\":-1}}", "delivery.retry"},
        {"{\"sink\":\"http://h/\",\"delivery\":{\"backoff_delay\":\"1s\"}}",
         "delivery.backoff_delay"},
        {"{\"sink\":\"http://h/\",\"delivery\":{\"backoff_policy\":\"random\"}}",
         "delivery.backoff_policy"},
        {"{\"sink\":\"http://h/\",\"delivery\":{\"timeout\":\"PT0S\"}}", "delivery.timeout"},
        {"{\"sink\":\"http://h/\",\"delivery\":{\"dead_letter_sink\":\"nope\"}}",
         "delivery.dead_letter_sink"},
        {"{\"sink\":\"http://h/\",\"delivery\":{\"extra\":1}}", "delivery.extra"},
        {"{\"sink\":\"http://h/\",\"delivery\":{\"pipeline\":0}}", "delivery.pipeline"},
        {"{\"sink\":\"http://h/\",\"delivery\":{\"pipeline\":65}}", "delivery.pipeline"},
        {"{\"sink\":\"http://h/\",\"delivery\":{\"pipeline\":\"8\"}}", "delivery.pipeline"},
        {"{\"sink\":\"http://h/\",\"headers\":{\"ce-id\":\"x\"}}", "headers.ce-id"},
        {"{\"sink\":\"http://h/\",\"headers\":{\"x\":\"a\\nb\"}}", "headers.x"},
        {"{\"sink\":\"http://h/\",\"headers\":[]}", "headers"},
        {"{\"sink\":\"http://h/\",\"filters\":{}}", "filters"},
        {"{\"sink\":\"http://h/\",\"filters\":[{\"exact\":{\"Type\":\"x\"}}]}", "filters[0].exact"},
        {"{\"sink\":\"http://h/\",\"filters\":[],\"filter\":{}}", "filter"},
        {"{\"sink\":\"http://h/\",\"reply_bus\":\"\"}", "reply_bus"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char err[256] = "", path[128] = "";
        hr_trigger_spec_t *s = NULL;
        int rc = hr_trigger_parse("t", rows[i].doc, strlen(rows[i].doc), &s, err, sizeof err, path,
                                  sizeof path);
        if (rc == 0) {
            hr_trigger_spec_unref(s);
            fail_msg("row %zu accepted: %s", i, rows[i].doc);
        }
        if (strncmp(path, rows[i].path, strlen(rows[i].path)) != 0) {
            fail_msg("row %zu (%s): path \"%s\" (%s), expected \"%s\"", i, rows[i].doc, path, err,
                     rows[i].path);
        }
        assert_true(strlen(err) > 10);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_all_members_round_trip),
        cmocka_unit_test(test_start_forms),
        cmocka_unit_test(test_invalid_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
