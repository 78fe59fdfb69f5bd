/* SPDX-License-Identifier: MIT */
/*
 * CESQL beyond the TCK (cesql_tck_test.c): parse error positions and messages, the limits,
 * Herald's decisions where the spec is silent (grouping of AND/OR, overflow, Unicode, the
 * implicit Integer -> Boolean cast), large built strings and the scratch limit, the filter
 * dialect through hr_filter_compile ({"cesql": ...} and {"sql": ...}), a model test of
 * hr_cesql_required_exact's soundness on random expressions, a thread-safety smoke test, and a
 * rough timing of the trigger-filter hot path.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "ce/event.h"
#include "filter/cesql.h"
#include "filter/filter.h"
#include "util/err.h"
#include "util/utf8.h"

static hr_ce_event_t *event(const char *json)
{
    hr_ce_event_t *ev = NULL;
    hr_ce_error_t err;
    if (hr_ce_from_structured((const uint8_t *)json, strlen(json), &ev, &err) != 0) {
        fail_msg("bad test event %s: %s", json, err.msg);
    }
    return ev;
}

#define EV_FULL                                                                                    \
    "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"https://example.com/a\","                  \
    "\"type\":\"com.example.created\",\"subject\":\"eu/123\",\"time\":\"2024-03-05T10:20:30Z\","   \
    "\"count\":42,\"flag\":true,\"neg\":-7,\"num\":\"17\",\"city\":\"Z\xc3\xbcrich/\xe6\x9d\xb1"   \
    "\xe4\xba\xac\"}"
#define EV_MIN "{\"specversion\":\"1.0\",\"id\":\"2\",\"source\":\"/s\",\"type\":\"t\"}"

/* ---- helpers ---- */

static hr_cesql_t *compile_ok(const char *expr)
{
    hr_cesql_t *q;
    hr_cesql_error_t err;
    int rc = hr_cesql_compile(expr, strlen(expr), &q, &err);
    if (rc != 0) {
        fail_msg("%s: did not compile: %s", expr, err.msg);
    }
    return q;
}

/* Evaluates expr on ev and checks the result's description ("true", "42", "'abc'") and error. */
static void expect(const hr_ce_event_t *ev, const char *expr, const char *want,
                   hr_cesql_errkind_t want_err)
{
    hr_cesql_t *q = compile_ok(expr);
    hr_cesql_value_t v;
    hr_cesql_errkind_t kind;
    assert_int_equal(hr_cesql_eval(q, ev, &v, &kind), 0);
    char got[600];
    if (v.type == HR_CESQL_BOOLEAN) {
        snprintf(got, sizeof got, "%s", v.b ? "true" : "false");
    } else if (v.type == HR_CESQL_INTEGER) {
        snprintf(got, sizeof got, "%d", v.i);
    } else {
        assert_int_equal(strlen(v.s), v.s_len);
        snprintf(got, sizeof got, "'%s'", v.s);
    }
    if (strcmp(got, want) != 0 || kind != want_err) {
        fail_msg("%s: got %s (%s), want %s (%s)", expr, got, hr_cesql_errkind_name(kind), want,
                 hr_cesql_errkind_name(want_err));
    }
    bool pass = v.type == HR_CESQL_BOOLEAN && v.b && kind == HR_CESQL_ERR_NONE;
    assert_int_equal(hr_cesql_match(q, ev), pass);
    hr_cesql_value_clear(&v);
    hr_cesql_destroy(q);
}

/* Compiling expr (len bytes) fails at byte `off` with a message containing `needle`. */
static void expect_parse_error_n(const char *expr, size_t len, size_t off, size_t char_off,
                                 const char *needle)
{
    hr_cesql_t *q = (hr_cesql_t *)1;
    hr_cesql_error_t err;
    assert_int_equal(hr_cesql_compile(expr, len, &q, &err), HR_EINVAL);
    assert_null(q);
    assert_int_equal(err.kind, HR_CESQL_ERR_PARSE);
    size_t ml = strlen(err.msg);
    assert_true(ml > 10 && ml < sizeof err.msg);
    assert_true(hr_utf8_valid(err.msg, ml, NULL));
    if (err.offset != off || err.char_offset != char_off || strstr(err.msg, needle) == NULL) {
        fail_msg("%.60s: got offset %zu/%zu \"%s\"; want %zu/%zu ...%s...", expr, err.offset,
                 err.char_offset, err.msg, off, char_off, needle);
    }
}

