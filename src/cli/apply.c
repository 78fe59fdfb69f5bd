/* SPDX-License-Identifier: MIT */
/*
 * `herald apply -f FILE`: declarative buses and triggers, like `kubectl apply`. FILE (or stdin)
 * holds YAML or JSON documents, each one bus or trigger:
 *
 *     kind: Bus                          kind: Trigger
 *     name: orders                       metadata: {name: ship}     # Knative-like form:
 *     retention: {max_age: P7D}          spec:                      # the members are in spec
 *                                          bus: orders
 *                                          sink: http://127.0.0.1:9000/ship
 *
 * The members besides kind and name (or those of spec) are the document that PUT
 * /v1/buses/{name} or PUT /v1/triggers/{name} takes (docs/api.md). Input forms: a YAML stream
 * (documents separated by ---), a JSON object, or a JSON or YAML array of such objects.
 *
 * Buses are applied before triggers (a trigger needs its bus), each in file order. For each
 * object the current state is read first; the result line says `bus/orders created`,
 * `configured` or `unchanged`. An object whose members already equal the server's is not sent
 * at all. Otherwise it is PUT and "unchanged" still holds when the server's answer equals what
 * it had before: the server's answer is the normal form (PT60S and PT1M are the same). A bus
 * PUT is a merge (members not given keep their value); a trigger PUT replaces the whole
 * document, so a trigger member removed from the file goes back to its default.
 *
 * A document that fails is reported with the file, its number and the server's message, and
 * the others are still applied; the exit status is then nonzero. A file that does not parse is
 * a usage error and nothing is sent. Main thread only.
 */
#include "cli/cli.h"
#include "cli/client.h"
#include "util/alloc.h"
#include "util/buf.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

/* Deepest nesting of YAML collections accepted. */
#define YAML_MAX_DEPTH 64
/* Most JSON values one file may expand to (aliases count again each time they are used). */
#define YAML_MAX_NODES 1000000
/* How long a GET of the current state may stay silent. */
#define GET_IDLE_TIMEOUT_S 60

typedef struct apply_opts {
    const char *ap_file;
} apply_opts_t;

static const hr_cli_opt_t apply_opts[] = {
    {"filename", 'f', HR_CLI_OPT_STR, offsetof(apply_opts_t, ap_file), "FILE",
     "YAML or JSON file of buses and triggers (- for stdin)"},
    {NULL, 0, 0, 0, NULL, NULL},
};

static const hr_cli_cmd_t apply_cmd = {
    .name = "apply",
    .usage = "-f FILE",
    .summary =
        "Create or update the buses and triggers described in FILE (- for stdin): YAML\n"
        "documents separated by ---, a JSON object, or an array of them. Each has a kind\n"
        "(Bus or Trigger), a name, and the members of its API document, e.g.\n"
        "  kind: Trigger\n"
        "  name: ship\n"
        "  bus: orders\n"
        "  sink: http://127.0.0.1:9000/ship\n"
        "  filters: [{exact: {type: com.example.order.created}}]\n"
        "(or metadata: {name: ship} with the members under spec:). Buses are applied first.\n"
        "Prints `bus/NAME created|configured|unchanged` per object. A trigger is replaced as\n"
        "a whole: members left out of the file go back to their defaults. Plain YAML scalars\n"
        "become numbers, true/false and null (~) as in YAML 1.2; quote them to keep strings.",
    .opts = apply_opts,
    .min_args = 0,
    .max_args = 0,
};

/* ---- YAML to JSON ---- */

/* One open collection while a YAML document is being converted. */
typedef struct yaml_level {
    json_t *yl_value; /* the array or object being filled (owned by the builder) */
    char *yl_key;     /* mapping: the key waiting for its value, NULL when a key comes next */
    char *yl_anchor;  /* registered when the collection ends; owned */
} yaml_level_t;

typedef struct yaml_anchor {
    char *ya_name;
    json_t *ya_value; /* a reference */
    size_t ya_nodes;  /* values it expands to */
} yaml_anchor_t;

