/* SPDX-License-Identifier: MIT */
/*
 * Trigger filters: the semantics table (filter document + event -> match, no match, or the
 * path of the compile error), hr_filter_required_exact, the nesting and size limits, error
 * messages, and a model test comparing compiled filters with a direct evaluation of the JSON
 * on random filter trees.
 *
 * JSON in the tables is written with single quotes for readability; load() turns them into
 * double quotes (no test value contains an apostrophe).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ce/event.h"
#include "filter/filter.h"
#include "util/err.h"
#include "util/utf8.h"

static json_t *load(const char *text)
{
    char *s = strdup(text);
    for (char *p = s; *p; p++) {
        if (*p == '\'') {
            *p = '"';
        }
    }
    json_error_t jerr;
    json_t *j = json_loads(s, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (j == NULL) {
        fail_msg("bad test JSON %s: %s", text, jerr.text);
    }
    free(s);
    return j;
}

static hr_ce_event_t *event(const char *text)
{
    char *s = strdup(text);
    for (char *p = s; *p; p++) {
        if (*p == '\'') {
            *p = '"';
        }
    }
    hr_ce_event_t *ev = NULL;
    hr_ce_error_t err;
    if (hr_ce_from_structured((const uint8_t *)s, strlen(s), &ev, &err) != 0) {
        fail_msg("bad test event %s: %s", text, err.msg);
    }
    free(s);
    return ev;
}

/* A full event (extensions of each kind, time, UTF-8 values) and a minimal one. */
#define FULL                                                                                       \
    "{'specversion':'1.0','id':'1','source':'https://github.com/cloudevents/spec/pull',"           \
    "'type':'com.github.pull_request.opened','subject':'123',"                                     \
    "'time':'2024-03-05T10:20:30.123Z','datacontenttype':'application/json',"                      \
    "'comexampleext':'value','count':42,'flag':true,'neg':-7,'city':'Zürich/東京',"             \
    "'data':{'x':1}}"
#define MIN "{'specversion':'1.0','id':'2','source':'/s','type':'t'}"
/* Same attributes as FULL but other values: an upper-case type. */
#define UPPER                                                                                      \
    "{'specversion':'1.0','id':'3','source':'/S','type':'COM.GITHUB.PULL_REQUEST.OPENED',"         \
    "'subject':'ABC'}"

enum { NEW, LEGACY };
enum { NO, YES, ERR };

typedef struct fcase {
    int form;           /* NEW: hr_filter_compile, LEGACY: hr_filter_compile_legacy */
    const char *filter; /* JSON text */
    const char *event;  /* JSON text (unused for ERR) */
    int expect;         /* NO / YES match, or ERR */
    const char *path;   /* for ERR: the expected error path */
} fcase_t;

