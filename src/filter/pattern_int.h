/* SPDX-License-Identifier: MIT */
/*
 * The compiled form of a content pattern, shared by the compiler (pattern.c) and the matcher
 * (pattern_match.c). A pattern is a tree of objects; each object ANDs its fields and its "$or"
 * groups; a field is either a leaf (a list of conditions, ORed) or a nested object. Everything is
 * immutable after compiling, so matching may run on any number of threads at once.
 */
#ifndef HR_FILTER_PATTERN_INT_H
#define HR_FILTER_PATTERN_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "filter/pattern.h"

/* Deepest nesting of pattern objects (nested fields and "$or" branches both count). */
#define HR_PATTERN_MAX_DEPTH 32
/* Arrays nested inside arrays in an event are flattened up to this depth; deeper elements
 * are ignored (bounds the matcher's recursion independently of jansson's parser limit). */
#define HR_PATTERN_MAX_ARRAY_DEPTH 32

typedef enum hr_pt_kind {
    HR_PT_EXACT_STR,   /* "x": a string equal byte for byte */
    HR_PT_EXACT_NUM,   /* 10: a number equal numerically */
    HR_PT_TRUE,        /* true */
    HR_PT_FALSE,       /* false */
    HR_PT_NULL,        /* null */
    HR_PT_PREFIX,      /* {"prefix": "x"} */
    HR_PT_SUFFIX,      /* {"suffix": "x"} */
    HR_PT_EIC,         /* {"equals-ignore-case": "x"}; pc_str holds the folded form */
    HR_PT_PREFIX_EIC,  /* {"prefix": {"equals-ignore-case": "x"}}; folded */
    HR_PT_SUFFIX_EIC,  /* {"suffix": {"equals-ignore-case": "x"}}; folded */
    HR_PT_WILDCARD,    /* {"wildcard": "a*b"}; pc_wild */
    HR_PT_NUMERIC,     /* {"numeric": [...]}; pc_range */
    HR_PT_CIDR,        /* {"cidr": "10.0.0.0/8"}; pc_cidr */
    HR_PT_EXISTS,      /* {"exists": true} */
    HR_PT_ABSENT,      /* {"exists": false} */
    HR_PT_ANYTHING_BUT /* {"anything-but": ...}: present and none of pc_but matches */
} hr_pt_kind_t;

typedef struct hr_pt_cond hr_pt_cond_t;

struct hr_pt_cond {
    hr_pt_kind_t pc_kind;
    union {
        struct { /* owned; NUL-terminated, may contain NUL */
            char *s;
            size_t len;
        } pc_str;
        struct {
            bool is_int; /* then i is exact; d always holds the value */
            long long i;
            double d;
        } pc_num;
        struct { /* lo < x < hi, with closed ends when *_open is false */
            double lo, hi;
            bool lo_open, hi_open;
        } pc_range;
        struct {
            int family; /* 4 or 6 */
            uint8_t addr[16];
            unsigned bits;
        } pc_cidr;
        struct {         /* segments between unescaped stars; n_seg >= 1 */
            char *buf;   /* the unescaped segments back to back; owned */
            size_t *seg; /* segment lengths; owned */
            size_t n_seg;
        } pc_wild;
        struct { /* positive conditions, none of which may match */
            hr_pt_cond_t *conds;
            size_t n;
        } pc_but;
    } pc_u;
};

typedef struct hr_pt_obj hr_pt_obj_t;

typedef struct hr_pt_field {
    char *pf_name; /* owned, NUL-terminated; pf_name_len bytes (may contain NUL) */
    size_t pf_name_len;
    hr_pt_cond_t *pf_conds; /* leaf: the conditions, ORed; NULL for a nested object */
    size_t pf_n;
    hr_pt_obj_t *pf_obj; /* nested pattern object, or NULL for a leaf */
} hr_pt_field_t;

typedef struct hr_pt_or {
    hr_pt_obj_t **po_branches; /* at least 2 */
    size_t po_n;
} hr_pt_or_t;

struct hr_pt_obj {
    hr_pt_field_t *po_fields;
    size_t po_nfields;
    hr_pt_or_t *po_ors;
    size_t po_nors;
};

struct hr_pattern {
    hr_pt_obj_t *p_root;
};

/* A leaf value from an event: a JSON scalar, or an attribute. */
typedef enum hr_pt_vtype {
    HR_PT_V_STR,
    HR_PT_V_NUM,
    HR_PT_V_TRUE,
    HR_PT_V_FALSE,
    HR_PT_V_NULL
} hr_pt_vtype_t;

typedef struct hr_pt_val {
    hr_pt_vtype_t type;
    const char *s; /* the string, or an extension's canonical text; NULL when not textual */
    size_t len;
    bool is_int;
    long long i;
    double d;
} hr_pt_val_t;

/* Writes the simple case folding of the UTF-8 string s[0..len) to out (capacity >= len; the
 * folded form is never longer) and returns its length. */
size_t hr__pattern_fold(const char *s, size_t len, char *out);

/* Parses "addr/bits" (IPv4 or IPv6) into c (pc_kind already set). Returns false when invalid. */
bool hr__pattern_cidr_parse(const char *s, size_t len, hr_pt_cond_t *c);

/* Does one condition hold for a present value? (HR_PT_ABSENT never does.) */
bool hr__pattern_cond_match(const hr_pt_cond_t *c, const hr_pt_val_t *v);

/* Does a leaf (conds, ORed) hold for a value? v NULL means the field is absent. */
bool hr__pattern_leaf_match_val(const hr_pt_cond_t *conds, size_t n, const hr_pt_val_t *v);

/* Does pattern object o hold for JSON value v (NULL: absent)? Arrays match element-wise with
 * array consistency; see pattern.c. */
bool hr__pattern_obj_match_json(const hr_pt_obj_t *o, const json_t *v);

/* Does a leaf hold for JSON value v (NULL: absent)? */
bool hr__pattern_leaf_match_json(const hr_pt_cond_t *conds, size_t n, const json_t *v);

#endif
