/*
 * Unit test of sa_build.c: random token files (u8/u16/u32, 0xFF bytes, long repeats) sorted in memory
 * and in parts, compared with a brute-force sort; deep SA-IS recursions; 2- and 3-way parallel
 * merges; verify on good and corrupted tables; error codes.
 * Usage: test_sa_build [scratch_dir]; exit status 0 = passed.
 */
#include "gramdex.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static const uint8_t *g_data;
static size_t g_size;

/* raw byte order of the complete suffixes, a proper prefix first */
static int brute_cmp(const void *pa, const void *pb)
{
    uint64_t a = *(const uint64_t *)pa, b = *(const uint64_t *)pb;
    size_t la = g_size - a, lb = g_size - b;
    int r = memcmp(g_data + a, g_data + b, la < lb ? la : lb);
    if (r)
        return r;
    return la < lb ? -1 : (la > lb);
}

/* expect = the suffix array of n tokens of width w by brute force */
static void brute_sa(const uint8_t *data, size_t n, unsigned w, uint64_t *expect)
{
    for (size_t i = 0; i < n; i++)
        expect[i] = i * w;
    g_data = data;
    g_size = n * w;
    qsort(expect, n, sizeof *expect, brute_cmp);
}

static int write_file(const char *path, const uint8_t *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = n ? fwrite(data, 1, n, f) : 0;
    return (fclose(f) == 0 && w == n) ? 0 : -1;
}

static uint8_t *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(len > 0 ? (size_t)len : 1);
    *n = buf ? fread(buf, 1, (size_t)len, f) : 0;
    fclose(f);
    return buf;
}

static void random_tokens(uint8_t *data, size_t n_tok, unsigned width)
{
    uint32_t top = width == 4 ? UINT32_MAX : (1u << (8 * width)) - 1;
    uint32_t pool[6] = {0, 1, 0xFFu & top, top, 0x100u & top, (uint32_t)rnd() & top};
    unsigned k = 1 + (unsigned)(rnd() % 6);
    size_t period = (rnd() % 3 == 0) ? 1 + rnd() % 8 : 0; /* long repeats for the part re-sort */
    for (size_t i = 0; i < n_tok; i++) {
        uint32_t t = period && i >= period ? 0 : pool[rnd() % k];
        for (unsigned b = 0; b < width; b++)
            data[i * width + b] = period && i >= period ? data[(i - period) * width + b]
                                                        : (uint8_t)(t >> (8 * b));
    }
}

static void test_random(const char *dir)
{
    char tok[4096], tab[4096];
    snprintf(tok, sizeof tok, "%s/sa_tok", dir);
    snprintf(tab, sizeof tab, "%s/sa_tab", dir);
    const unsigned widths[3] = {1, 2, 4};
    const uint64_t parts[4] = {0, 2, 5, 29};
    for (int trial = 0; trial < 60; trial++) {
        unsigned w = widths[trial % 3];
        size_t n_tok = 1 + rnd() % 250;
        uint8_t *data = malloc(n_tok * w);
        uint64_t *expect = malloc(n_tok * sizeof *expect);
        CHECK(data && expect, "malloc");
        if (!data || !expect)
            return;
        random_tokens(data, n_tok, w);
        brute_sa(data, n_tok, w, expect);
        CHECK(write_file(tok, data, n_tok * w) == 0, "write %s", tok);
        unsigned ps = gd_sa_ptr_size(n_tok * w);
        for (int p = 0; p < 4; p++) {
            gd_sa_options opts = {.token_width = w, .threads = 1 + (unsigned)(p & 1),
                                  .max_part_tokens = parts[p]};
            gd_sa_progress prog = {0, 0, 0};
            gd_error err = {GD_OK, ""};
            gd_status st = gd_sa_build(tok, tab, &opts, &prog, &err);
            CHECK(st == GD_OK, "build trial %d part %d: %s", trial, p, err.message);
            CHECK(prog.phase == GD_SA_PHASE_DONE, "phase %d", prog.phase);
            size_t got_n = 0;
            uint8_t *got = read_file(tab, &got_n);
            CHECK(got && got_n == n_tok * ps, "table size %zu, expected %zu", got_n, n_tok * ps);
            for (size_t i = 0; got && got_n == n_tok * ps && i < n_tok; i++) {
                uint64_t v = 0;
                for (unsigned b = 0; b < ps; b++)
                    v |= (uint64_t)got[i * ps + b] << (8 * b);
                if (v != expect[i]) {
                    CHECK(v == expect[i], "trial %d width %u part %d rank %zu: %llu != %llu", trial,
                          w, p, i, (unsigned long long)v, (unsigned long long)expect[i]);
                    break;
                }
            }
            free(got);
            uint64_t bad = 0;
            CHECK(gd_sa_verify(tok, tab, w, 1, &bad, &err) == GD_OK, "verify: %s", err.message);
        }
        free(data);
        free(expect);
    }
}

