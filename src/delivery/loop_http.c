/* SPDX-License-Identifier: MIT */
/*
 * Delivery requests: building a libcurl easy handle from an hr_dloop_req_t, capturing the
 * response (bounded body, Content-Type, Retry-After, ce-* headers), mapping transport errors
 * to HR_E* codes, and the pool of reusable easy handles. Runs on the delivery loop thread,
 * except the hr_dloop_req_* helpers, which run on whichever thread owns an idle request.
 * hr__dloop_req_start() first offers each request to the loop's own HTTP/1.1 client
 * (loop_h1.c), which takes the plain-HTTP ones it can carry; the capture helpers here are
 * shared with it, so both transports fill the result fields identically.
 *
 * Connection reuse: easy handles go back to a pool after each transfer (curl_easy_reset keeps
 * nothing that matters); open connections live in the multi handle's connection cache, so any
 * later transfer to the same host:port and TLS settings reuses an idle keep-alive connection.
 *
 * Response header capture (priv.resp_hdrs) holds one record per kept header:
 *     kind byte ('c' ce-*, 't' Content-Type, 'r' Retry-After) | name (lower-cased) | NUL |
 *     value (trimmed) | NUL
 * and is emptied at every status line, so only the final response's headers survive 1xx
 * responses. When the transfer ends, the public resp_* pointers are set into these records.
 */
#include "delivery/loop_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/alloc.h"
#include "util/clock.h"
#include "util/err.h"

/* Sent with every request: an empty Expect suppresses "Expect: 100-continue" (a wasted round
 * trip, and some sinks mishandle it); an empty Content-Type suppresses libcurl's default
 * application/x-www-form-urlencoded when the caller set none. */
static char expect_hdr[] = "Expect:";
static char no_content_type_hdr[] = "Content-Type:";

/* ---- request helpers (owner's thread, request idle) ---- */

static bool is_idle(const hr_dloop_req_t *req)
{
    return req->priv.state == HR__DLOOP_REQ_IDLE;
}

void hr_dloop_req_init(hr_dloop_req_t *req)
{
    memset(req, 0, sizeof *req);
    req->timeout_ms = 10000;
    req->verify_tls = true;
}

static bool valid_header_name(const char *s)
{
    if (*s == '\0') {
        return false;
    }
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= ' ' || c == ':' || c >= 127) {
            return false;
        }
    }
    return true;
}

int hr_dloop_req_add_header(hr_dloop_req_t *req, const char *name, const char *value)
{
    HR_ASSERT(is_idle(req));
    if (!valid_header_name(name) || strpbrk(value, "\r\n") != NULL) {
        return HR_EINVAL;
    }
    hr_buf_t *b = &req->priv.hdrs;
    size_t old_len = b->len;
    int rc = hr_buf_puts(b, name);
    /* libcurl reads "Name:" as "remove this header" and "Name;" as "send it empty". */
    if (rc == 0) {
        rc = *value != '\0' ? hr_buf_append(b, ": ", 2) : hr_buf_putc(b, ';');
    }
    if (rc == 0 && *value != '\0') {
        rc = hr_buf_puts(b, value);
    }
    if (rc == 0) {
        rc = hr_buf_append(b, "", 1); /* keep the line's NUL terminator inside len */
    }
    if (rc != 0) {
        b->len = old_len;
        return rc;
    }
    req->priv.n_hdrs++;
    if (strcasecmp(name, "content-type") == 0) {
        req->priv.has_content_type = true;
    }
    hr__h1_note_header(req, name);
    return 0;
}

void hr_dloop_req_clear_headers(hr_dloop_req_t *req)
{
    HR_ASSERT(is_idle(req));
    hr_buf_reset(&req->priv.hdrs);
    req->priv.n_hdrs = 0;
    req->priv.has_content_type = false;
    req->priv.h1_hdr_flags = 0;
}

void hr__dloop_clear_result(hr_dloop_req_t *req)
{
    req->error = 0;
    req->curl_code = 0;
    req->error_text[0] = '\0';
    req->status = 0;
    req->latency_us = 0;
    hr_buf_reset(&req->resp_body);
    req->resp_truncated = false;
    req->resp_content_type = NULL;
    req->resp_retry_after = NULL;
    req->resp_ce = NULL;
    req->resp_ce_count = 0;
    hr_buf_reset(&req->priv.resp_hdrs);
    req->priv.oom = false;
}

