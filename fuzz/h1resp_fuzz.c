/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the delivery loop's own HTTP/1.1 client's response handling: the same
 * hr__h1_resp_* functions the transport runs (nodejs' http_parser and the capture helpers it
 * shares with the libcurl path), without sockets.
 *
 * Input: one options byte, then the bytes a server sends. Options: bit 0 the request was HEAD,
 * bit 1 max_body_bytes 16 instead of 64 KiB, bits 2-7 the size of the pieces the bytes arrive
 * in (1 to 64, or 64 to 4,096 bytes). The bytes are parsed as successive responses on one
 * keep-alive connection (as the transport does) and end with EOF. After each response the
 * result must hold the invariants callers rely on.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "delivery/loop_int.h"
#include "util/err.h"

static void check(bool ok)
{
    if (!ok) {
        abort();
    }
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* The published result fields, as a caller reads them. */
static void check_result(hr_dloop_req_t *req, size_t max_body)
{
    check(req->status >= 0 && req->status <= 65535);
    check(req->resp_body.len <= max_body);
    if (req->resp_body.len > 0) {
        check(req->resp_body.data[req->resp_body.len] == '\0');
    }
    check(!req->resp_truncated || req->resp_body.len == max_body);
    if (hr__dloop_publish_headers(req) != 0) {
        return;
    }
    for (size_t i = 0; i < req->resp_ce_count; i++) {
        const char *n = req->resp_ce[i].name, *v = req->resp_ce[i].value;
        check(strncmp(n, "ce-", 3) == 0 && n[3] != '\0');
        for (const char *p = n; *p != '\0'; p++) {
            check(!isupper((unsigned char)*p));
        }
        size_t vl = strlen(v);
        check(vl == 0 || (!is_ws(v[0]) && !is_ws(v[vl - 1])));
    }
    const char *kept[] = {req->resp_content_type, req->resp_retry_after};
    for (size_t i = 0; i < 2; i++) {
        size_t vl = kept[i] != NULL ? strlen(kept[i]) : 0;
        check(vl == 0 || (!is_ws(kept[i][0]) && !is_ws(kept[i][vl - 1])));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    uint8_t opt = data[0];
    const char *in = (const char *)data + 1;
    size--;
    bool head = (opt & 1) != 0;
    size_t max_body = (opt & 2) ? 16 : 64 * 1024;
    size_t piece = (opt & 0x80) ? 64 * (1 + ((opt >> 2) & 0x1f)) : 1 + ((opt >> 2) & 0x1f);

    hr_dloop_req_t req;
    hr_dloop_req_init(&req);
    hr__h1_resp_t r;
    memset(&r, 0, sizeof r);
    size_t off = 0;
    for (int n_resp = 0; n_resp < 16; n_resp++) {
        hr__dloop_clear_result(&req);
        hr__h1_resp_begin(&r, &req, max_body, head);
        int rc = 0;
        while (off < size) {
            size_t n = size - off < piece ? size - off : piece;
            size_t used = 0;
            rc = hr__h1_resp_feed(&r, in + off, n, &used);
            check(used <= n);
            if (rc == 1) {
                off += used;
                break;
            }
            if (rc != 0) {
                break;
            }
            check(used == n);
            off += n;
        }
        if (rc == 0) {
            rc = hr__h1_resp_eof(&r);
        }
        check(rc == 1 || rc == HR_EIO || rc == HR_ENOMEM);
        if (rc != 1) {
            char text[256];
            hr__h1_resp_error(&r, text, sizeof text);
            check(text[0] != '\0' && strlen(text) < sizeof text);
        } else {
            check(req.status >= 100);
        }
        check_result(&req, max_body);
        if (rc != 1 || !r.keep_alive || off >= size) {
            break;
        }
    }
    hr__h1_resp_free(&r);
    hr_dloop_req_free(&req);
    return 0;
}
