/* Randomised robustness test of the query engine, run under ASan/UBSan by run_sanitized.sh.
 *
 * Builds hundreds of small random indexes (u8/u16/u32, one or two shards, separator values inside
 * documents, empty documents), corrupts a third of them (random bytes in table/offset/metaoff,
 * truncations), then fires random queries of every kind with random parameters. Every call must return
 * a valid status; the sanitizers turn any out-of-bounds read, leak or undefined behaviour into a failure.
 * Valid indexes are also checked against brute-force counts. argv[1] is a scratch directory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gramdex.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15u;
static uint64_t rnd(void) { /* splitmix64 */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}
static uint64_t below(uint64_t n) { return n ? rnd() % n : 0; }

static const uint8_t *g_text;
static size_t g_len, g_width;
static int cmp_suffix(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    size_t lx = g_len - x, ly = g_len - y, n = lx < ly ? lx : ly;
    int c = memcmp(g_text + x, g_text + y, n);
    return c ? c : (lx > ly) - (lx < ly);
}

static void put(const char *dir, const char *name, unsigned shard, const void *p, size_t n) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s.%u", dir, name, shard);
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); exit(2); }
    if (n) fwrite(p, 1, n, f);
    fclose(f);
}

static uint32_t max_tok(unsigned w) { return w == 4 ? UINT32_MAX : (uint32_t)((1ull << (8 * w)) - 1); }

typedef struct shard_data { uint8_t *text; size_t len; } shard_data;

/* Writes one shard and returns its text (for brute-force counting). */
static shard_data write_shard(const char *dir, unsigned shard, unsigned w, int corrupt) {
    size_t ndocs = 1 + below(8), cap = 4096, len = 0;
    uint8_t *text = malloc(cap);
    uint64_t *offs = malloc(ndocs * 8);
    char *meta = malloc(ndocs * 32 + 1);
    uint64_t *moff = malloc(ndocs * 8);
    size_t mlen = 0;
    uint32_t alphabet = 2 + (uint32_t)below(5);
    for (size_t d = 0; d < ndocs; d++) {
        offs[d] = len;
        for (unsigned b = 0; b < w; b++) text[len++] = 0xFF;
        size_t n = below(30);
        for (size_t i = 0; i < n && len + w < cap; i++) {
            uint32_t t = below(20) == 0 ? max_tok(w) : 1 + (uint32_t)below(alphabet);
            for (unsigned b = 0; b < w; b++) text[len++] = (uint8_t)(t >> (8 * b));
        }
        moff[d] = mlen;
        mlen += (size_t)sprintf(meta + mlen, "{\"d\": %zu}\n", d);
    }
    size_t tok = len / w;
    uint64_t *sa = malloc(tok * 8);
    for (size_t i = 0; i < tok; i++) sa[i] = i * w;
    g_text = text;
    g_len = len;
    g_width = w;
    qsort(sa, tok, 8, cmp_suffix);
    unsigned ptr_size = len < 256 ? 1 : 2;
    uint8_t *table = malloc(tok * ptr_size);
    for (size_t i = 0; i < tok; i++)
        for (unsigned b = 0; b < ptr_size; b++) table[i * ptr_size + b] = (uint8_t)(sa[i] >> (8 * b));
    size_t table_len = tok * ptr_size, offs_len = ndocs * 8, moff_len = ndocs * 8;
    if (corrupt) {
        int what = (int)below(5);
        uint8_t *target = what == 0 ? table : what == 1 ? (uint8_t *)offs : what == 2 ? (uint8_t *)moff : NULL;
        size_t tlen = what == 0 ? table_len : what == 1 ? offs_len : moff_len;
        if (target)
            for (int k = 0; k < 3; k++) target[below(tlen)] ^= (uint8_t)(1 + below(255));
        if (what == 3 && table_len) table_len -= 1 + below(table_len);
        if (what == 4 && mlen) mlen = below(mlen);
    }
    put(dir, "tokenized", shard, text, len);
    put(dir, "table", shard, table, table_len);
    put(dir, "offset", shard, offs, offs_len);
    put(dir, "metadata", shard, meta, mlen);
    put(dir, "metaoff", shard, moff, moff_len);
    free(sa);
    free(table);
    free(offs);
    free(meta);
    free(moff);
    return (shard_data){text, len};
}

static uint64_t brute_count(const shard_data *sh, int nsh, unsigned w, const uint32_t *q, size_t n) {
    uint64_t c = 0;
    for (int s = 0; s < nsh; s++)
        for (size_t p = 0; p < sh[s].len && p + n * w <= sh[s].len; p += w) {
            size_t i = 0;
            for (; i < n; i++) {
                uint32_t t = 0;
                for (unsigned b = 0; b < w; b++) t |= (uint32_t)sh[s].text[p + i * w + b] << (8 * b);
                if (t != q[i]) break;
            }
            c += i == n;
        }
    return c;
}

