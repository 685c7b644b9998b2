/* Byte-level BPE encoding (GPT-2 style), exact to Hugging Face tokenizers' ByteLevel + BPE.
 *
 * Text is split into pieces by a hand-written matcher of the GPT-2 regex (see gramdex.h), using the
 * generated class table bpe_classes.h. Each piece's bytes become symbols that are merged pair by
 * pair, the lowest rank first and the leftmost first among equal ranks (a binary heap of candidate
 * pairs with lazy invalidation over a linked list of symbols). Pieces repeat a lot in natural text,
 * so a per-thread cache maps piece bytes to their ids. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpe_classes.h"
#include "gramdex.h"
#include "internal.h"

#define NO_ID UINT32_MAX
#define MAX_CACHED_PIECE 128u          /* longer pieces are merged every time */
#define DEFAULT_CACHE_BYTES ((size_t)64 << 20)

/* ---------- hashing ---------- */

static inline uint64_t mix64(uint64_t x) {
    x ^= x >> 32;
    x *= UINT64_C(0xd6e8feb86659fd93);
    x ^= x >> 32;
    x *= UINT64_C(0xd6e8feb86659fd93);
    x ^= x >> 32;
    return x;
}

static inline uint64_t load_le(const uint8_t *p, size_t n) {  /* n <= 8 bytes, little-endian */
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static uint64_t hash_bytes(const uint8_t *p, size_t n) {
    uint64_t h = UINT64_C(0x243f6a8885a308d3) ^ ((uint64_t)n * UINT64_C(0x9e3779b97f4a7c15));
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        h = (h ^ v) * UINT64_C(0xff51afd7ed558ccd);
        h ^= h >> 29;
        p += 8;
        n -= 8;
    }
    if (n) h = (h ^ load_le(p, n)) * UINT64_C(0xc4ceb9fe1a85ec53);
    return mix64(h);
}

/* ---------- the model ---------- */

typedef struct merge_slot {
    uint64_t key;     /* left << 32 | right; EMPTY_KEY when free (ids never equal NO_ID) */
    uint32_t rank;
    uint32_t result;
} merge_slot;
#define EMPTY_KEY UINT64_MAX

typedef struct word_slot {  /* ignore_merges vocabulary: raw bytes -> id */
    uint64_t hash;
    size_t off;
    size_t len;             /* 0 = free */
    uint32_t id;
} word_slot;

struct gd_bpe_model {
    uint32_t byte_ids[256];
    merge_slot *merges;
    size_t merge_mask;
    word_slot *words;
    size_t word_mask;
    uint8_t *word_bytes;
    unsigned flags;
};

static size_t pow2_at_least(size_t n) {
    size_t c = 16;
    while (c < n) c <<= 1;
    return c;
}

static inline size_t merge_home(uint64_t key, size_t mask) {
    return (size_t)(mix64(key) & mask);
}

/* rank and result of the pair (left, right), or 0 when the pair has no merge. */
static inline int merge_find(const gd_bpe_model *m, uint32_t left, uint32_t right, uint32_t *rank,
                             uint32_t *result) {
    uint64_t key = (uint64_t)left << 32 | right;
    size_t i = merge_home(key, m->merge_mask);
    for (;;) {
        const merge_slot *s = &m->merges[i];
        if (s->key == key) {
            *rank = s->rank;
            *result = s->result;
            return 1;
        }
        if (s->key == EMPTY_KEY) return 0;
        i = (i + 1) & m->merge_mask;
    }
}

static const word_slot *word_find(const gd_bpe_model *m, const uint8_t *p, size_t n) {
    if (!m->words) return NULL;
    uint64_t h = hash_bytes(p, n);
    size_t i = (size_t)h & m->word_mask;
    for (;;) {
        const word_slot *s = &m->words[i];
        if (s->len == 0) return NULL;
        if (s->hash == h && s->len == n && memcmp(m->word_bytes + s->off, p, n) == 0) return s;
        i = (i + 1) & m->word_mask;
    }
}

void gd_bpe_model_free(gd_bpe_model *model) {
    if (!model) return;
    free(model->merges);
    free(model->words);
    free(model->word_bytes);
    free(model);
}

