/* SPDX-License-Identifier: MIT */
/*
 * The CloudEvents JSON format: the validation table (structured mode input -> accepted or the
 * field named in the error), data vs data_base64, batches, and byte-exact round trips through
 * hr_ce_to_json and the record encoding.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ce/event.h"
#include "util/err.h"

#define BASE "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\""
#define B(extra) BASE extra "}"

static int parse(const char *json, hr_ce_event_t **ev, hr_ce_error_t *err)
{
    memset(err, 0, sizeof *err);
    return hr_ce_from_structured((const uint8_t *)json, strlen(json), ev, err);
}

typedef struct vcase {
    const char *json;
    const char *field; /* NULL: must be accepted */
} vcase_t;

static const vcase_t vcases[] = {
    /* accepted */
    {B(""), NULL},
    {B(",\"time\":\"2018-04-05T17:31:00Z\""), NULL},
    {B(",\"time\":\"2018-04-05T17:31:00.123+02:00\""), NULL},
    {B(",\"time\":null"), NULL},
    {B(",\"subject\":null,\"dataschema\":null,\"datacontenttype\":null"), NULL},
    {B(",\"dataschema\":\"https://example.com/schema.json#/defs/x\""), NULL},
    {B(",\"dataschema\":\"urn:example:schema\""), NULL},
    {B(",\"datacontenttype\":\"application/json; charset=utf-8\""), NULL},
    {B(",\"partitionkey\":\"k1\",\"traceparent\":\"00-abc-def-01\""), NULL},
    {B(",\"comexampleextension1\":\"v\""), NULL},          /* 20 chars */
    {B(",\"comexampleextensionlongername\":\"v\""), NULL}, /* > 20: only a SHOULD */
    {B(",\"n\":2147483647,\"m\":-2147483648,\"z\":0"), NULL},
    {B(",\"flag\":true,\"other\":false"), NULL},
    {B(",\"ext\":null"), NULL},
    {B(",\"subject\":\"caf\\u00e9 \\ud83d\\ude00\""), NULL},
    {"{\"source\":\"https://ex.com/a?b=c#d\",\"type\":\"t\",\"id\":\"x\",\"specversion\":\"1.0\"}",
     NULL},
    {"{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"urn:uuid:6e8bc430-9c3a\",\"type\":\"t\"}",
     NULL},
    {"{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"//host:8080/p%20q\",\"type\":\"t\"}",
     NULL},
    {"{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"http://[::1]:80/x\",\"type\":\"t\"}",
     NULL},
    {" \n{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\",\"type\":\"t\"}\n ", NULL},
    {"{\"\\u0073pecversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\",\"type\":\"t\"}", NULL},
    /* required attributes */
    {"{\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\"}", "specversion"},
    {"{\"specversion\":\"1.0\",\"source\":\"/s\",\"type\":\"t\"}", "id"},
    {"{\"specversion\":\"1.0\",\"id\":\"1\",\"type\":\"t\"}", "source"},
    {"{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\"}", "type"},
    {"{\"specversion\":\"1.0\",\"id\":\"\",\"source\":\"/s\",\"type\":\"t\"}", "id"},
    {"{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"\",\"type\":\"t\"}", "source"},
    {"{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"\"}", "type"},
    {"{\"specversion\":\"1.0\",\"id\":null,\"source\":\"/s\",\"type\":\"t\"}", "id"},
    {"{\"specversion\":\"0.3\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\"}", "specversion"},
    {"{\"specversion\":\"1.0 \",\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\"}", "specversion"},
    {"{\"specversion\":1.0,\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\"}", "specversion"},
    /* wrong JSON types for context attributes */
    {"{\"specversion\":\"1.0\",\"id\":5,\"source\":\"/s\",\"type\":\"t\"}", "id"},
    {"{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":[\"/s\"],\"type\":\"t\"}", "source"},
    {"{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\",\"type\":true}", "type"},
    {B(",\"subject\":{}"), "subject"},
    {B(",\"time\":1522949460"), "time"},
    /* source and dataschema URIs */
    {"{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/a b\",\"type\":\"t\"}", "source"},
    {"{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/a%zz\",\"type\":\"t\"}", "source"},
    {"{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/a%4\",\"type\":\"t\"}", "source"},
    {"{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/a\\u0001\",\"type\":\"t\"}", "source"},
    {"{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/caf\\u00e9\",\"type\":\"t\"}", "source"},
    {"{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"1http://x\",\"type\":\"t\"}", "source"},
    {"{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/a<b>\",\"type\":\"t\"}", "source"},
    {"{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"http://h:8x/\",\"type\":\"t\"}", "source"},
    {B(",\"dataschema\":\"/relative/schema\""), "dataschema"},
    {B(",\"dataschema\":\"\""), "dataschema"},
    {B(",\"dataschema\":\"http://ex.com/a b\""), "dataschema"},
    /* time */
    {B(",\"time\":\"2020-13-01\""), "time"},
    {B(",\"time\":\"2020-02-30T00:00:00Z\""), "time"},
    {B(",\"time\":\"2020-01-01 00:00:00Z\""), "time"},
    {B(",\"time\":\"\""), "time"},
    /* other strings */
    {B(",\"subject\":\"\""), "subject"},
    {B(",\"subject\":\"a\\nb\""), "subject"},
    {B(",\"subject\":\"a\\u0000b\""), "subject"},
    {B(",\"subject\":\"a\\u0085b\""), "subject"}, /* C1 control */
    {B(",\"subject\":\"a\\ufdd0b\""), "subject"}, /* noncharacter */
    {B(",\"subject\":\"a\\uffffb\""), "subject"}, /* noncharacter */
    {B(",\"datacontenttype\":\"json\""), "datacontenttype"},
    {B(",\"datacontenttype\":\"\""), "datacontenttype"},
    /* extensions */
    {B(",\"Foo\":\"x\""), "Foo"},
    {B(",\"foo_bar\":\"x\""), "foo_bar"},
    {B(",\"foo-bar\":\"x\""), "foo-bar"},
    {B(",\"\":\"x\""), ""},
    {B(",\"ext\":1.5"), "ext"},
    {B(",\"ext\":1e3"), "ext"},
    {B(",\"ext\":1.0"), "ext"},
    {B(",\"ext\":2147483648"), "ext"},
    {B(",\"ext\":-2147483649"), "ext"},
    {B(",\"ext\":99999999999999999999"), "ext"},
    {B(",\"ext\":{\"a\":1}"), "ext"},
    {B(",\"ext\":[1]"), "ext"},
    {B(",\"ext\":\"a\\u0007\""), "ext"},
    /* duplicates */
    {B(",\"id\":\"2\""), "id"},
    {B(",\"ext\":\"a\",\"ext\":\"b\""), "ext"},
    {B(",\"ext\":null,\"ext\":\"b\""), "ext"},
    {B(",\"\\u0069d\":\"2\""), "id"},
    {B(",\"data\":1,\"data\":2"), "data"},
    /* data */
    {B(",\"data\":1,\"data_base64\":\"AA==\""), "data_base64"},
    {B(",\"data_base64\":\"AA=\""), "data_base64"},
    {B(",\"data_base64\":\"A A=\""), "data_base64"},
    {B(",\"data_base64\":5"), "data_base64"},
    {B(",\"data_base64\":\"AAAA\",\"data_base64\":\"AAAA\""), "data_base64"},
    /* syntax */
    {BASE, "body"},
    {B(",\"data\":{\"a\":}"), "data"},
    {B(",\"data\":01"), "body"}, /* "0" then a stray "1" */
    {B(",\"data\":\"\\x\""), "data"},
    {B(",\"data\":\"\\ud800\""), "data"},
    {BASE ",}", "body"},
    {BASE "} x", "body"},
    {"[]", "body"},
    {"\"x\"", "body"},
    {"", "body"},
    {"{\"specversion\":\"1.0\",\"id\":\"\xc0\xa0\",\"source\":\"/s\",\"type\":\"t\"}", "id"},
    {"{\"specversion\":\"1.0\",\"id\":\"\xed\xa0\x80\",\"source\":\"/s\",\"type\":\"t\"}", "id"},
};

static void test_validation_table(void **state)
{
    (void)state;
    assert_true(sizeof vcases / sizeof vcases[0] >= 40);
    for (size_t i = 0; i < sizeof vcases / sizeof vcases[0]; i++) {
        hr_ce_event_t *ev = (hr_ce_event_t *)1;
        hr_ce_error_t err;
        int rc = parse(vcases[i].json, &ev, &err);
        if (vcases[i].field == NULL) {
            if (rc != 0) {
                fail_msg("row %zu %s: rejected: [%s] %s", i, vcases[i].json, err.field, err.msg);
            }
            assert_int_equal(hr_ce_validate(ev, &err), 0);
            hr_ce_event_free(ev);
            continue;
        }
        if (rc != HR_EINVAL) {
            fail_msg("row %zu %s: expected an error on \"%s\", got %d", i, vcases[i].json,
                     vcases[i].field, rc);
        }
        assert_null(ev);
        if (strcmp(err.field, vcases[i].field) != 0) {
            fail_msg("row %zu %s: error names \"%s\" (%s), expected \"%s\"", i, vcases[i].json,
                     err.field, err.msg, vcases[i].field);
        }
        assert_true(strlen(err.msg) > 20);
        assert_int_equal(err.index, -1);
    }
}

static void test_error_messages(void **state)
{
    (void)state;
    hr_ce_event_t *ev;
    hr_ce_error_t err;
    assert_int_equal(parse(B(",\"time\":\"2020-13-01\""), &ev, &err), HR_EINVAL);
    assert_string_equal(err.field, "time");
    assert_non_null(strstr(err.msg, "attribute \"time\" is not an RFC 3339 timestamp"));
    assert_non_null(strstr(err.msg, "\"2020-13-01\""));
    assert_int_equal(parse(B(",\"ext\":1.5"), &ev, &err), HR_EINVAL);
    assert_non_null(strstr(err.msg, "Integer"));
    assert_int_equal(parse("{\"specversion\":\"1.0\",\"id\":5}", &ev, &err), HR_EINVAL);
    assert_string_equal(err.msg, "attribute \"id\" must be a JSON string, not a number");
    assert_int_equal(parse(BASE ",\"data\":[1,2}", &ev, &err), HR_EINVAL);
    assert_non_null(strstr(err.msg, "byte offset"));
}

static void test_extension_typing(void **state)
{
    (void)state;
    hr_ce_event_t *ev;
    hr_ce_error_t err;
    assert_int_equal(parse(B(",\"s\":\"42\",\"i\":42,\"neg\":-7,\"z\":-0,\"b\":true,\"f\":false,"
                             "\"gone\":null"),
                           &ev, &err),
                     0);
    assert_int_equal(ev->n_exts, 6);
    /* sorted by name */
    const char *names[] = {"b", "f", "i", "neg", "s", "z"};
    const char *values[] = {"true", "false", "42", "-7", "42", "0"};
    hr_ce_kind_t kinds[] = {HR_CE_BOOL, HR_CE_BOOL, HR_CE_INT, HR_CE_INT, HR_CE_STRING, HR_CE_INT};
    for (size_t i = 0; i < 6; i++) {
        assert_string_equal(ev->exts[i].name, names[i]);
        assert_string_equal(ev->exts[i].value, values[i]);
        assert_int_equal(ev->exts[i].kind, kinds[i]);
    }
    assert_null(hr_ce_get(ev, "gone"));
    hr_buf_t b = HR_BUF_INIT;
    assert_int_equal(hr_ce_to_json(ev, &b), 0);
    assert_string_equal((char *)b.data, "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\","
                                        "\"type\":\"t\",\"b\":true,\"f\":false,\"i\":42,"
                                        "\"neg\":-7,\"s\":\"42\",\"z\":0}");
    hr_buf_free(&b);
    hr_ce_event_free(ev);
}

static hr_ce_event_t *must_parse(const char *json)
{
    hr_ce_event_t *ev = NULL;
    hr_ce_error_t err;
    int rc = parse(json, &ev, &err);
    if (rc != 0) {
        fail_msg("%s rejected: [%s] %s", json, err.field, err.msg);
    }
    return ev;
}

static void test_data_kinds(void **state)
{
    (void)state;
    hr_ce_event_t *ev;
    /* no datacontenttype: JSON, exact text */
    ev = must_parse(B(",\"data\": { \"a\" : [1, 2.50, \"x\\u00e9\"] } "));
    assert_int_equal(ev->data_kind, HR_CE_DATA_JSON);
    assert_int_equal(ev->data_len, strlen("{ \"a\" : [1, 2.50, \"x\\u00e9\"] }"));
    assert_memory_equal(ev->data, "{ \"a\" : [1, 2.50, \"x\\u00e9\"] }", ev->data_len);
    hr_ce_event_free(ev);
    /* explicit null data is JSON null, distinct from absent */
    ev = must_parse(B(",\"data\":null"));
    assert_int_equal(ev->data_kind, HR_CE_DATA_JSON);
    assert_int_equal(ev->data_len, 4);
    assert_memory_equal(ev->data, "null", 4);
    hr_ce_event_free(ev);
    ev = must_parse(B(""));
    assert_int_equal(ev->data_kind, HR_CE_DATA_NONE);
    assert_null(ev->data);
    hr_ce_event_free(ev);
    /* JSON content type with a string: the JSON string text itself */
    ev = must_parse(B(",\"datacontenttype\":\"application/cloudevents+JSON\",\"data\":\"a\\nb\""));
    assert_int_equal(ev->data_kind, HR_CE_DATA_JSON);
    assert_int_equal(ev->data_len, 6);
    assert_memory_equal(ev->data, "\"a\\nb\"", 6);
    hr_ce_event_free(ev);
    /* text content type with a string: TEXT, unescaped; datacontenttype may come after data */
    ev = must_parse(B(",\"data\":\"caf\\u00e9\\n\\u0000!\",\"datacontenttype\":\"text/plain\""));
    assert_int_equal(ev->data_kind, HR_CE_DATA_TEXT);
    assert_int_equal(ev->data_len, 8);
    assert_memory_equal(ev->data, "caf\xc3\xa9\n\0!", 8);
    hr_ce_event_free(ev);
    /* non-JSON content type with a non-string: kept as JSON text (lenient) */
    ev = must_parse(B(",\"datacontenttype\":\"text/plain\",\"data\":[1,2]"));
    assert_int_equal(ev->data_kind, HR_CE_DATA_JSON);
    assert_memory_equal(ev->data, "[1,2]", 5);
    hr_ce_event_free(ev);
    /* data_base64: BINARY whatever the content type */
    ev = must_parse(B(",\"datacontenttype\":\"application/json\",\"data_base64\":\"AAEC/w==\""));
    assert_int_equal(ev->data_kind, HR_CE_DATA_BINARY);
    assert_int_equal(ev->data_len, 4);
    assert_memory_equal(ev->data, "\x00\x01\x02\xff", 4);
    hr_ce_event_free(ev);
    ev = must_parse(B(",\"data_base64\":\"\""));
    assert_int_equal(ev->data_kind, HR_CE_DATA_BINARY);
    assert_int_equal(ev->data_len, 0);
    hr_ce_event_free(ev);
    /* data_base64 null is absent, so data may be present too */
    ev = must_parse(B(",\"data_base64\":null,\"data\":7"));
    assert_int_equal(ev->data_kind, HR_CE_DATA_JSON);
    hr_ce_event_free(ev);
}

static void roundtrip(const char *json)
{
    hr_ce_event_t *ev = must_parse(json), *back = NULL, *dec = NULL;
    hr_ce_error_t err;
    hr_buf_t j = HR_BUF_INIT, j2 = HR_BUF_INIT, rec = HR_BUF_INIT;
    assert_int_equal(hr_ce_to_json(ev, &j), 0);
    int rc = hr_ce_from_structured(j.data, j.len, &back, &err);
    if (rc != 0) {
        fail_msg("%s re-parse failed: %s", (char *)j.data, err.msg);
    }
    assert_true(hr_ce_event_equal(ev, back));
    assert_int_equal(hr_ce_to_json(back, &j2), 0);
    assert_string_equal((char *)j.data, (char *)j2.data); /* encoding is a fixed point */
    assert_int_equal(hr_ce_encode(ev, &rec), 0);
    assert_int_equal(hr_ce_decode(rec.data, rec.len, &dec), 0);
    assert_true(hr_ce_event_equal(ev, dec));
    hr_ce_event_free(ev);
    hr_ce_event_free(back);
    hr_ce_event_free(dec);
    hr_buf_free(&j);
    hr_buf_free(&j2);
    hr_buf_free(&rec);
}

static void test_roundtrips(void **state)
{
    (void)state;
    roundtrip(B(""));
    roundtrip(B(",\"data\":{ \"a\" : [1, 2.50, \"x\\u00e9\"] }"));
    roundtrip(B(",\"data\":\n[\n1e+5 , -0.0,\"\\ud83d\\ude00\\/\" ,{}\t]"));
    roundtrip(B(",\"data\":{\"dup\":1,\"dup\":2}"));
    roundtrip(B(",\"data\":null"));
    roundtrip(B(",\"data\":\"just a string\""));
    roundtrip(B(",\"datacontenttype\":\"text/plain\",\"data\":\"t\\u0001\\\"\\\\ \xe2\x82\xac\""));
    roundtrip(B(",\"datacontenttype\":\"text/xml\",\"data\":{\"x\":1}"));
    roundtrip(B(",\"data_base64\":\"AAECAwQFBgcICQ==\",\"datacontenttype\":\"image/png\""));
    roundtrip(B(",\"data_base64\":\"\""));
    roundtrip("{\"type\":\"com.example.x\",\"time\":\"2018-04-05t17:31:00.5+01:00\","
              "\"source\":\"https://ex.com/p?q=1#f\",\"subject\":\"sub \\\"q\\\" \\u00e9\","
              "\"dataschema\":\"http://ex.com/s\",\"id\":\"A234-1234-1234\",\"specversion\":"
              "\"1.0\",\"zz\":\"last\",\"aa\":1,\"mm\":false,\"datacontenttype\":"
              "\"application/json\",\"data\":{\"appinfoA\":\"abc\"}}");
}

static void test_to_json_exact_bytes(void **state)
{
    (void)state;
    hr_ce_event_t *ev = must_parse(
        "{\"data\" : { \"a\" : [1, 2.50, \"x\\u00e9\"] },\"x\":\"\\u00e9\",\"time\":"
        "\"2018-04-05T17:31:00Z\",\"subject\":\"s\",\"dataschema\":\"http://d\","
        "\"datacontenttype\":\"application/json\",\"type\":\"t\",\"source\":\"/s\",\"id\":\"1\","
        "\"specversion\":\"1.0\",\"b\":true}");
    hr_buf_t b = HR_BUF_INIT;
    assert_int_equal(hr_buf_puts(&b, "prefix:"), 0);
    assert_int_equal(hr_ce_to_json(ev, &b), 0);
    assert_string_equal((char *)b.data,
                        "prefix:{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\",\"type\":"
                        "\"t\",\"datacontenttype\":\"application/json\",\"dataschema\":"
                        "\"http://d\",\"subject\":\"s\",\"time\":\"2018-04-05T17:31:00Z\","
                        "\"b\":true,\"x\":\"\xc3\xa9\",\"data\":{ \"a\" : [1, 2.50, "
                        "\"x\\u00e9\"] }}");
    hr_buf_free(&b);
    hr_ce_event_free(ev);
    ev = must_parse(B(",\"data_base64\":\"AP8=\""));
    assert_int_equal(hr_ce_to_json(ev, &b), 0);
    assert_string_equal((char *)b.data, BASE ",\"data_base64\":\"AP8=\"}");
    hr_buf_free(&b);
    hr_ce_event_free(ev);
}

static void test_batch(void **state)
{
    (void)state;
    hr_ce_event_t **evs = (hr_ce_event_t **)1;
    size_t n = 99;
    hr_ce_error_t err;
    const char *ok = "[" B(",\"data\":1") " , " B(",\"x\":2") ",\n" B("") "]";
    assert_int_equal(hr_ce_from_batch((const uint8_t *)ok, strlen(ok), &evs, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_string_equal(hr_ce_get(evs[1], "x"), "2");
    hr_ce_events_free(evs, n);

    assert_int_equal(hr_ce_from_batch((const uint8_t *)" [ ] ", 5, &evs, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_non_null(evs);
    hr_ce_events_free(evs, n);

    static const struct {
        const char *in;
        long index;
        const char *field;
    } bad[] = {
        {"[" B("") "," B(",\"time\":\"x\"") "," B("") "]", 1, "time"},
        {"[" B(",\"id\":\"dup\"") "]", 0, "id"},
        {"[" B("") ",5]", 1, "body"},
        {"[" B("") ",[]]", 1, "body"},
        {"[" B("") ",null]", 1, "body"},
        {"[" B("") "," B("") "," BASE "]", 2, "body"},
        {"[" B("") ",]", 1, "body"},
        {"[" B("") " " B("") "]", -1, "body"},
        {"[" B(""), -1, "body"},
        {"[" B("") "] x", -1, "body"},
        {B(""), -1, "body"},
        {"\"x\"", -1, "body"},
        {"", -1, "body"},
        {"[" B("") "," B(",\"data\":1,\"data_base64\":\"\"") "]", 1, "data_base64"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&err, 0, sizeof err);
        evs = (hr_ce_event_t **)1;
        n = 99;
        int rc = hr_ce_from_batch((const uint8_t *)bad[i].in, strlen(bad[i].in), &evs, &n, &err);
        if (rc != HR_EINVAL || evs != NULL || n != 0) {
            fail_msg("batch %zu accepted: %s", i, bad[i].in);
        }
        if (err.index != bad[i].index || strcmp(err.field, bad[i].field) != 0) {
            fail_msg("batch %zu: index %ld field %s (%s); expected %ld %s", i, err.index, err.field,
                     err.msg, bad[i].index, bad[i].field);
        }
        if (bad[i].index >= 0) {
            char want[48];
            snprintf(want, sizeof want, "batch element %ld", bad[i].index);
            assert_non_null(strstr(err.msg, want));
        }
    }
}

static void test_deep_nesting(void **state)
{
    (void)state;
    size_t depth = 100000;
    size_t cap = strlen(BASE) + 2 * depth + 32;
    char *s = malloc(cap);
    size_t o = (size_t)sprintf(s, "%s,\"data\":", BASE);
    memset(s + o, '[', depth);
    o += depth;
    memset(s + o, ']', depth);
    o += depth;
    s[o++] = '}';
    hr_ce_event_t *ev;
    hr_ce_error_t err;
    assert_int_equal(hr_ce_from_structured((uint8_t *)s, o, &ev, &err), HR_EINVAL);
    assert_string_equal(err.field, "data");
    /* 200 levels are fine */
    o = (size_t)sprintf(s, "%s,\"data\":", BASE);
    memset(s + o, '[', 200);
    memset(s + o + 200, ']', 200);
    o += 400;
    s[o++] = '}';
    assert_int_equal(hr_ce_from_structured((uint8_t *)s, o, &ev, &err), 0);
    hr_ce_event_free(ev);
    free(s);
}

/* Every prefix of a valid document is rejected without a crash or a leak. */
static void test_truncations(void **state)
{
    (void)state;
    const char *doc = B(",\"time\":\"2018-04-05T17:31:00Z\",\"x\":-12,\"y\":true,"
                        "\"data\":{\"a\":[1,2.5e3,\"\\ud83d\\ude00\",null]}");
    size_t len = strlen(doc);
    for (size_t i = 0; i < len; i++) {
        hr_ce_event_t *ev;
        hr_ce_error_t err;
        assert_int_equal(hr_ce_from_structured((const uint8_t *)doc, i, &ev, &err), HR_EINVAL);
        assert_null(ev);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validation_table),
        cmocka_unit_test(test_error_messages),
        cmocka_unit_test(test_extension_typing),
        cmocka_unit_test(test_data_kinds),
        cmocka_unit_test(test_roundtrips),
        cmocka_unit_test(test_to_json_exact_bytes),
        cmocka_unit_test(test_batch),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_truncations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
