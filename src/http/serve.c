/* SPDX-License-Identifier: MIT */
/*
 * `herald serve [--listen HOST:PORT] [--data DIR] [--config FILE]`.
 *
 * Options come from three places, later ones winning: defaults, the JSON config file, flags.
 * Each option is one row of the table below (name, kind, where it lands). The main thread
 * opens the metadata store and the buses, starts the HTTP server, then waits for SIGINT or
 * SIGTERM and shuts down in order: stop HTTP (drain parked requests), close buses (drain
 * their commit queues), close metadata.
 */
#include "http/serve.h"
#include "http/server.h"
#include "broker/triggers.h"
#include "meta/meta.h"
#include "util/alloc.h"
#include "util/err.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct serve_cfg {
    char listen[160];
    char data[4096];
    hr_http_opts_t http;
    hr_triggers_opts_t triggers;
    char ca_file[4096];
} serve_cfg_t;

typedef enum { OPT_STR, OPT_UINT, OPT_SIZE } opt_kind_t;

typedef struct opt {
    const char *name; /* flag --name and config-file member "name" */
    opt_kind_t kind;
    size_t off;
    size_t size;
    const char *help;
} opt_t;

#define OFF(f) offsetof(serve_cfg_t, f), sizeof(((serve_cfg_t *)0)->f)

static const opt_t opts[] = {
    {"listen", OPT_STR, OFF(listen), "address to listen on, HOST:PORT (default 127.0.0.1:8088)"},
    {"data", OPT_STR, OFF(data), "data directory (default ./herald-data)"},
    {"threads", OPT_UINT, OFF(http.threads), "HTTP worker threads (default: cores)"},
    {"max-connections", OPT_UINT, OFF(http.max_connections), "connection limit (default 1024)"},
    {"timeout", OPT_UINT, OFF(http.timeout_s), "idle connection timeout in seconds (default 30)"},
    {"max-header-bytes", OPT_SIZE, OFF(http.max_header_bytes),
     "memory per connection for request headers (default 65536; larger headers get 431)"},
    {"max-event-bytes", OPT_SIZE, OFF(http.max_event_bytes),
     "largest event accepted (default 1048576; larger get 413)"},
    {"max-batch-bytes", OPT_SIZE, OFF(http.max_batch_bytes),
     "largest batch request body (default 16777216)"},
    {"heartbeat", OPT_UINT, OFF(http.heartbeat_s),
     "SSE heartbeat interval in seconds (default 15)"},
    {"max-hops", OPT_UINT, OFF(triggers.max_hops),
     "replies deeper than this many hops are dead-lettered (default 8)"},
    {"trace-events", OPT_SIZE, OFF(triggers.trace_events),
     "events whose delivery trace is kept in memory (default 100000)"},
    {"cursor-flush-ms", OPT_UINT, OFF(triggers.cursor_flush_ms),
     "how often trigger cursors are written, in ms (default 500)"},
    {"ca-file", OPT_STR, OFF(ca_file), "CA bundle for verifying https sinks (default: system)"},
    {"delivery-threads", OPT_UINT, OFF(triggers.delivery_threads),
     "delivery loops (threads); triggers are spread over them (default: cores, at most 4)"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: herald serve [options]\n\n"
               "Runs the Herald server on its embedded storage.\n\noptions:\n");
    fprintf(f, "  --config FILE          JSON file with any of the options below as members\n");
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
        fprintf(f, "  --%-20s %s\n", opts[i].name, opts[i].help);
    }
    fprintf(f, "  -h, --help             this help\n");
}

static const opt_t *find_opt(const char *name)
{
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
        if (strcmp(opts[i].name, name) == 0) {
            return &opts[i];
        }
    }
    return NULL;
}

static int set_opt(serve_cfg_t *c, const opt_t *o, const char *val)
{
    char *p = (char *)c + o->off;
    if (o->kind == OPT_STR) {
        if (strlen(val) >= o->size) {
            fprintf(stderr, "herald serve: --%s is too long\n", o->name);
            return -1;
        }
        memcpy(p, val, strlen(val) + 1);
        return 0;
    }
    char *end;
    errno = 0;
    unsigned long long v = strtoull(val, &end, 10);
    if (errno || end == val || *end || val[0] == '-' || v == 0 ||
        (o->kind == OPT_UINT && v > 1000000)) {
        fprintf(stderr, "herald serve: --%s must be a positive integer, got \"%s\"\n", o->name,
                val);
        return -1;
    }
    if (o->kind == OPT_UINT) {
        *(unsigned *)(void *)p = (unsigned)v;
    } else {
        *(size_t *)(void *)p = (size_t)v;
    }
    return 0;
}

