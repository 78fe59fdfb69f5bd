/* SPDX-License-Identifier: MIT */
/*
 * The CloudEvents JSON event format: structured mode (one object) and batched mode (an array
 * of objects) decoding, and hr_ce_to_json encoding. Runs on HTTP worker threads (ingest) and
 * readers; reentrant, no global state.
 *
 * Decoding is a single pass of a small strict JSON parser (RFC 8259) written for this job
 * rather than jansson, because the invariant "JSON data is kept as its exact source text"
 * needs the byte span of the `data` member's value, and because this is the hot ingest path
 * (no intermediate tree). The parser accepts exactly RFC 8259 JSON with valid UTF-8, rejects
 * unpaired surrogate escapes (as jansson does), nests at most HR_CE_JSON_MAX_DEPTH deep, and
 * treats duplicate top-level member names (after unescaping) as an error. Duplicate names
 * inside `data` are kept verbatim: data is the producer's document.
 */
#include "ce/event_int.h"
#include "util/base64.h"
#include "util/err.h"
#include "util/utf8.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct jp {
    const uint8_t *s;
    size_t len;
    size_t i;
    hr_ce_error_t *err;
    const char *field; /* the member being parsed, for error messages */
} jp_t;

static int syntax(jp_t *j, const char *what)
{
    if (j->i >= j->len) {
        return hr__ce_fail(j->err, j->field, "invalid JSON: unexpected end of input, %s", what);
    }
    return hr__ce_fail(j->err, j->field, "invalid JSON at byte offset %zu: %s", j->i, what);
}

static void skip_ws(jp_t *j)
{
    while (j->i < j->len) {
        uint8_t c = j->s[j->i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            return;
        }
        j->i++;
    }
}

static int hex4(const uint8_t *p, uint32_t *out)
{
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) {
        uint8_t c = p[k];
        v <<= 4;
        if (c >= '0' && c <= '9') {
            v |= (uint32_t)(c - '0');
        } else if (c >= 'a' && c <= 'f') {
            v |= (uint32_t)(c - 'a' + 10);
        } else if (c >= 'A' && c <= 'F') {
            v |= (uint32_t)(c - 'A' + 10);
        } else {
            return -1;
        }
    }
    *out = v;
    return 0;
}

/* Parses the string at j->i (which is '"'). With `out`, its decoded content replaces the
 * buffer's. Leaves j->i after the closing quote. */
