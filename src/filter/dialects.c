/* SPDX-License-Identifier: MIT */
/*
 * The Subscriptions API's required filter dialects (§3.2.4.1.1) and the legacy Knative
 * attributes form: compile from JSON, evaluate, free.
 *
 *   exact / prefix / suffix  {"attr": "value", ...}: every listed attribute is present and
 *                            equal to / starts with / ends with its value (bytes, case-sensitive)
 *   all / any                [filter, ...]: every / at least one nested filter matches
 *   not                      filter: the nested filter does not match
 *   legacy                   {"attr": "value" or ""}: exact, with "" meaning "present"
 *
 * Attribute values come from hr_ce_get, the canonical string form. Matching is pure and never
 * allocates; the compiled nodes are shared read-only between dispatcher threads. The path and
 * budget bookkeeping lives in filter.c.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "filter/filter_int.h"
#include "util/err.h"

#define EXAMPLE_FILTER "{\"exact\": {\"type\": \"com.example.x\"}}"

/* ---- attribute conditions: exact, prefix, suffix, legacy ---- */

static bool name_char_ok(char c, bool first)
{
    return (c >= 'a' && c <= 'z') || (!first && c >= '0' && c <= '9');
}

/* Checks an attribute name against ^[a-z][a-z0-9]*$ and the length limit. The path already
 * points at the key. */
static int check_name(hr_filter_cc_t *cc, const char *key, size_t len)
{
    char q[64];
    hr__filter_quote(q, sizeof q, key, len);
    if (len == 0) {
        return hr__filter_fail(cc, "Attribute names must not be empty; name a CloudEvents "
                                   "attribute such as \"type\" or \"source\".");
    }
    if (len > HR_FILTER_ATTR_MAX) {
        return hr__filter_fail(cc,
                               "Attribute name %s is too long: names have at most %d characters, "
                               "as no event attribute can be longer.",
                               q, HR_FILTER_ATTR_MAX);
    }
    bool ok = true, lowered_ok = true;
    for (size_t i = 0; i < len; i++) {
        char c = key[i], lc = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
        ok = ok && name_char_ok(c, i == 0);
        lowered_ok = lowered_ok && name_char_ok(lc, i == 0);
    }
    if (ok) {
        return 0;
    }
    if (lowered_ok) {
        char lower[HR_FILTER_ATTR_MAX + 1];
        for (size_t i = 0; i < len; i++) {
            lower[i] = (key[i] >= 'A' && key[i] <= 'Z') ? (char)(key[i] - 'A' + 'a') : key[i];
        }
        char lq[80];
        hr__filter_quote(lq, sizeof lq, lower, len);
        return hr__filter_fail(cc,
                               "Attribute name %s is invalid: attribute names are lower-case "
                               "(did you mean %s?).",
                               q, lq);
    }
    return hr__filter_fail(cc,
                           "Attribute name %s is invalid: it must match ^[a-z][a-z0-9]*$ (a "
                           "lower-case ASCII letter, then lower-case letters and digits).",
                           q);
}

/* Checks one value; `legacy` allows "" (present with any value). The path points at the key. */
static int check_value(hr_filter_cc_t *cc, const char *key, size_t key_len, const json_t *v,
                       bool legacy)
{
    char q[64];
    hr__filter_quote(q, sizeof q, key, key_len);
    if (!json_is_string(v)) {
        return hr__filter_fail(cc,
                               "The value of attribute %s must be a JSON string; got %s. Integer "
                               "and boolean extension values are written as strings, e.g. \"42\" "
                               "or \"true\".",
                               q, hr__filter_json_kind(v));
    }
    size_t len = json_string_length(v);
    if (len == 0 && !legacy) {
        return hr__filter_fail(cc,
                               "The value of attribute %s must not be an empty string "
                               "(Subscriptions API 3.2.4.1.1).",
                               q);
    }
    if (memchr(json_string_value(v), '\0', len) != NULL) {
        return hr__filter_fail(cc,
                               "The value of attribute %s contains the character U+0000, which "
                               "no CloudEvents attribute can contain.",
                               q);
    }
    return 0;
}

