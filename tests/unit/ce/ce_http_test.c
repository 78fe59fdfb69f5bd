/* SPDX-License-Identifier: MIT */
/*
 * The HTTP protocol binding, binary content mode: ce-* headers with exactly one round of
 * percent-decoding, strict UTF-8, case-insensitive names, Content-Type as datacontenttype,
 * body kinds, header encoding for delivery, and content-mode detection.
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

#define REQ                                                                                        \
    {"ce-specversion", "1.0"}, {"ce-id", "1"}, {"ce-source", "/s"},                                \
    {                                                                                              \
        "ce-type", "t"                                                                             \
    }

static int decode(const hr_ce_header_t *h, size_t n, const char *ct, const char *body,
                  hr_ce_event_t **ev, hr_ce_error_t *err)
{
    memset(err, 0, sizeof *err);
    return hr_ce_from_binary(h, n, ct, (const uint8_t *)body, body ? strlen(body) : 0, ev, err);
}

/* Decodes REQ plus one extra header and returns the value of `attr` (caller frees), or NULL
 * with *rc set on error. */
static char *one(const char *name, const char *value, const char *attr, int *rc, hr_ce_error_t *err)
{
    hr_ce_header_t h[] = {REQ, {name, value}};
    hr_ce_event_t *ev = NULL;
    *rc = decode(h, 5, NULL, NULL, &ev, err);
    if (*rc != 0) {
        assert_null(ev);
        return NULL;
    }
    const char *v = hr_ce_get(ev, attr);
    char *copy = v ? strdup(v) : NULL;
    hr_ce_event_free(ev);
    return copy;
}

static void want_value(const char *raw, const char *decoded)
{
    int rc;
    hr_ce_error_t err;
    char *v = one("ce-subject", raw, "subject", &rc, &err);
    if (rc != 0) {
        fail_msg("%s rejected: %s", raw, err.msg);
    }
    assert_string_equal(v, decoded);
    free(v);
}

static void want_error(const char *raw, const char *field)
{
    int rc;
    hr_ce_error_t err;
    char *v = one("ce-subject", raw, "subject", &rc, &err);
    if (rc != HR_EINVAL) {
        fail_msg("%s accepted as \"%s\"", raw, v ? v : "(null)");
    }
    assert_string_equal(err.field, field);
    assert_true(strlen(err.msg) > 20);
}

static void test_percent_decoding(void **state)
{
    (void)state;
    want_value("plain", "plain");
    want_value("Euro%20%E2%82%AC%20%F0%9F%98%80", "Euro \xe2\x82\xac \xf0\x9f\x98\x80");
    want_value("%e2%82%ac", "\xe2\x82\xac"); /* lower-case hex accepted */
    want_value("%2525", "%25");              /* exactly one round */
    want_value("%25", "%");
    want_value("%41%42c", "ABc");       /* unnecessary escapes accepted */
    want_value("a+b", "a+b");           /* '+' is not a space */
    want_value("  padded\t", "padded"); /* OWS trimmed */
    want_value("\"quoted value\"", "quoted value");
    want_value("\"say \\\"hi\\\"\"", "say \"hi\"");
    want_value("a\"b c\"d", "ab cd");
    want_value("\"%20\"", " ");               /* quoting first, then percent-decoding */
    want_value("caf\xc3\xa9", "caf\xc3\xa9"); /* raw UTF-8 tolerated */
    want_error("%zz", "ce-subject");
    want_error("%4", "ce-subject");
    want_error("abc%", "ce-subject");
    want_error("%4g", "ce-subject");
    want_error("%C0%A0", "ce-subject");       /* overlong space (the spec's example) */
    want_error("%ED%A0%80", "ce-subject");    /* surrogate U+D800 */
    want_error("%F4%90%80%80", "ce-subject"); /* above U+10FFFF */
    want_error("%E2%82", "ce-subject");       /* truncated sequence */
    want_error("%FF", "ce-subject");
    want_error("\xc0\xa0", "ce-subject"); /* raw invalid UTF-8 */
    want_error("%00", "ce-subject");      /* NUL */
    want_error("%0A", "subject");         /* decodes fine, but a control character */
    want_error("\"unterminated", "ce-subject");
    hr_ce_error_t err;
    int rc;
    one("ce-subject", "%zz", "subject", &rc, &err);
    assert_non_null(strstr(err.msg, "percent-escape"));
    one("ce-subject", "%C0%A0", "subject", &rc, &err);
    assert_non_null(strstr(err.msg, "UTF-8"));
}

