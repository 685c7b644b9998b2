/*
 * Unit test of bpe.c with a small hand-made model (byte b has id b): pre-token boundaries of the
 * GPT-2 regex, merge order (lowest rank, then leftmost), a long piece, the cache (also emptied when
 * full, and across threads), ignore_merges, invalid UTF-8 and other bad arguments.
 * Exact equality with Hugging Face tokenizers is tested from Python (tests/test_bpe_native.py).
 * Usage: test_bpe; exit status 0 = passed.
 */
#include "gramdex.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

enum { AB = 256, AA = 257, ABC = 258, SP_A = 259, AAAA = 260, TH = 261, THE = 262, SP_THE = 263 };

static gd_bpe_model *make_model(unsigned flags) {
    static const uint32_t left[] = {'a', 'a', AB, ' ', AA, 't', TH, ' '};
    static const uint32_t right[] = {'b', 'a', 'c', 'a', AA, 'h', 'e', THE};
    static const uint32_t result[] = {AB, AA, ABC, SP_A, AAAA, TH, THE, SP_THE};
    uint32_t byte_ids[256];
    for (unsigned b = 0; b < 256; b++) byte_ids[b] = b;
    static const char words[] = "xyzzy";
    static const size_t word_offsets[] = {0, 5};
    static const uint32_t word_ids[] = {999};
    gd_bpe_spec spec = {
        .byte_ids = byte_ids, .merge_left = left, .merge_right = right, .merge_result = result,
        .n_merges = sizeof left / sizeof left[0], .flags = flags,
    };
    if (flags & GD_BPE_IGNORE_MERGES) {
        spec.words = words;
        spec.word_offsets = word_offsets;
        spec.word_ids = word_ids;
        spec.n_words = 1;
    }
    gd_bpe_model *m = NULL;
    gd_error err;
    gd_status st = gd_bpe_model_new(&spec, &m, &err);
    CHECK(st == GD_OK, "model_new: %s", err.message);
    return m;
}

/* Encodes text (NUL-terminated) and compares with the expected ids (terminated by -1). */
static void expect(const gd_bpe_model *m, gd_bpe_cache *c, const char *text, const int *want) {
    size_t len = strlen(text), n = 0;
    uint32_t *ids = malloc((len + 1) * sizeof *ids);
    gd_error err;
    gd_status st = gd_bpe_encode(m, c, text, len, ids, len, &n, &err);
    CHECK(st == GD_OK, "encode \"%s\": %s", text, err.message);
    size_t k = 0;
    while (want[k] >= 0) k++;
    int same = st == GD_OK && n == k;
    for (size_t i = 0; same && i < k; i++) same = ids[i] == (uint32_t)want[i];
    CHECK(same, "encode \"%s\": got %zu ids, want %zu", text, n, k);
    if (!same) {
        for (size_t i = 0; i < n; i++) fprintf(stderr, " %u", ids[i]);
        fprintf(stderr, "\n");
    }
    free(ids);
}

static void test_pieces_and_merges(const gd_bpe_model *m, gd_bpe_cache *c) {
    expect(m, c, "", (int[]){-1});
    expect(m, c, "ab", (int[]){AB, -1});
    expect(m, c, "abc", (int[]){ABC, -1});
    expect(m, c, "aaa", (int[]){AA, 'a', -1});                /* leftmost first */
    expect(m, c, "aaaa", (int[]){AAAA, -1});
    expect(m, c, "aaaaa", (int[]){AAAA, 'a', -1});
    expect(m, c, " ab", (int[]){' ', AB, -1});                 /* rank 0 (ab) before rank 3 ( a) */
    expect(m, c, " ac", (int[]){SP_A, 'c', -1});
    expect(m, c, "the the", (int[]){THE, SP_THE, -1});
    expect(m, c, "it's", (int[]){'i', 't', '\'', 's', -1});
    expect(m, c, "'ll'LL", (int[]){'\'', 'l', 'l', '\'', 'L', 'L', -1});  /* "'ll" then "'" "LL" */
    expect(m, c, "a  b", (int[]){'a', ' ', ' ', 'b', -1});       /* "a" "  "->" " + " b" */
    expect(m, c, "a \n", (int[]){'a', ' ', '\n', -1});            /* trailing run: one piece */
    expect(m, c, "a\tb", (int[]){'a', '\t', 'b', -1});
    expect(m, c, "x  \n\ny", (int[]){'x', ' ', ' ', '\n', '\n', 'y', -1});
    expect(m, c, "12ab", (int[]){'1', '2', AB, -1});
    expect(m, c, "ab!!ab", (int[]){AB, '!', '!', AB, -1});
    /* U+00E9 is a letter: "é" joins "ab"; U+0301 (combining) is not */
    expect(m, c, "ab\xC3\xA9", (int[]){AB, 0xC3, 0xA9, -1});
    expect(m, c, "ab\xCC\x81", (int[]){AB, 0xCC, 0x81, -1});
    /* U+3000 (ideographic space) is \s, U+0085 too */
    expect(m, c, "ab\xE3\x80\x80" "ab", (int[]){AB, 0xE3, 0x80, 0x80, AB, -1});
    expect(m, c, "ab\xC2\x85", (int[]){AB, 0xC2, 0x85, -1});
}