static const fcase_t cases[] = {
    /* ---- exact ---- */
    {NEW, "[{'exact':{'type':'com.github.pull_request.opened'}}]", FULL, YES, NULL},
    {NEW, "[{'exact':{'type':'com.github.pull_request.closed'}}]", FULL, NO, NULL},
    {NEW, "[{'exact':{'type':'COM.GITHUB.PULL_REQUEST.OPENED'}}]", FULL, NO, NULL},
    {NEW, "[{'exact':{'type':'COM.GITHUB.PULL_REQUEST.OPENED'}}]", UPPER, YES, NULL},
    {NEW, "[{'exact':{'type':'com.github.pull_request.opened','subject':'123'}}]", FULL, YES, NULL},
    {NEW, "[{'exact':{'type':'com.github.pull_request.opened','subject':'124'}}]", FULL, NO, NULL},
    {NEW, "[{'exact':{'subject':'123'}}]", MIN, NO, NULL},
    {NEW, "[{'exact':{'type':'com.github'}}]", FULL, NO, NULL},
    {NEW, "[{'exact':{'comexampleext':'value'}}]", FULL, YES, NULL},
    {NEW, "[{'exact':{'comexampleext':'value'}}]", MIN, NO, NULL},
    {NEW, "[{'exact':{'count':'42'}}]", FULL, YES, NULL},
    {NEW, "[{'exact':{'count':'042'}}]", FULL, NO, NULL},
    {NEW, "[{'exact':{'count':'42.0'}}]", FULL, NO, NULL},
    {NEW, "[{'exact':{'neg':'-7'}}]", FULL, YES, NULL},
    {NEW, "[{'exact':{'flag':'true'}}]", FULL, YES, NULL},
    {NEW, "[{'exact':{'flag':'True'}}]", FULL, NO, NULL},
    {NEW, "[{'exact':{'time':'2024-03-05T10:20:30.123Z'}}]", FULL, YES, NULL},
    {NEW, "[{'exact':{'time':'2024-03-05T10:20:30.123+00:00'}}]", FULL, NO, NULL},
    {NEW, "[{'exact':{'time':'2024-03-05T10:20:30.123Z'}}]", MIN, NO, NULL},
    {NEW, "[{'exact':{'specversion':'1.0','id':'1'}}]", FULL, YES, NULL},
    {NEW, "[{'exact':{'datacontenttype':'application/json'}}]", FULL, YES, NULL},
    {NEW, "[{'exact':{'city':'Zürich/東京'}}]", FULL, YES, NULL},
    {NEW, "[{'exact':{'city':'Zurich/東京'}}]", FULL, NO, NULL},
    {NEW, "[{'exact':{'data':'x'}}]", FULL, NO, NULL},
    /* ---- prefix ---- */
    {NEW, "[{'prefix':{'type':'com.github.'}}]", FULL, YES, NULL},
    {NEW, "[{'prefix':{'type':'com.gitlab.'}}]", FULL, NO, NULL},
    {NEW, "[{'prefix':{'type':'com.github.pull_request.opened'}}]", FULL, YES, NULL},
    {NEW, "[{'prefix':{'type':'com.github.pull_request.opened.x'}}]", FULL, NO, NULL},
    {NEW, "[{'prefix':{'type':'Com.github.'}}]", FULL, NO, NULL},
    {NEW, "[{'prefix':{'subject':'1'}}]", MIN, NO, NULL},
    {NEW, "[{'prefix':{'time':'2024-03'}}]", FULL, YES, NULL},
    {NEW, "[{'prefix':{'time':'2023'}}]", FULL, NO, NULL},
    {NEW, "[{'prefix':{'time':'2024'}}]", MIN, NO, NULL},
    {NEW, "[{'prefix':{'city':'Zü'}}]", FULL, YES, NULL},
    {NEW, "[{'prefix':{'city':'Zu'}}]", FULL, NO, NULL},
    {NEW, "[{'prefix':{'city':'Zürich/東'}}]", FULL, YES, NULL},
    {NEW, "[{'prefix':{'count':'4'}}]", FULL, YES, NULL},
    {NEW, "[{'prefix':{'type':'com.','source':'https://'}}]", FULL, YES, NULL},
    {NEW, "[{'prefix':{'type':'com.','source':'http://'}}]", FULL, NO, NULL},
    /* ---- suffix ---- */
    {NEW, "[{'suffix':{'type':'.opened'}}]", FULL, YES, NULL},
    {NEW, "[{'suffix':{'type':'.closed'}}]", FULL, NO, NULL},
    {NEW, "[{'suffix':{'type':'.OPENED'}}]", FULL, NO, NULL},
    {NEW, "[{'suffix':{'type':'com.github.pull_request.opened'}}]", FULL, YES, NULL},
    {NEW, "[{'suffix':{'type':'x.com.github.pull_request.opened'}}]", FULL, NO, NULL},
    {NEW, "[{'suffix':{'subject':'3'}}]", MIN, NO, NULL},
    {NEW, "[{'suffix':{'city':'東京'}}]", FULL, YES, NULL},
    {NEW, "[{'suffix':{'city':'京'}}]", FULL, YES, NULL},
    {NEW, "[{'suffix':{'city':'東'}}]", FULL, NO, NULL},
    {NEW, "[{'suffix':{'time':'Z'}}]", FULL, YES, NULL},
    {NEW, "[{'suffix':{'flag':'ue'}}]", FULL, YES, NULL},
    {NEW, "[{'suffix':{'type':'.opened','subject':'23'}}]", FULL, YES, NULL},
    {NEW, "[{'suffix':{'type':'.opened','subject':'24'}}]", FULL, NO, NULL},
    /* ---- all ---- */
    {NEW,
     "[{'all':[{'exact':{'type':'com.github.pull_request.opened'}},{'prefix':{'subject':'1'}}]}]",
     FULL, YES, NULL},
    {NEW,
     "[{'all':[{'exact':{'type':'com.github.pull_request.opened'}},{'prefix':{'subject':'2'}}]}]",
     FULL, NO, NULL},
    {NEW, "[{'all':[{'exact':{'type':'t'}}]}]", MIN, YES, NULL},
    {NEW, "[{'all':[{'exact':{'type':'t'}},{'exact':{'subject':'x'}}]}]", MIN, NO, NULL},
    {NEW, "[{'all':[{'all':[{'all':[{'suffix':{'source':'/s'}}]}]}]}]", MIN, YES, NULL},
    /* ---- any ---- */
    {NEW, "[{'any':[{'exact':{'type':'t'}},{'exact':{'type':'u'}}]}]", MIN, YES, NULL},
    {NEW, "[{'any':[{'exact':{'type':'u'}},{'exact':{'type':'t'}}]}]", MIN, YES, NULL},
    {NEW, "[{'any':[{'exact':{'type':'u'}},{'exact':{'type':'v'}}]}]", MIN, NO, NULL},
    {NEW, "[{'any':[{'exact':{'subject':'123'}},{'prefix':{'source':'/'}}]}]", MIN, YES, NULL},
    {NEW, "[{'any':[{'exact':{'subject':'123'}},{'suffix':{'time':'Z'}}]}]", MIN, NO, NULL},
    {NEW, "[{'any':[{'exact':{'subject':'123'}},{'suffix':{'time':'Z'}}]}]", FULL, YES, NULL},
    /* ---- not ---- */
    {NEW, "[{'not':{'exact':{'type':'t'}}}]", MIN, NO, NULL},
    {NEW, "[{'not':{'exact':{'type':'u'}}}]", MIN, YES, NULL},
    {NEW, "[{'not':{'exact':{'subject':'123'}}}]", MIN, YES, NULL},
    {NEW, "[{'not':{'exact':{'subject':'123'}}}]", FULL, NO, NULL},
    {NEW, "[{'not':{'prefix':{'subject':'1'}}}]", MIN, YES, NULL},
    {NEW, "[{'not':{'suffix':{'comexampleext':'e'}}}]", MIN, YES, NULL},
    {NEW, "[{'not':{'suffix':{'comexampleext':'e'}}}]", FULL, NO, NULL},
    {NEW, "[{'not':{'not':{'exact':{'type':'t'}}}}]", MIN, YES, NULL},
    {NEW, "[{'not':{'not':{'exact':{'subject':'x'}}}}]", MIN, NO, NULL},
    {NEW, "[{'not':{'any':[{'exact':{'type':'u'}},{'exact':{'type':'v'}}]}}]", MIN, YES, NULL},
    {NEW, "[{'not':{'all':[{'exact':{'type':'t'}},{'exact':{'source':'/s'}}]}}]", MIN, NO, NULL},
    /* ---- deeper nesting ---- */
    {NEW,
     "[{'all':[{'any':[{'exact':{'type':'nope'}},{'not':{'prefix':{'subject':'9'}}}]},"
     "{'not':{'suffix':{'source':'/x'}}}]}]",
     FULL, YES, NULL},
    {NEW,
     "[{'any':[{'all':[{'not':{'any':[{'exact':{'type':'t'}},{'exact':{'type':'u'}}]}},"
     "{'exact':{'id':'2'}}]},{'not':{'not':{'not':{'prefix':{'source':'/'}}}}}]}]",
     MIN, NO, NULL},
    {NEW,
     "[{'any':[{'all':[{'not':{'any':[{'exact':{'type':'x'}},{'exact':{'type':'u'}}]}},"
     "{'exact':{'id':'2'}}]},{'not':{'not':{'not':{'prefix':{'source':'/'}}}}}]}]",
     MIN, YES, NULL},
    {NEW, "[{'not':{'all':[{'any':[{'not':{'exact':{'flag':'true'}}}]}]}}]", FULL, YES, NULL},
    {NEW, "[{'not':{'all':[{'any':[{'not':{'exact':{'flag':'true'}}}]}]}}]", MIN, NO, NULL},
    /* ---- the top-level list ---- */
    {NEW, "[]", FULL, YES, NULL},
    {NEW, "[]", MIN, YES, NULL},
    {NEW, "null", MIN, YES, NULL},
    {NEW, "[{'exact':{'type':'t'}},{'exact':{'source':'/s'}}]", MIN, YES, NULL},
    {NEW, "[{'exact':{'type':'t'}},{'exact':{'source':'/x'}}]", MIN, NO, NULL},
    {NEW,
     "[{'prefix':{'type':'com.'}},{'suffix':{'type':'.opened'}},{'not':{'exact':{'flag':'false'}}}"
     "]",
     FULL, YES, NULL},
    /* ---- legacy form ---- */
    {LEGACY, "{'attributes':{'type':'com.github.pull_request.opened'}}", FULL, YES, NULL},
    {LEGACY, "{'attributes':{'type':'com.github.pull_request.closed'}}", FULL, NO, NULL},
    {LEGACY, "{'attributes':{'type':'COM.GITHUB.PULL_REQUEST.OPENED'}}", FULL, NO, NULL},
    {LEGACY, "{'attributes':{'type':'t','source':''}}", MIN, YES, NULL},
    {LEGACY, "{'attributes':{'subject':''}}", MIN, NO, NULL},
    {LEGACY, "{'attributes':{'subject':''}}", FULL, YES, NULL},
    {LEGACY, "{'attributes':{'count':'42','flag':'true'}}", FULL, YES, NULL},
    {LEGACY, "{'attributes':{'count':''}}", MIN, NO, NULL},
    {LEGACY, "{'attributes':{'type':'t','source':'/x'}}", MIN, NO, NULL},
    {LEGACY, "{'attributes':{'city':'Zürich/東京'}}", FULL, YES, NULL},
    {LEGACY, "{}", MIN, YES, NULL},
    {LEGACY, "{'attributes':{}}", MIN, YES, NULL},
    {LEGACY, "{'attributes':null}", MIN, YES, NULL},
    {LEGACY, "null", FULL, YES, NULL},
    /* ---- invalid: the filters list ---- */
    {NEW, "{'exact':{'type':'t'}}", NULL, ERR, "filters"},
    {NEW, "'type'", NULL, ERR, "filters"},
    {NEW, "['exact']", NULL, ERR, "filters[0]"},
    {NEW, "[{'exact':{'type':'t'}},[]]", NULL, ERR, "filters[1]"},
    {NEW, "[{}]", NULL, ERR, "filters[0]"},
    {NEW, "[{'exact':{'type':'t'},'prefix':{'type':'t'}}]", NULL, ERR, "filters[0]"},
    {NEW, "[{'regex':{'type':'t'}}]", NULL, ERR, "filters[0].regex"},
    {NEW, "[{'Exact':{'type':'t'}}]", NULL, ERR, "filters[0].Exact"},
    {NEW, "[{'cesql':'type = \\u0027t\\u0027'}]", MIN, YES, NULL},
    {NEW, "[{'pattern':{'type':'t'}}]", NULL, ERR, "filters[0].pattern.type"},
    {NEW, "[{'sql':'true'}]", MIN, YES, NULL},
    /* ---- invalid: attribute conditions ---- */
    {NEW, "[{'exact':'type'}]", NULL, ERR, "filters[0].exact"},
    {NEW, "[{'prefix':['type']}]", NULL, ERR, "filters[0].prefix"},
    {NEW, "[{'exact':{}}]", NULL, ERR, "filters[0].exact"},
    {NEW, "[{'exact':{'Type':'t'}}]", NULL, ERR, "filters[0].exact.Type"},
    {NEW, "[{'exact':{'type':'t','1abc':'x'}}]", NULL, ERR, "filters[0].exact.1abc"},
    {NEW, "[{'exact':{'my-ext':'x'}}]", NULL, ERR, "filters[0].exact.my-ext"},
    {NEW, "[{'exact':{'my_ext':'x'}}]", NULL, ERR, "filters[0].exact.my_ext"},
    {NEW, "[{'suffix':{'':'x'}}]", NULL, ERR, "filters[0].suffix."},
    {NEW, "[{'exact':{'tÿpe':'x'}}]", NULL, ERR, "filters[0].exact.tÿpe"},
    {NEW, "[{'exact':{'a\\tb':'x'}}]", NULL, ERR, "filters[0].exact.a?b"},
    {NEW, "[{'exact':{'count':42}}]", NULL, ERR, "filters[0].exact.count"},
    {NEW, "[{'exact':{'flag':true}}]", NULL, ERR, "filters[0].exact.flag"},
    {NEW, "[{'prefix':{'type':null}}]", NULL, ERR, "filters[0].prefix.type"},
    {NEW, "[{'exact':{'type':''}}]", NULL, ERR, "filters[0].exact.type"},
    {NEW, "[{'prefix':{'type':''}}]", NULL, ERR, "filters[0].prefix.type"},
    {NEW, "[{'suffix':{'type':'x','subject':''}}]", NULL, ERR, "filters[0].suffix.subject"},
    {NEW, "[{'exact':{'type':'a\\u0000b'}}]", NULL, ERR, "filters[0].exact.type"},
    {NEW, "[{'exact':{'abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcde':'x'}}]",
     NULL, ERR,
     "filters[0].exact.abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcde"},
    /* ---- invalid: composites ---- */
    {NEW, "[{'exact':{'type':'t'}},{'all':{'exact':{'type':'t'}}}]", NULL, ERR, "filters[1].all"},
    {NEW, "[{'all':[]}]", NULL, ERR, "filters[0].all"},
    {NEW, "[{'any':[]}]", NULL, ERR, "filters[0].any"},
    {NEW, "[{'any':'x'}]", NULL, ERR, "filters[0].any"},
    {NEW, "[{'not':[{'exact':{'type':'t'}}]}]", NULL, ERR, "filters[0].not"},
    {NEW, "[{'not':{}}]", NULL, ERR, "filters[0].not"},
    {NEW, "[{'not':{'exact':{'type':'t'},'prefix':{'type':'t'}}}]", NULL, ERR, "filters[0].not"},
    {NEW, "[{'all':[{'exact':{'type':'t'}},7]}]", NULL, ERR, "filters[0].all[1]"},
    {NEW,
     "[{'exact':{'type':'t'}},{'any':[{'all':[{'exact':{'type':'t'}},{'exact':{'Type':'t'}}]}]}]",
     NULL, ERR, "filters[1].any[0].all[1].exact.Type"},
    {NEW, "[{'not':{'not':{'any':[{'cesql':'true'}]}}}]", MIN, YES, NULL},
    /* ---- invalid: legacy form ---- */
    {LEGACY, "[{'attributes':{'type':'t'}}]", NULL, ERR, "filter"},
    {LEGACY, "{'exact':{'type':'t'}}", NULL, ERR, "filter.exact"},
    {LEGACY, "{'attributes':{'type':'t'},'extra':1}", NULL, ERR, "filter.extra"},
    {LEGACY, "{'attributes':'type'}", NULL, ERR, "filter.attributes"},
    {LEGACY, "{'attributes':{'Type':'t'}}", NULL, ERR, "filter.attributes.Type"},
    {LEGACY, "{'attributes':{'type':'t','count':42}}", NULL, ERR, "filter.attributes.count"},
    {LEGACY, "{'attributes':{'type':'a\\u0000'}}", NULL, ERR, "filter.attributes.type"},
};

