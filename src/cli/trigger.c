/* SPDX-License-Identifier: MIT */
/*
 * `herald trigger create|list|get|delete`: manages triggers through PUT/GET/DELETE
 * /v1/triggers/{name} and GET /v1/triggers (docs/api.md, Triggers). `create` builds the whole
 * trigger document from its options, since a PUT replaces the document: running it again on an
 * existing trigger sets every member not given back to its default. Human output is a table
 * (list) or one field per line (get); --json prints the server's answer as is.
 * Called by hr_cli_main on the main thread.
 */
#include "cli/cli.h"
#include "cli/client.h"
#include "util/alloc.h"
#include "util/duration.h"
#include "util/rfc3339.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct trigger_create_opts {
    const char *tc_sink;
    hr_cli_strlist_t tc_filters; /* JSON filter objects */
    const char *tc_type;
    const char *tc_source;
    const char *tc_subject;
    const char *tc_retry;
    const char *tc_backoff_policy;
    const char *tc_backoff_delay;
    const char *tc_max_backoff;
    const char *tc_timeout;
    const char *tc_retry_after_max;
    const char *tc_max_age;
    const char *tc_dead_letter_sink;
    const char *tc_pipeline;
    const char *tc_format;
    const char *tc_ordering;
    const char *tc_max_in_flight;
    const char *tc_rate_limit;
    const char *tc_start;
    const char *tc_reply_bus;
    hr_cli_strlist_t tc_headers; /* "NAME=VALUE" */
} trigger_create_opts_t;

typedef struct trigger_list_opts {
    const char *tl_bus;
} trigger_list_opts_t;

#define OPT(name, field, kind, metavar, help)                                                      \
    {                                                                                              \
        name, 0, kind, offsetof(trigger_create_opts_t, field), metavar, help                       \
    }

static const hr_cli_opt_t create_opts[] = {
    OPT("sink", tc_sink, HR_CLI_OPT_STR, "URL", "where events are delivered (required)"),
    OPT("filter", tc_filters, HR_CLI_OPT_LIST, "JSON",
        "a filter object, e.g. '{\"exact\":{\"type\":\"x\"}}' (repeatable; all must match)"),
    OPT("type", tc_type, HR_CLI_OPT_STR, "TYPE", "only events of this type (an exact filter)"),
    OPT("source", tc_source, HR_CLI_OPT_STR, "URI", "only events from this source"),
    OPT("subject", tc_subject, HR_CLI_OPT_STR, "SUBJECT", "only events with this subject"),
    OPT("retry", tc_retry, HR_CLI_OPT_STR, "N", "retries after the first attempt (default 5)"),
    OPT("backoff-policy", tc_backoff_policy, HR_CLI_OPT_STR, "POLICY",
        "exponential (default) or linear"),
    OPT("backoff-delay", tc_backoff_delay, HR_CLI_OPT_STR, "DURATION",
        "delay before the first retry (default PT0.2S)"),
    OPT("max-backoff", tc_max_backoff, HR_CLI_OPT_STR, "DURATION",
        "longest delay between retries (default PT30S)"),
    OPT("timeout", tc_timeout, HR_CLI_OPT_STR, "DURATION", "per attempt (default PT10S)"),
    OPT("retry-after-max", tc_retry_after_max, HR_CLI_OPT_STR, "DURATION",
        "longest Retry-After honoured (default PT60S)"),
    OPT("max-age", tc_max_age, HR_CLI_OPT_STR, "DURATION",
        "stop retrying this long after the first attempt (default: never)"),
    OPT("dead-letter-sink", tc_dead_letter_sink, HR_CLI_OPT_STR, "URL",
        "also send each dead letter here"),
    OPT("pipeline", tc_pipeline, HR_CLI_OPT_STR, "N",
        "requests one sink connection may carry at once, 1 to 64 (default 1: no HTTP "
        "pipelining)"),
    OPT("format", tc_format, HR_CLI_OPT_STR, "FORMAT", "binary (default) or structured"),
    OPT("ordering", tc_ordering, HR_CLI_OPT_STR, "ORDERING",
        "none (default) or key (one at a time per partitionkey/subject)"),
    OPT("max-in-flight", tc_max_in_flight, HR_CLI_OPT_STR, "N",
        "concurrent deliveries, 1 to 10000 (default 64)"),
    OPT("rate-limit", tc_rate_limit, HR_CLI_OPT_STR, "R", "events per second (default 0: none)"),
    OPT("start", tc_start, HR_CLI_OPT_STR, "POSITION",
        "where a new trigger starts: latest (default), earliest, a seq or an RFC 3339 time"),
    OPT("reply-bus", tc_reply_bus, HR_CLI_OPT_STR, "BUS",
        "publish replies here (default: the trigger's bus)"),
    OPT("header", tc_headers, HR_CLI_OPT_LIST, "NAME=VALUE",
        "extra request header for the sink (repeatable)"),
    {NULL, 0, 0, 0, NULL, NULL},
};

