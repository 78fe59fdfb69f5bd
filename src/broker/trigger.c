/* SPDX-License-Identifier: MIT */
/*
 * Trigger documents: parsing with jansson, validation with a message and a JSON path for every
 * fault, defaults, and serialization. Pure functions apart from allocation; any thread.
 */
#include "broker/trigger.h"
#include "broker/bus.h"
#include "util/alloc.h"
#include "util/duration.h"
#include "util/err.h"
#include "util/rfc3339.h"

#include <ctype.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct perr {
    char *err;
    size_t errsz;
    char *path;
    size_t pathsz;
} perr_t;

static int fail(perr_t *e, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(perr_t *e, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->err, e->errsz, fmt, ap);
    va_end(ap);
    snprintf(e->path, e->pathsz, "%s", path);
    return HR_EINVAL;
}

bool hr_trigger_name_valid(const char *name)
{
    return hr_bus_name_valid(name); /* one naming rule for buses and triggers */
}

/* An absolute http(s) URL with a host. */
static bool url_ok(const char *u)
{
    const char *rest;
    if (strncasecmp(u, "http://", 7) == 0) {
        rest = u + 7;
    } else if (strncasecmp(u, "https://", 8) == 0) {
        rest = u + 8;
    } else {
        return false;
    }
    if (*rest == '\0' || *rest == '/' || *rest == ':') {
        return false;
    }
    for (const char *p = u; *p; p++) {
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) {
            return false;
        }
    }
    return strlen(u) < 2048;
}

static int get_dur(json_t *obj, const char *key, const char *path, uint64_t *out, perr_t *e)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL || json_is_null(v)) {
        return 0;
    }
    if (!json_is_string(v) || hr_duration_parse(json_string_value(v), out) != 0) {
        return fail(e, path, "\"%s\" must be an ISO 8601 duration such as \"PT0.2S\" or \"PT10M\"",
                    path);
    }
    return 0;
}

static int get_uint(json_t *obj, const char *key, const char *path, uint64_t min, uint64_t max,
                    uint64_t *out, perr_t *e)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL || json_is_null(v)) {
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < (json_int_t)min ||
        (uint64_t)json_integer_value(v) > max) {
        return fail(e, path, "\"%s\" must be an integer from %llu to %llu", path,
                    (unsigned long long)min, (unsigned long long)max);
    }
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int get_enum(json_t *obj, const char *key, const char *path, const char *const *names,
                    int *out, perr_t *e)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL || json_is_null(v)) {
        return 0;
    }
    for (int i = 0; names[i]; i++) {
        if (json_is_string(v) && strcmp(json_string_value(v), names[i]) == 0) {
            *out = i;
            return 0;
        }
    }
    return fail(e, path, "\"%s\" must be \"%s\" or \"%s\"", path, names[0], names[1]);
}

static int check_members(json_t *obj, const char *const *allowed, const char *prefix, perr_t *e)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        bool ok = false;
        for (int i = 0; allowed[i]; i++) {
            if (strcmp(allowed[i], key) == 0) {
                ok = true;
                break;
            }
        }
        if (!ok) {
            char path[128];
            snprintf(path, sizeof path, "%s%s", prefix, key);
            hr_buf_t list = HR_BUF_INIT;
            for (int i = 0; allowed[i]; i++) {
                hr_buf_printf(&list, "%s%s", i ? ", " : "", allowed[i]);
            }
            int rc = fail(e, path, "unknown member \"%s\" (expected one of: %s)", path,
                          (char *)list.data);
            hr_buf_free(&list);
            return rc;
        }
    }
    return 0;
}