static int compile(int form, const json_t *j, hr_filter_t **f, hr_filter_error_t *err)
{
    return form == LEGACY ? hr_filter_compile_legacy(j, f, err) : hr_filter_compile(j, f, err);
}

static void test_table(void **state)
{
    (void)state;
    size_t n = sizeof cases / sizeof cases[0], n_err = 0;
    for (size_t i = 0; i < n; i++) {
        const fcase_t *c = &cases[i];
        json_t *j = load(c->filter);
        hr_filter_t *f = (hr_filter_t *)1;
        hr_filter_error_t err;
        memset(&err, 0x55, sizeof err);
        int rc = compile(c->form, j, &f, &err);
        if (c->expect == ERR) {
            n_err++;
            if (rc != HR_EINVAL) {
                fail_msg("case %zu %s: compiled, expected an error at %s", i, c->filter, c->path);
            }
            assert_null(f);
            if (strcmp(err.path, c->path) != 0) {
                fail_msg("case %zu %s: error at \"%s\" (%s), expected \"%s\"", i, c->filter,
                         err.path, err.msg, c->path);
            }
            /* A full sentence, printable UTF-8. */
            size_t len = strlen(err.msg);
            assert_true(len > 30);
            assert_true((err.msg[0] >= 'A' && err.msg[0] <= 'Z') || err.msg[0] == '"');
            assert_true(err.msg[len - 1] == '.' || err.msg[len - 1] == ')');
            assert_true(hr_utf8_valid(err.msg, len, NULL));
            assert_true(hr_utf8_valid(err.path, strlen(err.path), NULL));
        } else {
            if (rc != 0) {
                fail_msg("case %zu %s: compile failed at %s: %s", i, c->filter, err.path, err.msg);
            }
            hr_ce_event_t *ev = event(c->event);
            bool m = hr_filter_match(f, ev);
            if (m != (c->expect == YES)) {
                fail_msg("case %zu %s on %s: match %d, expected %d", i, c->filter, c->event, m,
                         c->expect == YES);
            }
            hr_ce_event_free(ev);
            hr_filter_destroy(f);
        }
        json_decref(j);
    }
    assert_true(n >= 60);
    assert_true(n_err >= 15);
    print_message("%zu filter cases (%zu invalid)\n", n, n_err);
}