static void test_long_piece(const gd_bpe_model *m) {
    size_t n = 100000;
    char *text = malloc(n);
    uint32_t *ids = malloc(n * sizeof *ids);
    memset(text, 'a', n);
    size_t got = 0;
    gd_error err;
    gd_status st = gd_bpe_encode(m, NULL, text, n, ids, n, &got, &err);
    CHECK(st == GD_OK && got == n / 4, "long piece: status %d, %zu ids", (int)st, got);
    int all = 1;
    for (size_t i = 0; st == GD_OK && i < got; i++) all &= ids[i] == AAAA;
    CHECK(all, "long piece: not all AAAA");
    /* tight room: ids fit although the piece's bytes do not */
    st = gd_bpe_encode(m, NULL, text, n, ids, n / 4, &got, &err);
    CHECK(st == GD_OK && got == n / 4, "long piece, cap n/4: status %d (%s)", (int)st, err.message);
    st = gd_bpe_encode(m, NULL, text, n, ids, n / 4 - 1, &got, &err);
    CHECK(st == GD_E_INVALID && got == 0, "long piece, cap too small: status %d", (int)st);
    free(text);
    free(ids);
}

/* Many distinct words through a small cache (emptied several times) equal the uncached encoding. */
static void test_cache_churn(const gd_bpe_model *m) {
    gd_bpe_cache *c = NULL;
    gd_error err;
    CHECK(gd_bpe_cache_new(m, 1 << 20, &c, &err) == GD_OK, "cache_new: %s", err.message);
    size_t words = 150000, len = words * 8;
    char *text = malloc(len);
    size_t pos = 0;
    for (size_t w = 0; w < words; w++) {
        text[pos++] = ' ';
        size_t v = (w * 2654435761u) % 308915776u;  /* 26^6 */
        for (int i = 0; i < 6; i++, v /= 6) text[pos++] = "abcthe"[v % 6];
        text[pos++] = (w % 7 == 0) ? '\n' : 'a';
    }
    uint32_t *a = malloc(len * sizeof *a), *b = malloc(len * sizeof *b);
    size_t na = 0, nb = 0;
    for (int round = 0; round < 3; round++) {
        gd_status st = gd_bpe_encode(m, c, text, pos, a, len, &na, &err);
        CHECK(st == GD_OK, "cached: %s", err.message);
    }
    CHECK(gd_bpe_encode(m, NULL, text, pos, b, len, &nb, &err) == GD_OK, "uncached: %s", err.message);
    CHECK(na == nb && memcmp(a, b, na * sizeof *a) == 0, "cached %zu ids != uncached %zu ids", na, nb);
    gd_bpe_cache_free(c);
    free(text);
    free(a);
    free(b);
}

typedef struct worker {
    const gd_bpe_model *m;
    const char *text;
    size_t len;
    uint32_t *ids;
    size_t n;
    gd_status st;
} worker;

