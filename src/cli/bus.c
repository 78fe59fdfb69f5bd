/* SPDX-License-Identifier: MIT */
/*
 * `herald bus create|list|get|delete`: manages buses through PUT/GET/DELETE /v1/buses/{bus}
 * and GET /v1/buses. Human output is a table (list) or one field per line (get); --json prints
 * the server's answer as is. Called by hr_cli_main on the main thread.
 */
#include "cli/cli.h"
#include "cli/client.h"
#include "util/alloc.h"
#include "util/duration.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

typedef struct bus_create_opts {
    const char *bc_fsync;
    const char *bc_fsync_interval;
    const char *bc_retention_age;
    const char *bc_retention_bytes;
    const char *bc_dedup_window;
} bus_create_opts_t;

typedef struct bus_delete_opts {
    bool bd_force;
} bus_delete_opts_t;

static const hr_cli_opt_t create_opts[] = {
    {"fsync", 0, HR_CLI_OPT_STR, offsetof(bus_create_opts_t, bc_fsync), "POLICY",
     "always (default: ack after fdatasync), interval or never"},
    {"fsync-interval", 0, HR_CLI_OPT_STR, offsetof(bus_create_opts_t, bc_fsync_interval),
     "DURATION", "sync period of --fsync interval, e.g. PT0.1S"},
    {"retention-age", 0, HR_CLI_OPT_STR, offsetof(bus_create_opts_t, bc_retention_age), "DURATION",
     "drop events older than this, e.g. P7D (none: keep them forever)"},
    {"retention-bytes", 0, HR_CLI_OPT_STR, offsetof(bus_create_opts_t, bc_retention_bytes), "N",
     "drop the oldest events beyond N bytes in all (none: no limit)"},
    {"dedup-window", 0, HR_CLI_OPT_STR, offsetof(bus_create_opts_t, bc_dedup_window), "DURATION",
     "how long a source+id is remembered, e.g. PT10M (the default)"},
    {NULL, 0, 0, 0, NULL, NULL},
};

static const hr_cli_opt_t delete_opts[] = {
    {"force", 0, HR_CLI_OPT_FLAG, offsetof(bus_delete_opts_t, bd_force), NULL,
     "delete the bus even though it holds events (they are lost)"},
    {NULL, 0, 0, 0, NULL, NULL},
};

static const hr_cli_cmd_t bus_cmd = {
    .name = "bus",
    .usage = "<command> [options]",
    .summary = "Manage buses. Commands:\n"
               "  create NAME [options]   create a bus, or update its settings\n"
               "  list                    list the buses with their event counts\n"
               "  get NAME                show a bus's settings and stats\n"
               "  delete NAME [--force]   delete a bus\n"
               "Run `herald bus <command> --help` for a command's options.",
};

static const hr_cli_cmd_t create_cmd = {
    .name = "bus create",
    .usage = "NAME [options]",
    .summary = "Create the bus NAME (PUT /v1/buses/NAME), or update the settings given of an\n"
               "existing one. Durations are ISO 8601: PT0.1S, PT10M, P7D.",
    .opts = create_opts,
    .min_args = 1,
    .max_args = 1,
};

static const hr_cli_cmd_t list_cmd = {
    .name = "bus list",
    .usage = "[--json]",
    .summary = "List the buses with their event counts and settings.",
    .min_args = 0,
    .max_args = 0,
};

static const hr_cli_cmd_t get_cmd = {
    .name = "bus get",
    .usage = "NAME [--json]",
    .summary = "Show the settings and stats of the bus NAME.",
    .min_args = 1,
    .max_args = 1,
};

static const hr_cli_cmd_t delete_cmd = {
    .name = "bus delete",
    .usage = "NAME [--force]",
    .summary = "Delete the bus NAME. A bus that holds events is only deleted with --force;\n"
               "the bus `default` cannot be deleted.",
    .opts = delete_opts,
    .min_args = 1,
    .max_args = 1,
};

/* ---- Shared ---- */

