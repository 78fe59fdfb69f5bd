/* SPDX-License-Identifier: MIT */
/*
 * The filter compiler's driver: the dialect table, the public API, and the error paths.
 *
 * A compiled filter is a tree of nodes (filter_int.h). hr_filter_compile builds an implicit
 * "all" root over the "filters" array; hr_filter_compile_legacy builds one legacy node. Each
 * filter object is dispatched on its single key through the dialect table below; the dialects
 * themselves live in dialects.c. Called by trigger creation and the filter test endpoint (any
 * thread); the result is immutable and shared by dispatcher threads.
 *
 * Decisions, with the texts they follow:
 *   1. One dialect key per filter object (Subscriptions API §3.2.4.1: `{ "dialect" : {...} }`);
 *      an object with none, several, an unknown or a not-yet-supported one is rejected
 *      (§3.2.4: "If a filter dialect is specified ... that is unsupported ... MUST be
 *      rejected").
 *   2. An absent or empty "filters" array matches everything (§3.2.4 "filters": "Absence of a
 *      filter or empty array implies a value of true"), but a nested "all" or "any" must hold at
 *      least one filter (§3.2.4.1.1 "there MUST be at least one filter expression in the
 *      array"; Knative's trigger validation rejects empty ones too).
 *   3. exact/prefix/suffix may list several attributes, all of which must hold (§3.2.4.1.1
 *      "MUST all exactly match", and its two-attribute examples). Knative's validation allows
 *      only one; Herald accepts the spec's wider form. Names and values must not be empty
 *      (§3.2.4.1.1 "MUST NOT be empty strings").
 *   4. Attribute names must match ^[a-z][a-z0-9]*$ (Knative's validAttributeName; CloudEvents
 *      names are [a-z0-9], and filter names are required to start with a letter) and be at
 *      most HR_FILTER_ATTR_MAX bytes: no event can carry a longer one, so such a filter could
 *      never match. Upper-case names are errors, not silently lowered.
 *   5. Values are compared byte for byte, case-sensitively, with the canonical string form
 *      (hr_ce_get). Both sides are valid UTF-8, so byte prefixes and suffixes always end on
 *      character boundaries; no Unicode normalisation is done. Values containing U+0000 are
 *      rejected, since no CloudEvents attribute can contain it.
 *   6. Legacy form: {"attributes": {name: value}}; "" means "present with any value" (Knative
 *      TriggerAnyFilter), a missing attribute fails. Other members of "filter" are rejected.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filter/filter.h"
#include "filter/filter_int.h"
#include "util/err.h"
#include "util/utf8.h"

struct hr_filter {
    hr_filter_node_t *f_root;
};

/* The dialect table: one row per key a filter object may have. */
static const hr_filter_dialect_t *const dialects[] = {
    &hr__filter_exact, &hr__filter_prefix, &hr__filter_suffix,  &hr__filter_all, &hr__filter_any,
    &hr__filter_not,   &hr__filter_cesql,  &hr__filter_pattern, &hr__filter_sql,
};

#define SUPPORTED_LIST "exact, prefix, suffix, all, any, not, cesql (or sql) or pattern"

static const hr_filter_dialect_t *find_dialect(const char *key, size_t len)
{
    for (size_t i = 0; i < sizeof dialects / sizeof dialects[0]; i++) {
        if (strlen(dialects[i]->name) == len && memcmp(dialects[i]->name, key, len) == 0) {
            return dialects[i];
        }
    }
    return NULL;
}

/* ---- error paths and messages ---- */

/* Appends s[0..len) to dst (capacity cap, currently *pos bytes, NUL-terminated), replacing
 * control characters and invalid UTF-8 with '?', and stopping before a character that does
 * not fit. Returns true when all of s was appended. */
static bool put_clean(char *dst, size_t cap, size_t *pos, const char *s, size_t len)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        size_t n = hr_utf8_decode(p + i, len - i, &cp);
        bool bad = n == 0 || cp < 0x20 || cp == 0x7f;
        size_t out_n = bad ? 1 : n;
        if (*pos + out_n >= cap) {
            break;
        }
        if (bad) {
            dst[(*pos)++] = '?';
        } else {
            memcpy(dst + *pos, p + i, n);
            *pos += n;
        }
        i += n ? n : 1;
    }
    dst[*pos] = '\0';
    return i == len;
}

