/* The query engine on a tiny index written here, plus hostile inputs: corrupt tables, truncated
 * files, out-of-range ids. Built under ASan/UBSan by run_sanitized.sh; argv[1] is a scratch dir. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gramdex.h"

static int failures = 0;
#define CHECK(cond)                                                        \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                    \
        }                                                                  \
    } while (0)

static void write_file(const char *dir, const char *name, const void *data, size_t len) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); exit(2); }
    if (len) fwrite(data, 1, len, f);
    fclose(f);
}

static const uint8_t *g_text;
static size_t g_len;
static int cmp_suffix(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    size_t lx = g_len - x, ly = g_len - y, n = lx < ly ? lx : ly;
    int c = memcmp(g_text + x, g_text + y, n);
    if (c) return c;
    return (lx > ly) - (lx < ly);
}

/* Index of u16 docs {1 2 3 1 2}, {2 3}, {} with a 4-byte-pointer table built by brute force. */
static void write_index(const char *dir, int corrupt_table) {
    const uint16_t toks[] = {0xFFFF, 1, 2, 3, 1, 2, 0xFFFF, 2, 3, 0xFFFF};
    size_t n = sizeof toks / sizeof toks[0];
    uint8_t text[64];
    for (size_t i = 0; i < n; i++) { text[2 * i] = toks[i] & 0xFF; text[2 * i + 1] = toks[i] >> 8; }
    uint32_t sa[32];
    for (size_t i = 0; i < n; i++) sa[i] = (uint32_t)(2 * i);
    g_text = text;
    g_len = 2 * n;
    qsort(sa, n, sizeof sa[0], cmp_suffix);
    if (corrupt_table) sa[3] = 0x7FFFFFF0u;
    uint64_t offs[] = {0, 12, 18};
    mkdir(dir, 0755);
    write_file(dir, "tokenized.0", text, 2 * n);
    write_file(dir, "table.0", sa, 4 * n);
    write_file(dir, "offset.0", offs, sizeof offs);
}

static gd_engine *open_one(const char *dir, gd_error *err, gd_status *st) {
    gd_engine *e = NULL;
    const char *dirs[] = {dir};
    *st = gd_engine_open(dirs, 1, 2, 0, &e, err);
    return e;
}

/* Jobs run by the pool give what gd_job_run gives on this thread; closing runs what is still queued. */
static void test_pool(const gd_engine *e) {
    enum { N = 200 };
    static gd_job jobs[N], direct[N];
    static gd_range ranges[N][1], dranges[N][1];
    static const uint32_t qs[4][2] = {{1, 2}, {2, 3}, {2, 0}, {3, 1}};
    int fds[2];
    if (pipe(fds) != 0) { perror("pipe"); exit(2); }
    gd_error err;
    gd_pool *pool = NULL;
    CHECK(gd_pool_open(0, fds[1], 0, &pool, &err) == GD_E_INVALID && pool == NULL);
    CHECK(gd_pool_open(2, -1, 0, &pool, &err) == GD_E_INVALID && pool == NULL);
    CHECK(gd_pool_open(2, fds[1], -1, &pool, &err) == GD_E_INVALID && pool == NULL);
    CHECK(gd_pool_open(2, fds[1], 20, &pool, &err) == GD_E_INVALID && pool == NULL);
    CHECK(gd_pool_open(3, fds[1], 5, &pool, &err) == GD_OK && pool);
    if (!pool) return;
    for (int i = 0; i < N; i++) {
        gd_job *pair[2] = {&jobs[i], &direct[i]};
        for (int k = 0; k < 2; k++) {
            gd_job *j = pair[k];
            memset(j, 0, sizeof *j);
            j->op = (gd_op)(1 + i % 7);
            j->engine = e;
            j->ids = qs[i % 4];
            j->n_ids = 1 + (size_t)(i % 2);
            j->cont = 3;
            j->param = (i % 7 == 5) ? 1 : 1000; /* ntd_with_unit takes a unit */
            j->ranges = k ? dranges[i] : ranges[i];
            j->tag = (uint64_t)i;
        }
        if (i == 7) jobs[i].deadline_ns = direct[i].deadline_ns = 1; /* long past: never started */
        CHECK(gd_pool_submit(pool, &jobs[i], &err) == GD_OK);
    }
    for (int i = 0; i < N; i++) gd_job_run(&direct[i]);
    gd_job *done[N];
    size_t got = 0;
    while (got < N) {
        uint64_t note;
        CHECK(read(fds[0], &note, sizeof note) == (ssize_t)sizeof note && note == 1);
        got += gd_pool_take_done(pool, done + got, N - got);
    }
    CHECK(gd_pool_take_done(pool, done, N) == 0);
    for (size_t i = 0; i < got; i++) {
        const gd_job *j = done[i], *d = &direct[j->tag];
        CHECK(j->status == d->status && j->cnt == d->cnt);
        CHECK(j->prob.prompt_cnt == d->prob.prompt_cnt && j->prob.cont_cnt == d->prob.cont_cnt);
        CHECK(j->ntd.n_entries == d->ntd.n_entries && j->ntd.prompt_cnt == d->ntd.prompt_cnt);
        if (j->ntd.n_entries == d->ntd.n_entries && j->ntd.n_entries)
            CHECK(memcmp(j->ntd.entries, d->ntd.entries, j->ntd.n_entries * sizeof *j->ntd.entries) == 0);
        gd_free(j->ntd.entries);
        gd_free(d->ntd.entries);
    }
    CHECK(jobs[7].status == GD_E_DEADLINE && strstr(jobs[7].err.message, "before the query started"));
    CHECK(jobs[0].status == GD_OK && jobs[0].cnt == 2); /* find {1 2} */
    gd_job bogus = {.op = (gd_op)99, .engine = e};
    CHECK(gd_job_run(&bogus) == GD_E_INVALID);
    gd_job noengine = {.op = GD_OP_FIND};
    CHECK(gd_job_run(&noengine) == GD_E_INVALID);
    /* queued at close: run before the threads stop */
    for (int i = 0; i < 50; i++) {
        memcpy(&jobs[i], &direct[0], sizeof jobs[i]);
        jobs[i].ranges = ranges[i];
        CHECK(gd_pool_submit(pool, &jobs[i], &err) == GD_OK);
    }
    gd_pool_close(pool);
    for (int i = 0; i < 50; i++) CHECK(jobs[i].status == GD_OK && jobs[i].cnt == 2);
    close(fds[0]);
    close(fds[1]);
}