static void expect_parse_error(const char *expr, size_t off, const char *needle)
{
    expect_parse_error_n(expr, strlen(expr), off, off, needle);
}

/* ---- tests ---- */

static void test_parse_errors(void **state)
{
    (void)state;
    expect_parse_error("type =", 6, "At character 6: expected an expression, found the end");
    expect_parse_error("(type = 'a'", 11, "expected ')' to close the '(' at character 0");
    expect_parse_error("type = 'abc", 7, "not terminated");
    expect_parse_error("x LIKE 123", 7, "a string literal as the LIKE pattern");
    expect_parse_error("2147483648", 0, "out of range");
    expect_parse_error("1 + -2147483649", 4, "out of range");
    expect_parse_error("type == 'a'", 6, "expected an expression, found '='");
    expect_parse_error("type = 'a' 'b'", 11, "expected an operator or the end");
    expect_parse_error("a ; b", 2, "unexpected character ';'");
    expect_parse_error("", 0, "empty");
    expect_parse_error("   ", 0, "empty");
    expect_parse_error("my_ext = 1", 0, "not a valid attribute name");
    expect_parse_error("abc1(2)", 0, "not a valid function name");
    expect_parse_error("x NOT y", 6, "expected LIKE or IN after NOT");
    expect_parse_error("x IN ()", 6, "expected an expression");
    expect_parse_error("x IN 1", 5, "'(' and a list of values");
    expect_parse_error("EXISTS 1", 7, "expected an attribute name");
    expect_parse_error("LENGTH('a'", 10, "',' or ')' in the argument list");
    /* Positions count characters; offsets count bytes. */
    expect_parse_error_n("'\xc3\xa9\xe6\x9d\xb1' = ", 9, 9, 6, "At character 6");
    expect_parse_error_n("a = 'x\xff'", 8, 6, 6, "not valid UTF-8");
    expect_parse_error_n("a = 'x\0'", 8, 6, 6, "U+0000");
    expect_parse_error_n("a = \xe2\x82\xac", 7, 4, 4, "unexpected character '\xe2\x82\xac'");
    /* Not errors: a sign belongs to a following integer, keywords are case-insensitive. */
    hr_cesql_destroy(compile_ok("-2147483648 = ABS(+1) - 2147483647 - 2"));
    hr_cesql_destroy(compile_ok("not Exists subject oR type Like 'x' xor TRUE aNd 1 nOt In (2)"));
}

