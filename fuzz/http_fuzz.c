/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the HTTP server's request path (src/http/server.c: http-parser glue,
 * header and query handling, limits, early answers, pipelining, parking, streams) and the
 * handlers behind it. A real server runs in this process on 127.0.0.1 (port 0, a temporary data
 * directory, one worker); every input is written on a fresh connection, the write side is shut,
 * and the answer is read until the server closes.
 *
 * Checks: no crash or sanitizer report; whatever comes back starts with "HTTP/1.1 "; and the
 * server always ends the connection after the client's EOF (a hang of 5 s aborts: it would be a
 * connection the server never closes).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "broker/bus.h"
#include "broker/triggers.h"
#include "http/server.h"
#include "meta/meta.h"

static uint16_t port;

/* The server lives for the whole process: its memory stays reachable from these. */
static hr_meta_t *meta;
static hr_buses_t *buses;
static hr_triggers_t *triggers;
static hr_http_t *srv;

static void start_server(void)
{
    signal(SIGPIPE, SIG_IGN);
    /* Under scripts/fuzz.sh, TMPDIR is a scratch directory it deletes afterwards. */
    const char *tmp = getenv("TMPDIR");
    static char dir[512];
    snprintf(dir, sizeof dir, "%s/herald-http-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL) {
        abort();
    }
    char path[256];
    snprintf(path, sizeof path, "%s/herald.db", dir);
    hr_triggers_opts_t topts;
    memset(&topts, 0, sizeof topts);
    hr_http_opts_t o;
    hr_http_opts_default(&o);
    o.port = 0;
    o.threads = 1;
    o.timeout_s = 5;
    o.max_event_bytes = 64 * 1024;
    o.max_batch_bytes = 256 * 1024;
    if (hr_meta_open(path, &meta) != 0 || hr_buses_open(dir, meta, &buses) != 0 ||
        hr_triggers_open(&topts, meta, buses, &triggers) != 0 ||
        hr_http_start(&o, buses, triggers, &srv) != 0) {
        abort();
    }
    port = hr_http_port(srv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (port == 0) {
        start_server();
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        abort();
    }
    size_t off = 0;
    while (off < size) {
        ssize_t n = send(fd, data + off, size - off, MSG_NOSIGNAL);
        if (n <= 0) {
            break; /* the server answered early and closed: fine */
        }
        off += (size_t)n;
    }
    shutdown(fd, SHUT_WR);
    char head[9];
    size_t got = 0;
    char buf[65536];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            fprintf(stderr, "http_fuzz: the server kept the connection open after EOF\n");
            abort();
        }
        if (n <= 0) {
            break; /* closed (or reset after an early answer) */
        }
        for (ssize_t i = 0; i < n && got < sizeof head; i++) {
            head[got++] = buf[i];
        }
    }
    close(fd);
    if (got > 0 && (got < sizeof head || memcmp(head, "HTTP/1.1 ", sizeof head) != 0)) {
        fprintf(stderr, "http_fuzz: the answer does not start with a status line\n");
        abort();
    }
    return 0;
}
