/* Next-token distributions. Within a prompt's suffix-array range the following token is sorted (in
 * byte order), so equal next tokens form runs: the range is split at midpoints until both ends of a
 * segment agree. Above max_support the segment walk samples one rank per block of `unit` ranks,
 * with exactly infini-gram's block and midpoint rules so that the same approximation comes out. */
#include <stdlib.h>

#include "internal.h"

gd_status gd_counts_add(gd_counts *c, uint32_t token, uint64_t count) {
    if (c->n && c->v[c->n - 1].token == token) { /* runs arrive in order: merge with the last one */
        c->v[c->n - 1].count += count;
        return GD_OK;
    }
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 64;
        gd_token_count *v = realloc(c->v, cap * sizeof *v);
        if (!v) return GD_E_NOMEM;
        c->v = v;
        c->cap = cap;
    }
    c->v[c->n].token = token;
    c->v[c->n].count = count;
    c->n++;
    return GD_OK;
}

typedef struct ntd_walk {
    const gd_engine *e;
    const gd_shard *s;
    size_t plen;        /* prompt bytes */
    uint64_t unit;
    uint64_t deadline_ns;
    unsigned steps;
    gd_counts *out;
    gd_error *err;
} ntd_walk;

/* Sort key of the token after the match at rank: GD_KEY_END past the end of the shard. */
static gd_status next_key(ntd_walk *w, uint64_t rank, uint64_t *key) {
    uint64_t ptr = 0;
    gd_status st = gd_sa_ptr(w->e, w->s, rank, &ptr, w->err);
    if (st) return st;
    ptr += w->plen;
    *key = ptr + w->e->width <= w->s->ds.size ? gd_token_at(w->e, w->s, ptr) : GD_KEY_END;
    return GD_OK;
}

static gd_status credit(ntd_walk *w, uint64_t key, uint64_t count) {
    /* the end of a document (separator) and the end of the shard both mean "end of text" */
    uint32_t tok = (key == GD_KEY_END || key == gd_sep(w->e)) ? w->e->eos : (uint32_t)key;
    if (gd_counts_add(w->out, tok, count)) return gd_fail(w->err, GD_E_NOMEM, "out of memory");
    return GD_OK;
}

static gd_status walk(ntd_walk *w, uint64_t start, uint64_t end, const uint64_t *first_known,
                      const uint64_t *last_known) {
    gd_status st;
    if (++w->steps % 512 == 0 && gd_past_deadline(w->deadline_ns)) return gd_deadline_error(w->err);
    if (end - start < 4 * w->unit) {
        for (uint64_t r = start; r < end; r += w->unit) {
            int whole = end - r >= w->unit;
            uint64_t mid = whole ? r + w->unit / 2 : r + (end - r) / 2, key;
            if ((st = next_key(w, mid, &key)) || (st = credit(w, key, whole ? w->unit : end - r))) return st;
        }
        return GD_OK;
    }
    uint64_t first, last;
    if (first_known) first = *first_known;
    else if ((st = next_key(w, start, &first))) return st;
    if (last_known) last = *last_known;
    else if ((st = next_key(w, end - 1, &last))) return st;
    if (first == last) return credit(w, first, end - start);
    uint64_t mid = start + (end - start) / 2;
    if ((st = walk(w, start, mid, &first, NULL))) return st;
    return walk(w, mid, end, NULL, &last);
}

static int by_token(const void *a, const void *b) {
    const gd_token_count *x = a, *y = b;
    return (x->token > y->token) - (x->token < y->token);
}