/* Compiles the JSON object `map` of attribute conditions into node->fn_terms: one allocation
 * holding the term array followed by the NUL-terminated names and values. */
static int terms_build(hr_filter_cc_t *cc, const json_t *map, bool legacy, hr_filter_node_t *node)
{
    const char *dname = node->fn_dialect->name;
    if (!json_is_object(map)) {
        if (legacy) {
            return hr__filter_fail(cc,
                                   "\"attributes\" must be a JSON object mapping attribute names "
                                   "to strings (\"\" for any value), e.g. {\"type\": "
                                   "\"com.example.x\", \"source\": \"\"}; got %s.",
                                   hr__filter_json_kind(map));
        }
        return hr__filter_fail(cc,
                               "The value of \"%s\" must be a JSON object mapping attribute names "
                               "to strings, e.g. {\"%s\": {\"type\": \"com.example.x\"}}; got %s.",
                               dname, dname, hr__filter_json_kind(map));
    }
    size_t n = json_object_size(map);
    if (n == 0) {
        if (legacy) {
            return 0; /* no conditions: matches everything */
        }
        return hr__filter_fail(cc,
                               "\"%s\" must name at least one attribute, e.g. {\"%s\": {\"type\": "
                               "\"com.example.x\"}}.",
                               dname, dname);
    }
    int rc = hr__filter_charge(cc, n);
    if (rc != 0) {
        return rc;
    }

    size_t bytes = n * sizeof(hr_filter_term_t);
    const char *key;
    size_t key_len;
    json_t *v;
    json_object_keylen_foreach((json_t *)map, key, key_len, v)
    {
        size_t saved = hr__filter_path_key(cc, key, key_len);
        rc = check_name(cc, key, key_len);
        rc = rc ? rc : check_value(cc, key, key_len, v, legacy);
        if (rc != 0) {
            return rc;
        }
        hr__filter_path_pop(cc, saved);
        bytes += key_len + 1 + json_string_length(v) + 1;
    }

    hr_filter_term_t *terms = malloc(bytes);
    if (terms == NULL) {
        return HR_ENOMEM;
    }
    char *strings = (char *)(terms + n);
    size_t i = 0;
    json_object_keylen_foreach((json_t *)map, key, key_len, v)
    {
        size_t vlen = json_string_length(v);
        terms[i].ft_attr = strings;
        memcpy(strings, key, key_len);
        strings[key_len] = '\0';
        strings += key_len + 1;
        terms[i].ft_value = strings;
        terms[i].ft_value_len = vlen;
        memcpy(strings, json_string_value(v), vlen);
        strings[vlen] = '\0';
        strings += vlen + 1;
        i++;
    }
    node->fn_u.fn_terms.terms = terms;
    node->fn_u.fn_terms.n = n;
    return 0;
}

static int terms_compile(hr_filter_cc_t *cc, const json_t *value, hr_filter_node_t *node)
{
    return terms_build(cc, value, false, node);
}

int hr__filter_legacy_build(hr_filter_cc_t *cc, const json_t *attrs, hr_filter_node_t *node)
{
    return terms_build(cc, attrs, true, node);
}

static void terms_destroy(hr_filter_node_t *node)
{
    free(node->fn_u.fn_terms.terms);
}

static bool exact_match(const hr_filter_node_t *node, const hr_ce_event_t *ev)
{
    for (size_t i = 0; i < node->fn_u.fn_terms.n; i++) {
        const hr_filter_term_t *t = &node->fn_u.fn_terms.terms[i];
        const char *v = hr_ce_get(ev, t->ft_attr);
        if (v == NULL || strcmp(v, t->ft_value) != 0) {
            return false;
        }
    }
    return true;
}