void hr_dloop_req_reset(hr_dloop_req_t *req)
{
    HR_ASSERT(is_idle(req));
    hr__dloop_clear_result(req);
}

void hr_dloop_req_free(hr_dloop_req_t *req)
{
    HR_ASSERT(is_idle(req));
    hr_buf_free(&req->priv.hdrs);
    hr_buf_free(&req->priv.resp_hdrs);
    hr_buf_free(&req->resp_body);
    free(req->priv.slist);
    free(req->priv.ce);
    memset(req, 0, sizeof *req);
}

/* Builds the curl_slist handed to CURLOPT_HTTPHEADER: the caller's lines, then the fixed
 * extras. The nodes are ours (curl only reads the list) and point into priv.hdrs, which does
 * not change while the request is in flight. Returns the list or NULL when out of memory. */
static struct curl_slist *build_header_list(hr_dloop_req_t *req)
{
    size_t n = req->priv.n_hdrs + 2;
    if (n > req->priv.slist_cap) {
        struct curl_slist *p = realloc(req->priv.slist, n * sizeof *p);
        if (p == NULL) {
            return NULL;
        }
        req->priv.slist = p;
        req->priv.slist_cap = n;
    }
    struct curl_slist *nodes = req->priv.slist;
    size_t i = 0;
    char *line = (char *)req->priv.hdrs.data;
    for (; i < req->priv.n_hdrs; i++) {
        nodes[i].data = line;
        line += strlen(line) + 1;
    }
    nodes[i++].data = expect_hdr;
    if (!req->priv.has_content_type) {
        nodes[i++].data = no_content_type_hdr;
    }
    for (size_t j = 0; j + 1 < i; j++) {
        nodes[j].next = &nodes[j + 1];
    }
    nodes[i - 1].next = NULL;
    return nodes;
}

/* ---- response capture (both transports, loop thread) ---- */