gd_status gd_bpe_model_new(const gd_bpe_spec *spec, gd_bpe_model **out, gd_error *err) {
    if (!out) return gd_fail(err, GD_E_INVALID, "out is NULL");
    *out = NULL;
    if (!spec || !spec->byte_ids) return gd_fail(err, GD_E_INVALID, "spec or spec->byte_ids is NULL");
    if (spec->flags & ~(unsigned)GD_BPE_IGNORE_MERGES)
        return gd_fail(err, GD_E_INVALID, "unknown flags 0x%x", spec->flags);
    if (spec->n_merges && (!spec->merge_left || !spec->merge_right || !spec->merge_result))
        return gd_fail(err, GD_E_INVALID, "%zu merges but a merge array is NULL", spec->n_merges);
    if (spec->n_merges > UINT32_MAX - 1)
        return gd_fail(err, GD_E_INVALID, "too many merges (%zu)", spec->n_merges);
    if (spec->n_words && (!spec->words || !spec->word_offsets || !spec->word_ids))
        return gd_fail(err, GD_E_INVALID, "%zu words but a word array is NULL", spec->n_words);
    if (spec->n_words > SIZE_MAX / 4 / sizeof(word_slot))
        return gd_fail(err, GD_E_INVALID, "too many words (%zu)", spec->n_words);
    for (unsigned b = 0; b < 256; b++)
        if (spec->byte_ids[b] == NO_ID) return gd_fail(err, GD_E_INVALID, "byte_ids[%u] is 0xFFFFFFFF", b);
    for (size_t i = 0; i < spec->n_merges; i++)
        if (spec->merge_left[i] == NO_ID || spec->merge_right[i] == NO_ID || spec->merge_result[i] == NO_ID)
            return gd_fail(err, GD_E_INVALID, "merge %zu uses the id 0xFFFFFFFF", i);
    size_t total_word_bytes = 0;
    if (spec->n_words) {
        if (spec->word_offsets[0] != 0) return gd_fail(err, GD_E_INVALID, "word_offsets[0] is not 0");
        for (size_t i = 0; i < spec->n_words; i++) {
            if (spec->word_offsets[i + 1] <= spec->word_offsets[i])
                return gd_fail(err, GD_E_INVALID, "word %zu is empty or its offsets decrease", i);
            if (spec->word_ids[i] == NO_ID) return gd_fail(err, GD_E_INVALID, "word %zu has id 0xFFFFFFFF", i);
        }
        total_word_bytes = spec->word_offsets[spec->n_words];
    }

    gd_bpe_model *m = calloc(1, sizeof *m);
    if (!m) return gd_fail(err, GD_E_NOMEM, "out of memory");
    memcpy(m->byte_ids, spec->byte_ids, sizeof m->byte_ids);
    m->flags = spec->flags;
    size_t cap = pow2_at_least(spec->n_merges * 2 + 1);
    m->merges = malloc(cap * sizeof *m->merges);
    if (!m->merges) goto nomem;
    m->merge_mask = cap - 1;
    for (size_t i = 0; i < cap; i++) m->merges[i].key = EMPTY_KEY;
    for (size_t r = 0; r < spec->n_merges; r++) {
        uint64_t key = (uint64_t)spec->merge_left[r] << 32 | spec->merge_right[r];
        size_t i = merge_home(key, m->merge_mask);
        while (m->merges[i].key != EMPTY_KEY && m->merges[i].key != key) i = (i + 1) & m->merge_mask;
        m->merges[i].key = key;  /* a repeated pair: the later entry wins */
        m->merges[i].rank = (uint32_t)r;
        m->merges[i].result = spec->merge_result[r];
    }
    if (spec->n_words) {
        size_t wcap = pow2_at_least(spec->n_words * 2 + 1);
        m->words = calloc(wcap, sizeof *m->words);
        m->word_bytes = malloc(total_word_bytes);
        if (!m->words || !m->word_bytes) goto nomem;
        m->word_mask = wcap - 1;
        memcpy(m->word_bytes, spec->words, total_word_bytes);
        for (size_t w = 0; w < spec->n_words; w++) {
            size_t off = spec->word_offsets[w], len = spec->word_offsets[w + 1] - off;
            uint64_t h = hash_bytes(m->word_bytes + off, len);
            size_t i = (size_t)h & m->word_mask;
            while (m->words[i].len != 0 &&
                   !(m->words[i].hash == h && m->words[i].len == len &&
                     memcmp(m->word_bytes + m->words[i].off, m->word_bytes + off, len) == 0))
                i = (i + 1) & m->word_mask;
            m->words[i] = (word_slot){.hash = h, .off = off, .len = len, .id = spec->word_ids[w]};
        }
    }
    *out = m;
    return GD_OK;
nomem:
    gd_bpe_model_free(m);
    return gd_fail(err, GD_E_NOMEM, "out of memory");
}