static bool prefix_match(const hr_filter_node_t *node, const hr_ce_event_t *ev)
{
    for (size_t i = 0; i < node->fn_u.fn_terms.n; i++) {
        const hr_filter_term_t *t = &node->fn_u.fn_terms.terms[i];
        const char *v = hr_ce_get(ev, t->ft_attr);
        /* strncmp stops at v's NUL, so a shorter value is a mismatch, not an over-read. */
        if (v == NULL || strncmp(v, t->ft_value, t->ft_value_len) != 0) {
            return false;
        }
    }
    return true;
}

static bool suffix_match(const hr_filter_node_t *node, const hr_ce_event_t *ev)
{
    for (size_t i = 0; i < node->fn_u.fn_terms.n; i++) {
        const hr_filter_term_t *t = &node->fn_u.fn_terms.terms[i];
        const char *v = hr_ce_get(ev, t->ft_attr);
        if (v == NULL) {
            return false;
        }
        size_t vlen = strlen(v);
        if (vlen < t->ft_value_len ||
            memcmp(v + vlen - t->ft_value_len, t->ft_value, t->ft_value_len) != 0) {
            return false;
        }
    }
    return true;
}

/* Legacy: "" requires presence only. */
static bool legacy_match(const hr_filter_node_t *node, const hr_ce_event_t *ev)
{
    for (size_t i = 0; i < node->fn_u.fn_terms.n; i++) {
        const hr_filter_term_t *t = &node->fn_u.fn_terms.terms[i];
        const char *v = hr_ce_get(ev, t->ft_attr);
        if (v == NULL || (t->ft_value_len != 0 && strcmp(v, t->ft_value) != 0)) {
            return false;
        }
    }
    return true;
}

/* Exact and legacy: the value of a term on `attr`; legacy "" implies no value. */
static const char *terms_required(const hr_filter_node_t *node, const char *attr)
{
    for (size_t i = 0; i < node->fn_u.fn_terms.n; i++) {
        const hr_filter_term_t *t = &node->fn_u.fn_terms.terms[i];
        if (t->ft_value_len != 0 && strcmp(t->ft_attr, attr) == 0) {
            return t->ft_value;
        }
    }
    return NULL;
}

/* ---- composites: all, any, not ---- */

static void list_destroy(hr_filter_node_t *node)
{
    for (size_t i = 0; i < node->fn_u.fn_list.n; i++) {
        hr__filter_node_free(node->fn_u.fn_list.kids[i]);
    }
    free(node->fn_u.fn_list.kids);
}

int hr__filter_list_build(hr_filter_cc_t *cc, const json_t *arr, bool allow_empty,
                          hr_filter_node_t *node)
{
    const char *dname = node->fn_dialect->name;
    if (!json_is_array(arr)) {
        return hr__filter_fail(cc,
                               "The value of \"%s\" must be a JSON array of filter objects, e.g. "
                               "{\"%s\": [" EXAMPLE_FILTER "]}; got %s.",
                               dname, dname, hr__filter_json_kind(arr));
    }
    size_t n = json_array_size(arr);
    if (n == 0) {
        if (allow_empty) {
            return 0;
        }
        return hr__filter_fail(cc,
                               "\"%s\" must contain at least one filter (Subscriptions API "
                               "3.2.4.1.1), e.g. {\"%s\": [" EXAMPLE_FILTER "]}.",
                               dname, dname);
    }
    if (n > HR_FILTER_MAX_NODES) {
        return hr__filter_charge(cc, n); /* fails with the "too large" message */
    }
    hr_filter_node_t **kids = calloc(n, sizeof *kids);
    if (kids == NULL) {
        return HR_ENOMEM;
    }
    node->fn_u.fn_list.kids = kids;
    for (size_t i = 0; i < n; i++) {
        size_t saved = hr__filter_path_index(cc, i);
        int rc = hr__filter_compile_node(cc, json_array_get(arr, i), &kids[i]);
        hr__filter_path_pop(cc, saved);
        if (rc != 0) {
            list_destroy(node);
            node->fn_u.fn_list.kids = NULL;
            node->fn_u.fn_list.n = 0;
            return rc;
        }
        node->fn_u.fn_list.n = i + 1;
    }
    return 0;
}