static int jp_string(jp_t *j, hr_buf_t *out)
{
    const uint8_t *s = j->s;
    size_t i = j->i + 1, run = i;
    int rc;
    if (out != NULL) {
        hr_buf_reset(out);
    }
    for (;;) {
        if (i >= j->len) {
            j->i = i;
            return syntax(j, "unterminated string");
        }
        uint8_t c = s[i];
        if (c == '"') {
            break;
        }
        if (c < 0x20) {
            j->i = i;
            return syntax(j, "control character in a string (must be escaped)");
        }
        if (c != '\\') {
            if (c < 0x80) {
                i++;
                continue;
            }
            uint32_t cp;
            size_t n = hr_utf8_decode(s + i, j->len - i, &cp);
            if (n == 0) {
                j->i = i;
                return syntax(j, "invalid UTF-8 in a string");
            }
            i += n;
            continue;
        }
        if (out != NULL && (rc = hr_buf_append(out, s + run, i - run)) != 0) {
            return rc;
        }
        if (i + 1 >= j->len) {
            j->i = i + 1;
            return syntax(j, "unterminated string");
        }
        uint8_t e = s[i + 1], u8[4];
        size_t n8 = 1;
        i += 2;
        switch (e) {
        case '"':
        case '\\':
        case '/':
            u8[0] = e;
            break;
        case 'b':
            u8[0] = '\b';
            break;
        case 'f':
            u8[0] = '\f';
            break;
        case 'n':
            u8[0] = '\n';
            break;
        case 'r':
            u8[0] = '\r';
            break;
        case 't':
            u8[0] = '\t';
            break;
        case 'u': {
            uint32_t cp, lo;
            if (j->len - i < 4 || hex4(s + i, &cp) != 0) {
                j->i = i - 2;
                return syntax(j, "invalid \\u escape");
            }
            i += 4;
            if (cp >= 0xDC00 && cp <= 0xDFFF) {
                j->i = i - 6;
                return syntax(j, "unpaired surrogate in a \\u escape");
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (j->len - i < 6 || s[i] != '\\' || s[i + 1] != 'u' ||
                    hex4(s + i + 2, &lo) != 0 || lo < 0xDC00 || lo > 0xDFFF) {
                    j->i = i - 6;
                    return syntax(j, "unpaired surrogate in a \\u escape");
                }
                i += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            n8 = hr_utf8_encode(cp, u8);
            break;
        }
        default:
            j->i = i - 2;
            return syntax(j, "invalid escape in a string");
        }
        if (out != NULL && (rc = hr_buf_append(out, u8, n8)) != 0) {
            return rc;
        }
        run = i;
    }
    if (out != NULL && (rc = hr_buf_append(out, s + run, i - run)) != 0) {
        return rc;
    }
    j->i = i + 1;
    return 0;
}

/* Parses a number at j->i; *is_int tells whether it had neither fraction nor exponent. */
static int jp_number(jp_t *j, bool *is_int)
{
    const uint8_t *s = j->s;
    size_t i = j->i, n = j->len;
    *is_int = true;
    if (i < n && s[i] == '-') {
        i++;
    }
    if (i < n && s[i] == '0') {
        i++;
    } else if (i < n && s[i] >= '1' && s[i] <= '9') {
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            i++;
        }
    } else {
        j->i = i;
        return syntax(j, "invalid number");
    }
    if (i < n && s[i] == '.') {
        *is_int = false;
        size_t d = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            i++;
        }
        if (i == d) {
            j->i = i;
            return syntax(j, "invalid number: digits expected after '.'");
        }
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        *is_int = false;
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) {
            i++;
        }
        size_t d = i;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            i++;
        }
        if (i == d) {
            j->i = i;
            return syntax(j, "invalid number: digits expected in the exponent");
        }
    }
    j->i = i;
    return 0;
}

static int jp_literal(jp_t *j, const char *lit)
{
    size_t n = strlen(lit);
    if (j->len - j->i < n || memcmp(j->s + j->i, lit, n) != 0) {
        return syntax(j, "invalid literal (expected true, false or null)");
    }
    j->i += n;
    return 0;
}

/* Validates any JSON value at j->i (after whitespace) and moves past it. */
static int jp_skip(jp_t *j, int depth)
{
    int rc;
    bool is_int;
    if (j->i >= j->len) {
        return syntax(j, "a value was expected");
    }
    switch (j->s[j->i]) {
    case '"':
        return jp_string(j, NULL);
    case 't':
        return jp_literal(j, "true");
    case 'f':
        return jp_literal(j, "false");
    case 'n':
        return jp_literal(j, "null");
    case '{':
    case '[': {
        uint8_t close = j->s[j->i] == '{' ? '}' : ']';
        if (depth >= HR_CE_JSON_MAX_DEPTH) {
            return syntax(j, "nested too deeply");
        }
        j->i++;
        skip_ws(j);
        if (j->i < j->len && j->s[j->i] == close) {
            j->i++;
            return 0;
        }
        for (;;) {
            if (close == '}') {
                if (j->i >= j->len || j->s[j->i] != '"') {
                    return syntax(j, "a member name string was expected");
                }
                if ((rc = jp_string(j, NULL)) != 0) {
                    return rc;
                }
                skip_ws(j);
                if (j->i >= j->len || j->s[j->i] != ':') {
                    return syntax(j, "':' was expected after a member name");
                }
                j->i++;
                skip_ws(j);
            }
            if ((rc = jp_skip(j, depth + 1)) != 0) {
                return rc;
            }
            skip_ws(j);
            if (j->i < j->len && j->s[j->i] == ',') {
                j->i++;
                skip_ws(j);
                continue;
            }
            if (j->i < j->len && j->s[j->i] == close) {
                j->i++;
                return 0;
            }
            return syntax(j, close == '}' ? "',' or '}' was expected" : "',' or ']' was expected");
        }
    }
    default:
        if (j->s[j->i] == '-' || (j->s[j->i] >= '0' && j->s[j->i] <= '9')) {
            return jp_number(j, &is_int);
        }
        return syntax(j, "a value was expected");
    }
}

