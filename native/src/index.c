/* Opening an index: map every shard's files read-only and check their sizes against each other. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

gd_status gd_fail(gd_error *err, gd_status code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

int gd_past_deadline(uint64_t deadline_ns) {
    if (deadline_ns == 0) return 0;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec >= deadline_ns;
}

gd_status gd_deadline_error(gd_error *err) {
    return gd_fail(err, GD_E_DEADLINE, "deadline exceeded before the query finished");
}

void gd_free(void *p) { free(p); }

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

gd_status gd_map_file(const char *path, gd_map *m, unsigned flags, int *present, gd_error *err) {
    m->data = NULL;
    m->size = 0;
    if (present) *present = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT && (flags & GD_MAP_OPTIONAL)) return GD_OK;
        if (errno == ENOENT && (flags & GD_MAP_INDEX))
            return gd_fail(err, GD_E_FORMAT, "%s: missing index file", path);
        return gd_fail(err, GD_E_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return gd_fail(err, GD_E_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return gd_fail(err, GD_E_FORMAT, "%s: not a regular file", path);
    }
    if (present) *present = 1;
    m->size = (uint64_t)st.st_size;
    if (m->size == 0) { /* mmap of 0 bytes fails; an empty file is checked by the caller */
        close(fd);
        return GD_OK;
    }
    void *p = mmap(NULL, (size_t)m->size, PROT_READ, MAP_SHARED, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED) return gd_fail(err, GD_E_IO, "%s: cannot map: %s", path, strerror(e));
    /* suffix-array access is random: readahead only pollutes the page cache */
    if (flags & GD_MAP_INDEX) madvise(p, (size_t)m->size, MADV_RANDOM);
    m->data = p;
    return GD_OK;
}

void gd_unmap_file(gd_map *m) {
    if (m->data) munmap((void *)m->data, (size_t)m->size);
    m->data = NULL;
    m->size = 0;
}

static void shard_release(gd_shard *s) {
    gd_sample_release(s);
    gd_unmap_file(&s->ds);
    gd_unmap_file(&s->sa);
    gd_unmap_file(&s->od);
    gd_unmap_file(&s->mt);
    gd_unmap_file(&s->om);
    free(s->dir);
    s->dir = NULL;
}

static uint64_t load_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static gd_status shard_open(const gd_engine *e, gd_shard *s, const char *dir, unsigned long n, gd_error *err) {
    unsigned width = e->width;
    char path[4096];
    gd_status st;
    memset(s, 0, sizeof *s);
    s->number = n;
    s->dir = strdup(dir);
    if (!s->dir) return gd_fail(err, GD_E_NOMEM, "out of memory");
#define PATH(name) (snprintf(path, sizeof path, "%s/" name ".%lu", dir, n) >= (int)sizeof path \
                        ? gd_fail(err, GD_E_INVALID, "index path too long: %s", dir) : GD_OK)
    if ((st = PATH("tokenized")) || (st = gd_map_file(path, &s->ds, GD_MAP_INDEX, NULL, err))) return st;
    if (s->ds.size == 0 || s->ds.size % width)
        return gd_fail(err, GD_E_FORMAT, "%s: size %llu is not a positive multiple of the token width %u",
                       path, (unsigned long long)s->ds.size, width);
    s->tok_cnt = s->ds.size / width;
    if ((st = PATH("table")) || (st = gd_map_file(path, &s->sa, GD_MAP_INDEX, NULL, err))) return st;
    if (s->sa.size % s->tok_cnt || s->sa.size / s->tok_cnt == 0 || s->sa.size / s->tok_cnt > 8)
        return gd_fail(err, GD_E_FORMAT,
                       "%s: size %llu does not hold one 1-8 byte entry per token (%llu tokens): truncated or "
                       "not built for this tokenized file / token width",
                       path, (unsigned long long)s->sa.size, (unsigned long long)s->tok_cnt);
    s->ptr_size = (unsigned)(s->sa.size / s->tok_cnt);
    if (s->ptr_size < 8 && (s->ds.size - 1) >> (8 * s->ptr_size))
        return gd_fail(err, GD_E_FORMAT, "%s: %u-byte entries cannot address %llu bytes of tokens", path,
                       s->ptr_size, (unsigned long long)s->ds.size);
    if ((st = PATH("offset")) || (st = gd_map_file(path, &s->od, GD_MAP_INDEX, NULL, err))) return st;
    if (s->od.size == 0 || s->od.size % 8)
        return gd_fail(err, GD_E_FORMAT, "%s: size %llu is not a positive multiple of 8", path,
                       (unsigned long long)s->od.size);
    s->doc_cnt = s->od.size / 8;
    if (load_u64(s->od.data) != 0)
        return gd_fail(err, GD_E_FORMAT, "%s: the first document does not start at byte 0", path);
    uint64_t last = load_u64(s->od.data + s->od.size - 8);
    if (last >= s->ds.size || last % width)
        return gd_fail(err, GD_E_FORMAT, "%s: last document offset %llu is outside tokenized.%lu", path,
                       (unsigned long long)last, n);
    int has_mt = 0, has_om = 0;
    const unsigned optional = GD_MAP_INDEX | GD_MAP_OPTIONAL;
    if ((st = PATH("metadata")) || (st = gd_map_file(path, &s->mt, optional, &has_mt, err))) return st;
    if ((st = PATH("metaoff")) || (st = gd_map_file(path, &s->om, optional, &has_om, err))) return st;
    if (has_mt != has_om)
        return gd_fail(err, GD_E_FORMAT, "%s: metadata.%lu and metaoff.%lu must both be present or both absent",
                       dir, n, n);
    if (has_om && s->om.size != s->doc_cnt * 8)
        return gd_fail(err, GD_E_FORMAT, "%s: size %llu, expected 8 bytes per document (%llu documents)", path,
                       (unsigned long long)s->om.size, (unsigned long long)s->doc_cnt);
    if (has_om && (load_u64(s->om.data) != 0 || load_u64(s->om.data + s->om.size - 8) >= s->mt.size))
        return gd_fail(err, GD_E_FORMAT, "%s/metadata.%lu: size %llu does not cover the offsets in metaoff.%lu "
                       "(truncated?)", dir, n, (unsigned long long)s->mt.size, n);
