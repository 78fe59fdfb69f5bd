/* SPDX-License-Identifier: MIT */
/*
 * The CloudEvents HTTP protocol binding, binary content mode (HTTP binding §3.1): decoding
 * an event from ce-* headers and a body, and producing ce-* headers for delivery; plus the
 * content-mode detection of §3. Runs on HTTP worker threads (ingest) and the delivery thread;
 * reentrant, no global state.
 *
 * Header values (§3.1.3.2): optional whitespace is trimmed, double-quoted strings are
 * unquoted (RFC 7230 §3.2.6, with backslash escapes), then exactly one round of
 * percent-decoding is applied ("%" + two hex digits, either case; anything else after "%" is
 * an error), and the result must be valid UTF-8. Encoding percent-encodes space, '"', '%' and
 * every byte outside 0x21-0x7E, with upper-case hex.
 */
#include "ce/event_int.h"
#include "util/err.h"
#include "util/hex.h"
#include "util/utf8.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* (start, len) of the media type without parameters and surrounding whitespace. */
static void media_type_span(const char *ct, const char **start, size_t *len)
{
    while (is_ows(*ct)) {
        ct++;
    }
    size_t n = strcspn(ct, ";");
    while (n > 0 && is_ows(ct[n - 1])) {
        n--;
    }
    *start = ct;
    *len = n;
}

int hr_ce_content_type_is_json(const char *content_type)
{
    if (content_type == NULL) {
        return 0;
    }
    const char *mt;
    size_t n;
    media_type_span(content_type, &mt, &n);
    const char *slash = memchr(mt, '/', n);
    if (slash == NULL || slash == mt) {
        return 0;
    }
    const char *sub = slash + 1;
    size_t sublen = n - (size_t)(sub - mt);
    if (sublen == 4 && strncasecmp(sub, "json", 4) == 0) {
        return 1;
    }
    return sublen > 5 && strncasecmp(sub + sublen - 5, "+json", 5) == 0;
}

static bool content_type_is_text(const char *content_type)
{
    const char *mt;
    size_t n;
    media_type_span(content_type, &mt, &n);
    return n > 5 && strncasecmp(mt, "text/", 5) == 0;
}

hr_ce_mode_t hr_ce_detect_mode(const char *content_type)
{
    if (content_type == NULL) {
        return HR_CE_MODE_BINARY;
    }
    const char *mt;
    size_t n;
    media_type_span(content_type, &mt, &n);
    static const char ce[] = "application/cloudevents";
    static const char batch[] = "application/cloudevents-batch";
    if (n < sizeof ce - 1 || strncasecmp(mt, ce, sizeof ce - 1) != 0) {
        return HR_CE_MODE_BINARY;
    }
    if (n >= sizeof batch - 1 && strncasecmp(mt, batch, sizeof batch - 1) == 0) {
        const char *rest = mt + sizeof batch - 1;
        size_t rlen = n - (sizeof batch - 1);
        return rlen == 5 && strncasecmp(rest, "+json", 5) == 0 ? HR_CE_MODE_BATCH
                                                               : HR_CE_MODE_UNSUPPORTED;
    }
    const char *rest = mt + sizeof ce - 1;
    size_t rlen = n - (sizeof ce - 1);
    return rlen == 5 && strncasecmp(rest, "+json", 5) == 0 ? HR_CE_MODE_STRUCTURED
                                                           : HR_CE_MODE_UNSUPPORTED;
}

/* Decodes one header value into `out` (replacing its content): trim, unquote, percent-decode
 * once, check UTF-8. `field` is the header name for error messages. */
static int decode_value(const char *field, const char *v, hr_buf_t *tmp, hr_buf_t *out,
                        hr_ce_error_t *err)
{
    size_t len = strlen(v), b = 0;
    int rc;
    while (b < len && is_ows(v[b])) {
        b++;
    }
    while (len > b && is_ows(v[len - 1])) {
        len--;
    }
    const char *s = v + b;
    len -= b;
    if (memchr(s, '"', len) != NULL) {
        hr_buf_reset(tmp);
        if ((rc = hr_buf_reserve(tmp, len)) != 0) {
            return rc;
        }
        bool quoted = false;
        for (size_t i = 0; i < len; i++) {
            char c = s[i];
            if (c == '"') {
                quoted = !quoted;
                continue;
            }
            if (quoted && c == '\\') {
                if (++i == len) {
                    break;
                }
                c = s[i];
            }
            tmp->data[tmp->len++] = (uint8_t)c;
        }
        if (quoted) {
            return hr__ce_fail(err, field, "header \"%s\" has an unterminated double-quoted string",
                               field);
        }
        tmp->data[tmp->len] = '\0';
        s = (const char *)tmp->data;
        len = tmp->len;
    }
    hr_buf_reset(out);
    if ((rc = hr_buf_reserve(out, len)) != 0) {
        return rc;
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%') {
            int hi = i + 1 < len ? hr_hexval(s[i + 1]) : -1;
            int lo = i + 2 < len ? hr_hexval(s[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                char q[96];
                hr__ce_quote(q, sizeof q, s, len);
                return hr__ce_fail(err, field,
                                   "header \"%s\" has an invalid percent-escape at byte offset "
                                   "%zu ('%%' must be followed by two hex digits): %s",
                                   field, i, q);
            }
            out->data[out->len++] = (uint8_t)(hi << 4 | lo);
            i += 2;
        } else {
            out->data[out->len++] = (uint8_t)c;
        }
    }
    out->data[out->len] = '\0';
    size_t bad;
    if (!hr_utf8_valid(out->data, out->len, &bad)) {
        return hr__ce_fail(err, field,
                           "header \"%s\" is not valid UTF-8 after percent-decoding (byte "
                           "offset %zu of the decoded value)",
                           field, bad);
    }
    if (memchr(out->data, 0, out->len) != NULL) {
        return hr__ce_fail(err, field, "header \"%s\" contains control character U+0000", field);
    }
    return 0;
}