/* ---------- the cache and scratch memory ---------- */

typedef struct cache_slot {
    uint64_t hash;
    uint32_t key_off;
    uint32_t ids_off;
    uint16_t key_len;   /* 0 = free */
    uint16_t n_ids;
} cache_slot;

struct gd_bpe_cache {
    const gd_bpe_model *model;
    size_t max_bytes;
    cache_slot *slots;
    size_t mask;        /* slots - 1 */
    size_t used;
    uint8_t *keys;
    size_t keys_len, keys_cap;
    uint32_t *ids;
    size_t ids_len, ids_cap;
    /* scratch for merging one piece */
    uint32_t *sym;      /* symbol ids; NO_ID = merged away */
    int32_t *next;
    int32_t *prev;
    uint64_t *heap;     /* rank << 32 | position */
    size_t scratch_cap; /* symbols the scratch arrays hold */
};

static int cache_alloc_table(gd_bpe_cache *c, size_t n_slots) {
    cache_slot *s = calloc(n_slots, sizeof *s);
    if (!s) return 0;
    free(c->slots);
    c->slots = s;
    c->mask = n_slots - 1;
    c->used = 0;
    return 1;
}

static void cache_clear(gd_bpe_cache *c) {
    memset(c->slots, 0, (c->mask + 1) * sizeof *c->slots);
    c->used = 0;
    c->keys_len = 0;
    c->ids_len = 0;
}

gd_status gd_bpe_cache_new(const gd_bpe_model *model, size_t max_bytes, gd_bpe_cache **out, gd_error *err) {
    if (!out) return gd_fail(err, GD_E_INVALID, "out is NULL");
    *out = NULL;
    if (!model) return gd_fail(err, GD_E_INVALID, "model is NULL");
    gd_bpe_cache *c = calloc(1, sizeof *c);
    if (!c) return gd_fail(err, GD_E_NOMEM, "out of memory");
    c->model = model;
    c->max_bytes = max_bytes ? max_bytes : DEFAULT_CACHE_BYTES;
    if (c->max_bytes < ((size_t)1 << 20)) c->max_bytes = (size_t)1 << 20;
    if (!cache_alloc_table(c, 4096)) {
        free(c);
        return gd_fail(err, GD_E_NOMEM, "out of memory");
    }
    *out = c;
    return GD_OK;
}

void gd_bpe_cache_free(gd_bpe_cache *cache) {
    if (!cache) return;
    free(cache->slots);
    free(cache->keys);
    free(cache->ids);
    free(cache->sym);
    free(cache->next);
    free(cache->prev);
    free(cache->heap);
    free(cache);
}

static size_t cache_footprint(size_t slots, size_t keys_cap, size_t ids_cap) {
    return slots * sizeof(cache_slot) + keys_cap + ids_cap * sizeof(uint32_t);
}

static const cache_slot *cache_find(const gd_bpe_cache *c, const uint8_t *p, size_t n, uint64_t h) {
    size_t i = (size_t)h & c->mask;
    for (;;) {
        const cache_slot *s = &c->slots[i];
        if (s->key_len == 0) return NULL;
        if (s->hash == h && s->key_len == n && memcmp(c->keys + s->key_off, p, n) == 0) return s;
        i = (i + 1) & c->mask;
    }
}