void hr__filter_quote(char *dst, size_t cap, const char *s, size_t len)
{
    /* Room for the quotes and "..." besides the excerpt; long keys are cut at 48 bytes. */
    size_t pos = 0, limit = cap < 56 ? cap - 5 : 49;
    dst[pos++] = '"';
    dst[pos] = '\0';
    bool whole = put_clean(dst, limit, &pos, s, len);
    if (!whole) {
        memcpy(dst + pos, "...", 3);
        pos += 3;
    }
    dst[pos++] = '"';
    dst[pos] = '\0';
}

const char *hr__filter_json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
        return "true";
    case JSON_FALSE:
        return "false";
    default:
        return "null";
    }
}

size_t hr__filter_path_key(hr_filter_cc_t *cc, const char *key, size_t len)
{
    size_t saved = cc->cc_path_len;
    if (cc->cc_path_len + 1 < sizeof cc->cc_path) {
        cc->cc_path[cc->cc_path_len++] = '.';
        put_clean(cc->cc_path, sizeof cc->cc_path, &cc->cc_path_len, key, len);
    }
    return saved;
}

size_t hr__filter_path_index(hr_filter_cc_t *cc, size_t index)
{
    size_t saved = cc->cc_path_len;
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "[%zu]", index);
    put_clean(cc->cc_path, sizeof cc->cc_path, &cc->cc_path_len, tmp, (size_t)n);
    return saved;
}

void hr__filter_path_pop(hr_filter_cc_t *cc, size_t saved)
{
    cc->cc_path_len = saved;
    cc->cc_path[saved] = '\0';
}

/* Cuts a string that snprintf may have truncated back to a whole UTF-8 character. */
static void trim_utf8(char *s)
{
    size_t n = strlen(s), j = n;
    while (j > 0 && n - j < 4 && ((uint8_t)s[j - 1] & 0xC0) == 0x80) {
        j--;
    }
    if (j > 0 && ((uint8_t)s[j - 1] & 0x80) != 0) {
        uint32_t cp;
        j--;
        if (hr_utf8_decode((const uint8_t *)s + j, n - j, &cp) != n - j) {
            s[j] = '\0';
        }
    }
}

int hr__filter_fail(hr_filter_cc_t *cc, const char *fmt, ...)
{
    if (cc->cc_err != NULL) {
        char *path = cc->cc_err->path;
        if (cc->cc_path_len < sizeof cc->cc_err->path) {
            memcpy(path, cc->cc_path, cc->cc_path_len + 1);
        } else { /* keep the start, which locates the top-level filter */
            size_t keep = sizeof cc->cc_err->path - 4;
            memcpy(path, cc->cc_path, keep);
            path[keep] = '\0';
            trim_utf8(path);
            strcat(path, "...");
        }
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(cc->cc_err->msg, sizeof cc->cc_err->msg, fmt, ap);
        va_end(ap);
        trim_utf8(cc->cc_err->msg);
    }
    return HR_EINVAL;
}

int hr__filter_charge(hr_filter_cc_t *cc, size_t n)
{
    if (n > HR_FILTER_MAX_NODES - cc->cc_nodes) {
        return hr__filter_fail(cc,
                               "The filter is too large: at most %d filter expressions and "
                               "attribute conditions are allowed in one trigger.",
                               HR_FILTER_MAX_NODES);
    }
    cc->cc_nodes += n;
    return 0;
}

/* ---- compiling ---- */

