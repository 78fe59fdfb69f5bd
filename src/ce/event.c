/* SPDX-License-Identifier: MIT */
/*
 * The CloudEvents 1.0 event model: freeing, copying, comparing, attribute lookup, and
 * validation against the spec's type system (cloudevents_spec.md "Type System" and the
 * attribute constraints). The codecs (http.c, json.c, record.c) build events; everything
 * here is reentrant and keeps no global state. Called on HTTP worker threads and readers.
 */
#include "ce/event_int.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/rfc3339.h"
#include "util/utf8.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const hr__ce_attr_names[HR_CE_A_COUNT] = {
    "specversion", "id", "source", "type", "datacontenttype", "dataschema", "subject", "time",
};

char **hr__ce_attr_slot(hr_ce_event_t *ev, int idx)
{
    switch (idx) {
    case HR_CE_A_SPECVERSION:
        return &ev->specversion;
    case HR_CE_A_ID:
        return &ev->id;
    case HR_CE_A_SOURCE:
        return &ev->source;
    case HR_CE_A_TYPE:
        return &ev->type;
    case HR_CE_A_DATACONTENTTYPE:
        return &ev->datacontenttype;
    case HR_CE_A_DATASCHEMA:
        return &ev->dataschema;
    case HR_CE_A_SUBJECT:
        return &ev->subject;
    case HR_CE_A_TIME:
        return &ev->time;
    default:
        HR_ASSERT(!"attribute index out of range");
    }
}

int hr__ce_attr_index(const char *name, size_t len)
{
    for (int i = 0; i < HR_CE_A_COUNT; i++) {
        const char *n = hr__ce_attr_names[i];
        if (strlen(n) == len && memcmp(n, name, len) == 0) {
            return i;
        }
    }
    return -1;
}

int hr__ce_fail(hr_ce_error_t *err, const char *field, const char *fmt, ...)
{
    if (err == NULL) {
        return HR_EINVAL;
    }
    snprintf(err->field, sizeof err->field, "%s", field);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return HR_EINVAL;
}

void hr__ce_quote(char *dst, size_t cap, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0, limit = cap > 12 ? cap - 8 : 0; /* room for '...' + quote + NUL */
    if (cap < 3) {
        if (cap) {
            dst[0] = '\0';
        }
        return;
    }
    dst[o++] = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        size_t need = (c >= 0x20 && c != 0x7f && c != '"' && c != '\\') ? 1 : 4;
        if (o + need > limit) {
            memcpy(dst + o, "...", 3);
            o += 3;
            break;
        }
        if (need == 1) {
            dst[o++] = (char)c;
        } else {
            dst[o++] = '\\';
            dst[o++] = 'x';
            dst[o++] = hex[c >> 4];
            dst[o++] = hex[c & 15];
        }
    }
    dst[o++] = '"';
    dst[o] = '\0';
}

char *hr__ce_strndup(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p == NULL) {
        return NULL;
    }
    if (n) {
        memcpy(p, s, n);
    }
    p[n] = '\0';
    return p;
}

int hr__ce_ext_cmp(const void *a, const void *b)
{
    return strcmp(((const hr_ce_ext_t *)a)->name, ((const hr_ce_ext_t *)b)->name);
}

bool hr__ce_ext_name_ok(const char *name, size_t len)
{
    if (len == 0 || len > HR_CE_EXT_NAME_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) {
            return false;
        }
    }
    return true;
}

void hr_ce_event_free(hr_ce_event_t *ev)
{
    if (ev == NULL) {
        return;
    }
    for (int i = 0; i < HR_CE_A_COUNT; i++) {
        free(*hr__ce_attr_slot(ev, i));
    }
    for (size_t i = 0; i < ev->n_exts; i++) {
        free(ev->exts[i].name);
        free(ev->exts[i].value);
    }
    free(ev->exts);
    free(ev->trace_gen);
    if (ev->data_cache_free != NULL) {
        ev->data_cache_free(ev->data_cache);
    }
    free(ev->data);
    free(ev);
}

void hr_ce_events_free(hr_ce_event_t **evs, size_t n)
{
    if (evs == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        hr_ce_event_free(evs[i]);
    }
    free(evs);
}

const hr_ce_ext_t *hr_ce_find_ext(const hr_ce_event_t *ev, const char *name)
{
    size_t lo = 0, hi = ev->n_exts;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, ev->exts[mid].name);
        if (c == 0) {
            return &ev->exts[mid];
        }
        if (c < 0) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return NULL;
}