/* Room for `need_k` key bytes and `need_i` ids in the arenas (doubling); 0 on failure or past the budget. */
static int arenas_reserve(gd_bpe_cache *c, size_t need_k, size_t need_i) {
    size_t kc = c->keys_cap ? c->keys_cap : (size_t)1 << 12, ic = c->ids_cap ? c->ids_cap : (size_t)1 << 10;
    while (kc < need_k) kc *= 2;
    while (ic < need_i) ic *= 2;
    if (kc > UINT32_MAX || ic > UINT32_MAX || cache_footprint(c->mask + 1, kc, ic) > c->max_bytes) return 0;
    if (kc != c->keys_cap) {
        uint8_t *k = realloc(c->keys, kc);
        if (!k) return 0;
        c->keys = k;
        c->keys_cap = kc;
    }
    if (ic != c->ids_cap) {
        uint32_t *i = realloc(c->ids, ic * sizeof *i);
        if (!i) return 0;
        c->ids = i;
        c->ids_cap = ic;
    }
    return 1;
}

/* Remembers piece p -> ids (best effort: a full cache is emptied first; allocation failures skip it). */
static void cache_put(gd_bpe_cache *c, const uint8_t *p, size_t n, uint64_t h, const uint32_t *ids, size_t k) {
    if ((c->used + 1) * 4 > (c->mask + 1) * 3) {  /* load factor 3/4: grow the table or start over */
        size_t slots = (c->mask + 1) * 2;
        cache_slot *s = NULL;
        if (cache_footprint(slots, c->keys_cap, c->ids_cap) <= c->max_bytes) s = calloc(slots, sizeof *s);
        if (s) {
            cache_slot *old = c->slots;
            size_t old_n = c->mask + 1;
            c->slots = s;
            c->mask = slots - 1;
            for (size_t i = 0; i < old_n; i++) {
                if (old[i].key_len == 0) continue;
                size_t j = (size_t)old[i].hash & c->mask;
                while (s[j].key_len != 0) j = (j + 1) & c->mask;
                s[j] = old[i];
            }
            free(old);
        } else {
            cache_clear(c);
        }
    }
    if (!arenas_reserve(c, c->keys_len + n, c->ids_len + k)) {
        cache_clear(c);
        if (!arenas_reserve(c, n, k)) return;
    }
    size_t i = (size_t)h & c->mask;
    while (c->slots[i].key_len != 0) i = (i + 1) & c->mask;
    memcpy(c->keys + c->keys_len, p, n);
    memcpy(c->ids + c->ids_len, ids, k * sizeof *ids);
    c->slots[i] = (cache_slot){.hash = h, .key_off = (uint32_t)c->keys_len, .ids_off = (uint32_t)c->ids_len,
                               .key_len = (uint16_t)n, .n_ids = (uint16_t)k};
    c->keys_len += n;
    c->ids_len += k;
    c->used++;
}

static int scratch_reserve(gd_bpe_cache *c, size_t n) {
    if (n <= c->scratch_cap) return 1;
    if (n > (size_t)INT32_MAX / 4) return 0;
    size_t cap = c->scratch_cap ? c->scratch_cap : 256;
    while (cap < n) cap *= 2;
    uint32_t *sym = realloc(c->sym, cap * sizeof *sym);
    if (sym) c->sym = sym;
    int32_t *next = realloc(c->next, cap * sizeof *next);
    if (next) c->next = next;
    int32_t *prev = realloc(c->prev, cap * sizeof *prev);
    if (prev) c->prev = prev;
    uint64_t *heap = realloc(c->heap, 3 * cap * sizeof *heap);
    if (heap) c->heap = heap;
    if (!sym || !next || !prev || !heap) return 0;
    c->scratch_cap = cap;
    return 1;
}

/* ---------- merging one piece ---------- */

static inline void heap_push(uint64_t *h, size_t *n, uint64_t v) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (h[parent] <= v) break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = v;
}

static inline uint64_t heap_pop(uint64_t *h, size_t *n) {
    uint64_t top = h[0], v = h[--(*n)];
    size_t i = 0, len = *n;
    for (;;) {
        size_t l = 2 * i + 1;
        if (l >= len) break;
        size_t r = l + 1, child = (r < len && h[r] < h[l]) ? r : l;
        if (h[child] >= v) break;
        h[i] = h[child];
        i = child;
    }
    if (len) h[i] = v;
    return top;
}

