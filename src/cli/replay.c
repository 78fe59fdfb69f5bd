/* SPDX-License-Identifier: MIT */
/*
 * `herald replay TRIGGER`: delivers a range of a trigger's past events again through
 * POST /v1/triggers/{name}/replay (docs/api.md, Replay). The range is given by seq or by
 * ingestion time; the server resolves times to seqs and answers the range it will deliver,
 * which is what the human output shows. Called by hr_cli_main on the main thread.
 */
#include "cli/cli.h"
#include "cli/client.h"
#include "util/rfc3339.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

typedef struct replay_opts {
    const char *ro_from;
    const char *ro_from_time;
    const char *ro_to;
    const char *ro_to_time;
} replay_opts_t;

static const hr_cli_opt_t replay_opts[] = {
    {"from", 0, HR_CLI_OPT_STR, offsetof(replay_opts_t, ro_from), "SEQ",
     "first seq to deliver again"},
    {"from-time", 0, HR_CLI_OPT_STR, offsetof(replay_opts_t, ro_from_time), "RFC3339",
     "start at the first event ingested at or after this time"},
    {"to", 0, HR_CLI_OPT_STR, offsetof(replay_opts_t, ro_to), "SEQ",
     "last seq (default: the last seq now)"},
    {"to-time", 0, HR_CLI_OPT_STR, offsetof(replay_opts_t, ro_to_time), "RFC3339",
     "end with the last event ingested at or before this time"},
    {NULL, 0, 0, 0, NULL, NULL},
};

static const hr_cli_cmd_t replay_cmd = {
    .name = "replay",
    .usage = "TRIGGER (--from SEQ | --from-time RFC3339) [--to SEQ | --to-time RFC3339]",
    .summary = "Deliver the events of a range of TRIGGER's bus that pass its filters again, in\n"
               "seq order, alongside live delivery (which it does not disturb; the trigger's\n"
               "cursor does not move). Prints the seq range the server will deliver. Replays\n"
               "do not survive a server restart.",
    .opts = replay_opts,
    .min_args = 1,
    .max_args = 1,
};

/* Adds one end of the range to `body`; false after a usage error. */
static bool put_end(json_t *body, const char *seq_opt, const char *seq, const char *time_opt,
                    const char *time)
{
    uint64_t v;
    if (seq != NULL && time != NULL) {
        hr__cli_usage_error(&replay_cmd, "give either --%s or --%s, not both", seq_opt, time_opt);
        return false;
    }
    if (seq != NULL) {
        char opt[32];
        snprintf(opt, sizeof opt, "--%s", seq_opt);
        if (!hr__cli_parse_u64(&replay_cmd, opt, seq, 1, INT64_MAX, &v)) {
            return false;
        }
        json_object_set_new(body, seq_opt, json_integer((json_int_t)v));
    }
    if (time != NULL) {
        if (hr_rfc3339_check(time, strlen(time)) != 0) {
            hr__cli_usage_error(&replay_cmd,
                                "--%s '%s': expected an RFC 3339 time such as "
                                "2026-11-29T23:06:06Z",
                                time_opt, time);
            return false;
        }
        char key[32];
        snprintf(key, sizeof key, "%s_time", seq_opt);
        json_object_set_new(body, key, json_string(time));
    }
    return true;
}

int hr__cli_replay(hr_cli_ctx_t *ctx, int argc, char **argv)
{
    replay_opts_t o = {0};
    const char *args[HR_CLI_MAX_ARGS];
    size_t n_args;
    int rc;
    if (!hr__cli_parse(ctx, &replay_cmd, &o, argc, argv, args, &n_args, &rc)) {
        return rc;
    }
    if (o.ro_from == NULL && o.ro_from_time == NULL) {
        return hr__cli_usage_error(&replay_cmd, "--from SEQ or --from-time RFC3339 is required");
    }
    json_t *body = json_object();
    if (!put_end(body, "from", o.ro_from, "from-time", o.ro_from_time) ||
        !put_end(body, "to", o.ro_to, "to-time", o.ro_to_time)) {
        json_decref(body);
        return HR_CLI_EXIT_USAGE;
    }
    char *path = hr__cli_path("/v1/triggers/", args[0], "/replay");
    hr_cli_resp_t resp = HR_CLI_RESP_INIT;
    rc = hr__cli_send_json(ctx, "POST", path, body, &resp);
    if (rc == HR_CLI_EXIT_OK && ctx->cc_json) {
        hr__cli_print_raw(&resp);
    } else if (rc == HR_CLI_EXIT_OK) {
        json_t *doc = hr__cli_load_object(&resp);
        json_t *from = json_object_get(doc, "from"), *to = json_object_get(doc, "to");
        if (json_is_integer(from) && json_is_integer(to)) {
            printf("replaying seq %" JSON_INTEGER_FORMAT " to %" JSON_INTEGER_FORMAT
                   " to trigger %s\n",
                   json_integer_value(from), json_integer_value(to), args[0]);
        } else {
            fprintf(stderr, "herald: the server's answer lacks the replayed range\n");
            rc = HR_CLI_EXIT_SERVER;
        }
        json_decref(doc);
    }
    hr_cli_resp_free(&resp);
    free(path);
    json_decref(body);
    return rc;
}
