/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the filter compiler: the input is parsed as JSON and compiled as a
 * "filters" list, as one filter object (wrapped in a list) and as a legacy "filter"; every
 * filter that compiles is evaluated against fixed events and asked for required exact values.
 * Rejections must carry a non-empty, valid UTF-8 path and message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ce/event.h"
#include "filter/filter.h"
#include "util/err.h"
#include "util/utf8.h"

static const char *const events_json[] = {
    "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"https://example.com/a\","
    "\"type\":\"com.example.created\",\"subject\":\"eu/123\",\"time\":\"2024-03-05T10:20:30Z\","
    "\"count\":42,\"flag\":true,\"city\":\"Z\xc3\xbcrich\",\"data\":{\"x\":1}}",
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

static void check_error(const hr_filter_error_t *err)
{
    size_t pl = strnlen(err->path, sizeof err->path), ml = strnlen(err->msg, sizeof err->msg);
    if (pl == 0 || pl == sizeof err->path || ml < 10 || ml == sizeof err->msg ||
        !hr_utf8_valid(err->path, pl, NULL) || !hr_utf8_valid(err->msg, ml, NULL)) {
        abort();
    }
}

static void exercise(int rc, hr_filter_t *f, const hr_filter_error_t *err)
{
    static const char *const attrs[] = {"type", "source", "subject", "count", "x"};
    if (rc != 0) {
        if (f != NULL) {
            abort();
        }
        if (rc != HR_ENOMEM) { /* which carries no message */
            check_error(err);
        }
        return;
    }
    for (size_t i = 0; i < N_EVENTS; i++) {
        bool m = hr_filter_match(f, events[i]);
        /* A required exact value is a necessary condition of a match. */
        for (size_t a = 0; m && a < sizeof attrs / sizeof attrs[0]; a++) {
            const char *r = hr_filter_required_exact(f, attrs[a]);
            const char *v = hr_ce_get(events[i], attrs[a]);
            if (r != NULL && (v == NULL || strcmp(r, v) != 0)) {
                abort();
            }
        }
    }
    hr_filter_destroy(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    load_events();
    json_error_t jerr;
    json_t *j = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (j == NULL) {
        return 0;
    }
    hr_filter_t *f;
    hr_filter_error_t err;
    int rc = hr_filter_compile(j, &f, &err);
    exercise(rc, f, &err);
    rc = hr_filter_compile_legacy(j, &f, &err);
    exercise(rc, f, &err);
    json_t *wrapped = json_array();
    json_array_append(wrapped, j);
    rc = hr_filter_compile(wrapped, &f, &err);
    exercise(rc, f, &err);
    json_decref(wrapped);
    json_decref(j);
    return 0;
}