/* Merges the bytes p[0 .. n) (n >= 1, scratch reserved for n) and writes the ids to out; returns their count. */
static size_t merge_piece(const gd_bpe_model *m, gd_bpe_cache *c, const uint8_t *p, size_t n, uint32_t *out) {
    uint32_t *sym = c->sym;
    int32_t *next = c->next, *prev = c->prev;
    uint64_t *heap = c->heap;
    size_t hn = 0;
    for (size_t i = 0; i < n; i++) {
        sym[i] = m->byte_ids[p[i]];
        next[i] = i + 1 < n ? (int32_t)(i + 1) : -1;
        prev[i] = (int32_t)i - 1;
    }
    uint32_t rank, result;
    for (size_t i = 0; i + 1 < n; i++)
        if (merge_find(m, sym[i], sym[i + 1], &rank, &result)) heap_push(heap, &hn, (uint64_t)rank << 32 | i);
    while (hn) {
        uint64_t top = heap_pop(heap, &hn);
        uint32_t want = (uint32_t)(top >> 32);
        int32_t pos = (int32_t)(uint32_t)top;
        if (sym[pos] == NO_ID) continue;
        int32_t right = next[pos];
        if (right < 0) continue;
        if (!merge_find(m, sym[pos], sym[right], &rank, &result) || rank != want) continue;  /* stale */
        sym[pos] = result;
        sym[right] = NO_ID;
        next[pos] = next[right];
        if (next[right] >= 0) prev[next[right]] = pos;
        if (prev[pos] >= 0 && merge_find(m, sym[prev[pos]], sym[pos], &rank, &result))
            heap_push(heap, &hn, (uint64_t)rank << 32 | (uint32_t)prev[pos]);
        if (next[pos] >= 0 && merge_find(m, sym[pos], sym[next[pos]], &rank, &result))
            heap_push(heap, &hn, (uint64_t)rank << 32 | (uint32_t)pos);
    }
    size_t k = 0;
    for (int32_t i = 0; i >= 0; i = next[i]) out[k++] = sym[i];
    return k;
}

/* ---------- pre-tokenization ---------- */

int gd_bpe_char_class(uint32_t cp) {
    if (cp >= 0x110000) return GD_BPE_CLASS_OTHER;
    unsigned block = gd_bpe_class_index[cp / GD_BPE_CLASS_BLOCK];
    unsigned byte = gd_bpe_class_bits[block * (GD_BPE_CLASS_BLOCK / 4) + (cp % GD_BPE_CLASS_BLOCK) / 4];
    return (int)((byte >> (2 * (cp % 4))) & 3);
}

/* Width in bytes of the UTF-8 character at s[i] (i < n) and its class; 0 when it is not valid UTF-8. */
static inline unsigned char_at(const uint8_t *s, size_t n, size_t i, int *cls) {
    uint8_t b0 = s[i];
    if (b0 < 0x80) {
        *cls = gd_bpe_char_class(b0);
        return 1;
    }
    size_t left = n - i;
    uint32_t cp;
    unsigned w;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        if (left < 2 || (s[i + 1] & 0xC0) != 0x80) return 0;
        cp = (uint32_t)(b0 & 0x1F) << 6 | (s[i + 1] & 0x3F);
        w = 2;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        if (left < 3) return 0;
        uint8_t b1 = s[i + 1], b2 = s[i + 2];
        uint8_t lo = b0 == 0xE0 ? 0xA0 : 0x80, hi = b0 == 0xED ? 0x9F : 0xBF;
        if (b1 < lo || b1 > hi || (b2 & 0xC0) != 0x80) return 0;
        cp = (uint32_t)(b0 & 0x0F) << 12 | (uint32_t)(b1 & 0x3F) << 6 | (b2 & 0x3F);
        w = 3;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        if (left < 4) return 0;
        uint8_t b1 = s[i + 1], b2 = s[i + 2], b3 = s[i + 3];
        uint8_t lo = b0 == 0xF0 ? 0x90 : 0x80, hi = b0 == 0xF4 ? 0x8F : 0xBF;
        if (b1 < lo || b1 > hi || (b2 & 0xC0) != 0x80 || (b3 & 0xC0) != 0x80) return 0;
        cp = (uint32_t)(b0 & 0x07) << 18 | (uint32_t)(b1 & 0x3F) << 12 | (uint32_t)(b2 & 0x3F) << 6 | (b3 & 0x3F);
        w = 4;
    } else {
        return 0;
    }
    *cls = gd_bpe_char_class(cp);
    return w;
}