/* Decodes the ce-* header `h` into the event. */
static int take_header(hr_ce_event_t *ev, size_t *exts_cap, const hr_ce_header_t *h, hr_buf_t *tmp,
                       hr_buf_t *val, hr_ce_error_t *err)
{
    char field[64], q[96];
    const char *an = h->name + 3;
    size_t alen = strlen(an);
    int rc;
    /* header names are case-insensitive; attribute names are lower case */
    char *name = hr__ce_strndup(an, alen);
    if (name == NULL) {
        return HR_ENOMEM;
    }
    for (size_t i = 0; i < alen; i++) {
        if (name[i] >= 'A' && name[i] <= 'Z') {
            name[i] = (char)(name[i] - 'A' + 'a');
        }
    }
    snprintf(field, sizeof field, "ce-%s", name);
    if (!hr__ce_ext_name_ok(name, alen)) {
        hr__ce_quote(q, sizeof q, h->name, strlen(h->name));
        rc = hr__ce_fail(err, field,
                         "header %s does not name a CloudEvents attribute: attribute names "
                         "must consist of 1 to %d lower-case letters a-z and digits 0-9",
                         q, HR_CE_EXT_NAME_MAX);
        goto fail;
    }
    if (strcmp(name, "datacontenttype") == 0) {
        rc = hr__ce_fail(err, field,
                         "header \"ce-datacontenttype\" is not allowed in binary mode: the "
                         "Content-Type header carries datacontenttype");
        goto fail;
    }
    if (strcmp(name, "data") == 0) {
        rc = hr__ce_fail(err, field,
                         "header \"ce-data\" is not allowed: \"data\" is reserved; the body "
                         "carries the data in binary mode");
        goto fail;
    }
    if ((rc = decode_value(field, h->value, tmp, val, err)) != 0) {
        goto fail;
    }
    int idx = hr__ce_attr_index(name, alen);
    char **slot = NULL;
    if (idx >= 0) {
        slot = hr__ce_attr_slot(ev, idx);
    } else {
        for (size_t i = 0; i < ev->n_exts; i++) {
            if (strcmp(ev->exts[i].name, name) == 0) {
                slot = &ev->exts[i].value; /* non-NULL: a duplicate */
                break;
            }
        }
    }
    if (slot != NULL && *slot != NULL) {
        rc = hr__ce_fail(err, field, "header \"%s\" appears more than once", field);
        goto fail;
    }
    char *value = hr__ce_strndup((const char *)val->data, val->len);
    if (value == NULL) {
        rc = HR_ENOMEM;
        goto fail;
    }
    if (idx >= 0) {
        *slot = value;
        free(name);
        return 0;
    }
    if (ev->n_exts == *exts_cap) {
        size_t cap = *exts_cap ? *exts_cap * 2 : 8;
        hr_ce_ext_t *x = realloc(ev->exts, cap * sizeof *x);
        if (x == NULL) {
            free(value);
            rc = HR_ENOMEM;
            goto fail;
        }
        ev->exts = x;
        *exts_cap = cap;
    }
    ev->exts[ev->n_exts++] = (hr_ce_ext_t){.name = name, .value = value, .kind = HR_CE_STRING};
    return 0;
fail:
    free(name);
    return rc;
}

