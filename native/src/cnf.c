/* CNF queries: AND of OR-clauses whose matches lie within max_diff_tokens of each other.
 * Clauses above max_clause_freq are subsampled with the generator and window rules infini-gram
 * uses (mt19937 seeded with 19260817 per clause and shard, libstdc++'s uniform_int_distribution),
 * so the same approximate answer comes out. */
#include <stdlib.h>

#include "internal.h"

/* --- std::mt19937 --- */
typedef struct mt19937 {
    uint32_t s[624];
    unsigned i;
} mt19937;

static void mt_seed(mt19937 *m, uint32_t seed) {
    m->s[0] = seed;
    for (unsigned i = 1; i < 624; i++) m->s[i] = 1812433253u * (m->s[i - 1] ^ (m->s[i - 1] >> 30)) + i;
    m->i = 624;
}

static uint32_t mt_next(mt19937 *m) {
    if (m->i >= 624) {
        for (unsigned k = 0; k < 624; k++) {
            uint32_t y = (m->s[k] & 0x80000000u) | (m->s[(k + 1) % 624] & 0x7fffffffu);
            m->s[k] = m->s[(k + 397) % 624] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
        }
        m->i = 0;
    }
    uint32_t y = m->s[m->i++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    return y ^ (y >> 18);
}

/* libstdc++ (GCC 10) uniform_int_distribution<uint64_t>(0, range) over a 32-bit generator. */
static uint64_t uniform_u64(mt19937 *m, uint64_t range) {
    const uint64_t gen_range = 0xFFFFFFFFu;
    if (gen_range > range) {
        uint64_t erange = range + 1, scaling = gen_range / erange, past = erange * scaling, r;
        do r = mt_next(m); while (r >= past);
        return r / scaling;
    }
    if (gen_range < range) {
        uint64_t r, tmp;
        do {
            tmp = (gen_range + 1) * uniform_u64(m, range / (gen_range + 1));
            r = tmp + mt_next(m);
        } while (r > range || r < tmp);
        return r;
    }
    return mt_next(m);
}

/* --- LSD radix sort of byte offsets --- */
static gd_status sort_u64(uint64_t *v, size_t n, gd_error *err) {
    if (n < 2) return GD_OK;
    uint64_t max = 0;
    for (size_t i = 0; i < n; i++) max |= v[i];
    uint64_t *tmp = malloc(n * sizeof *tmp);
    if (!tmp) return gd_fail(err, GD_E_NOMEM, "out of memory");
    uint64_t *src = v, *dst = tmp;
    for (unsigned shift = 0; shift < 64 && (max >> shift); shift += 11) {
        size_t count[2048] = {0};
        for (size_t i = 0; i < n; i++) count[(src[i] >> shift) & 2047]++;
        size_t sum = 0;
        for (size_t d = 0; d < 2048; d++) {
            size_t c = count[d];
            count[d] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++) dst[count[(src[i] >> shift) & 2047]++] = src[i];
        uint64_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != v) memcpy(v, src, n * sizeof *v);
    free(tmp);
    return GD_OK;
}

/* One clause in one shard: its terms' (possibly subsampled) rank windows. */
typedef struct clause_shard {
    gd_range *windows;  /* n_terms of the clause */
    uint64_t cnt;       /* before subsampling */
    double factor;      /* cnt / subsampled cnt (integer division), 1 when not subsampled */
} clause_shard;

typedef struct cnf_run {
    const gd_engine *e;
    const gd_cnf *cnf;
    uint64_t deadline_ns;
    gd_error *err;
    clause_shard *cs;   /* [clause * n_shards + shard] */
    gd_range *windows;  /* backing store: [term * n_shards + shard] */
} cnf_run;

static gd_status find_terms(cnf_run *c, uint64_t *clause_totals) {
    const gd_engine *e = c->e;
    const gd_cnf *q = c->cnf;
    for (size_t cl = 0; cl < q->n_clauses; cl++) {
        clause_totals[cl] = 0;
        for (size_t t = q->clause_start[cl]; t < q->clause_start[cl] + q->clause_len[cl]; t++) {
            if (gd_past_deadline(c->deadline_ns)) return gd_deadline_error(c->err);
            uint64_t cnt;
            gd_status st = gd_find(e, q->tokens + q->term_start[t], q->term_len[t], c->windows + t * e->n_shards,
                                   &cnt, c->err);
            if (st) return st;
            clause_totals[cl] += cnt;
        }
    }
    return GD_OK;
}

static void subsample(cnf_run *c, uint64_t max_clause_freq, uint64_t shards_total) {
    const gd_engine *e = c->e;
    const gd_cnf *q = c->cnf;
    uint64_t per_shard = (max_clause_freq + shards_total - 1) / shards_total;
    for (size_t cl = 0; cl < q->n_clauses; cl++) {
        size_t t0 = q->clause_start[cl], nt = q->clause_len[cl];
        for (size_t s = 0; s < e->n_shards; s++) {
            clause_shard *x = &c->cs[cl * e->n_shards + s];
            x->windows = NULL;
            x->cnt = 0;
            x->factor = 1.0;
            for (size_t t = t0; t < t0 + nt; t++) {
                gd_range r = c->windows[t * e->n_shards + s];
                x->cnt += r.hi - r.lo;
            }
            if (x->cnt <= per_shard) continue;
            mt19937 gen;
            mt_seed(&gen, 19260817u);
            uint64_t new_cnt = 0;
            for (size_t t = t0; t < t0 + nt; t++) {
                gd_range *r = &c->windows[t * e->n_shards + s];
                uint64_t len = r->hi - r->lo;
                uint64_t new_len = (uint64_t)(((unsigned __int128)len * per_shard + (x->cnt - 1)) / x->cnt);
                r->lo += uniform_u64(&gen, len - new_len);
                r->hi = r->lo + new_len;
                new_cnt += new_len;
            }
            x->factor = (double)(x->cnt / new_cnt);
        }
    }
}

/* Byte offsets of every rank in the clause's windows in shard s, appended to *out. */
static gd_status clause_ptrs(cnf_run *c, size_t cl, size_t s, uint64_t **out, size_t *n) {
    const gd_engine *e = c->e;
    const gd_shard *sh = &e->shards[s];
    size_t total = 0;
    for (size_t t = c->cnf->clause_start[cl]; t < c->cnf->clause_start[cl] + c->cnf->clause_len[cl]; t++) {
        gd_range r = c->windows[t * e->n_shards + s];
        total += r.hi - r.lo;
    }
    uint64_t *v = malloc((total ? total : 1) * sizeof *v);
    if (!v) return gd_fail(c->err, GD_E_NOMEM, "out of memory");
    size_t k = 0;
    for (size_t t = c->cnf->clause_start[cl]; t < c->cnf->clause_start[cl] + c->cnf->clause_len[cl]; t++) {
        gd_range r = c->windows[t * e->n_shards + s];
        for (uint64_t rank = r.lo; rank < r.hi; rank++) {
            gd_status st = gd_sa_ptr(e, sh, rank, &v[k++], c->err);
            if (st) {
                free(v);
                return st;
            }
        }
    }
    *out = v;
    *n = k;
    return GD_OK;
}

typedef struct ptr_range {
    uint64_t l, r;
} ptr_range;

/* First index i with v[i] >= x. */
static size_t lower_idx(const uint64_t *v, size_t n, uint64_t x) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t m = lo + (hi - lo) / 2;
        if (v[m] < x) lo = m + 1; else hi = m;
    }
    return lo;
}

