/* Shared internals of the gramdex query engine: the mapped shard and its bounds-checked readers. */
#ifndef GRAMDEX_INTERNAL_H
#define GRAMDEX_INTERNAL_H

#include <stdarg.h>
#include <stdint.h>
#include <string.h>

#include "gramdex.h"

typedef struct gd_map {
    const uint8_t *data;
    uint64_t size;
} gd_map;

/* Every 2^shift-th suffix's first 8 bytes as a big-endian integer (integer order = byte order):
 * a compact, cache-friendly first level for whole-array searches. */
typedef struct gd_sample {
    uint64_t *keys;
    uint64_t n;
    unsigned shift;
    uint64_t short_ix[8]; /* samples whose suffix is shorter than 8 bytes (end of the shard) */
    unsigned n_short;
} gd_sample;

typedef struct gd_shard {
    gd_map ds;        /* tokenized.N */
    gd_map sa;        /* table.N */
    gd_map od;        /* offset.N */
    gd_map mt;        /* metadata.N (optional) */
    gd_map om;        /* metaoff.N (optional) */
    uint64_t tok_cnt;
    uint64_t doc_cnt;
    uint64_t doc_base; /* global index of this shard's first document */
    unsigned ptr_size;
    gd_sample sample;
    unsigned long number; /* N of the file names */
    char *dir;
} gd_shard;

struct gd_engine {
    gd_shard *shards;
    size_t n_shards;
    unsigned width;
    uint32_t eos;
    uint64_t max_token;
};

/* Key of the token after a match: end of shard sorts before every token in byte order. */
#define GD_KEY_END UINT64_C(0xFFFFFFFFFFFFFFFF)

/* Maps a whole file read-only (an empty file maps to data == NULL, size 0). GD_MAP_INDEX: a missing file is
 * GD_E_FORMAT "missing index file" and access is advised random; GD_MAP_OPTIONAL: a missing file is GD_OK with
 * *present = 0. */
enum { GD_MAP_OPTIONAL = 1, GD_MAP_INDEX = 2 };
gd_status gd_map_file(const char *path, gd_map *m, unsigned flags, int *present, gd_error *err);
void gd_unmap_file(gd_map *m);

gd_status gd_fail(gd_error *err, gd_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Suffix-array entry at `rank` (< tok_cnt), validated as a token-aligned offset inside ds. */
static inline gd_status gd_sa_ptr(const gd_engine *e, const gd_shard *s, uint64_t rank, uint64_t *ptr,
                                  gd_error *err) {
    const uint8_t *p = s->sa.data + rank * s->ptr_size;
    uint64_t v = 0;
    if (s->ptr_size == 4) {
        uint32_t w;
        memcpy(&w, p, 4);
        v = w;
    } else {
        for (unsigned i = 0; i < s->ptr_size; i++) v |= (uint64_t)p[i] << (8 * i);
    }
    if (v >= s->ds.size || v % e->width != 0)
        return gd_fail(err, GD_E_FORMAT, "%s/table.%lu: entry %llu points to byte %llu, outside tokenized.%lu (%llu bytes)",
                       s->dir, s->number, (unsigned long long)rank, (unsigned long long)v,
                       s->number, (unsigned long long)s->ds.size);
    *ptr = v;
    return GD_OK;
}

/* Raw token (native int) at byte offset ptr; caller guarantees ptr + width <= ds.size. */
static inline uint32_t gd_token_at(const gd_engine *e, const gd_shard *s, uint64_t ptr) {
    const uint8_t *p = s->ds.data + ptr;
    switch (e->width) {
    case 1: return p[0];
    case 2: return (uint32_t)p[0] | (uint32_t)p[1] << 8;
    default: return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    }
}

/* The separator token (all 0xFF bytes) as an integer. */
static inline uint32_t gd_sep(const gd_engine *e) { return (uint32_t)e->max_token; }

/* Sign of (suffix at ptr, truncated to qlen bytes) - q, comparing from byte `skip` on. */
static inline int gd_cmp_at(const gd_shard *s, uint64_t ptr, const uint8_t *q, size_t qlen, size_t skip) {
    uint64_t avail = s->ds.size - ptr;
    size_t n = avail < qlen ? (size_t)avail : qlen;
    if (skip < n) {
        int c = memcmp(s->ds.data + ptr + skip, q + skip, n - skip);
        if (c) return c;
    }
    return avail < qlen ? -1 : 0;
}

/* Query tokens as the little-endian bytes the suffixes are compared with. */
typedef struct gd_query {
    uint8_t *bytes;
    size_t len;      /* bytes */
    uint8_t inline_buf[256];
} gd_query;

gd_status gd_query_init(const gd_engine *e, gd_query *q, const uint32_t *ids, size_t n, gd_error *err);
void gd_query_release(gd_query *q);

/* Narrow `*r` (a range whose suffixes all start with q's first `known` bytes) to the suffixes that
 * start with all of q. */
gd_status gd_find_in(const gd_engine *e, const gd_shard *s, const uint8_t *q, size_t qlen, size_t known,
                     gd_range *r, gd_error *err);
/* gd_find over pre-encoded bytes, every shard from the whole suffix array. */
gd_status gd_find_bytes(const gd_engine *e, const uint8_t *q, size_t qlen, gd_range *ranges, uint64_t *cnt,
                        gd_error *err);

/* Length in tokens of the longest suffix of the n-token query q that occurs in the corpus. */
gd_status gd_longest_suffix(const gd_engine *e, const gd_query *q, size_t n, size_t *out, gd_error *err);

gd_status gd_sample_build(const gd_engine *e, gd_shard *s, gd_error *err);
void gd_sample_release(gd_shard *s);
/* Windows of ranks holding the lower bound [*lo_from, *lo_to] and the upper bound [*hi_from, *hi_to]
 * of q's range in the whole suffix array. */
void gd_sample_bracket(const gd_engine *e, const gd_shard *s, const uint8_t *q, size_t qlen, uint64_t *lo_from,
                       uint64_t *lo_to, uint64_t *hi_from, uint64_t *hi_to);

gd_status gd_check_ids(const gd_engine *e, const uint32_t *ids, size_t n, const char *what, gd_error *err);
int gd_past_deadline(uint64_t deadline_ns);
gd_status gd_deadline_error(gd_error *err);

/* Growable array of (token, count) pairs. */
typedef struct gd_counts {
    gd_token_count *v;
    size_t n, cap;
} gd_counts;
gd_status gd_counts_add(gd_counts *c, uint32_t token, uint64_t count);

/* Document containing byte `ptr` of shard s: local index and [start, end) byte bounds (start is
 * just after the separator). */
gd_status gd_doc_locate(const gd_engine *e, const gd_shard *s, uint64_t ptr, uint64_t *local_ix,
                        uint64_t *start, uint64_t *end, gd_error *err);

#endif