int hr_ce_from_binary(const hr_ce_header_t *hdrs, size_t n_hdrs, const char *content_type,
                      const uint8_t *body, size_t len, hr_ce_event_t **out, hr_ce_error_t *err)
{
    hr_buf_t tmp = HR_BUF_INIT, val = HR_BUF_INIT;
    size_t exts_cap = 0;
    int rc;
    *out = NULL;
    if (err != NULL) {
        err->index = -1;
    }
    hr_ce_event_t *ev = calloc(1, sizeof *ev);
    if (ev == NULL) {
        return HR_ENOMEM;
    }
    for (size_t i = 0; i < n_hdrs; i++) {
        const char *n = hdrs[i].name;
        if (n == NULL || strncasecmp(n, "ce-", 3) != 0) {
            continue;
        }
        if ((rc = take_header(ev, &exts_cap, &hdrs[i], &tmp, &val, err)) != 0) {
            goto fail;
        }
    }
    static const int required[] = {HR_CE_A_SPECVERSION, HR_CE_A_ID, HR_CE_A_SOURCE, HR_CE_A_TYPE};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        if (*hr__ce_attr_slot(ev, required[i]) == NULL) {
            char field[64];
            snprintf(field, sizeof field, "ce-%s", hr__ce_attr_names[required[i]]);
            rc = hr__ce_fail(err, field,
                             "required header \"%s\" is missing (binary content mode carries "
                             "the attribute \"%s\" in it)",
                             field, hr__ce_attr_names[required[i]]);
            goto fail;
        }
    }
    if (content_type != NULL) {
        size_t b = 0, e = strlen(content_type);
        while (b < e && is_ows(content_type[b])) {
            b++;
        }
        while (e > b && is_ows(content_type[e - 1])) {
            e--;
        }
        if (e > b && (ev->datacontenttype = hr__ce_strndup(content_type + b, e - b)) == NULL) {
            rc = HR_ENOMEM;
            goto fail;
        }
    }
    if (ev->n_exts > 1) {
        qsort(ev->exts, ev->n_exts, sizeof *ev->exts, hr__ce_ext_cmp);
    }
    if ((rc = hr__ce_validate_attrs(ev, err)) != 0) {
        goto fail;
    }
    if (len > 0) {
        const char *ct = ev->datacontenttype;
        if (ct != NULL && hr_ce_content_type_is_json(ct)) {
            if (!hr__ce_json_valid(body, len)) {
                rc = hr__ce_fail(err, "data",
                                 "the body (\"data\") is not valid JSON although the "
                                 "Content-Type %s declares JSON",
                                 ct);
                goto fail;
            }
            ev->data_kind = HR_CE_DATA_JSON;
        } else if (ct != NULL && content_type_is_text(ct) && hr_utf8_valid(body, len, NULL)) {
            ev->data_kind = HR_CE_DATA_TEXT;
        } else {
            ev->data_kind = HR_CE_DATA_BINARY;
        }
        if ((ev->data = malloc(len + 1)) == NULL) {
            rc = HR_ENOMEM;
            goto fail;
        }
        memcpy(ev->data, body, len);
        ev->data[len] = '\0';
        ev->data_len = len;
    }
    hr_buf_free(&tmp);
    hr_buf_free(&val);
    *out = ev;
    return 0;
fail:
    hr_buf_free(&tmp);
    hr_buf_free(&val);
    hr_ce_event_free(ev);
    return rc;
}

/* Percent-encodes `s` into `out` (replacing its content) per §3.1.3.2. */
static int pct_encode(const char *s, hr_buf_t *out)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t len = strlen(s);
    int rc;
    hr_buf_reset(out);
    if ((rc = hr_buf_reserve(out, len * 3)) != 0) {
        return rc;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c > 0x20 && c < 0x7F && c != '"' && c != '%') {
            out->data[out->len++] = c;
        } else {
            out->data[out->len++] = '%';
            out->data[out->len++] = (uint8_t)hex[c >> 4];
            out->data[out->len++] = (uint8_t)hex[c & 15];
        }
    }
    out->data[out->len] = '\0';
    return 0;
}

static int emit(hr_ce_header_fn fn, void *arg, hr_buf_t *name, hr_buf_t *val, const char *attr,
                const char *value)
{
    int rc;
    hr_buf_reset(name);
    if ((rc = hr_buf_puts(name, "ce-")) != 0 || (rc = hr_buf_puts(name, attr)) != 0 ||
        (rc = pct_encode(value, val)) != 0) {
        return rc;
    }
    return fn(arg, (const char *)name->data, (const char *)val->data);
}

int hr_ce_to_headers(const hr_ce_event_t *ev, hr_ce_header_fn fn, void *arg)
{
    hr_buf_t name = HR_BUF_INIT, val = HR_BUF_INIT;
    int rc = 0;
    for (int a = 0; a < HR_CE_A_COUNT; a++) {
        const char *v = *hr__ce_attr_slot((hr_ce_event_t *)ev, a);
        if (v == NULL) {
            continue;
        }
        if (a == HR_CE_A_DATACONTENTTYPE) {
            /* a validated media type is printable ASCII: no encoding */
            rc = fn(arg, "Content-Type", v);
        } else {
            rc = emit(fn, arg, &name, &val, hr__ce_attr_names[a], v);
        }
        if (rc != 0) {
            goto end;
        }
    }
    for (size_t i = 0; i < ev->n_exts; i++) {
        if ((rc = emit(fn, arg, &name, &val, ev->exts[i].name, ev->exts[i].value)) != 0) {
            goto end;
        }
    }
end:
    hr_buf_free(&name);
    hr_buf_free(&val);
    return rc;
}
