// SPDX-License-Identifier: MIT
// ceiling: the leanest honest durable HTTP/1.1 ingest server we can write, as an upper bound for
// single-event ingest on this machine (a diagnostic for bench/run.sh, not part of Herald).
//
//   ceiling --port P --dir D [--threads N] [--queue lockfree|mutex] [--prezero MiB]
//
// N network threads (default 2), each with its own epoll and its own SO_REUSEPORT listener on
// 127.0.0.1:P; non-blocking keep-alive sockets, TCP_NODELAY, one recv per readiness into a
// per-connection buffer, every complete request in it parsed (pipelining). A POST's body is
// appended (8-byte little-endian length + body) to the thread's staging chunk; at the end of each
// epoll pass the chunk goes to the one commit thread (lock-free stack + eventfd, or mutex+condvar).
// The commit thread takes every pending chunk, writes them with one pwritev at the tracked end of
// D/ceiling.log, fdatasyncs once, then hands each chunk back to its thread (lock-free stack, ONE
// eventfd write per thread per batch). The thread then sends each connection's 202s in one send.
// --prezero M first fills the file with M MiB of zeros (synced), so that appends inside it
// overwrite allocated blocks and fdatasync need not commit metadata (as Herald's log does).
// Limits (enough for wrk): no chunked bodies (400), no Connection: close / HTTP/1.0 / Expect:
// 100-continue handling; non-POST requests get 404.
// On SIGTERM/SIGINT: stops, commits what is pending, prints its counters to stderr.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAXTHR 64
#define MAXREQ (64u << 20) // largest request (headers + body)
static const char RESP[] = "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n"
                           "Content-Length: 9\r\n\r\n{\"seq\":1}";
static const char R404[] = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
static const char R400[] =
    "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

struct thr;
struct conn {
    int fd, dead, want_out;
    unsigned inflight, ready; // POSTs at the commit thread; committed, not yet answered
    char *in, *out;
    size_t inlen, incap, outlen, outoff, outcap;
    struct thr *t;
};
struct chunk { // one epoll pass's bodies from one thread, and whom to answer
    struct chunk *next;
    struct thr *t;
    char *data;
    size_t len, cap;
    struct conn **conns;
    size_t n, ncap;
};
struct thr {
    pthread_t id;
    int ep, lfd, efd;
    struct chunk *stage, *spare;
    _Atomic(struct chunk *) done;   // committed chunks handed back (LIFO)
    struct conn **touched, **grave; // answered this pass; closed, freed at the end of the pass
    size_t ntouched, tcap, ngrave, gcap;
};

static struct thr T[MAXTHR];
static int nthr = 2, port, logfd, cefd, use_mutex;
static size_t logoff; // the append offset (the commit thread's)
static atomic_int stop;
static _Atomic(struct chunk *) pending; // lock-free mode: LIFO stack
static struct chunk *mq_head, *mq_tail; // mutex mode: FIFO
static pthread_mutex_t mq_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t mq_cv = PTHREAD_COND_INITIALIZER;
static int mq_waiting;
static unsigned long long st_events, st_bytes, st_syncs, st_chunks;

static void die(const char *m)
{
    perror(m);
    exit(1);
}

static void *xrealloc(void *p, size_t n)
{
    if (!(p = realloc(p, n)))
        die("realloc");
    return p;
}

static void grow(void *pp, size_t *cap, size_t need, size_t elt)
{
    if (need <= *cap)
        return;
    size_t c = *cap ? *cap : 16;
    while (c < need)
        c *= 2;
    *(void **)pp = xrealloc(*(void **)pp, c * elt);
    *cap = c;
}

// Queued for free() at the end of the pass: a later event of this pass may still name it.
static void bury(struct conn *c)
{
    grow(&c->t->grave, &c->t->gcap, c->t->ngrave + 1, sizeof *c->t->grave);
    c->t->grave[c->t->ngrave++] = c;
}

// Closes the socket; the memory lives on while chunks in flight point to it.
static void conn_close(struct conn *c)
{
    if (c->dead)
        return;
    close(c->fd); // also leaves the epoll set
    c->fd = -1, c->dead = 1;
    if (!c->inflight)
        bury(c);
}

