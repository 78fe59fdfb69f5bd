/* SPDX-License-Identifier: MIT */
/*
 * `herald cesql eval` and `herald cesql check`: CloudEvents SQL on the command line, without a
 * server. `eval` compiles an expression with the same compiler the server uses for `?filter=`
 * and {"cesql": ...} filters (src/filter/cesql.h) and evaluates it against one structured
 * CloudEvent, printing the value and the first evaluation error, if any -- the shape of a TCK
 * case, so that users can see why a filter does or does not pass. `check` compiles and lints,
 * the test the server applies before storing an expression. Called by hr_cli_main on the main
 * thread; sends nothing over the network.
 *
 * Exit status (the CLI's codes, read for local evaluation):
 *   0  evaluated without error (eval); the expression is accepted (check)
 *   1  evaluation raised an error (eval; the value is still printed)
 *   2  usage error, unreadable or invalid event, or an expression that does not parse (eval)
 *      or that the server would reject (check: parse error or unknown function)
 */
#include "ce/event.h"
#include "cli/cli.h"
#include "filter/cesql.h"
#include "util/err.h"
#include "util/utf8.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

typedef struct cesql_eval_opts {
    const char *ce_event;
    const char *ce_event_json;
} cesql_eval_opts_t;

static const hr_cli_opt_t eval_opts[] = {
    {"event", 0, HR_CLI_OPT_STR, offsetof(cesql_eval_opts_t, ce_event), "FILE",
     "the event, a structured CloudEvent in JSON (- for stdin)"},
    {"event-json", 0, HR_CLI_OPT_STR, offsetof(cesql_eval_opts_t, ce_event_json), "JSON",
     "the event given inline, e.g. '{\"specversion\":\"1.0\",\"id\":\"1\",...}'"},
    {NULL, 0, 0, 0, NULL, NULL},
};

static const hr_cli_cmd_t cesql_cmd = {
    .name = "cesql",
    .usage = "eval|check [options] EXPR",
    .summary = "CloudEvents SQL, evaluated locally (no server is contacted). Commands:\n"
               "  eval EXPR --event FILE | --event-json JSON   evaluate against an event\n"
               "  check EXPR                                   tell whether a filter accepts it\n"
               "Run `herald cesql <command> --help` for their options.",
};

static const hr_cli_cmd_t eval_cmd = {
    .name = "cesql eval",
    .usage = "EXPR --event FILE|-\n"
             "EXPR --event-json JSON",
    .summary =
        "Evaluate the CloudEvents SQL expression EXPR against a structured CloudEvent, as\n"
        "the server does for ?filter= and {\"cesql\": ...} filters. Prints the value (true,\n"
        "false, an integer or a quoted string) and, when evaluation raised an error, a\n"
        "second line `error: <kind>` (missingAttribute, cast, math, missingFunction,\n"
        "functionEvaluation). A filter passes only on `true` without an error. With --json:\n"
        "{\"result\": ..., \"type\": \"boolean|integer|string\", \"error\": null|\"<kind>\"}.\n"
        "Give the options first, then `--` before an expression that starts with '-'.\n"
        "\n"
        "Exit status: 0 evaluated without error, 1 evaluation raised an error, 2 usage\n"
        "error, invalid event, or an expression that does not parse (the message gives the\n"
        "character position, counted from 0).",
    .opts = eval_opts,
    .min_args = 1,
    .max_args = 1,
};

static const hr_cli_cmd_t check_cmd = {
    .name = "cesql check",
    .usage = "EXPR",
    .summary = "Compile and lint the CloudEvents SQL expression EXPR as the server does before\n"
               "it accepts a filter (syntax, limits, known functions with the right number of\n"
               "arguments). Prints `ok`, or the error with its character position (from 0).\n"
               "With --json: {\"valid\": true} or {\"valid\": false, \"error\": \"<kind>\",\n"
               "\"position\": N, \"message\": \"...\"}.\n"
               "\n"
               "Exit status: 0 the expression is valid, 2 it is not (or a usage error).",
    .min_args = 1,
    .max_args = 1,
};

/* Prints `s` (len bytes) between double quotes, escaping quotes, backslashes and what could
 * drive a terminal, so that the output reads back as a JSON string when s is valid UTF-8. */