static void *run_worker(void *arg) {
    worker *w = arg;
    gd_bpe_cache *c = NULL;
    gd_error err;
    w->st = gd_bpe_cache_new(w->m, 0, &c, &err);
    for (int i = 0; i < 20 && w->st == GD_OK; i++) w->st = gd_bpe_encode(w->m, c, w->text, w->len, w->ids, w->len, &w->n, &err);
    gd_bpe_cache_free(c);
    return NULL;
}

static void test_threads(const gd_bpe_model *m) {
    const char *text = "the abc aaaa it's  the\tthe 12 the the abcab \n";
    worker w[2];
    pthread_t t[2];
    for (int i = 0; i < 2; i++) {
        w[i] = (worker){.m = m, .text = text, .len = strlen(text)};
        w[i].ids = malloc(w[i].len * sizeof *w[i].ids);
        pthread_create(&t[i], NULL, run_worker, &w[i]);
    }
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    CHECK(w[0].st == GD_OK && w[1].st == GD_OK && w[0].n == w[1].n &&
          memcmp(w[0].ids, w[1].ids, w[0].n * sizeof *w[0].ids) == 0, "threads disagree");
    for (int i = 0; i < 2; i++) free(w[i].ids);
}

static void test_ignore_merges(void) {
    gd_bpe_model *m = make_model(GD_BPE_IGNORE_MERGES);
    expect(m, NULL, "xyzzy ab xyzzyx", (int[]){999, ' ', AB, ' ', 'x', 'y', 'z', 'z', 'y', 'x', -1});
    gd_bpe_model_free(m);
}

static void expect_invalid(const gd_bpe_model *m, const char *text, size_t len, const char *what) {
    uint32_t ids[16];
    size_t n = 7;
    gd_error err = {0};
    gd_status st = gd_bpe_encode(m, NULL, text, len, ids, 16, &n, &err);
    CHECK(st == GD_E_INVALID && n == 0 && strstr(err.message, "UTF-8"), "%s: status %d, n %zu, \"%s\"", what,
          (int)st, n, err.message);
}

static void test_bad_input(const gd_bpe_model *m) {
    expect_invalid(m, "\xC0\x80", 2, "overlong NUL");
    expect_invalid(m, "a\xE0\x80\xAF", 4, "overlong slash");
    expect_invalid(m, "ab \xED\xA0\x80", 6, "surrogate");
    expect_invalid(m, "\xF4\x90\x80\x80", 4, "above U+10FFFF");
    expect_invalid(m, "abc\xE2\x82", 5, "truncated");
    expect_invalid(m, " \xE2", 2, "truncated after a space");
    expect_invalid(m, "\x80", 1, "lone continuation");
    expect_invalid(m, "ok \xFF", 4, "0xFF");
    expect_invalid(m, "a\xF8\x88\x80\x80\x80", 6, "five-byte form");
    expect_invalid(m, "  \t\xC3", 4, "truncated in whitespace");

    uint32_t ids[4];
    size_t n;
    gd_error err;
    CHECK(gd_bpe_encode(m, NULL, "abc def", 7, ids, 1, &n, &err) == GD_E_INVALID, "cap 1");
    CHECK(gd_bpe_encode(NULL, NULL, "a", 1, ids, 4, &n, &err) == GD_E_INVALID, "NULL model");
    CHECK(gd_bpe_encode(m, NULL, NULL, 1, ids, 4, &n, &err) == GD_E_INVALID, "NULL text");
    CHECK(gd_bpe_encode(m, NULL, "a", 1, ids, 4, NULL, &err) == GD_E_INVALID, "NULL n_ids");
    CHECK(gd_bpe_encode(m, NULL, "", 0, NULL, 0, &n, &err) == GD_OK && n == 0, "empty text");

    gd_bpe_model *other = make_model(0);
    gd_bpe_cache *c = NULL;
    CHECK(gd_bpe_cache_new(other, 0, &c, &err) == GD_OK, "cache_new");
    CHECK(gd_bpe_encode(m, c, "a", 1, ids, 4, &n, &err) == GD_E_INVALID, "cache of another model");
    gd_bpe_cache_free(c);
    gd_bpe_model_free(other);

    const char texts[] = "abab";
    size_t offs[] = {0, 2, 1}, id_offs[3];
    CHECK(gd_bpe_encode_batch(m, NULL, texts, offs, 2, ids, 4, id_offs, &err) == GD_E_INVALID, "offsets decrease");
    size_t good[] = {0, 2, 4};
    CHECK(gd_bpe_encode_batch(m, NULL, texts, good, 2, ids, 4, id_offs, &err) == GD_OK && id_offs[0] == 0 &&
              id_offs[1] == 1 && id_offs[2] == 2 && ids[0] == AB && ids[1] == AB,
          "batch: %s", err.message);
    const char bad_texts[] = "ab\xFF";
    size_t bad_offs[] = {0, 2, 3};
    CHECK(gd_bpe_encode_batch(m, NULL, bad_texts, bad_offs, 2, ids, 4, id_offs, &err) == GD_E_INVALID &&
              strstr(err.message, "text 1"), "batch invalid names the text: %s", err.message);

    uint32_t byte_ids[256] = {0};
    byte_ids[7] = 0xFFFFFFFFu;
    gd_bpe_spec spec = {.byte_ids = byte_ids};
    gd_bpe_model *bad = NULL;
    CHECK(gd_bpe_model_new(&spec, &bad, &err) == GD_E_INVALID && bad == NULL, "byte id 0xFFFFFFFF");
    byte_ids[7] = 7;
    spec.n_merges = 3;
    CHECK(gd_bpe_model_new(&spec, &bad, &err) == GD_E_INVALID, "merges without arrays");
    spec.n_merges = 0;
    spec.flags = 8;
    CHECK(gd_bpe_model_new(&spec, &bad, &err) == GD_E_INVALID, "unknown flag");
    CHECK(gd_bpe_model_new(NULL, &bad, &err) == GD_E_INVALID, "NULL spec");
    CHECK(gd_bpe_cache_new(NULL, 0, &c, &err) == GD_E_INVALID, "cache of NULL model");
}