/* The compile error does not depend on err being given, and NULL filters match everything. */
static void test_api_edges(void **state)
{
    (void)state;
    json_t *j = load("[{'exact':{'type':''}}]");
    hr_filter_t *f = (hr_filter_t *)1;
    assert_int_equal(hr_filter_compile(j, &f, NULL), HR_EINVAL);
    assert_null(f);
    json_decref(j);

    hr_ce_event_t *ev = event(MIN);
    assert_int_equal(hr_filter_compile(NULL, &f, NULL), 0);
    assert_true(hr_filter_match(f, ev));
    assert_null(hr_filter_required_exact(f, "type"));
    hr_filter_destroy(f);
    assert_int_equal(hr_filter_compile_legacy(NULL, &f, NULL), 0);
    assert_true(hr_filter_match(f, ev));
    hr_filter_destroy(f);
    hr_filter_destroy(NULL);

    /* The filter keeps nothing borrowed from the document. */
    j = load("[{'exact':{'type':'t'}}]");
    assert_int_equal(hr_filter_compile(j, &f, NULL), 0);
    json_decref(j);
    assert_true(hr_filter_match(f, ev));
    assert_string_equal(hr_filter_required_exact(f, "type"), "t");
    hr_filter_destroy(f);
    hr_ce_event_free(ev);
}

