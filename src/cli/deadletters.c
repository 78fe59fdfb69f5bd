/* SPDX-License-Identifier: MIT */
/*
 * `herald deadletters list|redrive`: the dead letters of a bus (docs/api.md, Dead letters).
 * `list` reads GET /v1/buses/{bus}/deadletters a page at a time (all pages with --all) and
 * prints a table: the dead letter's id, trigger, seq, time, attempts, and the error code and
 * data the delivery ended with (the heralderrorcode and heralderrordata extensions). `redrive`
 * posts to .../deadletters/redrive, which delivers them again to their trigger's current sink.
 * Called by hr_cli_main on the main thread.
 */
#include "cli/cli.h"
#include "cli/client.h"
#include "util/alloc.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* Most dead letters one request asks for (the server's limit). */
#define PAGE_MAX 1000
/* Longest error data shown in the table. */
#define DATA_CHARS 40

typedef struct dl_list_opts {
    const char *dl_trigger;
    const char *dl_after;
    const char *dl_limit;
    bool dl_all;
} dl_list_opts_t;

typedef struct dl_redrive_opts {
    const char *dr_trigger;
    const char *dr_from;
    const char *dr_to;
} dl_redrive_opts_t;

static const hr_cli_opt_t list_opts[] = {
    {"trigger", 0, HR_CLI_OPT_STR, offsetof(dl_list_opts_t, dl_trigger), "NAME",
     "only the dead letters of this trigger"},
    {"after", 0, HR_CLI_OPT_STR, offsetof(dl_list_opts_t, dl_after), "ID",
     "start after this dead letter id (the last one of the previous page)"},
    {"limit", 0, HR_CLI_OPT_STR, offsetof(dl_list_opts_t, dl_limit), "N",
     "at most N per page, 1 to 1000 (default 100)"},
    {"all", 0, HR_CLI_OPT_FLAG, offsetof(dl_list_opts_t, dl_all), NULL,
     "read every page, not just the first"},
    {NULL, 0, 0, 0, NULL, NULL},
};

static const hr_cli_opt_t redrive_opts[] = {
    {"trigger", 0, HR_CLI_OPT_STR, offsetof(dl_redrive_opts_t, dr_trigger), "NAME",
     "only the dead letters of this trigger"},
    {"from", 0, HR_CLI_OPT_STR, offsetof(dl_redrive_opts_t, dr_from), "SEQ",
     "only events from this seq on"},
    {"to", 0, HR_CLI_OPT_STR, offsetof(dl_redrive_opts_t, dr_to), "SEQ",
     "only events up to this seq"},
    {NULL, 0, 0, 0, NULL, NULL},
};

static const hr_cli_cmd_t deadletters_cmd = {
    .name = "deadletters",
    .usage = "<command> [options]",
    .summary = "Inspect and redrive the dead letters of a bus (--bus, default \"default\"):\n"
               "events whose delivery failed for good. Commands:\n"
               "  list [--trigger T] [--all]        list them with the error they ended with\n"
               "  redrive [--trigger T] [--from SEQ --to SEQ]   deliver them again\n"
               "Run `herald deadletters <command> --help` for a command's options.",
};

static const hr_cli_cmd_t list_cmd = {
    .name = "deadletters list",
    .usage = "[--bus BUS] [--trigger T] [--after ID] [--limit N] [--all] [--json]",
    .summary = "List the dead letters of a bus, oldest first: id, trigger, seq, time, delivery\n"
               "attempts, and the error code and data the last attempt ended with (the code is\n"
               "the sink's HTTP status, or timeout, connection_refused, dns, tls, network,\n"
               "hop_limit, reply_failed). Without --all, one page; the next starts --after the\n"
               "last id shown. With --json and --all, one JSON object with every dead letter.",
    .opts = list_opts,
    .min_args = 0,
    .max_args = 0,
};

static const hr_cli_cmd_t redrive_cmd = {
    .name = "deadletters redrive",
    .usage = "[--bus BUS] [--trigger T] [--from SEQ] [--to SEQ] [--json]",
    .summary = "Deliver the dead letters of a bus again (all, or those of one trigger and/or a\n"
               "seq range; up to 10,000 per call) to their trigger's current sink. One that is\n"
               "delivered leaves the dead letters; one that fails again is recorded again.\n"
               "Prints `redriven N, skipped M` (skipped: their trigger no longer exists).",
    .opts = redrive_opts,
    .min_args = 0,
    .max_args = 0,
};