static void test_verify_detects_corruption(const char *dir)
{
    char tok[4096], tab[4096];
    snprintf(tok, sizeof tok, "%s/sa_tok2", dir);
    snprintf(tab, sizeof tab, "%s/sa_tab2", dir);
    uint8_t data[200];
    for (int i = 0; i < 200; i++)
        data[i] = (uint8_t)(rnd() % 3);
    CHECK(write_file(tok, data, sizeof data) == 0, "write");
    gd_sa_options opts = {.token_width = 2};
    gd_error err = {GD_OK, ""};
    CHECK(gd_sa_build(tok, tab, &opts, NULL, &err) == GD_OK, "build: %s", err.message);
    size_t n = 0;
    uint8_t *t = read_file(tab, &n);
    CHECK(t && n == 100, "size %zu", n); /* 100 tokens, 1-byte entries */
    if (!t || n != 100) {
        free(t);
        return;
    }
    uint8_t keep = t[3];
    t[3] = t[70];
    t[70] = keep;
    CHECK(write_file(tab, t, n) == 0, "write");
    uint64_t bad = 0;
    CHECK(gd_sa_verify(tok, tab, 2, 1, &bad, &err) == GD_E_FORMAT, "swapped entries not caught");
    CHECK(bad < 100, "bad rank %llu", (unsigned long long)bad);
    t[70] = t[3];
    t[3] = 1; /* odd offset: not a token */
    CHECK(write_file(tab, t, n) == 0, "write");
    CHECK(gd_sa_verify(tok, tab, 2, 1, &bad, &err) == GD_E_FORMAT, "odd offset not caught");
    CHECK(write_file(tab, t, n - 1) == 0, "write");
    CHECK(gd_sa_verify(tok, tab, 2, 5, &bad, &err) == GD_E_FORMAT, "short table not caught");
    free(t);
}

static void test_errors(const char *dir)
{
    char tok[4096], tab[4096];
    snprintf(tok, sizeof tok, "%s/sa_tok3", dir);
    snprintf(tab, sizeof tab, "%s/sa_tab3", dir);
    gd_error err = {GD_OK, ""};
    gd_sa_options opts = {.token_width = 2};
    CHECK(gd_sa_build(NULL, tab, &opts, NULL, &err) == GD_E_INVALID, "NULL path");
    CHECK(gd_sa_build(tok, tab, NULL, NULL, &err) == GD_E_INVALID, "NULL options");
    unlink(tok);
    CHECK(gd_sa_build(tok, tab, &opts, NULL, &err) == GD_E_IO, "missing file");
    uint8_t three[3] = {1, 2, 3};
    CHECK(write_file(tok, three, 3) == 0, "write");
    CHECK(gd_sa_build(tok, tab, &opts, NULL, &err) == GD_E_FORMAT, "odd size: %s", err.message);
    opts.token_width = 3;
    CHECK(gd_sa_build(tok, tab, &opts, NULL, &err) == GD_E_INVALID, "width 3");
    CHECK(write_file(tok, three, 0) == 0, "write");
    opts.token_width = 1;
    CHECK(gd_sa_build(tok, tab, &opts, NULL, &err) == GD_E_FORMAT, "empty file");
    CHECK(access(tab, F_OK) != 0, "no table left behind");
    opts.memory_budget = 1;
    CHECK(write_file(tok, three, 3) == 0, "write");
    CHECK(gd_sa_build(tok, tab, &opts, NULL, &err) == GD_E_INVALID, "budget too small");
    CHECK(gd_sa_ptr_size(1) == 1 && gd_sa_ptr_size(256) == 1 && gd_sa_ptr_size(257) == 2 &&
              gd_sa_ptr_size((uint64_t)1 << 32) == 4 && gd_sa_ptr_size(((uint64_t)1 << 32) + 1) == 5,
          "ptr sizes");
    CHECK(gd_sa_verify(tok, tab, 3, 1, NULL, &err) == GD_E_INVALID, "verify width 3");
}