static void test_header_names(void **state)
{
    (void)state;
    hr_ce_header_t h[] = {{"CE-SpecVersion", "1.0"}, {"Ce-Id", "1"},    {"ce-SOURCE", "/s"},
                          {"cE-type", "t"},          {"CE-MyExt", "v"}, {"Host", "x"},
                          {"Content-Type", "a/b"},   {"X-Ce-Id", "no"}, {"cex", "no"}};
    hr_ce_event_t *ev;
    hr_ce_error_t err;
    assert_int_equal(decode(h, 9, NULL, NULL, &ev, &err), 0);
    assert_string_equal(ev->id, "1");
    assert_string_equal(ev->type, "t");
    assert_string_equal(hr_ce_get(ev, "myext"), "v");
    assert_int_equal(ev->n_exts, 1);
    assert_int_equal(ev->exts[0].kind, HR_CE_STRING);
    assert_null(ev->datacontenttype); /* only the content_type argument counts */
    hr_ce_event_free(ev);
}

static void test_header_errors(void **state)
{
    (void)state;
    static const struct {
        hr_ce_header_t h;
        const char *field;
        const char *msg_part;
    } cases[] = {
        {{"ce-id", "2"}, "ce-id", "more than once"},
        {{"CE-ID", "2"}, "ce-id", "more than once"},
        {{"ce-datacontenttype", "text/plain"}, "ce-datacontenttype", "Content-Type"},
        {{"ce-data", "x"}, "ce-data", "reserved"},
        {{"ce-my_ext", "x"}, "ce-my_ext", "lower-case"},
        {{"ce-", "x"}, "ce-", "lower-case"},
        {{"ce-time", "2020-13-01"}, "time", "RFC 3339"},
        {{"ce-dataschema", "relative/path"}, "dataschema", "absolute URI"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hr_ce_header_t h[] = {REQ, cases[i].h};
        hr_ce_event_t *ev = (hr_ce_event_t *)1;
        hr_ce_error_t err;
        assert_int_equal(decode(h, 5, NULL, NULL, &ev, &err), HR_EINVAL);
        assert_null(ev);
        if (strcmp(err.field, cases[i].field) != 0 || !strstr(err.msg, cases[i].msg_part)) {
            fail_msg("case %zu: [%s] %s", i, err.field, err.msg);
        }
    }
    /* duplicate extension */
    hr_ce_header_t d[] = {REQ, {"ce-x", "1"}, {"Ce-X", "2"}};
    hr_ce_event_t *ev;
    hr_ce_error_t err;
    assert_int_equal(decode(d, 6, NULL, NULL, &ev, &err), HR_EINVAL);
    assert_string_equal(err.field, "ce-x");
    /* each required header missing */
    static const char *const req[] = {"ce-specversion", "ce-id", "ce-source", "ce-type"};
    for (size_t skip = 0; skip < 4; skip++) {
        hr_ce_header_t h[4] = {REQ};
        hr_ce_header_t g[3];
        size_t n = 0;
        for (size_t k = 0; k < 4; k++) {
            if (k != skip) {
                g[n++] = h[k];
            }
        }
        assert_int_equal(decode(g, n, "application/json", "{}", &ev, &err), HR_EINVAL);
        assert_string_equal(err.field, req[skip]);
        assert_non_null(strstr(err.msg, req[skip]));
        assert_non_null(strstr(err.msg, "missing"));
    }
    hr_ce_header_t v[] = {
        {"ce-specversion", "0.3"}, {"ce-id", "1"}, {"ce-source", "/s"}, {"ce-type", "t"}};
    assert_int_equal(decode(v, 4, NULL, NULL, &ev, &err), HR_EINVAL);
    assert_string_equal(err.field, "specversion");
}

static void test_content_type_and_body(void **state)
{
    (void)state;
    hr_ce_header_t h[] = {REQ};
    hr_ce_event_t *ev;
    hr_ce_error_t err;
    static const struct {
        const char *ct;
        const char *body;
        hr_ce_data_kind_t kind;
    } cases[] = {
        {"application/json", "{\"a\": 1}\n", HR_CE_DATA_JSON},
        {"Application/JSON; charset=utf-8", " [1,2] ", HR_CE_DATA_JSON},
        {"text/json", "\"s\"", HR_CE_DATA_JSON},
        {"application/vnd.foo+json", "null", HR_CE_DATA_JSON},
        {"application/cloudevents+json;x=y", "1", HR_CE_DATA_JSON},
        {"text/plain", "hello \xe2\x82\xac", HR_CE_DATA_TEXT},
        {"TEXT/csv; charset=utf-8", "a,b", HR_CE_DATA_TEXT},
        {"text/plain", "bad \xc0\xa0 utf8", HR_CE_DATA_BINARY},
        {"application/octet-stream", "{\"a\":1}", HR_CE_DATA_BINARY},
        {"application/jsonx", "x", HR_CE_DATA_BINARY},
        {"application/xml", "<a/>", HR_CE_DATA_BINARY},
        {NULL, "raw", HR_CE_DATA_BINARY},
        {"application/json", NULL, HR_CE_DATA_NONE},
        {NULL, NULL, HR_CE_DATA_NONE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = decode(h, 4, cases[i].ct, cases[i].body, &ev, &err);
        if (rc != 0) {
            fail_msg("case %zu rejected: %s", i, err.msg);
        }
        if (ev->data_kind != cases[i].kind) {
            fail_msg("case %zu: kind %d, expected %d", i, ev->data_kind, cases[i].kind);
        }
        if (cases[i].ct != NULL) {
            assert_string_equal(ev->datacontenttype, cases[i].ct); /* as given, params kept */
        } else {
            assert_null(ev->datacontenttype);
        }
        if (cases[i].body != NULL) {
            assert_int_equal(ev->data_len, strlen(cases[i].body));
            assert_memory_equal(ev->data, cases[i].body, ev->data_len); /* byte for byte */
        } else {
            assert_null(ev->data);
        }
        hr_ce_event_free(ev);
    }
    /* JSON content type but not JSON: an error naming data */
    assert_int_equal(decode(h, 4, "application/json", "{not json", &ev, &err), HR_EINVAL);
    assert_string_equal(err.field, "data");
    assert_int_equal(decode(h, 4, "application/ld+json", "1 2", &ev, &err), HR_EINVAL);
    assert_string_equal(err.field, "data");
    /* an unparseable content type is not a media type */
    assert_int_equal(decode(h, 4, "nonsense", "x", &ev, &err), HR_EINVAL);
    assert_string_equal(err.field, "datacontenttype");
    /* binary body with NULs */
    uint8_t bin[] = {0, 1, 0, 0xff};
    assert_int_equal(hr_ce_from_binary(h, 4, "image/png", bin, 4, &ev, &err), 0);
    assert_int_equal(ev->data_kind, HR_CE_DATA_BINARY);
    assert_memory_equal(ev->data, bin, 4);
    hr_ce_event_free(ev);
}

typedef struct hdrs {
    char name[16][64];
    char value[16][256];
    hr_ce_header_t h[16];
    size_t n;
    const char *ct;
} hdrs_t;

static int collect(void *arg, const char *name, const char *value)
{
    hdrs_t *c = arg;
    assert_true(c->n < 16);
    snprintf(c->name[c->n], 64, "%s", name);
    snprintf(c->value[c->n], 256, "%s", value);
    c->h[c->n].name = c->name[c->n];
    c->h[c->n].value = c->value[c->n];
    if (strcmp(name, "Content-Type") == 0) {
        c->ct = c->value[c->n];
    }
    c->n++;
    return 0;
}

static int stop_at_second(void *arg, const char *name, const char *value)
{
    int *calls = arg;
    return ++*calls == 2 ? -42 : 0;
}

static void test_to_headers(void **state)
{
    (void)state;
    const char *json =
        "{\"specversion\":\"1.0\",\"id\":\"a b\\\"c%d\",\"source\":\"/s\","
        "\"type\":\"Euro \\u20ac \\ud83d\\ude00\",\"subject\":\"~!#$&'()*+,/:;=?@[]\","
        "\"datacontenttype\":\"text/plain; charset=utf-8\",\"num\":7,"
        "\"data\":\"body\"}";
    hr_ce_event_t *ev, *back;
    hr_ce_error_t err;
    assert_int_equal(hr_ce_from_structured((const uint8_t *)json, strlen(json), &ev, &err), 0);
    hdrs_t c = {0};
    assert_int_equal(hr_ce_to_headers(ev, collect, &c), 0);
    assert_int_equal(c.n, 7);
    assert_string_equal(c.name[0], "ce-specversion");
    assert_string_equal(c.name[1], "ce-id");
    assert_string_equal(c.value[1], "a%20b%22c%25d");
    assert_string_equal(c.value[3], "Euro%20%E2%82%AC%20%F0%9F%98%80");
    assert_string_equal(c.name[4], "Content-Type");
    assert_string_equal(c.value[4], "text/plain; charset=utf-8");
    assert_string_equal(c.name[5], "ce-subject");
    assert_string_equal(c.value[5], "~!#$&'()*+,/:;=?@[]"); /* printable ASCII stays */
    assert_string_equal(c.name[6], "ce-num");
    assert_string_equal(c.value[6], "7");
    /* and back: equal except that header values are all strings */
    assert_int_equal(hr_ce_from_binary(c.h, c.n, c.ct, ev->data, ev->data_len, &back, &err), 0);
    assert_int_equal(back->exts[0].kind, HR_CE_STRING);
    back->exts[0].kind = HR_CE_INT;
    assert_true(hr_ce_event_equal(ev, back));
    hr_ce_event_free(back);
    int calls = 0;
    assert_int_equal(hr_ce_to_headers(ev, stop_at_second, &calls), -42);
    assert_int_equal(calls, 2);
    hr_ce_event_free(ev);
}

static void test_detect_mode(void **state)
{
    (void)state;
    assert_int_equal(hr_ce_detect_mode(NULL), HR_CE_MODE_BINARY);
    assert_int_equal(hr_ce_detect_mode("application/json"), HR_CE_MODE_BINARY);
    assert_int_equal(hr_ce_detect_mode("application/cloudevents+json"), HR_CE_MODE_STRUCTURED);
    assert_int_equal(hr_ce_detect_mode("Application/CloudEvents+JSON; charset=UTF-8"),
                     HR_CE_MODE_STRUCTURED);
    assert_int_equal(hr_ce_detect_mode("application/cloudevents-batch+json"), HR_CE_MODE_BATCH);
    assert_int_equal(hr_ce_detect_mode("application/cloudevents+avro"), HR_CE_MODE_UNSUPPORTED);
    assert_int_equal(hr_ce_detect_mode("application/cloudevents"), HR_CE_MODE_UNSUPPORTED);
    assert_true(hr_ce_content_type_is_json("application/json"));
    assert_true(hr_ce_content_type_is_json(" text/JSON ;charset=utf-8"));
    assert_true(hr_ce_content_type_is_json("application/geo+json"));
    assert_false(hr_ce_content_type_is_json("application/+json")); /* empty suffix base */
    assert_false(hr_ce_content_type_is_json("application/jsonp"));
    assert_false(hr_ce_content_type_is_json("json"));
    assert_false(hr_ce_content_type_is_json(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_percent_decoding), cmocka_unit_test(test_header_names),
        cmocka_unit_test(test_header_errors),    cmocka_unit_test(test_content_type_and_body),
        cmocka_unit_test(test_to_headers),       cmocka_unit_test(test_detect_mode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
