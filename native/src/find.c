/* Locating n-grams: binary searches over the suffix array, counts, probabilities, ∞-gram back-off. */
#include <stdlib.h>

#include "internal.h"

gd_status gd_query_init(const gd_engine *e, gd_query *q, const uint32_t *ids, size_t n, gd_error *err) {
    q->len = 0;
    q->bytes = q->inline_buf;
    if (n > SIZE_MAX / 4) return gd_fail(err, GD_E_INVALID, "query too long");
    size_t len = n * e->width;
    if (len > sizeof q->inline_buf) {
        q->bytes = malloc(len);
        if (!q->bytes) return gd_fail(err, GD_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++)
        for (unsigned b = 0; b < e->width; b++) q->bytes[i * e->width + b] = (uint8_t)(ids[i] >> (8 * b));
    q->len = len;
    return GD_OK;
}

void gd_query_release(gd_query *q) {
    if (q->bytes != q->inline_buf) free(q->bytes);
    q->bytes = q->inline_buf;
}

gd_status gd_find_in(const gd_engine *e, const gd_shard *s, const uint8_t *q, size_t qlen, size_t known,
                     gd_range *r, gd_error *err) {
    uint64_t lo = r->lo, hi = r->hi, ptr = 0;
    gd_status st;
    /* Invariant: ranks < lo sort before q, ranks >= hi after it; stop at the first match. */
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if ((st = gd_sa_ptr(e, s, mid, &ptr, err))) return st;
        int c = gd_cmp_at(s, ptr, q, qlen, known);
        if (c < 0) {
            lo = mid + 1;
        } else if (c > 0) {
            hi = mid;
        } else {
            uint64_t a = lo, b = mid; /* first match in [lo, mid] */
            while (a < b) {
                uint64_t m = a + (b - a) / 2;
                if ((st = gd_sa_ptr(e, s, m, &ptr, err))) return st;
                if (gd_cmp_at(s, ptr, q, qlen, known) < 0) a = m + 1; else b = m;
            }
            uint64_t c2 = mid + 1, d = hi; /* first non-match in (mid, hi] */
            while (c2 < d) {
                uint64_t m = c2 + (d - c2) / 2;
                if ((st = gd_sa_ptr(e, s, m, &ptr, err))) return st;
                if (gd_cmp_at(s, ptr, q, qlen, known) <= 0) c2 = m + 1; else d = m;
            }
            r->lo = a;
            r->hi = c2;
            return GD_OK;
        }
    }
    r->lo = r->hi = lo;
    return GD_OK;
}

/* First rank in [from, to] whose suffix compares >= 0 (strict: > 0) with q; `to` if none before it. */
static gd_status bound(const gd_engine *e, const gd_shard *s, const uint8_t *q, size_t qlen, uint64_t from,
                       uint64_t to, int strict, uint64_t *out, gd_error *err) {
    uint64_t ptr = 0;
    while (from < to) {
        uint64_t m = from + (to - from) / 2;
        gd_status st = gd_sa_ptr(e, s, m, &ptr, err);
        if (st) return st;
        int c = gd_cmp_at(s, ptr, q, qlen, 0);
        if (strict ? c <= 0 : c < 0) from = m + 1; else to = m;
    }
    *out = from;
    return GD_OK;
}

static gd_status find_whole(const gd_engine *e, const gd_shard *s, const uint8_t *q, size_t qlen, gd_range *r,
                            gd_error *err) {
    if (!s->sample.keys) {
        r->lo = 0;
        r->hi = s->tok_cnt;
        return gd_find_in(e, s, q, qlen, 0, r, err);
    }
    uint64_t lf, lt, hf, ht;
    gd_sample_bracket(e, s, q, qlen, &lf, &lt, &hf, &ht);
    gd_status st = bound(e, s, q, qlen, lf, lt, 0, &r->lo, err);
    if (!st) st = bound(e, s, q, qlen, hf > r->lo ? hf : r->lo, ht, 1, &r->hi, err);
    return st;
}

gd_status gd_find_bytes(const gd_engine *e, const uint8_t *q, size_t qlen, gd_range *ranges, uint64_t *cnt,
                        gd_error *err) {
    uint64_t total = 0;
    for (size_t i = 0; i < e->n_shards; i++) {
        ranges[i].lo = 0;
        ranges[i].hi = e->shards[i].tok_cnt;
        if (qlen) {
            gd_status st = find_whole(e, &e->shards[i], q, qlen, &ranges[i], err);
            if (st) return st;
        }
        total += ranges[i].hi - ranges[i].lo;
    }
    *cnt = total;
    return GD_OK;
}

