/* SPDX-License-Identifier: MIT */
/* disk_fsync: the disk's durable sequential write rate, the ceiling for Herald's log.
 *
 *   disk_fsync --dir DIR [--chunk BYTES] [--seconds S] [--mode append|prezero] [--prezero-mib N]
 *
 * Writes CHUNK bytes then fdatasync()s, again and again, for S seconds, to a new file in DIR
 * (so it measures the filesystem the data dirs live on), then deletes the file.
 *   append   the file grows with each write (what a log without preallocation sees)
 *   prezero  the file is first filled with zeros and synced (N MiB, default 256), then
 *            overwritten in place from the start, wrapping around (what a log that
 *            pre-zeroes its segments sees; DESIGN.md §4)
 * Prints one parseable line:
 *   RESULT case=disk mode=M chunk=B ops=N secs=T ops_per_s=R mb_per_s=M p50_us=A p99_us=B
 * (MB = 10^6 bytes; latencies are of one write+fdatasync.) */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hist.h"

static void die(const char *what)
{
    fprintf(stderr, "disk_fsync: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void write_all(int fd, const char *buf, size_t len, off_t off, int positional)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = positional ? pwrite(fd, buf + done, len - done, off + (off_t)done)
                               : write(fd, buf + done, len - done);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("write");
        }
        done += (size_t)n;
    }
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *mode = "append";
    size_t chunk = 100 * 1024;
    double seconds = 5;
    size_t prezero_mib = 256;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "disk_fsync: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--dir"))
            dir = v;
        else if (!strcmp(a, "--chunk"))
            chunk = (size_t)strtoull(v, NULL, 10);
        else if (!strcmp(a, "--seconds"))
            seconds = atof(v);
        else if (!strcmp(a, "--mode"))
            mode = v;
        else if (!strcmp(a, "--prezero-mib"))
            prezero_mib = (size_t)strtoull(v, NULL, 10);
        else {
            fprintf(stderr, "disk_fsync: unknown option %s\n", a);
            return 2;
        }
        i++;
    }
    int prezero = !strcmp(mode, "prezero");
    if (!dir || chunk == 0 || chunk > (64u << 20) || seconds <= 0 ||
        (!prezero && strcmp(mode, "append"))) {
        fprintf(
            stderr,
            "usage: disk_fsync --dir DIR [--chunk BYTES] [--seconds S] [--mode append|prezero]\n");
        return 2;
    }

    char path[4096];
    snprintf(path, sizeof path, "%s/disk_fsync.%ld.tmp", dir, (long)getpid());
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0)
        die(path);

    char *buf = aligned_alloc(4096, (chunk + 4095) / 4096 * 4096);
    if (!buf)
        die("alloc");
    /* Not zeros and not trivially compressible. */
    uint64_t x = 0x9E3779B97F4A7C15u;
    for (size_t i = 0; i < chunk; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        buf[i] = (char)(' ' + (x % 90));
    }

    off_t size = 0;
    if (prezero) {
        size = (off_t)prezero_mib << 20;
        if (size < (off_t)chunk)
            size = (off_t)chunk;
        size = size / (off_t)chunk * (off_t)chunk;
        char *zero = calloc(1, 1 << 20);
        if (!zero)
            die("alloc");
        for (off_t o = 0; o < size; o += 1 << 20) {
            size_t n = (size_t)(size - o < (1 << 20) ? size - o : (1 << 20));
            write_all(fd, zero, n, o, 1);
        }
        free(zero);
        if (fsync(fd) < 0)
            die("fsync");
    }

    hist_t *h = malloc(sizeof *h);
    if (!h)
        die("alloc");
    hist_init(h);
    uint64_t t0 = now_ns(), deadline = t0 + (uint64_t)(seconds * 1e9), t = t0;
    uint64_t ops = 0;
    off_t off = 0;
    /* Bounded: by time, and by a hard cap of 16 GiB written. */
    const uint64_t max_ops = (16ull << 30) / chunk;
    while (t < deadline && ops < max_ops) {
        buf[0] = (char)('a' + ops % 26);
        write_all(fd, buf, chunk, off, prezero);
        if (fdatasync(fd) < 0)
            die("fdatasync");
        uint64_t t2 = now_ns();
        hist_add(h, (t2 - t) / 1000u);
        t = t2;
        ops++;
        off += (off_t)chunk;
        if (prezero && off >= size)
            off = 0;
    }
    double secs = (double)(t - t0) / 1e9;
    close(fd);
    unlink(path);
    printf("RESULT case=disk mode=%s chunk=%zu ops=%llu secs=%.3f ops_per_s=%.1f mb_per_s=%.2f "
           "p50_us=%llu p99_us=%llu\n",
           mode, chunk, (unsigned long long)ops, secs, ops / secs, (double)ops * chunk / secs / 1e6,
           (unsigned long long)hist_quantile(h, 0.50), (unsigned long long)hist_quantile(h, 0.99));
    free(h);
    free(buf);
    return 0;
}