int hr__dloop_capture_body(hr_dloop_req_t *req, size_t max, const char *p, size_t len)
{
    hr_buf_t *b = &req->resp_body;
    size_t take = max - b->len < len ? max - b->len : len;
    if (take < len) {
        /* Keep reading (and discarding) so the connection stays reusable. */
        req->resp_truncated = true;
    }
    if (take == 0) {
        return 0;
    }
    if (b->len + take + 1 > b->cap) {
        /* Grow by doubling, but never past max + 1: memory per request stays bounded. */
        size_t cap = b->cap ? b->cap * 2 : 1024;
        cap = cap < b->len + take + 1 ? b->len + take + 1 : cap;
        cap = cap > max + 1 ? max + 1 : cap;
        uint8_t *d = realloc(b->data, cap);
        if (d == NULL) {
            req->priv.oom = true;
            return HR_ENOMEM;
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, take);
    b->len += take;
    b->data[b->len] = '\0';
    return 0;
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

char hr__dloop_header_kind(const char *name, size_t len)
{
    if (len > 3 && strncasecmp(name, "ce-", 3) == 0) {
        return 'c';
    }
    if (len == 12 && strncasecmp(name, "content-type", 12) == 0) {
        return 't';
    }
    if (len == 11 && strncasecmp(name, "retry-after", 11) == 0) {
        return 'r';
    }
    return 0;
}

void hr__dloop_capture_reset(hr_dloop_req_t *req)
{
    req->priv.resp_hdrs.len = 0;
}

int hr__dloop_capture_header(hr_dloop_req_t *req, char kind, const char *name, size_t name_len,
                             const char *value, size_t value_len)
{
    hr_buf_t *b = &req->priv.resp_hdrs;
    if (memchr(name, '\0', name_len) != NULL || memchr(value, '\0', value_len) != NULL) {
        return 0; /* records are NUL-separated: such a header is garbage, not captured */
    }
    const char *v = value, *end = value + value_len;
    while (v < end && is_ws(*v)) {
        v++;
    }
    while (end > v && is_ws(end[-1])) {
        end--;
    }
    if (hr_buf_reserve(b, 1 + name_len + 1 + (size_t)(end - v) + 1) != 0) {
        req->priv.oom = true;
        return HR_ENOMEM;
    }
    b->data[b->len++] = (uint8_t)kind;
    for (size_t i = 0; i < name_len; i++) {
        b->data[b->len++] = (uint8_t)tolower((unsigned char)name[i]);
    }
    b->data[b->len++] = '\0';
    memcpy(b->data + b->len, v, (size_t)(end - v));
    b->len += (size_t)(end - v);
    b->data[b->len++] = '\0';
    return 0;
}

/* libcurl's CURLOPT_WRITEFUNCTION. */
static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
    hr_dloop_req_t *req = ud;
    size_t len = size * nmemb;
    if (hr__dloop_capture_body(req, req->priv.loop->max_body_bytes, p, len) != 0) {
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    return len;
}

/* libcurl's CURLOPT_HEADERFUNCTION: one raw header line (status lines and trailers too). */
static size_t on_header(char *p, size_t size, size_t nmemb, void *ud)
{
    hr_dloop_req_t *req = ud;
    size_t len = size * nmemb;
    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        hr__dloop_capture_reset(req); /* a new response (after a 1xx) */
        return len;
    }
    const char *colon = memchr(p, ':', len);
    if (colon == NULL || colon == p || is_ws(p[0]) || memchr(p, '\0', len) != NULL) {
        return len; /* blank line, folded continuation, or garbage: not captured */
    }
    size_t name_len = (size_t)(colon - p);
    while (name_len > 0 && is_ws(p[name_len - 1])) {
        name_len--;
    }
    char kind = hr__dloop_header_kind(p, name_len);
    if (kind == 0) {
        return len;
    }
    const char *v = colon + 1;
    if (hr__dloop_capture_header(req, kind, p, name_len, v, (size_t)(p + len - v)) != 0) {
        return 0; /* aborts the transfer */
    }
    return len;
}

int hr__dloop_publish_headers(hr_dloop_req_t *req)
{
    const hr_buf_t *b = &req->priv.resp_hdrs;
    size_t n_ce = 0;
    for (size_t off = 0; off < b->len;) {
        const char *name = (const char *)b->data + off + 1;
        const char *value = name + strlen(name) + 1;
        n_ce += b->data[off] == 'c';
        off = (size_t)(value + strlen(value) + 1 - (const char *)b->data);
    }
    if (n_ce > req->priv.ce_cap) {
        hr_dloop_header_t *ce = realloc(req->priv.ce, n_ce * sizeof *ce);
        if (ce == NULL) {
            return HR_ENOMEM;
        }
        req->priv.ce = ce;
        req->priv.ce_cap = n_ce;
    }
    size_t i = 0;
    for (size_t off = 0; off < b->len;) {
        char kind = (char)b->data[off];
        const char *name = (const char *)b->data + off + 1;
        const char *value = name + strlen(name) + 1;
        if (kind == 'c') {
            req->priv.ce[i].name = name;
            req->priv.ce[i].value = value;
            i++;
        } else if (kind == 't') {
            req->resp_content_type = value;
        } else {
            req->resp_retry_after = value;
        }
        off = (size_t)(value + strlen(value) + 1 - (const char *)b->data);
    }
    req->resp_ce = n_ce > 0 ? req->priv.ce : NULL;
    req->resp_ce_count = n_ce;
    return 0;
}

/* ---- easy handles ---- */

static CURL *acquire_easy(hr_dloop_t *l)
{
    if (l->n_pool > 0) {
        return l->pool[--l->n_pool];
    }
    return curl_easy_init();
}

static void release_easy(hr_dloop_t *l, CURL *e)
{
    if (l->n_pool < l->max_idle_handles) {
        /* Drops every option (including pointers into the finished request). */
        curl_easy_reset(e);
        l->pool[l->n_pool++] = e;
    } else {
        curl_easy_cleanup(e);
    }
}

void hr__dloop_pool_free(hr_dloop_t *l)
{
    while (l->n_pool > 0) {
        curl_easy_cleanup(l->pool[--l->n_pool]);
    }
}

/* Sets the method and body options. */
static CURLcode set_method(CURL *e, const hr_dloop_req_t *req)
{
    const char *m = req->method != NULL ? req->method : "POST";
    if (strcmp(m, "GET") == 0) {
        return curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    }
    if (strcmp(m, "HEAD") == 0) {
        return curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    }
    /* POSTFIELDS borrows the body: no copy, sent with Content-Length. */
    const char *body = req->body.base != NULL ? (const char *)req->body.base : "";
    CURLcode c = curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body.len);
    c = c != CURLE_OK ? c : curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    if (c == CURLE_OK && strcmp(m, "POST") != 0) {
        c = curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m);
    }
    return c;
}