static void print_quoted(const char *s, size_t len)
{
    const uint8_t *p = (const uint8_t *)s;
    putchar('"');
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        size_t n = hr_utf8_decode(p + i, len - i, &cp);
        if (n == 0) {
            printf("\\x%02X", p[i]);
            n = 1;
        } else if (cp == '"' || cp == '\\') {
            printf("\\%c", (char)cp);
        } else if (cp == '\n') {
            fputs("\\n", stdout);
        } else if (cp == '\r') {
            fputs("\\r", stdout);
        } else if (cp == '\t') {
            fputs("\\t", stdout);
        } else if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0) || cp == 0x2028 || cp == 0x2029) {
            printf("\\u%04X", (unsigned)cp);
        } else {
            fwrite(p + i, 1, n, stdout);
        }
        i += n;
    }
    putchar('"');
}

static const char *type_name(hr_cesql_type_t t)
{
    switch (t) {
    case HR_CESQL_BOOLEAN:
        return "boolean";
    case HR_CESQL_INTEGER:
        return "integer";
    case HR_CESQL_STRING:
        return "string";
    }
    return "boolean";
}

/* Prints a JSON object (taken) on one line of stdout. Returns false when out of memory. */
static bool print_json_line(json_t *doc)
{
    char *text = doc ? json_dumps(doc, 0) : NULL;
    json_decref(doc);
    if (text == NULL) {
        fprintf(stderr, "herald: out of memory\n");
        return false;
    }
    puts(text);
    free(text);
    return true;
}

/* Reports an expression that was rejected: the message on stderr and, with --json, the
 * error as a document on stdout (`with_result` adds the eval shape's null result and type).
 * Returns HR_CLI_EXIT_USAGE. */
static int report_invalid(const hr_cli_ctx_t *ctx, const hr_cli_cmd_t *cmd,
                          const hr_cesql_error_t *err, bool with_result)
{
    const char *kind = hr_cesql_errkind_name(err->kind);
    fprintf(stderr, "herald %s: invalid CloudEvents SQL expression (%s error). %s\n", cmd->name,
            kind, err->msg);
    if (ctx->cc_json) {
        json_t *doc = json_object();
        if (with_result) {
            json_object_set_new(doc, "result", json_null());
            json_object_set_new(doc, "type", json_null());
        } else {
            json_object_set_new(doc, "valid", json_false());
        }
        json_object_set_new(doc, "error", json_string(kind));
        json_object_set_new(doc, "position", json_integer((json_int_t)err->char_offset));
        json_object_set_new(doc, "message", json_string(err->msg));
        print_json_line(doc);
    }
    return HR_CLI_EXIT_USAGE;
}

/* Reads and decodes the event named by the options into *out. Returns HR_CLI_EXIT_OK, or
 * HR_CLI_EXIT_USAGE after printing why. */
static int load_event(const cesql_eval_opts_t *o, hr_ce_event_t **out)
{
    *out = NULL;
    if ((o->ce_event == NULL) == (o->ce_event_json == NULL)) {
        return hr__cli_usage_error(&eval_cmd,
                                   "give the event with either --event FILE or --event-json JSON");
    }
    char *data = NULL;
    size_t len;
    const char *what;
    if (o->ce_event != NULL) {
        int rc = hr__cli_read_file(o->ce_event, &data, &len);
        if (rc != HR_CLI_EXIT_OK) {
            return rc;
        }
        what = strcmp(o->ce_event, "-") == 0 ? "standard input" : o->ce_event;
    } else {
        len = strlen(o->ce_event_json);
        what = "--event-json";
    }
    const char *text = data ? data : o->ce_event_json;
    hr_ce_error_t err;
    memset(&err, 0, sizeof err);
    int rc = hr_ce_from_structured((const uint8_t *)text, len, out, &err);
    free(data);
    if (rc == HR_EINVAL) {
        return hr__cli_usage_error(&eval_cmd, "%s is not a valid structured CloudEvent: %s", what,
                                   err.msg);
    }
    if (rc != 0) {
        fprintf(stderr, "herald: cannot decode %s: out of memory\n", what);
        return HR_CLI_EXIT_USAGE;
    }
    return HR_CLI_EXIT_OK;
}

/* Prints the value and first error of an evaluation, human or --json. Returns false when out
 * of memory. */
