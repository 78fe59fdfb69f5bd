/* SPDX-License-Identifier: MIT */
/*
 * The CloudEvents SQL TCK, read at run time from HR_CONFORMANCE_DIR/cesql-tck/ (every .yaml file)
 * (the vendored upstream files, unmodified) with libyaml. Every case is compiled and evaluated;
 * both the value and the first error kind must match. Every failing case is printed with its file,
 * name, expression, expectation and result; the test fails if any case fails or if the number
 * of cases run is not the 275 the TCK holds (so a YAML reading bug cannot skip cases).
 *
 * YAML typing (see the TCK README): a plain scalar that is a decimal integer is an Integer, a
 * plain true/false in any case is a Boolean, everything else (quoted scalars, and plain ones
 * like the unquoted timestamp) is a String. Event members other than the context attributes
 * become extensions of the matching kind.
 */
#include <glob.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <cmocka.h>
#include <yaml.h>

#include "ce/event.h"
#include "filter/cesql.h"
#include "util/err.h"

#define TCK_CASES 275

typedef enum { V_NONE, V_BOOL, V_INT, V_STR } vkind_t;

typedef struct yval {
    vkind_t kind;
    bool b;
    long long i;
    const char *s; /* the scalar text */
} yval_t;

static yval_t scalar_value(const yaml_node_t *n)
{
    yval_t v = {.kind = V_STR, .s = (const char *)n->data.scalar.value};
    if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
        return v;
    }
    const char *s = v.s;
    if (strcasecmp(s, "true") == 0 || strcasecmp(s, "false") == 0) {
        v.kind = V_BOOL;
        v.b = strcasecmp(s, "true") == 0;
        return v;
    }
    size_t i = (s[0] == '-' || s[0] == '+') ? 1 : 0;
    if (s[i] == '\0') {
        return v;
    }
    for (size_t k = i; s[k]; k++) {
        if (s[k] < '0' || s[k] > '9') {
            return v;
        }
    }
    v.kind = V_INT;
    v.i = strtoll(s, NULL, 10);
    return v;
}

/* The value of key `key` in mapping node `map`, or NULL. */
static yaml_node_t *get(yaml_document_t *doc, yaml_node_t *map, const char *key)
{
    if (map == NULL || map->type != YAML_MAPPING_NODE) {
        return NULL;
    }
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        if (k->type == YAML_SCALAR_NODE && strcmp((const char *)k->data.scalar.value, key) == 0) {
            return yaml_document_get_node(doc, p->value);
        }
    }
    return NULL;
}

static char *xstrdup(const char *s)
{
    char *d = strdup(s);
    assert_non_null(d);
    return d;
}

/* Sets attribute `name` of ev from a YAML scalar. */
static void set_attr(hr_ce_event_t *ev, const char *name, const yaml_node_t *n)
{
    struct {
        const char *name;
        char **slot;
    } ctx[] = {
        {"specversion", &ev->specversion},
        {"id", &ev->id},
        {"source", &ev->source},
        {"type", &ev->type},
        {"datacontenttype", &ev->datacontenttype},
        {"dataschema", &ev->dataschema},
        {"subject", &ev->subject},
        {"time", &ev->time},
    };
    yval_t v = scalar_value(n);
    for (size_t i = 0; i < sizeof ctx / sizeof ctx[0]; i++) {
        if (strcmp(ctx[i].name, name) == 0) {
            free(*ctx[i].slot);
            *ctx[i].slot = xstrdup(v.s);
            return;
        }
    }
    hr_ce_kind_t kind = v.kind == V_INT ? HR_CE_INT : v.kind == V_BOOL ? HR_CE_BOOL : HR_CE_STRING;
    char canon[32];
    const char *value = v.s;
    if (v.kind == V_BOOL) {
        value = v.b ? "true" : "false";
    } else if (v.kind == V_INT) {
        snprintf(canon, sizeof canon, "%lld", v.i);
        value = canon;
    }
    assert_int_equal(hr_ce_set_ext(ev, name, value, kind), 0);
}

/* The case's event: `event` as given, or a default valid event with `eventOverrides`. */
static hr_ce_event_t *build_event(yaml_document_t *doc, yaml_node_t *tc)
{
    hr_ce_event_t *ev = calloc(1, sizeof *ev);
    assert_non_null(ev);
    yaml_node_t *full = get(doc, tc, "event"), *over = get(doc, tc, "eventOverrides");
    yaml_node_t *map = full != NULL ? full : over;
    if (full == NULL) {
        ev->specversion = xstrdup("1.0");
        ev->id = xstrdup("tck-id");
        ev->source = xstrdup("/tck/source");
        ev->type = xstrdup("io.herald.tck");
    }
    if (map != NULL) {
        assert_int_equal(map->type, YAML_MAPPING_NODE);
        for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
             p++) {
            yaml_node_t *k = yaml_document_get_node(doc, p->key);
            yaml_node_t *v = yaml_document_get_node(doc, p->value);
            assert_int_equal(v->type, YAML_SCALAR_NODE);
            set_attr(ev, (const char *)k->data.scalar.value, v);
        }
    }
    return ev;
}

