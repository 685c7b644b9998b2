/*
 * gramdex: n-gram queries over memory-mapped suffix-array indexes (infini-gram "v4" format).
 *
 * Conventions (as in zstd/sqlite):
 *  - every function returns a gd_status; results go to caller-provided out-parameters;
 *  - when a call fails and `err` is non-NULL, err->message says what went wrong (file names,
 *    offending values); out-parameters are left in a state that is safe to free;
 *  - arrays the library allocates for results are released with gd_free();
 *  - an engine is immutable after gd_engine_open(): any number of threads may query it at once;
 *  - long calls take `deadline_ns`, an absolute CLOCK_MONOTONIC time in nanoseconds (0 = none);
 *    past it they stop their work and return GD_E_DEADLINE.
 * Nothing here knows about Python or HTTP.
 */
#ifndef GRAMDEX_H
#define GRAMDEX_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum gd_status {
    GD_OK = 0,
    GD_E_NOMEM = 1,     /* allocation failed */
    GD_E_IO = 2,        /* a file could not be opened, read or mapped */
    GD_E_FORMAT = 3,    /* the index files are missing, truncated, inconsistent or corrupt */
    GD_E_INVALID = 4,   /* an argument is out of range (token id, shard, rank, parameter) */
    GD_E_DEADLINE = 5   /* the deadline passed before the work finished */
} gd_status;

typedef struct gd_error {
    gd_status code;
    char message[512];
} gd_error;

typedef struct gd_engine gd_engine;

typedef struct gd_shard_info {
    uint64_t tok_cnt;      /* tokens in tokenized.N, separators included */
    uint64_t ds_size;      /* bytes of tokenized.N */
    uint64_t doc_cnt;      /* documents (entries of offset.N) */
    uint32_t ptr_size;     /* bytes per suffix-array entry */
    int has_metadata;      /* metadata.N and metaoff.N present */
} gd_shard_info;

typedef struct gd_range {  /* suffix-array ranks [lo, hi) of one shard */
    uint64_t lo;
    uint64_t hi;
} gd_range;

typedef struct gd_token_count {
    uint32_t token;
    uint64_t count;
} gd_token_count;

typedef struct gd_ntd_result {
    uint64_t prompt_cnt;
    int approx;
    gd_token_count *entries;   /* sorted by token id; release with gd_free */
    size_t n_entries;
    uint64_t suffix_len;       /* for the infgram variant; 0 otherwise */
} gd_ntd_result;

typedef struct gd_prob_result {
    uint64_t prompt_cnt;
    uint64_t cont_cnt;
    double prob;               /* -1 when prompt_cnt == 0 */
    uint64_t suffix_len;       /* for the infgram variant; 0 otherwise */
} gd_prob_result;

typedef struct gd_cnf_result {
    uint64_t cnt;
    int approx;
    uint64_t *ptrs;            /* match byte offsets, shard after shard; release with gd_free */
    uint64_t *ptrs_per_shard;  /* num_shards counts into ptrs; release with gd_free */
} gd_cnf_result;

/* A CNF query: clauses of terms, terms of tokens, flattened.
 * term t spans tokens[term_start[t] .. term_start[t] + term_len[t]);
 * clause c holds terms [clause_start[c] .. clause_start[c] + clause_len[c]). */
typedef struct gd_cnf {
    const uint32_t *tokens;
    const size_t *term_start;
    const size_t *term_len;
    size_t n_terms;
    const size_t *clause_start;
    const size_t *clause_len;
    size_t n_clauses;
} gd_cnf;

typedef struct gd_doc {
    uint64_t shard;
    uint64_t doc_ix;           /* global: earlier shards' documents counted first */
    uint64_t doc_len;          /* tokens, separator excluded */
    uint64_t disp_start;       /* token offset of the window inside the document */
    uint64_t disp_len;
    uint64_t needle_offset;    /* token offset of the queried position inside the window */
    uint32_t *token_ids;       /* disp_len tokens; release with gd_free */
    char *metadata;            /* metadata_len bytes (not NUL-terminated); release with gd_free */
    size_t metadata_len;
} gd_doc;

typedef struct gd_location {
    uint64_t shard;
    uint64_t ptr;              /* byte offset of the match in tokenized.N */
} gd_location;