bool hr__ce_json_valid(const uint8_t *p, size_t len)
{
    jp_t j = {.s = p, .len = len, .i = 0, .err = NULL, .field = "data"};
    skip_ws(&j);
    if (jp_skip(&j, 0) != 0) {
        return false;
    }
    skip_ws(&j);
    return j.i == j.len;
}

static const char *json_type_name(uint8_t c)
{
    switch (c) {
    case '"':
        return "a string";
    case '{':
        return "an object";
    case '[':
        return "an array";
    case 't':
    case 'f':
        return "a boolean";
    case 'n':
        return "null";
    default:
        return "a number";
    }
}

/* Decoder state for one event object. */
typedef struct ev_parse {
    hr_ce_event_t *ev;
    size_t exts_cap;
    unsigned seen;   /* bit per context attribute, plus data and data_base64 */
    size_t data_off; /* span of the data member's value */
    size_t data_len;
    size_t b64_off;         /* offset of the data_base64 string, if any */
    bool has_data, has_b64; /* non-null data_base64 */
} ev_parse_t;

#define SEEN_DATA (1u << HR_CE_A_COUNT)
#define SEEN_B64 (1u << (HR_CE_A_COUNT + 1))

static int dup_member(jp_t *j, const char *name)
{
    return hr__ce_fail(j->err, name, "member \"%s\" appears more than once in the event", name);
}

static int add_ext(ev_parse_t *ep, char *name, char *value, hr_ce_kind_t kind)
{
    hr_ce_event_t *ev = ep->ev;
    if (ev->n_exts == ep->exts_cap) {
        size_t cap = ep->exts_cap ? ep->exts_cap * 2 : 8;
        hr_ce_ext_t *x = realloc(ev->exts, cap * sizeof *x);
        if (x == NULL) {
            free(name);
            free(value);
            return HR_ENOMEM;
        }
        ev->exts = x;
        ep->exts_cap = cap;
    }
    ev->exts[ev->n_exts++] = (hr_ce_ext_t){.name = name, .value = value, .kind = kind};
    return 0;
}

/* Parses the value of extension member `name` (key holds it). */
static int parse_ext(jp_t *j, ev_parse_t *ep, const hr_buf_t *key, hr_buf_t *val)
{
    const char *name = (const char *)key->data;
    char q[96];
    int rc;
    if (!hr__ce_ext_name_ok(name, key->len)) {
        hr__ce_quote(q, sizeof q, name, key->len);
        return hr__ce_fail(j->err, key->len && !memchr(name, 0, key->len) ? name : "",
                           "%s is not a valid attribute name: extension names must consist of "
                           "1 to %d lower-case letters a-z and digits 0-9",
                           q, HR_CE_EXT_NAME_MAX);
    }
    uint8_t c = j->s[j->i];
    char *value = NULL;
    hr_ce_kind_t kind = HR_CE_STRING;
    size_t start = j->i;
    bool is_int;
    switch (c) {
    case '"':
        if ((rc = jp_string(j, val)) != 0) {
            return rc;
        }
        if (memchr(val->data, 0, val->len) != NULL) {
            return hr__ce_fail(j->err, name, "attribute \"%s\" contains control character U+0000",
                               name);
        }
        value = hr__ce_strndup((const char *)val->data, val->len);
        break;
    case 't':
    case 'f':
        if ((rc = jp_literal(j, c == 't' ? "true" : "false")) != 0) {
            return rc;
        }
        kind = HR_CE_BOOL;
        value = hr__ce_strndup(c == 't' ? "true" : "false", c == 't' ? 4 : 5);
        break;
    case 'n':
        /* null means unset; remember the name anyway so a duplicate is still caught */
        if ((rc = jp_literal(j, "null")) != 0) {
            return rc;
        }
        break;
    case '{':
    case '[':
        return hr__ce_fail(j->err, name,
                           "attribute \"%s\" must be a string, an integer or a boolean, not %s",
                           name, json_type_name(c));
    default: {
        if ((rc = jp_number(j, &is_int)) != 0) {
            return rc;
        }
        const char *t = (const char *)j->s + start;
        size_t tlen = j->i - start;
        long long v = 0;
        bool neg = t[0] == '-';
        bool in_range = is_int && tlen - neg <= 10;
        for (size_t k = neg; in_range && k < tlen; k++) {
            v = v * 10 + (t[k] - '0');
        }
        if (neg) {
            v = -v;
        }
        if (!in_range || v < -2147483648LL || v > 2147483647LL) {
            hr__ce_quote(q, sizeof q, t, tlen);
            return hr__ce_fail(j->err, name,
                               "attribute \"%s\" must be an Integer (a whole number from "
                               "-2147483648 to 2147483647 without fraction or exponent), got %s",
                               name, q);
        }
        char num[16];
        int n = snprintf(num, sizeof num, "%lld", v);
        kind = HR_CE_INT;
        value = hr__ce_strndup(num, (size_t)n);
        break;
    }
    }
    if (c != 'n' && value == NULL) {
        return HR_ENOMEM;
    }
    char *nm = hr__ce_strndup(name, key->len);
    if (nm == NULL) {
        free(value);
        return HR_ENOMEM;
    }
    return add_ext(ep, nm, value, kind);
}