static int contains_sep(const gd_engine *e, const gd_shard *s, uint64_t l, uint64_t r) {
    unsigned w = e->width;
    for (uint64_t i = l; i + w <= r; i++) {
        unsigned j = 0;
        while (j < w && s->ds.data[i + j] == 0xFF) j++;
        if (j == w) return 1;
    }
    return 0;
}

static gd_status cnf_shard(cnf_run *c, size_t s, uint64_t max_diff_tokens, size_t *order, ptr_range **out,
                           size_t *n_out, double *factor_out) {
    const gd_engine *e = c->e;
    const gd_cnf *q = c->cnf;
    size_t nc = q->n_clauses;
    /* clauses by ascending count in this shard; stable, so ties keep their input order */
    for (size_t i = 0; i < nc; i++) order[i] = i;
    for (size_t i = 1; i < nc; i++) {
        size_t x = order[i], j = i;
        while (j > 0 && c->cs[order[j - 1] * e->n_shards + s].cnt > c->cs[x * e->n_shards + s].cnt) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = x;
    }
    uint64_t *ptrs;
    size_t np;
    gd_status st = clause_ptrs(c, order[0], s, &ptrs, &np);
    if (st) return st;
    ptr_range *ranges = malloc((np ? np : 1) * sizeof *ranges), *next = NULL;
    if (!ranges) {
        free(ptrs);
        return gd_fail(c->err, GD_E_NOMEM, "out of memory");
    }
    size_t nr = np;
    for (size_t i = 0; i < np; i++) ranges[i].l = ranges[i].r = ptrs[i];
    free(ptrs);
    ptrs = NULL;
    double factor = c->cs[order[0] * e->n_shards + s].factor;
    uint64_t span = max_diff_tokens * e->width;
    for (size_t k = 1; k < nc; k++) {
        factor *= c->cs[order[k] * e->n_shards + s].factor;
        if (nr == 0) continue; /* no match left, but the factor still counts for `approx` */
        if (gd_past_deadline(c->deadline_ns)) {
            st = gd_deadline_error(c->err);
            goto fail;
        }
        if ((st = clause_ptrs(c, order[k], s, &ptrs, &np)) || (st = sort_u64(ptrs, np, c->err))) goto fail;
        next = malloc(2 * nr * sizeof *next);
        if (!next) {
            st = gd_fail(c->err, GD_E_NOMEM, "out of memory");
            goto fail;
        }
        size_t nn = 0;
        for (size_t i = 0; i < nr; i++) {
            uint64_t l = ranges[i].l, r = ranges[i].r;
            size_t below_r = lower_idx(ptrs, np, r);    /* ptrs[below_r - 1] is the last one < r */
            size_t from_l = lower_idx(ptrs, np, l);     /* ptrs[from_l] is the first one >= l */
            int has_l = below_r > 0, has_r = from_l < np;
            uint64_t new_l = has_l ? (ptrs[below_r - 1] < l ? ptrs[below_r - 1] : l) : 0;
            uint64_t new_r = has_r ? (ptrs[from_l] > r ? ptrs[from_l] : r) : 0;
            int ok_l = has_l && new_l + span >= l, ok_r = has_r && new_r <= r + span;
            if (ok_l && ok_r) {
                next[nn++] = (ptr_range){new_l, new_r};
            } else {
                if (ok_l) next[nn++] = (ptr_range){new_l, r};
                if (ok_r) next[nn++] = (ptr_range){l, new_r};
            }
        }
        free(ptrs);
        ptrs = NULL;
        free(ranges);
        ranges = next;
        next = NULL;
        nr = nn;
    }
    size_t kept = 0;
    for (size_t i = 0; i < nr; i++)
        if (!contains_sep(e, &e->shards[s], ranges[i].l, ranges[i].r)) ranges[kept++] = ranges[i];
    *out = ranges;
    *n_out = kept;
    *factor_out = factor;
    return GD_OK;
fail:
    free(ptrs);
    free(ranges);
    free(next);
    return st;
}