typedef struct gd_span {       /* ids[start:end] occurs verbatim in the corpus */
    uint64_t start;
    uint64_t end;
    uint64_t count;
    size_t first_location;     /* index into gd_attribution.locations */
    size_t n_locations;
} gd_span;

typedef struct gd_attribution {
    gd_span *spans;            /* release with gd_free */
    size_t n_spans;
    gd_location *locations;    /* release with gd_free */
    size_t n_locations;
} gd_attribution;

typedef struct gd_token_score {  /* ∞-gram score of ids[i] given ids[:i] */
    uint64_t suffix_len;
    uint64_t prompt_cnt;
    uint64_t cont_cnt;
    double prob;
} gd_token_score;

/* --- engine lifetime --- */

/* Maps every shard of the given index directories (tokenized.N, table.N, offset.N, optional
 * metadata.N + metaoff.N, N = 0, 1, ... in each directory, directories in order) read-only and
 * checks their sizes against each other. token_width is 1, 2 or 4 bytes. */
gd_status gd_engine_open(const char *const *dirs, size_t n_dirs, unsigned token_width,
                         uint32_t eos_token_id, gd_engine **out, gd_error *err);
void gd_engine_close(gd_engine *engine);

size_t gd_num_shards(const gd_engine *engine);
unsigned gd_token_width(const gd_engine *engine);
gd_status gd_shard_info_get(const gd_engine *engine, size_t shard, gd_shard_info *out, gd_error *err);

void gd_free(void *p);

/* --- counting --- */

/* ranks receives gd_num_shards() ranges; *cnt their total. n == 0 matches every position. */
gd_status gd_find(const gd_engine *engine, const uint32_t *ids, size_t n, gd_range *ranges,
                  uint64_t *cnt, gd_error *err);
/* The count of ids, or minus a gd_status on failure (call gd_find for the message). */
int64_t gd_count(const gd_engine *engine, const uint32_t *ids, size_t n);
/* counts[i] = count of query i, which is ids[starts[i] .. starts[i] + lens[i]). */
gd_status gd_count_batch(const gd_engine *engine, const uint32_t *ids, const size_t *starts,
                         const size_t *lens, size_t n_queries, uint64_t *counts,
                         uint64_t deadline_ns, gd_error *err);
gd_status gd_prob(const gd_engine *engine, const uint32_t *prompt, size_t n, uint32_t cont,
                  gd_prob_result *out, gd_error *err);
gd_status gd_ntd(const gd_engine *engine, const uint32_t *prompt, size_t n, uint64_t max_support,
                 gd_ntd_result *out, uint64_t deadline_ns, gd_error *err);

/* ntd sampling one rank per `unit` ranks (a power of two; 1 = exact) instead of deriving the unit from
 * max_support and the local count: a router that knows the prompt's count over every machine passes the
 * unit a single index would use, so the parts' distributions add up to that index's. */
gd_status gd_ntd_with_unit(const gd_engine *engine, const uint32_t *prompt, size_t n, uint64_t unit,
                           gd_ntd_result *out, uint64_t deadline_ns, gd_error *err);

/* --- ∞-gram: back off to the longest suffix of the prompt that occurs --- */
gd_status gd_infgram_prob(const gd_engine *engine, const uint32_t *prompt, size_t n, uint32_t cont,
                          gd_prob_result *out, gd_error *err);
gd_status gd_infgram_ntd(const gd_engine *engine, const uint32_t *prompt, size_t n,
                         uint64_t max_support, gd_ntd_result *out, uint64_t deadline_ns,
                         gd_error *err);
/* Length of the longest suffix of prompt that occurs in this engine's shards (0 if none does). */
gd_status gd_longest_suffix_len(const gd_engine *engine, const uint32_t *prompt, size_t n, uint64_t *out,
                                gd_error *err);
/* scores[i] for every i in [0, n): one left-to-right pass reusing the matched suffix's range. */
gd_status gd_score(const gd_engine *engine, const uint32_t *ids, size_t n, gd_token_score *scores,
                   uint64_t deadline_ns, gd_error *err);
/* Spans of ids occurring verbatim (length >= min_len), each with its count and up to
 * max_locations locations: for every start its longest occurring prefix, keeping only the maximal
 * ones (not inside the previous span) when maximal_only is non-zero. */