/* Parses one member: key in `key`, j->i at the value. */
static int parse_member(jp_t *j, ev_parse_t *ep, const hr_buf_t *key, hr_buf_t *val)
{
    const char *name = (const char *)key->data;
    int idx = memchr(name, 0, key->len) ? -2 : hr__ce_attr_index(name, key->len);
    uint8_t c = j->s[j->i];
    int rc;
    if (idx >= 0) {
        if (ep->seen & (1u << idx)) {
            return dup_member(j, name);
        }
        ep->seen |= 1u << idx;
        if (c == 'n') {
            return jp_literal(j, "null"); /* null means unset */
        }
        if (c != '"') {
            return hr__ce_fail(j->err, name, "attribute \"%s\" must be a JSON string, not %s", name,
                               json_type_name(c));
        }
        if ((rc = jp_string(j, val)) != 0) {
            return rc;
        }
        if (memchr(val->data, 0, val->len) != NULL) {
            return hr__ce_fail(j->err, name, "attribute \"%s\" contains control character U+0000",
                               name);
        }
        char *v = hr__ce_strndup((const char *)val->data, val->len);
        if (v == NULL) {
            return HR_ENOMEM;
        }
        *hr__ce_attr_slot(ep->ev, idx) = v;
        return 0;
    }
    if (key->len == 4 && memcmp(name, "data", 4) == 0) {
        if (ep->seen & SEEN_DATA) {
            return dup_member(j, "data");
        }
        ep->seen |= SEEN_DATA;
        ep->has_data = true;
        ep->data_off = j->i;
        if ((rc = jp_skip(j, 1)) != 0) {
            return rc;
        }
        ep->data_len = j->i - ep->data_off;
        return 0;
    }
    if (key->len == 11 && memcmp(name, "data_base64", 11) == 0) {
        if (ep->seen & SEEN_B64) {
            return dup_member(j, "data_base64");
        }
        ep->seen |= SEEN_B64;
        if (c == 'n') {
            return jp_literal(j, "null");
        }
        if (c != '"') {
            return hr__ce_fail(j->err, "data_base64",
                               "\"data_base64\" must be a JSON string holding base64, not %s",
                               json_type_name(c));
        }
        ep->has_b64 = true;
        ep->b64_off = j->i;
        return jp_string(j, NULL);
    }
    return parse_ext(j, ep, key, val);
}

