/* SPDX-License-Identifier: MIT */
/*
 * Triggers and delivery: PUT/GET/DELETE /v1/triggers/{name}, GET /v1/triggers,
 * POST /v1/triggers/{name}/replay, GET /v1/buses/{bus}/deadletters,
 * POST /v1/buses/{bus}/deadletters/redrive, GET /v1/buses/{bus}/events/{seq}/trace and
 * POST /v1/filters/test.
 */
#include "broker/trigger.h"
#include "ce/event.h"
#include "filter/filter.h"
#include "http/routes.h"
#include "util/err.h"
#include "util/rfc3339.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static const char *const no_params[] = {NULL};

static void trig_error(hr_http_req_t *req, const hr_trig_err_t *e)
{
    hr_http_error(req, e->status ? e->status : 500, e->field[0] ? e->field : NULL, "%s", e->msg);
}

void hr_h_trigger_put(hr_http_req_t *req)
{
    if (!hr_http_check_query(req, no_params)) {
        return;
    }
    const hr_buf_t *body = hr_http_body(req);
    hr_buf_t out = HR_BUF_INIT;
    hr_trig_err_t err = {0};
    bool created = false;
    if (hr_triggers_put(hr_http_triggers(req), hr_http_param(req, 0), (const char *)body->data,
                        body->len, &created, &out, &err) != 0) {
        trig_error(req, &err);
    } else {
        hr_http_reply(req, created ? 201 : 200, &out);
    }
    hr_buf_free(&out);
}

void hr_h_trigger_get(hr_http_req_t *req)
{
    if (!hr_http_check_query(req, no_params)) {
        return;
    }
    hr_buf_t out = HR_BUF_INIT;
    const char *name = hr_http_param(req, 0);
    if (hr_triggers_get(hr_http_triggers(req), name, &out) != 0) {
        hr_http_error(req, 404, "trigger", "no trigger named \"%s\"", name);
    } else {
        hr_http_reply(req, 200, &out);
    }
    hr_buf_free(&out);
}

void hr_h_trigger_delete(hr_http_req_t *req)
{
    if (!hr_http_check_query(req, no_params)) {
        return;
    }
    const char *name = hr_http_param(req, 0);
    int rc = hr_triggers_delete(hr_http_triggers(req), name);
    if (rc == HR_ENOTFOUND) {
        hr_http_error(req, 404, "trigger", "no trigger named \"%s\"", name);
    } else if (rc != 0) {
        hr_http_error(req, 500, NULL, "deleting trigger \"%s\" failed: %s", name, hr_strerror(rc));
    } else {
        hr_http_reply(req, 204, NULL);
    }
}

void hr_h_trigger_list(hr_http_req_t *req)
{
    static const char *const allowed[] = {"bus", NULL};
    if (!hr_http_check_query(req, allowed)) {
        return;
    }
    hr_buf_t out = HR_BUF_INIT;
    hr_triggers_list(hr_http_triggers(req), hr_http_query(req, "bus"), &out);
    hr_http_reply(req, 200, &out);
    hr_buf_free(&out);
}

/* Reads a seq or time member of a JSON object into a seq of `bus`. Returns 0 (absent: *seq
 * untouched), 1 (set), or -1 after answering 400. */
static int json_position(hr_http_req_t *req, json_t *root, const char *seq_key,
                         const char *time_key, hr_bus_t *bus, bool end, uint64_t *seq)
{
    json_t *s = json_object_get(root, seq_key);
    json_t *t = json_object_get(root, time_key);
    if (s && t) {
        hr_http_error(req, 400, time_key, "give either \"%s\" or \"%s\", not both", seq_key,
                      time_key);
        return -1;
    }
    if (s) {
        if (!json_is_integer(s) || json_integer_value(s) < 1) {
            hr_http_error(req, 400, seq_key, "\"%s\" must be a seq (an integer of at least 1)",
                          seq_key);
            return -1;
        }
        *seq = (uint64_t)json_integer_value(s);
        return 1;
    }
    if (t) {
        const char *v = json_is_string(t) ? json_string_value(t) : "";
        uint64_t ns;
        if (hr_rfc3339_parse_clamped(v, strlen(v), &ns) != 0) {
            hr_http_error(req, 400, time_key, "\"%s\" must be an RFC 3339 time", time_key);
            return -1;
        }
        uint64_t first = hr_log_seek_time(hr_bus_log(bus), ns);
        if (end) {
            /* events ingested at or before the time: up to the first one after it, excluded */
            uint64_t after = ns == UINT64_MAX ? first : hr_log_seek_time(hr_bus_log(bus), ns + 1);
            *seq = after - 1;
        } else {
            *seq = first;
        }
        return 1;
    }
    return 0;
}

static json_t *body_object(hr_http_req_t *req)
{
    const hr_buf_t *body = hr_http_body(req);
    json_error_t jerr;
    json_t *root =
        body->len ? json_loadb((const char *)body->data, body->len, JSON_REJECT_DUPLICATES, &jerr)
                  : json_object();
    if (root == NULL) {
        hr_http_error(req, 400, "body", "request body is not valid JSON: %s at line %d column %d",
                      jerr.text, jerr.line, jerr.column);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        hr_http_error(req, 400, "body", "request body must be a JSON object");
        return NULL;
    }
    return root;
}

