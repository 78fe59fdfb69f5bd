/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for content patterns: the input is parsed as JSON and compiled with
 * hr_pattern_compile and as a "pattern" filter; every pattern that compiles is matched against
 * fixed CloudEvents (object, array, text and big-number data) and plain JSON documents, and
 * asked for required exact values, which must hold whenever the pattern matches; matching
 * with the data parsed beforehand (hr_pattern_match_data) must agree with hr_pattern_match.
 * Rejections must carry a non-empty, valid UTF-8 message (and path, for the filter).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ce/event.h"
#include "filter/filter.h"
#include "filter/pattern.h"
#include "util/err.h"
#include "util/utf8.h"

static const char *const events_json[] = {
    "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"https://example.com/a\","
    "\"type\":\"com.example.created\",\"subject\":\"eu/123\",\"time\":\"2024-03-05T10:20:30Z\","
    "\"count\":42,\"flag\":true,\"city\":\"Z\xc3\xbcrich\",\"data\":{\"x\":1,\"ip\":\"10.1.2.3\","
    "\"items\":[{\"sku\":\"A1\",\"qty\":2},{\"sku\":\"B\",\"qty\":0,\"tags\":[\"a\",[\"b\"]]}],"
    "\"n\":null,\"s\":\"\xce\xa3\xce\xaf\"}}",
    "{\"specversion\":\"1.0\",\"id\":\"2\",\"source\":\"/s\",\"type\":\"t\","
    "\"data\":[{\"a\":1},{\"b\":[2,3]},[],\"x\",{\"a\":{\"b\":\"2001:db8::1\"}}]}",
    "{\"specversion\":\"1.0\",\"id\":\"3\",\"source\":\"/s\",\"type\":\"t\","
    "\"datacontenttype\":\"text/plain\",\"data\":\"hello\"}",
    "{\"specversion\":\"1.0\",\"id\":\"4\",\"source\":\"/s\",\"type\":\"t\",\"flag\":false,"
    "\"data\":{\"big\":123456789012345678901234567890,\"x\":1e1}}",
};
#define N_EVENTS (sizeof events_json / sizeof events_json[0])

static const char *const docs_json[] = {
    ("{\"source\":\"aws.ec2\",\"detail\":{\"state\":\"running\",\"c-count\":5,\"ip\":\"10.0.0.1\","
     "\"list\":[{\"a\":\"x\",\"b\":1},{\"a\":\"y\"}],\"$or\":\"field\"}}"),
    "[{\"a\":1},{\"b\":2}]",
    "{}",
};
#define N_DOCS (sizeof docs_json / sizeof docs_json[0])

static hr_ce_event_t *events[N_EVENTS];
static json_t *datas[N_EVENTS]; /* each event's data, parsed (NULL when not JSON) */
static json_t *docs[N_DOCS];

static void load_fixtures(void)
{
    for (size_t i = 0; i < N_EVENTS && events[i] == NULL; i++) {
        hr_ce_error_t err;
        if (hr_ce_from_structured((const uint8_t *)events_json[i], strlen(events_json[i]),
                                  &events[i], &err) != 0) {
            abort();
        }
        if (events[i]->data_kind == HR_CE_DATA_JSON) {
            datas[i] = json_loadb((const char *)events[i]->data, events[i]->data_len,
                                  JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, NULL);
        }
    }
    for (size_t i = 0; i < N_DOCS && docs[i] == NULL; i++) {
        docs[i] = json_loads(docs_json[i], JSON_DECODE_ANY, NULL);
        if (docs[i] == NULL) {
            abort();
        }
    }
}

static void check_text(const char *s, size_t cap, bool may_be_empty)
{
    size_t n = strnlen(s, cap);
    if ((!may_be_empty && n == 0) || n == cap || !hr_utf8_valid(s, n, NULL)) {
        abort();
    }
}

static void exercise(const hr_pattern_t *p)
{
    static const char *const attrs[] = {"type", "source", "subject", "count", "flag", "data", "x"};
    for (size_t i = 0; i < N_EVENTS; i++) {
        bool m = hr_pattern_match(p, events[i]);
        /* Parsing the data beforehand gives the same answer. */
        if (hr_pattern_match_data(p, events[i], datas[i]) != m) {
            abort();
        }
        /* A required exact value is a necessary condition of a match. */
        for (size_t a = 0; m && a < sizeof attrs / sizeof attrs[0]; a++) {
            const char *r = hr_pattern_required_exact(p, attrs[a]);
            const char *v = hr_ce_get(events[i], attrs[a]);
            if (r != NULL && (v == NULL || strcmp(r, v) != 0)) {
                abort();
            }
        }
    }
    for (size_t i = 0; i < N_DOCS; i++) {
        (void)hr_pattern_match_json(p, docs[i]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    load_fixtures();
    json_error_t jerr;
    json_t *j = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (j == NULL) {
        return 0;
    }
    hr_pattern_t *p = NULL;
    char err[256], path[128];
    int rc = hr_pattern_compile(j, &p, err, sizeof err, path, sizeof path);
    if (rc == 0) {
        exercise(p);
        hr_pattern_destroy(p);
    } else if (p != NULL) {
        abort();
    } else if (rc != HR_ENOMEM) {
        check_text(err, sizeof err, false);
        check_text(path, sizeof path, true);
    }

    /* The same document as a trigger's "pattern" filter (stricter top level). */
    json_t *filters = json_pack("[{s:O}]", "pattern", j);
    hr_filter_t *f = NULL;
    hr_filter_error_t ferr;
    rc = hr_filter_compile(filters, &f, &ferr);
    if (rc == 0) {
        for (size_t i = 0; i < N_EVENTS; i++) {
            bool m = hr_filter_match(f, events[i]);
            const char *r = hr_filter_required_exact(f, "type");
            if (m && r != NULL && strcmp(r, events[i]->type) != 0) {
                abort();
            }
        }
        hr_filter_destroy(f);
    } else if (f != NULL) {
        abort();
    } else if (rc != HR_ENOMEM) {
        check_text(ferr.path, sizeof ferr.path, false);
        check_text(ferr.msg, sizeof ferr.msg, false);
    }
    json_decref(filters);
    json_decref(j);
    return 0;
}