/* Threads sort slices and merge ranges in parallel (>= 65536 tokens); repetitive text falls back. */
static void test_parallel(const char *dir)
{
    char tok[4096], one[4096], par[4096];
    snprintf(tok, sizeof tok, "%s/sa_tok4", dir);
    snprintf(one, sizeof one, "%s/sa_one4", dir);
    snprintf(par, sizeof par, "%s/sa_par4", dir);
    enum { N = 120000 };
    uint8_t *data = malloc(2 * N);
    CHECK(data != NULL, "malloc");
    if (!data)
        return;
    for (int repetitive = 0; repetitive < 2; repetitive++) {
        for (size_t i = 0; i < N; i++) {
            uint16_t t = repetitive ? (uint16_t)(i % 29) : (uint16_t)(rnd() % 50);
            if (repetitive && i == N / 2)
                t = 0xFFFF;
            data[2 * i] = (uint8_t)t;
            data[2 * i + 1] = (uint8_t)(t >> 8);
        }
        CHECK(write_file(tok, data, 2 * N) == 0, "write");
        gd_error err = {GD_OK, ""};
        gd_sa_options o1 = {.token_width = 2, .threads = 1};
        gd_sa_options o2 = {.token_width = 2, .threads = 2};
        CHECK(gd_sa_build(tok, one, &o1, NULL, &err) == GD_OK, "one: %s", err.message);
        CHECK(gd_sa_build(tok, par, &o2, NULL, &err) == GD_OK, "par: %s", err.message);
        size_t n1 = 0, n2 = 0;
        uint8_t *a = read_file(one, &n1), *b = read_file(par, &n2);
        CHECK(a && b && n1 == n2 && memcmp(a, b, n1) == 0, "parallel table differs (rep %d)",
              repetitive);
        free(a);
        free(b);
        CHECK(gd_sa_verify(tok, par, 2, 1, NULL, &err) == GD_OK, "verify: %s", err.message);
    }
    free(data);
    unlink(one);
    unlink(par);
}

/* Texts whose SA-IS recursion goes deep (a tiny alphabet, the Fibonacci word, a periodic text with
 * rare changes) or whose reduced alphabets are large (many distinct tokens): every recursion level
 * gets its symbol counts from its caller's spare space or counts them itself; 1 thread against the
 * brute-force order. Then 2 and 3 threads (the two-way and the heap merge) on texts long enough for
 * the parallel path, whose merged neighbours mostly share their first 8 bytes (a 2-token alphabet
 * of u8) or differ in them (u32), against 1 thread. */
