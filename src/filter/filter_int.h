/* SPDX-License-Identifier: MIT */
/*
 * The interface between the filter compiler (filter.c) and the dialects (dialects.c, and later
 * cesql.c and pattern.c). A compiled filter is a tree of hr_filter_node_t; each node belongs to
 * one dialect, which compiles it from JSON, evaluates it and frees its state. Adding a dialect
 * means writing those functions and adding one row to the table in filter.c.
 *
 * Compiling is single-threaded per filter (one hr_filter_cc_t per call); nodes are immutable
 * once compiled, so match and required_exact must not write to them.
 */
#ifndef HR_FILTER_FILTER_INT_H
#define HR_FILTER_FILTER_INT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "ce/event.h"
#include "filter/filter.h"

typedef struct hr_filter_node hr_filter_node_t;
typedef struct hr_filter_cc hr_filter_cc_t;

typedef struct hr_filter_dialect {
    /* The dialect key in a filter object, e.g. "exact". */
    const char *name;
    /* Compiles `value` (the JSON under the dialect key; borrowed) into `node`, whose
     * fn_dialect is already set. On failure returns HR_EINVAL (after hr__filter_fail) or
     * HR_ENOMEM and must leave nothing allocated in `node`. NULL: the dialect is reserved but
     * not supported yet, and documents using it are rejected. */
    int (*compile)(hr_filter_cc_t *cc, const json_t *value, hr_filter_node_t *node);
    /* Evaluates a compiled node. Pure, thread-safe, must not allocate. */
    bool (*match)(const hr_filter_node_t *node, const hr_ce_event_t *ev);
    /* Frees what compile allocated in `node` (not the node itself). */
    void (*destroy)(hr_filter_node_t *node);
    /* Optional (may be NULL): the value `attr` must equal for the node to match, or NULL
     * (see hr_filter_required_exact). Must be sound: never a value the node does not imply. */
    const char *(*required_exact)(const hr_filter_node_t *node, const char *attr);
} hr_filter_dialect_t;

/* One attribute condition of exact, prefix, suffix or the legacy form. */
typedef struct hr_filter_term {
    const char *ft_attr;  /* [a-z][a-z0-9]*, at most HR_FILTER_ATTR_MAX bytes */
    const char *ft_value; /* NUL-terminated, contains no NUL; "" only in the legacy form */
    size_t ft_value_len;
} hr_filter_term_t;

struct hr_filter_node {
    const hr_filter_dialect_t *fn_dialect;
    union {
        struct { /* exact, prefix, suffix, legacy: one allocation holding terms and strings */
            hr_filter_term_t *terms;
            size_t n;
        } fn_terms;
        struct { /* all, any, not (n == 1) */
            hr_filter_node_t **kids;
            size_t n;
        } fn_list;
        void *fn_state; /* private state of other dialects */
    } fn_u;
};

/* Compile context: where we are in the document, and the budgets. */
struct hr_filter_cc {
    hr_filter_error_t *cc_err; /* may be NULL */
    char cc_path[512];         /* longer than hr_filter_error_t.path, which gets "..." when cut */
    size_t cc_path_len;
    unsigned cc_depth;
    size_t cc_nodes;
};

/* Compiles one filter object (a JSON object with exactly one dialect key) at the current path
 * into a new node (*out; free with hr__filter_node_free). For composite dialects. */
int hr__filter_compile_node(hr_filter_cc_t *cc, const json_t *obj, hr_filter_node_t **out);

/* Frees a node and its subtree; NULL is a no-op. */
void hr__filter_node_free(hr_filter_node_t *node);

/* Path building: each push returns the previous length, to be passed to pop. Keys are
 * appended sanitized (see hr_filter_error_t). */
size_t hr__filter_path_key(hr_filter_cc_t *cc, const char *key, size_t len);
size_t hr__filter_path_index(hr_filter_cc_t *cc, size_t index);
void hr__filter_path_pop(hr_filter_cc_t *cc, size_t saved);

/* Records an error at the current path (printf-style message) and returns HR_EINVAL. */
int hr__filter_fail(hr_filter_cc_t *cc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Charges `n` units (filter objects or attribute conditions) to the node budget. Returns 0,
 * or HR_EINVAL (error recorded, nothing charged) when that would pass HR_FILTER_MAX_NODES. */
int hr__filter_charge(hr_filter_cc_t *cc, size_t n);

/* Writes `s` (len bytes) into dst as a double-quoted, sanitized excerpt of at most about 48
 * bytes for error messages. */
void hr__filter_quote(char *dst, size_t cap, const char *s, size_t len);

/* "an object", "a string", ... for messages about wrong JSON types. */
const char *hr__filter_json_kind(const json_t *v);

/* Builds an all node over the JSON array `arr` (path already pushed); used for the top-level
 * "filters" list, where an empty array is allowed. */
int hr__filter_list_build(hr_filter_cc_t *cc, const json_t *arr, bool allow_empty,
                          hr_filter_node_t *node);

/* The dialects of dialects.c. */
extern const hr_filter_dialect_t hr__filter_exact;
extern const hr_filter_dialect_t hr__filter_prefix;
extern const hr_filter_dialect_t hr__filter_suffix;
extern const hr_filter_dialect_t hr__filter_all;
extern const hr_filter_dialect_t hr__filter_any;
extern const hr_filter_dialect_t hr__filter_not;
/* CESQL (cesql.c): "cesql", and "sql" as the Subscriptions API names it. Content patterns
 * (pattern.c). A row whose compile is NULL is rejected as "not supported yet". */
extern const hr_filter_dialect_t hr__filter_cesql;
extern const hr_filter_dialect_t hr__filter_sql;
extern const hr_filter_dialect_t hr__filter_pattern;
/* The legacy {"attributes": {...}} form: never looked up by key, built by
 * hr_filter_compile_legacy. */
extern const hr_filter_dialect_t hr__filter_legacy;
/* Compiles the legacy "attributes" object into `node` (path already pushed). */
int hr__filter_legacy_build(hr_filter_cc_t *cc, const json_t *attrs, hr_filter_node_t *node);

#endif
