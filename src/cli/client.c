/* SPDX-License-Identifier: MIT */
/*
 * The CLI's HTTP client: a thin layer over one libcurl easy handle (kept for the whole command
 * so that paged reads reuse the connection). It maps transport failures and the API's JSON
 * error bodies to the exit codes documented in cli.h. Called by the subcommand modules on the
 * main thread only.
 */
#include "cli/client.h"
#include "util/alloc.h"
#include "util/err.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONNECT_TIMEOUT_S 10L
/* A plain request whose answer stalls this long is abandoned. */
#define REQUEST_IDLE_TIMEOUT_S 60L
/* At most this much of a non-JSON error body is quoted to the user. */
#define ERROR_QUOTE_MAX 200

struct hr_cli_client {
    CURL *c_curl;
    char *c_url; /* base URL without trailing '/' */
    char c_errbuf[CURL_ERROR_SIZE];
    CURLcode c_last; /* result of the last transfer */
};

/* State of one streaming transfer, shared by the curl callbacks. */
typedef struct stream_state {
    hr_cli_client_t *ss_client;
    const hr_cli_stream_t *ss_ops;
    hr_cli_resp_t *ss_resp;
    bool ss_stopped;   /* cs_on_data or cs_stop asked to end */
    bool ss_body_full; /* error body capture gave up (out of memory) */
} stream_state_t;

void hr_cli_resp_free(hr_cli_resp_t *r)
{
    hr_buf_free(&r->cr_body);
    r->cr_status = 0;
}

int hr_cli_client_create(const char *base_url, hr_cli_client_t **out)
{
    *out = NULL;
    hr_cli_client_t *c = hr_xcalloc(1, sizeof *c);
    c->c_curl = curl_easy_init();
    if (c->c_curl == NULL) {
        free(c);
        return HR_ENOMEM;
    }
    size_t len = strlen(base_url);
    while (len > 0 && base_url[len - 1] == '/') {
        len--;
    }
    c->c_url = hr_xstrndup(base_url, len);
    *out = c;
    return 0;
}

void hr_cli_client_destroy(hr_cli_client_t *c)
{
    if (c == NULL) {
        return;
    }
    curl_easy_cleanup(c->c_curl);
    free(c->c_url);
    free(c);
}

const char *hr_cli_client_url(const hr_cli_client_t *c)
{
    return c->c_url;
}

char *hr_cli_escape(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *out = hr_xmalloc(n * 3 + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '.' || ch == '_' || ch == '~') {
            out[o++] = (char)ch;
        } else {
            out[o++] = '%';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        }
    }
    out[o] = '\0';
    return out;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
    hr_buf_t *body = ud;
    size_t n = size * nmemb;
    if (hr_buf_append(body, p, n) != 0) {
        return 0; /* makes curl fail the transfer with CURLE_WRITE_ERROR */
    }
    return n;
}

/* Resets the handle and sets what every transfer shares. Returns the header list to free. */
static struct curl_slist *prepare(hr_cli_client_t *c, const char *path, const char *const *headers,
                                  const char *accept)
{
    CURL *h = c->c_curl;
    /* curl_easy_reset keeps the connection cache, so keep-alive survives across requests. */
    curl_easy_reset(h);
    c->c_errbuf[0] = '\0';
    size_t ulen = strlen(c->c_url) + strlen(path) + 1;
    char *url = hr_xmalloc(ulen);
    snprintf(url, ulen, "%s%s", c->c_url, path);
    curl_easy_setopt(h, CURLOPT_URL, url); /* curl copies the string */
    free(url);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->c_errbuf);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "herald-cli/1");
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");

    struct curl_slist *list = NULL;
    char line[128];
    snprintf(line, sizeof line, "Accept: %s", accept);
    list = curl_slist_append(list, line);
    /* Without this curl waits for "100 Continue" before sending a large body. */
    list = curl_slist_append(list, "Expect:");
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++) {
        list = curl_slist_append(list, headers[i]);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
    return list;
}

