/* SPDX-License-Identifier: MIT */
/*
 * `herald filter test`: asks the server whether filters match an event, through
 * POST /v1/filters/test (docs/api.md, Filters) -- the same evaluation the dispatcher runs, so
 * that users can try a trigger's filters before creating it. Prints `match` or `no match`.
 * Called by hr_cli_main on the main thread.
 */
#include "cli/cli.h"
#include "cli/client.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

typedef struct filter_test_opts {
    const char *ft_event;
    hr_cli_strlist_t ft_filters;
    const char *ft_filters_file;
    bool ft_exit_status;
} filter_test_opts_t;

static const hr_cli_opt_t test_opts[] = {
    {"event", 0, HR_CLI_OPT_STR, offsetof(filter_test_opts_t, ft_event), "FILE",
     "the event, a structured CloudEvent in JSON (- for stdin; required)"},
    {"filter", 0, HR_CLI_OPT_LIST, offsetof(filter_test_opts_t, ft_filters), "JSON",
     "a filter object, e.g. '{\"exact\":{\"type\":\"x\"}}' (repeatable; all must match)"},
    {"filters-file", 0, HR_CLI_OPT_STR, offsetof(filter_test_opts_t, ft_filters_file), "FILE",
     "the filters as JSON: an array of filter objects, or {\"filters\": [...]}"},
    {"exit-status", 0, HR_CLI_OPT_FLAG, offsetof(filter_test_opts_t, ft_exit_status), NULL,
     "exit with 0 on a match and 1 on no match"},
    {NULL, 0, 0, 0, NULL, NULL},
};

static const hr_cli_cmd_t filter_cmd = {
    .name = "filter",
    .usage = "test [options]",
    .summary = "Try filters. Commands:\n"
               "  test --event FILE [--filter JSON]... | --filters-file FILE\n"
               "Run `herald filter test --help` for its options.",
};

static const hr_cli_cmd_t test_cmd = {
    .name = "filter test",
    .usage = "--event FILE [--filter JSON]... [--exit-status]\n"
             "--event FILE --filters-file FILE [--exit-status]",
    .summary = "Tell whether the filters match the event, as a trigger with these filters would\n"
               "decide. Prints `match` or `no match` and exits 0 either way (with\n"
               "--exit-status: 0 on a match, 1 on no match). No filters match every event.\n"
               "--filters-file may also hold {\"filter\": {\"attributes\": {...}}}, the legacy\n"
               "Knative form.",
    .opts = test_opts,
    .min_args = 0,
    .max_args = 0,
};

/* Parses the JSON text `text` from `what`; NULL after a usage error. */
static json_t *load_json(const char *what, const char *text, size_t len)
{
    json_error_t err;
    json_t *v = json_loadb(text, len, 0, &err);
    if (v == NULL) {
        hr__cli_usage_error(&test_cmd, "%s: invalid JSON at line %d column %d: %s", what, err.line,
                            err.column, err.text);
    }
    return v;
}

/* Reads and parses FILE; NULL after printing why. */
static json_t *load_json_file(const char *path)
{
    char *data;
    size_t len;
    if (hr__cli_read_file(path, &data, &len) != HR_CLI_EXIT_OK) {
        return NULL;
    }
    json_t *v = load_json(strcmp(path, "-") == 0 ? "standard input" : path, data, len);
    free(data);
    return v;
}