/* "forever", or "max_age P7D, max_bytes 1073741824", safe for a terminal. Caller frees. */
static char *fmt_retention(json_t *r)
{
    json_t *age = json_object_get(r, "max_age");
    json_t *bytes = json_object_get(r, "max_bytes");
    bool has_age = age != NULL && !json_is_null(age);
    bool has_bytes = bytes != NULL && !json_is_null(bytes);
    if (!has_age && !has_bytes) {
        return hr_xstrdup("forever");
    }
    char *a = hr__cli_human_value(age, 0), *b = hr__cli_human_value(bytes, 0);
    size_t len = strlen(a) + strlen(b) + 32;
    char *out = hr_xmalloc(len);
    if (has_age && has_bytes) {
        snprintf(out, len, "max_age %s, max_bytes %s", a, b);
    } else if (has_age) {
        snprintf(out, len, "max_age %s", a);
    } else {
        snprintf(out, len, "max_bytes %s", b);
    }
    free(a);
    free(b);
    return out;
}

/* ---- create ---- */

/* "none" clears a retention limit (JSON null). */
static bool is_none(const char *value)
{
    return value != NULL && strcmp(value, "none") == 0;
}

static bool check_duration(const char *opt, const char *value)
{
    uint64_t ms;
    if (value != NULL && !(is_none(value) && strncmp(opt, "--retention", 11) == 0) &&
        hr_duration_parse(value, &ms) != 0) {
        hr__cli_usage_error(&create_cmd,
                            "%s '%s': expected an ISO 8601 duration such as PT0.1S, PT10M or P7D",
                            opt, value);
        return false;
    }
    return true;
}

/* Builds the PUT document from the options given; NULL after a usage error. */
static json_t *create_doc(const bus_create_opts_t *o)
{
    if (o->bc_fsync != NULL && strcmp(o->bc_fsync, "always") != 0 &&
        strcmp(o->bc_fsync, "interval") != 0 && strcmp(o->bc_fsync, "never") != 0) {
        hr__cli_usage_error(&create_cmd, "--fsync '%s': expected always, interval or never",
                            o->bc_fsync);
        return NULL;
    }
    uint64_t max_bytes = 0;
    if (!check_duration("--fsync-interval", o->bc_fsync_interval) ||
        !check_duration("--retention-age", o->bc_retention_age) ||
        !check_duration("--dedup-window", o->bc_dedup_window) ||
        (o->bc_retention_bytes != NULL && !is_none(o->bc_retention_bytes) &&
         !hr__cli_parse_u64(&create_cmd, "--retention-bytes", o->bc_retention_bytes, 0,
                            (uint64_t)INT64_MAX, &max_bytes))) {
        return NULL;
    }
    json_t *doc = json_object();
    if (o->bc_fsync != NULL) {
        json_object_set_new(doc, "fsync", json_string(o->bc_fsync));
    }
    if (o->bc_fsync_interval != NULL) {
        json_object_set_new(doc, "fsync_interval", json_string(o->bc_fsync_interval));
    }
    if (o->bc_retention_age != NULL || o->bc_retention_bytes != NULL) {
        json_t *r = json_object();
        if (o->bc_retention_age != NULL) {
            json_object_set_new(r, "max_age",
                                is_none(o->bc_retention_age) ? json_null()
                                                             : json_string(o->bc_retention_age));
        }
        if (o->bc_retention_bytes != NULL) {
            json_object_set_new(
                r, "max_bytes",
                is_none(o->bc_retention_bytes) ? json_null() : json_integer((json_int_t)max_bytes));
        }
        json_object_set_new(doc, "retention", r);
    }
    if (o->bc_dedup_window != NULL) {
        json_object_set_new(doc, "dedup_window", json_string(o->bc_dedup_window));
    }
    return doc;
}