/* Sets every option of one attempt on a fresh (reset) easy handle. */
static CURLcode set_options(hr_dloop_t *l, hr_dloop_req_t *req, CURL *e, struct curl_slist *headers)
{
    long verify = req->verify_tls ? 1L : 0L;
    CURLcode c = curl_easy_setopt(e, CURLOPT_URL, req->url);
    /* Only plain and TLS HTTP, never a redirect: a sink answers for itself. */
    c = c != CURLE_OK ? c : curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    c = c != CURLE_OK ? c : curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    /* No SIGALRM for DNS timeouts: we are one thread of many. */
    c = c != CURLE_OK ? c : curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    c = c != CURLE_OK ? c : curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    c = c != CURLE_OK ? c : curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    c = c != CURLE_OK ? c : curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    c = c != CURLE_OK ? c : curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)req->timeout_ms);
    c = c != CURLE_OK ? c : curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, verify);
    c = c != CURLE_OK ? c : curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, verify * 2);
    if (c == CURLE_OK && l->ca_file != NULL) {
        c = curl_easy_setopt(e, CURLOPT_CAINFO, l->ca_file);
    }
    if (c == CURLE_OK && l->proxy != NULL) {
        c = curl_easy_setopt(e, CURLOPT_PROXY, l->proxy);
    }
    c = c != CURLE_OK ? c : curl_easy_setopt(e, CURLOPT_USERAGENT, l->user_agent);
    c = c != CURLE_OK ? c : curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    c = c != CURLE_OK ? c : set_method(e, req);
    c = c != CURLE_OK ? c : curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    c = c != CURLE_OK ? c : curl_easy_setopt(e, CURLOPT_WRITEDATA, (void *)req);
    c = c != CURLE_OK ? c : curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    c = c != CURLE_OK ? c : curl_easy_setopt(e, CURLOPT_HEADERDATA, (void *)req);
    c = c != CURLE_OK ? c : curl_easy_setopt(e, CURLOPT_ERRORBUFFER, req->error_text);
    c = c != CURLE_OK ? c : curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)req);
    return c;
}

/* ---- starting and finishing ---- */

int hr__dloop_req_start(hr_dloop_t *l, hr_dloop_req_t *req)
{
    HR_ASSERT(is_idle(req));
    if (l->shutting_down) {
        return HR_ECLOSED;
    }
    if (req->url == NULL || req->done == NULL) {
        return HR_EINVAL;
    }
    hr__dloop_clear_result(req);
    req->priv.loop = l;
    bool taken = false;
    int rc = hr__h1_start(l, req, &taken);
    if (taken || rc != 0) {
        return rc;
    }
    struct curl_slist *headers = build_header_list(req);
    if (headers == NULL) {
        return HR_ENOMEM;
    }
    CURL *e = acquire_easy(l);
    if (e == NULL) {
        return HR_ENOMEM;
    }
    rc = HR_ENOMEM;
    CURLcode c = set_options(l, req, e, headers);
    if (c != CURLE_OK) {
        rc = c == CURLE_OUT_OF_MEMORY ? HR_ENOMEM : HR_EINVAL;
        goto err;
    }
    req->priv.start_ns = hr_mono_ns();
    if (curl_multi_add_handle(l->multi, e) != CURLM_OK) {
        goto err;
    }
    req->priv.easy = e;
    req->priv.state = HR__DLOOP_REQ_ACTIVE;
    hr__dloop_active_add(l, req);
    return 0;

err:
    release_easy(l, e);
    return rc;
}

void hr__dloop_active_add(hr_dloop_t *l, hr_dloop_req_t *req)
{
    req->priv.prev = NULL;
    req->priv.next = l->active;
    if (l->active != NULL) {
        l->active->priv.prev = req;
    }
    l->active = req;
    l->n_active++;
}

void hr__dloop_active_remove(hr_dloop_t *l, hr_dloop_req_t *req)
{
    if (req->priv.prev != NULL) {
        req->priv.prev->priv.next = req->priv.next;
    } else {
        l->active = req->priv.next;
    }
    if (req->priv.next != NULL) {
        req->priv.next->priv.prev = req->priv.prev;
    }
    req->priv.prev = req->priv.next = NULL;
    l->n_active--;
}