static void test_limits(void **state)
{
    (void)state;
    char *buf = malloc(HR_CESQL_MAX_EXPR_BYTES + 2);
    assert_non_null(buf);

    /* Length. */
    memset(buf, ' ', HR_CESQL_MAX_EXPR_BYTES + 1);
    buf[0] = '1';
    hr_cesql_t *q;
    hr_cesql_error_t err;
    assert_int_equal(hr_cesql_compile(buf, HR_CESQL_MAX_EXPR_BYTES + 1, &q, &err), HR_EINVAL);
    assert_non_null(strstr(err.msg, "too long"));
    assert_int_equal(hr_cesql_compile(buf, HR_CESQL_MAX_EXPR_BYTES, &q, &err), 0);
    hr_cesql_destroy(q);

    /* Depth: the whole expression is level 1, each parenthesis one more. */
    for (int n = HR_CESQL_MAX_DEPTH - 1; n <= HR_CESQL_MAX_DEPTH; n++) {
        size_t len = 0;
        for (int i = 0; i < n; i++) {
            buf[len++] = '(';
        }
        buf[len++] = '1';
        for (int i = 0; i < n; i++) {
            buf[len++] = ')';
        }
        int rc = hr_cesql_compile(buf, len, &q, &err);
        if (n < HR_CESQL_MAX_DEPTH) {
            assert_int_equal(rc, 0);
            hr_cesql_destroy(q);
        } else {
            assert_int_equal(rc, HR_EINVAL);
            assert_non_null(strstr(err.msg, "nested too deeply"));
            assert_int_equal(err.offset, HR_CESQL_MAX_DEPTH); /* the first too deep token */
        }
    }
    /* Prefix operators, LIKE on LIKE, and calls nest too. */
    /* Each unit wraps what follows (prefix, closed by `close`) or what precedes (postfix). */
    static const struct {
        const char *unit, *close;
        bool postfix;
    } units[] = {{"NOT ", "", false},
                 {"-", "", false},
                 {"LENGTH(", ")", false},
                 {" LIKE 'a'", "", true},
                 {" NOT IN (1)", "", true}};
    for (size_t u = 0; u < sizeof units / sizeof units[0]; u++) {
        for (int reps = 40; reps <= 100; reps += 60) {
            size_t len = 0, ul = strlen(units[u].unit);
            if (units[u].postfix) {
                buf[len++] = '1';
            }
            for (int r = 0; r < reps; r++) {
                memcpy(buf + len, units[u].unit, ul);
                len += ul;
            }
            if (!units[u].postfix) {
                buf[len++] = '1';
            }
            for (int r = 0; r < reps && units[u].close[0]; r++) {
                buf[len++] = units[u].close[0];
            }
            int rc = hr_cesql_compile(buf, len, &q, &err);
            if (reps > HR_CESQL_MAX_DEPTH) {
                assert_int_equal(rc, HR_EINVAL);
                assert_non_null(strstr(err.msg, "nested too deeply"));
            } else {
                assert_int_equal(rc, 0);
                hr_cesql_destroy(q);
            }
        }
    }
    /* Long flat chains are not deep: 1 + 1 + ... and a AND a AND ... evaluate. */
    hr_ce_event_t *ev = event(EV_MIN);
    size_t len = 0;
    buf[len++] = '1';
    while (len + 4 <= HR_CESQL_MAX_EXPR_BYTES) {
        memcpy(buf + len, " + 1", 4);
        len += 4;
    }
    assert_int_equal(hr_cesql_compile(buf, len, &q, &err), 0);
    hr_cesql_value_t v;
    assert_int_equal(hr_cesql_eval(q, ev, &v, NULL), 0);
    assert_int_equal(v.type, HR_CESQL_INTEGER);
    assert_int_equal(v.i, (int)(len - 1) / 4 + 1);
    hr_cesql_destroy(q);
    len = 0;
    while (len + 13 <= HR_CESQL_MAX_EXPR_BYTES) {
        memcpy(buf + len, "type='t' AND ", 13);
        len += 13;
    }
    memcpy(buf + len - 4, "XOR ", 4);
    buf[len++] = '1';
    assert_int_equal(hr_cesql_compile(buf, len, &q, &err), 0);
    hr_cesql_errkind_t kind;
    assert_int_equal(hr_cesql_eval(q, ev, &v, &kind), 0);
    assert_int_equal(kind, HR_CESQL_ERR_CAST);
    hr_cesql_destroy(q);
    /* Arguments. */
    len = (size_t)snprintf(buf, 64, "CONCAT(");
    for (int i = 0; i <= HR_CESQL_MAX_ARGS; i++) {
        len += (size_t)snprintf(buf + len, 8, "'x',");
    }
    buf[len - 1] = ')';
    assert_int_equal(hr_cesql_compile(buf, len, &q, &err), HR_EINVAL);
    assert_non_null(strstr(err.msg, "too many arguments for CONCAT"));
    /* Identifiers. */
    expect_parse_error("abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcde = 1", 0,
                       "too long");
    hr_cesql_destroy(
        compile_ok("abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcd = 1"));
    hr_ce_event_free(ev);
    free(buf);
}