typedef struct yaml_builder {
    yaml_level_t yb_stack[YAML_MAX_DEPTH];
    size_t yb_depth;
    json_t *yb_root;
    yaml_anchor_t *yb_anchors;
    size_t yb_n_anchors;
    size_t yb_nodes;
    char yb_err[256]; /* set on failure */
} yaml_builder_t;

static size_t count_nodes(json_t *v, size_t cap)
{
    size_t n = 1;
    size_t i;
    json_t *item;
    const char *key;
    if (json_is_array(v)) {
        json_array_foreach(v, i, item)
        {
            n += count_nodes(item, cap);
            if (n > cap) {
                return n;
            }
        }
    } else if (json_is_object(v)) {
        json_object_foreach(v, key, item)
        {
            n += count_nodes(item, cap);
            if (n > cap) {
                return n;
            }
        }
    }
    return n;
}

static bool is_int_text(const char *s, int base)
{
    const char *digits = base == 16 ? "0123456789abcdefABCDEF" : base == 8 ? "01234567" : NULL;
    if (*s == '\0') {
        return false;
    }
    for (; *s; s++) {
        if (digits ? strchr(digits, *s) == NULL : (*s < '0' || *s > '9')) {
            return false;
        }
    }
    return true;
}

/* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?, the YAML 1.2 core schema float. */
static bool is_float_text(const char *s)
{
    size_t int_digits = 0, frac_digits = 0;
    if (*s == '-' || *s == '+') {
        s++;
    }
    while (*s >= '0' && *s <= '9') {
        s++, int_digits++;
    }
    if (*s == '.') {
        s++;
        while (*s >= '0' && *s <= '9') {
            s++, frac_digits++;
        }
    }
    if (int_digits + frac_digits == 0) {
        return false;
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '-' || *s == '+') {
            s++;
        }
        if (!(*s >= '0' && *s <= '9')) {
            return false;
        }
        while (*s >= '0' && *s <= '9') {
            s++;
        }
    }
    return *s == '\0';
}

/* An integer in JSON's range: [-+]?[0-9]+, 0x[0-9a-fA-F]+ or 0o[0-7]+; else NULL (the text
 * is then a float or a string). */
static json_t *int_value(const char *s)
{
    bool neg = *s == '-';
    const char *d = (*s == '-' || *s == '+') ? s + 1 : s;
    int base = 10;
    if (strncmp(s, "0x", 2) == 0 || strncmp(s, "0o", 2) == 0) {
        base = s[1] == 'x' ? 16 : 8; /* no sign before 0x and 0o in the core schema */
        d = s + 2;
    }
    if (!is_int_text(d, base)) {
        return NULL;
    }
    errno = 0;
    unsigned long long v = strtoull(d, NULL, base);
    unsigned long long max = (unsigned long long)INT64_MAX + (neg ? 1 : 0);
    if (errno != 0 || v > max) {
        return NULL;
    }
    return json_integer(neg ? (json_int_t)(0 - v) : (json_int_t)v);
}

/* A plain scalar resolved by the YAML 1.2 core schema: null, booleans, integers, floats;
 * anything else is a string. ".inf" and ".nan" stay strings (JSON has no such numbers). */
static json_t *plain_scalar(const char *s)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
    static const char *const trues[] = {"true", "True", "TRUE"};
    static const char *const falses[] = {"false", "False", "FALSE"};
    for (size_t i = 0; i < sizeof nulls / sizeof nulls[0]; i++) {
        if (strcmp(s, nulls[i]) == 0) {
            return json_null();
        }
    }
    for (size_t i = 0; i < 3; i++) {
        if (strcmp(s, trues[i]) == 0) {
            return json_true();
        }
        if (strcmp(s, falses[i]) == 0) {
            return json_false();
        }
    }
    json_t *v = int_value(s);
    if (v != NULL) {
        return v;
    }
    if (is_float_text(s)) {
        errno = 0;
        double d = strtod(s, NULL);
        if (errno == 0) {
            return json_real(d);
        }
    }
    return json_string(s);
}