static int parse_delivery(json_t *d, hr_trigger_spec_t *s, perr_t *e)
{
    static const char *const allowed[] = {"retry",       "backoff_policy",   "backoff_delay",
                                          "max_backoff", "timeout",          "retry_after_max",
                                          "max_age",     "dead_letter_sink", "pipeline",
                                          NULL};
    static const char *const backoffs[] = {"exponential", "linear", NULL};
    if (!json_is_object(d)) {
        return fail(e, "delivery", "\"delivery\" must be an object");
    }
    int rc = check_members(d, allowed, "delivery.", e);
    uint64_t retry = s->retry, pipeline = s->pipeline;
    int backoff = (int)s->backoff;
    rc = rc ? rc : get_uint(d, "retry", "delivery.retry", 0, 1000, &retry, e);
    rc = rc ? rc : get_uint(d, "pipeline", "delivery.pipeline", 1, 64, &pipeline, e);
    rc = rc ? rc : get_enum(d, "backoff_policy", "delivery.backoff_policy", backoffs, &backoff, e);
    rc = rc ? rc : get_dur(d, "backoff_delay", "delivery.backoff_delay", &s->backoff_delay_ms, e);
    rc = rc ? rc : get_dur(d, "max_backoff", "delivery.max_backoff", &s->max_backoff_ms, e);
    rc = rc ? rc : get_dur(d, "timeout", "delivery.timeout", &s->timeout_ms, e);
    rc = rc ? rc
            : get_dur(d, "retry_after_max", "delivery.retry_after_max", &s->retry_after_max_ms, e);
    rc = rc ? rc : get_dur(d, "max_age", "delivery.max_age", &s->max_age_ms, e);
    if (rc) {
        return rc;
    }
    s->retry = (uint32_t)retry;
    s->pipeline = (uint32_t)pipeline;
    s->backoff = (hr_backoff_t)backoff;
    if (s->timeout_ms == 0 || s->timeout_ms > 3600000) {
        return fail(e, "delivery.timeout",
                    "\"delivery.timeout\" must be between PT0.001S and PT1H");
    }
    json_t *dls = json_object_get(d, "dead_letter_sink");
    if (dls && !json_is_null(dls)) {
        if (!json_is_string(dls) || !url_ok(json_string_value(dls))) {
            return fail(
                e, "delivery.dead_letter_sink",
                "\"delivery.dead_letter_sink\" must be an absolute http:// or https:// URL");
        }
        s->dead_letter_sink = hr_xstrdup(json_string_value(dls));
    }
    return 0;
}

static int parse_start(json_t *v, hr_trigger_spec_t *s, perr_t *e)
{
    if (v == NULL || json_is_null(v)) {
        return 0;
    }
    if (json_is_integer(v)) {
        if (json_integer_value(v) < 1) {
            return fail(e, "start", "\"start\" as a seq must be at least 1");
        }
        s->start = HR_START_SEQ;
        s->start_value = (uint64_t)json_integer_value(v);
        char buf[32];
        snprintf(buf, sizeof buf, "%llu", (unsigned long long)s->start_value);
        s->start_text = hr_xstrdup(buf);
        return 0;
    }
    if (!json_is_string(v)) {
        return fail(e, "start",
                    "\"start\" must be \"latest\", \"earliest\", a seq or an RFC 3339 time");
    }
    const char *t = json_string_value(v);
    s->start_text = hr_xstrdup(t);
    if (strcmp(t, "latest") == 0) {
        s->start = HR_START_LATEST;
    } else if (strcmp(t, "earliest") == 0) {
        s->start = HR_START_EARLIEST;
    } else if (t[0] >= '1' && t[0] <= '9' && strspn(t, "0123456789") == strlen(t) &&
               strlen(t) < 20) {
        s->start = HR_START_SEQ;
        s->start_value = strtoull(t, NULL, 10);
    } else if (hr_rfc3339_parse_clamped(t, strlen(t), &s->start_value) == 0) {
        s->start = HR_START_TIME;
    } else {
        return fail(e, "start",
                    "\"start\" must be \"latest\", \"earliest\", a seq or an RFC 3339 time, got "
                    "\"%.64s\"",
                    t);
    }
    return 0;
}

