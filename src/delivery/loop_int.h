/* SPDX-License-Identifier: MIT */
/*
 * Internals of the delivery loop shared by loop.c (thread, task queue, timers,
 * shutdown) and loop_http.c (requests: libcurl easy handles, header and body
 * capture, error mapping).
 */
#ifndef HR_DELIVERY_LOOP_INT_H
#define HR_DELIVERY_LOOP_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include <curl/curl.h>

#include "delivery/loop.h"

/* hr_dloop_req_t.priv.state */
enum {
  HR__DLOOP_REQ_IDLE = 0, /* owned by the caller */
  HR__DLOOP_REQ_QUEUED, /* in the task queue, on its way from another thread */
  HR__DLOOP_REQ_ACTIVE, /* added to the multi handle, on the in-flight list */
};

struct hr_dloop {
  CURLM *multi;
  pthread_t thread;
  int epoll_fd; /* the loop's sockets (libcurl's, via socket_cb) and wake_fd */
  int wake_fd; /* eventfd: a poster made the task queue non-empty, or destroy */

  /* Options, immutable after create. */
  size_t max_body_bytes;
  size_t max_posted;
  size_t max_idle_handles;
  char *ca_file;    /* NULL = default */
  char *user_agent; /* never NULL */
  char *proxy;      /* NULL = environment */

  /* Shared with other threads: the task queue, under `mu`. */
  pthread_mutex_t mu;
  hr_dloop_task_t *q_head, *q_tail;
  bool q_stopping; /* destroy asked the thread to stop */
  bool q_closed;   /* shutdown drained the queue for good; posts fail with
                      HR_ECLOSED */
  atomic_size_t n_posted; /* hr_dloop_post() tasks allocated and not yet run */

  /* Loop thread only. */
  bool shutting_down;
  hr_dloop_req_t
      *active; /* in-flight requests, doubly linked through priv.prev/next */
  size_t n_active;
  CURL **pool; /* idle easy handles, reset, ready for the next request */
  size_t n_pool;
  hr_dloop_timer_t *
      *heap; /* 0-based min-heap by (deadline_ns, seq); t->heap_pos = i + 1 */
  size_t n_heap, heap_cap;
  uint64_t timer_seq;
  uint64_t curl_deadline_ns; /* when libcurl wants CURL_SOCKET_TIMEOUT;
                                UINT64_MAX = never */
};

/* Loop thread. Hands `req` to libcurl: takes an easy handle from the pool, sets
 * the options, adds it to the multi handle and links it on the in-flight list.
 * Returns 0 or a negative code (the request is then idle again and done() is
 * not called). */
int hr__dloop_req_start(hr_dloop_t *l, hr_dloop_req_t *req);

/* Loop thread. Completes an in-flight request whose transfer ended with `rc`:
 * fills in the result, returns the easy handle to the pool, then calls done().
 */
void hr__dloop_req_finish(hr_dloop_t *l, hr_dloop_req_t *req, CURLcode rc);

/* Loop thread. Completes a request that is not in flight (queued, or cancelled)
 * with `err` and `text`, then calls done(). For an in-flight one, detaches it
 * from libcurl first. */
void hr__dloop_req_fail(hr_dloop_t *l, hr_dloop_req_t *req, int err,
                        const char *text);

/* Loop thread. Frees every pooled easy handle. */
void hr__dloop_pool_free(hr_dloop_t *l);

/* Loop thread. Links a starting request on the in-flight list / unlinks a
 * finished one. */
void hr__dloop_active_add(hr_dloop_t *l, hr_dloop_req_t *req);
void hr__dloop_active_remove(hr_dloop_t *l, hr_dloop_req_t *req);

/* ---- response capture, shared by the transports (loop_http.c) ---- */

/* Clears the result fields; any state. */
void hr__dloop_clear_result(hr_dloop_req_t *req);

/* Which kept kind a response header name (len bytes, any case) is: 'c' ce-*,
 * 't' Content-Type, 'r' Retry-After, or 0 (not kept). */
char hr__dloop_header_kind(const char *name, size_t len);

/* A status line arrived: forgets the headers captured so far (those of a 1xx
 * response). */
void hr__dloop_capture_reset(hr_dloop_req_t *req);

/* Keeps one response header of `kind` (non-zero): the name lower-cased, the
 * value trimmed of surrounding whitespace. Copies both. A name or value
 * containing NUL is ignored. Returns 0 or HR_ENOMEM (and sets priv.oom). */
int hr__dloop_capture_header(hr_dloop_req_t *req, char kind, const char *name,
                             size_t name_len, const char *value,
                             size_t value_len);

/* Appends response body bytes, keeping at most max_body_bytes (the rest sets
 * resp_truncated and is dropped). Returns 0 or HR_ENOMEM (and sets priv.oom).
 */
int hr__dloop_capture_body(hr_dloop_req_t *req, size_t max_body_bytes,
                           const char *p, size_t len);

/* Points the public resp_* fields into the captured headers. Returns 0 or
 * HR_ENOMEM. */
int hr__dloop_publish_headers(hr_dloop_req_t *req);

#endif