static void test_required_exact(void **state)
{
    (void)state;
    static const struct {
        int form;
        const char *filter, *attr, *want; /* want NULL: none implied */
    } rq[] = {
        {NEW, "[{'exact':{'type':'a'}}]", "type", "a"},
        {NEW, "[{'exact':{'type':'a','source':'/s'}}]", "source", "/s"},
        {NEW, "[{'exact':{'type':'a'}}]", "source", NULL},
        {NEW, "[{'prefix':{'type':'a'}}]", "type", NULL},
        {NEW, "[{'suffix':{'type':'a'}}]", "type", NULL},
        {NEW, "[{'prefix':{'type':'a'}},{'exact':{'type':'a.b'}}]", "type", "a.b"},
        {NEW, "[{'all':[{'prefix':{'source':'/'}},{'exact':{'type':'b'}}]}]", "type", "b"},
        {NEW, "[{'all':[{'all':[{'exact':{'type':'c'}}]}]}]", "type", "c"},
        {NEW, "[{'not':{'exact':{'type':'a'}}}]", "type", NULL},
        {NEW, "[{'not':{'not':{'exact':{'type':'a'}}}}]", "type", NULL},
        {NEW, "[{'any':[{'exact':{'type':'a'}},{'exact':{'type':'b'}}]}]", "type", NULL},
        {NEW, "[{'any':[{'exact':{'type':'a'}},{'prefix':{'type':'a'}}]}]", "type", NULL},
        {NEW, "[{'any':[{'exact':{'type':'a','id':'1'}},{'exact':{'type':'a'}}]}]", "type", "a"},
        {NEW, "[{'any':[{'exact':{'type':'a'}}]}]", "type", "a"},
        {NEW, "[]", "type", NULL},
        {NEW, "[{'exact':{'count':'42'}}]", "count", "42"},
        {LEGACY, "{'attributes':{'type':'x','source':''}}", "type", "x"},
        {LEGACY, "{'attributes':{'type':'x','source':''}}", "source", NULL},
        {LEGACY, "{'attributes':{}}", "type", NULL},
        {LEGACY, "{}", "type", NULL},
    };
    for (size_t i = 0; i < sizeof rq / sizeof rq[0]; i++) {
        json_t *j = load(rq[i].filter);
        hr_filter_t *f;
        hr_filter_error_t err;
        assert_int_equal(compile(rq[i].form, j, &f, &err), 0);
        const char *got = hr_filter_required_exact(f, rq[i].attr);
        if (rq[i].want == NULL ? got != NULL : (got == NULL || strcmp(got, rq[i].want) != 0)) {
            fail_msg("case %zu %s [%s]: got %s, want %s", i, rq[i].filter, rq[i].attr,
                     got ? got : "NULL", rq[i].want ? rq[i].want : "NULL");
        }
        hr_filter_destroy(f);
        json_decref(j);
    }
}