static json_t *scalar_value(const yaml_event_t *ev)
{
    const char *s = (const char *)ev->data.scalar.value;
    const char *tag = (const char *)ev->data.scalar.tag;
    if (tag != NULL && strcmp(tag, YAML_STR_TAG) == 0) {
        return json_stringn(s, ev->data.scalar.length);
    }
    if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE && tag == NULL) {
        return json_stringn(s, ev->data.scalar.length);
    }
    if (strlen(s) != ev->data.scalar.length) {
        return json_stringn(s, ev->data.scalar.length); /* holds a NUL: not a number */
    }
    return plain_scalar(s);
}

static bool build_fail(yaml_builder_t *b, size_t line, const char *msg, const char *what)
{
    snprintf(b->yb_err, sizeof b->yb_err, "line %zu: %s%s%s", line, msg, what ? " " : "",
             what ? what : "");
    return false;
}

/* Adds a finished value (a reference, taken) to the open collection, or makes it the root. */
static bool add_value(yaml_builder_t *b, json_t *v, size_t line)
{
    if (v == NULL) {
        return build_fail(b, line, "out of memory", NULL);
    }
    if (b->yb_depth == 0) {
        b->yb_root = v;
        return true;
    }
    yaml_level_t *top = &b->yb_stack[b->yb_depth - 1];
    if (json_is_array(top->yl_value)) {
        json_array_append_new(top->yl_value, v);
        return true;
    }
    if (top->yl_key == NULL) {
        /* Only scalar keys are taken (handled in on_scalar); anything else lands here. */
        json_decref(v);
        return build_fail(b, line, "a mapping key must be a scalar", NULL);
    }
    if (json_object_get(top->yl_value, top->yl_key) != NULL) {
        char what[96];
        snprintf(what, sizeof what, "\"%.64s\"", top->yl_key);
        json_decref(v);
        return build_fail(b, line, "duplicate key", what);
    }
    json_object_set_new(top->yl_value, top->yl_key, v);
    free(top->yl_key);
    top->yl_key = NULL;
    return true;
}

static bool count_node(yaml_builder_t *b, size_t n, size_t line)
{
    b->yb_nodes += n;
    if (b->yb_nodes > YAML_MAX_NODES) {
        return build_fail(b, line, "the document expands to too many values (aliases?)", NULL);
    }
    return true;
}

static bool add_anchor(yaml_builder_t *b, const char *name, json_t *v)
{
    if (name == NULL) {
        return true;
    }
    b->yb_anchors = hr_xrealloc(b->yb_anchors, (b->yb_n_anchors + 1) * sizeof *b->yb_anchors);
    yaml_anchor_t *a = &b->yb_anchors[b->yb_n_anchors++];
    a->ya_name = hr_xstrdup(name);
    a->ya_value = json_incref(v);
    a->ya_nodes = count_nodes(v, YAML_MAX_NODES);
    return true;
}

static bool on_scalar(yaml_builder_t *b, const yaml_event_t *ev, size_t line)
{
    if (b->yb_depth > 0) {
        yaml_level_t *top = &b->yb_stack[b->yb_depth - 1];
        if (json_is_object(top->yl_value) && top->yl_key == NULL) {
            /* A key: its text as written, whatever type it would have as a value. */
            if (strlen((const char *)ev->data.scalar.value) != ev->data.scalar.length) {
                return build_fail(b, line, "a mapping key holds a NUL character", NULL);
            }
            top->yl_key = hr_xstrdup((const char *)ev->data.scalar.value);
            return true;
        }
    }
    json_t *v = scalar_value(ev);
    if (!count_node(b, 1, line) ||
        (ev->data.scalar.anchor && !add_anchor(b, (const char *)ev->data.scalar.anchor, v))) {
        json_decref(v);
        return false;
    }
    return add_value(b, v, line);
}

