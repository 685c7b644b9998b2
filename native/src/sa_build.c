/*
 * Suffix-array construction for infini-gram v4 shards (table.N from tokenized.N).
 *
 * Order: suffixes at token-aligned byte offsets, compared as raw bytes (the little-endian token
 * bytes), a suffix that is a prefix of a longer one first. This is the exact lexicographic order of
 * the complete suffixes, running to the end of the shard; it equals infini-gram's order wherever two
 * suffixes differ within their first 100,000 bytes (beyond that the peer's order is arbitrary, ours
 * stays exact), and it is the same whichever path below builds it.
 *
 * In memory: each token is mapped to a key whose integer order is its byte order (byte-swap), keys
 * are compacted to a dense alphabet, a unique smallest sentinel is appended, and the suffix array is
 * built by induced sorting (SA-IS, linear time, 31-bit indices, about 9-10 bytes per token).
 *
 * Under a memory budget (or above 2^31 - 2^17 tokens): the shard is cut into parts; each part's
 * suffixes are sorted in a slice that extends `overlap` tokens past the part, so every order decided
 * within the overlap is final; blocks of adjacent suffixes that agree on the whole overlap are
 * re-sorted by comparing the complete suffixes in the memory-mapped token file. Parts go to disk (u32 offsets
 * relative to the part) and are k-way merged (two parts by a plain two-way merge), comparing suffix
 * bytes in the mapped file.
 *
 * Nothing here aborts on input: every failure is a gd_status with a message in gd_error.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define SA_EMPTY UINT32_MAX
/* with the overlap (at most PEER_OVERLAP_BYTES tokens) and the sentinel, every SA-IS index stays
 * below 2^31 (induce_impl keeps a flag in the top bit) */
#define MAX_PART_TOKENS (((uint64_t)1 << 31) - ((uint64_t)1 << 17))
#define PEER_OVERLAP_BYTES 100000u
#define IO_BUF_ENTRIES (1u << 16)
#define DIR_CAP 4000
#define MAX_THREADS 256
/* internal: the parallel path met very repetitive text and leaves it to the linear one */
#define GD_GAVE_UP ((gd_status)100)
#define LONG_CMP_BYTES 4096
/* below this many tokens one thread sorts faster than threads that must merge */
#define PARALLEL_MIN_TOKENS ((uint64_t)1 << 16)
#define PATH_CAP (DIR_CAP + 64)

static void progress_set(gd_sa_progress *p, int phase, uint64_t done, uint64_t total)
{
    if (!p)
        return;
    __atomic_store_n(&p->total, total, __ATOMIC_RELAXED);
    __atomic_store_n(&p->done, done, __ATOMIC_RELAXED);
    __atomic_store_n(&p->phase, phase, __ATOMIC_RELAXED);
}

static void progress_add(gd_sa_progress *p, uint64_t n)
{
    if (p)
        __atomic_fetch_add(&p->done, n, __ATOMIC_RELAXED);
}

unsigned gd_sa_ptr_size(uint64_t ds_size)
{
    /* ceil(log2(ds_size) / 8) as infini-gram computes it, at least 1: the smallest b with
     * 2^b >= ds_size, rounded up to whole bytes. */
    unsigned bits = 0;
    while (bits < 64 && ((uint64_t)1 << bits) < ds_size)
        bits++;
    unsigned bytes = (bits + 7) / 8;
    return bytes ? bytes : 1;
}

/* ---------------------------------------------------------------- token keys */

