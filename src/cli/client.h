/* SPDX-License-Identifier: MIT */
/*
 * A small libcurl wrapper for the `herald` client subcommands: one request in, status and body
 * out, with the API's error reporting (docs/api.md: every error body is {"error": ...}) turned
 * into the CLI's exit codes; plus a streaming GET for Server-Sent Events. One client keeps one
 * curl handle so that successive requests reuse the connection. Single-threaded: the caller
 * owns the client; curl_global_init() must have been called (hr_cli_main does).
 */
#ifndef HR_CLI_CLIENT_H
#define HR_CLI_CLIENT_H

#include <signal.h>
#include <stddef.h>

#include "cli/cli.h"
#include "util/buf.h"

/* An answer from the server. Owned by the caller; free with hr_cli_resp_free. */
typedef struct hr_cli_resp {
    long cr_status;   /* HTTP status; 0 when no answer came */
    hr_buf_t cr_body; /* the response body (NUL-terminated) */
} hr_cli_resp_t;

#define HR_CLI_RESP_INIT                                                                           \
    {                                                                                              \
        0, HR_BUF_INIT                                                                             \
    }

void hr_cli_resp_free(hr_cli_resp_t *r);

/* Creates a client for `base_url` (copied; trailing slashes are dropped), e.g.
 * "http://127.0.0.1:8088". Returns 0 or HR_ENOMEM. */
int hr_cli_client_create(const char *base_url, hr_cli_client_t **out);
/* Closes the connection and frees the client. NULL is a no-op. */
void hr_cli_client_destroy(hr_cli_client_t *c);
/* The base URL, valid while the client lives. */
const char *hr_cli_client_url(const hr_cli_client_t *c);

/*
 * Sends one request and reads the whole answer into *resp (which must be HR_CLI_RESP_INIT or
 * freed; it is filled whenever the server answered).
 *   method   "GET", "POST", "PUT" or "DELETE"
 *   path     starts with "/", its segments already escaped (see hr_cli_escape)
 *   headers  NULL-terminated array of "Name: value" lines, borrowed; may be NULL
 *   body     sent as is when not NULL (body_len bytes); borrowed
 * Returns HR_CLI_EXIT_OK on a 2xx answer; HR_CLI_EXIT_SERVER on any other answer, after printing
 * the server's error message to stderr; HR_CLI_EXIT_UNREACHABLE when no complete answer came,
 * after printing a message that names the server's URL.
 */
int hr_cli_client_request(hr_cli_client_t *c, const char *method, const char *path,
                          const char *const *headers, const void *body, size_t body_len,
                          hr_cli_resp_t *resp);

/* Prints the error of a non-2xx answer as "herald: <error>" to stderr. */
void hr_cli_client_print_error(const hr_cli_resp_t *resp);

/* Prints "herald: cannot reach the server at <url>: <reason>" for the last failed transfer. */
void hr_cli_client_print_unreachable(const hr_cli_client_t *c);

/* How a streaming GET is consumed. */
typedef struct hr_cli_stream {
    /* Called with each chunk of a 2xx body; returns 0 to go on, nonzero to end the transfer. */
    int (*cs_on_data)(void *ud, const char *p, size_t n);
    void *cs_ud;
    /* Polled at least once a second; the transfer ends when it becomes nonzero (a signal
     * handler sets it). May be NULL. */
    const volatile sig_atomic_t *cs_stop;
    /* A connection that delivers no byte for this long counts as dropped (0: never). */
    unsigned cs_idle_timeout_s;
} hr_cli_stream_t;

typedef enum hr_cli_stream_result {
    HR_CLI_STREAM_ENDED,       /* the server ended a 2xx answer */
    HR_CLI_STREAM_STOPPED,     /* cs_on_data or cs_stop ended it */
    HR_CLI_STREAM_HTTP_ERROR,  /* a non-2xx answer; *resp holds it; nothing printed */
    HR_CLI_STREAM_DROPPED,     /* a 2xx answer broke off (network error or idle timeout) */
    HR_CLI_STREAM_UNREACHABLE, /* no answer at all */
} hr_cli_stream_result_t;

/* Sends a GET and hands the body to s->cs_on_data as it arrives. resp->cr_status is set when
 * the server answered; resp->cr_body is only filled for non-2xx answers. Prints nothing. */
hr_cli_stream_result_t hr_cli_client_stream(hr_cli_client_t *c, const char *path,
                                            const char *const *headers, const hr_cli_stream_t *s,
                                            hr_cli_resp_t *resp);

/* Percent-encodes `s` for use as one path segment or query value (everything but
 * A-Z a-z 0-9 - . _ ~). Returns a string the caller frees. */
char *hr_cli_escape(const char *s);

#endif