static gd_status check_cnf(const gd_engine *e, const gd_cnf *q, gd_error *err) {
    if (q->n_clauses == 0) return gd_fail(err, GD_E_INVALID, "cnf must have at least one clause");
    for (size_t cl = 0; cl < q->n_clauses; cl++) {
        if (q->clause_len[cl] == 0) return gd_fail(err, GD_E_INVALID, "cnf clause %zu has no terms", cl);
        if (q->clause_start[cl] > q->n_terms || q->clause_len[cl] > q->n_terms - q->clause_start[cl])
            return gd_fail(err, GD_E_INVALID, "cnf clause %zu refers to terms outside the query", cl);
        for (size_t t = q->clause_start[cl]; t < q->clause_start[cl] + q->clause_len[cl]; t++) {
            if (q->term_len[t] == 0) return gd_fail(err, GD_E_INVALID, "cnf clause %zu has an empty term", cl);
            gd_status st = gd_check_ids(e, q->tokens + q->term_start[t], q->term_len[t], "cnf term", err);
            if (st) return st;
        }
    }
    return GD_OK;
}

/* part = 0: the whole index (a clause absent everywhere ends the query with no pointers at all). */
static gd_status find_cnf(const gd_engine *e, const gd_cnf *q, uint64_t max_clause_freq, uint64_t max_diff_tokens,
                          uint64_t shards_total, int part, uint64_t *clause_totals, gd_cnf_result *out,
                          uint64_t deadline_ns, gd_error *err) {
    memset(out, 0, sizeof *out);
    gd_status st = check_cnf(e, q, err);
    if (st) return st;
    if (shards_total < e->n_shards)
        return gd_fail(err, GD_E_INVALID, "shards_total %llu is below this engine's %zu shards",
                       (unsigned long long)shards_total, e->n_shards);
    if (max_clause_freq == 0 || max_diff_tokens == 0 || max_diff_tokens > (UINT64_C(1) << 40))
        return gd_fail(err, GD_E_INVALID, "max_clause_freq and max_diff_tokens must be positive");
    size_t ns = e->n_shards, nc = q->n_clauses;
    cnf_run c = {e, q, deadline_ns, err, calloc(nc * ns, sizeof(clause_shard)),
                 calloc(q->n_terms * ns, sizeof(gd_range))};
    uint64_t *totals = calloc(nc, sizeof *totals);
    size_t *order = calloc(nc, sizeof *order);
    ptr_range **per_shard = calloc(ns, sizeof *per_shard);
    size_t *per_n = calloc(ns, sizeof *per_n);
    if (!c.cs || !c.windows || !totals || !order || !per_shard || !per_n) {
        st = gd_fail(err, GD_E_NOMEM, "out of memory");
        goto done;
    }
    if ((st = find_terms(&c, totals))) goto done;
    if (clause_totals) memcpy(clause_totals, totals, nc * sizeof *totals);
    for (size_t cl = 0; cl < nc && !part; cl++)
        if (totals[cl] == 0) goto done; /* some clause never occurs: no match, nothing per shard */
    subsample(&c, max_clause_freq, shards_total);
    size_t all = 0;
    for (size_t s = 0; s < ns; s++) {
        double factor = 1.0;
        if ((st = cnf_shard(&c, s, max_diff_tokens, order, &per_shard[s], &per_n[s], &factor))) goto done;
        out->cnt += (uint64_t)((double)per_n[s] * factor);
        out->approx |= factor != 1.0;
        all += per_n[s];
    }
    out->ptrs = malloc((all ? all : 1) * sizeof *out->ptrs);
    out->ptrs_per_shard = malloc(ns * sizeof *out->ptrs_per_shard);
    if (!out->ptrs || !out->ptrs_per_shard) {
        st = gd_fail(err, GD_E_NOMEM, "out of memory");
        goto done;
    }
    size_t k = 0;
    for (size_t s = 0; s < ns; s++) {
        out->ptrs_per_shard[s] = per_n[s];
        for (size_t i = 0; i < per_n[s]; i++) out->ptrs[k++] = per_shard[s][i].l;
    }
done:
    if (st) {
        free(out->ptrs);
        free(out->ptrs_per_shard);
        memset(out, 0, sizeof *out);
    }
    if (per_shard)
        for (size_t s = 0; s < ns; s++) free(per_shard[s]);
    free(per_shard);
    free(per_n);
    free(order);
    free(totals);
    free(c.cs);
    free(c.windows);
    return st;
}

gd_status gd_find_cnf(const gd_engine *e, const gd_cnf *q, uint64_t max_clause_freq, uint64_t max_diff_tokens,
                      gd_cnf_result *out, uint64_t deadline_ns, gd_error *err) {
    return find_cnf(e, q, max_clause_freq, max_diff_tokens, e->n_shards, 0, NULL, out, deadline_ns, err);
}

gd_status gd_find_cnf_part(const gd_engine *e, const gd_cnf *q, uint64_t max_clause_freq, uint64_t max_diff_tokens,
                           uint64_t shards_total, uint64_t *clause_totals, gd_cnf_result *out, uint64_t deadline_ns,
                           gd_error *err) {
    return find_cnf(e, q, max_clause_freq, max_diff_tokens, shards_total, 1, clause_totals, out, deadline_ns, err);
}