static void describe_value(const hr_cesql_value_t *v, char *buf, size_t cap)
{
    switch (v->type) {
    case HR_CESQL_BOOLEAN:
        snprintf(buf, cap, "%s", v->b ? "true" : "false");
        break;
    case HR_CESQL_INTEGER:
        snprintf(buf, cap, "%d", v->i);
        break;
    default:
        snprintf(buf, cap, "'%s'", v->s);
        break;
    }
}

static bool value_matches(const yval_t *want, const hr_cesql_value_t *got)
{
    switch (want->kind) {
    case V_NONE:
        return true;
    case V_BOOL:
        return got->type == HR_CESQL_BOOLEAN && got->b == want->b;
    case V_INT:
        return got->type == HR_CESQL_INTEGER && got->i == want->i;
    default:
        return got->type == HR_CESQL_STRING && strcmp(got->s, want->s) == 0;
    }
}

typedef struct tally {
    size_t run, failed;
} tally_t;

/* Runs one case; prints and counts a failure. */
static void run_case(const char *file, yaml_document_t *doc, yaml_node_t *tc, tally_t *t)
{
    yaml_node_t *name = get(doc, tc, "name"), *expr = get(doc, tc, "expression");
    yaml_node_t *res = get(doc, tc, "result"), *errn = get(doc, tc, "error");
    assert_non_null(name);
    assert_non_null(expr);
    const char *text = (const char *)expr->data.scalar.value;
    yval_t want = res ? scalar_value(res) : (yval_t){.kind = V_NONE};
    const char *want_err = errn ? (const char *)errn->data.scalar.value : "none";
    t->run++;

    hr_cesql_t *q = NULL;
    hr_cesql_error_t cerr;
    int rc = hr_cesql_compile(text, strlen(text), &q, &cerr);
    char got[512];
    bool ok;
    if (rc != 0) {
        assert_int_equal(rc, HR_EINVAL);
        ok = strcmp(want_err, "parse") == 0;
        snprintf(got, sizeof got, "parse error: %s", cerr.msg);
    } else {
        hr_ce_event_t *ev = build_event(doc, tc);
        hr_cesql_value_t v;
        hr_cesql_errkind_t kind;
        assert_int_equal(hr_cesql_eval(q, ev, &v, &kind), 0);
        const char *got_err = hr_cesql_errkind_name(kind);
        ok = strcmp(got_err, want_err) == 0 && value_matches(&want, &v);
        char vb[400];
        describe_value(&v, vb, sizeof vb);
        snprintf(got, sizeof got, "%s, error %s", vb, got_err);
        /* The filter view must agree: only a true Boolean without error passes. */
        bool pass = v.type == HR_CESQL_BOOLEAN && v.b && kind == HR_CESQL_ERR_NONE;
        if (hr_cesql_match(q, ev) != pass) {
            ok = false;
            strncat(got, " (hr_cesql_match disagrees)", sizeof got - strlen(got) - 1);
        }
        hr_cesql_value_clear(&v);
        hr_ce_event_free(ev);
        hr_cesql_destroy(q);
    }
    if (!ok) {
        t->failed++;
        print_message("FAIL %s: \"%s\"\n  expression: %s\n  expected:   %s%s%s, error %s\n  got:  "
                      "      %s\n",
                      file, (const char *)name->data.scalar.value, text,
                      want.kind == V_STR ? "'" : "", res ? want.s : "(any)",
                      want.kind == V_STR ? "'" : "", want_err, got);
    }
}

static void run_file(const char *path, tally_t *t)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    yaml_parser_t parser;
    yaml_document_t doc;
    assert_true(yaml_parser_initialize(&parser));
    yaml_parser_set_input_file(&parser, f);
    if (!yaml_parser_load(&parser, &doc)) {
        fail_msg("%s: YAML error: %s at line %zu", path, parser.problem,
                 parser.problem_mark.line + 1);
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    yaml_node_t *tests = get(&doc, root, "tests");
    assert_non_null(tests);
    assert_int_equal(tests->type, YAML_SEQUENCE_NODE);
    const char *file = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    for (yaml_node_item_t *it = tests->data.sequence.items.start;
         it < tests->data.sequence.items.top; it++) {
        run_case(file, &doc, yaml_document_get_node(&doc, *it), t);
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    fclose(f);
}

static void test_tck(void **state)
{
    (void)state;
    glob_t g;
    assert_int_equal(glob(HR_CONFORMANCE_DIR "/cesql-tck/*.yaml", 0, NULL, &g), 0);
    assert_int_equal(g.gl_pathc, 18);
    tally_t t = {0};
    for (size_t i = 0; i < g.gl_pathc; i++) {
        run_file(g.gl_pathv[i], &t);
    }
    globfree(&g);
    print_message("CESQL TCK: %zu/%zu cases passed\n", t.run - t.failed, t.run);
    assert_int_equal(t.run, TCK_CASES);
    assert_int_equal(t.failed, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tck),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