/* Adds "filters" (or the legacy "filter") to the request body; false after a usage error. */
static bool add_filters(json_t *body, const filter_test_opts_t *o)
{
    if (o->ft_filters_file != NULL) {
        if (o->ft_filters.n > 0) {
            hr__cli_usage_error(&test_cmd, "give either --filter or --filters-file, not both");
            return false;
        }
        json_t *f = load_json_file(o->ft_filters_file);
        if (json_is_array(f)) {
            json_object_set_new(body, "filters", f);
        } else if (json_is_object(f) &&
                   (json_object_get(f, "filters") != NULL || json_object_get(f, "filter"))) {
            json_object_update(body, f);
            json_object_del(body, "event"); /* the event comes from --event */
            json_decref(f);
        } else if (json_is_object(f)) {
            json_object_set_new(body, "filters", json_pack("[o]", f)); /* one filter object */
        } else {
            if (f != NULL) {
                hr__cli_usage_error(&test_cmd,
                                    "--filters-file %s: expected a JSON array of "
                                    "filter objects or an object",
                                    o->ft_filters_file);
            }
            json_decref(f);
            return false;
        }
        return true;
    }
    json_t *filters = json_array();
    for (size_t i = 0; i < o->ft_filters.n; i++) {
        const char *text = o->ft_filters.items[i];
        json_t *f = load_json("--filter", text, strlen(text));
        if (!json_is_object(f)) {
            if (f != NULL) {
                hr__cli_usage_error(&test_cmd, "--filter '%s': expected a JSON filter object",
                                    text);
            }
            json_decref(f);
            json_decref(filters);
            return false;
        }
        json_array_append_new(filters, f);
    }
    json_object_set_new(body, "filters", filters);
    return true;
}

static int filter_test(hr_cli_ctx_t *ctx, int argc, char **argv)
{
    filter_test_opts_t o = {0};
    const char *args[HR_CLI_MAX_ARGS];
    size_t n_args;
    int rc;
    json_t *body = NULL;
    hr_cli_resp_t resp = HR_CLI_RESP_INIT;
    if (!hr__cli_parse(ctx, &test_cmd, &o, argc, argv, args, &n_args, &rc)) {
        goto out;
    }
    if (o.ft_event == NULL) {
        rc = hr__cli_usage_error(&test_cmd, "--event FILE is required (- for stdin)");
        goto out;
    }
    if (o.ft_filters_file != NULL && strcmp(o.ft_filters_file, "-") == 0 &&
        strcmp(o.ft_event, "-") == 0) {
        rc = hr__cli_usage_error(&test_cmd, "--event and --filters-file cannot both be stdin");
        goto out;
    }
    rc = HR_CLI_EXIT_USAGE;
    body = json_object();
    if (!add_filters(body, &o)) {
        goto out;
    }
    json_t *event = load_json_file(o.ft_event);
    if (event == NULL) {
        goto out;
    }
    if (!json_is_object(event)) {
        hr__cli_usage_error(&test_cmd, "--event %s: expected a CloudEvent as a JSON object",
                            o.ft_event);
        json_decref(event);
        goto out;
    }
    json_object_set_new(body, "event", event);
    rc = hr__cli_send_json(ctx, "POST", "/v1/filters/test", body, &resp);
    if (rc != HR_CLI_EXIT_OK) {
        goto out;
    }
    json_t *doc = hr__cli_load_object(&resp);
    json_t *match = json_object_get(doc, "match");
    if (!json_is_boolean(match)) {
        fprintf(stderr, "herald: the server's answer has no match member\n");
        rc = HR_CLI_EXIT_SERVER;
    } else if (ctx->cc_json) {
        hr__cli_print_raw(&resp);
    } else {
        printf("%s\n", json_is_true(match) ? "match" : "no match");
    }
    if (rc == HR_CLI_EXIT_OK && o.ft_exit_status && json_is_false(match)) {
        rc = HR_CLI_EXIT_SERVER;
    }
    json_decref(doc);
out:
    hr_cli_resp_free(&resp);
    json_decref(body);
    hr__cli_strlist_free(&o.ft_filters);
    return rc;
}

static const hr_cli_subcmd_t subcommands[] = {
    {"test", filter_test},
};

int hr__cli_filter(hr_cli_ctx_t *ctx, int argc, char **argv)
{
    return hr__cli_run_group(ctx, &filter_cmd, subcommands,
                             sizeof subcommands / sizeof subcommands[0], "test", argc, argv);
}
