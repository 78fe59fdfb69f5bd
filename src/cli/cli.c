/* SPDX-License-Identifier: MIT */
/*
 * `herald <command>`: the client side of the binary. hr_cli_main (called by main() for every
 * subcommand but `serve`) reads the global options (--server, --bus, --json, --help, also
 * HERALD_URL), picks the command from the table below and runs it. Also the shared helpers of
 * the subcommand modules: the table-driven option parser, help and usage-error printing,
 * reading input files and printing untrusted text. Main thread only.
 */
#include "cli/cli.h"
#include "cli/client.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/utf8.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Column where option help text starts in --help output. */
#define HELP_COLUMN 28

typedef struct cli_command {
    const char *name;
    int (*run)(hr_cli_ctx_t *ctx, int argc, char **argv);
    const char *summary;
} cli_command_t;

static const cli_command_t commands[] = {
    {"publish", hr__cli_publish, "publish an event, or a batch of events, to a bus"},
    {"tail", hr__cli_tail, "print a bus's events, or follow them live"},
    {"bus", hr__cli_bus, "create, list, show and delete buses"},
    {"trigger", hr__cli_trigger, "create, list, show and delete triggers"},
    {"apply", hr__cli_apply, "create or update buses and triggers from a YAML or JSON file"},
    {"deadletters", hr__cli_deadletters, "list dead letters, or deliver them again"},
    {"replay", hr__cli_replay, "deliver a trigger's past events again"},
    {"trace", hr__cli_trace, "show how an event was delivered, attempt by attempt"},
    {"filter", hr__cli_filter, "test filters against an event"},
    {"cesql", hr__cli_cesql, "evaluate or check a CloudEvents SQL expression locally"},
};

static const hr_cli_opt_t global_opts[] = {
    {"server", 0, HR_CLI_OPT_STR, offsetof(hr_cli_ctx_t, cc_server), "URL",
     "server to talk to (env HERALD_URL; default " HR_CLI_DEFAULT_SERVER ")"},
    {"bus", 0, HR_CLI_OPT_STR, offsetof(hr_cli_ctx_t, cc_bus), "NAME",
     "bus to use (default \"default\")"},
    {"json", 0, HR_CLI_OPT_FLAG, offsetof(hr_cli_ctx_t, cc_json), NULL,
     "print the server's JSON instead of text, for scripts"},
    {"help", 'h', HR_CLI_OPT_FLAG, offsetof(hr_cli_ctx_t, cc_help), NULL, "show this help"},
    {NULL, 0, 0, 0, NULL, NULL},
};

static const hr_cli_cmd_t top_cmd = {
    .name = NULL,
    .usage = "[global options] <command> [options] [arguments]",
    .summary = "Herald is a CloudEvents router. `herald serve` runs the server; the other\n"
               "commands talk to a running server over its HTTP API.",
};

/* ---- Help and errors ---- */

static void print_opts(const hr_cli_opt_t *opts)
{
    for (size_t i = 0; opts != NULL && opts[i].name != NULL; i++) {
        const hr_cli_opt_t *o = &opts[i];
        char left[96];
        int n;
        if (o->short_name) {
            n = snprintf(left, sizeof left, "  -%c, --%s", o->short_name, o->name);
        } else {
            n = snprintf(left, sizeof left, "  --%s", o->name);
        }
        if (o->metavar != NULL && n > 0 && (size_t)n < sizeof left) {
            snprintf(left + n, sizeof left - (size_t)n, " %s", o->metavar);
        }
        size_t w = strlen(left);
        if (w + 2 > HELP_COLUMN) {
            printf("%s\n%*s%s\n", left, HELP_COLUMN, "", o->help);
        } else {
            printf("%s%*s%s\n", left, (int)(HELP_COLUMN - w), "", o->help);
        }
    }
}

static void print_exit_codes(void)
{
    printf("\nExit status: 0 success, 1 the server reported an error, 2 usage error (nothing was\n"
           "sent), 3 the server could not be reached.\n");
}