static bool print_result(const hr_cli_ctx_t *ctx, const hr_cesql_value_t *v,
                         hr_cesql_errkind_t kind)
{
    if (ctx->cc_json) {
        json_t *result;
        switch (v->type) {
        case HR_CESQL_INTEGER:
            result = json_integer(v->i);
            break;
        case HR_CESQL_STRING:
            result = json_stringn(v->s, v->s_len);
            if (result == NULL) { /* not UTF-8: cannot happen for event attributes */
                result = json_null();
            }
            break;
        default:
            result = json_boolean(v->b);
            break;
        }
        json_t *doc = json_object();
        json_object_set_new(doc, "result", result);
        json_object_set_new(doc, "type", json_string(type_name(v->type)));
        json_object_set_new(doc, "error",
                            kind == HR_CESQL_ERR_NONE ? json_null()
                                                      : json_string(hr_cesql_errkind_name(kind)));
        return print_json_line(doc);
    }
    switch (v->type) {
    case HR_CESQL_INTEGER:
        printf("%d", (int)v->i);
        break;
    case HR_CESQL_STRING:
        print_quoted(v->s, v->s_len);
        break;
    default:
        fputs(v->b ? "true" : "false", stdout);
        break;
    }
    putchar('\n');
    if (kind != HR_CESQL_ERR_NONE) {
        printf("error: %s\n", hr_cesql_errkind_name(kind));
    }
    return true;
}

static int cesql_eval(hr_cli_ctx_t *ctx, int argc, char **argv)
{
    cesql_eval_opts_t o = {0};
    const char *args[HR_CLI_MAX_ARGS];
    size_t n_args;
    int rc;
    hr_ce_event_t *ev = NULL;
    hr_cesql_t *q = NULL;
    hr_cesql_value_t v = {.type = HR_CESQL_BOOLEAN};
    if (!hr__cli_parse(ctx, &eval_cmd, &o, argc, argv, args, &n_args, &rc)) {
        goto out;
    }
    /* The expression first: a typo in it is the likelier mistake, and needs no event. */
    hr_cesql_error_t err;
    memset(&err, 0, sizeof err);
    int crc = hr_cesql_compile(args[0], strlen(args[0]), &q, &err);
    if (crc == HR_EINVAL) {
        rc = report_invalid(ctx, &eval_cmd, &err, true);
        goto out;
    }
    if (crc != 0) {
        fprintf(stderr, "herald: cannot compile the expression: out of memory\n");
        rc = HR_CLI_EXIT_USAGE;
        goto out;
    }
    if ((rc = load_event(&o, &ev)) != HR_CLI_EXIT_OK) {
        goto out;
    }
    /* Unknown functions are not linted away here: the spec makes them a missingFunction error
     * at evaluation, which is what the user asked to see. */
    hr_cesql_errkind_t kind = HR_CESQL_ERR_NONE;
    if (hr_cesql_eval(q, ev, &v, &kind) != 0) {
        fprintf(stderr, "herald: out of memory evaluating the expression\n");
        rc = HR_CLI_EXIT_SERVER;
        goto out;
    }
    if (!print_result(ctx, &v, kind)) {
        rc = HR_CLI_EXIT_SERVER;
        goto out;
    }
    rc = kind == HR_CESQL_ERR_NONE ? HR_CLI_EXIT_OK : HR_CLI_EXIT_SERVER;
out:
    fflush(stdout);
    hr_cesql_value_clear(&v);
    hr_cesql_destroy(q);
    hr_ce_event_free(ev);
    return rc;
}

static int cesql_check(hr_cli_ctx_t *ctx, int argc, char **argv)
{
    const char *args[HR_CLI_MAX_ARGS];
    size_t n_args;
    int rc;
    hr_cesql_t *q = NULL;
    if (!hr__cli_parse(ctx, &check_cmd, NULL, argc, argv, args, &n_args, &rc)) {
        return rc;
    }
    hr_cesql_error_t err;
    memset(&err, 0, sizeof err);
    int crc = hr_cesql_compile(args[0], strlen(args[0]), &q, &err);
    if (crc == 0) {
        crc = hr_cesql_lint(q, &err);
    }
    if (crc == HR_EINVAL) {
        rc = report_invalid(ctx, &check_cmd, &err, false);
    } else if (crc != 0) {
        fprintf(stderr, "herald: cannot compile the expression: out of memory\n");
        rc = HR_CLI_EXIT_USAGE;
    } else if (ctx->cc_json) {
        rc = print_json_line(json_pack("{s:b}", "valid", 1)) ? HR_CLI_EXIT_OK : HR_CLI_EXIT_SERVER;
    } else {
        puts("ok");
        rc = HR_CLI_EXIT_OK;
    }
    fflush(stdout);
    hr_cesql_destroy(q);
    return rc;
}

static const hr_cli_subcmd_t subcommands[] = {
    {"eval", cesql_eval},
    {"check", cesql_check},
};

int hr__cli_cesql(hr_cli_ctx_t *ctx, int argc, char **argv)
{
    return hr__cli_run_group(ctx, &cesql_cmd, subcommands,
                             sizeof subcommands / sizeof subcommands[0], "eval or check", argc,
                             argv);
}