static int valid_status(gd_status st) { return st >= GD_OK && st <= GD_E_DEADLINE; }

static int failures = 0;
#define CHECK(c)                                                                  \
    do {                                                                          \
        if (!(c)) {                                                               \
            fprintf(stderr, "%s:%d: iteration %d: %s\n", __FILE__, __LINE__, it, #c); \
            failures++;                                                           \
        }                                                                         \
    } while (0)

int main(int argc, char **argv) {
    const char *scratch = argc > 1 ? argv[1] : "/tmp";
    int iterations = argc > 2 ? atoi(argv[2]) : 400;
    for (int it = 0; it < iterations; it++) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/fuzz%d", scratch, it);
        mkdir(dir, 0755);
        unsigned widths[] = {1, 2, 4}, w = widths[below(3)];
        int nsh = 1 + (int)below(2), corrupt = below(3) == 0;
        shard_data sh[2];
        for (int s = 0; s < nsh; s++) sh[s] = write_shard(dir, (unsigned)s, w, corrupt);
        gd_engine *e = NULL;
        gd_error err;
        const char *dirs[] = {dir};
        gd_status st = gd_engine_open(dirs, 1, w, 0, &e, &err);
        CHECK(valid_status(st));
        CHECK(st != GD_OK || e != NULL);
        for (int k = 0; e && k < 40; k++) {
            uint32_t q[12];
            size_t n = below(6);
            for (size_t i = 0; i < n; i++) q[i] = below(8) == 0 ? (uint32_t)rnd() : (uint32_t)below(7);
            gd_range ranges[2];
            uint64_t cnt = 0;
            st = gd_find(e, q, n, ranges, &cnt, &err);
            CHECK(valid_status(st));
            int in_range = 1;
            for (size_t i = 0; i < n; i++) in_range &= q[i] <= max_tok(w);
            if (!corrupt && in_range) CHECK(st == GD_OK && cnt == brute_count(sh, nsh, w, q, n));
            gd_prob_result pr;
            CHECK(valid_status(gd_prob(e, q, n, (uint32_t)below(8), &pr, &err)));
            CHECK(valid_status(gd_infgram_prob(e, q, n, (uint32_t)below(8), &pr, &err)));
            gd_ntd_result nt;
            st = gd_ntd(e, q, n, below(6), &nt, 0, &err);
            CHECK(valid_status(st));
            if (st == GD_OK) gd_free(nt.entries);
            st = gd_infgram_ntd(e, q, n, 1 + below(6), &nt, 0, &err);
            CHECK(valid_status(st));
            if (st == GD_OK) gd_free(nt.entries);
            gd_token_score sc[12];
            CHECK(valid_status(gd_score(e, q, n, sc, 0, &err)));
            gd_attribution at;
            st = gd_attribute(e, q, n, below(3), below(4), (int)below(2), &at, 0, &err);
            CHECK(valid_status(st));
            if (st == GD_OK) {
                gd_free(at.spans);
                gd_free(at.locations);
            }
            size_t ts[4] = {0, 1, 2, 3}, tl[4] = {1, 1, 1, 1}, cs[2] = {0, 2}, cl[2] = {2, 2};
            uint32_t ct[4] = {(uint32_t)below(7), (uint32_t)below(7), (uint32_t)below(7), (uint32_t)below(7)};
            gd_cnf cnf = {ct, ts, tl, 4, cs, cl, 1 + below(2)};
            gd_cnf_result cr;
            st = gd_find_cnf(e, &cnf, below(20), below(10), &cr, 0, &err);
            CHECK(valid_status(st));
            if (st == GD_OK) {
                gd_free(cr.ptrs);
                gd_free(cr.ptrs_per_shard);
            }
            gd_doc doc;
            st = gd_doc_by_ptr(e, below(3), below(200), below(50), &doc, &err);
            CHECK(valid_status(st));
            if (st == GD_OK) gd_doc_release(&doc);
            st = gd_doc_by_ix(e, below(12), below(50), &doc, &err);
            CHECK(valid_status(st));
            if (st == GD_OK) gd_doc_release(&doc);
            uint64_t ptr;
            st = gd_rank_to_ptr(e, below(3), below(120), &ptr, &err);
            CHECK(valid_status(st));
            if (st == GD_OK) {
                st = gd_doc_window(e, 0, ptr, below(10), below(10), &doc, &err);
                CHECK(valid_status(st));
                if (st == GD_OK) gd_doc_release(&doc);
            }
        }
        gd_engine_close(e);
        for (int s = 0; s < nsh; s++) {
            const char *names[] = {"tokenized", "table", "offset", "metadata", "metaoff"};
            for (int f = 0; f < 5; f++) {
                char path[1200];
                snprintf(path, sizeof path, "%s/%s.%d", dir, names[f], s);
                unlink(path);
            }
            free(sh[s].text);
        }
        rmdir(dir);
    }
    return failures ? 1 : 0;
}
