/* SPDX-License-Identifier: MIT */
/*
 * `herald publish`: sends one CloudEvent built from the command line, in the HTTP binding's
 * binary mode (ce- headers, the default) or structured mode (application/cloudevents+json), or
 * a batch file as is (application/cloudevents-batch+json), to POST /v1/buses/{bus}/events.
 * Called by hr_cli_main on the main thread.
 *
 * Data typing, the same in both modes so that both store the same event:
 *   - --datacontenttype wins; without it, data that parses as JSON is application/json, other
 *     valid UTF-8 is text/plain, anything else application/octet-stream; no data, no type.
 *   - JSON data (a JSON content type and data that parses) is sent as its exact text, minus
 *     surrounding whitespace; in structured mode it is embedded as a JSON value, byte for byte.
 *     Other UTF-8 data is embedded as a string, other bytes as data_base64.
 */
#include "cli/cli.h"
#include "cli/client.h"
#include "util/alloc.h"
#include "util/base64.h"
#include "util/buf.h"
#include "util/rfc3339.h"
#include "util/utf8.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/types.h>

typedef struct publish_opts {
    const char *po_type;
    const char *po_source;
    const char *po_id;
    const char *po_subject;
    const char *po_time;
    const char *po_datacontenttype;
    const char *po_dataschema;
    hr_cli_strlist_t po_ext; /* "name=value" */
    const char *po_data;
    const char *po_file;
    const char *po_mode;
    const char *po_batch;
} publish_opts_t;

#define OPT(name, field, kind, metavar, help)                                                      \
    {                                                                                              \
        name, 0, kind, offsetof(publish_opts_t, field), metavar, help                              \
    }

static const hr_cli_opt_t publish_opts[] = {
    OPT("type", po_type, HR_CLI_OPT_STR, "TYPE", "event type (required)"),
    OPT("source", po_source, HR_CLI_OPT_STR, "URI", "event source (required)"),
    OPT("id", po_id, HR_CLI_OPT_STR, "ID", "event id (default: a random UUID)"),
    OPT("subject", po_subject, HR_CLI_OPT_STR, "SUBJECT", "event subject"),
    OPT("time", po_time, HR_CLI_OPT_STR, "RFC3339", "event time, e.g. 2026-11-29T23:06:06Z"),
    OPT("datacontenttype", po_datacontenttype, HR_CLI_OPT_STR, "TYPE",
        "media type of the data (default: guessed, see above)"),
    OPT("dataschema", po_dataschema, HR_CLI_OPT_STR, "URI", "schema of the data"),
    OPT("ext", po_ext, HR_CLI_OPT_LIST, "NAME=VALUE", "extension attribute (repeatable)"),
    OPT("data", po_data, HR_CLI_OPT_STR, "STRING", "the event's data"),
    OPT("file", po_file, HR_CLI_OPT_STR, "PATH", "read the data from PATH (- for stdin)"),
    OPT("mode", po_mode, HR_CLI_OPT_STR, "MODE", "binary (default) or structured"),
    OPT("batch", po_batch, HR_CLI_OPT_STR, "FILE",
        "send the JSON array of events in FILE (- for stdin) as a batch"),
    {NULL, 0, 0, 0, NULL, NULL},
};

static const hr_cli_cmd_t publish_cmd = {
    .name = "publish",
    .usage = "--type TYPE --source URI [--data STRING | --file PATH] [options]\n"
             "--batch FILE",
    .summary = "Publish one CloudEvent to the bus, or a batch of events from a JSON file.\n"
               "Without --datacontenttype, data that parses as JSON is sent as application/json,\n"
               "other UTF-8 text as text/plain and anything else as application/octet-stream.\n"
               "Prints `published seq N`, or `duplicate of seq N` when an event with the same\n"
               "--source and --id was already stored within the bus's dedup window.",
    .opts = publish_opts,
    .min_args = 0,
    .max_args = 0,
};

/* Context attribute names an extension may not take. */
static const char *const reserved_names[] = {
    "specversion", "id",      "source", "type",        "datacontenttype",
    "dataschema",  "subject", "time",   "data_base64", "data",
};