const char *hr_ce_get(const hr_ce_event_t *ev, const char *name)
{
    int idx = hr__ce_attr_index(name, strlen(name));
    if (idx >= 0) {
        return *hr__ce_attr_slot((hr_ce_event_t *)ev, idx);
    }
    const hr_ce_ext_t *x = hr_ce_find_ext(ev, name);
    return x ? x->value : NULL;
}

int hr_ce_event_clone(const hr_ce_event_t *ev, hr_ce_event_t **out)
{
    *out = NULL;
    hr_ce_event_t *c = calloc(1, sizeof *c);
    if (c == NULL) {
        return HR_ENOMEM;
    }
    for (int i = 0; i < HR_CE_A_COUNT; i++) {
        const char *v = *hr__ce_attr_slot((hr_ce_event_t *)ev, i);
        if (v != NULL && (*hr__ce_attr_slot(c, i) = hr__ce_strndup(v, strlen(v))) == NULL) {
            goto nomem;
        }
    }
    if (ev->n_exts) {
        if ((c->exts = calloc(ev->n_exts, sizeof *c->exts)) == NULL) {
            goto nomem;
        }
        for (size_t i = 0; i < ev->n_exts; i++) {
            hr_ce_ext_t *x = &c->exts[c->n_exts++];
            x->kind = ev->exts[i].kind;
            x->name = hr__ce_strndup(ev->exts[i].name, strlen(ev->exts[i].name));
            x->value = hr__ce_strndup(ev->exts[i].value, strlen(ev->exts[i].value));
            if (x->name == NULL || x->value == NULL) {
                goto nomem;
            }
        }
    }
    if (ev->trace_gen != NULL &&
        (c->trace_gen = hr__ce_strndup(ev->trace_gen, strlen(ev->trace_gen))) == NULL) {
        goto nomem;
    }
    c->data_kind = ev->data_kind;
    if (ev->data != NULL) {
        if ((c->data = malloc(ev->data_len ? ev->data_len : 1)) == NULL) {
            goto nomem;
        }
        memcpy(c->data, ev->data, ev->data_len);
        c->data_len = ev->data_len;
    }
    *out = c;
    return 0;
nomem:
    hr_ce_event_free(c);
    return HR_ENOMEM;
}

static bool str_eq(const char *a, const char *b)
{
    if (a == NULL || b == NULL) {
        return a == b;
    }
    return strcmp(a, b) == 0;
}

int hr_ce_event_equal(const hr_ce_event_t *a, const hr_ce_event_t *b)
{
    for (int i = 0; i < HR_CE_A_COUNT; i++) {
        if (!str_eq(*hr__ce_attr_slot((hr_ce_event_t *)a, i),
                    *hr__ce_attr_slot((hr_ce_event_t *)b, i))) {
            return 0;
        }
    }
    if (a->n_exts != b->n_exts || a->data_kind != b->data_kind || a->data_len != b->data_len ||
        !str_eq(a->trace_gen, b->trace_gen)) {
        return 0;
    }
    for (size_t i = 0; i < a->n_exts; i++) {
        if (a->exts[i].kind != b->exts[i].kind || !str_eq(a->exts[i].name, b->exts[i].name) ||
            !str_eq(a->exts[i].value, b->exts[i].value)) {
            return 0;
        }
    }
    return a->data_len == 0 || memcmp(a->data, b->data, a->data_len) == 0;
}

int hr_ce_set_ext(hr_ce_event_t *ev, const char *name, const char *value, hr_ce_kind_t kind)
{
    char *v = hr__ce_strndup(value, strlen(value));
    if (v == NULL) {
        return HR_ENOMEM;
    }
    size_t pos = 0;
    while (pos < ev->n_exts && strcmp(ev->exts[pos].name, name) < 0) {
        pos++;
    }
    if (pos < ev->n_exts && strcmp(ev->exts[pos].name, name) == 0) {
        free(ev->exts[pos].value);
        ev->exts[pos].value = v;
        ev->exts[pos].kind = kind;
        return 0;
    }
    char *n = hr__ce_strndup(name, strlen(name));
    hr_ce_ext_t *x = realloc(ev->exts, (ev->n_exts + 1) * sizeof *x);
    if (n == NULL || x == NULL) {
        free(n);
        free(v);
        if (x != NULL) {
            ev->exts = x;
        }
        return HR_ENOMEM;
    }
    ev->exts = x;
    memmove(&x[pos + 1], &x[pos], (ev->n_exts - pos) * sizeof *x);
    x[pos] = (hr_ce_ext_t){.name = n, .value = v, .kind = kind};
    ev->n_exts++;
    return 0;
}