int hr__filter_compile_node(hr_filter_cc_t *cc, const json_t *obj, hr_filter_node_t **out)
{
    *out = NULL;
    if (!json_is_object(obj)) {
        return hr__filter_fail(
            cc,
            "A filter must be a JSON object with exactly one dialect key (" SUPPORTED_LIST
            "), e.g. {\"exact\": {\"type\": \"com.example.x\"}}; got %s.",
            hr__filter_json_kind(obj));
    }
    size_t n_keys = json_object_size(obj);
    if (n_keys != 1) {
        if (n_keys == 0) {
            return hr__filter_fail(cc, "A filter must have exactly one dialect key (" SUPPORTED_LIST
                                       "); this object is empty.");
        }
        void *it = json_object_iter((json_t *)obj);
        char q1[64], q2[64];
        hr__filter_quote(q1, sizeof q1, json_object_iter_key(it), json_object_iter_key_len(it));
        it = json_object_iter_next((json_t *)obj, it);
        hr__filter_quote(q2, sizeof q2, json_object_iter_key(it), json_object_iter_key_len(it));
        return hr__filter_fail(cc,
                               "A filter must have exactly one dialect key, but this one has %zu "
                               "(%s, %s%s); combine conditions with {\"all\": [...]}.",
                               n_keys, q1, q2, n_keys > 2 ? ", ..." : "");
    }
    if (cc->cc_depth >= HR_FILTER_MAX_DEPTH) {
        return hr__filter_fail(cc,
                               "Filters are nested too deeply: at most %d levels of filter "
                               "objects inside all, any and not are allowed.",
                               HR_FILTER_MAX_DEPTH);
    }
    int rc = hr__filter_charge(cc, 1);
    if (rc != 0) {
        return rc;
    }

    void *it = json_object_iter((json_t *)obj);
    const char *key = json_object_iter_key(it);
    size_t key_len = json_object_iter_key_len(it);
    const json_t *value = json_object_iter_value(it);
    size_t saved = hr__filter_path_key(cc, key, key_len);
    const hr_filter_dialect_t *d = find_dialect(key, key_len);
    char q[64];
    if (d == NULL) {
        hr__filter_quote(q, sizeof q, key, key_len);
        rc = hr__filter_fail(cc, "Unknown filter dialect %s; expected one of " SUPPORTED_LIST ".",
                             q);
        goto end;
    }
    if (d->compile == NULL) {
        hr__filter_quote(q, sizeof q, key, key_len);
        rc = hr__filter_fail(
            cc, "The %s filter dialect is not supported yet; use " SUPPORTED_LIST ".", q);
        goto end;
    }
    hr_filter_node_t *node = calloc(1, sizeof *node);
    if (node == NULL) {
        rc = HR_ENOMEM;
        goto end;
    }
    node->fn_dialect = d;
    cc->cc_depth++;
    rc = d->compile(cc, value, node);
    cc->cc_depth--;
    if (rc != 0) {
        free(node);
        goto end;
    }
    *out = node;
end:
    hr__filter_path_pop(cc, saved);
    return rc;
}

void hr__filter_node_free(hr_filter_node_t *node)
{
    if (node == NULL) {
        return;
    }
    node->fn_dialect->destroy(node);
    free(node);
}

static void cc_init(hr_filter_cc_t *cc, hr_filter_error_t *err, const char *root)
{
    memset(cc, 0, sizeof *cc);
    cc->cc_err = err;
    cc->cc_path_len = strlen(root);
    memcpy(cc->cc_path, root, cc->cc_path_len + 1);
    if (err != NULL) {
        err->path[0] = '\0';
        err->msg[0] = '\0';
    }
}

/* Wraps a root node (taken) into a filter. */
static int finish(hr_filter_node_t *root, hr_filter_t **out)
{
    hr_filter_t *f = malloc(sizeof *f);
    if (f == NULL) {
        hr__filter_node_free(root);
        return HR_ENOMEM;
    }
    f->f_root = root;
    *out = f;
    return 0;
}

int hr_filter_compile(const json_t *filters, hr_filter_t **out, hr_filter_error_t *err)
{
    *out = NULL;
    hr_filter_cc_t cc;
    cc_init(&cc, err, "filters");
    if (json_is_null(filters)) {
        filters = NULL; /* "filters": null, as YAML writes an empty key: no filters */
    }
    if (filters != NULL && !json_is_array(filters)) {
        return hr__filter_fail(&cc,
                               "\"filters\" must be a JSON array of filter objects, e.g. "
                               "[{\"exact\": {\"type\": \"com.example.x\"}}]; got %s.",
                               hr__filter_json_kind(filters));
    }
    hr_filter_node_t *root = calloc(1, sizeof *root);
    if (root == NULL) {
        return HR_ENOMEM;
    }
    root->fn_dialect = &hr__filter_all;
    if (filters != NULL) {
        int rc = hr__filter_list_build(&cc, filters, true, root);
        if (rc != 0) {
            free(root);
            return rc;
        }
    }
    return finish(root, out);
}