static bool on_alias(yaml_builder_t *b, const yaml_event_t *ev, size_t line)
{
    const char *name = (const char *)ev->data.alias.anchor;
    for (size_t i = b->yb_n_anchors; i-- > 0;) {
        yaml_anchor_t *a = &b->yb_anchors[i];
        if (strcmp(a->ya_name, name) == 0) {
            if (!count_node(b, a->ya_nodes, line)) {
                return false;
            }
            json_t *copy = json_deep_copy(a->ya_value);
            if (b->yb_depth > 0 && json_is_object(b->yb_stack[b->yb_depth - 1].yl_value) &&
                b->yb_stack[b->yb_depth - 1].yl_key == NULL) {
                if (!json_is_string(copy)) {
                    json_decref(copy);
                    return build_fail(b, line, "a mapping key must be a scalar", NULL);
                }
                b->yb_stack[b->yb_depth - 1].yl_key = hr_xstrdup(json_string_value(copy));
                json_decref(copy);
                return true;
            }
            return add_value(b, copy, line);
        }
    }
    char what[160];
    snprintf(what, sizeof what, "*%.64s (an alias must follow its anchor's whole value)", name);
    return build_fail(b, line, "unknown alias", what);
}

/* Opens a collection `v` (taken). */
static bool on_start(yaml_builder_t *b, json_t *v, const yaml_char_t *anchor, size_t line)
{
    if (b->yb_depth > 0) {
        yaml_level_t *top = &b->yb_stack[b->yb_depth - 1];
        if (json_is_object(top->yl_value) && top->yl_key == NULL) {
            json_decref(v);
            return build_fail(b, line, "a mapping key must be a scalar", NULL);
        }
    }
    if (b->yb_depth == YAML_MAX_DEPTH) {
        json_decref(v);
        return build_fail(b, line, "collections nest too deeply", NULL);
    }
    if (!count_node(b, 1, line)) {
        json_decref(v);
        return false;
    }
    yaml_level_t *l = &b->yb_stack[b->yb_depth++];
    *l = (yaml_level_t){v, NULL, anchor ? hr_xstrdup((const char *)anchor) : NULL};
    return true;
}

static bool on_end(yaml_builder_t *b, size_t line)
{
    yaml_level_t *l = &b->yb_stack[--b->yb_depth];
    json_t *v = l->yl_value;
    char *anchor = l->yl_anchor;
    free(l->yl_key); /* only set when a key had no value, which the parser does not allow */
    *l = (yaml_level_t){0};
    bool ok = add_anchor(b, anchor, v);
    free(anchor);
    return ok && add_value(b, v, line);
}

static void builder_reset(yaml_builder_t *b)
{
    while (b->yb_depth > 0) {
        yaml_level_t *l = &b->yb_stack[--b->yb_depth];
        json_decref(l->yl_value);
        free(l->yl_key);
        free(l->yl_anchor);
    }
    for (size_t i = 0; i < b->yb_n_anchors; i++) {
        free(b->yb_anchors[i].ya_name);
        json_decref(b->yb_anchors[i].ya_value);
    }
    free(b->yb_anchors);
    b->yb_anchors = NULL;
    b->yb_n_anchors = 0;
    json_decref(b->yb_root);
    b->yb_root = NULL;
}

/* Feeds one parser event to the builder. */
static bool on_event(yaml_builder_t *b, const yaml_event_t *ev)
{
    size_t line = ev->start_mark.line + 1;
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        return on_scalar(b, ev, line);
    case YAML_ALIAS_EVENT:
        return on_alias(b, ev, line);
    case YAML_SEQUENCE_START_EVENT:
        return on_start(b, json_array(), ev->data.sequence_start.anchor, line);
    case YAML_MAPPING_START_EVENT:
        return on_start(b, json_object(), ev->data.mapping_start.anchor, line);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        return on_end(b, line);
    default:
        return true;
    }
}

/* ---- Documents ---- */

typedef enum apply_kind { KIND_BUS, KIND_TRIGGER } apply_kind_t;

/* One object of the file. */
typedef struct apply_doc {
    size_t ad_number; /* 1-based, in file order */
    size_t ad_line;   /* 1-based line where its YAML document starts; 0 for JSON */
    json_t *ad_raw;   /* the document as written; owned */
    bool ad_valid;    /* kind and name were found */
    apply_kind_t ad_kind;
    const char *ad_name; /* borrowed from ad_raw */
    json_t *ad_body;     /* the members to PUT; owned */
} apply_doc_t;