/* The event being published: borrowed strings plus the data (owned when read from a file). */
typedef struct event_in {
    const char *ev_id;
    const char *ev_ct; /* effective datacontenttype, NULL when none */
    bool ev_has_data;
    char *ev_data; /* owned, NUL-terminated */
    size_t ev_len;
    bool ev_is_json; /* JSON content type and the data parses: sent as JSON text */
} event_in_t;

/* ---- Validation ---- */

static bool has_ctl(const char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f) {
            return true;
        }
    }
    return false;
}

static bool check_exts(const publish_opts_t *o)
{
    for (size_t i = 0; i < o->po_ext.n; i++) {
        const char *e = o->po_ext.items[i];
        const char *eq = strchr(e, '=');
        size_t n = eq ? (size_t)(eq - e) : 0;
        if (eq == NULL || n == 0) {
            hr__cli_usage_error(&publish_cmd, "--ext '%s': expected NAME=VALUE", e);
            return false;
        }
        for (size_t k = 0; k < n; k++) {
            if (!((e[k] >= 'a' && e[k] <= 'z') || (e[k] >= '0' && e[k] <= '9'))) {
                hr__cli_usage_error(&publish_cmd,
                                    "--ext '%.*s': an extension name is lower-case letters and "
                                    "digits only (a-z, 0-9)",
                                    (int)n, e);
                return false;
            }
        }
        for (size_t k = 0; k < sizeof reserved_names / sizeof reserved_names[0]; k++) {
            if (strlen(reserved_names[k]) == n && memcmp(reserved_names[k], e, n) == 0) {
                hr__cli_usage_error(&publish_cmd,
                                    "--ext '%.*s': this is a context attribute, not an "
                                    "extension; use its own option",
                                    (int)n, e);
                return false;
            }
        }
        for (size_t j = 0; j < i; j++) {
            if (strncmp(o->po_ext.items[j], e, n + 1) == 0) {
                hr__cli_usage_error(&publish_cmd, "--ext '%.*s' is given twice", (int)n, e);
                return false;
            }
        }
    }
    return true;
}

/* Checks the options of a single-event publish. Returns true when they are usable. */
static bool check_event_opts(const publish_opts_t *o)
{
    if (o->po_type == NULL || o->po_source == NULL) {
        hr__cli_usage_error(&publish_cmd, "%s is required (or --batch FILE)",
                            o->po_type == NULL ? "--type" : "--source");
        return false;
    }
    if (o->po_data != NULL && o->po_file != NULL) {
        hr__cli_usage_error(&publish_cmd, "give the data with either --data or --file, not both");
        return false;
    }
    if (o->po_mode != NULL && strcmp(o->po_mode, "binary") != 0 &&
        strcmp(o->po_mode, "structured") != 0) {
        hr__cli_usage_error(&publish_cmd, "--mode '%s': expected binary or structured", o->po_mode);
        return false;
    }
    if (o->po_time != NULL && hr_rfc3339_check(o->po_time, strlen(o->po_time)) != 0) {
        hr__cli_usage_error(&publish_cmd,
                            "--time '%s': expected an RFC 3339 time such as "
                            "2026-11-29T23:06:06Z or 2026-11-29T23:06:06.5+01:00",
                            o->po_time);
        return false;
    }
    if (o->po_datacontenttype != NULL &&
        (o->po_datacontenttype[0] == '\0' || has_ctl(o->po_datacontenttype))) {
        hr__cli_usage_error(&publish_cmd,
                            "--datacontenttype: expected a media type such as application/json");
        return false;
    }
    return check_exts(o);
}

/* ---- Data typing ---- */

static bool parses_as_json(const char *p, size_t n)
{
    /* INT_AS_REAL: a valid integer too large for int64 is still JSON. */
    json_t *v = json_loadb(p, n, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL, NULL);
    json_decref(v);
    return v != NULL;
}

/* True for application/json, text/json and any +json media type (parameters ignored). */
static bool is_json_type(const char *ct)
{
    size_t n = strcspn(ct, ";");
    while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t')) {
        n--;
    }
    return (n == 16 && strncasecmp(ct, "application/json", 16) == 0) ||
           (n == 9 && strncasecmp(ct, "text/json", 9) == 0) ||
           (n >= 5 && strncasecmp(ct + n - 5, "+json", 5) == 0);
}