int hr_filter_compile_legacy(const json_t *filter, hr_filter_t **out, hr_filter_error_t *err)
{
    *out = NULL;
    hr_filter_cc_t cc;
    cc_init(&cc, err, "filter");
    const json_t *attrs = NULL;
    if (filter != NULL && !json_is_null(filter)) {
        if (!json_is_object(filter)) {
            return hr__filter_fail(&cc,
                                   "\"filter\" must be a JSON object of the form {\"attributes\": "
                                   "{\"type\": \"com.example.x\"}}; got %s.",
                                   hr__filter_json_kind(filter));
        }
        const char *key;
        size_t key_len;
        json_t *v;
        json_object_keylen_foreach((json_t *)filter, key, key_len, v)
        {
            if (key_len == strlen("attributes") && memcmp(key, "attributes", key_len) == 0) {
                attrs = v;
                continue;
            }
            char q[64];
            hr__filter_quote(q, sizeof q, key, key_len);
            hr__filter_path_key(&cc, key, key_len);
            return hr__filter_fail(&cc,
                                   "Unknown member %s in \"filter\": the legacy form has only "
                                   "\"attributes\"; use \"filters\" for the " SUPPORTED_LIST
                                   " dialects.",
                                   q);
        }
    }
    hr_filter_node_t *root = calloc(1, sizeof *root);
    if (root == NULL) {
        return HR_ENOMEM;
    }
    root->fn_dialect = &hr__filter_legacy;
    if (attrs != NULL && !json_is_null(attrs)) {
        hr__filter_path_key(&cc, "attributes", strlen("attributes"));
        int rc = hr__filter_legacy_build(&cc, attrs, root);
        if (rc != 0) {
            free(root);
            return rc;
        }
    }
    return finish(root, out);
}

/* ---- evaluating ---- */

bool hr_filter_match(const hr_filter_t *f, const hr_ce_event_t *ev)
{
    return f->f_root->fn_dialect->match(f->f_root, ev);
}

const char *hr_filter_required_exact(const hr_filter_t *f, const char *attr)
{
    const hr_filter_node_t *root = f->f_root;
    return root->fn_dialect->required_exact ? root->fn_dialect->required_exact(root, attr) : NULL;
}

static const char *node_prefix(const hr_filter_node_t *n, const char *attr, int depth)
{
    if (depth > HR_FILTER_MAX_DEPTH) {
        return NULL;
    }
    if (n->fn_dialect == &hr__filter_prefix) {
        for (size_t i = 0; i < n->fn_u.fn_terms.n; i++) {
            if (strcmp(n->fn_u.fn_terms.terms[i].ft_attr, attr) == 0) {
                return n->fn_u.fn_terms.terms[i].ft_value;
            }
        }
        return NULL;
    }
    if (n->fn_dialect == &hr__filter_all) {
        /* every kid must hold, so any kid's requirement is the filter's */
        for (size_t i = 0; i < n->fn_u.fn_list.n; i++) {
            const char *p = node_prefix(n->fn_u.fn_list.kids[i], attr, depth + 1);
            if (p != NULL) {
                return p;
            }
        }
    }
    return NULL;
}

const char *hr_filter_required_prefix(const hr_filter_t *f, const char *attr)
{
    return node_prefix(f->f_root, attr, 0);
}

bool hr_filter_is_exact_only(const hr_filter_t *f, const char *attr)
{
    const hr_filter_node_t *n = f->f_root;
    if (n->fn_dialect == &hr__filter_all) {
        if (n->fn_u.fn_list.n != 1) {
            return false;
        }
        n = n->fn_u.fn_list.kids[0];
        if (n->fn_dialect != &hr__filter_exact) {
            return false;
        }
    } else if (n->fn_dialect != &hr__filter_legacy) {
        return false;
    }
    return n->fn_u.fn_terms.n == 1 && strcmp(n->fn_u.fn_terms.terms[0].ft_attr, attr) == 0 &&
           n->fn_u.fn_terms.terms[0].ft_value_len > 0;
}

void hr_filter_destroy(hr_filter_t *f)
{
    if (f == NULL) {
        return;
    }
    hr__filter_node_free(f->f_root);
    free(f);
}