static uint32_t token_key(const uint8_t *p, unsigned width)
{
    /* big-endian read of the little-endian bytes: integer order == byte order */
    switch (width) {
    case 1: return p[0];
    case 2: return ((uint32_t)p[0] << 8) | p[1];
    default:
        return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
    }
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Ranks 1.. of the keys (0 is the sentinel): sort a copy, dedupe, binary-search. Needed for u32
 * (the raw alphabet is 2^32) and cheaper than 65,537 buckets for short u16 slices. */
static gd_status compact_keys(uint32_t *keys, uint32_t n, uint32_t *scratch, uint32_t *alphabet,
                              gd_error *err)
{
    memcpy(scratch, keys, (size_t)n * sizeof *keys);
    if (n <= 65536) {
        qsort(scratch, n, sizeof *scratch, cmp_u32);
    } else {
        /* two 16-bit LSD radix passes: scratch -> tmp -> scratch */
        uint32_t *tmp = malloc((size_t)n * sizeof *tmp);
        uint32_t *cnt = malloc(65536 * sizeof *cnt);
        if (!tmp || !cnt) {
            free(tmp);
            free(cnt);
            return gd_fail(err, GD_E_NOMEM, "out of memory compacting %u token keys", n);
        }
        uint32_t *src = scratch, *dst = tmp;
        for (unsigned shift = 0; shift < 32; shift += 16) {
            memset(cnt, 0, 65536 * sizeof *cnt);
            for (uint32_t i = 0; i < n; i++)
                cnt[(src[i] >> shift) & 0xFFFF]++;
            uint32_t sum = 0;
            for (uint32_t c = 0; c < 65536; c++) {
                uint32_t k = cnt[c];
                cnt[c] = sum;
                sum += k;
            }
            for (uint32_t i = 0; i < n; i++)
                dst[cnt[(src[i] >> shift) & 0xFFFF]++] = src[i];
            uint32_t *sw = src;
            src = dst;
            dst = sw;
        }
        free(tmp);
        free(cnt);
    }
    uint32_t m = 0;
    for (uint32_t i = 0; i < n; i++)
        if (m == 0 || scratch[m - 1] != scratch[i])
            scratch[m++] = scratch[i];
    for (uint32_t i = 0; i < n; i++) {
        uint32_t lo = 0, hi = m, k = keys[i];
        while (hi - lo > 1) {
            uint32_t mid = lo + (hi - lo) / 2;
            if (scratch[mid] <= k)
                lo = mid;
            else
                hi = mid;
        }
        keys[i] = lo + 1;
    }
    *alphabet = m + 1;
    return GD_OK;
}

/* ---------------------------------------------------------------- SA-IS */

enum { PF = 32 }; /* prefetch distance of the random-access scans */

#define TYPE_S(t, i) (((t)[(i) >> 3] >> ((i) & 7)) & 1u)

static inline int is_lms(const uint8_t *t, uint32_t i)
{
    return i > 0 && TYPE_S(t, i) && !TYPE_S(t, i - 1);
}

/* The text being sorted: 16-bit symbols at the top level when the alphabet fits (half the
 * memory traffic), 32-bit in the recursion. Exactly one pointer is set; the branch is invariant. */
typedef struct syms {
    const uint32_t *w;
    const uint16_t *h;
} syms;

static inline uint32_t SYM(syms s, uint32_t i)
{
    return s.h ? s.h[i] : s.w[i];
}

#define SYMW(s, half, i) ((half) ? (uint32_t)(s).h[i] : (s).w[i])
#define SYMW_ADDR(s, half, i) ((half) ? (const void *)&(s).h[i] : (const void *)&(s).w[i])

static inline const void *SYM_ADDR(syms s, uint32_t i)
{
    return s.h ? (const void *)&s.h[i] : (const void *)&s.w[i];
}

/* Bucket starts (end = 0) or ends (end = 1) per symbol. With cnt (symbol counts, computed once per
 * level when the alphabet is small enough to keep them) this costs O(K) instead of a pass over s. */
static void buckets(syms s, uint32_t n, const uint32_t *cnt, uint32_t *bkt, uint32_t K,
                    int end)
{
    if (cnt) {
        memcpy(bkt, cnt, (size_t)K * sizeof *bkt);
    } else {
        memset(bkt, 0, (size_t)K * sizeof *bkt);
        for (uint32_t i = 0; i < n; i++)
            bkt[SYM(s, i)]++;
    }
    uint32_t sum = 0;
    for (uint32_t c = 0; c < K; c++) {
        sum += bkt[c];
        bkt[c] = end ? sum : sum - bkt[c];
    }
}

/* Induction without the type bitmap: an entry's top bit says whether its predecessor (the suffix
 * one token earlier) is S-type. The bit is decided when the entry is written, from the symbol just
 * before the one that was read anyway (usually in the same cache line), so the scans never look
 * at t, a second random access per entry. The L-scan induces from unflagged entries (LMS seeds,
 * and L-types whose predecessor is L); the S-scan from flagged ones, and clears every bit it
 * passes, which is every entry. Needs indices below PRED_S (sort_slice refuses longer texts). */
#define PRED_S 0x80000000u

static inline __attribute__((always_inline)) void
induce_impl(syms s, const int half, uint32_t *SA, uint32_t n, uint32_t K, const uint32_t *cnt,
            uint32_t *bkt)
{
    /* The scans read s at random places: prefetching a few entries ahead hides most of the cache
     * misses (an entry ahead may still change; a stale prefetch is only a hint). */
    buckets(s, n, cnt, bkt, K, 0);
    for (uint32_t i = 0; i < n; i++) {
        if (i + PF < n) {
            uint32_t q = SA[i + PF];
            if (q - 1 < PRED_S - 1) /* a real entry, not flagged, not 0 */
                __builtin_prefetch(SYMW_ADDR(s, half, q - 1));
        }
        uint32_t j = SA[i];
        if (j - 1 >= PRED_S - 1) /* empty, flagged (predecessor S) or the first suffix */
            continue;
        uint32_t c = SYMW(s, half, j - 1);
        /* j - 1 is L-type; its predecessor is S-type iff its symbol is smaller */
        uint32_t flag = j >= 2 && SYMW(s, half, j - 2) < c ? PRED_S : 0;
        SA[bkt[c]++] = (j - 1) | flag;
    }
    buckets(s, n, cnt, bkt, K, 1);
    for (uint32_t i = n; i-- > 0;) {
        if (i >= PF) {
            uint32_t q = SA[i - PF];
            if (q != SA_EMPTY && (q & PRED_S))
                __builtin_prefetch(SYMW_ADDR(s, half, (q & ~PRED_S) - 1));
        }
        uint32_t j = SA[i];
        if (j == SA_EMPTY || !(j & PRED_S))
            continue;
        j &= ~PRED_S;
        SA[i] = j;
        uint32_t c = SYMW(s, half, j - 1);
        /* j - 1 is S-type; its predecessor is S-type too iff its symbol is not larger */
        uint32_t flag = j >= 2 && SYMW(s, half, j - 2) <= c ? PRED_S : 0;
        SA[--bkt[c]] = (j - 1) | flag;
    }
}

/* Two copies of the induction scans, one per symbol width, so the hot loops carry no branch. */
static void induce(syms s, uint32_t *SA, uint32_t n, uint32_t K, const uint32_t *cnt,
                   uint32_t *bkt)
{
    if (s.h)
        induce_impl(s, 1, SA, n, K, cnt, bkt);
    else
        induce_impl(s, 0, SA, n, K, cnt, bkt);
}

/* Symbol counts, kept only for alphabets much smaller than the text (memory); NULL otherwise or
 * when allocation fails, and then buckets() counts again each time. */
static uint32_t *count_symbols(syms s, uint32_t n, uint32_t K)
{
    if ((uint64_t)K * 8 > n)
        return NULL;
    uint32_t *cnt = calloc(K, sizeof *cnt);
    if (cnt)
        for (uint32_t i = 0; i < n; i++)
            cnt[SYM(s, i)]++;
    return cnt;
}

/* SA of s[0..n): symbols in [0, K), s[n-1] == 0 is the unique smallest symbol. given_cnt, when
 * not NULL, holds the K symbol counts (the caller's spare memory; left unchanged). */
static gd_status sais(syms s, uint32_t *SA, uint32_t n, uint32_t K, const uint32_t *given_cnt,
                      gd_error *err)
{
    if (n == 1) {
        SA[0] = 0;
        return GD_OK;
    }
    uint8_t *t = calloc((size_t)n / 8 + 1, 1);
    uint32_t *bkt = malloc((size_t)K * sizeof *bkt);
    if (!t || !bkt) {
        free(t);
        free(bkt);
        return gd_fail(err, GD_E_NOMEM, "out of memory in suffix sorting (%u symbols)", n);
    }
    uint32_t *own_cnt = given_cnt ? NULL : count_symbols(s, n, K);
    const uint32_t *cnt = given_cnt ? given_cnt : own_cnt;
    /* types right to left, the next symbol and type carried in registers */
    t[(n - 1) >> 3] |= (uint8_t)(1u << ((n - 1) & 7));
    uint32_t next = SYM(s, n - 1), next_s = 1;
    for (uint32_t i = n - 1; i-- > 0;) {
        uint32_t c = SYM(s, i);
        next_s = c < next || (c == next && next_s);
        t[i >> 3] |= (uint8_t)(next_s << (i & 7));
        next = c;
    }
    /* stage 1: sort the LMS substrings by induction */
    buckets(s, n, cnt, bkt, K, 1);
    for (uint32_t i = 0; i < n; i++)
        SA[i] = SA_EMPTY;
    for (uint32_t i = 1; i < n; i++)
        if (is_lms(t, i))
            SA[--bkt[SYM(s, i)]] = i;
    induce(s, SA, n, K, cnt, bkt);

    uint32_t n1 = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (i + PF < n)
            __builtin_prefetch(&t[SA[i + PF] >> 3]);
        if (is_lms(t, SA[i]))
            SA[n1++] = SA[i];
    }
    for (uint32_t i = n1; i < n; i++)
        SA[i] = SA_EMPTY;
    /* name them: equal LMS substrings get equal names */
    uint32_t name = 0, prev = SA_EMPTY;
    for (uint32_t i = 0; i < n1; i++) {
        if (i + PF < n1) {
            __builtin_prefetch(SYM_ADDR(s, SA[i + PF]));
            __builtin_prefetch(&t[SA[i + PF] >> 3]);
        }
        uint32_t pos = SA[i];
        int diff = prev == SA_EMPTY;
        for (uint32_t d = 0; !diff; d++) {
            if (SYM(s, pos + d) != SYM(s, prev + d) || TYPE_S(t, pos + d) != TYPE_S(t, prev + d))
                diff = 1;
            else if (d > 0 && is_lms(t, pos + d))
                break; /* both end here (types agree up to d) */
        }
        if (diff) {
            name++;
            prev = pos;
        }
        SA[n1 + pos / 2] = name - 1;
        SA[i] = name - 1; /* pos is no longer needed: keep the sorted names for their counts */
    }
    for (uint32_t i = n, j = n; i-- > n1;)
        if (SA[i] != SA_EMPTY)
            SA[--j] = SA[i];
    uint32_t *s1 = SA + n - n1, *SA1 = SA, *cnt1 = NULL;
    if (name < n1 && (uint64_t)n1 + name <= n - n1) {
        /* The reduced problem never touches SA[n1, n - n1): its symbol counts go there, taken in
         * one sequential pass from the names in sorted order, so its bucket scans need not count
         * its (large) alphabet again and again at random places. */
        cnt1 = SA + n1;
        memset(cnt1, 0, (size_t)name * sizeof *cnt1);
        for (uint32_t i = 0; i < n1; i++)
            cnt1[SA[i]]++;
    }
    free(bkt);
    free(own_cnt);
    bkt = own_cnt = NULL;
    cnt = given_cnt;

    /* stage 2: the reduced problem */
    if (name < n1) {
        gd_status st = sais((syms){.w = s1, .h = NULL}, SA1, n1, name, cnt1, err);
        if (st != GD_OK) {
            free(t);
            return st;
        }
    } else {
        for (uint32_t i = 0; i < n1; i++)
            SA1[s1[i]] = i;
    }

    /* stage 3: induce the full order from the sorted LMS suffixes */
    bkt = malloc((size_t)K * sizeof *bkt);
    if (!bkt) {
        free(t);
        return gd_fail(err, GD_E_NOMEM, "out of memory in suffix sorting (%u symbols)", n);
    }
    if (!given_cnt)
        cnt = own_cnt = count_symbols(s, n, K);
    for (uint32_t i = 1, j = 0; i < n; i++)
        if (is_lms(t, i))
            s1[j++] = i;
    for (uint32_t i = 0; i < n1; i++) {
        if (i + PF < n1)
            __builtin_prefetch(&s1[SA1[i + PF]]);
        SA1[i] = s1[SA1[i]];
    }
    for (uint32_t i = n1; i < n; i++)
        SA[i] = SA_EMPTY;
    buckets(s, n, cnt, bkt, K, 1);
    for (uint32_t i = n1; i-- > 0;) {
        if (i >= PF)
            __builtin_prefetch(SYM_ADDR(s, SA[i - PF]));
        uint32_t j = SA[i];
        SA[i] = SA_EMPTY;
        SA[--bkt[SYM(s, j)]] = j;
    }
    induce(s, SA, n, K, cnt, bkt);
    free(own_cnt);
    free(bkt);
    free(t);
    return GD_OK;
}