/* {"not": ... } nested `depth` times around an exact, as one top-level filter. */
static json_t *nested_not(int depth)
{
    json_t *j = load("{'exact':{'type':'t'}}");
    for (int i = 1; i < depth; i++) {
        json_t *o = json_object();
        json_object_set_new(o, "not", j);
        j = o;
    }
    json_t *arr = json_array();
    json_array_append_new(arr, j);
    return arr;
}

static void test_limits(void **state)
{
    (void)state;
    hr_filter_t *f;
    hr_filter_error_t err;
    hr_ce_event_t *ev = event(MIN);

    /* 32 nested filter objects compile; 31 nots around the exact: the exact is negated. */
    json_t *j = nested_not(HR_FILTER_MAX_DEPTH);
    assert_int_equal(hr_filter_compile(j, &f, &err), 0);
    assert_false(hr_filter_match(f, ev));
    hr_filter_destroy(f);
    json_decref(j);
    /* 33 do not; the error points at the 33rd object, its path cut with "...". */
    j = nested_not(HR_FILTER_MAX_DEPTH + 1);
    assert_int_equal(hr_filter_compile(j, &f, &err), HR_EINVAL);
    assert_null(f);
    char want[256] = "filters[0]";
    for (int i = 0; i < HR_FILTER_MAX_DEPTH; i++) {
        strcat(want, ".not");
    }
    size_t plen = strlen(err.path);
    assert_int_equal(plen, sizeof err.path - 1);
    assert_string_equal(err.path + plen - 3, "...");
    assert_memory_equal(err.path, want, plen - 3);
    assert_non_null(strstr(err.msg, "nested too deeply"));
    json_decref(j);

    /* The node budget counts filter objects and attribute conditions: exactly
     * HR_FILTER_MAX_NODES fit. Each {"not": {"exact": {1 term}}} costs 3. */
    j = json_array();
    json_array_append_new(j, load("{'exact':{'type':'t'}}")); /* 2 */
    for (int i = 0; i < 340; i++) {                           /* + 340 x 3 = 1022 */
        json_array_append_new(j, load("{'not':{'exact':{'type':'u'}}}"));
    }
    static const struct {
        const char *filter, *path; /* path NULL: compiles */
    } last[] = {
        {"{'prefix':{'source':'/'}}", NULL},                           /* 1024 */
        {"{'prefix':{'source':'/','id':'2'}}", "filters[341].prefix"}, /* 1025 */
        {"{'not':{'exact':{'type':'u'}}}", "filters[341].not.exact"},  /* 1025 */
        {"{'any':[{'exact':{'id':'2'}}]}", "filters[341].any[0].exact"},
        {"{'not':{'not':{'exact':{'id':'2'}}}}", "filters[341].not.not"},
    };
    for (size_t i = 0; i < sizeof last / sizeof last[0]; i++) {
        json_array_append_new(j, load(last[i].filter));
        int rc = hr_filter_compile(j, &f, &err);
        if (last[i].path == NULL) {
            assert_int_equal(rc, 0);
            assert_true(hr_filter_match(f, ev));
            hr_filter_destroy(f);
        } else {
            assert_int_equal(rc, HR_EINVAL);
            assert_null(f);
            assert_string_equal(err.path, last[i].path);
            assert_non_null(strstr(err.msg, "too large"));
        }
        json_array_remove(j, json_array_size(j) - 1);
    }
    json_array_append_new(j, load("{'all':[]}")); /* 1023: within budget, but empty */
    assert_int_equal(hr_filter_compile(j, &f, &err), HR_EINVAL);
    assert_string_equal(err.path, "filters[341].all");
    assert_non_null(strstr(err.msg, "at least one filter"));
    json_decref(j);

    /* A huge list is refused before anything is allocated for it. */
    j = json_array();
    json_t *big = json_array();
    for (int i = 0; i < 5000; i++) {
        json_array_append_new(big, json_integer(i));
    }
    json_t *o = json_object();
    json_object_set_new(o, "all", big);
    json_array_append_new(j, o);
    assert_int_equal(hr_filter_compile(j, &f, &err), HR_EINVAL);
    assert_string_equal(err.path, "filters[0].all");
    assert_non_null(strstr(err.msg, "too large"));
    json_decref(j);

    /* An exact with more terms than the budget. */
    j = json_array();
    o = json_object();
    json_t *terms = json_object();
    for (int i = 0; i < HR_FILTER_MAX_NODES; i++) {
        char name[16];
        snprintf(name, sizeof name, "a%d", i);
        json_object_set_new(terms, name, json_string("v"));
    }
    json_object_set_new(o, "exact", terms);
    json_array_append_new(j, o);
    assert_int_equal(hr_filter_compile(j, &f, &err), HR_EINVAL);
    assert_string_equal(err.path, "filters[0].exact");
    json_decref(j);
    hr_ce_event_free(ev);
}