static int bus_create(hr_cli_ctx_t *ctx, int argc, char **argv)
{
    bus_create_opts_t o = {0};
    const char *args[HR_CLI_MAX_ARGS];
    size_t n_args;
    int rc;
    if (!hr__cli_parse(ctx, &create_cmd, &o, argc, argv, args, &n_args, &rc)) {
        return rc;
    }
    json_t *doc = create_doc(&o);
    if (doc == NULL) {
        return HR_CLI_EXIT_USAGE;
    }
    char *body = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (body == NULL) {
        fprintf(stderr, "herald: out of memory\n");
        return HR_CLI_EXIT_USAGE;
    }
    static const char *const headers[] = {"Content-Type: application/json", NULL};
    char *path = hr__cli_path("/v1/buses/", args[0], "");
    hr_cli_resp_t resp = HR_CLI_RESP_INIT;
    rc =
        hr_cli_client_request(hr__cli_client(ctx), "PUT", path, headers, body, strlen(body), &resp);
    if (rc == HR_CLI_EXIT_OK) {
        if (ctx->cc_json) {
            hr__cli_print_raw(&resp);
        } else {
            printf("%s bus %s\n", resp.cr_status == 201 ? "created" : "updated", args[0]);
        }
    }
    hr_cli_resp_free(&resp);
    free(path);
    free(body);
    return rc;
}

/* ---- list ---- */

enum {
    COL_NAME,
    COL_EVENTS,
    COL_FIRST,
    COL_LAST,
    COL_BYTES,
    COL_FSYNC,
    COL_RETENTION,
    COL_DEDUP,
    N_COLS
};

static const char *const col_titles[N_COLS] = {"NAME",  "EVENTS", "FIRST",     "LAST",
                                               "BYTES", "FSYNC",  "RETENTION", "DEDUP"};

static void fill_row(json_t *bus, char **row)
{
    json_t *stats = json_object_get(bus, "stats");
    row[COL_NAME] = hr__cli_human_value(json_object_get(bus, "name"), 0);
    row[COL_EVENTS] = hr__cli_human_value(json_object_get(stats, "events"), 0);
    /* An empty bus reports first_seq 1, last_seq 0: show no range at all. */
    bool empty = json_integer_value(json_object_get(stats, "events")) == 0;
    row[COL_FIRST] =
        empty ? hr_xstrdup("-") : hr__cli_human_value(json_object_get(stats, "first_seq"), 0);
    row[COL_LAST] =
        empty ? hr_xstrdup("-") : hr__cli_human_value(json_object_get(stats, "last_seq"), 0);
    row[COL_BYTES] = hr__cli_human_value(json_object_get(stats, "bytes"), 0);
    row[COL_FSYNC] = hr__cli_human_value(json_object_get(bus, "fsync"), 0);
    row[COL_RETENTION] = fmt_retention(json_object_get(bus, "retention"));
    row[COL_DEDUP] = hr__cli_human_value(json_object_get(bus, "dedup_window"), 0);
}

static void print_table(json_t *buses)
{
    size_t n = json_array_size(buses);
    char **cells = hr_xcalloc(n * N_COLS + 1, sizeof *cells);
    for (size_t r = 0; r < n; r++) {
        fill_row(json_array_get(buses, r), cells + r * N_COLS);
    }
    hr__cli_print_table(col_titles, N_COLS, cells, n);
}

static int bus_list(hr_cli_ctx_t *ctx, int argc, char **argv)
{
    const char *args[HR_CLI_MAX_ARGS];
    size_t n_args;
    int rc;
    if (!hr__cli_parse(ctx, &list_cmd, NULL, argc, argv, args, &n_args, &rc)) {
        return rc;
    }
    hr_cli_resp_t resp = HR_CLI_RESP_INIT;
    rc = hr_cli_client_request(hr__cli_client(ctx), "GET", "/v1/buses", NULL, NULL, 0, &resp);
    if (rc == HR_CLI_EXIT_OK) {
        if (ctx->cc_json) {
            hr__cli_print_raw(&resp);
        } else {
            json_t *doc = hr__cli_load_object(&resp);
            json_t *buses = json_object_get(doc, "buses");
            if (json_is_array(buses)) {
                print_table(buses);
            } else {
                fprintf(stderr, "herald: the server's answer has no buses array\n");
                rc = HR_CLI_EXIT_SERVER;
            }
            json_decref(doc);
        }
    }
    hr_cli_resp_free(&resp);
    return rc;
}