/* Takes an in-flight request back from its transport; it becomes idle. */
static void detach(hr_dloop_t *l, hr_dloop_req_t *req)
{
    if (req->priv.h1) {
        hr__h1_cancel(l, req);
        return;
    }
    CURL *e = req->priv.easy;
    curl_multi_remove_handle(l->multi, e);
    release_easy(l, e);
    req->priv.easy = NULL;
    hr__dloop_active_remove(l, req);
    req->priv.state = HR__DLOOP_REQ_IDLE;
}

static int map_curl_error(CURLcode c, long os_errno)
{
    switch (c) {
    case CURLE_OPERATION_TIMEDOUT:
        return HR_ETIMEOUT;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return HR_ENOTFOUND;
    case CURLE_COULDNT_CONNECT:
        return os_errno > 0 && os_errno < 4096 ? -(int)os_errno : HR_EIO;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return HR_EINVAL;
    case CURLE_OUT_OF_MEMORY:
        return HR_ENOMEM;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CLIENTCERT:
        return HR_EREJECTED;
    default:
        return HR_EIO;
    }
}

void hr__dloop_req_finish(hr_dloop_t *l, hr_dloop_req_t *req, CURLcode c)
{
    CURL *e = req->priv.easy;
    long status = 0, os_errno = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(e, CURLINFO_OS_ERRNO, &os_errno);
    req->latency_us = (hr_mono_ns() - req->priv.start_ns) / 1000;
    req->status = status;
    detach(l, req);

    req->curl_code = (int)c;
    if (c == CURLE_OK) {
        /* libcurl may have noted a failure it recovered from (say, one address of several). */
        req->error_text[0] = '\0';
        req->error = 0;
    } else if (req->priv.oom) {
        req->error = HR_ENOMEM;
        snprintf(req->error_text, sizeof req->error_text, "out of memory receiving the response");
    } else {
        req->error = map_curl_error(c, os_errno);
        /* Not the URL: it may carry credentials, and error_text ends up in dead letters. */
        if (req->error_text[0] == '\0') {
            snprintf(req->error_text, sizeof req->error_text, "%s", curl_easy_strerror(c));
        }
    }
    if (hr__dloop_publish_headers(req) != 0 && req->error == 0) {
        req->error = HR_ENOMEM;
        snprintf(req->error_text, sizeof req->error_text,
                 "out of memory keeping the response headers");
    }
    req->done(req);
}

void hr__dloop_req_fail(hr_dloop_t *l, hr_dloop_req_t *req, int err, const char *text)
{
    uint64_t latency_us = 0;
    if (req->priv.state == HR__DLOOP_REQ_ACTIVE) {
        latency_us = (hr_mono_ns() - req->priv.start_ns) / 1000;
        detach(l, req);
    }
    req->priv.state = HR__DLOOP_REQ_IDLE;
    hr__dloop_clear_result(req);
    req->error = err;
    req->latency_us = latency_us;
    snprintf(req->error_text, sizeof req->error_text, "%s", text);
    req->done(req);
}

/* ---- submission ---- */

/* Runs on the loop thread for a request submitted from another thread. */
static void start_queued(void *arg)
{
    hr_dloop_req_t *req = arg;
    hr_dloop_t *l = req->priv.loop;
    HR_ASSERT(req->priv.state == HR__DLOOP_REQ_QUEUED);
    req->priv.state = HR__DLOOP_REQ_IDLE;
    int rc = hr__dloop_req_start(l, req);
    if (rc == HR_ECLOSED) {
        hr__dloop_req_fail(l, req, rc, "shutting down");
    } else if (rc != 0) {
        char text[256];
        snprintf(text, sizeof text, "cannot start the request: %s", hr_strerror(rc));
        hr__dloop_req_fail(l, req, rc, text);
    }
}

int hr_dloop_submit(hr_dloop_t *l, hr_dloop_req_t *req)
{
    HR_ASSERT(is_idle(req));
    if (hr_dloop_on_loop_thread(l)) {
        return hr__dloop_req_start(l, req);
    }
    if (req->url == NULL || req->done == NULL) {
        return HR_EINVAL;
    }
    req->priv.loop = l;
    req->priv.state = HR__DLOOP_REQ_QUEUED;
    req->priv.submit_task.fn = start_queued;
    req->priv.submit_task.arg = req;
    int rc = hr_dloop_post_task(l, &req->priv.submit_task);
    if (rc != 0) {
        req->priv.state = HR__DLOOP_REQ_IDLE;
    }
    return rc;
}