static void test_semantics(void **state)
{
    (void)state;
    hr_ce_event_t *ev = event(EV_FULL);
    const hr_cesql_errkind_t OK = HR_CESQL_ERR_NONE;
    /* AND, OR, XOR share one precedence and group to the right (CESQLParser.g4). */
    expect(ev, "FALSE AND TRUE OR TRUE", "false", OK);
    expect(ev, "(FALSE AND TRUE) OR TRUE", "true", OK);
    expect(ev, "TRUE OR FALSE AND FALSE", "true", OK);
    expect(ev, "TRUE XOR TRUE XOR TRUE", "true", OK);
    expect(ev, "FALSE XOR TRUE AND FALSE", "false", OK);
    expect(ev, "TRUE XOR FALSE OR missing", "false", HR_CESQL_ERR_MISSING_ATTRIBUTE);
    expect(ev, "TRUE OR FALSE XOR missing", "true", HR_CESQL_ERR_NONE);
    expect(ev, "TRUE XOR missing", "false", HR_CESQL_ERR_MISSING_ATTRIBUTE);
    expect(ev, "TRUE XOR FALSE XOR missing", "false", HR_CESQL_ERR_MISSING_ATTRIBUTE);
    /* Other levels: unary binds tightest, then LIKE / IN, then * / %, + -, comparisons. */
    expect(ev, "2 + 3 * 4 - 10 / 3 % 2", "13", OK);
    expect(ev, "4-1", "3", OK);
    expect(ev, "- 2 * 3", "-6", OK);
    expect(ev, "1 + 2 IN (2)", "2", OK);
    expect(ev, "NOT subject LIKE 'eu/%'", "false", HR_CESQL_ERR_CAST);
    expect(ev, "subject NOT LIKE 'eu/%'", "false", OK);
    /* Typed extensions and casts. */
    expect(ev, "count", "42", OK);
    expect(ev, "count = '42' AND count = 42 AND flag AND flag = 'true' AND neg < 0", "true", OK);
    expect(ev, "num + 1", "18", OK);
    expect(ev, "num = 17", "true", OK);
    expect(ev, "num < count", "true", OK);
    expect(ev, "1 = TRUE", "false", HR_CESQL_ERR_CAST);
    expect(ev, "TRUE = 1", "true", OK);
    expect(ev, "1 AND TRUE", "false", HR_CESQL_ERR_CAST);
    expect(ev, "BOOL(1) AND BOOL(-3) AND NOT BOOL(0)", "true", OK);
    expect(ev, "IS_INT('-12') AND IS_INT(3) AND NOT IS_INT('1.5') AND NOT IS_INT(TRUE)", "true",
           OK);
    expect(ev, "IS_BOOL('False') AND IS_BOOL(FALSE) AND NOT IS_BOOL(1) AND NOT IS_BOOL('yes')",
           "true", OK);
    expect(ev, "INT('+7') + INT('2147483648')", "0", HR_CESQL_ERR_CAST);
    expect(ev, "STRING(-2147483648)", "'-2147483648'", OK);
    /* Overflow: a math error, the value clamped; the outer operator then yields zero. */
    expect(ev, "2147483647 + 1", "2147483647", HR_CESQL_ERR_MATH);
    expect(ev, "-2147483648 - 1", "-2147483648", HR_CESQL_ERR_MATH);
    expect(ev, "65536 * 65536", "2147483647", HR_CESQL_ERR_MATH);
    expect(ev, "-(-2147483648)", "2147483647", HR_CESQL_ERR_MATH);
    expect(ev, "-2147483648 / -1", "2147483647", HR_CESQL_ERR_MATH);
    expect(ev, "-2147483648 % -1", "0", OK);
    expect(ev, "-7 % 3", "-1", OK);
    expect(ev, "-7 / 2", "-3", OK);
    expect(ev, "(2147483647 + 1) - 5", "0", HR_CESQL_ERR_MATH);
    expect(ev, "2147483647 + 1 - 5", "0", HR_CESQL_ERR_MATH);
    expect(ev, "ABS(-2147483648) = 2147483647", "false", HR_CESQL_ERR_MATH);
    /* Strings and escapes. */
    expect(ev, "'it''s' = \"it's\" AND 'it\\'s' = 'it''s' AND \"a\"\"b\" = 'a\"b'", "true", OK);
    expect(ev, "'a\\nb'", "'a\\nb'", OK);
    expect(ev, "'50%' LIKE '50\\%' AND '5_' LIKE '5\\_' AND '5x' NOT LIKE '5\\_'", "true", OK);
    expect(ev, "'a\\b' LIKE 'a\\b' AND 'a\\b' LIKE 'a_b' AND '%%' LIKE '%%%'", "true", OK);
    expect(ev, "'' LIKE '%' AND '' NOT LIKE '_' AND 'abc' LIKE '%%c'", "true", OK);
    expect(ev, "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaab' LIKE '%a%a%a%a%a%a%b'", "true", OK);
    /* Unicode: characters, not bytes. */
    expect(ev, "LENGTH(city)", "9", OK);
    expect(ev, "city LIKE 'Z_rich/__'", "true", OK);
    expect(ev, "SUBSTRING(city, 2, 3)", "'\xc3\xbcri'", OK);
    expect(ev, "SUBSTRING(city, -2)", "'\xe6\x9d\xb1\xe4\xba\xac'", OK);
    expect(ev, "LEFT(city, 2) = 'Z\xc3\xbc' AND RIGHT(city, 1) = '\xe4\xba\xac'", "true", OK);
    expect(ev, "SUBSTRING(city, 10)", "''", HR_CESQL_ERR_FUNCTION_EVALUATION);
    expect(ev, "SUBSTRING('abc', 1, -1)", "''", HR_CESQL_ERR_FUNCTION_EVALUATION);
    expect(ev, "SUBSTRING('abc', 2, 0)", "''", OK);
    expect(ev, "UPPER(city)", "'Z\xc3\x9cRICH/\xe6\x9d\xb1\xe4\xba\xac'", OK);
    expect(ev,
           "UPPER('stra\xc3\x9f"
           "e \xc3\xbf \xc4\xb1 \xcf\x82 \xd0\xb6')",
           "'STRA\xc3\x9f"
           "E \xc5\xb8 I \xce\xa3 \xd0\x96'",
           OK);
    expect(ev, "LOWER('\xc3\x80\xc3\x89 \xce\xa3\xce\x91 \xd0\x81 \xc4\xb0 \xc5\x81')",
           "'\xc3\xa0\xc3\xa9 \xcf\x83\xce\xb1 \xd1\x91 i \xc5\x82'", OK);
    expect(ev, "TRIM('\xe3\x80\x80 \t a b \xc2\xa0\n')", "'a b'", OK);
    expect(ev, "TRIM('\xe3\x80\x80')", "''", OK);
    expect(ev, "CONCAT_WS('-', 1, TRUE, 'x')", "'1-true-x'", OK);
    expect(ev, "LENGTH(CONCAT(id, missing))", "0", HR_CESQL_ERR_MISSING_ATTRIBUTE);
    /* Errors. */
    expect(ev, "NOPE(1)", "false", HR_CESQL_ERR_MISSING_FUNCTION);
    expect(ev, "LENGTH()", "false", HR_CESQL_ERR_MISSING_FUNCTION);
    expect(ev, "EXISTS missing OR EXISTS count", "true", OK);
    expect(ev, "type IN ('x', missing, 'com.example.created')", "false",
           HR_CESQL_ERR_MISSING_ATTRIBUTE);
    expect(ev, "type IN ('com.example.created', missing)", "true", OK);
    expect(ev, "1 IN ('x', 1)", "true", HR_CESQL_ERR_CAST);
    expect(ev, "missing NOT IN (1)", "false", HR_CESQL_ERR_MISSING_ATTRIBUTE);
    expect(ev, "NOT (1 / 0 = 0)", "false", HR_CESQL_ERR_MATH);
    expect(ev, "NOT (1 = 0)", "true", HR_CESQL_ERR_NONE);
    hr_ce_event_free(ev);
}