/* ---------------------------------------------------------------- files */

typedef struct writer {
    FILE *f;
    const char *path;
    uint8_t *buf;
    size_t len, cap;
} writer;

/* expected_bytes only sizes the buffer (small outputs need no 1 MiB of it). */
static gd_status writer_open(writer *w, const char *path, uint64_t expected_bytes, gd_error *err)
{
    w->path = path;
    w->len = 0;
    w->cap = expected_bytes < ((uint64_t)1 << 20) ? (size_t)expected_bytes + 8 : (size_t)1 << 20;
    w->buf = malloc(w->cap);
    w->f = w->buf ? fopen(path, "wb") : NULL;
    if (!w->buf) {
        return gd_fail(err, GD_E_NOMEM, "out of memory opening %s", path);
    }
    if (!w->f) {
        free(w->buf);
        w->buf = NULL;
        return gd_fail(err, GD_E_IO, "cannot create %s: %s", path, strerror(errno));
    }
    return GD_OK;
}

static gd_status writer_flush(writer *w, gd_error *err)
{
    if (w->len && fwrite(w->buf, 1, w->len, w->f) != w->len)
        return gd_fail(err, GD_E_IO, "cannot write %s: %s", w->path, strerror(errno));
    w->len = 0;
    return GD_OK;
}

static gd_status writer_put(writer *w, uint64_t v, unsigned nbytes, gd_error *err)
{
    if (w->len + nbytes > w->cap) {
        gd_status st = writer_flush(w, err);
        if (st != GD_OK)
            return st;
    }
    for (unsigned b = 0; b < nbytes; b++)
        w->buf[w->len++] = (uint8_t)(v >> (8 * b));
    return GD_OK;
}

/* Closes; on success the file is complete on disk. Always releases everything. */
static gd_status writer_close(writer *w, gd_status st, gd_error *err)
{
    if (st == GD_OK)
        st = writer_flush(w, err);
    if (w->f) {
        if (st == GD_OK && fflush(w->f) != 0)
            st = gd_fail(err, GD_E_IO, "cannot write %s: %s", w->path, strerror(errno));
        if (fclose(w->f) != 0 && st == GD_OK)
            st = gd_fail(err, GD_E_IO, "cannot close %s: %s", w->path, strerror(errno));
    }
    w->f = NULL;
    free(w->buf);
    w->buf = NULL;
    return st;
}

/* ---------------------------------------------------------------- one slice */

/* SA of the tokens [start, end) of text (sentinel excluded); out gets end-start entries. */
/* Symbols of the tokens [start, end) (keys whose order is the byte order, ranked densely from 1)
 * plus the sentinel 0: into *h16 when the alphabet fits 16 bits, else into *w32. */
static gd_status slice_symbols(const gd_map *text, unsigned width, uint64_t start, uint32_t n,
                               uint32_t *scratch, uint16_t **h16, uint32_t **w32, uint32_t *K,
                               gd_error *err)
{
    const uint8_t *p = text->data + start * width;
    *h16 = NULL;
    *w32 = NULL;
    if (width == 1) {
        uint16_t *h = malloc((size_t)n * sizeof *h);
        if (!h)
            return gd_fail(err, GD_E_NOMEM, "out of memory sorting %u tokens", n);
        for (uint32_t i = 0; i + 1 < n; i++)
            h[i] = (uint16_t)(p[i] + 1);
        h[n - 1] = 0;
        *h16 = h;
        *K = 257;
        return GD_OK;
    }
    if (width == 2) {
        /* rank the byte-swapped values present: scratch serves as the 65,536-entry rank table */
        uint32_t *rank = calloc(65536, sizeof *rank);
        if (!rank)
            return gd_fail(err, GD_E_NOMEM, "out of memory sorting %u tokens", n);
        for (uint32_t i = 0; i + 1 < n; i++)
            rank[token_key(p + (size_t)i * 2, 2)] = 1;
        uint32_t sigma = 0;
        for (uint32_t v = 0; v < 65536; v++)
            if (rank[v])
                rank[v] = ++sigma;
        gd_status st = GD_OK;
        if (sigma < 65536) {
            uint16_t *h = malloc((size_t)n * sizeof *h);
            if (!h) {
                st = gd_fail(err, GD_E_NOMEM, "out of memory sorting %u tokens", n);
            } else {
                for (uint32_t i = 0; i + 1 < n; i++)
                    h[i] = (uint16_t)rank[token_key(p + (size_t)i * 2, 2)];
                h[n - 1] = 0;
                *h16 = h;
            }
        } else {
            uint32_t *w = malloc((size_t)n * sizeof *w);
            if (!w) {
                st = gd_fail(err, GD_E_NOMEM, "out of memory sorting %u tokens", n);
            } else {
                for (uint32_t i = 0; i + 1 < n; i++)
                    w[i] = rank[token_key(p + (size_t)i * 2, 2)];
                w[n - 1] = 0;
                *w32 = w;
            }
        }
        free(rank);
        *K = sigma + 1;
        return st;
    }
    uint32_t *w = malloc((size_t)n * sizeof *w);
    if (!w)
        return gd_fail(err, GD_E_NOMEM, "out of memory sorting %u tokens", n);
    for (uint32_t i = 0; i + 1 < n; i++)
        w[i] = token_key(p + (size_t)i * 4, 4);
    gd_status st = compact_keys(w, n - 1, scratch, K, err);
    if (st != GD_OK) {
        free(w);
        return st;
    }
    w[n - 1] = 0;
    if (*K <= 65536) { /* small alphabet: halve the symbol array */
        uint16_t *h = malloc((size_t)n * sizeof *h);
        if (h) {
            for (uint32_t i = 0; i < n; i++)
                h[i] = (uint16_t)w[i];
            free(w);
            *h16 = h;
            return GD_OK;
        }
    }
    *w32 = w;
    return GD_OK;
}