/* Turns the recorded data / data_base64 spans into the event's data. */
static int finish_data(jp_t *j, ev_parse_t *ep, hr_buf_t *val)
{
    hr_ce_event_t *ev = ep->ev;
    int rc;
    if (ep->has_data && ep->has_b64) {
        return hr__ce_fail(j->err, "data_base64",
                           "\"data\" and \"data_base64\" are mutually exclusive; send one");
    }
    if (ep->has_b64) {
        j->i = ep->b64_off;
        j->field = "data_base64";
        if ((rc = jp_string(j, val)) != 0) {
            return rc;
        }
        size_t n = 0, bad = 0;
        uint8_t *d = malloc(hr_base64_decoded_max(val->len) + 1);
        if (d == NULL) {
            return HR_ENOMEM;
        }
        if (hr_base64_decode((const char *)val->data, val->len, d, &n, &bad) != 0) {
            free(d);
            return hr__ce_fail(j->err, "data_base64",
                               "\"data_base64\" is not valid base64 (RFC 4648, standard "
                               "alphabet with '=' padding, no whitespace): error at character "
                               "%zu",
                               bad);
        }
        ev->data_kind = HR_CE_DATA_BINARY;
        ev->data = d;
        ev->data_len = n;
        return 0;
    }
    if (!ep->has_data) {
        return 0;
    }
    bool json_ct = ev->datacontenttype == NULL || hr_ce_content_type_is_json(ev->datacontenttype);
    if (!json_ct && j->s[ep->data_off] == '"') {
        j->i = ep->data_off;
        j->field = "data";
        if ((rc = jp_string(j, val)) != 0) {
            return rc;
        }
        ev->data_kind = HR_CE_DATA_TEXT;
        ev->data_len = val->len;
        ev->data = (uint8_t *)hr__ce_strndup((const char *)val->data, val->len);
        return ev->data ? 0 : HR_ENOMEM;
    }
    ev->data_kind = HR_CE_DATA_JSON;
    ev->data_len = ep->data_len;
    ev->data = (uint8_t *)hr__ce_strndup((const char *)j->s + ep->data_off, ep->data_len);
    return ev->data ? 0 : HR_ENOMEM;
}

/* Parses one event object at j->i ('{'). */
static int parse_event(jp_t *j, hr_ce_event_t **out, hr_buf_t *key, hr_buf_t *val)
{
    ev_parse_t ep = {0};
    int rc;
    if ((ep.ev = calloc(1, sizeof *ep.ev)) == NULL) {
        return HR_ENOMEM;
    }
    j->i++;
    skip_ws(j);
    if (j->i < j->len && j->s[j->i] == '}') {
        j->i++;
    } else {
        for (;;) {
            j->field = "body";
            if (j->i >= j->len || j->s[j->i] != '"') {
                rc = syntax(j, "a member name string was expected");
                goto fail;
            }
            if ((rc = jp_string(j, key)) != 0) {
                goto fail;
            }
            skip_ws(j);
            if (j->i >= j->len || j->s[j->i] != ':') {
                rc = syntax(j, "':' was expected after a member name");
                goto fail;
            }
            j->i++;
            skip_ws(j);
            if (j->i >= j->len) {
                rc = syntax(j, "a value was expected");
                goto fail;
            }
            /* error messages name the member when its name is printable */
            j->field =
                key->len < 64 && !memchr(key->data, 0, key->len) ? (const char *)key->data : "body";
            if ((rc = parse_member(j, &ep, key, val)) != 0) {
                goto fail;
            }
            j->field = "body";
            skip_ws(j);
            if (j->i < j->len && j->s[j->i] == ',') {
                j->i++;
                skip_ws(j);
                continue;
            }
            if (j->i < j->len && j->s[j->i] == '}') {
                j->i++;
                break;
            }
            rc = syntax(j, "',' or '}' was expected");
            goto fail;
        }
    }
    size_t end = j->i;
    hr_ce_event_t *ev = ep.ev;
    if (ev->n_exts > 1) {
        qsort(ev->exts, ev->n_exts, sizeof *ev->exts, hr__ce_ext_cmp);
        for (size_t k = 1; k < ev->n_exts; k++) {
            if (strcmp(ev->exts[k - 1].name, ev->exts[k].name) == 0) {
                rc = dup_member(j, ev->exts[k].name);
                goto fail;
            }
        }
    }
    /* drop the extensions that were null (unset) */
    size_t w = 0;
    for (size_t k = 0; k < ev->n_exts; k++) {
        if (ev->exts[k].value == NULL) {
            free(ev->exts[k].name);
        } else {
            ev->exts[w++] = ev->exts[k];
        }
    }
    ev->n_exts = w;
    if ((rc = finish_data(j, &ep, val)) != 0) {
        goto fail;
    }
    j->i = end;
    if ((rc = hr__ce_validate_attrs(ev, j->err)) != 0) {
        goto fail;
    }
    *out = ev;
    return 0;
fail:
    hr_ce_event_free(ep.ev);
    return rc;
}