#undef OPT

static const hr_cli_opt_t list_opts[] = {
    {"bus", 0, HR_CLI_OPT_STR, offsetof(trigger_list_opts_t, tl_bus), "NAME",
     "only the triggers of this bus (default: all)"},
    {NULL, 0, 0, 0, NULL, NULL},
};

static const hr_cli_cmd_t trigger_cmd = {
    .name = "trigger",
    .usage = "<command> [options]",
    .summary = "Manage triggers, which deliver a bus's matching events to a sink. Commands:\n"
               "  create NAME --sink URL [options]   create a trigger, or replace its settings\n"
               "  list [--bus B]                     list the triggers with their progress\n"
               "  get NAME                           show a trigger's settings and status\n"
               "  delete NAME                        delete a trigger\n"
               "Run `herald trigger <command> --help` for a command's options.",
};

static const hr_cli_cmd_t create_cmd = {
    .name = "trigger create",
    .usage = "NAME --sink URL [--bus BUS] [--filter JSON]... [--type T] [options]",
    .summary = "Create the trigger NAME (PUT /v1/triggers/NAME), or replace an existing one: a\n"
               "trigger's settings are replaced as a whole, so options not given go back to\n"
               "their defaults. --type, --source and --subject add one exact filter;\n"
               "--filter adds any filter object (exact, prefix, suffix, all, any, not).\n"
               "Durations are ISO 8601: PT0.2S, PT10M, P1D. The bus cannot change.",
    .opts = create_opts,
    .min_args = 1,
    .max_args = 1,
};

static const hr_cli_cmd_t list_cmd = {
    .name = "trigger list",
    .usage = "[--bus BUS] [--json]",
    .summary = "List the triggers with their sink and progress: the cursor (every seq at or\n"
               "below it is settled), the lag in events, deliveries and dead letters, and the\n"
               "last error.",
    .opts = list_opts,
    .min_args = 0,
    .max_args = 0,
};

static const hr_cli_cmd_t get_cmd = {
    .name = "trigger get",
    .usage = "NAME [--json]",
    .summary = "Show the settings and status of the trigger NAME.",
    .min_args = 1,
    .max_args = 1,
};

static const hr_cli_cmd_t delete_cmd = {
    .name = "trigger delete",
    .usage = "NAME",
    .summary = "Delete the trigger NAME. Deliveries in flight finish; queued ones are dropped.",
    .min_args = 1,
    .max_args = 1,
};

/* ---- create ---- */

static bool one_of(const char *v, const char *a, const char *b)
{
    return strcmp(v, a) == 0 || strcmp(v, b) == 0;
}

static bool all_digits(const char *s)
{
    if (*s == '\0') {
        return false;
    }
    for (; *s; s++) {
        if (*s < '0' || *s > '9') {
            return false;
        }
    }
    return true;
}