int hr_cli_client_request(hr_cli_client_t *c, const char *method, const char *path,
                          const char *const *headers, const void *body, size_t body_len,
                          hr_cli_resp_t *resp)
{
    hr_cli_resp_free(resp);
    CURL *h = c->c_curl;
    struct curl_slist *list = prepare(c, path, headers, "application/json");
    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    }
    if (body != NULL) {
        /* POSTFIELDS makes curl send the body with any method set by CUSTOMREQUEST. */
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    }
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp->cr_body);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, REQUEST_IDLE_TIMEOUT_S);

    c->c_last = curl_easy_perform(h);
    curl_slist_free_all(list);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->cr_status);
    if (c->c_last == CURLE_WRITE_ERROR) {
        fprintf(stderr, "herald: out of memory reading the answer of %s%s\n", c->c_url, path);
        return HR_CLI_EXIT_SERVER;
    }
    if (c->c_last != CURLE_OK && resp->cr_status != 0) {
        fprintf(stderr, "herald: the connection to %s broke before the whole answer came: %s\n",
                c->c_url, c->c_errbuf[0] ? c->c_errbuf : curl_easy_strerror(c->c_last));
        return HR_CLI_EXIT_UNREACHABLE;
    }
    if (c->c_last != CURLE_OK) {
        hr_cli_client_print_unreachable(c);
        return HR_CLI_EXIT_UNREACHABLE;
    }
    if (resp->cr_status < 200 || resp->cr_status > 299) {
        hr_cli_client_print_error(resp);
        return HR_CLI_EXIT_SERVER;
    }
    return HR_CLI_EXIT_OK;
}

void hr_cli_client_print_unreachable(const hr_cli_client_t *c)
{
    const char *why = c->c_errbuf[0] ? c->c_errbuf : curl_easy_strerror(c->c_last);
    fprintf(stderr, "herald: cannot reach the server at %s: %s\n", c->c_url, why);
    fprintf(stderr, "herald: is `herald serve` running there? (--server or HERALD_URL selects "
                    "the server)\n");
}

void hr_cli_client_print_error(const hr_cli_resp_t *resp)
{
    const hr_buf_t *b = &resp->cr_body;
    json_t *doc = NULL;
    if (b->len > 0) {
        doc = json_loadb((const char *)b->data, b->len, 0, NULL);
    }
    const char *msg = json_string_value(json_object_get(doc, "error"));
    if (msg != NULL) {
        fputs("herald: ", stderr);
        hr__cli_print_human_to(stderr, msg, strlen(msg), 0);
        fputc('\n', stderr);
    } else {
        fprintf(stderr, "herald: the server answered HTTP %ld", resp->cr_status);
        if (b->len > 0) {
            fputs(": ", stderr);
            hr__cli_print_human_to(stderr, (const char *)b->data, b->len, ERROR_QUOTE_MAX);
        }
        fputc('\n', stderr);
    }
    json_decref(doc);
}

static size_t on_stream_body(char *p, size_t size, size_t nmemb, void *ud)
{
    stream_state_t *st = ud;
    size_t n = size * nmemb;
    long status = 0;
    curl_easy_getinfo(st->ss_client->c_curl, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200 || status > 299) {
        /* Keep (a bounded part of) the error body for the caller to report. */
        if (!st->ss_body_full && st->ss_resp->cr_body.len < 65536 &&
            hr_buf_append(&st->ss_resp->cr_body, p, n) != 0) {
            st->ss_body_full = true;
        }
        return n;
    }
    if (st->ss_ops->cs_on_data(st->ss_ops->cs_ud, p, n) != 0) {
        st->ss_stopped = true;
        return 0;
    }
    return n;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    stream_state_t *st = ud;
    const volatile sig_atomic_t *stop = st->ss_ops->cs_stop;
    if (stop != NULL && *stop) {
        st->ss_stopped = true;
        return 1; /* aborts the transfer */
    }
    return 0;
}

hr_cli_stream_result_t hr_cli_client_stream(hr_cli_client_t *c, const char *path,
                                            const char *const *headers, const hr_cli_stream_t *s,
                                            hr_cli_resp_t *resp)
{
    hr_cli_resp_free(resp);
    CURL *h = c->c_curl;
    stream_state_t st = {.ss_client = c, .ss_ops = s, .ss_resp = resp};
    struct curl_slist *list = prepare(c, path, headers, "text/event-stream");
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_stream_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &st);
    /* The progress callback runs about once a second even on a silent connection. */
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, &st);
    if (s->cs_idle_timeout_s > 0) {
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)s->cs_idle_timeout_s);
    }

    c->c_last = curl_easy_perform(h);
    curl_slist_free_all(list);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->cr_status);
    if (st.ss_stopped) {
        return HR_CLI_STREAM_STOPPED;
    }
    if (resp->cr_status == 0) {
        return HR_CLI_STREAM_UNREACHABLE;
    }
    if (resp->cr_status < 200 || resp->cr_status > 299) {
        return HR_CLI_STREAM_HTTP_ERROR;
    }
    return c->c_last == CURLE_OK ? HR_CLI_STREAM_ENDED : HR_CLI_STREAM_DROPPED;
}