int hr_ce_from_structured(const uint8_t *body, size_t len, hr_ce_event_t **out, hr_ce_error_t *err)
{
    jp_t j = {.s = body, .len = len, .i = 0, .err = err, .field = "body"};
    hr_buf_t key = HR_BUF_INIT, val = HR_BUF_INIT;
    int rc;
    *out = NULL;
    if (err != NULL) {
        err->index = -1;
    }
    skip_ws(&j);
    if (j.i >= j.len || j.s[j.i] != '{') {
        rc = j.i >= j.len
                 ? syntax(&j, "a JSON object was expected")
                 : hr__ce_fail(err, "body", "a structured CloudEvent must be a JSON object, not %s",
                               json_type_name(j.s[j.i]));
        goto end;
    }
    if ((rc = parse_event(&j, out, &key, &val)) != 0) {
        goto end;
    }
    skip_ws(&j);
    if (j.i != j.len) {
        hr_ce_event_free(*out);
        *out = NULL;
        j.field = "body";
        rc = syntax(&j, "unexpected content after the event object");
    }
end:
    hr_buf_free(&key);
    hr_buf_free(&val);
    return rc;
}

int hr_ce_from_batch(const uint8_t *body, size_t len, hr_ce_event_t ***out, size_t *n,
                     hr_ce_error_t *err)
{
    jp_t j = {.s = body, .len = len, .i = 0, .err = err, .field = "body"};
    hr_buf_t key = HR_BUF_INIT, val = HR_BUF_INIT;
    hr_ce_event_t **evs = NULL;
    size_t count = 0, cap = 0;
    long index = -1;
    int rc;
    *out = NULL;
    *n = 0;
    skip_ws(&j);
    if (j.i >= j.len || j.s[j.i] != '[') {
        rc = j.i >= j.len
                 ? syntax(&j, "a JSON array was expected")
                 : hr__ce_fail(err, "body", "a CloudEvents batch must be a JSON array, not %s",
                               json_type_name(j.s[j.i]));
        goto fail;
    }
    j.i++;
    skip_ws(&j);
    if (j.i < j.len && j.s[j.i] == ']') {
        j.i++;
    } else {
        for (;;) {
            index = (long)count;
            if (j.i >= j.len) {
                rc = syntax(&j, "an event object was expected");
                goto fail;
            }
            if (j.s[j.i] != '{') {
                rc = hr__ce_fail(err, "body",
                                 "batch element %ld must be a JSON object (a CloudEvent), "
                                 "not %s",
                                 index, json_type_name(j.s[j.i]));
                goto fail;
            }
            if (count == cap) {
                size_t ncap = cap ? cap * 2 : 16;
                hr_ce_event_t **p = realloc(evs, ncap * sizeof *p);
                if (p == NULL) {
                    rc = HR_ENOMEM;
                    goto fail;
                }
                evs = p;
                cap = ncap;
            }
            if ((rc = parse_event(&j, &evs[count], &key, &val)) != 0) {
                goto fail;
            }
            count++;
            j.field = "body";
            skip_ws(&j);
            if (j.i < j.len && j.s[j.i] == ',') {
                j.i++;
                skip_ws(&j);
                continue;
            }
            if (j.i < j.len && j.s[j.i] == ']') {
                j.i++;
                break;
            }
            index = -1;
            rc = syntax(&j, "',' or ']' was expected after a batch element");
            goto fail;
        }
    }
    index = -1;
    skip_ws(&j);
    if (j.i != j.len) {
        rc = syntax(&j, "unexpected content after the batch array");
        goto fail;
    }
    *out = evs ? evs : calloc(1, sizeof *evs);
    if (*out == NULL) {
        rc = HR_ENOMEM;
        goto fail;
    }
    *n = count;
    hr_buf_free(&key);
    hr_buf_free(&val);
    return 0;
fail:
    if (err != NULL && rc == HR_EINVAL) {
        err->index = index;
        if (index >= 0) {
            /* say which element, keeping the element's own sentence */
            if (strncmp(err->msg, "batch element", 13) != 0) {
                char msg[sizeof err->msg], prefix[40];
                size_t plen = (size_t)snprintf(prefix, sizeof prefix, "batch element %ld: ", index);
                size_t mlen = strnlen(err->msg, sizeof msg - 1 - plen);
                memcpy(msg, prefix, plen);
                memcpy(msg + plen, err->msg, mlen);
                msg[plen + mlen] = '\0';
                memcpy(err->msg, msg, sizeof msg);
            }
        }
    }
    hr_ce_events_free(evs, count);
    hr_buf_free(&key);
    hr_buf_free(&val);
    return rc;
}