int64_t gd_count(const gd_engine *e, const uint32_t *ids, size_t n) {
    gd_range small[16], *ranges = small;
    if (e->n_shards > 16 && !(ranges = malloc(e->n_shards * sizeof *ranges))) return -(int64_t)GD_E_NOMEM;
    uint64_t cnt = 0;
    gd_status st = gd_find(e, ids, n, ranges, &cnt, NULL);
    if (ranges != small) free(ranges);
    return st ? -(int64_t)st : (int64_t)cnt;
}

gd_status gd_find(const gd_engine *e, const uint32_t *ids, size_t n, gd_range *ranges, uint64_t *cnt,
                  gd_error *err) {
    gd_query q;
    gd_status st = gd_check_ids(e, ids, n, "query", err);
    if (st || (st = gd_query_init(e, &q, ids, n, err))) return st;
    st = gd_find_bytes(e, q.bytes, q.len, ranges, cnt, err);
    gd_query_release(&q);
    return st;
}

/* Ranges for one query: on the stack for the common few-shard case. */
typedef struct ranges_buf {
    gd_range *r;
    gd_range small[16];
} ranges_buf;

static gd_status ranges_init(const gd_engine *e, ranges_buf *b, gd_error *err) {
    b->r = b->small;
    if (e->n_shards > 16 && !(b->r = malloc(e->n_shards * sizeof *b->r)))
        return gd_fail(err, GD_E_NOMEM, "out of memory");
    return GD_OK;
}

static void ranges_release(ranges_buf *b) {
    if (b->r != b->small) free(b->r);
}

gd_status gd_count_batch(const gd_engine *e, const uint32_t *ids, const size_t *starts, const size_t *lens,
                         size_t n_queries, uint64_t *counts, uint64_t deadline_ns, gd_error *err) {
    ranges_buf rb;
    gd_status st = ranges_init(e, &rb, err);
    for (size_t i = 0; i < n_queries && st == GD_OK; i++) {
        if ((i & 63) == 0 && gd_past_deadline(deadline_ns)) st = gd_deadline_error(err);
        else st = gd_find(e, ids + starts[i], lens[i], rb.r, &counts[i], err);
    }
    ranges_release(&rb);
    return st;
}

/* cont_cnt of prompt (already found as `ranges`, encoded in q without the continuation) + cont. */
static gd_status extend_count(const gd_engine *e, gd_query *q, const gd_range *ranges, uint32_t cont,
                              uint64_t *cont_cnt, gd_error *err) {
    uint8_t *buf = malloc(q->len + 4);
    if (!buf) return gd_fail(err, GD_E_NOMEM, "out of memory");
    memcpy(buf, q->bytes, q->len);
    for (unsigned b = 0; b < e->width; b++) buf[q->len + b] = (uint8_t)(cont >> (8 * b));
    uint64_t total = 0;
    gd_status st = GD_OK;
    for (size_t i = 0; i < e->n_shards && st == GD_OK; i++) {
        gd_range r = ranges[i];
        if (r.lo < r.hi) st = gd_find_in(e, &e->shards[i], buf, q->len + e->width, q->len, &r, err);
        total += r.hi - r.lo;
    }
    free(buf);
    *cont_cnt = total;
    return st;
}

static gd_status prob_bytes(const gd_engine *e, gd_query *q, uint32_t cont, gd_prob_result *out, gd_error *err) {
    ranges_buf rb;
    gd_status st = ranges_init(e, &rb, err);
    if (st) return st;
    out->cont_cnt = 0;
    out->prob = -1.0;
    st = gd_find_bytes(e, q->bytes, q->len, rb.r, &out->prompt_cnt, err);
    if (st == GD_OK && out->prompt_cnt > 0) {
        st = extend_count(e, q, rb.r, cont, &out->cont_cnt, err);
        out->prob = (double)out->cont_cnt / (double)out->prompt_cnt;
    }
    ranges_release(&rb);
    return st;
}

gd_status gd_prob(const gd_engine *e, const uint32_t *prompt, size_t n, uint32_t cont, gd_prob_result *out,
                  gd_error *err) {
    gd_query q;
    memset(out, 0, sizeof *out);
    gd_status st = gd_check_ids(e, prompt, n, "prompt", err);
    if (!st) st = gd_check_ids(e, &cont, 1, "cont", err);
    if (st || (st = gd_query_init(e, &q, prompt, n, err))) return st;
    st = prob_bytes(e, &q, cont, out, err);
    gd_query_release(&q);
    return st;
}

/* Length of the longest suffix of q (in tokens, q holding n tokens) that occurs in the corpus.
 * Occurrence is monotone in the suffix length, so doubling then bisection finds it. */