/* Sets obj[key] to the duration `value` when given; false after a usage error. */
static bool put_duration(json_t *obj, const char *key, const char *opt, const char *value)
{
    uint64_t ms;
    if (value == NULL) {
        return true;
    }
    if (hr_duration_parse(value, &ms) != 0) {
        hr__cli_usage_error(&create_cmd,
                            "%s '%s': expected an ISO 8601 duration such as PT0.2S, PT10M or P1D",
                            opt, value);
        return false;
    }
    json_object_set_new(obj, key, json_string(value));
    return true;
}

/* Sets obj[key] to the whole number `value` in [min, max] when given. */
static bool put_count(json_t *obj, const char *key, const char *opt, const char *value,
                      uint64_t min, uint64_t max)
{
    uint64_t n;
    if (value == NULL) {
        return true;
    }
    if (!hr__cli_parse_u64(&create_cmd, opt, value, min, max, &n)) {
        return false;
    }
    json_object_set_new(obj, key, json_integer((json_int_t)n));
    return true;
}

/* The filters array: each --filter, then one exact filter from --type/--source/--subject. */
static json_t *build_filters(const trigger_create_opts_t *o)
{
    json_t *filters = json_array();
    for (size_t i = 0; i < o->tc_filters.n; i++) {
        json_error_t err;
        json_t *f = json_loads(o->tc_filters.items[i], 0, &err);
        if (!json_is_object(f)) {
            hr__cli_usage_error(&create_cmd,
                                "--filter '%s': expected a JSON filter object such as "
                                "'{\"exact\":{\"type\":\"x\"}}' (%s)",
                                o->tc_filters.items[i], f ? "not an object" : err.text);
            json_decref(f);
            json_decref(filters);
            return NULL;
        }
        json_array_append_new(filters, f);
    }
    if (o->tc_type != NULL || o->tc_source != NULL || o->tc_subject != NULL) {
        json_t *exact = json_object();
        if (o->tc_type != NULL) {
            json_object_set_new(exact, "type", json_string(o->tc_type));
        }
        if (o->tc_source != NULL) {
            json_object_set_new(exact, "source", json_string(o->tc_source));
        }
        if (o->tc_subject != NULL) {
            json_object_set_new(exact, "subject", json_string(o->tc_subject));
        }
        json_array_append_new(filters, json_pack("{s:o}", "exact", exact));
    }
    return filters;
}

static json_t *build_headers(const trigger_create_opts_t *o)
{
    json_t *headers = json_object();
    for (size_t i = 0; i < o->tc_headers.n; i++) {
        const char *h = o->tc_headers.items[i];
        const char *eq = strchr(h, '=');
        if (eq == NULL || eq == h) {
            hr__cli_usage_error(&create_cmd, "--header '%s': expected NAME=VALUE", h);
            json_decref(headers);
            return NULL;
        }
        char *name = hr_xstrndup(h, (size_t)(eq - h));
        json_object_set_new(headers, name, json_string(eq + 1));
        free(name);
    }
    return headers;
}

static json_t *build_delivery(const trigger_create_opts_t *o)
{
    json_t *d = json_object();
    if (o->tc_backoff_policy != NULL && !one_of(o->tc_backoff_policy, "exponential", "linear")) {
        hr__cli_usage_error(&create_cmd, "--backoff-policy '%s': expected exponential or linear",
                            o->tc_backoff_policy);
        goto err;
    }
    if (!put_count(d, "retry", "--retry", o->tc_retry, 0, 1000) ||
        !put_duration(d, "backoff_delay", "--backoff-delay", o->tc_backoff_delay) ||
        !put_duration(d, "max_backoff", "--max-backoff", o->tc_max_backoff) ||
        !put_duration(d, "timeout", "--timeout", o->tc_timeout) ||
        !put_duration(d, "retry_after_max", "--retry-after-max", o->tc_retry_after_max) ||
        !put_duration(d, "max_age", "--max-age", o->tc_max_age) ||
        !put_count(d, "pipeline", "--pipeline", o->tc_pipeline, 1, 64)) {
        goto err;
    }
    if (o->tc_backoff_policy != NULL) {
        json_object_set_new(d, "backoff_policy", json_string(o->tc_backoff_policy));
    }
    if (o->tc_dead_letter_sink != NULL) {
        json_object_set_new(d, "dead_letter_sink", json_string(o->tc_dead_letter_sink));
    }
    return d;
err:
    json_decref(d);
    return NULL;
}

