/* Attribution: the maximal spans of a token sequence that occur verbatim in the corpus.
 * For each start l the longest occurring prefix ids[l:r_l] is found by narrowing a suffix-array
 * range one token at a time; r_{l+1} >= r_l, so the next start resumes from r_l with one fresh
 * search for ids[l+1:r_l] instead of restarting at length 0. */
#include <stdlib.h>

#include "internal.h"

typedef struct span_buf {
    gd_span *spans;
    size_t n, cap;
    gd_location *locs;
    size_t nl, capl;
} span_buf;

static int grow(void **p, size_t *cap, size_t need, size_t size) {
    if (need <= *cap) return 1;
    size_t c = *cap ? *cap : 16;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * size);
    if (!q) return 0;
    *p = q;
    *cap = c;
    return 1;
}

static gd_status add_span(const gd_engine *e, span_buf *b, uint64_t l, uint64_t r, const gd_range *ranges,
                          uint64_t count, size_t max_locations, gd_error *err) {
    if (!grow((void **)&b->spans, &b->cap, b->n + 1, sizeof *b->spans) ||
        !grow((void **)&b->locs, &b->capl, b->nl + max_locations, sizeof *b->locs))
        return gd_fail(err, GD_E_NOMEM, "out of memory");
    gd_span *sp = &b->spans[b->n++];
    sp->start = l;
    sp->end = r;
    sp->count = count;
    sp->first_location = b->nl;
    sp->n_locations = 0;
    for (size_t s = 0; s < e->n_shards && sp->n_locations < max_locations; s++) {
        for (uint64_t rank = ranges[s].lo; rank < ranges[s].hi && sp->n_locations < max_locations; rank++) {
            gd_location *loc = &b->locs[b->nl];
            gd_status st = gd_sa_ptr(e, &e->shards[s], rank, &loc->ptr, err);
            if (st) return st;
            loc->shard = s;
            b->nl++;
            sp->n_locations++;
        }
    }
    return GD_OK;
}

gd_status gd_attribute(const gd_engine *e, const uint32_t *ids, size_t n, size_t min_len, size_t max_locations,
                       int maximal_only, gd_attribution *out, uint64_t deadline_ns, gd_error *err) {
    memset(out, 0, sizeof *out);
    gd_query q;
    gd_status st = gd_check_ids(e, ids, n, "ids", err);
    if (st || (st = gd_query_init(e, &q, ids, n, err))) return st;
    size_t ns = e->n_shards, w = e->width;
    gd_range *cur = malloc(2 * ns * sizeof *cur), *next = cur ? cur + ns : NULL;
    span_buf b = {0};
    if (!cur) {
        st = gd_fail(err, GD_E_NOMEM, "out of memory");
        goto done;
    }
    size_t r = 0, last_end = 0;
    for (size_t l = 0; l < n; l++) {
        if (gd_past_deadline(deadline_ns)) {
            st = gd_deadline_error(err);
            goto done;
        }
        if (r < l) r = l;
        uint64_t cnt;
        if ((st = gd_find_bytes(e, q.bytes + l * w, (r - l) * w, cur, &cnt, err))) goto done;
        while (r < n) { /* extend ids[l:r] while ids[l:r+1] occurs */
            uint64_t c2 = 0;
            for (size_t s = 0; s < ns; s++) {
                next[s] = cur[s];
                if (next[s].lo < next[s].hi &&
                    (st = gd_find_in(e, &e->shards[s], q.bytes + l * w, (r + 1 - l) * w, (r - l) * w, &next[s], err)))
                    goto done;
                c2 += next[s].hi - next[s].lo;
            }
            if (c2 == 0) break;
            memcpy(cur, next, ns * sizeof *cur);
            cnt = c2;
            r++;
        }
        if ((r > last_end || !maximal_only) && r - l >= min_len && r > l) {
            if ((st = add_span(e, &b, l, r, cur, cnt, max_locations, err))) goto done;
            last_end = r;
        }
    }
    out->spans = b.spans;
    out->n_spans = b.n;
    out->locations = b.locs;
    out->n_locations = b.nl;
    b.spans = NULL;
    b.locs = NULL;
done:
    free(b.spans);
    free(b.locs);
    free(cur);
    gd_query_release(&q);
    return st;
}