#undef PATH
    return gd_sample_build(e, s, err);
}

gd_status gd_engine_open(const char *const *dirs, size_t n_dirs, unsigned token_width, uint32_t eos_token_id,
                         gd_engine **out, gd_error *err) {
    *out = NULL;
    if (token_width != 1 && token_width != 2 && token_width != 4)
        return gd_fail(err, GD_E_INVALID, "token width must be 1, 2 or 4 bytes, not %u", token_width);
    if (n_dirs == 0) return gd_fail(err, GD_E_INVALID, "no index directory given");
    gd_engine *e = calloc(1, sizeof *e);
    if (!e) return gd_fail(err, GD_E_NOMEM, "out of memory");
    e->width = token_width;
    e->eos = eos_token_id;
    e->max_token = token_width == 4 ? UINT32_MAX : (UINT64_C(1) << (8 * token_width)) - 1;
    gd_status st = GD_OK;
    uint64_t doc_base = 0;
    for (size_t d = 0; d < n_dirs && st == GD_OK; d++) {
        struct stat dst;
        if (stat(dirs[d], &dst) != 0 || !S_ISDIR(dst.st_mode)) {
            st = gd_fail(err, GD_E_FORMAT, "%s: not a directory", dirs[d]);
            break;
        }
        char probe[4096];
        unsigned long n = 0;
        for (;; n++) {
            snprintf(probe, sizeof probe, "%s/tokenized.%lu", dirs[d], n);
            if (!file_exists(probe)) break;
            gd_shard *grown = realloc(e->shards, (e->n_shards + 1) * sizeof *grown);
            if (!grown) {
                st = gd_fail(err, GD_E_NOMEM, "out of memory");
                break;
            }
            e->shards = grown;
            gd_shard *s = &e->shards[e->n_shards++];
            st = shard_open(e, s, dirs[d], n, err);
            if (st) break;
            s->doc_base = doc_base;
            doc_base += s->doc_cnt;
        }
        if (st == GD_OK && n == 0)
            st = gd_fail(err, GD_E_FORMAT, "%s: not an index (no tokenized.0)", dirs[d]);
    }
    if (st != GD_OK) {
        gd_engine_close(e);
        return st;
    }
    *out = e;
    return GD_OK;
}

void gd_engine_close(gd_engine *e) {
    if (!e) return;
    for (size_t i = 0; i < e->n_shards; i++) shard_release(&e->shards[i]);
    free(e->shards);
    free(e);
}

size_t gd_num_shards(const gd_engine *e) { return e->n_shards; }
unsigned gd_token_width(const gd_engine *e) { return e->width; }

gd_status gd_shard_info_get(const gd_engine *e, size_t shard, gd_shard_info *out, gd_error *err) {
    if (shard >= e->n_shards)
        return gd_fail(err, GD_E_INVALID, "shard %zu out of range [0, %zu)", shard, e->n_shards);
    const gd_shard *s = &e->shards[shard];
    out->tok_cnt = s->tok_cnt;
    out->ds_size = s->ds.size;
    out->doc_cnt = s->doc_cnt;
    out->ptr_size = s->ptr_size;
    out->has_metadata = s->mt.size > 0 || s->om.size > 0;
    return GD_OK;
}

gd_status gd_check_ids(const gd_engine *e, const uint32_t *ids, size_t n, const char *what, gd_error *err) {
    for (size_t i = 0; i < n; i++)
        if (ids[i] > e->max_token)
            return gd_fail(err, GD_E_INVALID, "%s[%zu] = %u is out of range [0, %llu] for %u-byte tokens", what, i,
                           ids[i], (unsigned long long)e->max_token, e->width);
    return GD_OK;
}