/* ---- validation ---------------------------------------------------------------------- */

/* A String per the type system: valid UTF-8 without control characters (U+0000-U+001F,
 * U+007F-U+009F) or noncharacters (U+FDD0-U+FDEF and U+xxFFFE/U+xxFFFF). Surrogates cannot
 * occur in valid UTF-8. */
static int check_string(const char *field, const char *s, hr_ce_error_t *err)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t len = strlen(s), i = 0;
    char q[96];
    while (i < len) {
        uint32_t cp = p[i];
        size_t n = 1;
        if (cp >= 0x80 && (n = hr_utf8_decode(p + i, len - i, &cp)) == 0) {
            hr__ce_quote(q, sizeof q, s, len);
            return hr__ce_fail(err, field,
                               "attribute \"%s\" is not valid UTF-8 (byte offset %zu): %s", field,
                               i, q);
        }
        if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)) {
            hr__ce_quote(q, sizeof q, s, len);
            return hr__ce_fail(err, field,
                               "attribute \"%s\" contains control character U+%04X at byte "
                               "offset %zu: %s",
                               field, (unsigned)cp, i, q);
        }
        if ((cp >= 0xFDD0 && cp <= 0xFDEF) || (cp & 0xFFFE) == 0xFFFE) {
            hr__ce_quote(q, sizeof q, s, len);
            return hr__ce_fail(err, field,
                               "attribute \"%s\" contains the Unicode noncharacter U+%04X at "
                               "byte offset %zu: %s",
                               field, (unsigned)cp, i, q);
        }
        i += n;
    }
    return 0;
}

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_hex(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool is_unreserved(char c)
{
    return is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

static bool is_sub_delim(char c)
{
    return c != '\0' && strchr("!$&'()*+,;=", c) != NULL;
}

/* Checks s[i, end) against a character class given by `extra` (allowed besides unreserved,
 * sub-delims and percent-escapes). Returns the offset of the first bad byte, or `end`. */
static size_t scan_chars(const char *s, size_t i, size_t end, const char *extra)
{
    while (i < end) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= end || !is_hex(s[i + 1]) || !is_hex(s[i + 2])) {
                return i;
            }
            i += 3;
            continue;
        }
        if (!is_unreserved(c) && !is_sub_delim(c) && (c == '\0' || strchr(extra, c) == NULL)) {
            return i;
        }
        i++;
    }
    return end;
}

/* RFC 3986 URI-reference (§4.1); with `absolute`, a scheme is required (§4.3, but a fragment
 * is tolerated since schema URLs often carry one). Returns the offset of the first offending
 * byte, or SIZE_MAX when valid. */
static size_t check_uri(const char *s, bool absolute)
{
    size_t len = strlen(s), i = 0;
    size_t delim = strcspn(s, ":/?#");
    if (s[delim] == ':') {
        /* scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ); a colon in the first segment of
         * a relative reference is not allowed (path-noscheme), so this must be a scheme. */
        if (delim == 0 || !is_alpha(s[0])) {
            return 0;
        }
        for (size_t k = 1; k < delim; k++) {
            if (!is_alpha(s[k]) && !is_digit(s[k]) && s[k] != '+' && s[k] != '-' && s[k] != '.') {
                return k;
            }
        }
        i = delim + 1;
    } else if (absolute) {
        return 0;
    }
    if (s[i] == '/' && s[i + 1] == '/') {
        i += 2;
        size_t end = i + strcspn(s + i, "/?#");
        size_t at = i;
        /* userinfo@ */
        const char *a = memchr(s + i, '@', end - i);
        if (a != NULL) {
            size_t bad = scan_chars(s, i, (size_t)(a - s), ":");
            if (bad != (size_t)(a - s)) {
                return bad;
            }
            at = (size_t)(a - s) + 1;
        }
        size_t host_end = end;
        if (s[at] == '[') {
            const char *rb = memchr(s + at, ']', end - at);
            if (rb == NULL) {
                return at;
            }
            for (size_t k = at + 1; k < (size_t)(rb - s); k++) {
                if (!is_hex(s[k]) && s[k] != ':' && s[k] != '.' && !is_unreserved(s[k]) &&
                    !is_sub_delim(s[k])) {
                    return k;
                }
            }
            host_end = (size_t)(rb - s) + 1;
            if (host_end < end && s[host_end] != ':') {
                return host_end;
            }
        } else {
            const char *colon = memchr(s + at, ':', end - at);
            if (colon != NULL) {
                host_end = (size_t)(colon - s);
            }
            size_t bad = scan_chars(s, at, host_end, "");
            if (bad != host_end) {
                return bad;
            }
        }
        if (host_end < end) { /* ":" port */
            for (size_t k = host_end + 1; k < end; k++) {
                if (!is_digit(s[k])) {
                    return k;
                }
            }
        }
        i = end;
    }
    /* path: pchars and "/" */
    size_t end = i + strcspn(s + i, "?#");
    size_t bad = scan_chars(s, i, end, ":@/");
    if (bad != end) {
        return bad;
    }
    i = end;
    if (s[i] == '?') {
        end = i + 1 + strcspn(s + i + 1, "#");
        bad = scan_chars(s, i + 1, end, ":@/?");
        if (bad != end) {
            return bad;
        }
        i = end;
    }
    if (s[i] == '#') {
        bad = scan_chars(s, i + 1, len, ":@/?");
        if (bad != len) {
            return bad;
        }
    }
    return SIZE_MAX;
}