static int load_config(serve_cfg_t *c, const char *path)
{
    json_error_t err;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &err);
    if (root == NULL) {
        fprintf(stderr, "herald serve: config %s: %s (line %d)\n", path, err.text, err.line);
        return -1;
    }
    int rc = 0;
    if (!json_is_object(root)) {
        fprintf(stderr, "herald serve: config %s must be a JSON object\n", path);
        rc = -1;
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        if (rc != 0) {
            break;
        }
        const opt_t *o = find_opt(key);
        char buf[64];
        const char *s = NULL;
        if (o == NULL) {
            fprintf(stderr, "herald serve: config %s: unknown option \"%s\"\n", path, key);
            rc = -1;
        } else if (json_is_string(v)) {
            s = json_string_value(v);
        } else if (json_is_integer(v) && o->kind != OPT_STR) {
            snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
            s = buf;
        } else {
            fprintf(stderr, "herald serve: config %s: \"%s\" has the wrong type\n", path, key);
            rc = -1;
        }
        if (s && set_opt(c, o, s) != 0) {
            rc = -1;
        }
    }
    json_decref(root);
    return rc;
}

static int parse_listen(serve_cfg_t *c)
{
    char *colon = strrchr(c->listen, ':');
    if (colon == NULL || colon == c->listen) {
        fprintf(stderr, "herald serve: --listen must be HOST:PORT, got \"%s\"\n", c->listen);
        return -1;
    }
    char *end;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (*end || colon[1] == '\0' || port > 65535) {
        fprintf(stderr, "herald serve: bad port in --listen \"%s\"\n", c->listen);
        return -1;
    }
    size_t hl = (size_t)(colon - c->listen);
    if (hl >= sizeof c->http.listen_host) {
        return -1;
    }
    memcpy(c->http.listen_host, c->listen, hl);
    c->http.listen_host[hl] = '\0';
    c->http.port = (uint16_t)port;
    return 0;
}

static int parse_args(serve_cfg_t *c, int argc, char **argv)
{
    /* the config file first, so flags override it */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            if (load_config(c, argv[i + 1]) != 0) {
                return 2;
            }
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 1;
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "herald serve: unexpected argument \"%s\"\n", a);
            return 2;
        }
        const char *name = a + 2, *val = NULL;
        char nbuf[64];
        const char *eq = strchr(name, '=');
        if (eq) {
            snprintf(nbuf, sizeof nbuf, "%.*s", (int)(eq - name), name);
            name = nbuf;
            val = eq + 1;
        } else if (i + 1 < argc) {
            val = argv[++i];
        }
        if (strcmp(name, "config") == 0) {
            continue;
        }
        const opt_t *o = find_opt(name);
        if (o == NULL) {
            fprintf(stderr, "herald serve: unknown option --%s (see herald serve --help)\n", name);
            return 2;
        }
        if (val == NULL) {
            fprintf(stderr, "herald serve: --%s needs a value\n", name);
            return 2;
        }
        if (set_opt(c, o, val) != 0) {
            return 2;
        }
    }
    return parse_listen(c) == 0 ? 0 : 2;
}

static int mkdir_p(const char *path)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST) {
                return -errno;
            }
            *p = '/';
        }
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) {
        return -errno;
    }
    return 0;
}

int hr_serve_main(int argc, char **argv)
{
    serve_cfg_t cfg;
    memset(&cfg, 0, sizeof cfg);
    snprintf(cfg.listen, sizeof cfg.listen, "127.0.0.1:8088");
    snprintf(cfg.data, sizeof cfg.data, "./herald-data");
    hr_http_opts_default(&cfg.http);
    int prc = parse_args(&cfg, argc, argv);
    if (prc != 0) {
        return prc == 1 ? 0 : 2;
    }
    if (cfg.ca_file[0]) {
        cfg.triggers.ca_file = cfg.ca_file;
    }
    int rc = mkdir_p(cfg.data);
    if (rc != 0) {
        fprintf(stderr, "herald serve: cannot create data directory %s: %s\n", cfg.data,
                hr_strerror(rc));
        return 1;
    }
    /* One server per data directory: a second one would corrupt the logs. */
    char path[4200];
    snprintf(path, sizeof path, "%s/LOCK", cfg.data);
    int lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock_fd < 0 || flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
        fprintf(stderr, "herald serve: data directory %s is in use by another herald\n", cfg.data);
        return 1;
    }
    /* Signals are taken synchronously by this thread; every other thread inherits the mask. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    hr_meta_t *meta = NULL;
    hr_buses_t *buses = NULL;
    hr_triggers_t *triggers = NULL;
    hr_http_t *http = NULL;
    snprintf(path, sizeof path, "%s/herald.db", cfg.data);
    if ((rc = hr_meta_open(path, &meta)) != 0) {
        goto out;
    }
    if ((rc = hr_buses_open(cfg.data, meta, &buses)) != 0) {
        goto out;
    }
    if ((rc = hr_triggers_open(&cfg.triggers, meta, buses, &triggers)) != 0) {
        goto out;
    }
    if ((rc = hr_http_start(&cfg.http, buses, triggers, &http)) != 0) {
        goto out;
    }
    fprintf(stderr, "herald: listening on http://%s:%u, data in %s\n", cfg.http.listen_host,
            hr_http_port(http), cfg.data);
    int sig = 0;
    sigwait(&set, &sig);
    fprintf(stderr, "herald: %s received, shutting down\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
out:
    hr_http_stop(http);
    hr_triggers_close(triggers);
    hr_buses_close(buses);
    hr_meta_close(meta);
    close(lock_fd);
    return rc == 0 ? 0 : 1;
}
