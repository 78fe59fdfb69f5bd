/* SPDX-License-Identifier: MIT */
/* The persist thread (see persist.h). Jobs are a mutex-guarded list; one thread writes. */
#include "broker/persist.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/err.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct job {
    hr_meta_dl_t dl; /* strings and event owned by the job; dl.bus NULL = delete only */
    int64_t replaces_id;
    hr_dloop_t *loop; /* where done() runs */
    void (*done)(void *arg, int rc);
    void *arg;
    int rc;
    hr_dloop_task_t task;
    struct job *next;
} job_t;

struct hr_persist {
    hr_meta_t *meta;
    uint32_t flush_ms;
    hr_persist_collect_fn collect;
    void *collect_arg;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job_t *head, *tail;
    bool stop, kicked;
};

static void job_free(job_t *j)
{
    free((char *)j->dl.bus);
    free((char *)j->dl.trigger);
    free((char *)j->dl.code);
    free((char *)j->dl.data);
    free((char *)j->dl.dest);
    free((void *)j->dl.event);
    free(j);
}

static void job_done_on_loop(void *arg)
{
    job_t *j = arg;
    j->done(j->arg, j->rc);
    job_free(j);
}

/* Writes one batch: the jobs' dead letters and deletions, and the cursors. */
static void write_batch(hr_persist_t *p, job_t *jobs, bool cursors)
{
    size_t n_dl = 0, n_del = 0;
    for (job_t *j = jobs; j; j = j->next) {
        n_dl += j->dl.bus != NULL;
        n_del += j->replaces_id > 0;
    }
    hr_meta_dl_t *dls = hr_xcalloc(n_dl + 1, sizeof *dls);
    int64_t *dels = hr_xcalloc(n_del + 1, sizeof *dels);
    size_t i = 0, k = 0;
    for (job_t *j = jobs; j; j = j->next) {
        if (j->dl.bus) {
            dls[i++] = j->dl;
        }
        if (j->replaces_id > 0) {
            dels[k++] = j->replaces_id;
        }
    }
    hr_meta_trigger_t *cs = NULL;
    size_t n_cs = 0;
    if (cursors && p->collect) {
        p->collect(p->collect_arg, &cs, &n_cs);
    }
    int rc = 0;
    if (n_dl || n_del || n_cs) {
        rc = hr_meta_commit(p->meta, dls, n_dl, cs, n_cs, dels, n_del);
        if (rc != 0) {
            fprintf(stderr, "herald: writing dead letters and cursors failed: %s\n",
                    hr_strerror(rc));
        }
    }
    free(dls);
    free(dels);
    for (job_t *j = jobs, *next; j; j = next) {
        next = j->next;
        j->rc = rc;
        if (j->done) {
            j->task.fn = job_done_on_loop;
            j->task.arg = j;
            if (hr_dloop_post_task(j->loop, &j->task) != 0) {
                job_free(j);
            }
        } else {
            job_free(j);
        }
    }
}

static void *persist_main(void *arg)
{
    hr_persist_t *p = arg;
    pthread_setname_np(pthread_self(), "hr-persist"); /* for top -H and profiles */
    uint64_t last_flush = hr_mono_ns();
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && !p->head && !p->kicked &&
               hr_mono_ns() - last_flush < p->flush_ms * 1000000ull) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            uint64_t ns = (uint64_t)ts.tv_nsec + p->flush_ms * 1000000ull / 4;
            ts.tv_sec += (time_t)(ns / 1000000000u);
            ts.tv_nsec = (long)(ns % 1000000000u);
            pthread_cond_timedwait(&p->cv, &p->mu, &ts);
        }
        job_t *jobs = p->head;
        p->head = p->tail = NULL;
        bool stop = p->stop;
        bool flush = p->kicked || stop || hr_mono_ns() - last_flush >= p->flush_ms * 1000000ull;
        p->kicked = false;
        pthread_mutex_unlock(&p->mu);
        if (jobs || flush) {
            write_batch(p, jobs, flush);
            if (flush) {
                last_flush = hr_mono_ns();
            }
        }
        pthread_mutex_lock(&p->mu);
        if (stop && p->head == NULL) {
            break;
        }
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int hr_persist_create(hr_meta_t *meta, uint32_t flush_ms, hr_persist_collect_fn collect,
                      void *collect_arg, hr_persist_t **out)
{
    hr_persist_t *p = hr_xcalloc(1, sizeof *p);
    p->meta = meta;
    p->flush_ms = flush_ms ? flush_ms : 500;
    p->collect = collect;
    p->collect_arg = collect_arg;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (pthread_create(&p->thread, NULL, persist_main, p) != 0) {
        free(p);
        return HR_ENOMEM;
    }
    *out = p;
    return 0;
}

void hr_persist_destroy(hr_persist_t *p)
{
    if (p == NULL) {
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->thread, NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
}

static void enqueue(hr_persist_t *p, job_t *j)
{
    pthread_mutex_lock(&p->mu);
    if (p->tail) {
        p->tail->next = j;
    } else {
        p->head = j;
    }
    p->tail = j;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static char *dup_or_empty(const char *s)
{
    return hr_xstrdup(s ? s : "");
}

void hr_persist_dead_letter(hr_persist_t *p, const hr_meta_dl_t *dl, int64_t replaces_id,
                            hr_dloop_t *loop, void (*done)(void *arg, int rc), void *arg)
{
    job_t *j = hr_xcalloc(1, sizeof *j);
    j->dl = *dl;
    j->dl.bus = dup_or_empty(dl->bus);
    j->dl.trigger = dup_or_empty(dl->trigger);
    j->dl.code = dup_or_empty(dl->code);
    j->dl.data = dup_or_empty(dl->data);
    j->dl.dest = dup_or_empty(dl->dest);
    void *ev = hr_xmalloc(dl->event_len ? dl->event_len : 1);
    memcpy(ev, dl->event, dl->event_len);
    j->dl.event = ev;
    j->replaces_id = replaces_id;
    j->loop = loop;
    j->done = done;
    j->arg = arg;
    enqueue(p, j);
}

void hr_persist_forget(hr_persist_t *p, int64_t dl_id)
{
    job_t *j = hr_xcalloc(1, sizeof *j);
    j->replaces_id = dl_id;
    enqueue(p, j);
}

void hr_persist_kick(hr_persist_t *p)
{
    pthread_mutex_lock(&p->mu);
    p->kicked = true;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}