static bool is_json_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Decides the content type and whether the data travels as JSON text (see the file header). */
static void type_data(const publish_opts_t *o, event_in_t *ev)
{
    bool json = ev->ev_has_data && parses_as_json(ev->ev_data, ev->ev_len);
    ev->ev_ct = o->po_datacontenttype;
    if (ev->ev_ct == NULL && ev->ev_has_data) {
        if (json) {
            ev->ev_ct = "application/json";
        } else if (hr_utf8_valid(ev->ev_data, ev->ev_len, NULL)) {
            ev->ev_ct = "text/plain";
        } else {
            ev->ev_ct = "application/octet-stream";
        }
    }
    ev->ev_is_json = json && is_json_type(ev->ev_ct);
    if (ev->ev_is_json) {
        size_t start = 0;
        while (start < ev->ev_len && is_json_ws(ev->ev_data[start])) {
            start++;
        }
        size_t end = ev->ev_len;
        while (end > start && is_json_ws(ev->ev_data[end - 1])) {
            end--;
        }
        memmove(ev->ev_data, ev->ev_data + start, end - start);
        ev->ev_len = end - start;
        ev->ev_data[ev->ev_len] = '\0';
    }
}

/* Writes a random (version 4) UUID into out[37]. Returns false when no randomness is available. */
static bool uuid4(char out[37])
{
    uint8_t r[16];
    size_t got = 0;
    while (got < sizeof r) {
        ssize_t n = getrandom(r + got, sizeof r - got, 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        got += (size_t)n;
    }
    r[6] = (uint8_t)((r[6] & 0x0f) | 0x40); /* version 4 */
    r[8] = (uint8_t)((r[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", r[0],
             r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13],
             r[14], r[15]);
    return true;
}

/* ---- Binary mode ---- */

/* Appends "ce-<name>: <value>" with the value percent-encoded as the CloudEvents HTTP binding
 * requires: printable ASCII other than space, '"' and '%' stays, every other byte is %XX. */
static char *ce_header(const char *name, const char *value)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t vlen = strlen(value);
    size_t cap = 3 + strlen(name) + 2 + vlen * 3 + 1;
    char *h = hr_xmalloc(cap);
    size_t o = (size_t)snprintf(h, cap, "ce-%s: ", name);
    for (size_t i = 0; i < vlen; i++) {
        unsigned char c = (unsigned char)value[i];
        if (c > 0x20 && c < 0x7f && c != '"' && c != '%') {
            h[o++] = (char)c;
        } else {
            h[o++] = '%';
            h[o++] = hex[c >> 4];
            h[o++] = hex[c & 15];
        }
    }
    h[o] = '\0';
    return h;
}

/* Builds the header lines of a binary-mode request (NULL-terminated; free each and the array). */
static char **binary_headers(const publish_opts_t *o, const event_in_t *ev)
{
    size_t cap = 9 + o->po_ext.n;
    char **h = hr_xcalloc(cap, sizeof *h);
    size_t n = 0;
    h[n++] = ce_header("specversion", "1.0");
    h[n++] = ce_header("id", ev->ev_id);
    h[n++] = ce_header("source", o->po_source);
    h[n++] = ce_header("type", o->po_type);
    if (o->po_subject != NULL) {
        h[n++] = ce_header("subject", o->po_subject);
    }
    if (o->po_time != NULL) {
        h[n++] = ce_header("time", o->po_time);
    }
    if (o->po_dataschema != NULL) {
        h[n++] = ce_header("dataschema", o->po_dataschema);
    }
    for (size_t i = 0; i < o->po_ext.n; i++) {
        const char *e = o->po_ext.items[i];
        const char *eq = strchr(e, '=');
        char *name = hr_xstrndup(e, (size_t)(eq - e));
        h[n++] = ce_header(name, eq + 1);
        free(name);
    }
    if (ev->ev_ct != NULL) {
        size_t len = strlen("Content-Type: ") + strlen(ev->ev_ct) + 1;
        h[n] = hr_xmalloc(len);
        snprintf(h[n++], len, "Content-Type: %s", ev->ev_ct);
    } else {
        h[n++] = hr_xstrdup("Content-Type:"); /* no data: send no content type at all */
    }
    h[n] = NULL;
    return h;
}

static void free_headers(char **h)
{
    for (size_t i = 0; h != NULL && h[i] != NULL; i++) {
        free(h[i]);
    }
    free(h);
}

/* ---- Structured mode ---- */

static void set_str(json_t *obj, const char *key, const char *value)
{
    if (value != NULL) {
        json_object_set_new(obj, key, json_string(value));
    }
}

/* Builds the application/cloudevents+json document into *out. Returns 0, or an exit code after
 * printing why (text that is not UTF-8 in an attribute, out of memory). */
static int structured_body(const publish_opts_t *o, const event_in_t *ev, hr_buf_t *out)
{
    int rc = HR_CLI_EXIT_USAGE;
    char *attrs = NULL;
    json_t *doc = json_object();
    set_str(doc, "specversion", "1.0");
    set_str(doc, "id", ev->ev_id);
    set_str(doc, "source", o->po_source);
    set_str(doc, "type", o->po_type);
    set_str(doc, "subject", o->po_subject);
    set_str(doc, "time", o->po_time);
    set_str(doc, "datacontenttype", ev->ev_ct);
    set_str(doc, "dataschema", o->po_dataschema);
    for (size_t i = 0; i < o->po_ext.n; i++) {
        const char *e = o->po_ext.items[i];
        const char *eq = strchr(e, '=');
        char *name = hr_xstrndup(e, (size_t)(eq - e));
        json_object_set_new(doc, name, json_string(eq + 1));
        free(name);
    }
    /* json_string() refuses invalid UTF-8, so a missing member means a bad attribute. */
    size_t expected = 4 + (o->po_subject != NULL) + (o->po_time != NULL) + (ev->ev_ct != NULL) +
                      (o->po_dataschema != NULL) + o->po_ext.n;
    if (json_object_size(doc) != expected) {
        fprintf(stderr, "herald: an attribute value is not valid UTF-8 text\n");
        goto out;
    }
    if (ev->ev_has_data && !ev->ev_is_json) {
        if (hr_utf8_valid(ev->ev_data, ev->ev_len, NULL)) {
            json_object_set_new(doc, "data", json_stringn(ev->ev_data, ev->ev_len));
        } else {
            hr_buf_t b64 = HR_BUF_INIT;
            if (hr_base64_encode(&b64, ev->ev_data, ev->ev_len) != 0) {
                fprintf(stderr, "herald: out of memory encoding the data\n");
                hr_buf_free(&b64);
                goto out;
            }
            json_object_set_new(doc, "data_base64", json_stringn((char *)b64.data, b64.len));
            hr_buf_free(&b64);
        }
    }
    attrs = json_dumps(doc, JSON_COMPACT);
    if (attrs == NULL) {
        fprintf(stderr, "herald: out of memory building the event\n");
        goto out;
    }
    /* JSON data is spliced in as its exact text, so that it is stored byte for byte. */
    size_t alen = strlen(attrs);
    int err = 0;
    if (ev->ev_has_data && ev->ev_is_json) {
        err |= hr_buf_append(out, attrs, alen - 1); /* without the closing '}' */
        err |= hr_buf_puts(out, ",\"data\":");
        err |= hr_buf_append(out, ev->ev_data, ev->ev_len);
        err |= hr_buf_putc(out, '}');
    } else {
        err |= hr_buf_append(out, attrs, alen);
    }
    if (err != 0) {
        fprintf(stderr, "herald: out of memory building the event\n");
        goto out;
    }
    rc = HR_CLI_EXIT_OK;
out:
    free(attrs);
    json_decref(doc);
    return rc;
}

/* ---- Answers ---- */

/* Prints the body the server answered, as is, ending with a newline. */
static void print_raw(const hr_cli_resp_t *resp)
{
    fwrite(resp->cr_body.data, 1, resp->cr_body.len, stdout);
    if (resp->cr_body.len == 0 || resp->cr_body.data[resp->cr_body.len - 1] != '\n') {
        putchar('\n');
    }
}

static bool json_u64(json_t *v, uint64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        return false;
    }
    *out = (uint64_t)json_integer_value(v);
    return true;
}