/* The start position: latest, earliest, a seq (sent as a number) or an RFC 3339 time; NULL
 * after a usage error. */
static json_t *build_start(const char *v)
{
    uint64_t seq;
    if (one_of(v, "latest", "earliest") || hr_rfc3339_check(v, strlen(v)) == 0) {
        return json_string(v);
    }
    if (!all_digits(v)) {
        hr__cli_usage_error(&create_cmd,
                            "--start '%s': expected latest, earliest, a seq or an RFC 3339 time "
                            "such as 2026-11-29T23:06:06Z",
                            v);
        return NULL;
    }
    if (!hr__cli_parse_u64(&create_cmd, "--start", v, 1, (uint64_t)INT64_MAX, &seq)) {
        return NULL;
    }
    return json_integer((json_int_t)seq);
}

/* Sets doc[key] to an enum option's value when given and one of a, b. */
static bool put_enum(json_t *doc, const char *key, const char *opt, const char *v, const char *a,
                     const char *b)
{
    if (v == NULL) {
        return true;
    }
    if (!one_of(v, a, b)) {
        hr__cli_usage_error(&create_cmd, "%s '%s': expected %s or %s", opt, v, a, b);
        return false;
    }
    json_object_set_new(doc, key, json_string(v));
    return true;
}

/* Builds the PUT document from the options; NULL after a usage error. */
static json_t *create_doc(const hr_cli_ctx_t *ctx, const trigger_create_opts_t *o)
{
    if (o->tc_sink == NULL) {
        hr__cli_usage_error(&create_cmd, "--sink URL is required");
        return NULL;
    }
    json_t *doc = json_pack("{s:s, s:s}", "bus", ctx->cc_bus, "sink", o->tc_sink);
    json_t *filters = build_filters(o);
    json_t *delivery = filters ? build_delivery(o) : NULL;
    json_t *headers = delivery ? build_headers(o) : NULL;
    if (headers == NULL) {
        json_decref(filters);
        json_decref(delivery);
        goto err;
    }
    json_object_set_new(doc, "filters", filters);
    json_object_set_new(doc, "delivery", delivery);
    json_object_set_new(doc, "headers", headers);
    if (!put_enum(doc, "format", "--format", o->tc_format, "binary", "structured") ||
        !put_enum(doc, "ordering", "--ordering", o->tc_ordering, "none", "key") ||
        !put_count(doc, "max_in_flight", "--max-in-flight", o->tc_max_in_flight, 1, 10000)) {
        goto err;
    }
    if (o->tc_rate_limit != NULL) {
        char *end;
        errno = 0;
        double r = strtod(o->tc_rate_limit, &end);
        if (errno != 0 || end == o->tc_rate_limit || *end != '\0' || !(r >= 0 && r <= 1e7)) {
            hr__cli_usage_error(&create_cmd,
                                "--rate-limit '%s': expected events per second from 0 to 10000000",
                                o->tc_rate_limit);
            goto err;
        }
        json_object_set_new(doc, "rate_limit",
                            r == floor(r) ? json_integer((json_int_t)r) : json_real(r));
    }
    if (o->tc_start != NULL) {
        json_t *start = build_start(o->tc_start);
        if (start == NULL) {
            goto err;
        }
        json_object_set_new(doc, "start", start);
    }
    if (o->tc_reply_bus != NULL) {
        json_object_set_new(doc, "reply_bus", json_string(o->tc_reply_bus));
    }
    return doc;
err:
    json_decref(doc);
    return NULL;
}