static bool header_name_ok(const char *n)
{
    if (*n == '\0' || strlen(n) > 128) {
        return false;
    }
    for (const char *p = n; *p; p++) {
        if (!(isalnum((unsigned char)*p) || strchr("!#$%&'*+-.^_`|~", *p))) {
            return false;
        }
    }
    /* headers herald owns */
    return strncasecmp(n, "ce-", 3) != 0 && strcasecmp(n, "content-type") != 0 &&
           strcasecmp(n, "content-length") != 0 && strcasecmp(n, "host") != 0 &&
           strcasecmp(n, "transfer-encoding") != 0;
}

static int parse_headers(json_t *h, hr_trigger_spec_t *s, perr_t *e)
{
    if (h == NULL || json_is_null(h)) {
        return 0;
    }
    if (!json_is_object(h)) {
        return fail(e, "headers", "\"headers\" must be an object of header names to values");
    }
    s->headers = hr_xcalloc(json_object_size(h) + 1, sizeof *s->headers);
    const char *key;
    json_t *v;
    json_object_foreach(h, key, v)
    {
        char path[160];
        snprintf(path, sizeof path, "headers.%.128s", key);
        if (!header_name_ok(key)) {
            return fail(e, path,
                        "\"%s\" is not a header a trigger may set (a token, not ce-*, "
                        "Content-Type, Content-Length, Host or Transfer-Encoding)",
                        path);
        }
        const char *val = json_is_string(v) ? json_string_value(v) : NULL;
        bool ok = val != NULL && strlen(val) < 8192;
        for (const char *p = val; ok && *p; p++) {
            if ((unsigned char)*p < 0x20 && *p != '\t') {
                ok = false;
            }
        }
        if (!ok) {
            return fail(e, path, "\"%s\" must be a string without control characters", path);
        }
        s->headers[s->n_headers].name = hr_xstrdup(key);
        s->headers[s->n_headers].value = hr_xstrdup(val);
        s->n_headers++;
    }
    return 0;
}

static void set_defaults(hr_trigger_spec_t *s)
{
    s->retry = 5;
    s->backoff = HR_BACKOFF_EXPONENTIAL;
    s->backoff_delay_ms = 200;
    s->max_backoff_ms = 30000;
    s->timeout_ms = 10000;
    s->retry_after_max_ms = 60000;
    s->max_age_ms = 0;
    s->format = HR_FORMAT_BINARY;
    s->ordering = HR_ORDERING_NONE;
    s->max_in_flight = 64;
    s->pipeline = 1;
    s->start = HR_START_LATEST;
    atomic_init(&s->refs, 1);
}

static int parse_filters(json_t *root, hr_trigger_spec_t *s, perr_t *e)
{
    json_t *filters = json_object_get(root, "filters");
    json_t *legacy = json_object_get(root, "filter");
    hr_filter_error_t ferr;
    memset(&ferr, 0, sizeof ferr);
    int rc;
    if (filters && legacy) {
        return fail(e, "filter", "give either \"filters\" or the legacy \"filter\", not both");
    }
    if (legacy && !json_is_null(legacy)) {
        s->legacy_filter = true;
        rc = hr_filter_compile_legacy(legacy, &s->filter, &ferr);
        s->filters_json = json_dumps(legacy, JSON_COMPACT | JSON_PRESERVE_ORDER);
    } else {
        if (filters && !json_is_null(filters) && !json_is_array(filters)) {
            return fail(e, "filters", "\"filters\" must be an array of filter objects");
        }
        rc = hr_filter_compile(filters && !json_is_null(filters) ? filters : NULL, &s->filter,
                               &ferr);
        s->filters_json = filters && !json_is_null(filters)
                              ? json_dumps(filters, JSON_COMPACT | JSON_PRESERVE_ORDER)
                              : hr_xstrdup("[]");
    }
    if (rc != 0) {
        return fail(e, ferr.path, "%s", ferr.msg);
    }
    return 0;
}

