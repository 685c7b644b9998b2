/* The sampled first level of whole-suffix-array searches.
 *
 * A binary search over tens of millions of ranks costs two dependent cache misses per step (the
 * suffix-array entry, then the text it points to). Keeping every 64th suffix's first 8 bytes in
 * one small array answers the upper levels of the search from that array alone; only the last
 * ~6 steps inside one stride touch the suffix array and the text. */
#include <stdlib.h>

#include "internal.h"

#define GD_SAMPLE_SHIFT 6           /* one key per 64 ranks */
#define GD_SAMPLE_MAX (UINT64_C(1) << 24)  /* at most 128 MiB of keys per shard */

static uint64_t key_at(const gd_shard *s, uint64_t ptr) {
    uint64_t k = 0, avail = s->ds.size - ptr;
    for (unsigned i = 0; i < 8; i++) k = k << 8 | (i < avail ? s->ds.data[ptr + i] : 0);
    return k;
}

gd_status gd_sample_build(const gd_engine *e, gd_shard *s, gd_error *err) {
    gd_sample *sm = &s->sample;
    memset(sm, 0, sizeof *sm);
    unsigned shift = GD_SAMPLE_SHIFT;
    while (((s->tok_cnt - 1) >> shift) + 1 > GD_SAMPLE_MAX) shift++;
    while (shift > 0 && (s->tok_cnt >> shift) < 4) shift--; /* small shards too, so tests exercise it */
    uint64_t n = ((s->tok_cnt - 1) >> shift) + 1;
    sm->keys = malloc(n * sizeof *sm->keys);
    if (!sm->keys) return gd_fail(err, GD_E_NOMEM, "out of memory for the search sample");
    sm->n = n;
    sm->shift = shift;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t ptr;
        gd_status st = gd_sa_ptr(e, s, i << shift, &ptr, err);
        if (st) {
            gd_sample_release(s);
            return st;
        }
        sm->keys[i] = key_at(s, ptr);
        if (s->ds.size - ptr < 8 && sm->n_short < 8) sm->short_ix[sm->n_short++] = i;
    }
    return GD_OK;
}

void gd_sample_release(gd_shard *s) {
    free(s->sample.keys);
    memset(&s->sample, 0, sizeof s->sample);
}

/* Sign of (sample i's suffix, truncated to qlen bytes) - q, from the key when it decides. */
static int cmp_sample(const gd_engine *e, const gd_shard *s, uint64_t i, uint64_t qkey, uint64_t mask,
                      const uint8_t *q, size_t qlen) {
    uint64_t k = s->sample.keys[i] & mask;
    if (k != qkey) return k < qkey ? -1 : 1;
    int is_short = 0;
    for (unsigned j = 0; j < s->sample.n_short; j++) is_short |= s->sample.short_ix[j] == i;
    if (qlen <= 8 && !is_short) return 0;
    uint64_t ptr = 0;
    /* the key came from this entry at open time, so it is valid */
    if (gd_sa_ptr(e, s, i << s->sample.shift, &ptr, NULL)) return 0;
    return gd_cmp_at(s, ptr, q, qlen, qlen < 8 ? qlen : 8);
}

void gd_sample_bracket(const gd_engine *e, const gd_shard *s, const uint8_t *q, size_t qlen, uint64_t *lo_from,
                       uint64_t *lo_to, uint64_t *hi_from, uint64_t *hi_to) {
    const gd_sample *sm = &s->sample;
    size_t kb = qlen < 8 ? qlen : 8;
    uint64_t qkey = 0;
    for (size_t i = 0; i < 8; i++) qkey = qkey << 8 | (i < kb ? q[i] : 0);
    uint64_t mask = kb == 8 ? UINT64_MAX : ~(UINT64_MAX >> (8 * kb));
    uint64_t a = 0, b = sm->n; /* first sample >= q */
    while (a < b) {
        uint64_t m = a + (b - a) / 2;
        if (cmp_sample(e, s, m, qkey, mask, q, qlen) < 0) a = m + 1; else b = m;
    }
    uint64_t c = a, d = sm->n; /* first sample > q */
    while (c < d) {
        uint64_t m = c + (d - c) / 2;
        if (cmp_sample(e, s, m, qkey, mask, q, qlen) <= 0) c = m + 1; else d = m;
    }
    /* sample a-1 < q <= sample a: the lower bound is in ((a-1)*stride, a*stride] */
    *lo_from = a ? ((a - 1) << sm->shift) + 1 : 0;
    *lo_to = a < sm->n ? a << sm->shift : s->tok_cnt;
    *hi_from = c ? ((c - 1) << sm->shift) + 1 : 0;
    *hi_to = c < sm->n ? c << sm->shift : s->tok_cnt;
}