typedef struct apply_docs {
    apply_doc_t *ds_items;
    size_t ds_n;
} apply_docs_t;

static void docs_free(apply_docs_t *ds)
{
    for (size_t i = 0; i < ds->ds_n; i++) {
        json_decref(ds->ds_items[i].ad_raw);
        json_decref(ds->ds_items[i].ad_body);
    }
    free(ds->ds_items);
    ds->ds_items = NULL;
    ds->ds_n = 0;
}

/* Adds the documents of one parsed root: an object, or each item of an array; null (an empty
 * YAML document) adds nothing. Takes `root`. */
static void docs_add_root(apply_docs_t *ds, json_t *root, size_t line)
{
    if (root == NULL || json_is_null(root)) {
        json_decref(root);
        return;
    }
    size_t n = json_is_array(root) ? json_array_size(root) : 1;
    ds->ds_items = hr_xrealloc(ds->ds_items, (ds->ds_n + n) * sizeof *ds->ds_items);
    for (size_t i = 0; i < n; i++) {
        apply_doc_t *d = &ds->ds_items[ds->ds_n];
        *d = (apply_doc_t){.ad_number = ds->ds_n + 1, .ad_line = line};
        d->ad_raw = json_is_array(root) ? json_incref(json_array_get(root, i)) : json_incref(root);
        ds->ds_n++;
    }
    json_decref(root);
}

static void print_yaml_error(const char *file, const yaml_parser_t *p)
{
    if (file == NULL) {
        return;
    }
    fprintf(stderr, "herald: %s: line %zu column %zu: invalid YAML: %s", file,
            p->problem_mark.line + 1, p->problem_mark.column + 1,
            p->problem ? p->problem : "parse error");
    if (p->context != NULL) {
        fprintf(stderr, " (%s at line %zu)", p->context, p->context_mark.line + 1);
    }
    fputc('\n', stderr);
}

/* Parses a YAML stream into ds. Returns 0, or HR_CLI_EXIT_USAGE after printing why (nothing
 * when `file` is NULL). */
static int load_yaml(const char *file, const char *data, size_t len, apply_docs_t *ds)
{
    yaml_parser_t parser;
    yaml_builder_t *b = hr_xcalloc(1, sizeof *b);
    int rc = HR_CLI_EXIT_OK;
    size_t doc_line = 0;
    if (!yaml_parser_initialize(&parser)) {
        fprintf(stderr, "herald: cannot start the YAML parser (out of memory)\n");
        free(b);
        return HR_CLI_EXIT_USAGE;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            print_yaml_error(file, &parser);
            rc = HR_CLI_EXIT_USAGE;
            break;
        }
        bool ok = true, done = ev.type == YAML_STREAM_END_EVENT;
        if (ev.type == YAML_DOCUMENT_START_EVENT) {
            doc_line = 0;
        } else if (ev.type == YAML_DOCUMENT_END_EVENT) {
            docs_add_root(ds, b->yb_root, doc_line);
            b->yb_root = NULL;
            builder_reset(b); /* anchors are local to their document */
        } else {
            /* A document's line is that of its first node, not of its --- marker. */
            doc_line = doc_line ? doc_line : ev.start_mark.line + 1;
            ok = on_event(b, &ev);
        }
        yaml_event_delete(&ev);
        if (!ok) {
            if (file != NULL) {
                fprintf(stderr, "herald: %s: %s\n", file, b->yb_err);
            }
            rc = HR_CLI_EXIT_USAGE;
            break;
        }
        if (done) {
            break;
        }
    }
    builder_reset(b);
    free(b);
    yaml_parser_delete(&parser);
    return rc;
}

/* Parses FILE's contents: JSON when it looks like JSON and parses as such, else YAML (which
 * also reads most JSON). Returns 0, or HR_CLI_EXIT_USAGE after printing why. */