/* SA of the tokens [start, end) of text (sentinel excluded); out gets end-start entries. */
static gd_status sort_slice(const gd_map *text, unsigned width, uint64_t start, uint64_t end,
                            uint32_t **out, gd_error *err)
{
    uint64_t m = end - start;
    *out = NULL;
    if (m + 1 >= PRED_S)
        return gd_fail(err, GD_E_INVALID, "slice of %llu tokens is too large for one sort",
                       (unsigned long long)m);
    uint32_t n = (uint32_t)m + 1;
    uint32_t *SA = malloc((size_t)n * sizeof *SA);
    if (!SA)
        return gd_fail(err, GD_E_NOMEM, "out of memory sorting %llu tokens",
                       (unsigned long long)m);
    uint16_t *h = NULL;
    uint32_t *w = NULL, K = 0;
    gd_status st = slice_symbols(text, width, start, n, SA, &h, &w, &K, err);
    if (st == GD_OK)
        st = sais((syms){.w = w, .h = h}, SA, n, K, NULL, err);
    free(h);
    free(w);
    if (st != GD_OK) {
        free(SA);
        return st;
    }
    /* drop the sentinel, which sorts first */
    memmove(SA, SA + 1, (size_t)(n - 1) * sizeof *SA);
    *out = SA;
    return GD_OK;
}

/* ---------------------------------------------------------------- comparisons */

typedef struct text_ctx {
    const uint8_t *data;
    uint64_t size;
    unsigned width;
} text_ctx;

/* Complete suffixes at token indices a != b: <0 if a sorts first. */
static int suffix_cmp(const text_ctx *c, uint64_t a, uint64_t b)
{
    uint64_t oa = a * c->width, ob = b * c->width;
    uint64_t la = c->size - oa, lb = c->size - ob;
    int r = memcmp(c->data + oa, c->data + ob, (size_t)(la < lb ? la : lb));
    if (r)
        return r;
    return la < lb ? -1 : 1;
}

static void merge_sort_u64(uint64_t *a, uint64_t *tmp, size_t n, const text_ctx *c)
{
    if (n < 2)
        return;
    if (n <= 16) {
        for (size_t i = 1; i < n; i++) {
            uint64_t v = a[i];
            size_t j = i;
            while (j > 0 && suffix_cmp(c, a[j - 1], v) > 0) {
                a[j] = a[j - 1];
                j--;
            }
            a[j] = v;
        }
        return;
    }
    size_t h = n / 2;
    merge_sort_u64(a, tmp, h, c);
    merge_sort_u64(a + h, tmp, n - h, c);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n)
        tmp[k++] = suffix_cmp(c, a[j], a[i]) < 0 ? a[j++] : a[i++];
    while (i < h)
        tmp[k++] = a[i++];
    while (j < n)
        tmp[k++] = a[j++];
    memcpy(a, tmp, n * sizeof *a);
}

/* In a part's SA (relative indices, base = part start), blocks of neighbours agreeing on their
 * first `overlap` tokens may be misordered by the slice's truncation: re-sort them exactly. */
static gd_status fix_truncated_runs(const text_ctx *c, uint64_t base, uint32_t *sa, uint64_t m,
                                    uint64_t overlap, uint64_t *budget, gd_error *err)
{
    size_t nb = (size_t)overlap * c->width;
    uint64_t i = 0;
    while (i + 1 < m) {
        uint64_t j = i;
        while (j + 1 < m &&
               (nb == 0 || memcmp(c->data + (base + sa[j]) * c->width,
                                  c->data + (base + sa[j + 1]) * c->width, nb) == 0))
            j++;
        if (j > i) {
            size_t len = (size_t)(j - i + 1);
            if (budget) { /* repetitive text: the caller has a linear fallback */
                if (*budget < len)
                    return GD_GAVE_UP;
                *budget -= len;
            }
            uint64_t *run = malloc(2 * len * sizeof *run);
            if (!run)
                return gd_fail(err, GD_E_NOMEM, "out of memory re-sorting %zu suffixes", len);
            for (size_t k = 0; k < len; k++)
                run[k] = base + sa[i + k];
            merge_sort_u64(run, run + len, len, c);
            for (size_t k = 0; k < len; k++)
                sa[i + k] = (uint32_t)(run[k] - base);
            free(run);
        }
        i = j + 1;
    }
    return GD_OK;
}

/* ---------------------------------------------------------------- parts */

typedef struct part_job {
    const gd_map *text;
    unsigned width;
    uint64_t tok_cnt, part_tokens, overlap, n_parts;
    const char *dir;
    gd_sa_progress *progress;
    pthread_mutex_t lock;
    uint64_t next;
    gd_status status;
    gd_error err;
} part_job;

static void part_path(char *buf, size_t cap, const char *dir, uint64_t i)
{
    snprintf(buf, cap, "%s/part.%06llu", dir, (unsigned long long)i);
}

static gd_status build_part(part_job *job, uint64_t i, gd_error *err)
{
    uint64_t start = i * job->part_tokens;
    uint64_t end = start + job->part_tokens < job->tok_cnt ? start + job->part_tokens : job->tok_cnt;
    uint64_t slice_end = end + job->overlap < job->tok_cnt ? end + job->overlap : job->tok_cnt;
    uint32_t *sa;
    gd_status st = sort_slice(job->text, job->width, start, slice_end, &sa, err);
    if (st != GD_OK)
        return st;
    /* keep the suffixes that start inside the part, in order */
    uint64_t m = 0, span = slice_end - start, own = end - start;
    for (uint64_t k = 0; k < span; k++)
        if (sa[k] < own)
            sa[m++] = sa[k];
    text_ctx c = {job->text->data, job->text->size, job->width};
    if (slice_end < job->tok_cnt)
        st = fix_truncated_runs(&c, start, sa, m, job->overlap, NULL, err);
    char path[PATH_CAP];
    part_path(path, sizeof path, job->dir, i);
    if (st == GD_OK) {
        FILE *f = fopen(path, "wb");
        if (!f) {
            st = gd_fail(err, GD_E_IO, "cannot create %s: %s", path, strerror(errno));
        } else {
            if (m && fwrite(sa, sizeof *sa, (size_t)m, f) != (size_t)m)
                st = gd_fail(err, GD_E_IO, "cannot write %s: %s", path, strerror(errno));
            if (fclose(f) != 0 && st == GD_OK)
                st = gd_fail(err, GD_E_IO, "cannot write %s: %s", path, strerror(errno));
            if (st != GD_OK)
                unlink(path);
        }
    }
    free(sa);
    return st;
}

