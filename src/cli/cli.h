/* SPDX-License-Identifier: MIT */
/*
 * The `herald` command-line client: every subcommand except `serve` talks to a running server
 * over the HTTP API (docs/api.md). main() calls hr_cli_main(); cli.c parses the global options
 * and dispatches to the subcommand modules (publish.c, tail.c, bus.c, trigger.c, apply.c,
 * deadletters.c, replay.c, trace.c, filter.c), each of which owns its options table and is
 * described by an hr_cli_cmd_t. Single-threaded; runs on the main thread.
 *
 * Exit status, which scripts rely on:
 *   0  success
 *   1  the server answered with an error (its `error` message is printed as "herald: ...")
 *   2  usage error: the command line or its input files are wrong; nothing was sent
 *   3  the server could not be reached (the message names the URL)
 *
 * The second half of this header is the interface between cli.c and the subcommand modules.
 */
#ifndef HR_CLI_CLI_H
#define HR_CLI_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Runs one client subcommand. argv[0] is the program name, argv[1] the subcommand; global
 * options may come before or after the subcommand. Returns the process exit status. */
int hr_cli_main(int argc, char **argv);

/* ---- For the subcommand modules of src/cli/ ---- */

enum {
    HR_CLI_EXIT_OK = 0,
    HR_CLI_EXIT_SERVER = 1,
    HR_CLI_EXIT_USAGE = 2,
    HR_CLI_EXIT_UNREACHABLE = 3,
};

#define HR_CLI_DEFAULT_SERVER "http://127.0.0.1:8088"
#define HR_CLI_MAX_ARGS 8

typedef struct hr_cli_client hr_cli_client_t;

/* Global state of one invocation, built by hr_cli_main. Strings are borrowed from argv or the
 * environment and live as long as the process. */
typedef struct hr_cli_ctx {
    const char *cc_server;      /* base URL */
    const char *cc_bus;         /* --bus, default "default" */
    bool cc_json;               /* --json: print the server's JSON */
    bool cc_help;               /* -h/--help was given */
    hr_cli_client_t *cc_client; /* owned; created on first use by hr__cli_client() */
} hr_cli_ctx_t;

typedef enum hr_cli_opt_kind {
    HR_CLI_OPT_FLAG, /* bool field; takes no value */
    HR_CLI_OPT_STR,  /* const char * field, borrowed from argv; the last occurrence wins */
    HR_CLI_OPT_LIST, /* hr_cli_strlist_t field; every occurrence is appended */
} hr_cli_opt_kind_t;

/* One option of a command. Tables end with an entry whose name is NULL. */
typedef struct hr_cli_opt {
    const char *name;       /* long name without the leading "--" */
    char short_name;        /* 0 for none */
    hr_cli_opt_kind_t kind; /* type of the field at `offset` */
    size_t offset;          /* offsetof() the field in the command's options struct */
    const char *metavar;    /* value placeholder shown in help, NULL for flags */
    const char *help;       /* one line */
} hr_cli_opt_t;

/* Values of a repeatable option; items are borrowed from argv, the array is owned (free it
 * with hr__cli_strlist_free). */
typedef struct hr_cli_strlist {
    const char **items;
    size_t n;
} hr_cli_strlist_t;

/* A command or subcommand, as shown by --help. */
typedef struct hr_cli_cmd {
    const char *name;         /* "publish", "bus create" */
    const char *usage;        /* argument synopsis after the name; lines separated by '\n' */
    const char *summary;      /* one paragraph */
    const hr_cli_opt_t *opts; /* may be NULL */
    size_t min_args;          /* positional arguments */
    size_t max_args;          /* at most HR_CLI_MAX_ARGS */
} hr_cli_cmd_t;

/* Parses the global options of a command group (`herald`, `herald bus`) in argv[1..argc) up to
 * the first positional argument, which names the subcommand; sets *sub to its index (argc when
 * there is none). Returns false after printing a usage error (*exit_code = 2). */
bool hr__cli_parse_group(hr_cli_ctx_t *ctx, const hr_cli_cmd_t *group, int argc, char **argv,
                         int *sub, int *exit_code);

/* Parses argv[1..argc) of `cmd` (argv[0] is the command's own name). Options go to the struct
 * at `opts` (per cmd->opts) or, for global options, to `ctx`; positional arguments are stored in
 * args[0..*n_args). Returns true when the command should run. Returns false after printing
 * help (*exit_code = 0) or a usage error (*exit_code = 2) itself. */
bool hr__cli_parse(hr_cli_ctx_t *ctx, const hr_cli_cmd_t *cmd, void *opts, int argc, char **argv,
                   const char **args, size_t *n_args, int *exit_code);