static bool is_tchar(char c)
{
    return is_alpha(c) || is_digit(c) || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* RFC 2045/7231 media type: token "/" token, then parameters in printable ASCII. */
static bool media_type_ok(const char *s)
{
    size_t i = 0;
    while (is_tchar(s[i])) {
        i++;
    }
    if (i == 0 || s[i] != '/') {
        return false;
    }
    size_t j = ++i;
    while (is_tchar(s[i])) {
        i++;
    }
    if (i == j) {
        return false;
    }
    for (; s[i]; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c > 0x7E) {
            return false;
        }
    }
    return true;
}

/* Canonical Integer text: -?(0|[1-9][0-9]*) within int32, and not "-0". */
static bool int_text_ok(const char *s)
{
    const char *p = s;
    if (*p == '-') {
        p++;
    }
    if (!is_digit(*p) || (p[0] == '0' && p[1] != '\0') || (s[0] == '-' && p[0] == '0')) {
        return false;
    }
    long long v = 0;
    size_t n = 0;
    for (; *p; p++, n++) {
        if (!is_digit(*p) || n >= 10) {
            return false;
        }
        v = v * 10 + (*p - '0');
    }
    return s[0] == '-' ? v <= 2147483648LL : v <= 2147483647LL;
}

static int check_required(const char *name, const char *v, hr_ce_error_t *err)
{
    if (v == NULL) {
        return hr__ce_fail(err, name, "required attribute \"%s\" is missing", name);
    }
    if (v[0] == '\0') {
        return hr__ce_fail(err, name, "attribute \"%s\" must be a non-empty string", name);
    }
    return check_string(name, v, err);
}