/* ---- get ---- */

/* Prints the members of `obj` as "key  value" lines, nested objects with dotted keys
 * ("stats.last_seq"), retention summarised on one line. */
static void print_fields(json_t *obj, const char *prefix)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        char name[128];
        snprintf(name, sizeof name, "%s%s", prefix, key);
        char *text = NULL;
        if (strcmp(name, "retention") == 0) {
            text = fmt_retention(v);
        } else if (json_is_object(v)) {
            char sub[130];
            snprintf(sub, sizeof sub, "%s.", name);
            print_fields(v, sub);
            continue;
        } else {
            text = hr__cli_human_value(v, 0);
        }
        printf("%-18s%s\n", name, text); /* text is safe for a terminal */
        free(text);
    }
}

static int bus_get(hr_cli_ctx_t *ctx, int argc, char **argv)
{
    const char *args[HR_CLI_MAX_ARGS];
    size_t n_args;
    int rc;
    if (!hr__cli_parse(ctx, &get_cmd, NULL, argc, argv, args, &n_args, &rc)) {
        return rc;
    }
    char *path = hr__cli_path("/v1/buses/", args[0], "");
    hr_cli_resp_t resp = HR_CLI_RESP_INIT;
    rc = hr_cli_client_request(hr__cli_client(ctx), "GET", path, NULL, NULL, 0, &resp);
    if (rc == HR_CLI_EXIT_OK) {
        if (ctx->cc_json) {
            hr__cli_print_raw(&resp);
        } else {
            json_t *doc = hr__cli_load_object(&resp);
            if (doc == NULL) {
                rc = HR_CLI_EXIT_SERVER;
            }
            print_fields(doc, "");
            json_decref(doc);
        }
    }
    hr_cli_resp_free(&resp);
    free(path);
    return rc;
}

/* ---- delete ---- */

/* True when the error answer names `field` as the one at fault. */
static bool error_field_is(const hr_cli_resp_t *resp, const char *field)
{
    json_t *doc = json_loadb((const char *)resp->cr_body.data, resp->cr_body.len, 0, NULL);
    const char *f = json_string_value(json_object_get(doc, "field"));
    bool is = f != NULL && strcmp(f, field) == 0;
    json_decref(doc);
    return is;
}

static int bus_delete(hr_cli_ctx_t *ctx, int argc, char **argv)
{
    bus_delete_opts_t o = {0};
    const char *args[HR_CLI_MAX_ARGS];
    size_t n_args;
    int rc;
    if (!hr__cli_parse(ctx, &delete_cmd, &o, argc, argv, args, &n_args, &rc)) {
        return rc;
    }
    char *path = hr__cli_path("/v1/buses/", args[0], o.bd_force ? "?force=true" : "");
    hr_cli_resp_t resp = HR_CLI_RESP_INIT;
    rc = hr_cli_client_request(hr__cli_client(ctx), "DELETE", path, NULL, NULL, 0, &resp);
    if (rc == HR_CLI_EXIT_OK) {
        if (ctx->cc_json) {
            hr__cli_print_raw(&resp);
        } else {
            printf("deleted bus %s\n", args[0]);
        }
    } else if (resp.cr_status == 409 && !o.bd_force && error_field_is(&resp, "force")) {
        /* The server speaks of ?force=true; tell a CLI user the option that means it. */
        fprintf(stderr, "herald: `herald bus delete %s --force` deletes it with its events\n",
                args[0]);
    }
    hr_cli_resp_free(&resp);
    free(path);
    return rc;
}

/* ---- Dispatch ---- */

static const hr_cli_subcmd_t subcommands[] = {
    {"create", bus_create},
    {"list", bus_list},
    {"get", bus_get},
    {"delete", bus_delete},
};

int hr__cli_bus(hr_cli_ctx_t *ctx, int argc, char **argv)
{
    return hr__cli_run_group(ctx, &bus_cmd, subcommands, sizeof subcommands / sizeof subcommands[0],
                             "create, list, get or delete", argc, argv);
}