static bool only_members(hr_http_req_t *req, json_t *root, const char *const *allowed)
{
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        bool ok = false;
        for (const char *const *a = allowed; *a; a++) {
            ok |= strcmp(*a, key) == 0;
        }
        if (!ok) {
            hr_http_error(req, 400, key, "unknown member \"%s\"", key);
            return false;
        }
    }
    return true;
}

void hr_h_trigger_replay(hr_http_req_t *req)
{
    static const char *const members[] = {"from", "from_time", "to", "to_time", NULL};
    if (!hr_http_check_query(req, no_params)) {
        return;
    }
    const char *name = hr_http_param(req, 0);
    hr_triggers_t *t = hr_http_triggers(req);
    hr_buf_t doc = HR_BUF_INIT;
    if (hr_triggers_get(t, name, &doc) != 0) {
        hr_http_error(req, 404, "trigger", "no trigger named \"%s\"", name);
        return;
    }
    json_t *root = body_object(req), *tdoc = json_loadb((const char *)doc.data, doc.len, 0, NULL);
    hr_buf_free(&doc);
    hr_bus_t *bus = NULL;
    if (root == NULL || !only_members(req, root, members)) {
        goto out;
    }
    const char *bus_name = json_string_value(json_object_get(tdoc, "bus"));
    bus = bus_name ? hr_buses_get(hr_http_buses(req), bus_name) : NULL;
    if (bus == NULL) {
        hr_http_error(req, 404, "bus", "the trigger's bus does not exist");
        goto out;
    }
    uint64_t from = 0, to = 0;
    int a = json_position(req, root, "from", "from_time", bus, false, &from);
    if (a < 0) {
        goto out;
    }
    if (a == 0) {
        hr_http_error(req, 400, "from", "a replay needs \"from\" (a seq) or \"from_time\"");
        goto out;
    }
    if (json_position(req, root, "to", "to_time", bus, true, &to) < 0) {
        goto out;
    }
    if (json_object_get(root, "to_time") && to == 0) {
        hr_http_error(req, 400, "to_time", "no event was ingested at or before \"to_time\"");
        goto out;
    }
    hr_buf_t out = HR_BUF_INIT;
    hr_trig_err_t err = {0};
    if (hr_triggers_replay(t, name, from, to, &out, &err) != 0) {
        trig_error(req, &err);
    } else {
        hr_http_reply(req, 202, &out);
    }
    hr_buf_free(&out);
out:
    hr_bus_release(bus);
    json_decref(root);
    json_decref(tdoc);
}

void hr_h_deadletters(hr_http_req_t *req)
{
    static const char *const allowed[] = {"trigger", "after", "limit", NULL};
    if (!hr_http_check_query(req, allowed)) {
        return;
    }
    const char *bus_name = hr_http_param(req, 0);
    hr_bus_t *bus = hr_buses_get(hr_http_buses(req), bus_name);
    if (bus == NULL) {
        hr_http_error(req, 404, "bus", "no bus named \"%s\"", bus_name);
        return;
    }
    hr_bus_release(bus);
    uint64_t after = 0, limit = 100;
    const char *a = hr_http_query(req, "after"), *l = hr_http_query(req, "limit");
    if (a && strcmp(a, "0") != 0 && !hr__parse_seq(a, &after)) {
        hr_http_error(req, 400, "after",
                      "\"after\" must be a dead letter id (an integer), got \"%s\"", a);
        return;
    }
    if (l && (!hr__parse_seq(l, &limit) || limit > 1000)) {
        hr_http_error(req, 400, "limit", "\"limit\" must be an integer from 1 to 1000, got \"%s\"",
                      l);
        return;
    }
    hr_buf_t out = HR_BUF_INIT;
    int rc = hr_triggers_deadletters(hr_http_triggers(req), bus_name, hr_http_query(req, "trigger"),
                                     (int64_t)after, (size_t)limit, &out);
    if (rc != 0) {
        hr_http_error(req, 500, NULL, "reading dead letters failed: %s", hr_strerror(rc));
    } else {
        hr_http_reply(req, 200, &out);
    }
    hr_buf_free(&out);
}

