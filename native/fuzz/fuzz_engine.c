/* libFuzzer harness for the index loader and every query entry point, built with clang
 * -fsanitize=fuzzer,address,undefined by bench/fuzz.sh (CI does not need clang).
 *
 * The input is read as: byte 0 = mode/width, then a small corpus of tokens, then corruption edits, then
 * queries. Mode bit 7 set: the five index files are taken raw from the input (exercises the loader's size
 * checks); clear: a valid index is built from the tokens (suffix array by qsort) and then damaged by the edits
 * (bit flips, truncations, appended bytes), so the queries run over almost-valid files, which reach deeper
 * than random bytes. Every call must return a valid status without a sanitizer report. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gramdex.h"

typedef struct { const uint8_t *p; size_t n; } input;

static uint64_t take(input *in, unsigned bytes) {
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes && in->n; i++, in->p++, in->n--) v |= (uint64_t)in->p[0] << (8 * i);
    return v;
}

static char dir[256];
static const char *names[] = {"tokenized", "table", "offset", "metadata", "metaoff"};

static void put(int f, const void *p, size_t n) {
    char path[400];
    snprintf(path, sizeof path, "%s/%s.0", dir, names[f]);
    FILE *fp = fopen(path, "wb");
    if (!fp) abort();
    if (n) fwrite(p, 1, n, fp);
    fclose(fp);
}

static const uint8_t *g_text;
static size_t g_len;
static int cmp_suffix(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    size_t lx = g_len - x, ly = g_len - y, n = lx < ly ? lx : ly;
    int c = memcmp(g_text + x, g_text + y, n);
    return c ? c : (lx > ly) - (lx < ly);
}

static int valid_status(gd_status st) { return st >= GD_OK && st <= GD_E_DEADLINE; }
#define CHECK(st) do { if (!valid_status(st)) abort(); } while (0)

/* Builds a valid index of width w from n tokens taken from the input (0xFF.. separators start documents). */
static void build_valid(input *in, unsigned w, size_t *sizes, uint8_t **files) {
    size_t ntok = take(in, 1) % 120, ndocs = 1 + take(in, 1) % 4;
    size_t len = 0, cap = (ntok + ndocs) * w;
    uint8_t *text = calloc(cap + 1, 1);
    uint64_t *offs = calloc(ndocs, 8);
    char *meta = calloc(ndocs * 8 + 1, 1);
    uint64_t *moff = calloc(ndocs, 8);
    size_t mlen = 0;
    for (size_t d = 0; d < ndocs; d++) {
        offs[d] = len;
        memset(text + len, 0xFF, w);
        len += w;
        size_t k = d + 1 == ndocs ? ntok : ntok / ndocs;
        for (size_t i = 0; i < k; i++) {
            uint64_t t = take(in, 1) % 6;
            memcpy(text + len, &t, w); /* little-endian host */
            len += w;
        }
        ntok -= k;
        moff[d] = mlen;
        mlen += (size_t)snprintf(meta + mlen, 8, "{\"d\":%zu}", d % 10);
    }
    size_t nsuf = len / w;
    uint64_t *sa = calloc(nsuf ? nsuf : 1, 8);
    for (size_t i = 0; i < nsuf; i++) sa[i] = i * w;
    g_text = text;
    g_len = len;
    qsort(sa, nsuf, 8, cmp_suffix);
    unsigned ps = 1;
    while (ps < 8 && (len >> (8 * ps))) ps++;
    uint8_t *table = calloc(nsuf ? nsuf * ps : 1, 1);
    for (size_t i = 0; i < nsuf; i++) memcpy(table + i * ps, &sa[i], ps);
    free(sa);
    files[0] = text, sizes[0] = len;
    files[1] = table, sizes[1] = nsuf * ps;
    files[2] = (uint8_t *)offs, sizes[2] = ndocs * 8;
    files[3] = (uint8_t *)meta, sizes[3] = mlen;
    files[4] = (uint8_t *)moff, sizes[4] = ndocs * 8;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/dev/shm/gramdex-fuzz-%d", (int)getpid());
        mkdir(dir, 0700);
    }
    input in = {data, size};
    unsigned mode = (unsigned)take(&in, 1);
    unsigned widths[] = {1, 2, 4, 2}, w = widths[mode & 3];
    uint8_t *files[5] = {0};
    size_t sizes[5] = {0};
    if (mode & 0x80) {
        for (int f = 0; f < 5; f++) {
            size_t n = take(&in, 1);
            n = n < in.n ? n : in.n;
            files[f] = malloc(n ? n : 1);
            memcpy(files[f], in.p, n);
            sizes[f] = n;
            in.p += n, in.n -= n;
        }
    } else {
        build_valid(&in, w, sizes, files);
        for (unsigned e = 0, edits = (unsigned)take(&in, 1) % 4; e < edits; e++) {
            unsigned f = (unsigned)take(&in, 1) % 5, kind = (unsigned)take(&in, 1) % 3;
            size_t at = take(&in, 2);
            if (!sizes[f]) continue;
            at %= sizes[f];
            if (kind == 0) files[f][at] ^= (uint8_t)(1u << (take(&in, 1) % 8));
            else if (kind == 1) sizes[f] = at; /* truncated */
            else files[f][at] = (uint8_t)take(&in, 1);
        }
    }
    int with_meta = !(mode & 0x40);
    for (int f = 0; f < 5; f++) {
        if (f >= 3 && !with_meta) {
            char path[400];
            snprintf(path, sizeof path, "%s/%s.0", dir, names[f]);
            unlink(path);
            continue;
        }
        put(f, files[f], sizes[f]);
    }
    gd_engine *e = NULL;
    gd_error err;
    const char *dirs[] = {dir};
    gd_status st = gd_engine_open(dirs, 1, w, (uint32_t)(mode >> 4 & 1) * 0xFF, &e, &err);
    CHECK(st);
    for (int k = 0; e && k < 8 && in.n; k++) {
        uint32_t q[8];
        size_t n = take(&in, 1) % 7;
        for (size_t i = 0; i < n; i++) q[i] = (uint32_t)(in.n && in.p[0] > 0xF0 ? take(&in, 4) : take(&in, 1) % 7);
        gd_range ranges[1];
        uint64_t cnt;
        CHECK(gd_find(e, q, n, ranges, &cnt, &err));
        gd_prob_result pr;
        uint32_t cont = (uint32_t)take(&in, 1) % 7;
        CHECK(gd_prob(e, q, n, cont, &pr, &err));
        CHECK(gd_infgram_prob(e, q, n, cont, &pr, &err));
        gd_ntd_result nt;
        if ((st = gd_ntd(e, q, n, take(&in, 1), &nt, 0, &err)) == GD_OK) gd_free(nt.entries);
        CHECK(st);
        if ((st = gd_infgram_ntd(e, q, n, 1 + take(&in, 1), &nt, 0, &err)) == GD_OK) gd_free(nt.entries);
        CHECK(st);
        gd_token_score sc[8];
        CHECK(gd_score(e, q, n, sc, 0, &err));
        gd_attribution at;
        if ((st = gd_attribute(e, q, n, take(&in, 1) % 3, take(&in, 1) % 4, 1, &at, 0, &err)) == GD_OK) {
            gd_free(at.spans);
            gd_free(at.locations);
        }
        CHECK(st);
        size_t ts[4] = {0, 1, 2, 3}, tl[4] = {1, 1, 1, 1}, cs[2] = {0, 2}, cl[2] = {2, 2};
        uint32_t ct[4] = {q[0] % 7, (uint32_t)take(&in, 1) % 7, (uint32_t)take(&in, 1) % 7, 1};
        gd_cnf cnf = {ct, ts, tl, 4, cs, cl, 1 + take(&in, 1) % 2};
        gd_cnf_result cr;
        if ((st = gd_find_cnf(e, &cnf, take(&in, 1), take(&in, 1), &cr, 0, &err)) == GD_OK) {
            gd_free(cr.ptrs);
            gd_free(cr.ptrs_per_shard);
        }
        CHECK(st);
        gd_doc doc;
        if ((st = gd_doc_by_ptr(e, 0, take(&in, 2), take(&in, 1), &doc, &err)) == GD_OK) gd_doc_release(&doc);
        CHECK(st);
        if ((st = gd_doc_by_ix(e, take(&in, 1) % 8, take(&in, 1), &doc, &err)) == GD_OK) gd_doc_release(&doc);
        CHECK(st);
        uint64_t ptr;
        if ((st = gd_rank_to_ptr(e, 0, take(&in, 1), &ptr, &err)) == GD_OK) {
            if ((st = gd_doc_window(e, 0, ptr, take(&in, 1) % 9, take(&in, 1) % 9, &doc, &err)) == GD_OK)
                gd_doc_release(&doc);
            CHECK(st);
        }
    }
    gd_engine_close(e);
    for (int f = 0; f < 5; f++) free(files[f]);
    return 0;
}