static int print_single(const hr_cli_resp_t *resp)
{
    json_t *doc = json_loadb((const char *)resp->cr_body.data, resp->cr_body.len, 0, NULL);
    uint64_t seq;
    int rc = HR_CLI_EXIT_OK;
    if (!json_u64(json_object_get(doc, "seq"), &seq)) {
        fprintf(stderr, "herald: the server's answer has no seq: %s\n",
                resp->cr_body.len ? (const char *)resp->cr_body.data : "(empty)");
        rc = HR_CLI_EXIT_SERVER;
    } else if (json_is_true(json_object_get(doc, "duplicate"))) {
        printf("duplicate of seq %llu\n", (unsigned long long)seq);
    } else {
        printf("published seq %llu\n", (unsigned long long)seq);
    }
    json_decref(doc);
    return rc;
}

/* Prints seqs as "17-19, 23" (runs of consecutive numbers collapse). */
static void print_seq_list(const uint64_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j + 1 < n && s[j + 1] == s[j] + 1) {
            j++;
        }
        printf("%s%llu", i ? ", " : "", (unsigned long long)s[i]);
        if (j > i) {
            printf("-%llu", (unsigned long long)s[j]);
        }
        i = j + 1;
    }
}

/* "published 3 events: seqs 17-19", plus "; 1 duplicate: seq 5" for duplicates. */
static int print_batch(const hr_cli_resp_t *resp)
{
    int rc = HR_CLI_EXIT_SERVER;
    json_t *doc = json_loadb((const char *)resp->cr_body.data, resp->cr_body.len, 0, NULL);
    json_t *seqs = json_object_get(doc, "seqs");
    json_t *dups = json_object_get(doc, "duplicates");
    size_t n = json_array_size(seqs);
    uint64_t *fresh = hr_xcalloc(n + 1, sizeof *fresh);
    uint64_t *dup = hr_xcalloc(n + 1, sizeof *dup);
    size_t n_fresh = 0, n_dup = 0;
    if (!json_is_array(seqs)) {
        fprintf(stderr, "herald: the server's answer has no seqs: %s\n",
                resp->cr_body.len ? (const char *)resp->cr_body.data : "(empty)");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t seq;
        if (!json_u64(json_array_get(seqs, i), &seq)) {
            fprintf(stderr, "herald: the server's answer has a bad seq at index %zu\n", i);
            goto out;
        }
        bool is_dup = false;
        for (size_t k = 0; k < json_array_size(dups); k++) {
            json_t *d = json_array_get(dups, k);
            is_dup |= json_is_integer(d) && json_integer_value(d) == (json_int_t)i;
        }
        if (is_dup) {
            dup[n_dup++] = seq;
        } else {
            fresh[n_fresh++] = seq;
        }
    }
    printf("published %zu event%s", n_fresh, n_fresh == 1 ? "" : "s");
    if (n_fresh > 0) {
        printf(": seq%s ", n_fresh == 1 ? "" : "s");
        print_seq_list(fresh, n_fresh);
    }
    if (n_dup > 0) {
        printf("; %zu duplicate%s of seq%s ", n_dup, n_dup == 1 ? "" : "s", n_dup == 1 ? "" : "s");
        print_seq_list(dup, n_dup);
    }
    putchar('\n');
    rc = HR_CLI_EXIT_OK;
out:
    free(fresh);
    free(dup);
    json_decref(doc);
    return rc;
}