gd_status gd_attribute(const gd_engine *engine, const uint32_t *ids, size_t n, size_t min_len,
                       size_t max_locations, int maximal_only, gd_attribution *out,
                       uint64_t deadline_ns, gd_error *err);

/* --- CNF: AND of OR-clauses, matches within max_diff_tokens of each other --- */
gd_status gd_find_cnf(const gd_engine *engine, const gd_cnf *cnf, uint64_t max_clause_freq,
                      uint64_t max_diff_tokens, gd_cnf_result *out, uint64_t deadline_ns,
                      gd_error *err);

/* gd_find_cnf for one part of an index of shards_total shards (>= this engine's): the clause budget is
 * split over shards_total, a clause absent here does not end the query, and clause_totals (n_clauses
 * entries) receives each clause's count here, so that the caller can apply the whole index's rules. */
gd_status gd_find_cnf_part(const gd_engine *engine, const gd_cnf *cnf, uint64_t max_clause_freq,
                           uint64_t max_diff_tokens, uint64_t shards_total, uint64_t *clause_totals,
                           gd_cnf_result *out, uint64_t deadline_ns, gd_error *err);

/* --- documents --- */
gd_status gd_rank_to_ptr(const gd_engine *engine, size_t shard, uint64_t rank, uint64_t *ptr,
                         gd_error *err);
/* Window of up to max_disp_len tokens around ptr (half before, half after), clipped to the doc. */
gd_status gd_doc_by_ptr(const gd_engine *engine, size_t shard, uint64_t ptr, uint64_t max_disp_len,
                        gd_doc *out, gd_error *err);
/* Window of `before` tokens before ptr and `after` tokens from ptr on, clipped to the document. */
gd_status gd_doc_window(const gd_engine *engine, size_t shard, uint64_t ptr, uint64_t before, uint64_t after,
                        gd_doc *out, gd_error *err);
/* The first max_disp_len tokens of global document doc_ix. */
gd_status gd_doc_by_ix(const gd_engine *engine, uint64_t doc_ix, uint64_t max_disp_len,
                       gd_doc *out, gd_error *err);
void gd_doc_release(gd_doc *doc);

/* --- jobs and a native worker pool: queries run on threads that never need the caller's lock --- */

/* The calls a job can carry; each runs the function of the same name. */
typedef enum gd_op {
    GD_OP_FIND = 1,            /* ids, ranges (one per shard) -> cnt */
    GD_OP_PROB = 2,            /* ids, cont -> prob */
    GD_OP_INFGRAM_PROB = 3,    /* ids, cont -> prob */
    GD_OP_NTD = 4,             /* ids, param = max_support -> ntd */
    GD_OP_INFGRAM_NTD = 5,     /* ids, param = max_support -> ntd */
    GD_OP_NTD_WITH_UNIT = 6,   /* ids, param = unit -> ntd */
    GD_OP_LONGEST_SUFFIX = 7   /* ids -> cnt (the suffix length) */
} gd_op;

/* One query as data: the caller fills the inputs, gd_job_run (or a pool thread) fills the outputs.
 * Every buffer it points to must stay valid until the job is done. */
typedef struct gd_job {
    gd_op op;
    const gd_engine *engine;
    const uint32_t *ids;
    size_t n_ids;
    uint32_t cont;
    uint64_t param;
    uint64_t deadline_ns;      /* 0 = none; a queued job whose deadline has passed is not started */
    gd_range *ranges;          /* GD_OP_FIND: the engine's gd_num_shards() entries */
    uint64_t tag;              /* the caller's name for the job, untouched */
    gd_status status;
    gd_error err;
    uint64_t cnt;
    gd_prob_result prob;
    gd_ntd_result ntd;         /* entries released by the caller with gd_free() */
    uint64_t run_ns;           /* how long the call itself ran (queueing excluded) */
    struct gd_job *next_;      /* the pool's link */
} gd_job;

/* Run job on the calling thread; returns (and stores in job->status) the call's status. */
gd_status gd_job_run(gd_job *job);

typedef struct gd_pool gd_pool;

/* `threads` worker threads (1..256). After a job finishes, when the list of finished jobs was empty the
 * pool writes the 8-byte integer 1 to notify_fd (an eventfd or a pipe), so an event loop can wait on it.
 * nice (0..19) lowers the threads' scheduling priority, so a pool of long queries yields the CPU to other work
 * (Linux, where the nice value belongs to each thread; ignored elsewhere). */