static void *part_worker(void *arg)
{
    part_job *job = arg;
    for (;;) {
        pthread_mutex_lock(&job->lock);
        uint64_t i = job->next++;
        int stop = job->status != GD_OK || i >= job->n_parts;
        pthread_mutex_unlock(&job->lock);
        if (stop)
            return NULL;
        gd_error e = {GD_OK, ""};
        gd_status st = build_part(job, i, &e);
        pthread_mutex_lock(&job->lock);
        if (st != GD_OK && job->status == GD_OK) {
            job->status = st;
            job->err = e;
        }
        pthread_mutex_unlock(&job->lock);
        progress_add(job->progress, 1);
    }
}

/* ---------------------------------------------------------------- range merge */

/* Sorted parts (in memory, or part files mapped read-only) are merged by `threads` workers at once:
 * the output ranks are split at suffixes of part 0, located in every other part by binary search,
 * and each worker writes its range of table.N with pwrite. */

typedef struct sorted_part {
    uint64_t start;     /* token index of the part's first suffix */
    const uint32_t *sa; /* relative suffix indices, in order */
    uint64_t m;
} sorted_part;

/* First rank in part p whose suffix does not sort before suffix x. */
static uint64_t part_lower_bound(const text_ctx *c, const sorted_part *p, uint64_t x)
{
    uint64_t lo = 0, hi = p->m;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        uint64_t y = p->start + p->sa[mid];
        if (y != x && suffix_cmp(c, y, x) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* suffix_cmp that counts comparisons reaching past LONG_CMP_BYTES (the cost of repetitive text). */
static int suffix_cmp_counted(const text_ctx *c, uint64_t a, uint64_t b, uint64_t *long_cmps)
{
    uint64_t oa = a * c->width, ob = b * c->width;
    uint64_t la = c->size - oa, lb = c->size - ob;
    uint64_t l = la < lb ? la : lb;
    if (l > LONG_CMP_BYTES) {
        int r = memcmp(c->data + oa, c->data + ob, LONG_CMP_BYTES);
        if (r)
            return r;
        ++*long_cmps;
    }
    return suffix_cmp(c, a, b);
}

typedef struct merge_range {
    const text_ctx *c;
    const sorted_part *parts;
    uint64_t k;
    uint64_t *lo, *hi; /* k entries each: this range's ranks in every part */
    uint64_t out_rank;
    int fd;
    unsigned ptr_size;
    int may_give_up; /* stop with GD_GAVE_UP on very repetitive text */
    const char *path;
    gd_sa_progress *progress;
    gd_status status;
    gd_error err;
} merge_range;

typedef struct merge_heap {
    const merge_range *r;
    uint64_t *cur;
    uint64_t *heap; /* part numbers, a binary min-heap on their current suffix */
    uint64_t n;
    uint64_t long_cmps;
} merge_heap;

static inline uint64_t heap_head(const merge_heap *h, uint64_t p)
{
    return h->r->parts[p].start + h->r->parts[p].sa[h->cur[p]];
}

static inline int heap_less(merge_heap *h, uint64_t a, uint64_t b)
{
    return suffix_cmp_counted(h->r->c, heap_head(h, a), heap_head(h, b), &h->long_cmps) < 0;
}

static void heap_sift_down(merge_heap *h, uint64_t i)
{
    for (;;) {
        uint64_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->n && heap_less(h, h->heap[l], h->heap[m]))
            m = l;
        if (r < h->n && heap_less(h, h->heap[r], h->heap[m]))
            m = r;
        if (m == i)
            return;
        uint64_t t = h->heap[i];
        h->heap[i] = h->heap[m];
        h->heap[m] = t;
        i = m;
    }
}

/* Does the complete suffix at token index a sort before the one at b (a != b)? The first 8 bytes
 * are compared inline as one big-endian integer (most merged neighbours differ there), the rest by
 * suffix_cmp_counted. */
static inline int merge_less(const text_ctx *c, uint64_t a, uint64_t b, uint64_t *long_cmps)
{
    uint64_t oa = a * c->width, ob = b * c->width;
    if (c->size - oa >= 8 && c->size - ob >= 8) {
        uint64_t ka, kb;
        memcpy(&ka, c->data + oa, 8);
        memcpy(&kb, c->data + ob, 8);
        if (ka != kb)
            return __builtin_bswap64(ka) < __builtin_bswap64(kb);
    }
    return suffix_cmp_counted(c, a, b, long_cmps) < 0;
}

/* merge_range_worker for exactly two parts: each output entry costs one comparison and no heap
 * (the in-memory parallel build with 2 threads, and builds of 2 parts, spend their merge here). */
static void *merge2_worker(void *arg)
{
    merge_range *r = arg;
    const text_ctx *c = r->c;
    const sorted_part *pa = &r->parts[0], *pb = &r->parts[1];
    const uint32_t *sa = pa->sa, *sb = pb->sa;
    uint64_t i = r->lo[0], ie = r->hi[0], j = r->lo[1], je = r->hi[1];
    uint64_t ba = pa->start, bb = pb->start, long_cmps = 0;
    uint64_t long_cmp_limit = (ie - i + je - j) / 256 + 1024;
    size_t cap = (size_t)1 << 20, len = 0;
    unsigned ps = r->ptr_size, w = c->width;
    uint8_t *buf = malloc(cap);
    uint64_t out = r->out_rank * ps;
    if (!buf) {
        r->status = gd_fail(&r->err, GD_E_NOMEM, "out of memory merging");
        return NULL;
    }
    /* The heads PF entries ahead are prefetched, 40 bytes of each: neighbours often agree on their
     * first 8 bytes, and the comparison then reads on, often into the next cache line. (That
     * address may lie past the end of the text: it is formed as an integer, and a prefetch of an
     * unmapped address is ignored.) */
    while (i < ie || j < je) {
        uint64_t v;
        if (j >= je || (i < ie && merge_less(c, ba + sa[i], bb + sb[j], &long_cmps))) {
            v = ba + sa[i++];
            if (i + PF < ie) {
                const uint8_t *q = c->data + (ba + sa[i + PF]) * w;
                __builtin_prefetch(q);
                __builtin_prefetch((const void *)((uintptr_t)q + 40));
            }
        } else {
            v = bb + sb[j++];
            if (j + PF < je) {
                const uint8_t *q = c->data + (bb + sb[j + PF]) * w;
                __builtin_prefetch(q);
                __builtin_prefetch((const void *)((uintptr_t)q + 40));
            }
        }
        v *= w;
        for (unsigned b = 0; b < ps; b++)
            buf[len++] = (uint8_t)(v >> (8 * b));
        if (cap - len < 8) {
            if (pwrite(r->fd, buf, len, (off_t)out) != (ssize_t)len) {
                r->status = gd_fail(&r->err, GD_E_IO, "cannot write %s: %s", r->path,
                                    strerror(errno));
                free(buf);
                return NULL;
            }
            out += len;
            progress_add(r->progress, len / ps);
            len = 0;
        }
        if (r->may_give_up && long_cmps > long_cmp_limit) {
            r->status = GD_GAVE_UP;
            free(buf);
            return NULL;
        }
    }
    if (len && pwrite(r->fd, buf, len, (off_t)out) != (ssize_t)len)
        r->status = gd_fail(&r->err, GD_E_IO, "cannot write %s: %s", r->path, strerror(errno));
    progress_add(r->progress, len / ps);
    free(buf);
    return NULL;
}

static void *merge_range_worker(void *arg)
{
    merge_range *r = arg;
    const text_ctx *c = r->c;
    merge_heap h = {.r = r, .cur = malloc(r->k * sizeof(uint64_t)),
                    .heap = malloc(r->k * sizeof(uint64_t)), .n = 0, .long_cmps = 0};
    size_t cap = (size_t)1 << 20, len = 0;
    uint8_t *buf = malloc(cap);
    if (!h.cur || !h.heap || !buf) {
        r->status = gd_fail(&r->err, GD_E_NOMEM, "out of memory merging");
        goto done;
    }
    uint64_t total = 0;
    for (uint64_t p = 0; p < r->k; p++) {
        h.cur[p] = r->lo[p];
        total += r->hi[p] - r->lo[p];
        if (h.cur[p] < r->hi[p])
            h.heap[h.n++] = p;
    }
    for (uint64_t i = h.n / 2; i-- > 0;)
        heap_sift_down(&h, i);
    uint64_t long_cmp_limit = total / 256 + 1024;
    uint64_t out = r->out_rank * r->ptr_size;
    while (h.n > 0) {
        uint64_t p = h.heap[0];
        const sorted_part *sp = &r->parts[p];
        uint64_t v = (sp->start + sp->sa[h.cur[p]]) * c->width;
        for (unsigned b = 0; b < r->ptr_size; b++)
            buf[len++] = (uint8_t)(v >> (8 * b));
        if (cap - len < 8) {
            if (pwrite(r->fd, buf, len, (off_t)out) != (ssize_t)len) {
                r->status = gd_fail(&r->err, GD_E_IO, "cannot write %s: %s", r->path,
                                    strerror(errno));
                goto done;
            }
            out += len;
            progress_add(r->progress, len / r->ptr_size);
            len = 0;
        }
        h.cur[p]++;
        if (h.cur[p] + PF < r->hi[p])
            __builtin_prefetch(c->data + (sp->start + sp->sa[h.cur[p] + PF]) * c->width);
        if (h.cur[p] == r->hi[p])
            h.heap[0] = h.heap[--h.n];
        heap_sift_down(&h, 0);
        if (r->may_give_up && h.long_cmps > long_cmp_limit) {
            r->status = GD_GAVE_UP;
            goto done;
        }
    }
    if (len && pwrite(r->fd, buf, len, (off_t)out) != (ssize_t)len)
        r->status = gd_fail(&r->err, GD_E_IO, "cannot write %s: %s", r->path, strerror(errno));
    progress_add(r->progress, len / r->ptr_size);
done:
    free(buf);
    free(h.cur);
    free(h.heap);
    return NULL;
}

/* Runs fn(arg + i * size) for i < count on up to count threads; what cannot start runs here. */
static void run_threads(void *(*fn)(void *), void *args, size_t size, unsigned count)
{
    pthread_t *tids = calloc(count, sizeof *tids);
    unsigned started = 0;
    while (tids && started < count &&
           pthread_create(&tids[started], NULL, fn, (char *)args + (size_t)started * size) == 0)
        started++;
    for (unsigned i = started; i < count; i++)
        fn((char *)args + (size_t)i * size);
    for (unsigned i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
    free(tids);
}

static gd_status merge_sorted_parts(const text_ctx *c, const sorted_part *parts, uint64_t k,
                                    unsigned threads, unsigned ptr_size, int may_give_up,
                                    const char *table_path, gd_sa_progress *progress,
                                    gd_error *err)
{
    uint64_t n = c->size / c->width;
    gd_status st = GD_OK;
    if (threads < 1)
        threads = 1;
    if (threads > parts[0].m)
        threads = (unsigned)(parts[0].m ? parts[0].m : 1);
    merge_range *ranges = calloc(threads, sizeof *ranges);
    uint64_t *bounds = malloc((size_t)(threads + 1) * k * sizeof *bounds);
    if (!ranges || !bounds) {
        free(ranges);
        free(bounds);
        return gd_fail(err, GD_E_NOMEM, "out of memory merging %llu parts", (unsigned long long)k);
    }
    int fd = open(table_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        st = gd_fail(err, GD_E_IO, "cannot create %s: %s", table_path, strerror(errno));
    else if (ftruncate(fd, (off_t)(n * ptr_size)) != 0)
        st = gd_fail(err, GD_E_IO, "cannot size %s: %s", table_path, strerror(errno));
    if (st == GD_OK) {
        progress_set(progress, GD_SA_PHASE_MERGE, 0, n);
        /* range j starts at the suffix of rank j * m0 / threads of part 0 */
        for (unsigned j = 0; j <= threads; j++)
            for (uint64_t p = 0; p < k; p++) {
                uint64_t *b = &bounds[(size_t)j * k + p];
                if (j == 0)
                    *b = 0;
                else if (j == threads)
                    *b = parts[p].m;
                else
                    *b = part_lower_bound(c, &parts[p],
                                          parts[0].start + parts[0].sa[j * parts[0].m / threads]);
            }
        uint64_t out_rank = 0;
        for (unsigned j = 0; j < threads; j++) {
            ranges[j] = (merge_range){.c = c, .parts = parts, .k = k, .lo = &bounds[(size_t)j * k],
                                      .hi = &bounds[(size_t)(j + 1) * k], .out_rank = out_rank,
                                      .fd = fd, .ptr_size = ptr_size, .may_give_up = may_give_up,
                                      .path = table_path, .progress = progress, .status = GD_OK};
            for (uint64_t p = 0; p < k; p++)
                out_rank += ranges[j].hi[p] - ranges[j].lo[p];
        }
        run_threads(k == 2 ? merge2_worker : merge_range_worker, ranges, sizeof *ranges, threads);
        for (unsigned j = 0; j < threads && st == GD_OK; j++)
            if (ranges[j].status != GD_OK) {
                st = ranges[j].status;
                if (err)
                    *err = ranges[j].err;
            }
    }
    if (fd >= 0 && close(fd) != 0 && st == GD_OK)
        st = gd_fail(err, GD_E_IO, "cannot close %s: %s", table_path, strerror(errno));
    if (fd >= 0 && st != GD_OK)
        unlink(table_path);
    free(ranges);
    free(bounds);
    return st;
}

/* ---------------------------------------------------------------- parallel, in memory */

typedef struct mem_part {
    const gd_map *text;
    unsigned width;
    uint64_t tok_cnt, start, end, overlap;
    uint32_t *sa;
    uint64_t m;
    gd_status status;
    gd_error err;
} mem_part;

static void *mem_part_worker(void *arg)
{
    mem_part *p = arg;
    uint64_t slice_end = p->end + p->overlap < p->tok_cnt ? p->end + p->overlap : p->tok_cnt;
    p->status = sort_slice(p->text, p->width, p->start, slice_end, &p->sa, &p->err);
    if (p->status != GD_OK)
        return NULL;
    uint64_t own = p->end - p->start, m = 0;
    for (uint64_t k = 0; k < slice_end - p->start; k++)
        if (p->sa[k] < own)
            p->sa[m++] = p->sa[k];
    p->m = m;
    uint32_t *shrunk = realloc(p->sa, (size_t)(m ? m : 1) * sizeof *p->sa);
    if (shrunk)
        p->sa = shrunk;
    text_ctx c = {p->text->data, p->text->size, p->width};
    uint64_t budget = m / 64 + 1024; /* beyond it, repetitive text: the caller has a linear path */
    if (slice_end < p->tok_cnt)
        p->status = fix_truncated_runs(&c, p->start, p->sa, m, p->overlap, &budget, &p->err);
    return NULL;
}

/* With several threads and memory for the whole shard: each thread sorts one slice, then the
 * slices are range-merged. GD_GAVE_UP on very repetitive text (long runs, long comparisons). */
static gd_status build_parallel(const gd_map *text, unsigned w, const gd_sa_plan_info *plan,
                                unsigned threads, const char *table_path, gd_sa_progress *progress,
                                gd_error *err)
{
    uint64_t n = plan->tok_cnt, chunk = (n + threads - 1) / threads;
    mem_part *parts = calloc(threads, sizeof *parts);
    sorted_part *sorted = calloc(threads, sizeof *sorted);
    gd_status st = GD_OK;
    if (!parts || !sorted) {
        free(parts);
        free(sorted);
        return gd_fail(err, GD_E_NOMEM, "out of memory");
    }
    progress_set(progress, GD_SA_PHASE_SORT, 0, threads);
    for (unsigned i = 0; i < threads; i++)
        parts[i] = (mem_part){.text = text, .width = w, .tok_cnt = n, .start = i * chunk,
                              .end = (i + 1) * chunk < n ? (i + 1) * chunk : n,
                              .overlap = plan->overlap_tokens, .status = GD_OK};
    run_threads(mem_part_worker, parts, sizeof *parts, threads);
    for (unsigned i = 0; i < threads && st == GD_OK; i++)
        if (parts[i].status != GD_OK) {
            st = parts[i].status;
            if (err)
                *err = parts[i].err;
        }
    if (st == GD_OK) {
        for (unsigned i = 0; i < threads; i++)
            sorted[i] = (sorted_part){parts[i].start, parts[i].sa, parts[i].m};
        text_ctx c = {text->data, text->size, w};
        st = merge_sorted_parts(&c, sorted, threads, threads, plan->ptr_size, 1, table_path,
                                progress, err);
    }
    for (unsigned i = 0; i < threads; i++)
        free(parts[i].sa);
    free(parts);
    free(sorted);
    return st;
}

/* ---------------------------------------------------------------- parts on disk */

/* Part files hold native-endian u32 suffix indices relative to the part start; they are
 * temporaries of one build on one machine, mapped back read-only for the merge. */
static gd_status merge_part_files(const gd_map *text, unsigned w, const gd_sa_plan_info *plan,
                                  unsigned threads, const char *dir, const char *table_path,
                                  gd_sa_progress *progress, gd_error *err)
{
    uint64_t k = plan->n_parts, n = plan->tok_cnt;
    sorted_part *parts = calloc(k, sizeof *parts);
    gd_map *maps = calloc(k, sizeof *maps);
    gd_status st = GD_OK;
    if (!parts || !maps) {
        free(parts);
        free(maps);
        return gd_fail(err, GD_E_NOMEM, "out of memory merging %llu parts", (unsigned long long)k);
    }
    char path[PATH_CAP];
    for (uint64_t i = 0; i < k && st == GD_OK; i++) {
        uint64_t start = i * plan->part_tokens;
        uint64_t end = start + plan->part_tokens < n ? start + plan->part_tokens : n;
        part_path(path, sizeof path, dir, i);
        st = gd_map_file(path, &maps[i], 0, NULL, err);
        if (st == GD_OK && maps[i].size != (end - start) * sizeof(uint32_t))
            st = gd_fail(err, GD_E_IO, "%s: %llu bytes, expected %llu", path,
                         (unsigned long long)maps[i].size,
                         (unsigned long long)((end - start) * sizeof(uint32_t)));
        parts[i] = (sorted_part){start, (const uint32_t *)(const void *)maps[i].data, end - start};
    }
    if (st == GD_OK) {
        text_ctx c = {text->data, text->size, w};
        st = merge_sorted_parts(&c, parts, k, threads, plan->ptr_size, 0, table_path, progress,
                                err);
    }
    for (uint64_t i = 0; i < k; i++)
        gd_unmap_file(&maps[i]);
    free(parts);
    free(maps);
    return st;
}

/* ---------------------------------------------------------------- entry points */

/* Bytes of memory one sorted token costs (keys, SA, types, the recursion's buckets). */
static uint64_t bytes_per_token(unsigned width)
{
    return width == 4 ? 12 : 10;
}

gd_status gd_sa_plan(uint64_t ds_size, const gd_sa_options *opts, gd_sa_plan_info *out,
                     gd_error *err)
{
    if (!opts || !out)
        return gd_fail(err, GD_E_INVALID, "options and output are required");
    unsigned w = opts->token_width;
    if (w != 1 && w != 2 && w != 4)
        return gd_fail(err, GD_E_INVALID, "token width must be 1, 2 or 4, not %u", w);
    if (ds_size == 0 || ds_size % w != 0)
        return gd_fail(err, GD_E_FORMAT, "token file size %llu is not a positive multiple of %u",
                       (unsigned long long)ds_size, w);
    uint64_t n = ds_size / w;
    uint64_t threads = opts->threads ? opts->threads : 1;
    uint64_t part = n, overlap = PEER_OVERLAP_BYTES / w;
    if (opts->max_part_tokens) {
        part = opts->max_part_tokens;
    } else if (opts->memory_budget) {
        /* in memory, the threads' slices together cover the shard once (plus their overlaps);
         * in parts, every thread sorts one part at a time */
        uint64_t whole = (n + (threads > 1 ? threads * overlap : 0)) * bytes_per_token(w);
        uint64_t cap = opts->memory_budget / threads / bytes_per_token(w);
        if (cap < 2)
            return gd_fail(err, GD_E_INVALID, "memory budget of %llu bytes is too small",
                           (unsigned long long)opts->memory_budget);
        if (whole > opts->memory_budget) {
            if (overlap > cap / 2)
                overlap = cap / 2;
            part = cap - overlap;
        }
    }
    if (part > MAX_PART_TOKENS)
        part = MAX_PART_TOKENS;
    if (part == 0)
        part = 1;
    if (part >= n)
        part = n;
    if (overlap > part)
        overlap = part;
    if (overlap == 0)
        overlap = 1;
    out->tok_cnt = n;
    out->ptr_size = gd_sa_ptr_size(ds_size);
    out->part_tokens = part;
    out->overlap_tokens = overlap;
    out->n_parts = (n + part - 1) / part;
    out->peak_bytes = out->n_parts == 1
                          ? (n + (threads > 1 ? threads * overlap : 0)) * bytes_per_token(w)
                          : (part + overlap) * bytes_per_token(w) * threads;
    return GD_OK;
}

gd_status gd_sa_build(const char *tokenized_path, const char *table_path, const gd_sa_options *opts,
                      gd_sa_progress *progress, gd_error *err)
{
    if (!tokenized_path || !table_path || !opts)
        return gd_fail(err, GD_E_INVALID, "paths and options are required");
    gd_map text;
    gd_status st = gd_map_file(tokenized_path, &text, 0, NULL, err);
    if (st != GD_OK)
        return st;
    gd_sa_plan_info plan;
    st = gd_sa_plan(text.size, opts, &plan, err);
    if (st != GD_OK) {
        if (st == GD_E_FORMAT)
            gd_fail(err, st, "%s: token file size %llu is not a positive multiple of %u",
                    tokenized_path, (unsigned long long)text.size, opts->token_width);
        gd_unmap_file(&text);
        return st;
    }
    unsigned w = opts->token_width;
    unsigned threads = opts->threads ? opts->threads : 1;
    if (threads > MAX_THREADS)
        threads = MAX_THREADS;
    if (plan.n_parts == 1 && threads > 1 && plan.tok_cnt >= PARALLEL_MIN_TOKENS) {
        st = build_parallel(&text, w, &plan, threads, table_path, progress, err);
        if (st != GD_GAVE_UP) {
            gd_unmap_file(&text);
            if (st == GD_OK)
                progress_set(progress, GD_SA_PHASE_DONE, plan.tok_cnt, plan.tok_cnt);
            return st;
        }
        if (err) { /* long repeats: sort the whole shard in one linear pass instead */
            err->code = GD_OK;
            err->message[0] = 0;
        }
    }
    if (plan.n_parts == 1) {
        progress_set(progress, GD_SA_PHASE_SORT, 0, 1);
        uint32_t *sa;
        st = sort_slice(&text, w, 0, plan.tok_cnt, &sa, err);
        if (st == GD_OK) {
            progress_set(progress, GD_SA_PHASE_WRITE, 0, plan.tok_cnt);
            writer wr = {0};
            st = writer_open(&wr, table_path, plan.tok_cnt * plan.ptr_size, err);
            if (st == GD_OK) {
                for (uint64_t k = 0; k < plan.tok_cnt && st == GD_OK; k++) {
                    st = writer_put(&wr, (uint64_t)sa[k] * w, plan.ptr_size, err);
                    if ((k & 0xFFFFF) == 0)
                        progress_set(progress, GD_SA_PHASE_WRITE, k, plan.tok_cnt);
                }
                st = writer_close(&wr, st, err);
                if (st != GD_OK)
                    unlink(table_path);
            }
            free(sa);
        }
        gd_unmap_file(&text);
        if (st == GD_OK)
            progress_set(progress, GD_SA_PHASE_DONE, plan.tok_cnt, plan.tok_cnt);
        return st;
    }

    char dir[DIR_CAP];
    const char *dir_fmt = opts->tmp_dir ? "%s" : "%s.parts";
    const char *dir_arg = opts->tmp_dir ? opts->tmp_dir : table_path;
    if (strlen(dir_arg) + 8 >= sizeof dir) {
        gd_unmap_file(&text);
        return gd_fail(err, GD_E_INVALID, "temporary directory path is too long");
    }
    snprintf(dir, sizeof dir, dir_fmt, dir_arg);
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        gd_unmap_file(&text);
        return gd_fail(err, GD_E_IO, "cannot create %s: %s", dir, strerror(errno));
    }
    part_job job = {.text = &text, .width = w, .tok_cnt = plan.tok_cnt,
                    .part_tokens = plan.part_tokens, .overlap = plan.overlap_tokens,
                    .n_parts = plan.n_parts, .dir = dir, .progress = progress,
                    .next = 0, .status = GD_OK};
    pthread_mutex_init(&job.lock, NULL);
    progress_set(progress, GD_SA_PHASE_SORT, 0, plan.n_parts);
    /* every sorting thread takes parts from the shared job until none is left */
    run_threads(part_worker, &job, 0, threads < plan.n_parts ? threads : (unsigned)plan.n_parts);
    pthread_mutex_destroy(&job.lock);
    st = job.status;
    if (st != GD_OK && err)
        *err = job.err;
    if (st == GD_OK) {
        st = merge_part_files(&text, w, &plan, threads, dir, table_path, progress, err);
    }
    char path[PATH_CAP];
    for (uint64_t i = 0; i < plan.n_parts; i++) {
        part_path(path, sizeof path, dir, i);
        unlink(path);
    }
    if (!opts->tmp_dir)
        rmdir(dir);
    gd_unmap_file(&text);
    if (st == GD_OK)
        progress_set(progress, GD_SA_PHASE_DONE, plan.tok_cnt, plan.tok_cnt);
    return st;
}

static uint64_t read_entry(const uint8_t *table, uint64_t rank, unsigned ps)
{
    const uint8_t *p = table + rank * ps;
    uint64_t v = 0;
    for (unsigned b = 0; b < ps; b++)
        v |= (uint64_t)p[b] << (8 * b);
    return v;
}

gd_status gd_sa_verify(const char *tokenized_path, const char *table_path, unsigned token_width,
                       uint64_t stride, uint64_t *bad_rank, gd_error *err)
{
    if (bad_rank)
        *bad_rank = UINT64_MAX;
    if (token_width != 1 && token_width != 2 && token_width != 4)
        return gd_fail(err, GD_E_INVALID, "token width must be 1, 2 or 4, not %u", token_width);
    gd_map text, table;
    gd_status st = gd_map_file(tokenized_path, &text, 0, NULL, err);
    if (st != GD_OK)
        return st;
    st = gd_map_file(table_path, &table, 0, NULL, err);
    if (st != GD_OK) {
        gd_unmap_file(&text);
        return st;
    }
    uint64_t n = text.size / token_width;
    unsigned ps = gd_sa_ptr_size(text.size);
    uint8_t *seen = NULL;
    if (text.size == 0 || text.size % token_width != 0)
        st = gd_fail(err, GD_E_FORMAT, "%s: size %llu is not a positive multiple of %u",
                     tokenized_path, (unsigned long long)text.size, token_width);
    else if (table.size != n * ps)
        st = gd_fail(err, GD_E_FORMAT, "%s: size %llu, expected %llu tokens x %u bytes",
                     table_path, (unsigned long long)table.size, (unsigned long long)n, ps);
    else if (stride <= 1 && !(seen = calloc((size_t)n / 8 + 1, 1)))
        st = gd_fail(err, GD_E_NOMEM, "out of memory checking %llu entries",
                     (unsigned long long)n);
    text_ctx c = {text.data, text.size, token_width};
    /* stride <= 1: every entry, every adjacent pair, and that no offset repeats (a permutation);
     * otherwise the pairs (r, r+1) for r = 0, stride, 2 * stride, ... */
    uint64_t step = stride <= 1 ? 1 : stride;
    for (uint64_t r = 0; st == GD_OK && r < n; r = (r + step < r) ? n : r + step) {
        uint64_t last = r + 1 < n ? r + 1 : r;
        for (uint64_t k = r; k <= last; k++) {
            uint64_t v = read_entry(table.data, k, ps);
            if (v >= text.size || v % token_width != 0) {
                st = gd_fail(err, GD_E_FORMAT, "%s: entry %llu = %llu is not a token offset",
                             table_path, (unsigned long long)k, (unsigned long long)v);
                if (bad_rank)
                    *bad_rank = k;
                break;
            }
            if (seen && k == r) {
                uint64_t tok = v / token_width;
                if (seen[tok >> 3] & (1u << (tok & 7))) {
                    st = gd_fail(err, GD_E_FORMAT, "%s: offset %llu appears twice (rank %llu)",
                                 table_path, (unsigned long long)v, (unsigned long long)k);
                    if (bad_rank)
                        *bad_rank = k;
                    break;
                }
                seen[tok >> 3] |= (uint8_t)(1u << (tok & 7));
            }
        }
        if (st != GD_OK || r + 1 >= n)
            break;
        uint64_t a = read_entry(table.data, r, ps) / token_width;
        uint64_t b = read_entry(table.data, r + 1, ps) / token_width;
        if (a == b || suffix_cmp(&c, a, b) > 0) {
            if (bad_rank)
                *bad_rank = r;
            st = gd_fail(err, GD_E_FORMAT, "%s: suffixes at ranks %llu and %llu are out of order",
                         table_path, (unsigned long long)r, (unsigned long long)r + 1);
        }
    }
    free(seen);
    gd_unmap_file(&table);
    gd_unmap_file(&text);
    return st;
}