void hr__cli_print_help(const hr_cli_cmd_t *cmd)
{
    /* The usage may hold several synopsis lines; each gets the command's name. */
    const char *u = cmd->usage ? cmd->usage : "";
    const char *prefix = "Usage: ";
    do {
        const char *nl = strchr(u, '\n');
        size_t len = nl ? (size_t)(nl - u) : strlen(u);
        printf("%sherald%s%s %.*s\n", prefix, cmd->name ? " " : "", cmd->name ? cmd->name : "",
               (int)len, u);
        prefix = "       ";
        u = nl ? nl + 1 : NULL;
    } while (u != NULL);
    if (cmd->summary != NULL) {
        printf("\n%s\n", cmd->summary);
    }
    if (cmd->opts != NULL && cmd->opts[0].name != NULL) {
        printf("\nOptions:\n");
        print_opts(cmd->opts);
    }
    printf("\nGlobal options:\n");
    print_opts(global_opts);
    print_exit_codes();
}

int hr__cli_usage_error(const hr_cli_cmd_t *cmd, const char *fmt, ...)
{
    const char *name = cmd && cmd->name ? cmd->name : NULL;
    fprintf(stderr, "herald%s%s: ", name ? " " : "", name ? name : "");
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'herald%s%s --help'.\n", name ? " " : "", name ? name : "");
    return HR_CLI_EXIT_USAGE;
}

/* ---- Option parsing ---- */

/* Stores `value` (NULL for a flag) into the field of `o` in `base`. */
static void store(const hr_cli_opt_t *o, void *base, const char *value)
{
    char *field = (char *)base + o->offset;
    switch (o->kind) {
    case HR_CLI_OPT_FLAG:
        *(bool *)(void *)field = true;
        break;
    case HR_CLI_OPT_STR:
        *(const char **)(void *)field = value;
        break;
    case HR_CLI_OPT_LIST: {
        hr_cli_strlist_t *l = (hr_cli_strlist_t *)(void *)field;
        l->items = hr_xrealloc(l->items, (l->n + 1) * sizeof *l->items);
        l->items[l->n++] = value;
        break;
    }
    }
}

static const hr_cli_opt_t *find_opt(const hr_cli_opt_t *opts, const char *name, size_t name_len,
                                    char short_name)
{
    for (size_t i = 0; opts != NULL && opts[i].name != NULL; i++) {
        if (short_name != 0) {
            if (opts[i].short_name == short_name) {
                return &opts[i];
            }
        } else if (strlen(opts[i].name) == name_len && memcmp(opts[i].name, name, name_len) == 0) {
            return &opts[i];
        }
    }
    return NULL;
}

/*
 * Consumes the option at argv[*i] (and its value) if it belongs to `cmd`'s table or to the
 * global table. Returns 1 when consumed (advancing *i past it), or -1 after printing a usage
 * error. Accepted forms: --name, --name=value, --name value, -x, -x value.
 */
static int take_option(hr_cli_ctx_t *ctx, const hr_cli_cmd_t *cmd, void *opts, int argc,
                       char **argv, int *i)
{
    const char *arg = argv[*i];
    const char *name;
    size_t name_len;
    char short_name = 0;
    const char *inline_value = NULL;
    if (arg[1] == '-') {
        name = arg + 2;
        const char *eq = strchr(name, '=');
        name_len = eq ? (size_t)(eq - name) : strlen(name);
        inline_value = eq ? eq + 1 : NULL;
    } else {
        if (arg[2] != '\0') {
            hr__cli_usage_error(cmd, "unknown option '%s'", arg);
            return -1;
        }
        name = arg + 1;
        name_len = 1;
        short_name = arg[1];
    }
    void *base = opts;
    const hr_cli_opt_t *o = find_opt(cmd->opts, name, name_len, short_name);
    if (o == NULL) {
        o = find_opt(global_opts, name, name_len, short_name);
        base = ctx;
    }
    if (o == NULL) {
        hr__cli_usage_error(cmd, "unknown option '%.*s%.*s'", short_name ? 1 : 2, "--",
                            (int)name_len, name);
        return -1;
    }
    if (o->kind == HR_CLI_OPT_FLAG) {
        if (inline_value != NULL) {
            hr__cli_usage_error(cmd, "option '--%s' takes no value", o->name);
            return -1;
        }
        store(o, base, NULL);
        *i += 1;
        return 1;
    }
    if (inline_value == NULL) {
        if (*i + 1 >= argc) {
            hr__cli_usage_error(cmd, "option '--%s' needs a value (%s)", o->name, o->metavar);
            return -1;
        }
        inline_value = argv[*i + 1]; /* taken as is, even when it starts with '-' */
        *i += 1;
    }
    store(o, base, inline_value);
    *i += 1;
    return 1;
}