static void test_structured(const char *dir)
{
    char tok[4096], tab[4096], par[4096];
    snprintf(tok, sizeof tok, "%s/sa_tok5", dir);
    snprintf(tab, sizeof tab, "%s/sa_tab5", dir);
    snprintf(par, sizeof par, "%s/sa_par5", dir);
    enum { N = 6000, NP = 70000 };
    uint8_t *data = malloc(4 * NP);
    uint64_t *expect = malloc(N * sizeof *expect);
    CHECK(data && expect, "malloc");
    if (!data || !expect) {
        free(data);
        free(expect);
        return;
    }
    for (int kind = 0; kind < 5; kind++) {
        unsigned w = kind == 3 ? 4 : kind == 1 ? 2 : 1;
        size_t n = N;
        for (size_t i = 0; i < n; i++) {
            uint32_t t;
            if (kind == 0)
                t = (uint32_t)(rnd() % 2);
            else if (kind == 1) /* Fibonacci word: position i is 1 iff floor((i+2)/phi) steps */
                t = (uint32_t)((size_t)((double)(i + 2) * 0.6180339887498949) -
                               (size_t)((double)(i + 1) * 0.6180339887498949));
            else if (kind == 2)
                t = rnd() % 500 == 0 ? 7 : (uint32_t)(i % 3);
            else if (kind == 3)
                t = (uint32_t)rnd();
            else
                t = (uint32_t)(rnd() % 200);
            for (unsigned b = 0; b < w; b++)
                data[i * w + b] = (uint8_t)(t >> (8 * b));
        }
        brute_sa(data, n, w, expect);
        CHECK(write_file(tok, data, n * w) == 0, "write %s", tok);
        gd_sa_options o = {.token_width = w, .threads = 1};
        gd_error err = {GD_OK, ""};
        CHECK(gd_sa_build(tok, tab, &o, NULL, &err) == GD_OK, "kind %d: %s", kind, err.message);
        size_t got_n = 0;
        uint8_t *got = read_file(tab, &got_n);
        unsigned ps = gd_sa_ptr_size(n * w);
        CHECK(got && got_n == n * ps, "kind %d: table size %zu", kind, got_n);
        for (size_t i = 0; got && got_n == n * ps && i < n; i++) {
            uint64_t v = 0;
            for (unsigned b = 0; b < ps; b++)
                v |= (uint64_t)got[i * ps + b] << (8 * b);
            if (v != expect[i]) {
                CHECK(v == expect[i], "kind %d rank %zu: %llu != %llu", kind, i,
                      (unsigned long long)v, (unsigned long long)expect[i]);
                break;
            }
        }
        free(got);
    }
    for (int kind = 0; kind < 2; kind++) {
        unsigned w = kind ? 4 : 1;
        for (size_t i = 0; i < NP; i++) {
            uint32_t t = kind ? (uint32_t)(rnd() % 1000) * 0x01010101u : (uint32_t)(rnd() % 2);
            for (unsigned b = 0; b < w; b++)
                data[i * w + b] = (uint8_t)(t >> (8 * b));
        }
        CHECK(write_file(tok, data, (size_t)NP * w) == 0, "write %s", tok);
        gd_error err = {GD_OK, ""};
        gd_sa_options o1 = {.token_width = w, .threads = 1};
        CHECK(gd_sa_build(tok, tab, &o1, NULL, &err) == GD_OK, "one: %s", err.message);
        size_t n1 = 0;
        uint8_t *a = read_file(tab, &n1);
        for (unsigned threads = 2; threads <= 3; threads++) {
            gd_sa_options o = {.token_width = w, .threads = threads};
            CHECK(gd_sa_build(tok, par, &o, NULL, &err) == GD_OK, "par: %s", err.message);
            size_t n2 = 0;
            uint8_t *b = read_file(par, &n2);
            CHECK(a && b && n1 == n2 && memcmp(a, b, n1) == 0,
                  "width %u, %u threads: table differs", w, threads);
            free(b);
        }
        free(a);
        CHECK(gd_sa_verify(tok, tab, w, 1, NULL, &err) == GD_OK, "verify: %s", err.message);
    }
    free(data);
    free(expect);
    unlink(tok);
    unlink(tab);
    unlink(par);
}

int main(int argc, char **argv)
{
    char tmpl[] = "/tmp/gd_sa_testXXXXXX";
    const char *dir = argc > 1 ? argv[1] : mkdtemp(tmpl);
    if (!dir) {
        fprintf(stderr, "no scratch directory\n");
        return 1;
    }
    test_random(dir);
    test_verify_detects_corruption(dir);
    test_errors(dir);
    test_parallel(dir);
    test_structured(dir);
    const char *names[] = {"sa_tok", "sa_tab", "sa_tok2", "sa_tab2", "sa_tok3", "sa_tab3", "sa_tok4"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char p[4200];
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
    if (argc <= 1)
        rmdir(dir);
    if (failures) {
        fprintf(stderr, "test_sa_build: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_sa_build: ok\n");
    return 0;
}