static void expect_msg(int form, const char *filter, const char *path, const char *needle)
{
    json_t *j = load(filter);
    hr_filter_t *f;
    hr_filter_error_t err;
    assert_int_equal(compile(form, j, &f, &err), HR_EINVAL);
    if (strcmp(err.path, path) != 0 || strstr(err.msg, needle) == NULL) {
        fail_msg("%s: got %s: %s; want %s: ...%s...", filter, err.path, err.msg, path, needle);
    }
    json_decref(j);
}

/* The messages name the problem and the expected form. */
static void test_messages(void **state)
{
    (void)state;
    expect_msg(NEW, "[{'cesql':'type ='}]", "filters[0].cesql",
               "At character 6: expected an expression");
    expect_msg(NEW, "[{'pattern':{}}]", "filters[0].pattern", "empty objects are not allowed");
    expect_msg(NEW, "[{'regex':{}}]", "filters[0].regex",
               "Unknown filter dialect \"regex\"; expected one of exact, prefix");
    expect_msg(NEW, "[{'exact':{'Type':'t'}}]", "filters[0].exact.Type", "did you mean \"type\"");
    expect_msg(NEW, "[{'exact':{'my-ext':'t'}}]", "filters[0].exact.my-ext", "^[a-z][a-z0-9]*$");
    expect_msg(NEW, "[{'exact':{'count':42}}]", "filters[0].exact.count",
               "must be a JSON string; got an integer");
    expect_msg(NEW, "[{'exact':{'type':''}}]", "filters[0].exact.type",
               "must not be an empty string");
    expect_msg(NEW, "[{'exact':{'type':'t'},'suffix':{'type':'t'},'all':[]}]", "filters[0]",
               "has 3 (\"exact\", \"suffix\", ...)");
    expect_msg(NEW, "[{'any':[]}]", "filters[0].any", "must contain at least one filter");
    expect_msg(NEW, "[{'not':[]}]", "filters[0].not", "must be one filter object");
    expect_msg(NEW, "{}", "filters", "must be a JSON array of filter objects");
    expect_msg(NEW, "[3]", "filters[0]", "got an integer");
    expect_msg(LEGACY, "{'attributes':[]}", "filter.attributes", "got an array");
    expect_msg(LEGACY, "{'any':[]}", "filter.any", "Unknown member \"any\"");

    /* A long key is shortened in the message and cut at a character boundary in the path. */
    char key[300], doc[400];
    memset(key, 0, sizeof key);
    for (size_t i = 0; i + 2 < 250; i += 2) {
        memcpy(key + i, "é", 2); /* 2 bytes each */
    }
    snprintf(doc, sizeof doc, "[{'exact':{'%s':'x'}}]", key);
    json_t *j = load(doc);
    hr_filter_t *f;
    hr_filter_error_t err;
    assert_int_equal(hr_filter_compile(j, &f, &err), HR_EINVAL);
    assert_true(strlen(err.path) < sizeof err.path);
    assert_true(hr_utf8_valid(err.path, strlen(err.path), NULL));
    assert_true(hr_utf8_valid(err.msg, strlen(err.msg), NULL));
    assert_non_null(strstr(err.msg, "...\""));
    assert_memory_equal(err.path, "filters[0].exact.éé", strlen("filters[0].exact.éé"));
    json_decref(j);
}