/* ntd of the prompt whose bytes are q, all shards; unit 0 = derived from max_support and the count. */
static gd_status ntd_bytes(const gd_engine *e, const uint8_t *q, size_t qlen, uint64_t max_support, uint64_t unit,
                           gd_ntd_result *out, uint64_t deadline_ns, gd_error *err) {
    gd_range small[16], *ranges = small;
    if (e->n_shards > 16 && !(ranges = malloc(e->n_shards * sizeof *ranges)))
        return gd_fail(err, GD_E_NOMEM, "out of memory");
    gd_counts counts = {0};
    gd_status st = gd_past_deadline(deadline_ns) ? gd_deadline_error(err)
                                                 : gd_find_bytes(e, q, qlen, ranges, &out->prompt_cnt, err);
    if (st || out->prompt_cnt == 0) goto done;
    if (unit == 0)
        for (unit = 1; out->prompt_cnt > unit * max_support;) unit <<= 1;
    out->approx = unit > 1;
    ntd_walk w = {e, NULL, qlen, unit, deadline_ns, 0, &counts, err};
    for (size_t s = 0; s < e->n_shards && st == GD_OK; s++) {
        w.s = &e->shards[s];
        if (ranges[s].lo < ranges[s].hi) st = walk(&w, ranges[s].lo, ranges[s].hi, NULL, NULL);
    }
    if (st) goto done;
    /* eos and several shards break the per-run order: sort, then merge equal tokens */
    qsort(counts.v, counts.n, sizeof *counts.v, by_token);
    size_t k = 0;
    for (size_t i = 0; i < counts.n; i++) {
        if (k && counts.v[k - 1].token == counts.v[i].token) counts.v[k - 1].count += counts.v[i].count;
        else counts.v[k++] = counts.v[i];
    }
    out->entries = counts.v;
    out->n_entries = k;
    counts.v = NULL;
done:
    free(counts.v);
    if (ranges != small) free(ranges);
    return st;
}

static gd_status check_support(uint64_t max_support, gd_error *err) {
    if (max_support == 0 || max_support > (UINT64_C(1) << 40))
        return gd_fail(err, GD_E_INVALID, "max_support must be in [1, 2^40], not %llu",
                       (unsigned long long)max_support);
    return GD_OK;
}

gd_status gd_ntd(const gd_engine *e, const uint32_t *prompt, size_t n, uint64_t max_support, gd_ntd_result *out,
                 uint64_t deadline_ns, gd_error *err) {
    gd_query q;
    memset(out, 0, sizeof *out);
    gd_status st = check_support(max_support, err);
    if (!st) st = gd_check_ids(e, prompt, n, "prompt", err);
    if (st || (st = gd_query_init(e, &q, prompt, n, err))) return st;
    st = ntd_bytes(e, q.bytes, q.len, max_support, 0, out, deadline_ns, err);
    gd_query_release(&q);
    return st;
}

gd_status gd_ntd_with_unit(const gd_engine *e, const uint32_t *prompt, size_t n, uint64_t unit, gd_ntd_result *out,
                           uint64_t deadline_ns, gd_error *err) {
    gd_query q;
    memset(out, 0, sizeof *out);
    if (unit == 0 || unit > (UINT64_C(1) << 40) || (unit & (unit - 1)))
        return gd_fail(err, GD_E_INVALID, "unit must be a power of two in [1, 2^40], not %llu", (unsigned long long)unit);
    gd_status st = gd_check_ids(e, prompt, n, "prompt", err);
    if (st || (st = gd_query_init(e, &q, prompt, n, err))) return st;
    st = ntd_bytes(e, q.bytes, q.len, 1, unit, out, deadline_ns, err);
    gd_query_release(&q);
    return st;
}

gd_status gd_infgram_ntd(const gd_engine *e, const uint32_t *prompt, size_t n, uint64_t max_support,
                         gd_ntd_result *out, uint64_t deadline_ns, gd_error *err) {
    gd_query q;
    size_t k = 0;
    memset(out, 0, sizeof *out);
    gd_status st = check_support(max_support, err);
    if (!st) st = gd_check_ids(e, prompt, n, "prompt", err);
    if (st || (st = gd_query_init(e, &q, prompt, n, err))) return st;
    st = gd_longest_suffix(e, &q, n, &k, err);
    if (st == GD_OK) {
        st = ntd_bytes(e, q.bytes + (n - k) * e->width, k * e->width, max_support, 0, out, deadline_ns, err);
        out->suffix_len = k;
    }
    gd_query_release(&q);
    return st;
}