static int all_any_compile(hr_filter_cc_t *cc, const json_t *value, hr_filter_node_t *node)
{
    return hr__filter_list_build(cc, value, false, node);
}

static bool all_match(const hr_filter_node_t *node, const hr_ce_event_t *ev)
{
    for (size_t i = 0; i < node->fn_u.fn_list.n; i++) {
        const hr_filter_node_t *k = node->fn_u.fn_list.kids[i];
        if (!k->fn_dialect->match(k, ev)) {
            return false;
        }
    }
    return true;
}

static bool any_match(const hr_filter_node_t *node, const hr_ce_event_t *ev)
{
    for (size_t i = 0; i < node->fn_u.fn_list.n; i++) {
        const hr_filter_node_t *k = node->fn_u.fn_list.kids[i];
        if (k->fn_dialect->match(k, ev)) {
            return true;
        }
    }
    return false;
}

static const char *kid_required(const hr_filter_node_t *k, const char *attr)
{
    return k->fn_dialect->required_exact ? k->fn_dialect->required_exact(k, attr) : NULL;
}

/* all: any one nested requirement is a requirement of the whole. */
static const char *all_required(const hr_filter_node_t *node, const char *attr)
{
    for (size_t i = 0; i < node->fn_u.fn_list.n; i++) {
        const char *r = kid_required(node->fn_u.fn_list.kids[i], attr);
        if (r != NULL) {
            return r;
        }
    }
    return NULL;
}

/* any: only when every branch requires the same value. */
static const char *any_required(const hr_filter_node_t *node, const char *attr)
{
    const char *first = NULL;
    for (size_t i = 0; i < node->fn_u.fn_list.n; i++) {
        const char *r = kid_required(node->fn_u.fn_list.kids[i], attr);
        if (r == NULL || (first != NULL && strcmp(first, r) != 0)) {
            return NULL;
        }
        first = first ? first : r;
    }
    return first;
}

static int not_compile(hr_filter_cc_t *cc, const json_t *value, hr_filter_node_t *node)
{
    if (!json_is_object(value)) {
        return hr__filter_fail(
            cc,
            "The value of \"not\" must be one filter object, e.g. {\"not\": " EXAMPLE_FILTER
            "}; got %s.",
            hr__filter_json_kind(value));
    }
    hr_filter_node_t **kids = calloc(1, sizeof *kids);
    if (kids == NULL) {
        return HR_ENOMEM;
    }
    int rc = hr__filter_compile_node(cc, value, &kids[0]);
    if (rc != 0) {
        free(kids);
        return rc;
    }
    node->fn_u.fn_list.kids = kids;
    node->fn_u.fn_list.n = 1;
    return 0;
}

static bool not_match(const hr_filter_node_t *node, const hr_ce_event_t *ev)
{
    const hr_filter_node_t *k = node->fn_u.fn_list.kids[0];
    return !k->fn_dialect->match(k, ev);
}

const hr_filter_dialect_t hr__filter_exact = {"exact", terms_compile, exact_match, terms_destroy,
                                              terms_required};
const hr_filter_dialect_t hr__filter_prefix = {"prefix", terms_compile, prefix_match, terms_destroy,
                                               NULL};
const hr_filter_dialect_t hr__filter_suffix = {"suffix", terms_compile, suffix_match, terms_destroy,
                                               NULL};
const hr_filter_dialect_t hr__filter_all = {"all", all_any_compile, all_match, list_destroy,
                                            all_required};
const hr_filter_dialect_t hr__filter_any = {"any", all_any_compile, any_match, list_destroy,
                                            any_required};
const hr_filter_dialect_t hr__filter_not = {"not", not_compile, not_match, list_destroy, NULL};
const hr_filter_dialect_t hr__filter_legacy = {"attributes", NULL, legacy_match, terms_destroy,
                                               terms_required};