/* ---- The command ---- */

static char *events_path(const hr_cli_ctx_t *ctx)
{
    char *bus = hr_cli_escape(ctx->cc_bus);
    size_t len = strlen(bus) + 32;
    char *path = hr_xmalloc(len);
    snprintf(path, len, "/v1/buses/%s/events", bus);
    free(bus);
    return path;
}

static int publish_batch(hr_cli_ctx_t *ctx, const publish_opts_t *o)
{
    if (o->po_type || o->po_source || o->po_id || o->po_subject || o->po_time ||
        o->po_datacontenttype || o->po_dataschema || o->po_ext.n || o->po_data || o->po_file ||
        o->po_mode) {
        return hr__cli_usage_error(&publish_cmd,
                                   "--batch sends the events of FILE as they are; it takes no "
                                   "event options");
    }
    char *body = NULL;
    size_t len = 0;
    int rc = hr__cli_read_file(o->po_batch, &body, &len);
    if (rc != HR_CLI_EXIT_OK) {
        return rc;
    }
    static const char *const headers[] = {"Content-Type: application/cloudevents-batch+json", NULL};
    hr_cli_resp_t resp = HR_CLI_RESP_INIT;
    char *path = events_path(ctx);
    rc = hr_cli_client_request(hr__cli_client(ctx), "POST", path, headers, body, len, &resp);
    if (rc == HR_CLI_EXIT_OK) {
        if (ctx->cc_json) {
            print_raw(&resp);
        } else {
            rc = print_batch(&resp);
        }
    }
    free(path);
    free(body);
    hr_cli_resp_free(&resp);
    return rc;
}