/* End of the run of class-cls characters that continues at byte e (the first byte of another class, or n), *last
 * (when last is not NULL) set to the start of its last character when it has any; 0 with *bad set on invalid
 * UTF-8. Inlined: it is the pre-tokenizer's inner loop. */
static inline size_t run_end(const uint8_t *s, size_t n, size_t e, int cls, size_t *last, size_t *bad) {
    while (e < n) {
        int c2;
        unsigned w2 = char_at(s, n, e, &c2);
        if (!w2) {
            *bad = e;
            return 0;
        }
        if (c2 != cls) break;
        if (last) *last = e;
        e += w2;
    }
    return e;
}

/* End of the GPT-2 regex match starting at s[i] (i < n), or 0 with *bad set on invalid UTF-8. */
static size_t piece_end(const uint8_t *s, size_t n, size_t i, size_t *bad) {
    uint8_t c0 = s[i];
    if (c0 == '\'' && i + 1 < n) {  /* 's 't 're 've 'm 'll 'd, case-sensitive, tried first */
        uint8_t c1 = s[i + 1];
        if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return i + 2;
        if (i + 2 < n && ((c1 == 'r' && s[i + 2] == 'e') || (c1 == 'v' && s[i + 2] == 'e') ||
                          (c1 == 'l' && s[i + 2] == 'l')))
            return i + 3;
    }
    size_t k = (c0 == ' ' && i + 1 < n) ? i + 1 : i;  /* the optional leading space of ` ?X+` */
    int cls;
    unsigned w = char_at(s, n, k, &cls);
    if (!w) {
        *bad = k;
        return 0;
    }
    if (cls != GD_BPE_CLASS_SPACE)  /* ` ?\p{L}+`, ` ?\p{N}+` or ` ?[^\s\p{L}\p{N}]+` */
        return run_end(s, n, k + w, cls, NULL, bad);
    /* Whitespace from i (s[i] is \s here: either k == i, or s[i] is the space before another \s).
     * `\s+(?!\S)` takes the run up to the end of the text, or all of it but its last character when
     * a non-space follows; a run of one character before a non-space is taken by `\s+`. */
    if (k != i) w = 1;  /* s[i] is ' ' */
    size_t last = i;
    size_t e = run_end(s, n, i + w, GD_BPE_CLASS_SPACE, &last, bad);
    if (e && e < n && last > i) e = last;
    return e;
}

/* ---------- encoding ---------- */