/* Returns the HTTP client for ctx->cc_server, creating it on the first call. The pointer stays
 * valid until hr_cli_main returns. */
hr_cli_client_t *hr__cli_client(hr_cli_ctx_t *ctx);

/* Prints "herald <cmd>: <message>" and a hint about --help to stderr. Returns
 * HR_CLI_EXIT_USAGE for convenience. `cmd` may be NULL (plain "herald: "). */
int hr__cli_usage_error(const hr_cli_cmd_t *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prints the help of `cmd` (synopsis, summary, its options and the global ones) to stdout. */
void hr__cli_print_help(const hr_cli_cmd_t *cmd);

/* Parses `s` as a decimal integer in [min, max]; prints a usage error naming `opt` otherwise.
 * Returns true on success. */
bool hr__cli_parse_u64(const hr_cli_cmd_t *cmd, const char *opt, const char *s, uint64_t min,
                       uint64_t max, uint64_t *out);

/* Reads all of `path` ("-" is stdin) into a fresh buffer (*data, owned, NUL-terminated, length
 * *len). Returns 0, or HR_CLI_EXIT_USAGE after printing the reason. */
int hr__cli_read_file(const char *path, char **data, size_t *len);

void hr__cli_strlist_free(hr_cli_strlist_t *l);

/* Writes `s` (len bytes) to `f` for a human: control characters are escaped, invalid UTF-8 is
 * shown as \xNN, and output stops after `max_chars` characters with "..." (0: no limit). Event
 * content goes through here so that it cannot drive the terminal. */
void hr__cli_print_human_to(FILE *f, const char *s, size_t len, size_t max_chars);

/* ---- Output and dispatch helpers shared by the command modules; defined in trigger.c ---- */

struct hr_cli_resp;
struct json_t;

/* One subcommand of a command group (`trigger create`). */
typedef struct hr_cli_subcmd {
    const char *name;
    int (*run)(hr_cli_ctx_t *ctx, int argc, char **argv);
} hr_cli_subcmd_t;

/* Runs the subcommand of `group` named by the first positional argument of argv[1..argc);
 * `names` lists them for error messages ("create, list, get or delete"). */
int hr__cli_run_group(hr_cli_ctx_t *ctx, const hr_cli_cmd_t *group, const hr_cli_subcmd_t *subs,
                      size_t n_subs, const char *names, int argc, char **argv);

/* Returns "<prefix><name escaped as a path segment><suffix>", which the caller frees. */
char *hr__cli_path(const char *prefix, const char *name, const char *suffix);

/* Dumps `body` (borrowed) and sends it with Content-Type: application/json; as
 * hr_cli_client_request otherwise. */
int hr__cli_send_json(hr_cli_ctx_t *ctx, const char *method, const char *path, struct json_t *body,
                      struct hr_cli_resp *resp);

/* Prints the body of an answer as is, ending with a newline (--json). */
void hr__cli_print_raw(const struct hr_cli_resp *resp);

/* Parses the body of an answer as a JSON object (a new reference), or prints why not and
 * returns NULL. */
struct json_t *hr__cli_load_object(const struct hr_cli_resp *resp);

/* Formats a JSON value for a human, made safe for a terminal (hr__cli_print_human_to) and cut
 * after `max_chars` characters (0: no limit): strings as they are, null or absent as "-",
 * anything else as compact JSON. The caller frees the result. */
char *hr__cli_human_value(struct json_t *v, size_t max_chars);

/* Prints a table with a header row of `n_cols` titles and `n_rows` rows of cells (row-major,
 * already made safe by hr__cli_human_value). Takes and frees the cells and their array. */
void hr__cli_print_table(const char *const *titles, size_t n_cols, char **cells, size_t n_rows);

/* The subcommands. argv[0] is the subcommand's name. Return the exit status. */
int hr__cli_publish(hr_cli_ctx_t *ctx, int argc, char **argv);
int hr__cli_tail(hr_cli_ctx_t *ctx, int argc, char **argv);
int hr__cli_bus(hr_cli_ctx_t *ctx, int argc, char **argv);
int hr__cli_trigger(hr_cli_ctx_t *ctx, int argc, char **argv);
int hr__cli_apply(hr_cli_ctx_t *ctx, int argc, char **argv);
int hr__cli_deadletters(hr_cli_ctx_t *ctx, int argc, char **argv);
int hr__cli_replay(hr_cli_ctx_t *ctx, int argc, char **argv);
int hr__cli_trace(hr_cli_ctx_t *ctx, int argc, char **argv);
int hr__cli_filter(hr_cli_ctx_t *ctx, int argc, char **argv);
int hr__cli_cesql(hr_cli_ctx_t *ctx, int argc, char **argv);

#endif