static int publish_one(hr_cli_ctx_t *ctx, const publish_opts_t *o)
{
    if (!check_event_opts(o)) {
        return HR_CLI_EXIT_USAGE;
    }
    int rc = HR_CLI_EXIT_OK;
    char uuid[37];
    event_in_t ev = {.ev_id = o->po_id};
    char **headers = NULL;
    hr_buf_t body = HR_BUF_INIT;
    hr_cli_resp_t resp = HR_CLI_RESP_INIT;
    char *path = NULL;
    if (ev.ev_id == NULL) {
        if (!uuid4(uuid)) {
            fprintf(stderr, "herald: no randomness for an event id (%s); pass --id\n",
                    strerror(errno));
            rc = HR_CLI_EXIT_USAGE;
            goto out;
        }
        ev.ev_id = uuid;
    }
    if (o->po_file != NULL) {
        rc = hr__cli_read_file(o->po_file, &ev.ev_data, &ev.ev_len);
        if (rc != HR_CLI_EXIT_OK) {
            goto out;
        }
        ev.ev_has_data = true;
    } else if (o->po_data != NULL) {
        ev.ev_data = hr_xstrdup(o->po_data);
        ev.ev_len = strlen(ev.ev_data);
        ev.ev_has_data = true;
    }
    type_data(o, &ev);

    bool structured = o->po_mode != NULL && strcmp(o->po_mode, "structured") == 0;
    static const char *const structured_headers[] = {"Content-Type: application/cloudevents+json",
                                                     NULL};
    const char *const *hdrs = structured_headers;
    const void *payload = "";
    size_t payload_len = 0;
    if (structured) {
        if ((rc = structured_body(o, &ev, &body)) != HR_CLI_EXIT_OK) {
            goto out;
        }
        payload = body.data;
        payload_len = body.len;
    } else {
        headers = binary_headers(o, &ev);
        hdrs = (const char *const *)headers;
        if (ev.ev_has_data) {
            payload = ev.ev_data;
            payload_len = ev.ev_len;
        }
    }
    path = events_path(ctx);
    rc =
        hr_cli_client_request(hr__cli_client(ctx), "POST", path, hdrs, payload, payload_len, &resp);
    if (rc == HR_CLI_EXIT_OK) {
        if (ctx->cc_json) {
            print_raw(&resp);
        } else {
            rc = print_single(&resp);
        }
    }
out:
    free(path);
    free_headers(headers);
    hr_buf_free(&body);
    hr_cli_resp_free(&resp);
    free(ev.ev_data);
    return rc;
}

int hr__cli_publish(hr_cli_ctx_t *ctx, int argc, char **argv)
{
    publish_opts_t o = {0};
    const char *args[HR_CLI_MAX_ARGS];
    size_t n_args;
    int rc;
    if (hr__cli_parse(ctx, &publish_cmd, &o, argc, argv, args, &n_args, &rc)) {
        rc = o.po_batch != NULL ? publish_batch(ctx, &o) : publish_one(ctx, &o);
    }
    hr__cli_strlist_free(&o.po_ext);
    return rc;
}