void hr_h_redrive(hr_http_req_t *req)
{
    static const char *const members[] = {"trigger", "from", "to", NULL};
    if (!hr_http_check_query(req, no_params)) {
        return;
    }
    const char *bus_name = hr_http_param(req, 0);
    hr_bus_t *bus = hr_buses_get(hr_http_buses(req), bus_name);
    if (bus == NULL) {
        hr_http_error(req, 404, "bus", "no bus named \"%s\"", bus_name);
        return;
    }
    hr_bus_release(bus);
    json_t *root = body_object(req);
    if (root == NULL || !only_members(req, root, members)) {
        json_decref(root);
        return;
    }
    json_t *tr = json_object_get(root, "trigger");
    json_t *f = json_object_get(root, "from"), *t = json_object_get(root, "to");
    if (tr && !json_is_string(tr)) {
        hr_http_error(req, 400, "trigger", "\"trigger\" must be a trigger name");
    } else if ((f && (!json_is_integer(f) || json_integer_value(f) < 1)) ||
               (t && (!json_is_integer(t) || json_integer_value(t) < 1))) {
        hr_http_error(req, 400, f && !json_is_integer(f) ? "from" : "to",
                      "\"from\" and \"to\" must be seqs (integers of at least 1)");
    } else {
        uint64_t from = f ? (uint64_t)json_integer_value(f) : 1;
        uint64_t to = t ? (uint64_t)json_integer_value(t) : (f ? UINT64_MAX >> 1 : 0);
        if (to && from > to) {
            hr_http_error(req, 400, "from", "\"from\" is after \"to\"");
        } else {
            hr_buf_t out = HR_BUF_INIT;
            hr_trig_err_t err = {0};
            if (hr_triggers_redrive(hr_http_triggers(req), bus_name,
                                    tr ? json_string_value(tr) : NULL, from, to, &out, &err) != 0) {
                trig_error(req, &err);
            } else {
                hr_http_reply(req, 202, &out);
            }
            hr_buf_free(&out);
        }
    }
    json_decref(root);
}

void hr_h_trace(hr_http_req_t *req)
{
    if (!hr_http_check_query(req, no_params)) {
        return;
    }
    const char *bus_name = hr_http_param(req, 0), *s = hr_http_param(req, 1);
    uint64_t seq;
    if (!hr__parse_seq(s, &seq)) {
        hr_http_error(req, 400, "seq", "the seq in the path must be an integer of at least 1");
        return;
    }
    hr_bus_t *bus = hr_buses_get(hr_http_buses(req), bus_name);
    if (bus == NULL) {
        hr_http_error(req, 404, "bus", "no bus named \"%s\"", bus_name);
        return;
    }
    uint64_t last = hr_bus_last_seq(bus);
    hr_bus_release(bus);
    if (seq > last) {
        hr_http_error(req, 404, "seq", "bus \"%s\" has no event %llu yet", bus_name,
                      (unsigned long long)seq);
        return;
    }
    hr_buf_t out = HR_BUF_INIT;
    if (hr_triggers_trace(hr_http_triggers(req), bus_name, seq, &out) != 0) {
        /* known event, nothing traced: no trigger matched it (or its trace was evicted) */
        hr_buf_printf(&out, "{\"bus\":");
        hr_buf_json_str(&out, bus_name, strlen(bus_name));
        hr_buf_printf(&out, ",\"seq\":%llu,\"triggers\":[]}", (unsigned long long)seq);
    }
    hr_http_reply(req, 200, &out);
    hr_buf_free(&out);
}

void hr_h_filter_test(hr_http_req_t *req)
{
    static const char *const members[] = {"filters", "filter", "event", NULL};
    if (!hr_http_check_query(req, no_params)) {
        return;
    }
    json_t *root = body_object(req);
    hr_filter_t *f = NULL;
    hr_ce_event_t *ev = NULL;
    if (root == NULL || !only_members(req, root, members)) {
        goto out;
    }
    json_t *filters = json_object_get(root, "filters"), *legacy = json_object_get(root, "filter");
    json_t *event = json_object_get(root, "event");
    if (filters && legacy) {
        hr_http_error(req, 400, "filter", "give either \"filters\" or the legacy \"filter\"");
        goto out;
    }
    if (!json_is_object(event)) {
        hr_http_error(req, 400, "event", "\"event\" must be a CloudEvent in the JSON format");
        goto out;
    }
    hr_filter_error_t ferr;
    memset(&ferr, 0, sizeof ferr);
    int rc = legacy
                 ? hr_filter_compile_legacy(legacy, &f, &ferr)
                 : hr_filter_compile(filters && !json_is_null(filters) ? filters : NULL, &f, &ferr);
    if (rc != 0) {
        hr_http_error(req, 400, ferr.path, "%s", ferr.msg);
        goto out;
    }
    if (filters && !json_is_null(filters) && !json_is_array(filters)) {
        hr_http_error(req, 400, "filters", "\"filters\" must be an array of filter objects");
        goto out;
    }
    char *text = json_dumps(event, JSON_COMPACT | JSON_PRESERVE_ORDER);
    hr_ce_error_t cerr;
    memset(&cerr, 0, sizeof cerr);
    rc = hr_ce_from_structured((const uint8_t *)text, strlen(text), &ev, &cerr);
    free(text);
    if (rc != 0) {
        char field[80];
        snprintf(field, sizeof field, "event.%s", cerr.field);
        hr_http_error(req, 400, field, "%s", cerr.msg);
        goto out;
    }
    hr_buf_t out = HR_BUF_INIT;
    hr_buf_printf(&out, "{\"match\":%s}", hr_filter_match(f, ev) ? "true" : "false");
    hr_http_reply(req, 200, &out);
    hr_buf_free(&out);
out:
    hr_ce_event_free(ev);
    hr_filter_destroy(f);
    json_decref(root);
}