gd_status gd_pool_open(unsigned threads, int notify_fd, int nice, gd_pool **out, gd_error *err);
/* Queue job (never blocks; bounding the queue is the caller's policy). GD_E_INVALID once closing. */
gd_status gd_pool_submit(gd_pool *pool, gd_job *job, gd_error *err);
/* Move up to cap finished jobs to out; returns how many. */
size_t gd_pool_take_done(gd_pool *pool, gd_job **out, size_t cap);
/* Run what is queued, stop the threads and free the pool; finished jobs not taken are forgotten. */
void gd_pool_close(gd_pool *pool);

/* --- index building (sa_build.c) --- */

/* Phases reported through gd_sa_progress while gd_sa_build runs. */
enum {
    GD_SA_PHASE_IDLE = 0,
    GD_SA_PHASE_SORT = 1,   /* units: parts sorted (1 when the shard is sorted in memory) */
    GD_SA_PHASE_MERGE = 2,  /* units: suffix-array entries merged from the parts */
    GD_SA_PHASE_WRITE = 3,  /* units: entries written (in-memory path) */
    GD_SA_PHASE_DONE = 4
};

/* Written by the builder (relaxed atomic stores) so another thread can poll it for a progress bar. */
typedef struct gd_sa_progress {
    uint64_t done;
    uint64_t total;
    int phase;
} gd_sa_progress;

typedef struct gd_sa_options {
    unsigned token_width;       /* 1, 2 or 4 bytes per token */
    uint64_t memory_budget;     /* bytes for sorting, all threads together; 0 = no limit */
    unsigned threads;           /* parts sorted at once (0 or 1 = one) */
    const char *tmp_dir;        /* directory for part files; NULL = "<table_path>.parts" */
    uint64_t max_part_tokens;   /* 0 = derived from the budget; tests set it to force parts */
} gd_sa_options;

typedef struct gd_sa_plan_info {
    uint64_t tok_cnt;           /* suffixes (tokens) in the shard */
    unsigned ptr_size;          /* bytes per table entry */
    uint64_t part_tokens;       /* suffixes sorted per part */
    uint64_t overlap_tokens;    /* context each part's slice extends past the part */
    uint64_t n_parts;           /* 1 = sorted in memory, no merge */
    uint64_t peak_bytes;        /* estimated sorting memory */
} gd_sa_plan_info;

/* ceil(log2(ds_size) / 8), at least 1: bytes per table entry for a token file of ds_size bytes. */
unsigned gd_sa_ptr_size(uint64_t ds_size);
/* How gd_sa_build would split a token file of ds_size bytes under opts. */
gd_status gd_sa_plan(uint64_t ds_size, const gd_sa_options *opts, gd_sa_plan_info *out,
                     gd_error *err);
/* Writes table_path (the suffix array of tokenized_path: byte offsets, ptr_size bytes each, LE) in
 * infini-gram's order: raw byte order of the suffixes, a proper prefix first. Suffixes agreeing on
 * more than 100,000 bytes (where infini-gram's order is arbitrary) keep the exact order of the
 * complete suffixes. On failure no table_path is left behind. progress may be NULL. */
gd_status gd_sa_build(const char *tokenized_path, const char *table_path, const gd_sa_options *opts,
                      gd_sa_progress *progress, gd_error *err);
/* Checks table_path against tokenized_path: size, every entry a token offset, adjacent suffixes in
 * order. stride <= 1 checks every entry and pair and that no offset repeats; stride k checks the
 * pairs at ranks 0, k, 2k, ... On GD_E_FORMAT *bad_rank (if non-NULL) is the first bad rank. */
gd_status gd_sa_verify(const char *tokenized_path, const char *table_path, unsigned token_width,
                       uint64_t stride, uint64_t *bad_rank, gd_error *err);

/* --- byte-level BPE encoding (bpe.c) --- */

