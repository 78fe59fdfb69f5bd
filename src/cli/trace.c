/* SPDX-License-Identifier: MIT */
/*
 * `herald trace SEQ`: how one event of a bus was delivered, from
 * GET /v1/buses/{bus}/events/{seq}/trace (docs/api.md, Trace). The human view has one block per
 * trigger that matched the event: its outcome (pending, delivered, dead_lettered, dropped) and
 * each attempt with its time, the sink's HTTP status (or "-" when no answer came), the latency
 * and the error. The server keeps the first attempts and the last of each (event, trigger);
 * those between are only counted. Called by hr_cli_main on the main thread.
 */
#include "cli/cli.h"
#include "cli/client.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static const hr_cli_cmd_t trace_cmd = {
    .name = "trace",
    .usage = "SEQ [--bus BUS] [--json]",
    .summary = "Show how the event SEQ of the bus was delivered: per trigger that matched it,\n"
               "the outcome and every attempt (time, HTTP status, latency, error). Traces are\n"
               "kept in the server's memory for the most recent matched events only.",
    .min_args = 1,
    .max_args = 1,
};

static void print_attempt(json_t *a)
{
    char *time = hr__cli_human_value(json_object_get(a, "time"), 0);
    json_t *status = json_object_get(a, "status");
    json_t *latency = json_object_get(a, "latency_ms");
    char code[24] = "-";
    if (json_is_integer(status) && json_integer_value(status) != 0) {
        snprintf(code, sizeof code, "%" JSON_INTEGER_FORMAT, json_integer_value(status));
    }
    char ms[32] = "-";
    if (json_is_number(latency)) {
        snprintf(ms, sizeof ms, "%.1f ms", json_number_value(latency));
    }
    printf("    %-32s %-6s %10s", time, code, ms);
    json_t *error = json_object_get(a, "error");
    if (json_is_string(error)) {
        char *text = hr__cli_human_value(error, 0);
        printf("  %s", text);
        free(text);
    }
    putchar('\n');
    free(time);
}

static void print_trigger(json_t *t)
{
    char *name = hr__cli_human_value(json_object_get(t, "trigger"), 0);
    char *outcome = hr__cli_human_value(json_object_get(t, "outcome"), 0);
    json_t *attempts = json_object_get(t, "attempts");
    json_t *total = json_object_get(t, "attempts_total");
    json_int_t n_total =
        json_is_integer(total) ? json_integer_value(total) : (json_int_t)json_array_size(attempts);
    printf("trigger %s: %s, %" JSON_INTEGER_FORMAT " attempt%s", name, outcome, n_total,
           n_total == 1 ? "" : "s");
    if (json_is_true(json_object_get(t, "replay"))) {
        printf(" (including replays or redrives)");
    }
    putchar('\n');
    json_t *note = json_object_get(t, "note");
    if (json_is_string(note)) {
        char *text = hr__cli_human_value(note, 0);
        printf("    note: %s\n", text);
        free(text);
    }
    if (json_array_size(attempts) > 0) {
        printf("    %-32s %-6s %10s  %s\n", "TIME", "STATUS", "LATENCY", "ERROR");
    }
    /* The server keeps the first attempts and always the last; those between are counted. */
    size_t n = json_array_size(attempts);
    json_int_t missing = n_total - (json_int_t)n;
    for (size_t i = 0; i < n; i++) {
        if (i + 1 == n && missing > 0) {
            printf("    ... %" JSON_INTEGER_FORMAT " more attempt%s, not kept ...\n", missing,
                   missing == 1 ? "" : "s");
        }
        print_attempt(json_array_get(attempts, i));
    }
    free(name);
    free(outcome);
}

int hr__cli_trace(hr_cli_ctx_t *ctx, int argc, char **argv)
{
    const char *args[HR_CLI_MAX_ARGS];
    size_t n_args;
    int rc;
    uint64_t seq;
    if (!hr__cli_parse(ctx, &trace_cmd, NULL, argc, argv, args, &n_args, &rc)) {
        return rc;
    }
    if (!hr__cli_parse_u64(&trace_cmd, "SEQ", args[0], 1, INT64_MAX, &seq)) {
        return HR_CLI_EXIT_USAGE;
    }
    char suffix[64];
    snprintf(suffix, sizeof suffix, "/events/%llu/trace", (unsigned long long)seq);
    char *path = hr__cli_path("/v1/buses/", ctx->cc_bus, suffix);
    hr_cli_resp_t resp = HR_CLI_RESP_INIT;
    rc = hr_cli_client_request(hr__cli_client(ctx), "GET", path, NULL, NULL, 0, &resp);
    if (rc == HR_CLI_EXIT_OK && ctx->cc_json) {
        hr__cli_print_raw(&resp);
    } else if (rc == HR_CLI_EXIT_OK) {
        json_t *doc = hr__cli_load_object(&resp);
        json_t *triggers = json_object_get(doc, "triggers");
        if (!json_is_array(triggers)) {
            fprintf(stderr, "herald: the server's answer has no triggers array\n");
            rc = HR_CLI_EXIT_SERVER;
        } else if (json_array_size(triggers) == 0) {
            printf("event %llu of bus %s: no trigger matched it (or its trace is no longer "
                   "kept)\n",
                   (unsigned long long)seq, ctx->cc_bus);
        } else {
            printf("event %llu of bus %s:\n", (unsigned long long)seq, ctx->cc_bus);
            size_t i;
            json_t *t;
            json_array_foreach(triggers, i, t)
            {
                print_trigger(t);
            }
        }
        json_decref(doc);
    }
    hr_cli_resp_free(&resp);
    free(path);
    return rc;
}