/* ---- list ---- */

enum { COL_ID, COL_TRIGGER, COL_SEQ, COL_TIME, COL_ATTEMPTS, COL_CODE, COL_DATA, N_COLS };

static const char *const col_titles[N_COLS] = {"ID",       "TRIGGER", "SEQ", "TIME",
                                               "ATTEMPTS", "CODE",    "DATA"};

static void fill_row(json_t *dl, char **row)
{
    json_t *ev = json_object_get(dl, "event");
    row[COL_ID] = hr__cli_human_value(json_object_get(dl, "id"), 0);
    row[COL_TRIGGER] = hr__cli_human_value(json_object_get(dl, "trigger"), 0);
    row[COL_SEQ] = hr__cli_human_value(json_object_get(dl, "seq"), 0);
    row[COL_TIME] = hr__cli_human_value(json_object_get(dl, "time"), 0);
    row[COL_ATTEMPTS] = hr__cli_human_value(json_object_get(dl, "attempts"), 0);
    row[COL_CODE] = hr__cli_human_value(json_object_get(ev, "heralderrorcode"), 0);
    row[COL_DATA] = hr__cli_human_value(json_object_get(ev, "heralderrordata"), DATA_CHARS);
}

/* Reads one page after `after` (NULL: from the start) into *page. Returns an exit status. */
static int get_page(hr_cli_ctx_t *ctx, const dl_list_opts_t *o, const char *after, uint64_t limit,
                    json_t **page)
{
    *page = NULL;
    char *base = hr__cli_path("/v1/buses/", ctx->cc_bus, "/deadletters?limit=");
    char *trigger = o->dl_trigger ? hr_cli_escape(o->dl_trigger) : NULL;
    size_t len = strlen(base) + 64 + (trigger ? strlen(trigger) + 16 : 0);
    char *path = hr_xmalloc(len);
    int n = snprintf(path, len, "%s%llu", base, (unsigned long long)limit);
    if (after != NULL) {
        n += snprintf(path + n, len - (size_t)n, "&after=%s", after);
    }
    if (trigger != NULL) {
        snprintf(path + n, len - (size_t)n, "&trigger=%s", trigger);
    }
    hr_cli_resp_t resp = HR_CLI_RESP_INIT;
    int rc = hr_cli_client_request(hr__cli_client(ctx), "GET", path, NULL, NULL, 0, &resp);
    if (rc == HR_CLI_EXIT_OK) {
        *page = hr__cli_load_object(&resp);
        if (*page == NULL || !json_is_array(json_object_get(*page, "deadletters"))) {
            fprintf(stderr, "herald: the server's answer has no deadletters array\n");
            json_decref(*page);
            *page = NULL;
            rc = HR_CLI_EXIT_SERVER;
        }
    }
    hr_cli_resp_free(&resp);
    free(path);
    free(trigger);
    free(base);
    return rc;
}

static int dl_list(hr_cli_ctx_t *ctx, int argc, char **argv)
{
    dl_list_opts_t o = {0};
    const char *args[HR_CLI_MAX_ARGS];
    size_t n_args;
    int rc;
    uint64_t limit = 100, after_id = 0;
    if (!hr__cli_parse(ctx, &list_cmd, &o, argc, argv, args, &n_args, &rc)) {
        return rc;
    }
    if ((o.dl_limit && !hr__cli_parse_u64(&list_cmd, "--limit", o.dl_limit, 1, PAGE_MAX, &limit)) ||
        (o.dl_after &&
         !hr__cli_parse_u64(&list_cmd, "--after", o.dl_after, 0, INT64_MAX, &after_id))) {
        return HR_CLI_EXIT_USAGE;
    }
    if (o.dl_all && o.dl_limit == NULL) {
        limit = PAGE_MAX;
    }
    json_t *all = json_array();
    json_t *next = NULL; /* the last page's "next" */
    char after[32];
    snprintf(after, sizeof after, "%llu", (unsigned long long)after_id);
    bool more = false;
    for (;;) {
        json_t *page;
        rc = get_page(ctx, &o, o.dl_after || json_array_size(all) ? after : NULL, limit, &page);
        if (rc != HR_CLI_EXIT_OK) {
            break;
        }
        json_t *items = json_object_get(page, "deadletters");
        json_array_extend(all, items);
        json_decref(next);
        next = json_incref(json_object_get(page, "next"));
        size_t n = json_array_size(items);
        json_decref(page);
        more = n == limit && json_is_integer(next);
        if (!more || !o.dl_all) {
            break;
        }
        snprintf(after, sizeof after, "%" JSON_INTEGER_FORMAT, json_integer_value(next));
    }
    if (rc == HR_CLI_EXIT_OK && ctx->cc_json) {
        json_t *doc =
            json_pack("{s:O, s:O}", "deadletters", all, "next", next ? next : json_null());
        json_dumpf(doc, stdout, JSON_COMPACT);
        putchar('\n');
        json_decref(doc);
    } else if (rc == HR_CLI_EXIT_OK) {
        size_t n = json_array_size(all);
        char **cells = hr_xcalloc(n * N_COLS + 1, sizeof *cells);
        for (size_t r = 0; r < n; r++) {
            fill_row(json_array_get(all, r), cells + r * N_COLS);
        }
        hr__cli_print_table(col_titles, N_COLS, cells, n);
        if (more && !o.dl_all) {
            fprintf(stderr,
                    "herald: more dead letters follow: --after %" JSON_INTEGER_FORMAT
                    " shows the next page, --all shows them all\n",
                    json_integer_value(next));
        }
    }
    json_decref(next);
    json_decref(all);
    return rc;
}