/* GPT-2-style byte-level BPE, as Hugging Face tokenizers' ByteLevel pre-tokenizer (use_regex on,
 * add_prefix_space off) followed by its BPE model (no dropout, every byte in the vocabulary, no
 * subword prefix or suffix) encode text without normalizer and without added tokens in it:
 *  - UTF-8 text is split by the GPT-2 regex
 *    's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *    with Oniguruma's classes as tokenizers has them (generated table, see gd_bpe_char_class);
 *  - each piece starts as one symbol per byte; the adjacent pair with the lowest merge rank is
 *    merged (the leftmost one among equal ranks) until no pair has a merge;
 *  - with GD_BPE_IGNORE_MERGES, a piece that is itself a vocabulary word is that word's id.
 * The model is immutable after gd_bpe_model_new: any number of threads may encode with it at once,
 * each with its own cache (a cache is used by one thread at a time). */
typedef struct gd_bpe_model gd_bpe_model;
typedef struct gd_bpe_cache gd_bpe_cache;

enum {
    GD_BPE_CLASS_OTHER = 0,   /* none of the classes below */
    GD_BPE_CLASS_LETTER = 1,  /* \p{L} */
    GD_BPE_CLASS_NUMBER = 2,  /* \p{N} */
    GD_BPE_CLASS_SPACE = 3    /* \s */
};

enum {
    GD_BPE_IGNORE_MERGES = 1  /* tokenizers' ignore_merges: a whole piece found in the vocabulary wins */
};

/* Ids are any uint32 values below 0xFFFFFFFF; the model does not need the vocabulary's size. */
typedef struct gd_bpe_spec {
    const uint32_t *byte_ids;      /* 256 entries: id of the token of each single byte */
    const uint32_t *merge_left;    /* n_merges entries each: merge i (rank i) joins the tokens */
    const uint32_t *merge_right;   /* merge_left[i] and merge_right[i] into merge_result[i]; a pair */
    const uint32_t *merge_result;  /* listed twice keeps its last rank and result */
    size_t n_merges;
    const char *words;             /* GD_BPE_IGNORE_MERGES only (else n_words = 0): vocabulary */
    const size_t *word_offsets;    /* words as raw bytes, word i = words[word_offsets[i] .. */
    const uint32_t *word_ids;      /* word_offsets[i + 1]) with id word_ids[i] */
    size_t n_words;
    unsigned flags;                /* GD_BPE_* flags */
} gd_bpe_spec;

/* Copies what it needs from spec; GD_E_INVALID names a bad entry. */
gd_status gd_bpe_model_new(const gd_bpe_spec *spec, gd_bpe_model **out, gd_error *err);
void gd_bpe_model_free(gd_bpe_model *model);

/* A word cache (piece bytes -> ids) and scratch memory for one thread's encode calls with `model`:
 * at most about max_bytes (0 = 64 MiB, at least 1 MiB) of cached words, emptied when full. */
gd_status gd_bpe_cache_new(const gd_bpe_model *model, size_t max_bytes, gd_bpe_cache **out, gd_error *err);
void gd_bpe_cache_free(gd_bpe_cache *cache);

/* Encodes len bytes of UTF-8 text into ids[0 .. *n_ids); cap >= len always suffices (every id
 * covers at least one byte). cache may be NULL (slower: nothing is remembered between calls).
 * Invalid UTF-8 (overlong forms, surrogates, above U+10FFFF, truncated) is GD_E_INVALID naming
 * the byte offset; so is a cache made for another model or a cap too small. */
gd_status gd_bpe_encode(const gd_bpe_model *model, gd_bpe_cache *cache, const char *text, size_t len,
                        uint32_t *ids, size_t cap, size_t *n_ids, gd_error *err);
/* Encodes n_texts texts, text i = texts[text_offsets[i] .. text_offsets[i + 1]) (offsets
 * non-decreasing), one after another into ids: text i's ids are ids[id_offsets[i] .. id_offsets[i + 1]),
 * id_offsets having n_texts + 1 entries. cap >= text_offsets[n_texts] - text_offsets[0] suffices. */
gd_status gd_bpe_encode_batch(const gd_bpe_model *model, gd_bpe_cache *cache, const char *texts,
                              const size_t *text_offsets, size_t n_texts, uint32_t *ids, size_t cap,
                              size_t *id_offsets, gd_error *err);

/* The regex class (GD_BPE_CLASS_*) of code point cp; GD_BPE_CLASS_OTHER above U+10FFFF. */
int gd_bpe_char_class(uint32_t cp);

#ifdef __cplusplus
}
#endif
#endif /* GRAMDEX_H */