gd_status gd_longest_suffix(const gd_engine *e, const gd_query *q, size_t n, size_t *out, gd_error *err) {
    ranges_buf rb;
    gd_status st = ranges_init(e, &rb, err);
    if (st) return st;
    size_t w = e->width, good = 0, bad = n + 1, probe = 1;
    uint64_t cnt;
    while (probe <= n) {
        if ((st = gd_find_bytes(e, q->bytes + (n - probe) * w, probe * w, rb.r, &cnt, err))) goto done;
        if (cnt == 0) {
            bad = probe;
            break;
        }
        good = probe;
        probe *= 2;
    }
    while (bad - good > 1) {
        size_t mid = good + (bad - good) / 2;
        if ((st = gd_find_bytes(e, q->bytes + (n - mid) * w, mid * w, rb.r, &cnt, err))) goto done;
        if (cnt) good = mid; else bad = mid;
    }
    *out = good;
done:
    ranges_release(&rb);
    return st;
}

gd_status gd_infgram_prob(const gd_engine *e, const uint32_t *prompt, size_t n, uint32_t cont,
                          gd_prob_result *out, gd_error *err) {
    gd_query q;
    size_t k = 0;
    memset(out, 0, sizeof *out);
    gd_status st = gd_check_ids(e, prompt, n, "prompt", err);
    if (!st) st = gd_check_ids(e, &cont, 1, "cont", err);
    if (st || (st = gd_query_init(e, &q, prompt, n, err))) return st;
    st = gd_longest_suffix(e, &q, n, &k, err);
    if (st == GD_OK) {
        gd_query suffix = q;
        suffix.bytes = q.bytes + (n - k) * e->width;
        suffix.len = k * e->width;
        st = prob_bytes(e, &suffix, cont, out, err);
        out->suffix_len = k;
    }
    gd_query_release(&q);
    return st;
}

/* Score every token in one pass. With m = the matched suffix length before position i, the match
 * before i+1 is at most m+1 long, so the current range is narrowed by one token when the text goes
 * on as in the corpus, and a fresh search happens only when the match must shrink. */
gd_status gd_score(const gd_engine *e, const uint32_t *ids, size_t n, gd_token_score *scores,
                   uint64_t deadline_ns, gd_error *err) {
    gd_query q;
    gd_status st = gd_check_ids(e, ids, n, "ids", err);
    if (st || (st = gd_query_init(e, &q, ids, n, err))) return st;
    ranges_buf cur, next;
    if ((st = ranges_init(e, &cur, err))) goto out_q;
    if ((st = ranges_init(e, &next, err))) goto out_cur;
    size_t w = e->width, m = 0; /* ids[i-m:i] is the longest occurring suffix, its ranges in cur */
    uint64_t prompt_cnt = 0;
    if ((st = gd_find_bytes(e, q.bytes, 0, cur.r, &prompt_cnt, err))) goto out;
    for (size_t i = 0; i < n; i++) {
        if ((i & 255) == 0 && gd_past_deadline(deadline_ns)) {
            st = gd_deadline_error(err);
            goto out;
        }
        /* narrow the context's ranges by ids[i] */
        const uint8_t *ctx = q.bytes + (i - m) * w;
        uint64_t cont_cnt = 0;
        for (size_t s = 0; s < e->n_shards; s++) {
            next.r[s] = cur.r[s];
            if (next.r[s].lo < next.r[s].hi &&
                (st = gd_find_in(e, &e->shards[s], ctx, (m + 1) * w, m * w, &next.r[s], err)))
                goto out;
            cont_cnt += next.r[s].hi - next.r[s].lo;
        }
        scores[i].suffix_len = m;
        scores[i].prompt_cnt = prompt_cnt;
        scores[i].cont_cnt = cont_cnt;
        scores[i].prob = (double)cont_cnt / (double)prompt_cnt;
        if (cont_cnt > 0) { /* ids[i-m:i+1] occurs: it is the next context */
            m++;
            memcpy(cur.r, next.r, e->n_shards * sizeof *cur.r);
            prompt_cnt = cont_cnt;
            continue;
        }
        /* shrink from the left until the suffix of ids[:i+1] occurs (length 0 always does) */
        const uint8_t *end = q.bytes + (i + 1) * w;
        for (;;) {
            if (m == 0) {
                if ((st = gd_find_bytes(e, end, 0, cur.r, &prompt_cnt, err))) goto out;
                break;
            }
            if ((st = gd_find_bytes(e, end - m * w, m * w, cur.r, &prompt_cnt, err))) goto out;
            if (prompt_cnt) break;
            m--;
        }
    }
out:
    ranges_release(&next);
out_cur:
    ranges_release(&cur);
out_q:
    gd_query_release(&q);
    return st;
}

gd_status gd_longest_suffix_len(const gd_engine *e, const uint32_t *prompt, size_t n, uint64_t *out, gd_error *err) {
    gd_query q;
    size_t k = 0;
    *out = 0;
    gd_status st = gd_check_ids(e, prompt, n, "prompt", err);
    if (st || (st = gd_query_init(e, &q, prompt, n, err))) return st;
    st = gd_longest_suffix(e, &q, n, &k, err);
    gd_query_release(&q);
    *out = k;
    return st;
}