static bool is_option(const char *arg)
{
    return arg[0] == '-' && arg[1] != '\0'; /* "-" alone is an argument (stdin) */
}

static bool check_server(const hr_cli_cmd_t *cmd, const hr_cli_ctx_t *ctx, int *exit_code)
{
    const char *s = ctx->cc_server;
    if (strncmp(s, "http://", 7) != 0 && strncmp(s, "https://", 8) != 0) {
        *exit_code = hr__cli_usage_error(
            cmd, "the server URL '%s' must start with http:// or https:// (--server, HERALD_URL)",
            s);
        return false;
    }
    return true;
}

bool hr__cli_parse_group(hr_cli_ctx_t *ctx, const hr_cli_cmd_t *group, int argc, char **argv,
                         int *sub, int *exit_code)
{
    int i = 1;
    while (i < argc && is_option(argv[i])) {
        if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        }
        if (take_option(ctx, group, NULL, argc, argv, &i) < 0) {
            *exit_code = HR_CLI_EXIT_USAGE;
            return false;
        }
    }
    *sub = i;
    return true;
}

bool hr__cli_parse(hr_cli_ctx_t *ctx, const hr_cli_cmd_t *cmd, void *opts, int argc, char **argv,
                   const char **args, size_t *n_args, int *exit_code)
{
    *n_args = 0;
    bool only_args = false;
    int i = 1;
    while (i < argc) {
        const char *arg = argv[i];
        if (!only_args && strcmp(arg, "--") == 0) {
            only_args = true;
            i++;
            continue;
        }
        if (!only_args && is_option(arg)) {
            if (take_option(ctx, cmd, opts, argc, argv, &i) < 0) {
                *exit_code = HR_CLI_EXIT_USAGE;
                return false;
            }
            continue;
        }
        if (*n_args >= cmd->max_args) {
            /* Help wins over a stray argument: `herald bus list --help extra`. */
            if (!ctx->cc_help) {
                *exit_code = hr__cli_usage_error(cmd, "unexpected argument '%s'", arg);
                return false;
            }
        } else {
            args[(*n_args)++] = arg;
        }
        i++;
    }
    if (ctx->cc_help) {
        hr__cli_print_help(cmd);
        *exit_code = HR_CLI_EXIT_OK;
        return false;
    }
    if (*n_args < cmd->min_args) {
        *exit_code = hr__cli_usage_error(cmd, "missing argument (usage: herald %s %s)", cmd->name,
                                         cmd->usage);
        return false;
    }
    return check_server(cmd, ctx, exit_code);
}

bool hr__cli_parse_u64(const hr_cli_cmd_t *cmd, const char *opt, const char *s, uint64_t min,
                       uint64_t max, uint64_t *out)
{
    bool ok = s[0] != '\0';
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') {
            ok = false;
        }
    }
    unsigned long long v = 0;
    if (ok) {
        errno = 0;
        v = strtoull(s, NULL, 10);
        ok = errno == 0 && v >= min && v <= max;
    }
    if (!ok) {
        hr__cli_usage_error(cmd, "%s '%s': expected a whole number from %llu to %llu", opt, s,
                            (unsigned long long)min, (unsigned long long)max);
        return false;
    }
    *out = v;
    return true;
}

void hr__cli_strlist_free(hr_cli_strlist_t *l)
{
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

/* ---- Input and output ---- */

int hr__cli_read_file(const char *path, char **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    bool is_stdin = strcmp(path, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "herald: cannot open %s: %s\n", path, strerror(errno));
        return HR_CLI_EXIT_USAGE;
    }
    int rc = HR_CLI_EXIT_OK;
    hr_buf_t b = HR_BUF_INIT;
    for (;;) {
        if (hr_buf_reserve(&b, 65536) != 0) {
            fprintf(stderr, "herald: %s is too large to read into memory\n",
                    is_stdin ? "standard input" : path);
            rc = HR_CLI_EXIT_USAGE;
            goto out;
        }
        size_t n = fread(b.data + b.len, 1, b.cap - b.len - 1, f);
        b.len += n;
        b.data[b.len] = '\0';
        if (n == 0) {
            break;
        }
    }
    if (ferror(f)) {
        fprintf(stderr, "herald: cannot read %s: %s\n", is_stdin ? "standard input" : path,
                strerror(errno));
        rc = HR_CLI_EXIT_USAGE;
        goto out;
    }
    *len = b.len;
    *data = hr_buf_steal(&b);
    if (*data == NULL) {
        rc = HR_CLI_EXIT_USAGE;
    }
out:
    hr_buf_free(&b);
    if (!is_stdin) {
        fclose(f);
    }
    return rc;
}