/* Strings past the stack scratch use heap chunks; past HR_CESQL_MAX_SCRATCH_BYTES a
 * functionEvaluation error. */
static void test_scratch(void **state)
{
    (void)state;
    hr_ce_event_t *ev = event(EV_MIN);
    size_t n = 3000;
    char *big = malloc(n + 1);
    memset(big, 'a', n);
    big[n] = '\0';
    assert_int_equal(hr_ce_set_ext(ev, "big", big, HR_CE_STRING), 0);
    expect(ev, "LENGTH(CONCAT(big, big, UPPER(big), big)) = 12000", "true", HR_CESQL_ERR_NONE);
    expect(ev, "LOWER(UPPER(big)) = big", "true", HR_CESQL_ERR_NONE);
    /* 8 x 600 kB passes the 4 MiB limit. */
    char *huge = malloc(600001);
    memset(huge, 'b', 600000);
    huge[600000] = '\0';
    assert_int_equal(hr_ce_set_ext(ev, "huge", huge, HR_CE_STRING), 0);
    free(huge);
    expect(ev, "LENGTH(CONCAT(huge, huge, huge, huge, huge, huge)) = 3600000", "true",
           HR_CESQL_ERR_NONE);
    expect(ev, "LENGTH(CONCAT(huge, huge, huge, huge, huge, huge, huge, huge)) > 0", "false",
           HR_CESQL_ERR_FUNCTION_EVALUATION);
    expect(ev, "CONCAT(huge, huge, huge, huge, huge, huge, huge, huge)", "''",
           HR_CESQL_ERR_FUNCTION_EVALUATION);
    free(big);
    hr_ce_event_free(ev);
}