static int load_docs(const char *file, const char *data, size_t len, apply_docs_t *ds)
{
    size_t i = 0;
    while (i < len && strchr(" \t\r\n", data[i]) != NULL) {
        i++;
    }
    if (i < len && (data[i] == '{' || data[i] == '[')) {
        json_error_t err;
        json_t *root = json_loadb(data, len, 0, &err);
        if (root != NULL) {
            docs_add_root(ds, root, 0);
            return HR_CLI_EXIT_OK;
        }
        /* YAML flow style such as {kind: Bus, name: orders} starts the same way. */
        apply_docs_t yaml = {0};
        if (load_yaml(NULL, data, len, &yaml) == HR_CLI_EXIT_OK) {
            *ds = yaml;
            return HR_CLI_EXIT_OK;
        }
        docs_free(&yaml);
        fprintf(stderr, "herald: %s: line %d column %d: invalid JSON: %s\n", file, err.line,
                err.column, err.text);
        return HR_CLI_EXIT_USAGE;
    }
    return load_yaml(file, data, len, ds);
}

/* Prints "herald: FILE: document N at line L (trigger/NAME): " to stderr; the caller ends the
 * line. */
static void doc_error_prefix(const char *file, const apply_doc_t *d)
{
    fprintf(stderr, "herald: %s: document %zu", file, d->ad_number);
    if (d->ad_line > 0) {
        fprintf(stderr, " at line %zu", d->ad_line);
    }
    if (d->ad_valid) {
        fprintf(stderr, " (%s/", d->ad_kind == KIND_BUS ? "bus" : "trigger");
        hr__cli_print_human_to(stderr, d->ad_name, strlen(d->ad_name), 64);
        fputc(')', stderr);
    }
    fputs(": ", stderr);
}

/* Finds kind, name and the members of d->ad_raw. Returns false after printing what is wrong. */
static bool doc_read(const char *file, apply_doc_t *d)
{
    json_t *raw = d->ad_raw;
    const char *why = NULL;
    char what[128] = "";
    json_t *kind = json_object_get(raw, "kind");
    json_t *meta = json_object_get(raw, "metadata"), *spec = json_object_get(raw, "spec");
    bool knative = meta != NULL || spec != NULL;
    json_t *name = knative ? json_object_get(meta, "name") : json_object_get(raw, "name");
    if (!json_is_object(raw)) {
        why = "expected a mapping with kind and name";
    } else if (!json_is_string(kind)) {
        why = "missing \"kind\" (Bus or Trigger)";
    } else if (strcasecmp(json_string_value(kind), "bus") != 0 &&
               strcasecmp(json_string_value(kind), "trigger") != 0) {
        why = "\"kind\" must be Bus or Trigger, not";
        snprintf(what, sizeof what, "\"%.64s\"", json_string_value(kind));
    } else if (knative && (!json_is_object(meta) || (spec != NULL && !json_is_object(spec)))) {
        why = "\"metadata\" and \"spec\" must be mappings";
    } else if (!json_is_string(name) || json_string_length(name) == 0) {
        why = knative ? "missing \"metadata.name\"" : "missing \"name\"";
    }
    const char *key;
    json_t *v;
    if (why == NULL && knative) {
        json_object_foreach(raw, key, v)
        {
            if (strcmp(key, "apiVersion") != 0 && strcmp(key, "kind") != 0 &&
                strcmp(key, "metadata") != 0 && strcmp(key, "spec") != 0) {
                why = "with metadata and spec, every member goes into spec; found";
                snprintf(what, sizeof what, "\"%.64s\"", key);
                break;
            }
        }
    }
    if (why != NULL) {
        doc_error_prefix(file, d);
        fprintf(stderr, "%s%s%s\n", why, what[0] ? " " : "", what);
        return false;
    }
    d->ad_valid = true;
    d->ad_kind = strcasecmp(json_string_value(kind), "bus") == 0 ? KIND_BUS : KIND_TRIGGER;
    d->ad_name = json_string_value(name);
    if (knative) {
        d->ad_body = spec ? json_deep_copy(spec) : json_object();
    } else {
        d->ad_body = json_deep_copy(raw);
        json_object_del(d->ad_body, "kind");
        json_object_del(d->ad_body, "name");
        json_object_del(d->ad_body, "apiVersion");
    }
    return true;
}

