/* SPDX-License-Identifier: MIT */
/*
 * Response parsing for the loop's own HTTP/1.1 client (loop_h1.c), on nodejs' http_parser:
 * 1xx responses are skipped, HEAD responses have no body, bodies come by Content-Length,
 * chunked or until the close; headers go to the capture code libcurl's callbacks use
 * (loop_http.c). Also driven by fuzz/h1resp_fuzz.c. See hr__h1_resp_* in loop_int.h.
 */
#include "delivery/loop_int.h"

#include <stdio.h>
#include <string.h>

#include "util/alloc.h"
#include "util/err.h"

/* ---- response parsing (http_parser callbacks) ---- */

/* Hands the header assembled so far to the capture (if it is a kept one) and forgets it. */
static int flush_header(hr__h1_resp_t *r)
{
    int rc = 0;
    if (r->name.len > 0) {
        const char *name = (const char *)r->name.data;
        char kind = r->in_value ? r->kind : hr__dloop_header_kind(name, r->name.len);
        if (kind != 0) {
            const char *v = r->value.len > 0 ? (const char *)r->value.data : "";
            rc = hr__dloop_capture_header(r->req, kind, name, r->name.len, v, r->value.len);
        }
    }
    r->name.len = 0;
    r->value.len = 0;
    r->in_value = false;
    r->kind = 0;
    return rc;
}

static int on_message_begin(http_parser *hp)
{
    hr__h1_resp_t *r = hp->data;
    hr__dloop_capture_reset(r->req); /* a new status line: forget a 1xx's headers */
    r->name.len = 0;
    r->value.len = 0;
    r->in_value = false;
    r->kind = 0;
    return 0;
}

static int on_header_field(http_parser *hp, const char *at, size_t n)
{
    hr__h1_resp_t *r = hp->data;
    if (r->in_value && flush_header(r) != 0) {
        return -1;
    }
    if (hr_buf_append(&r->name, at, n) != 0) {
        r->req->priv.oom = true;
        return -1;
    }
    return 0;
}

static int on_header_value(http_parser *hp, const char *at, size_t n)
{
    hr__h1_resp_t *r = hp->data;
    if (!r->in_value) {
        r->in_value = true;
        r->kind = hr__dloop_header_kind((const char *)r->name.data, r->name.len);
    }
    if (r->kind != 0 && n > 0 && hr_buf_append(&r->value, at, n) != 0) {
        r->req->priv.oom = true;
        return -1;
    }
    return 0;
}

static int on_headers_complete(http_parser *hp)
{
    hr__h1_resp_t *r = hp->data;
    if (flush_header(r) != 0) {
        return -1;
    }
    unsigned status = hp->status_code;
    if (status < 100) {
        r->bad_status = true; /* http_parser takes any three digits; HTTP wants 1xx-9xx */
        return -1;
    }
    /* Returning 1 tells http_parser that no body follows (F_SKIPBODY), whatever
     * Content-Length says: so for HEAD, 1xx, 204 and 304, as libcurl does. */
    if (status / 100 == 1 && status != 101) {
        r->interim = true; /* skipped; the final response follows */
        return 1;
    }
    r->req->status = (long)status;
    /* Known before the body: a pipelined request must not join a connection about to end. */
    r->will_close = !http_should_keep_alive(hp);
    return r->head || status == 204 || status == 304 ? 1 : 0;
}

static int on_body(http_parser *hp, const char *at, size_t n)
{
    hr__h1_resp_t *r = hp->data;
    return hr__dloop_capture_body(r->req, r->max_body_bytes, at, n) != 0 ? -1 : 0;
}

static int on_message_complete(http_parser *hp)
{
    hr__h1_resp_t *r = hp->data;
    if (flush_header(r) != 0) { /* trailers */
        return -1;
    }
    if (r->interim) {
        r->interim = false;
        return 0;
    }
    r->complete = true;
    r->keep_alive = http_should_keep_alive(hp) && !hp->upgrade && hp->status_code != 101;
    /* Stop here: any further bytes are not part of this response. */
    http_parser_pause(hp, 1);
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void hr__h1_resp_begin(hr__h1_resp_t *r, hr_dloop_req_t *req, size_t max_body_bytes, bool head)
{
    http_parser_init(&r->parser, HTTP_RESPONSE);
    r->parser.data = r;
    r->req = req;
    r->max_body_bytes = max_body_bytes;
    r->n_fed = 0;
    r->name.len = 0;
    r->value.len = 0;
    r->kind = 0;
    r->in_value = false;
    r->head = head;
    r->interim = false;
    r->complete = false;
    r->keep_alive = false;
    r->will_close = false;
    r->bad_status = false;
}

int hr__h1_resp_feed(hr__h1_resp_t *r, const char *p, size_t n, size_t *used)
{
    HR_ASSERT(!r->complete);
    size_t k = http_parser_execute(&r->parser, &parser_settings, p, n);
    r->n_fed += k;
    *used = k;
    if (r->complete) {
        return 1;
    }
    if (HTTP_PARSER_ERRNO(&r->parser) != HPE_OK) {
        return r->req->priv.oom ? HR_ENOMEM : HR_EIO;
    }
    if (k != n) {
        return HR_EIO; /* cannot happen without an error set; never loop on it */
    }
    return 0;
}

int hr__h1_resp_eof(hr__h1_resp_t *r)
{
    if (r->complete) {
        return 1;
    }
    if (HTTP_PARSER_ERRNO(&r->parser) == HPE_OK) {
        http_parser_execute(&r->parser, &parser_settings, NULL, 0);
    }
    return r->complete ? 1 : HR_EIO;
}

void hr__h1_resp_error(const hr__h1_resp_t *r, char *out, size_t cap)
{
    enum http_errno e = HTTP_PARSER_ERRNO(&r->parser);
    if (r->req->priv.oom) {
        snprintf(out, cap, "out of memory receiving the response");
        return;
    }
    if (r->bad_status) {
        snprintf(out, cap, "Malformed HTTP response at byte %zu: status code %u is not 100-999",
                 r->n_fed, (unsigned)r->parser.status_code);
        return;
    }
    snprintf(out, cap, "Malformed HTTP response at byte %zu: %s (%s)", r->n_fed,
             http_errno_description(e), http_errno_name(e));
}

void hr__h1_resp_free(hr__h1_resp_t *r)
{
    hr_buf_free(&r->name);
    hr_buf_free(&r->value);
}