static void test_classes(void) {
    CHECK(gd_bpe_char_class('a') == GD_BPE_CLASS_LETTER, "a");
    CHECK(gd_bpe_char_class('7') == GD_BPE_CLASS_NUMBER, "7");
    CHECK(gd_bpe_char_class(' ') == GD_BPE_CLASS_SPACE, "space");
    CHECK(gd_bpe_char_class(0x0B) == GD_BPE_CLASS_SPACE, "vertical tab");
    CHECK(gd_bpe_char_class(0x1F) == GD_BPE_CLASS_OTHER, "unit separator");
    CHECK(gd_bpe_char_class(0x2028) == GD_BPE_CLASS_SPACE, "line separator");
    CHECK(gd_bpe_char_class(0x00BD) == GD_BPE_CLASS_NUMBER, "one half");
    CHECK(gd_bpe_char_class(0x4E00) == GD_BPE_CLASS_LETTER, "CJK");
    CHECK(gd_bpe_char_class('!') == GD_BPE_CLASS_OTHER, "!");
    CHECK(gd_bpe_char_class(0x1F600) == GD_BPE_CLASS_OTHER, "emoji");
    CHECK(gd_bpe_char_class(0x110000) == GD_BPE_CLASS_OTHER, "past Unicode");
    CHECK(gd_bpe_char_class(0xFFFFFFFFu) == GD_BPE_CLASS_OTHER, "0xFFFFFFFF");
}

int main(void) {
    gd_bpe_model *m = make_model(0);
    gd_bpe_cache *c = NULL;
    gd_error err;
    CHECK(gd_bpe_cache_new(m, 0, &c, &err) == GD_OK, "cache_new: %s", err.message);
    for (int round = 0; round < 2; round++) {  /* the second round answers from the cache */
        test_pieces_and_merges(m, c);
        test_pieces_and_merges(m, NULL);
    }
    test_long_piece(m);
    test_cache_churn(m);
    test_threads(m);
    test_ignore_merges();
    test_bad_input(m);
    test_classes();
    gd_bpe_cache_free(c);
    gd_bpe_model_free(m);
    if (failures) {
        fprintf(stderr, "test_bpe: %d checks failed\n", failures);
        return 1;
    }
    return 0;
}
