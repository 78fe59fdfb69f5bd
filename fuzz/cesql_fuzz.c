/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for CESQL: the input bytes are compiled as an expression; rejections must
 * carry a parse error with an offset inside the input and a non-empty, valid UTF-8 message.
 * Expressions that compile are linted, evaluated (hr_cesql_eval and hr_cesql_match, which
 * must agree) against fixed events, and asked for required exact values, which must hold
 * whenever the expression matches.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ce/event.h"
#include "filter/cesql.h"
#include "util/err.h"
#include "util/utf8.h"

static const char *const events_json[] = {
    "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"https://example.com/a\","
    "\"type\":\"com.example.created\",\"subject\":\"eu/123\",\"time\":\"2024-03-05T10:20:30Z\","
    "\"count\":42,\"flag\":true,\"num\":\"-17\",\"city\":\"Z\xc3\xbcrich/"
    "\xe6\x9d\xb1\xe4\xba\xac\","
    "\"data\":{\"x\":1}}",
    "{\"specversion\":\"1.0\",\"id\":\"2\",\"source\":\"/s\",\"type\":\"t\"}",
};
#define N_EVENTS (sizeof events_json / sizeof events_json[0])

static hr_ce_event_t *events[N_EVENTS];

static void load_events(void)
{
    for (size_t i = 0; i < N_EVENTS && events[i] == NULL; i++) {
        hr_ce_error_t err;
        if (hr_ce_from_structured((const uint8_t *)events_json[i], strlen(events_json[i]),
                                  &events[i], &err) != 0) {
            abort();
        }
    }
}

static void check_error(const hr_cesql_error_t *err, size_t size, hr_cesql_errkind_t kind)
{
    size_t ml = strnlen(err->msg, sizeof err->msg);
    if (err->kind != kind || ml < 10 || ml == sizeof err->msg ||
        !hr_utf8_valid(err->msg, ml, NULL) || err->char_offset > err->offset ||
        (err->offset > size && err->offset != HR_CESQL_MAX_EXPR_BYTES)) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const attrs[] = {"type", "source", "subject", "count", "flag", "x"};
    load_events();
    hr_cesql_t *q = NULL;
    hr_cesql_error_t err;
    int rc = hr_cesql_compile((const char *)data, size, &q, &err);
    if (rc != 0) {
        if (q != NULL || (rc != HR_EINVAL && rc != HR_ENOMEM)) {
            abort();
        }
        if (rc == HR_EINVAL) {
            check_error(&err, size, HR_CESQL_ERR_PARSE);
        }
        return 0;
    }
    if (hr_cesql_lint(q, &err) != 0) {
        check_error(&err, size, HR_CESQL_ERR_MISSING_FUNCTION);
    }
    for (size_t i = 0; i < N_EVENTS; i++) {
        hr_cesql_value_t v;
        hr_cesql_errkind_t kind;
        if (hr_cesql_eval(q, events[i], &v, &kind) != 0) {
            abort();
        }
        if (v.type == HR_CESQL_STRING &&
            (v.s == NULL || strlen(v.s) != v.s_len || !hr_utf8_valid(v.s, v.s_len, NULL))) {
            abort();
        }
        bool pass = v.type == HR_CESQL_BOOLEAN && v.b && kind == HR_CESQL_ERR_NONE;
        hr_cesql_value_clear(&v);
        bool m = hr_cesql_match(q, events[i]);
        if (m != pass) {
            abort();
        }
        for (size_t a = 0; m && a < sizeof attrs / sizeof attrs[0]; a++) {
            const char *r = hr_cesql_required_exact(q, attrs[a]);
            const char *have = hr_ce_get(events[i], attrs[a]);
            if (r != NULL && (have == NULL || strcmp(r, have) != 0)) {
                abort();
            }
        }
    }
    hr_cesql_destroy(q);
    return 0;
}
