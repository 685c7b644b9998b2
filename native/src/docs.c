/* Documents: which document holds a position, and a window of its tokens with its metadata. */
#include <stdlib.h>

#include "internal.h"

static uint64_t od_at(const gd_shard *s, uint64_t d) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)s->od.data[d * 8 + i] << (8 * i);
    return v;
}

static uint64_t om_at(const gd_shard *s, uint64_t d) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)s->om.data[d * 8 + i] << (8 * i);
    return v;
}

/* Byte bounds of local document d: [start, end), start just after its separator. */
static gd_status doc_bounds(const gd_engine *e, const gd_shard *s, uint64_t d, uint64_t *start, uint64_t *end,
                            gd_error *err) {
    uint64_t sep = od_at(s, d), next = d + 1 < s->doc_cnt ? od_at(s, d + 1) : s->ds.size;
    if (sep % e->width || next % e->width || sep + e->width > next || next > s->ds.size)
        return gd_fail(err, GD_E_FORMAT, "%s/offset.%lu: document %llu has invalid offsets %llu..%llu", s->dir,
                       s->number, (unsigned long long)d, (unsigned long long)sep, (unsigned long long)next);
    *start = sep + e->width;
    *end = next;
    return GD_OK;
}

gd_status gd_doc_locate(const gd_engine *e, const gd_shard *s, uint64_t ptr, uint64_t *local_ix, uint64_t *start,
                        uint64_t *end, gd_error *err) {
    uint64_t lo = 0, hi = s->doc_cnt; /* the last document whose separator is at or before ptr */
    while (hi - lo > 1) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (od_at(s, mid) <= ptr) lo = mid; else hi = mid;
    }
    *local_ix = lo;
    return doc_bounds(e, s, lo, start, end, err);
}

gd_status gd_rank_to_ptr(const gd_engine *e, size_t shard, uint64_t rank, uint64_t *ptr, gd_error *err) {
    if (shard >= e->n_shards)
        return gd_fail(err, GD_E_INVALID, "shard %zu out of range [0, %zu)", shard, e->n_shards);
    if (rank >= e->shards[shard].tok_cnt)
        return gd_fail(err, GD_E_INVALID, "rank %llu out of range [0, %llu)", (unsigned long long)rank,
                       (unsigned long long)e->shards[shard].tok_cnt);
    return gd_sa_ptr(e, &e->shards[shard], rank, ptr, err);
}

static gd_status fill_doc(const gd_engine *e, size_t shard, uint64_t local_ix, uint64_t start, uint64_t end,
                          uint64_t disp_from, uint64_t disp_to, uint64_t needle, gd_doc *out, gd_error *err) {
    const gd_shard *s = &e->shards[shard];
    unsigned w = e->width;
    out->shard = shard;
    out->doc_ix = s->doc_base + local_ix;
    out->doc_len = (end - start) / w;
    out->disp_start = (disp_from - start) / w;
    out->disp_len = (disp_to - disp_from) / w;
    out->needle_offset = needle > disp_from ? (needle - disp_from) / w : 0;
    out->token_ids = malloc((out->disp_len ? out->disp_len : 1) * sizeof *out->token_ids);
    if (!out->token_ids) return gd_fail(err, GD_E_NOMEM, "out of memory");
    for (uint64_t i = 0; i < out->disp_len; i++) out->token_ids[i] = gd_token_at(e, s, disp_from + i * w);
    if (s->om.size) {
        uint64_t ms = om_at(s, local_ix), me = local_ix + 1 < s->doc_cnt ? om_at(s, local_ix + 1) : s->mt.size;
        if (ms > me || me > s->mt.size)
            return gd_fail(err, GD_E_FORMAT, "%s/metaoff.%lu: document %llu has invalid offsets %llu..%llu",
                           s->dir, s->number, (unsigned long long)local_ix, (unsigned long long)ms,
                           (unsigned long long)me);
        out->metadata_len = (size_t)(me - ms);
        out->metadata = malloc(out->metadata_len ? out->metadata_len : 1);
        if (!out->metadata) return gd_fail(err, GD_E_NOMEM, "out of memory");
        memcpy(out->metadata, s->mt.data + ms, out->metadata_len);
    }
    return GD_OK;
}

static uint64_t sat_mul(uint64_t a, uint64_t b) { return b && a > UINT64_MAX / b ? UINT64_MAX : a * b; }

gd_status gd_doc_by_ptr(const gd_engine *e, size_t shard, uint64_t ptr, uint64_t max_disp_len, gd_doc *out,
                        gd_error *err) {
    return gd_doc_window(e, shard, ptr, max_disp_len / 2, max_disp_len - max_disp_len / 2, out, err);
}

gd_status gd_doc_window(const gd_engine *e, size_t shard, uint64_t ptr, uint64_t before_tokens,
                        uint64_t after_tokens, gd_doc *out, gd_error *err) {
    memset(out, 0, sizeof *out);
    if (shard >= e->n_shards)
        return gd_fail(err, GD_E_INVALID, "shard %zu out of range [0, %zu)", shard, e->n_shards);
    const gd_shard *s = &e->shards[shard];
    if (ptr >= s->ds.size || ptr % e->width)
        return gd_fail(err, GD_E_INVALID, "ptr %llu must be a multiple of %u in [0, %llu)", (unsigned long long)ptr,
                       e->width, (unsigned long long)s->ds.size);
    uint64_t ix, start, end;
    gd_status st = gd_doc_locate(e, s, ptr, &ix, &start, &end, err);
    if (st) return st;
    if (ptr + e->width < start || ptr >= end) /* only unsorted offsets put ptr outside its document */
        return gd_fail(err, GD_E_FORMAT, "%s/offset.%lu: offsets are not sorted around byte %llu", s->dir, s->number,
                       (unsigned long long)ptr);
    uint64_t before = sat_mul(before_tokens, e->width), after = sat_mul(after_tokens, e->width);
    uint64_t from = ptr > before && ptr - before > start ? ptr - before : start;
    uint64_t to = end - ptr > after ? ptr + after : end;
    if (to < from) to = from;
    st = fill_doc(e, shard, ix, start, end, from, to, ptr, out, err);
    if (st) gd_doc_release(out);
    return st;
}

gd_status gd_doc_by_ix(const gd_engine *e, uint64_t doc_ix, uint64_t max_disp_len, gd_doc *out, gd_error *err) {
    memset(out, 0, sizeof *out);
    for (size_t shard = 0; shard < e->n_shards; shard++) {
        const gd_shard *s = &e->shards[shard];
        if (doc_ix >= s->doc_base + s->doc_cnt) continue;
        uint64_t ix = doc_ix - s->doc_base, start, end;
        gd_status st = doc_bounds(e, s, ix, &start, &end, err);
        if (st) return st;
        uint64_t len = sat_mul(max_disp_len, e->width);
        uint64_t to = end - start > len ? start + len : end;
        st = fill_doc(e, shard, ix, start, end, start, to, start, out, err);
        if (st) gd_doc_release(out);
        return st;
    }
    const gd_shard *last = &e->shards[e->n_shards - 1];
    return gd_fail(err, GD_E_INVALID, "doc_ix %llu out of range [0, %llu)", (unsigned long long)doc_ix,
                   (unsigned long long)(last->doc_base + last->doc_cnt));
}

void gd_doc_release(gd_doc *doc) {
    free(doc->token_ids);
    free(doc->metadata);
    doc->token_ids = NULL;
    doc->metadata = NULL;
}