/* ---- encoding ------------------------------------------------------------------------ */

/* Appends `"name":` preceded by a comma unless it is the first member. */
static int put_name(hr_buf_t *out, const char *name, bool *first)
{
    int rc;
    if (!*first && (rc = hr_buf_putc(out, ',')) != 0) {
        return rc;
    }
    *first = false;
    if ((rc = hr_buf_json_str(out, name, strlen(name))) != 0) {
        return rc;
    }
    return hr_buf_putc(out, ':');
}

static bool is_json_ws(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int hr_ce_to_json(const hr_ce_event_t *ev, hr_buf_t *out)
{
    size_t start = out->len;
    int rc;
    if ((rc = hr_buf_putc(out, '{')) != 0) {
        goto fail;
    }
    bool first = true;
    for (int a = 0; a < HR_CE_A_COUNT; a++) {
        const char *v = *hr__ce_attr_slot((hr_ce_event_t *)ev, a);
        if (v == NULL) {
            continue;
        }
        if ((rc = put_name(out, hr__ce_attr_names[a], &first)) != 0 ||
            (rc = hr_buf_json_str(out, v, strlen(v))) != 0) {
            goto fail;
        }
    }
    for (size_t k = 0; k < ev->n_exts; k++) {
        const hr_ce_ext_t *x = &ev->exts[k];
        if ((rc = put_name(out, x->name, &first)) != 0) {
            goto fail;
        }
        rc = x->kind == HR_CE_STRING ? hr_buf_json_str(out, x->value, strlen(x->value))
                                     : hr_buf_puts(out, x->value);
        if (rc != 0) {
            goto fail;
        }
    }
    const char *sep = first ? "" : ",";
    switch (ev->data_kind) {
    case HR_CE_DATA_NONE:
        break;
    case HR_CE_DATA_JSON: {
        /* whitespace around the value (kept byte for byte from a binary-mode body) is
         * insignificant in JSON and dropped here */
        size_t b = 0, e = ev->data_len;
        while (b < e && is_json_ws(ev->data[b])) {
            b++;
        }
        while (e > b && is_json_ws(ev->data[e - 1])) {
            e--;
        }
        if (b == e) {
            rc = HR_EINVAL;
            goto fail;
        }
        if ((rc = hr_buf_printf(out, "%s\"data\":", sep)) != 0 ||
            (rc = hr_buf_append(out, ev->data + b, e - b)) != 0) {
            goto fail;
        }
        break;
    }
    case HR_CE_DATA_TEXT:
        if (!hr_utf8_valid(ev->data, ev->data_len, NULL)) {
            rc = HR_EINVAL;
            goto fail;
        }
        if ((rc = hr_buf_printf(out, "%s\"data\":", sep)) != 0 ||
            (rc = hr_buf_json_str(out, (const char *)ev->data, ev->data_len)) != 0) {
            goto fail;
        }
        break;
    case HR_CE_DATA_BINARY:
        if ((rc = hr_buf_printf(out, "%s\"data_base64\":\"", sep)) != 0 ||
            (rc = hr_base64_encode(out, ev->data, ev->data_len)) != 0 ||
            (rc = hr_buf_putc(out, '"')) != 0) {
            goto fail;
        }
        break;
    default:
        rc = HR_EINVAL;
        goto fail;
    }
    if ((rc = hr_buf_putc(out, '}')) != 0) {
        goto fail;
    }
    return 0;
fail:
    out->len = start;
    if (out->data != NULL) {
        out->data[start] = '\0';
    }
    return rc;
}