static void test_eval_api(void **state)
{
    (void)state;
    hr_ce_event_t *ev = event(EV_FULL);
    hr_cesql_t *q = compile_ok("CONCAT(type, '/', count)");
    hr_cesql_value_t v;
    hr_cesql_errkind_t kind = HR_CESQL_ERR_GENERIC;
    assert_int_equal(hr_cesql_eval(q, ev, &v, &kind), 0);
    assert_int_equal(kind, HR_CESQL_ERR_NONE);
    assert_int_equal(v.type, HR_CESQL_STRING);
    assert_string_equal(v.s, "com.example.created/42");
    assert_int_equal(v.s_len, strlen("com.example.created/42"));
    assert_false(hr_cesql_match(q, ev)); /* a String never passes a filter */
    hr_cesql_value_clear(&v);
    assert_null(v.s);
    hr_cesql_destroy(q);
    hr_cesql_destroy(NULL);
    assert_string_equal(hr_cesql_errkind_name(HR_CESQL_ERR_MISSING_ATTRIBUTE), "missingAttribute");
    assert_string_equal(hr_cesql_errkind_name(HR_CESQL_ERR_FUNCTION_EVALUATION),
                        "functionEvaluation");
    /* Lint. */
    hr_cesql_error_t err;
    q = compile_ok("type = 'a' OR FOO(1, 2)");
    assert_int_equal(hr_cesql_lint(q, &err), HR_EINVAL);
    assert_int_equal(err.kind, HR_CESQL_ERR_MISSING_FUNCTION);
    assert_int_equal(err.offset, 14);
    assert_non_null(strstr(err.msg, "At character 14: unknown function FOO"));
    hr_cesql_destroy(q);
    q = compile_ok("left('abc')");
    assert_int_equal(hr_cesql_lint(q, &err), HR_EINVAL);
    assert_non_null(strstr(err.msg, "LEFT does not take 1 argument."));
    hr_cesql_destroy(q);
    q = compile_ok("substring('abc', 1, 2) = concat_ws(',')");
    assert_int_equal(hr_cesql_lint(q, &err), 0);
    hr_cesql_destroy(q);
    hr_ce_event_free(ev);
}

/* ---- the filter dialect ---- */

static json_t *load(const char *text)
{
    json_error_t jerr;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &jerr);
    if (j == NULL) {
        fail_msg("bad test JSON %s: %s", text, jerr.text);
    }
    return j;
}