int hr_trigger_parse(const char *name, const char *json, size_t len, hr_trigger_spec_t **out,
                     char *err, size_t errsz, char *path, size_t pathsz)
{
    static const char *const allowed[] = {"bus",        "filters", "filter",   "sink",
                                          "delivery",   "format",  "ordering", "max_in_flight",
                                          "rate_limit", "start",   "headers",  "reply_bus",
                                          "name",       "status",  NULL};
    static const char *const formats[] = {"binary", "structured", NULL};
    static const char *const orderings[] = {"none", "key", NULL};
    perr_t e = {err, errsz, path, pathsz};
    *out = NULL;
    path[0] = '\0';
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        return fail(&e, "body", "request body is not valid JSON: %s at line %d column %d",
                    jerr.text, jerr.line, jerr.column);
    }
    hr_trigger_spec_t *s = hr_xcalloc(1, sizeof *s);
    set_defaults(s);
    s->name = hr_xstrdup(name);
    int rc = 0;
    if (!json_is_object(root)) {
        rc = fail(&e, "body", "a trigger must be a JSON object");
        goto out;
    }
    if ((rc = check_members(root, allowed, "", &e)) != 0) {
        goto out;
    }
    json_t *v = json_object_get(root, "bus");
    if (v && !json_is_string(v)) {
        rc = fail(&e, "bus", "\"bus\" must be a bus name");
        goto out;
    }
    s->bus = hr_xstrdup(v ? json_string_value(v) : "default");
    v = json_object_get(root, "sink");
    if (v == NULL) {
        rc = fail(&e, "sink", "\"sink\" is required: the URL events are delivered to");
        goto out;
    }
    if (!json_is_string(v) || !url_ok(json_string_value(v))) {
        rc = fail(&e, "sink", "\"sink\" must be an absolute http:// or https:// URL");
        goto out;
    }
    s->sink = hr_xstrdup(json_string_value(v));
    v = json_object_get(root, "reply_bus");
    if (v && !json_is_null(v)) {
        if (!json_is_string(v) || json_string_length(v) == 0) {
            rc = fail(&e, "reply_bus", "\"reply_bus\" must be a bus name");
            goto out;
        }
        s->reply_bus = hr_xstrdup(json_string_value(v));
    }
    int format = 0, ordering = 0;
    uint64_t mif = s->max_in_flight;
    if ((rc = get_enum(root, "format", "format", formats, &format, &e)) != 0 ||
        (rc = get_enum(root, "ordering", "ordering", orderings, &ordering, &e)) != 0 ||
        (rc = get_uint(root, "max_in_flight", "max_in_flight", 1, 10000, &mif, &e)) != 0) {
        goto out;
    }
    s->format = (hr_format_t)format;
    s->ordering = (hr_ordering_t)ordering;
    s->max_in_flight = (uint32_t)mif;
    v = json_object_get(root, "rate_limit");
    if (v && !json_is_null(v)) {
        if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 1e7) {
            rc = fail(&e, "rate_limit",
                      "\"rate_limit\" must be events per second, 0 to 10000000 (0: none)");
            goto out;
        }
        s->rate_limit = json_number_value(v);
    }
    v = json_object_get(root, "delivery");
    if (v && !json_is_null(v) && (rc = parse_delivery(v, s, &e)) != 0) {
        goto out;
    }
    if ((rc = parse_start(json_object_get(root, "start"), s, &e)) != 0 ||
        (rc = parse_headers(json_object_get(root, "headers"), s, &e)) != 0 ||
        (rc = parse_filters(root, s, &e)) != 0) {
        goto out;
    }
    if (s->start_text == NULL) {
        s->start_text = hr_xstrdup("latest");
    }
out:
    json_decref(root);
    if (rc != 0) {
        hr_trigger_spec_unref(s);
        return rc;
    }
    *out = s;
    return 0;
}