int hr__ce_validate_attrs(const hr_ce_event_t *ev, hr_ce_error_t *err)
{
    char q[96];
    int rc;
    /* specversion first: with another version the other rules may not apply. */
    if ((rc = check_required("specversion", ev->specversion, err)) != 0) {
        return rc;
    }
    if (strcmp(ev->specversion, "1.0") != 0) {
        hr__ce_quote(q, sizeof q, ev->specversion, strlen(ev->specversion));
        return hr__ce_fail(err, "specversion",
                           "attribute \"specversion\" must be \"1.0\" (the only supported "
                           "CloudEvents version), got %s",
                           q);
    }
    if ((rc = check_required("id", ev->id, err)) != 0 ||
        (rc = check_required("source", ev->source, err)) != 0 ||
        (rc = check_required("type", ev->type, err)) != 0) {
        return rc;
    }
    size_t bad = check_uri(ev->source, false);
    if (bad != SIZE_MAX) {
        hr__ce_quote(q, sizeof q, ev->source, strlen(ev->source));
        return hr__ce_fail(err, "source",
                           "attribute \"source\" is not a URI-reference (RFC 3986): invalid "
                           "character or escape at byte offset %zu in %s",
                           bad, q);
    }
    if (ev->datacontenttype != NULL) {
        if ((rc = check_string("datacontenttype", ev->datacontenttype, err)) != 0) {
            return rc;
        }
        if (!media_type_ok(ev->datacontenttype)) {
            hr__ce_quote(q, sizeof q, ev->datacontenttype, strlen(ev->datacontenttype));
            return hr__ce_fail(err, "datacontenttype",
                               "attribute \"datacontenttype\" is not a media type like "
                               "\"application/json\" (RFC 2046): %s",
                               q);
        }
    }
    if (ev->dataschema != NULL) {
        if ((rc = check_required("dataschema", ev->dataschema, err)) != 0) {
            return rc;
        }
        bad = check_uri(ev->dataschema, true);
        if (bad != SIZE_MAX) {
            hr__ce_quote(q, sizeof q, ev->dataschema, strlen(ev->dataschema));
            return hr__ce_fail(err, "dataschema",
                               "attribute \"dataschema\" is not an absolute URI with a scheme "
                               "(RFC 3986): invalid at byte offset %zu in %s",
                               bad, q);
        }
    }
    if (ev->subject != NULL && (rc = check_required("subject", ev->subject, err)) != 0) {
        return rc;
    }
    if (ev->time != NULL) {
        if ((rc = check_required("time", ev->time, err)) != 0) {
            return rc;
        }
        if (hr_rfc3339_check(ev->time, strlen(ev->time)) != 0) {
            hr__ce_quote(q, sizeof q, ev->time, strlen(ev->time));
            return hr__ce_fail(err, "time",
                               "attribute \"time\" is not an RFC 3339 timestamp like "
                               "\"2018-04-05T17:31:00Z\": %s",
                               q);
        }
    }
    for (size_t i = 0; i < ev->n_exts; i++) {
        const hr_ce_ext_t *x = &ev->exts[i];
        size_t nlen = strlen(x->name);
        if (!hr__ce_ext_name_ok(x->name, nlen)) {
            hr__ce_quote(q, sizeof q, x->name, nlen);
            return hr__ce_fail(err, x->name,
                               "%s is not a valid attribute name: names must consist of "
                               "1 to %d lower-case letters a-z and digits 0-9",
                               q, HR_CE_EXT_NAME_MAX);
        }
        if (hr__ce_attr_index(x->name, nlen) >= 0 || strcmp(x->name, "data") == 0) {
            return hr__ce_fail(err, x->name,
                               "\"%s\" is a reserved name and cannot be used as an extension "
                               "attribute",
                               x->name);
        }
        if (i > 0 && strcmp(ev->exts[i - 1].name, x->name) >= 0) {
            return hr__ce_fail(err, x->name,
                               "attribute \"%s\" appears more than once (or extensions are "
                               "not sorted)",
                               x->name);
        }
        if (x->value == NULL) {
            return hr__ce_fail(err, x->name, "attribute \"%s\" has no value", x->name);
        }
        switch (x->kind) {
        case HR_CE_STRING:
            if ((rc = check_string(x->name, x->value, err)) != 0) {
                return rc;
            }
            break;
        case HR_CE_INT:
            if (!int_text_ok(x->value)) {
                hr__ce_quote(q, sizeof q, x->value, strlen(x->value));
                return hr__ce_fail(err, x->name,
                                   "attribute \"%s\" is not an Integer in the 32-bit range: %s",
                                   x->name, q);
            }
            break;
        case HR_CE_BOOL:
            if (strcmp(x->value, "true") != 0 && strcmp(x->value, "false") != 0) {
                return hr__ce_fail(err, x->name, "attribute \"%s\" is not a Boolean", x->name);
            }
            break;
        default:
            return hr__ce_fail(err, x->name, "attribute \"%s\" has an unknown value kind", x->name);
        }
    }
    return 0;
}

int hr_ce_validate(const hr_ce_event_t *ev, hr_ce_error_t *err)
{
    if (err != NULL) {
        err->index = -1;
    }
    int rc = hr__ce_validate_attrs(ev, err);
    if (rc != 0) {
        return rc;
    }
    switch (ev->data_kind) {
    case HR_CE_DATA_NONE:
        if (ev->data != NULL || ev->data_len != 0) {
            return hr__ce_fail(err, "data", "the event has no data kind but carries data");
        }
        return 0;
    case HR_CE_DATA_JSON:
        if (ev->data == NULL || !hr__ce_json_valid(ev->data, ev->data_len)) {
            return hr__ce_fail(err, "data", "\"data\" is not one valid JSON value");
        }
        return 0;
    case HR_CE_DATA_TEXT:
        if (ev->data_len && (ev->data == NULL || !hr_utf8_valid(ev->data, ev->data_len, NULL))) {
            return hr__ce_fail(err, "data", "text \"data\" is not valid UTF-8");
        }
        return 0;
    case HR_CE_DATA_BINARY:
        if (ev->data_len && ev->data == NULL) {
            return hr__ce_fail(err, "data", "\"data\" is missing its bytes");
        }
        return 0;
    default:
        return hr__ce_fail(err, "data", "unknown data kind %d", (int)ev->data_kind);
    }
}