static void set_out(struct conn *c, int on)
{
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
    if (c->want_out != on && epoll_ctl(c->t->ep, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->want_out = on;
}

// Sends what is queued: 0 ok (maybe waiting for EPOLLOUT), -1 closed.
static int flush(struct conn *c)
{
    while (c->outoff < c->outlen) {
        ssize_t r = send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);
        if (r < 0 && errno == EAGAIN) {
            set_out(c, 1);
            return 0;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            conn_close(c);
            return -1;
        }
        c->outoff += (size_t)r;
    }
    c->outlen = c->outoff = 0;
    if (c->want_out)
        set_out(c, 0);
    return 0;
}

static void put_out(struct conn *c, const char *s, size_t n)
{
    grow(&c->out, &c->outcap, c->outlen + n, 1);
    memcpy(c->out + c->outlen, s, n);
    c->outlen += n;
}

// Parses every complete request in c->in; stops at a non-POST while POSTs are in flight (order).
static void process(struct conn *c)
{
    size_t off = 0;
    int direct = 0;
    while (off < c->inlen) {
        char *p = c->in + off, *he = memmem(p, c->inlen - off, "\r\n\r\n", 4);
        if (!he) {
            if (c->inlen - off > 65536)
                goto bad;
            break;
        }
        size_t hlen = (size_t)(he - p) + 4, cl = 0;
        int post = c->inlen - off >= 5 && !memcmp(p, "POST ", 5);
        char *l = memchr(p, '\n', hlen); // headers: lines after the request line
        while (l && l + 1 < he) {
            l++;
            if (!strncasecmp(l, "content-length:", 15)) {
                char *e;
                unsigned long long v = strtoull(l + 15, &e, 10);
                if (e == l + 15 || v > MAXREQ)
                    goto bad;
                cl = (size_t)v;
            } else if (!strncasecmp(l, "transfer-encoding:", 18))
                goto bad;
            l = memchr(l, '\n', (size_t)(he + 2 - l));
        }
        if (c->inlen - off < hlen + cl) {
            grow(&c->in, &c->incap, hlen + cl + 4096, 1);
            break;
        }
        if (post) {
            struct chunk *k = c->t->stage;
            grow(&k->data, &k->cap, k->len + 8 + cl, 1);
            uint64_t n = cl; // little-endian on x86/arm64 Linux
            memcpy(k->data + k->len, &n, 8);
            memcpy(k->data + k->len + 8, p + hlen, cl);
            k->len += 8 + cl;
            grow(&k->conns, &k->ncap, k->n + 1, sizeof *k->conns);
            k->conns[k->n++] = c;
            c->inflight++;
        } else if (c->inflight)
            break; // answer it after the POSTs before it
        else
            put_out(c, R404, sizeof R404 - 1), direct = 1;
        off += hlen + cl;
    }
    if (off)
        memmove(c->in, c->in + off, c->inlen - off), c->inlen -= off;
    if (direct)
        flush(c);
    return;
bad:
    (void)!send(c->fd, R400, sizeof R400 - 1, MSG_NOSIGNAL);
    conn_close(c);
}

static void on_read(struct conn *c)
{
    if (c->incap - c->inlen < 4096)
        grow(&c->in, &c->incap, c->inlen + 16384, 1);
    ssize_t r = recv(c->fd, c->in + c->inlen, c->incap - c->inlen, 0);
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (r <= 0) {
        conn_close(c);
        return;
    }
    c->inlen += (size_t)r;
    process(c);
}

// Hands the staging chunk to the commit thread (end of an epoll pass).
static void submit(struct thr *t)
{
    struct chunk *k = t->stage;
    if (use_mutex) {
        pthread_mutex_lock(&mq_mu);
        if (mq_tail)
            mq_tail->next = k;
        else
            mq_head = k;
        mq_tail = k;
        if (mq_waiting)
            pthread_cond_signal(&mq_cv);
        pthread_mutex_unlock(&mq_mu);
    } else {
        struct chunk *old = atomic_load(&pending);
        do
            k->next = old;
        while (!atomic_compare_exchange_weak(&pending, &old, k));
        uint64_t one = 1;
        if (!old)
            (void)!write(cefd, &one, 8); // the commit thread may be asleep
    }
    if ((k = t->spare))
        t->spare = k->next;
    else if (!(k = calloc(1, sizeof *k)))
        die("calloc");
    k->t = t, k->next = NULL, k->len = k->n = 0;
    t->stage = k;
}

// Committed chunks came back: answer their connections, one send each.
static void on_done(struct thr *t)
{
    uint64_t v;
    (void)!read(t->efd, &v, 8);
    struct chunk *k = atomic_exchange(&t->done, NULL), *next;
    for (; k; k = next) {
        next = k->next;
        for (size_t i = 0; i < k->n; i++) {
            struct conn *c = k->conns[i];
            c->inflight--;
            if (c->dead) {
                if (!c->inflight)
                    bury(c);
                continue;
            }
            if (!c->ready++) {
                grow(&t->touched, &t->tcap, t->ntouched + 1, sizeof *t->touched);
                t->touched[t->ntouched++] = c;
            }
        }
        k->next = t->spare, t->spare = k;
    }
    for (size_t i = 0; i < t->ntouched; i++) { // one send per connection
        struct conn *c = t->touched[i];
        for (; c->ready; c->ready--)
            put_out(c, RESP, sizeof RESP - 1);
        if (flush(c) == 0 && !c->inflight && c->inlen)
            process(c); // a parked non-POST
    }
    t->ntouched = 0;
}

static void *net_main(void *arg)
{
    struct thr *t = arg;
    struct epoll_event evs[256];
    while (!atomic_load(&stop)) {
        int n = epoll_wait(t->ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == &t->lfd) {
                int fd, one = 1;
                while ((fd = accept4(t->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct conn *c = calloc(1, sizeof *c);
                    if (!c)
                        die("calloc");
                    c->fd = fd, c->t = t;
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                    if (epoll_ctl(t->ep, EPOLL_CTL_ADD, fd, &ev))
                        die("epoll_ctl");
                }
            } else if (evs[i].data.ptr == &t->efd)
                on_done(t);
            else {
                struct conn *c = evs[i].data.ptr;
                if (c->dead)
                    continue; // closed earlier in this pass
                if ((evs[i].events & EPOLLOUT) && flush(c))
                    continue;
                if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                    on_read(c);
            }
        }
        if (t->stage->n)
            submit(t);
        for (size_t i = 0; i < t->ngrave; i++)
            free(t->grave[i]->in), free(t->grave[i]->out), free(t->grave[i]);
        t->ngrave = 0;
    }
    return NULL;
}

static void commit_batch(struct chunk *list)
{
    struct iovec iov[IOV_MAX];
    struct chunk *k, *by[MAXTHR] = {0}, *tl[MAXTHR] = {0};
    size_t bytes = 0;
    int n = 0;
    for (k = list; k; k = k->next) {
        iov[n++] = (struct iovec){k->data, k->len}, bytes += k->len;
        if (n == IOV_MAX || !k->next) { // one pwritev per batch unless > IOV_MAX chunks
            struct iovec *v = iov;
            while (n > 0) {
                ssize_t w = pwritev(logfd, v, n, (off_t)logoff);
                if (w < 0) {
                    if (errno == EINTR)
                        continue;
                    die("pwritev");
                }
                logoff += (size_t)w;
                while (n > 0 && (size_t)w >= v->iov_len)
                    w -= (ssize_t)v->iov_len, v++, n--;
                if (n > 0)
                    v->iov_base = (char *)v->iov_base + w, v->iov_len -= (size_t)w;
            }
        }
    }
    if (fdatasync(logfd))
        die("fdatasync");
    st_syncs++, st_bytes += bytes;
    for (k = list; k; k = list) { // regroup per owner thread
        list = k->next;
        int i = (int)(k->t - T);
        st_events += k->n, st_chunks++;
        k->next = NULL;
        if (tl[i])
            tl[i]->next = k;
        else
            by[i] = k;
        tl[i] = k;
    }
    for (int i = 0; i < nthr; i++) {
        if (!by[i])
            continue;
        struct chunk *old = atomic_load(&T[i].done); // push the thread's chunks as one block...
        do
            tl[i]->next = old;
        while (!atomic_compare_exchange_weak(&T[i].done, &old, by[i]));
        uint64_t one = 1;
        (void)!write(T[i].efd, &one, 8); // ...and wake the thread once per batch
    }
}

static void *commit_main(void *arg)
{
    (void)arg;
    for (;;) {
        struct chunk *list = NULL;
        if (use_mutex) {
            pthread_mutex_lock(&mq_mu);
            while (!mq_head && !atomic_load(&stop))
                mq_waiting = 1, pthread_cond_wait(&mq_cv, &mq_mu);
            mq_waiting = 0;
            list = mq_head, mq_head = mq_tail = NULL;
            pthread_mutex_unlock(&mq_mu);
        } else {
            while (!(list = atomic_exchange(&pending, NULL)) && !atomic_load(&stop)) {
                uint64_t v;
                (void)!read(cefd, &v, 8);
            }
            struct chunk *r = NULL, *next; // LIFO -> FIFO
            for (; list; list = next)
                next = list->next, list->next = r, r = list;
            list = r;
        }
        if (!list)
            return NULL; // stopping, nothing left
        commit_batch(list);
    }
}

int main(int argc, char **argv)
{
    const char *dir = NULL;
    long prezero = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--port"))
            port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--dir"))
            dir = argv[i + 1];
        else if (!strcmp(argv[i], "--threads"))
            nthr = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--queue"))
            use_mutex = !strcmp(argv[i + 1], "mutex");
        else if (!strcmp(argv[i], "--prezero"))
            prezero = atol(argv[i + 1]);
        else
            break;
    }
    if (argc % 2 == 0 || port <= 0 || port > 65535 || !dir || nthr < 1 || nthr > MAXTHR ||
        prezero < 0) {
        fprintf(stderr,
                "usage: ceiling --port P --dir D [--threads N(1..%d)] [--queue lockfree|mutex] "
                "[--prezero MiB]\n",
                MAXTHR);
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/ceiling.log", dir);
    if ((logfd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0)
        die(path);
    static char zeros[1 << 20]; // --prezero: fdatasync then overwrites without growing the file
    for (long i = 0; i < prezero; i++)
        if (write(logfd, zeros, sizeof zeros) != (ssize_t)sizeof zeros)
            die("prezero");
    if (prezero && fdatasync(logfd))
        die("fdatasync");
    if ((cefd = eventfd(0, EFD_CLOEXEC)) < 0)
        die("eventfd");
    sigset_t ss;
    sigemptyset(&ss), sigaddset(&ss, SIGINT), sigaddset(&ss, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &ss, NULL); // every thread inherits it; main sigwaits
    for (int i = 0; i < nthr; i++) {
        struct thr *t = &T[i];
        int one = 1;
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        if ((t->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
            die("socket");
        setsockopt(t->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        setsockopt(t->lfd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
        if (bind(t->lfd, (struct sockaddr *)&a, sizeof a) || listen(t->lfd, 4096))
            die("bind/listen");
        if ((t->ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
            die("epoll_create1");
        if ((t->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
            die("eventfd");
        struct epoll_event e1 = {.events = EPOLLIN, .data.ptr = &t->lfd};
        struct epoll_event e2 = {.events = EPOLLIN, .data.ptr = &t->efd};
        if (epoll_ctl(t->ep, EPOLL_CTL_ADD, t->lfd, &e1) ||
            epoll_ctl(t->ep, EPOLL_CTL_ADD, t->efd, &e2))
            die("epoll_ctl");
        if (!(t->stage = calloc(1, sizeof *t->stage)))
            die("calloc");
        t->stage->t = t;
    }
    pthread_t ct;
    if (pthread_create(&ct, NULL, commit_main, NULL))
        die("pthread_create");
    for (int i = 0; i < nthr; i++)
        if (pthread_create(&T[i].id, NULL, net_main, &T[i]))
            die("pthread_create");
    fprintf(stderr,
            "ceiling: listening on 127.0.0.1:%d, %d network thread(s), %s queue, log %s (%ld MiB "
            "pre-zeroed)\n",
            port, nthr, use_mutex ? "mutex" : "lock-free", path, prezero);
    int sig;
    sigwait(&ss, &sig);
    atomic_store(&stop, 1);
    uint64_t one = 1;
    for (int i = 0; i < nthr; i++)
        (void)!write(T[i].efd, &one, 8), pthread_join(T[i].id, NULL);
    pthread_mutex_lock(&mq_mu), pthread_cond_signal(&mq_cv), pthread_mutex_unlock(&mq_mu);
    (void)!write(cefd, &one, 8);
    pthread_join(ct, NULL); // it commits whatever was submitted, then returns
    fprintf(stderr,
            "ceiling: stopped on signal %d: events=%llu bytes=%llu fdatasyncs=%llu chunks=%llu "
            "events_per_sync=%.1f\n",
            sig, st_events, st_bytes, st_syncs, st_chunks,
            st_syncs ? (double)st_events / (double)st_syncs : 0.0);
    return close(logfd) ? 1 : 0;
}