static void test_filter_dialect(void **state)
{
    (void)state;
    hr_ce_event_t *full = event(EV_FULL), *min = event(EV_MIN);
    static const struct {
        const char *doc;
        bool full, min;
    } ok[] = {
        {"[{\"cesql\": \"type = 'com.example.created' AND subject LIKE 'eu/%'\"}]", true, false},
        {"[{\"sql\": \"EXISTS subject\"}]", true, false},
        {"[{\"cesql\": \"NOT EXISTS subject\"}]", false, true},
        {"[{\"cesql\": \"subject = 'x'\"}]", false, false},
        {"[{\"not\": {\"cesql\": \"subject = 'x'\"}}]", true, true}, /* an error is no match */
        {"[{\"cesql\": \"count\"}]", false, false},                  /* not a Boolean */
        {"[{\"any\": [{\"sql\": \"count > 40\"}, {\"exact\": {\"type\": \"t\"}}]}]", true, true},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        json_t *j = load(ok[i].doc);
        hr_filter_t *f;
        hr_filter_error_t err;
        if (hr_filter_compile(j, &f, &err) != 0) {
            fail_msg("%s: %s: %s", ok[i].doc, err.path, err.msg);
        }
        assert_int_equal(hr_filter_match(f, full), ok[i].full);
        assert_int_equal(hr_filter_match(f, min), ok[i].min);
        hr_filter_destroy(f);
        json_decref(j);
    }
    static const struct {
        const char *doc, *path, *needle;
    } bad[] = {
        {"[{\"cesql\": \"type = \"}]", "filters[0].cesql",
         "Invalid CloudEvents SQL expression. At character 7: expected an expression"},
        {"[{\"exact\": {\"type\": \"t\"}}, {\"sql\": \"(a\"}]", "filters[1].sql",
         "expected ')' to close"},
        {"[{\"any\": [{\"cesql\": 42}]}]", "filters[0].any[0].cesql",
         "must be a JSON string holding a CloudEvents SQL expression"},
        {"[{\"cesql\": \"FOO(type)\"}]", "filters[0].cesql", "unknown function FOO"},
        {"[{\"cesql\": \"\"}]", "filters[0].cesql", "empty"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *j = load(bad[i].doc);
        hr_filter_t *f;
        hr_filter_error_t err;
        assert_int_equal(hr_filter_compile(j, &f, &err), HR_EINVAL);
        if (strcmp(err.path, bad[i].path) != 0 || strstr(err.msg, bad[i].needle) == NULL) {
            fail_msg("%s: got %s: %s; want %s: ...%s...", bad[i].doc, err.path, err.msg,
                     bad[i].path, bad[i].needle);
        }
        json_decref(j);
    }
    hr_ce_event_free(full);
    hr_ce_event_free(min);
}

static void test_required_exact(void **state)
{
    (void)state;
    static const struct {
        const char *expr, *attr, *want;
    } cases[] = {
        {"type = 'x'", "type", "x"},
        {"type = 'x' AND subject LIKE 'eu/%'", "type", "x"},
        {"subject LIKE 'eu/%' AND (source = 's' AND TYPE = 'x')", "type", "x"},
        {"subject LIKE 'eu/%' AND (source = 's' AND TYPE = 'x')", "source", "s"},
        {"type = 'x' AND a OR b", "type", "x"}, /* type = 'x' AND (a OR b) */
        {"a OR b AND type = 'x'", "type", NULL},
        {"a AND b OR type = 'x'", "type", NULL},
        {"a XOR type = 'x'", "type", NULL},
        {"type = 'x' OR type = 'x'", "type", NULL},
        {"'x' = type", "type", NULL},
        {"type = \"x\"", "type", "x"},
        {"count = '42'", "count", "42"},
        {"type = 1", "type", NULL},
        {"type <> 'x'", "type", NULL},
        {"NOT type = 'x'", "type", NULL},
        {"(type = 'x') = TRUE", "type", NULL},
        {"type = 'x' = TRUE", "type", NULL},
        {"type = 'x'", "source", NULL},
        {"type IN ('x')", "type", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hr_cesql_t *q = compile_ok(cases[i].expr);
        const char *got = hr_cesql_required_exact(q, cases[i].attr);
        if (cases[i].want == NULL ? got != NULL : got == NULL || strcmp(got, cases[i].want) != 0) {
            fail_msg("%s [%s]: got %s, want %s", cases[i].expr, cases[i].attr, got ? got : "NULL",
                     cases[i].want ? cases[i].want : "NULL");
        }
        hr_cesql_destroy(q);
    }
    /* Through the filter, inside all. */
    json_t *j = load("[{\"all\": [{\"cesql\": \"source = '/s' AND EXISTS id\"}]}]");
    hr_filter_t *f;
    assert_int_equal(hr_filter_compile(j, &f, NULL), 0);
    assert_string_equal(hr_filter_required_exact(f, "source"), "/s");
    assert_null(hr_filter_required_exact(f, "type"));
    hr_filter_destroy(f);
    json_decref(j);
}

/* Model test: random expressions over a few attributes and values; whenever a required value
 * is reported and the expression matches an event, the event's attribute has that value. */
static uint64_t rng = 0x9E3779B97F4A7C15u;

static unsigned rnd(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

static void gen(char *buf, size_t cap, int depth)
{
    static const char *const attrs[] = {"type", "source", "subject", "count", "flag", "nope"};
    static const char *const vals[] = {"'t'", "'/s'", "'42'", "'true'", "'x'", "42", "TRUE"};
    static const char *const ops[] = {" AND ", " OR ", " XOR ", " AND ", " AND "};
    size_t len = strlen(buf);
    unsigned k = depth > 3 ? rnd(3) : rnd(7);
    switch (k) {
    case 0:
    case 1:
        snprintf(buf + len, cap - len, "%s = %s", attrs[rnd(6)], vals[rnd(7)]);
        break;
    case 2:
        snprintf(buf + len, cap - len, "%s LIKE '%%%s'", attrs[rnd(6)], rnd(2) ? "t" : "");
        break;
    case 3:
        snprintf(buf + len, cap - len, "NOT (");
        gen(buf, cap, depth + 1);
        len = strlen(buf);
        snprintf(buf + len, cap - len, ")");
        break;
    default:
        snprintf(buf + len, cap - len, "(");
        gen(buf, cap, depth + 1);
        len = strlen(buf);
        snprintf(buf + len, cap - len, "%s", ops[rnd(5)]);
        gen(buf, cap, depth + 1);
        len = strlen(buf);
        snprintf(buf + len, cap - len, ")%s", rnd(2) ? ops[rnd(5)] : "");
        if (buf[strlen(buf) - 1] == ' ') {
            gen(buf, cap, depth + 1);
        }
        break;
    }
}

static void test_required_exact_model(void **state)
{
    (void)state;
    hr_ce_event_t *evs[4] = {
        event(EV_MIN),
        event(EV_FULL),
        event("{\"specversion\":\"1.0\",\"id\":\"3\",\"source\":\"/s\",\"type\":\"x\","
              "\"subject\":\"t\",\"count\":\"42\",\"flag\":\"true\"}"),
        event("{\"specversion\":\"1.0\",\"id\":\"4\",\"source\":\"x\",\"type\":\"t\","
              "\"count\":42,\"flag\":true}"),
    };
    static const char *const attrs[] = {"type", "source", "subject", "count", "flag"};
    size_t implied = 0;
    for (int iter = 0; iter < 20000; iter++) {
        char expr[4096] = "";
        gen(expr, sizeof expr, 0);
        hr_cesql_t *q = compile_ok(expr);
        for (size_t a = 0; a < sizeof attrs / sizeof attrs[0]; a++) {
            const char *req = hr_cesql_required_exact(q, attrs[a]);
            implied += req != NULL;
            for (size_t e = 0; req != NULL && e < 4; e++) {
                const char *have = hr_ce_get(evs[e], attrs[a]);
                if (hr_cesql_match(q, evs[e]) && (have == NULL || strcmp(have, req) != 0)) {
                    fail_msg("%s: required %s = %s but event %zu has %s", expr, attrs[a], req, e,
                             have ? have : "nothing");
                }
            }
        }
        hr_cesql_destroy(q);
    }
    assert_true(implied > 1000); /* the generator does produce implied values */
    for (size_t e = 0; e < 4; e++) {
        hr_ce_event_free(evs[e]);
    }
}

/* ---- threads and timing ---- */

typedef struct worker {
    const hr_cesql_t *q;
    const hr_ce_event_t *yes, *no;
    int bad;
} worker_t;

static void *work(void *arg)
{
    worker_t *w = arg;
    for (int i = 0; i < 20000; i++) {
        if (!hr_cesql_match(w->q, w->yes) || hr_cesql_match(w->q, w->no)) {
            w->bad++;
        }
        hr_cesql_value_t v;
        if (hr_cesql_eval(w->q, w->yes, &v, NULL) != 0 || v.type != HR_CESQL_BOOLEAN || !v.b) {
            w->bad++;
        }
        hr_cesql_value_clear(&v);
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    hr_ce_event_t *yes = event(EV_FULL), *no = event(EV_MIN);
    hr_cesql_t *q = compile_ok("LOWER(CONCAT(type, '/', count)) LIKE 'com.example.%/4_' AND "
                               "LENGTH(city) = 9 AND STRING(flag) = 'true'");
    pthread_t t[4];
    worker_t w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker_t){.q = q, .yes = yes, .no = no};
        assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].bad, 0);
    }
    hr_cesql_destroy(q);
    hr_ce_event_free(yes);
    hr_ce_event_free(no);
}

static void test_timing(void **state)
{
    (void)state;
    hr_ce_event_t *ev = event(EV_FULL);
    hr_cesql_t *q = compile_ok("type = 'com.example.created' AND subject LIKE 'eu/%'");
    const int n = 200000;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    int hits = 0;
    for (int i = 0; i < n; i++) {
        hits += hr_cesql_match(q, ev);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ns = ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / n;
    print_message("hr_cesql_match(type = '...' AND subject LIKE 'eu/%%'): %.0f ns\n", ns);
    assert_int_equal(hits, n);
    /* Generous: sanitizer builds are several times slower than the < 1 us of release builds. */
    assert_true(ns < 20000);
    hr_cesql_destroy(q);
    hr_ce_event_free(ev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_errors),   cmocka_unit_test(test_limits),
        cmocka_unit_test(test_semantics),      cmocka_unit_test(test_scratch),
        cmocka_unit_test(test_eval_api),       cmocka_unit_test(test_filter_dialect),
        cmocka_unit_test(test_required_exact), cmocka_unit_test(test_required_exact_model),
        cmocka_unit_test(test_threads),        cmocka_unit_test(test_timing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