int main(int argc, char **argv) {
    const char *scratch = argc > 1 ? argv[1] : "/tmp";
    char good[900], bad[900], trunc[900];
    snprintf(good, sizeof good, "%s/good", scratch);
    snprintf(bad, sizeof bad, "%s/bad", scratch);
    snprintf(trunc, sizeof trunc, "%s/trunc", scratch);
    write_index(good, 0);
    write_index(bad, 1);
    write_index(trunc, 0);
    write_file(trunc, "table.0", "\0\0\0\0\0", 5);

    gd_error err;
    gd_status st;
    gd_engine *e = open_one(good, &err, &st);
    CHECK(st == GD_OK && e);
    if (e) {
        gd_range r[1];
        uint64_t cnt = 0;
        uint32_t q12[] = {1, 2};
        CHECK(gd_find(e, q12, 2, r, &cnt, &err) == GD_OK && cnt == 2);
        CHECK(gd_find(e, q12, 0, r, &cnt, &err) == GD_OK && cnt == 10);
        uint32_t huge[] = {70000};
        CHECK(gd_find(e, huge, 1, r, &cnt, &err) == GD_E_INVALID);
        gd_prob_result p;
        CHECK(gd_prob(e, q12, 2, 3, &p, &err) == GD_OK && p.prompt_cnt == 2 && p.cont_cnt == 1);
        gd_ntd_result nt;
        uint32_t q2[] = {2};
        CHECK(gd_ntd(e, q2, 1, 1000, &nt, 0, &err) == GD_OK && nt.prompt_cnt == 3 && nt.n_entries == 2);
        gd_free(nt.entries);
        CHECK(gd_ntd(e, q2, 1, 0, &nt, 0, &err) == GD_E_INVALID);
        uint32_t seq[] = {1, 2, 3, 9, 2};
        gd_token_score sc[5];
        CHECK(gd_score(e, seq, 5, sc, 0, &err) == GD_OK && sc[2].suffix_len == 2 && sc[3].cont_cnt == 0);
        gd_attribution at;
        CHECK(gd_attribute(e, seq, 5, 1, 2, 1, &at, 0, &err) == GD_OK && at.n_spans == 2 && at.spans[0].end == 3);
        gd_free(at.spans);
        gd_free(at.locations);
        gd_doc d;
        CHECK(gd_doc_by_ix(e, 2, 10, &d, &err) == GD_OK && d.doc_len == 0);
        gd_doc_release(&d);
        CHECK(gd_doc_by_ix(e, 3, 10, &d, &err) == GD_E_INVALID);
        CHECK(gd_doc_by_ptr(e, 0, 3, 10, &d, &err) == GD_E_INVALID);
        CHECK(gd_doc_by_ptr(e, 0, 16, UINT64_MAX, &d, &err) == GD_OK && d.doc_ix == 1 && d.needle_offset == 1);
        gd_doc_release(&d);
        uint32_t toks[] = {1, 3};
        size_t ts[] = {0, 1}, tl[] = {1, 1}, cs[] = {0, 1}, cl[] = {1, 1};
        gd_cnf cnf = {toks, ts, tl, 2, cs, cl, 2};
        gd_cnf_result cr;
        CHECK(gd_find_cnf(e, &cnf, 50000, 100, &cr, 0, &err) == GD_OK && cr.cnt == 1);
        gd_free(cr.ptrs);
        gd_free(cr.ptrs_per_shard);
        CHECK(gd_find_cnf(e, &cnf, 50000, 100, &cr, 1, &err) == GD_E_DEADLINE);
        test_pool(e);
        gd_engine_close(e);
    }
    e = open_one(bad, &err, &st);
    CHECK(st == GD_OK);
    if (e) {
        uint32_t q[] = {2};
        gd_range r[1];
        uint64_t cnt;
        gd_status s1 = gd_find(e, q, 1, r, &cnt, &err);
        gd_ntd_result nt;
        gd_status s2 = gd_ntd(e, q, 0, 1000, &nt, 0, &err);
        CHECK(s2 == GD_E_FORMAT && strstr(err.message, "table.0"));
        CHECK(s1 == GD_OK || s1 == GD_E_FORMAT);
        gd_engine_close(e);
    }
    e = open_one(trunc, &err, &st);
    CHECK(st == GD_E_FORMAT && e == NULL && strstr(err.message, "table.0"));
    e = open_one(scratch, &err, &st);
    CHECK(st == GD_E_FORMAT && strstr(err.message, "not an index"));
    const char *none[] = {"/nonexistent/dir"};
    CHECK(gd_engine_open(none, 1, 2, 0, &e, &err) == GD_E_FORMAT);
    CHECK(gd_engine_open(none, 1, 3, 0, &e, &err) == GD_E_INVALID);
    return failures ? 1 : 0;
}
