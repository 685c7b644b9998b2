/* Jobs (a query as data) and a pool of native threads that runs them.
 *
 * Why: a caller with a global lock (an interpreter) pays for every thread hand-off twice when its own threads
 * run queries: once to give the lock to the worker, once to take it back. Pool threads run the C call alone,
 * and finished jobs are announced with one write to a file descriptor that an event loop already watches, once
 * per batch rather than once per job. */
#include <errno.h>
#include <pthread.h>
#ifdef __linux__
#include <sys/resource.h>
#endif
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static gd_status run_op(gd_job *j) {
    gd_error *err = &j->err;
    switch (j->op) {
    case GD_OP_FIND:
        if (!j->ranges) return gd_fail(err, GD_E_INVALID, "find job without a ranges buffer");
        return gd_find(j->engine, j->ids, j->n_ids, j->ranges, &j->cnt, err);
    case GD_OP_PROB:
        return gd_prob(j->engine, j->ids, j->n_ids, j->cont, &j->prob, err);
    case GD_OP_INFGRAM_PROB:
        return gd_infgram_prob(j->engine, j->ids, j->n_ids, j->cont, &j->prob, err);
    case GD_OP_NTD:
        return gd_ntd(j->engine, j->ids, j->n_ids, j->param, &j->ntd, j->deadline_ns, err);
    case GD_OP_INFGRAM_NTD:
        return gd_infgram_ntd(j->engine, j->ids, j->n_ids, j->param, &j->ntd, j->deadline_ns, err);
    case GD_OP_NTD_WITH_UNIT:
        return gd_ntd_with_unit(j->engine, j->ids, j->n_ids, j->param, &j->ntd, j->deadline_ns, err);
    case GD_OP_LONGEST_SUFFIX:
        return gd_longest_suffix_len(j->engine, j->ids, j->n_ids, &j->cnt, err);
    }
    return gd_fail(err, GD_E_INVALID, "unknown job op %d", (int)j->op);
}

gd_status gd_job_run(gd_job *job) {
    if (!job) return GD_E_INVALID;
    job->err.code = GD_OK;
    job->err.message[0] = '\0';
    job->ntd.entries = NULL;
    job->ntd.n_entries = 0;
    job->run_ns = 0;
    if (!job->engine) {
        job->status = gd_fail(&job->err, GD_E_INVALID, "job without an engine");
        return job->status;
    }
    if (gd_past_deadline(job->deadline_ns)) {
        job->status = gd_fail(&job->err, GD_E_DEADLINE, "deadline passed before the query started");
        return job->status;
    }
    uint64_t start = now_ns();
    job->status = run_op(job);
    job->run_ns = now_ns() - start;
    return job->status;
}

struct gd_pool {
    pthread_mutex_t lock;
    pthread_cond_t work;
    gd_job *queue_head, *queue_tail; /* FIFO */
    gd_job *done;                    /* LIFO; the caller does not need an order */
    int closing;
    int notify_fd;
    int nice;
    unsigned n_threads;
    pthread_t *threads;
};

static void notify(int fd) {
    uint64_t one = 1;
    for (;;) {
        ssize_t w = write(fd, &one, sizeof one);
        /* EAGAIN: an eventfd or pipe that already holds unread notifications; the reader will wake anyway */
        if (w >= 0 || errno != EINTR) return;
    }
}

static void *worker(void *arg) {
    gd_pool *p = arg;
#ifdef __linux__
    /* who = 0 is the calling thread on Linux; a failure leaves the default priority, which is still correct */
    if (p->nice > 0) (void)setpriority(PRIO_PROCESS, 0, p->nice);
#endif
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->queue_head && !p->closing) pthread_cond_wait(&p->work, &p->lock);
        gd_job *j = p->queue_head;
        if (!j) break; /* closing and nothing left to run */
        p->queue_head = j->next_;
        if (!p->queue_head) p->queue_tail = NULL;
        pthread_mutex_unlock(&p->lock);

        gd_job_run(j);

        pthread_mutex_lock(&p->lock);
        int was_empty = p->done == NULL;
        j->next_ = p->done;
        p->done = j;
        if (was_empty) notify(p->notify_fd);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

gd_status gd_pool_open(unsigned threads, int notify_fd, int nice, gd_pool **out, gd_error *err) {
    if (!out) return gd_fail(err, GD_E_INVALID, "out is NULL");
    *out = NULL;
    if (threads < 1 || threads > 256) return gd_fail(err, GD_E_INVALID, "threads must be in [1, 256], not %u", threads);
    if (notify_fd < 0) return gd_fail(err, GD_E_INVALID, "notify_fd must be an open file descriptor");
    if (nice < 0 || nice > 19) return gd_fail(err, GD_E_INVALID, "nice must be in [0, 19], not %d", nice);
    gd_pool *p = calloc(1, sizeof *p);
    if (!p) return gd_fail(err, GD_E_NOMEM, "out of memory");
    p->threads = calloc(threads, sizeof *p->threads);
    if (!p->threads) {
        free(p);
        return gd_fail(err, GD_E_NOMEM, "out of memory");
    }
    p->notify_fd = notify_fd;
    p->nice = nice;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->work, NULL);
    for (unsigned i = 0; i < threads; i++) {
        int rc = pthread_create(&p->threads[i], NULL, worker, p);
        if (rc != 0) {
            p->n_threads = i;
            gd_pool_close(p);
            return gd_fail(err, GD_E_NOMEM, "could not start pool thread %u of %u (error %d)", i + 1, threads, rc);
        }
    }
    p->n_threads = threads;
    *out = p;
    return GD_OK;
}

gd_status gd_pool_submit(gd_pool *pool, gd_job *job, gd_error *err) {
    if (!pool || !job) return gd_fail(err, GD_E_INVALID, "pool and job must not be NULL");
    job->next_ = NULL;
    pthread_mutex_lock(&pool->lock);
    if (pool->closing) {
        pthread_mutex_unlock(&pool->lock);
        return gd_fail(err, GD_E_INVALID, "the pool is closing");
    }
    if (pool->queue_tail) pool->queue_tail->next_ = job;
    else pool->queue_head = job;
    pool->queue_tail = job;
    pthread_cond_signal(&pool->work);
    pthread_mutex_unlock(&pool->lock);
    return GD_OK;
}

size_t gd_pool_take_done(gd_pool *pool, gd_job **out, size_t cap) {
    if (!pool || !out) return 0;
    size_t n = 0;
    pthread_mutex_lock(&pool->lock);
    while (n < cap && pool->done) {
        out[n++] = pool->done;
        pool->done = pool->done->next_;
    }
    pthread_mutex_unlock(&pool->lock);
    return n;
}

void gd_pool_close(gd_pool *pool) {
    if (!pool) return;
    pthread_mutex_lock(&pool->lock);
    pool->closing = 1;
    pthread_cond_broadcast(&pool->work);
    pthread_mutex_unlock(&pool->lock);
    for (unsigned i = 0; i < pool->n_threads; i++) pthread_join(pool->threads[i], NULL);
    pthread_cond_destroy(&pool->work);
    pthread_mutex_destroy(&pool->lock);
    free(pool->threads);
    free(pool);
}