void hr__cli_print_human_to(FILE *f, const char *s, size_t len, size_t max_chars)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t chars = 0;
    size_t i = 0;
    while (i < len) {
        if (max_chars > 0 && chars == max_chars) {
            fputs("...", f);
            return;
        }
        uint32_t cp;
        size_t n = hr_utf8_decode(p + i, len - i, &cp);
        if (n == 0) {
            fprintf(f, "\\x%02X", p[i]);
            n = 1;
        } else if (cp == '\n') {
            fputs("\\n", f);
        } else if (cp == '\r') {
            fputs("\\r", f);
        } else if (cp == '\t') {
            fputs("\\t", f);
        } else if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0) || cp == 0x2028 || cp == 0x2029) {
            fprintf(f, "\\u%04X", (unsigned)cp);
        } else {
            fwrite(p + i, 1, n, f);
        }
        i += n;
        chars++;
    }
}

/* ---- Dispatch ---- */

hr_cli_client_t *hr__cli_client(hr_cli_ctx_t *ctx)
{
    if (ctx->cc_client == NULL && hr_cli_client_create(ctx->cc_server, &ctx->cc_client) != 0) {
        fprintf(stderr, "herald: cannot start the HTTP client (out of memory)\n");
        exit(HR_CLI_EXIT_UNREACHABLE);
    }
    return ctx->cc_client;
}

static void print_top_help(FILE *f)
{
    fprintf(f, "Usage: herald %s\n\n%s\n\nCommands:\n", top_cmd.usage, top_cmd.summary);
    fprintf(f, "  %-13s%s\n", "serve", "run the server (see `herald serve --help`)");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        fprintf(f, "  %-13s%s\n", commands[i].name, commands[i].summary);
    }
    fprintf(f, "\nRun `herald <command> --help` for a command's options.\n");
    if (f == stdout) {
        printf("\nGlobal options:\n");
        print_opts(global_opts);
        print_exit_codes();
    }
}

static const cli_command_t *find_command(const char *name)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(commands[i].name, name) == 0) {
            return &commands[i];
        }
    }
    return NULL;
}

/* `herald help [command [subcommand]]`: runs the command with --help. */
static int run_help(hr_cli_ctx_t *ctx, int argc, char **argv, int first)
{
    if (first >= argc) {
        print_top_help(stdout);
        return HR_CLI_EXIT_OK;
    }
    const cli_command_t *cmd = find_command(argv[first]);
    if (cmd == NULL) {
        return hr__cli_usage_error(NULL, "unknown command '%s' (see `herald --help`)", argv[first]);
    }
    ctx->cc_help = true;
    return cmd->run(ctx, argc - first, argv + first);
}

int hr_cli_main(int argc, char **argv)
{
    hr_cli_ctx_t ctx = {.cc_server = HR_CLI_DEFAULT_SERVER, .cc_bus = "default"};
    const char *env = getenv("HERALD_URL");
    if (env != NULL && env[0] != '\0') {
        ctx.cc_server = env;
    }
    int rc;
    int sub;
    if (!hr__cli_parse_group(&ctx, &top_cmd, argc, argv, &sub, &rc)) {
        return rc;
    }
    if (sub >= argc) {
        if (ctx.cc_help) {
            print_top_help(stdout);
            return HR_CLI_EXIT_OK;
        }
        print_top_help(stderr);
        return HR_CLI_EXIT_USAGE;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "herald: cannot initialise libcurl\n");
        return HR_CLI_EXIT_UNREACHABLE;
    }
    if (strcmp(argv[sub], "help") == 0) {
        rc = run_help(&ctx, argc, argv, sub + 1);
    } else {
        const cli_command_t *cmd = find_command(argv[sub]);
        if (cmd == NULL) {
            rc = hr__cli_usage_error(NULL, "unknown command '%s' (see `herald --help`)", argv[sub]);
        } else {
            rc = cmd->run(&ctx, argc - sub, argv + sub);
        }
    }
    hr_cli_client_destroy(ctx.cc_client);
    curl_global_cleanup();
    return rc;
}