static int trigger_create(hr_cli_ctx_t *ctx, int argc, char **argv)
{
    trigger_create_opts_t o = {0};
    const char *args[HR_CLI_MAX_ARGS];
    size_t n_args;
    int rc;
    json_t *doc = NULL;
    char *path = NULL;
    hr_cli_resp_t resp = HR_CLI_RESP_INIT;
    if (!hr__cli_parse(ctx, &create_cmd, &o, argc, argv, args, &n_args, &rc)) {
        goto out;
    }
    doc = create_doc(ctx, &o);
    if (doc == NULL) {
        rc = HR_CLI_EXIT_USAGE;
        goto out;
    }
    path = hr__cli_path("/v1/triggers/", args[0], "");
    rc = hr__cli_send_json(ctx, "PUT", path, doc, &resp);
    if (rc == HR_CLI_EXIT_OK) {
        if (ctx->cc_json) {
            hr__cli_print_raw(&resp);
        } else {
            printf("%s trigger %s\n", resp.cr_status == 201 ? "created" : "updated", args[0]);
        }
    }
out:
    hr_cli_resp_free(&resp);
    free(path);
    json_decref(doc);
    hr__cli_strlist_free(&o.tc_filters);
    hr__cli_strlist_free(&o.tc_headers);
    return rc;
}

/* ---- list ---- */

enum {
    COL_NAME,
    COL_BUS,
    COL_SINK,
    COL_CURSOR,
    COL_LAG,
    COL_DELIVERED,
    COL_FAILED,
    COL_LAST_ERROR,
    N_COLS
};

static const char *const col_titles[N_COLS] = {"NAME", "BUS",       "SINK",   "CURSOR",
                                               "LAG",  "DELIVERED", "FAILED", "LAST ERROR"};

/* Longest last error shown in the table; `trigger get` shows all of it. */
#define LAST_ERROR_CHARS 60

static void fill_row(json_t *t, char **row)
{
    json_t *st = json_object_get(t, "status");
    row[COL_NAME] = hr__cli_human_value(json_object_get(t, "name"), 0);
    row[COL_BUS] = hr__cli_human_value(json_object_get(t, "bus"), 0);
    row[COL_SINK] = hr__cli_human_value(json_object_get(t, "sink"), 0);
    row[COL_CURSOR] = hr__cli_human_value(json_object_get(st, "cursor"), 0);
    row[COL_LAG] = hr__cli_human_value(json_object_get(st, "lag_events"), 0);
    row[COL_DELIVERED] = hr__cli_human_value(json_object_get(st, "delivered"), 0);
    row[COL_FAILED] = hr__cli_human_value(json_object_get(st, "failed"), 0);
    row[COL_LAST_ERROR] = hr__cli_human_value(json_object_get(st, "last_error"), LAST_ERROR_CHARS);
}

static int trigger_list(hr_cli_ctx_t *ctx, int argc, char **argv)
{
    trigger_list_opts_t o = {0};
    const char *args[HR_CLI_MAX_ARGS];
    size_t n_args;
    int rc;
    if (!hr__cli_parse(ctx, &list_cmd, &o, argc, argv, args, &n_args, &rc)) {
        return rc;
    }
    /* --bus after `list` is ours; before it, the global one, whose default means "all". */
    const char *bus = o.tl_bus ? o.tl_bus : strcmp(ctx->cc_bus, "default") ? ctx->cc_bus : NULL;
    char *path = bus ? hr__cli_path("/v1/triggers?bus=", bus, "") : hr_xstrdup("/v1/triggers");
    hr_cli_resp_t resp = HR_CLI_RESP_INIT;
    rc = hr_cli_client_request(hr__cli_client(ctx), "GET", path, NULL, NULL, 0, &resp);
    if (rc == HR_CLI_EXIT_OK && ctx->cc_json) {
        hr__cli_print_raw(&resp);
    } else if (rc == HR_CLI_EXIT_OK) {
        json_t *doc = hr__cli_load_object(&resp);
        json_t *triggers = json_object_get(doc, "triggers");
        if (json_is_array(triggers)) {
            size_t n = json_array_size(triggers);
            char **cells = hr_xcalloc(n * N_COLS + 1, sizeof *cells);
            for (size_t r = 0; r < n; r++) {
                fill_row(json_array_get(triggers, r), cells + r * N_COLS);
            }
            hr__cli_print_table(col_titles, N_COLS, cells, n);
        } else {
            fprintf(stderr, "herald: the server's answer has no triggers array\n");
            rc = HR_CLI_EXIT_SERVER;
        }
        json_decref(doc);
    }
    hr_cli_resp_free(&resp);
    free(path);
    return rc;
}