static void put_dur(hr_buf_t *out, const char *name, uint64_t ms)
{
    char d[48];
    hr_duration_format(ms, d, sizeof d);
    hr_buf_printf(out, "\"%s\":\"%s\"", name, d);
}

static void put_str(hr_buf_t *out, const char *s)
{
    hr_buf_json_str(out, s, strlen(s));
}

int hr_trigger_spec_to_json(const hr_trigger_spec_t *s, hr_buf_t *out)
{
    hr_buf_puts(out, "{\"name\":");
    put_str(out, s->name);
    hr_buf_puts(out, ",\"bus\":");
    put_str(out, s->bus);
    hr_buf_printf(out, ",\"%s\":%s", s->legacy_filter ? "filter" : "filters", s->filters_json);
    hr_buf_puts(out, ",\"sink\":");
    put_str(out, s->sink);
    hr_buf_printf(out, ",\"delivery\":{\"retry\":%u,\"backoff_policy\":\"%s\",", s->retry,
                  s->backoff == HR_BACKOFF_LINEAR ? "linear" : "exponential");
    put_dur(out, "backoff_delay", s->backoff_delay_ms);
    hr_buf_putc(out, ',');
    put_dur(out, "max_backoff", s->max_backoff_ms);
    hr_buf_putc(out, ',');
    put_dur(out, "timeout", s->timeout_ms);
    hr_buf_putc(out, ',');
    put_dur(out, "retry_after_max", s->retry_after_max_ms);
    if (s->max_age_ms) {
        hr_buf_putc(out, ',');
        put_dur(out, "max_age", s->max_age_ms);
    } else {
        hr_buf_puts(out, ",\"max_age\":null");
    }
    hr_buf_puts(out, ",\"dead_letter_sink\":");
    if (s->dead_letter_sink) {
        put_str(out, s->dead_letter_sink);
    } else {
        hr_buf_puts(out, "null");
    }
    hr_buf_printf(out, ",\"pipeline\":%u}", s->pipeline);
    hr_buf_printf(out, ",\"format\":\"%s\",\"ordering\":\"%s\",\"max_in_flight\":%u,",
                  s->format == HR_FORMAT_STRUCTURED ? "structured" : "binary",
                  s->ordering == HR_ORDERING_KEY ? "key" : "none", s->max_in_flight);
    hr_buf_printf(out, "\"rate_limit\":%.17g,\"start\":", s->rate_limit);
    if (s->start == HR_START_SEQ) {
        hr_buf_printf(out, "%llu", (unsigned long long)s->start_value);
    } else {
        put_str(out, s->start_text);
    }
    hr_buf_puts(out, ",\"reply_bus\":");
    if (s->reply_bus) {
        put_str(out, s->reply_bus);
    } else {
        hr_buf_puts(out, "null");
    }
    hr_buf_puts(out, ",\"headers\":{");
    for (size_t i = 0; i < s->n_headers; i++) {
        hr_buf_puts(out, i ? "," : "");
        put_str(out, s->headers[i].name);
        hr_buf_putc(out, ':');
        put_str(out, s->headers[i].value);
    }
    return hr_buf_puts(out, "}}");
}

hr_trigger_spec_t *hr_trigger_spec_ref(hr_trigger_spec_t *s)
{
    atomic_fetch_add(&s->refs, 1);
    return s;
}

void hr_trigger_spec_unref(hr_trigger_spec_t *s)
{
    if (s == NULL || atomic_fetch_sub(&s->refs, 1) != 1) {
        return;
    }
    free(s->name);
    free(s->bus);
    free(s->sink);
    hr_filter_destroy(s->filter);
    free(s->filters_json);
    free(s->dead_letter_sink);
    free(s->start_text);
    free(s->reply_bus);
    for (size_t i = 0; i < s->n_headers; i++) {
        free(s->headers[i].name);
        free(s->headers[i].value);
    }
    free(s->headers);
    free(s);
}