/* ---- Applying ---- */

static int on_get_data(void *ud, const char *p, size_t n)
{
    return hr_buf_append(ud, p, n) != 0;
}

/* Reads the current state of `path` without printing errors. Sets *cur to the object (a new
 * reference) or NULL when the server answers 404. Returns an exit status; on failure, the
 * reason has been printed. */
static int get_current(hr_cli_ctx_t *ctx, const char *path, json_t **cur)
{
    *cur = NULL;
    hr_buf_t body = HR_BUF_INIT;
    hr_cli_stream_t s = {
        .cs_on_data = on_get_data, .cs_ud = &body, .cs_idle_timeout_s = GET_IDLE_TIMEOUT_S};
    hr_cli_resp_t resp = HR_CLI_RESP_INIT;
    hr_cli_client_t *c = hr__cli_client(ctx);
    int rc = HR_CLI_EXIT_OK;
    switch (hr_cli_client_stream(c, path, NULL, &s, &resp)) {
    case HR_CLI_STREAM_ENDED:
        resp.cr_body = body;
        body = (hr_buf_t)HR_BUF_INIT;
        *cur = hr__cli_load_object(&resp);
        rc = *cur ? HR_CLI_EXIT_OK : HR_CLI_EXIT_SERVER;
        break;
    case HR_CLI_STREAM_HTTP_ERROR:
        if (resp.cr_status != 404) {
            hr_cli_client_print_error(&resp);
            rc = HR_CLI_EXIT_SERVER;
        }
        break;
    case HR_CLI_STREAM_STOPPED:
        fprintf(stderr, "herald: out of memory reading %s\n", path);
        rc = HR_CLI_EXIT_SERVER;
        break;
    case HR_CLI_STREAM_DROPPED:
    case HR_CLI_STREAM_UNREACHABLE:
        hr_cli_client_print_unreachable(c);
        rc = HR_CLI_EXIT_UNREACHABLE;
        break;
    }
    hr_buf_free(&body);
    hr_cli_resp_free(&resp);
    return rc;
}

/* A copy of the server's document without what the server alone sets. */
static json_t *settable(json_t *doc, apply_kind_t kind)
{
    json_t *out = json_deep_copy(doc);
    json_object_del(out, "name");
    if (kind == KIND_BUS) {
        json_object_del(out, "created");
        json_object_del(out, "stats");
    } else {
        json_object_del(out, "status");
    }
    return out;
}

/* True when every member of `want` has the same value in `have` (recursively for objects). */
static bool covers(json_t *have, json_t *want)
{
    const char *key;
    json_t *v;
    json_object_foreach(want, key, v)
    {
        json_t *h = json_object_get(have, key);
        if (json_is_object(v) && json_is_object(h)) {
            if (!covers(h, v)) {
                return false;
            }
        } else if (h == NULL || !json_equal(h, v)) {
            return false;
        }
    }
    return true;
}