static gd_status encode_text(const gd_bpe_model *m, gd_bpe_cache *c, const uint8_t *s, size_t n, uint32_t *ids,
                             size_t cap, size_t *n_ids, size_t text_ix, gd_error *err) {
    size_t k = 0, i = 0;
    while (i < n) {
        size_t bad = 0;
        size_t e = piece_end(s, n, i, &bad);
        if (!e) {
            return gd_fail(err, GD_E_INVALID, "text %zu: invalid UTF-8 at byte %zu (0x%02x)", text_ix, bad,
                           (unsigned)s[bad]);
        }
        const uint8_t *p = s + i;
        size_t len = e - i;
        i = e;
        if (len == 1) {
            if (k >= cap) goto full;
            ids[k++] = m->byte_ids[p[0]];
            continue;
        }
        if (m->flags & GD_BPE_IGNORE_MERGES) {
            const word_slot *w = word_find(m, p, len);
            if (w) {
                if (k >= cap) goto full;
                ids[k++] = w->id;
                continue;
            }
        }
        uint64_t h = 0;
        if (len <= MAX_CACHED_PIECE) {
            h = hash_bytes(p, len);
            const cache_slot *hit = cache_find(c, p, len, h);
            if (hit) {
                if (hit->n_ids > cap - k) goto full;
                memcpy(ids + k, c->ids + hit->ids_off, hit->n_ids * sizeof *ids);
                k += hit->n_ids;
                continue;
            }
        }
        if (len > cap - k) {
            /* the piece's ids fit in len slots at most; merge into scratch when the caller's room is tight */
            if (!scratch_reserve(c, len)) return gd_fail(err, GD_E_NOMEM, "out of memory");
            size_t got = merge_piece(m, c, p, len, c->sym);  /* in place: out index never passes the read */
            if (got > cap - k) goto full;
            memcpy(ids + k, c->sym, got * sizeof *ids);
            k += got;
        } else {
            if (!scratch_reserve(c, len)) return gd_fail(err, GD_E_NOMEM, "out of memory");
            size_t got = merge_piece(m, c, p, len, ids + k);
            if (len <= MAX_CACHED_PIECE) cache_put(c, p, len, h, ids + k, got);
            k += got;
        }
    }
    *n_ids = k;
    return GD_OK;
full:
    return gd_fail(err, GD_E_INVALID, "text %zu: ids do not fit in cap = %zu", text_ix, cap);
}

static gd_status check_cache(const gd_bpe_model *model, gd_bpe_cache **cache, gd_bpe_cache **own, gd_error *err) {
    *own = NULL;
    if (!model) return gd_fail(err, GD_E_INVALID, "model is NULL");
    if (*cache) {
        if ((*cache)->model != model) return gd_fail(err, GD_E_INVALID, "the cache was made for another model");
        return GD_OK;
    }
    gd_status st = gd_bpe_cache_new(model, (size_t)1 << 20, own, err);
    if (st != GD_OK) return st;
    *cache = *own;
    return GD_OK;
}

gd_status gd_bpe_encode(const gd_bpe_model *model, gd_bpe_cache *cache, const char *text, size_t len,
                        uint32_t *ids, size_t cap, size_t *n_ids, gd_error *err) {
    if (!n_ids) return gd_fail(err, GD_E_INVALID, "n_ids is NULL");
    *n_ids = 0;
    if ((!text && len) || (!ids && cap)) return gd_fail(err, GD_E_INVALID, "text or ids is NULL");
    gd_bpe_cache *own;
    gd_status st = check_cache(model, &cache, &own, err);
    if (st != GD_OK) return st;
    st = encode_text(model, cache, (const uint8_t *)text, len, ids, cap, n_ids, 0, err);
    if (st != GD_OK) *n_ids = 0;
    gd_bpe_cache_free(own);
    return st;
}

gd_status gd_bpe_encode_batch(const gd_bpe_model *model, gd_bpe_cache *cache, const char *texts,
                              const size_t *text_offsets, size_t n_texts, uint32_t *ids, size_t cap,
                              size_t *id_offsets, gd_error *err) {
    if (!text_offsets || !id_offsets) return gd_fail(err, GD_E_INVALID, "text_offsets or id_offsets is NULL");
    id_offsets[0] = 0;
    for (size_t t = 0; t < n_texts; t++) {
        if (text_offsets[t + 1] < text_offsets[t])
            return gd_fail(err, GD_E_INVALID, "text_offsets decrease at text %zu", t);
        id_offsets[t + 1] = 0;
    }
    if ((!texts && text_offsets[n_texts] > 0) || (!ids && cap))
        return gd_fail(err, GD_E_INVALID, "texts or ids is NULL");
    gd_bpe_cache *own;
    gd_status st = check_cache(model, &cache, &own, err);
    if (st != GD_OK) return st;
    size_t k = 0;
    for (size_t t = 0; t < n_texts && st == GD_OK; t++) {
        size_t got = 0;
        st = encode_text(model, cache, (const uint8_t *)texts + text_offsets[t], text_offsets[t + 1] - text_offsets[t],
                         ids + k, cap - k, &got, t, err);
        k += got;
        id_offsets[t + 1] = k;
    }
    gd_bpe_cache_free(own);
    return st;
}