/* ---- redrive ---- */

static int dl_redrive(hr_cli_ctx_t *ctx, int argc, char **argv)
{
    dl_redrive_opts_t o = {0};
    const char *args[HR_CLI_MAX_ARGS];
    size_t n_args;
    int rc;
    uint64_t from = 0, to = 0;
    if (!hr__cli_parse(ctx, &redrive_cmd, &o, argc, argv, args, &n_args, &rc)) {
        return rc;
    }
    if ((o.dr_from && !hr__cli_parse_u64(&redrive_cmd, "--from", o.dr_from, 1, INT64_MAX, &from)) ||
        (o.dr_to && !hr__cli_parse_u64(&redrive_cmd, "--to", o.dr_to, 1, INT64_MAX, &to))) {
        return HR_CLI_EXIT_USAGE;
    }
    if (o.dr_from && o.dr_to && from > to) {
        return hr__cli_usage_error(&redrive_cmd, "--from %llu is after --to %llu",
                                   (unsigned long long)from, (unsigned long long)to);
    }
    json_t *body = json_object();
    if (o.dr_trigger != NULL) {
        json_object_set_new(body, "trigger", json_string(o.dr_trigger));
    }
    if (o.dr_from != NULL) {
        json_object_set_new(body, "from", json_integer((json_int_t)from));
    }
    if (o.dr_to != NULL) {
        json_object_set_new(body, "to", json_integer((json_int_t)to));
    }
    char *path = hr__cli_path("/v1/buses/", ctx->cc_bus, "/deadletters/redrive");
    hr_cli_resp_t resp = HR_CLI_RESP_INIT;
    rc = hr__cli_send_json(ctx, "POST", path, body, &resp);
    if (rc == HR_CLI_EXIT_OK && ctx->cc_json) {
        hr__cli_print_raw(&resp);
    } else if (rc == HR_CLI_EXIT_OK) {
        json_t *doc = hr__cli_load_object(&resp);
        json_t *redriven = json_object_get(doc, "redriven"),
               *skipped = json_object_get(doc, "skipped");
        if (json_is_integer(redriven) && json_is_integer(skipped)) {
            printf("redriven %" JSON_INTEGER_FORMAT ", skipped %" JSON_INTEGER_FORMAT "\n",
                   json_integer_value(redriven), json_integer_value(skipped));
        } else {
            fprintf(stderr, "herald: the server's answer lacks redriven and skipped counts\n");
            rc = HR_CLI_EXIT_SERVER;
        }
        json_decref(doc);
    }
    hr_cli_resp_free(&resp);
    free(path);
    json_decref(body);
    return rc;
}

static const hr_cli_subcmd_t subcommands[] = {
    {"list", dl_list},
    {"redrive", dl_redrive},
};

int hr__cli_deadletters(hr_cli_ctx_t *ctx, int argc, char **argv)
{
    return hr__cli_run_group(ctx, &deadletters_cmd, subcommands,
                             sizeof subcommands / sizeof subcommands[0], "list or redrive", argc,
                             argv);
}
