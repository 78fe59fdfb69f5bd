/* SPDX-License-Identifier: MIT */
/*
 * Output and dispatch helpers the CLI's command modules share (declared in cli.h): the
 * subcommand-group dispatcher, API paths, JSON requests, printing raw answers, values made safe
 * for a terminal, and tables. Main thread only.
 */
#include "cli/cli.h"
#include "cli/client.h"
#include "util/alloc.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int hr__cli_run_group(hr_cli_ctx_t *ctx, const hr_cli_cmd_t *group, const hr_cli_subcmd_t *subs,
                      size_t n_subs, const char *names, int argc, char **argv)
{
    int rc;
    int sub;
    if (!hr__cli_parse_group(ctx, group, argc, argv, &sub, &rc)) {
        return rc;
    }
    if (sub >= argc) {
        if (ctx->cc_help) {
            hr__cli_print_help(group);
            return HR_CLI_EXIT_OK;
        }
        return hr__cli_usage_error(group, "missing command (%s)", names);
    }
    for (size_t i = 0; i < n_subs; i++) {
        if (strcmp(subs[i].name, argv[sub]) == 0) {
            return subs[i].run(ctx, argc - sub, argv + sub);
        }
    }
    return hr__cli_usage_error(group, "unknown command '%s' (%s)", argv[sub], names);
}

char *hr__cli_path(const char *prefix, const char *name, const char *suffix)
{
    char *esc = hr_cli_escape(name);
    size_t len = strlen(prefix) + strlen(esc) + strlen(suffix) + 1;
    char *path = hr_xmalloc(len);
    snprintf(path, len, "%s%s%s", prefix, esc, suffix);
    free(esc);
    return path;
}

int hr__cli_send_json(hr_cli_ctx_t *ctx, const char *method, const char *path, json_t *body,
                      hr_cli_resp_t *resp)
{
    static const char *const headers[] = {"Content-Type: application/json", NULL};
    char *text = json_dumps(body, JSON_COMPACT);
    if (text == NULL) {
        fprintf(stderr, "herald: out of memory\n");
        return HR_CLI_EXIT_USAGE;
    }
    int rc =
        hr_cli_client_request(hr__cli_client(ctx), method, path, headers, text, strlen(text), resp);
    free(text);
    return rc;
}

void hr__cli_print_raw(const hr_cli_resp_t *resp)
{
    if (resp->cr_body.len == 0) {
        return;
    }
    fwrite(resp->cr_body.data, 1, resp->cr_body.len, stdout);
    if (resp->cr_body.data[resp->cr_body.len - 1] != '\n') {
        putchar('\n');
    }
}

json_t *hr__cli_load_object(const hr_cli_resp_t *resp)
{
    json_error_t err;
    json_t *doc = json_loadb((const char *)resp->cr_body.data, resp->cr_body.len, 0, &err);
    if (!json_is_object(doc)) {
        fprintf(stderr, "herald: the server's answer is not a JSON object (%s)\n",
                doc ? "another JSON value" : err.text);
        json_decref(doc);
        return NULL;
    }
    return doc;
}

char *hr__cli_human_value(json_t *v, size_t max_chars)
{
    if (v == NULL || json_is_null(v)) {
        return hr_xstrdup("-");
    }
    char *dumped = NULL;
    const char *s;
    size_t len;
    if (json_is_string(v)) {
        s = json_string_value(v);
        len = json_string_length(v);
    } else {
        dumped = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        s = dumped ? dumped : "?";
        len = strlen(s);
    }
    char *out = NULL;
    size_t out_len = 0;
    FILE *f = open_memstream(&out, &out_len);
    if (f == NULL) {
        fprintf(stderr, "herald: out of memory\n");
        exit(HR_CLI_EXIT_USAGE);
    }
    hr__cli_print_human_to(f, s, len, max_chars);
    fclose(f);
    free(dumped);
    return out;
}

void hr__cli_print_table(const char *const *titles, size_t n_cols, char **cells, size_t n_rows)
{
    size_t *width = hr_xcalloc(n_cols, sizeof *width);
    for (size_t c = 0; c < n_cols; c++) {
        width[c] = strlen(titles[c]);
        for (size_t r = 0; r < n_rows; r++) {
            size_t w = strlen(cells[r * n_cols + c]);
            width[c] = w > width[c] ? w : width[c];
        }
    }
    for (size_t r = 0; r <= n_rows; r++) {
        for (size_t c = 0; c < n_cols; c++) {
            const char *cell = r == 0 ? titles[c] : cells[(r - 1) * n_cols + c];
            if (c + 1 < n_cols) {
                printf("%s%*s", cell, (int)(width[c] - strlen(cell) + 2), "");
            } else {
                printf("%s\n", cell);
            }
        }
    }
    for (size_t i = 0; i < n_rows * n_cols; i++) {
        free(cells[i]);
    }
    free(cells);
    free(width);
}