/* Applies one valid document; prints its result line. Returns an exit status. */
static int apply_doc(hr_cli_ctx_t *ctx, const char *file, apply_doc_t *d)
{
    const char *label = d->ad_kind == KIND_BUS ? "bus" : "trigger";
    char *path =
        hr__cli_path(d->ad_kind == KIND_BUS ? "/v1/buses/" : "/v1/triggers/", d->ad_name, "");
    json_t *cur = NULL, *before = NULL, *after = NULL;
    hr_cli_resp_t resp = HR_CLI_RESP_INIT;
    const char *result;
    int rc = get_current(ctx, path, &cur);
    if (rc != HR_CLI_EXIT_OK) {
        goto fail;
    }
    if (cur != NULL) {
        /* A bus PUT merges, a trigger PUT replaces: equal means "covers" for a bus only. */
        before = settable(cur, d->ad_kind);
        if (d->ad_kind == KIND_BUS ? covers(before, d->ad_body) : json_equal(before, d->ad_body)) {
            result = "unchanged";
            goto done;
        }
    }
    rc = hr__cli_send_json(ctx, "PUT", path, d->ad_body, &resp);
    if (rc != HR_CLI_EXIT_OK) {
        goto fail;
    }
    json_decref(cur);
    cur = hr__cli_load_object(&resp);
    if (cur == NULL) {
        rc = HR_CLI_EXIT_SERVER;
        goto fail;
    }
    after = settable(cur, d->ad_kind);
    if (before == NULL) {
        result = resp.cr_status == 201 ? "created" : "configured";
    } else {
        result = json_equal(before, after) ? "unchanged" : "configured";
    }
done:
    if (ctx->cc_json) {
        json_t *line = json_pack("{s:s, s:s, s:s, s:O}", "kind", label, "name", d->ad_name,
                                 "result", result, "object", cur);
        json_dumpf(line, stdout, JSON_COMPACT);
        putchar('\n');
        json_decref(line);
    } else {
        printf("%s/", label);
        hr__cli_print_human_to(stdout, d->ad_name, strlen(d->ad_name), 0);
        printf(" %s\n", result);
    }
    goto out;
fail:
    doc_error_prefix(file, d);
    if (rc == HR_CLI_EXIT_SERVER && resp.cr_status != 0) {
        fprintf(stderr, "not applied: the server answered HTTP %ld (its message is above)\n",
                resp.cr_status);
    } else {
        fprintf(stderr, "not applied\n");
    }
out:
    json_decref(cur);
    json_decref(before);
    json_decref(after);
    hr_cli_resp_free(&resp);
    free(path);
    return rc;
}

int hr__cli_apply(hr_cli_ctx_t *ctx, int argc, char **argv)
{
    apply_opts_t o = {0};
    const char *args[HR_CLI_MAX_ARGS];
    size_t n_args;
    int rc;
    if (!hr__cli_parse(ctx, &apply_cmd, &o, argc, argv, args, &n_args, &rc)) {
        return rc;
    }
    if (o.ap_file == NULL) {
        return hr__cli_usage_error(&apply_cmd, "-f FILE is required (- for stdin)");
    }
    const char *file = strcmp(o.ap_file, "-") == 0 ? "(stdin)" : o.ap_file;
    char *data = NULL;
    size_t len;
    apply_docs_t ds = {0};
    size_t invalid = 0, sent = 0, failed = 0;
    rc = hr__cli_read_file(o.ap_file, &data, &len);
    if (rc != HR_CLI_EXIT_OK || (rc = load_docs(file, data, len, &ds)) != HR_CLI_EXIT_OK) {
        goto out;
    }
    if (ds.ds_n == 0) {
        fprintf(stderr, "herald: %s holds no documents\n", file);
        rc = HR_CLI_EXIT_USAGE;
        goto out;
    }
    for (size_t i = 0; i < ds.ds_n; i++) {
        invalid += !doc_read(file, &ds.ds_items[i]);
    }
    /* Buses first: a trigger's bus must exist before the trigger. */
    for (int pass = 0; pass < 2 && rc != HR_CLI_EXIT_UNREACHABLE; pass++) {
        apply_kind_t kind = pass == 0 ? KIND_BUS : KIND_TRIGGER;
        for (size_t i = 0; i < ds.ds_n; i++) {
            apply_doc_t *d = &ds.ds_items[i];
            if (!d->ad_valid || d->ad_kind != kind) {
                continue;
            }
            int one = apply_doc(ctx, file, d);
            sent++;
            if (one == HR_CLI_EXIT_UNREACHABLE) {
                rc = one; /* the others would fail the same way */
                break;
            }
            failed += one != HR_CLI_EXIT_OK;
        }
    }
    if (rc == HR_CLI_EXIT_OK && (failed > 0 || invalid > 0)) {
        /* Usage error only when the file alone was at fault and nothing was sent. */
        rc = sent == 0 ? HR_CLI_EXIT_USAGE : HR_CLI_EXIT_SERVER;
        fprintf(stderr, "herald: %s: %zu of %zu documents not applied\n", file, failed + invalid,
                ds.ds_n);
    }
out:
    docs_free(&ds);
    free(data);
    return rc;
}