/* ---- model test: random filter trees against a direct evaluation of the JSON ---- */

static const char *const m_attrs[] = {"type", "source", "subject", "count", "flag", "city", "zz"};
static const char *const m_values[] = {"t",
                                       "com.github.pull_request.opened",
                                       "/s",
                                       "com.",
                                       ".opened",
                                       "1",
                                       "123",
                                       "42",
                                       "4",
                                       "2",
                                       "true",
                                       "e",
                                       "Zü",
                                       "東京",
                                       "https://github.com/cloudevents/spec/pull"};

static uint64_t rng_state = 0x9E3779B97F4A7C15u;
static unsigned rnd(unsigned n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (unsigned)(rng_state % n);
}

static json_t *gen(int depth)
{
    static const char *const leaf[] = {"exact", "prefix", "suffix"};
    json_t *o = json_object();
    unsigned k = depth >= 4 ? rnd(3) : rnd(6);
    if (k < 3) {
        json_t *m = json_object();
        unsigned n = 1 + rnd(2);
        for (unsigned i = 0; i < n; i++) {
            json_object_set_new(m, m_attrs[rnd(7)], json_string(m_values[rnd(15)]));
        }
        json_object_set_new(o, leaf[k], m);
    } else if (k == 5) {
        json_object_set_new(o, "not", gen(depth + 1));
    } else {
        json_t *a = json_array();
        unsigned n = 1 + rnd(3);
        for (unsigned i = 0; i < n; i++) {
            json_array_append_new(a, gen(depth + 1));
        }
        json_object_set_new(o, k == 3 ? "all" : "any", a);
    }
    return o;
}

static bool model_eval(const json_t *o, const hr_ce_event_t *ev)
{
    const char *key = json_object_iter_key(json_object_iter((json_t *)o));
    const json_t *v = json_object_iter_value(json_object_iter((json_t *)o));
    if (strcmp(key, "not") == 0) {
        return !model_eval(v, ev);
    }
    if (strcmp(key, "all") == 0 || strcmp(key, "any") == 0) {
        bool all = key[1] == 'l', r = all;
        for (size_t i = 0; i < json_array_size(v); i++) {
            bool m = model_eval(json_array_get(v, i), ev);
            r = all ? (r && m) : (r || m);
        }
        return r;
    }
    const char *a;
    json_t *want;
    json_object_foreach((json_t *)v, a, want)
    {
        const char *got = hr_ce_get(ev, a), *w = json_string_value(want);
        if (got == NULL) {
            return false;
        }
        size_t gl = strlen(got), wl = strlen(w);
        bool ok = key[0] == 'e'   ? strcmp(got, w) == 0
                  : key[0] == 'p' ? gl >= wl && memcmp(got, w, wl) == 0
                                  : gl >= wl && memcmp(got + gl - wl, w, wl) == 0;
        if (!ok) {
            return false;
        }
    }
    return true;
}

static void test_model(void **state)
{
    (void)state;
    hr_ce_event_t *evs[] = {event(FULL), event(MIN), event(UPPER)};
    size_t matched = 0, total = 0;
    for (int round = 0; round < 3000; round++) {
        json_t *arr = json_array();
        unsigned n = rnd(3);
        for (unsigned i = 0; i < n; i++) {
            json_array_append_new(arr, gen(1));
        }
        hr_filter_t *f;
        hr_filter_error_t err;
        if (hr_filter_compile(arr, &f, &err) != 0) {
            fail_msg("generated filter rejected at %s: %s", err.path, err.msg);
        }
        for (size_t e = 0; e < 3; e++) {
            bool want = true;
            for (size_t i = 0; i < n; i++) {
                want = want && model_eval(json_array_get(arr, i), evs[e]);
            }
            bool got = hr_filter_match(f, evs[e]);
            if (got != want) {
                char *s = json_dumps(arr, JSON_COMPACT);
                fail_msg("filter %s on event %zu: got %d, model %d", s, e, got, want);
            }
            /* A required exact value is a necessary condition of a match. */
            for (size_t a = 0; a < 7 && got; a++) {
                const char *r = hr_filter_required_exact(f, m_attrs[a]);
                const char *v = hr_ce_get(evs[e], m_attrs[a]);
                assert_true(r == NULL || (v != NULL && strcmp(r, v) == 0));
            }
            matched += got;
            total++;
        }
        hr_filter_destroy(f);
        json_decref(arr);
    }
    /* The generator exercises both outcomes. */
    assert_true(matched > total / 20 && matched < total - total / 20);
    for (size_t e = 0; e < 3; e++) {
        hr_ce_event_free(evs[e]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),          cmocka_unit_test(test_api_edges),
        cmocka_unit_test(test_required_exact), cmocka_unit_test(test_limits),
        cmocka_unit_test(test_messages),       cmocka_unit_test(test_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