/* ---- get ---- */

/* Prints the members of `obj` as "key  value" lines; nested objects with dotted keys
 * ("delivery.retry", "status.cursor"), arrays (filters) as compact JSON. */
static void print_fields(json_t *obj, const char *prefix)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        char name[160];
        snprintf(name, sizeof name, "%s%s", prefix, key);
        if (json_is_object(v) && json_object_size(v) > 0) {
            char sub[162];
            snprintf(sub, sizeof sub, "%s.", name);
            print_fields(v, sub);
            continue;
        }
        char *text = hr__cli_human_value(v, 0);
        printf("%-26s %s\n", name, text);
        free(text);
    }
}

static int trigger_get(hr_cli_ctx_t *ctx, int argc, char **argv)
{
    const char *args[HR_CLI_MAX_ARGS];
    size_t n_args;
    int rc;
    if (!hr__cli_parse(ctx, &get_cmd, NULL, argc, argv, args, &n_args, &rc)) {
        return rc;
    }
    char *path = hr__cli_path("/v1/triggers/", args[0], "");
    hr_cli_resp_t resp = HR_CLI_RESP_INIT;
    rc = hr_cli_client_request(hr__cli_client(ctx), "GET", path, NULL, NULL, 0, &resp);
    if (rc == HR_CLI_EXIT_OK && ctx->cc_json) {
        hr__cli_print_raw(&resp);
    } else if (rc == HR_CLI_EXIT_OK) {
        json_t *doc = hr__cli_load_object(&resp);
        if (doc == NULL) {
            rc = HR_CLI_EXIT_SERVER;
        }
        print_fields(doc, "");
        json_decref(doc);
    }
    hr_cli_resp_free(&resp);
    free(path);
    return rc;
}

/* ---- delete ---- */

static int trigger_delete(hr_cli_ctx_t *ctx, int argc, char **argv)
{
    const char *args[HR_CLI_MAX_ARGS];
    size_t n_args;
    int rc;
    if (!hr__cli_parse(ctx, &delete_cmd, NULL, argc, argv, args, &n_args, &rc)) {
        return rc;
    }
    char *path = hr__cli_path("/v1/triggers/", args[0], "");
    hr_cli_resp_t resp = HR_CLI_RESP_INIT;
    rc = hr_cli_client_request(hr__cli_client(ctx), "DELETE", path, NULL, NULL, 0, &resp);
    if (rc == HR_CLI_EXIT_OK) {
        if (ctx->cc_json) {
            hr__cli_print_raw(&resp);
        } else {
            printf("deleted trigger %s\n", args[0]);
        }
    }
    hr_cli_resp_free(&resp);
    free(path);
    return rc;
}

static const hr_cli_subcmd_t subcommands[] = {
    {"create", trigger_create},
    {"list", trigger_list},
    {"get", trigger_get},
    {"delete", trigger_delete},
};

int hr__cli_trigger(hr_cli_ctx_t *ctx, int argc, char **argv)
{
    return hr__cli_run_group(ctx, &trigger_cmd, subcommands,
                             sizeof subcommands / sizeof subcommands[0],
                             "create, list, get or delete", argc, argv);
}
