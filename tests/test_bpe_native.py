"""The native byte-level BPE encoder (native/src/bpe.c, native/bpe.py) against Hugging Face tokenizers,
the reference: exact ids on generated Unicode text and on real enwiki documents, the character classes
of every code point, the documents and tokenizers that must go to tokenizers instead, bad input,
threads, and the builder's output with and without the native path."""

from __future__ import annotations

import copy
import gzip
import json
import sysconfig
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from native._gramdex import lib

from index_tools.tokenize import HFTokenizer, dtype_for_width, train_bpe
from native.bpe import BYTE_CHARS, ByteLevelBPE, ineligible_reason
from native.errors import InvalidQueryError

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
WIKI_TOKENIZER = SHARED / "reference" / "wiki-bpe32k-tokenizer.json.gz"
ENWIKI = SHARED / "corpora" / "text" / "enwiki_part01.jsonl.gz"
NO_SHARED = "../shared (the wiki tokenizer and the enwiki corpus) is not available in this checkout"

FRAGMENTS = [
    "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL", "'", "''", " '", "don't", "it's", "we're", "I'm",
    " ", "  ", "   ", "\t", "\n", "\r\n", "\r", "\x0b", "\x0c", "\x1c", "\x1f", "\x85", "\xa0", "\u1680", "\u2009",
    "\u200b", "\u2028", "\u2029", "\u202f", "\u205f", "\u3000", " \n ", "\n\n\n", " \t ",
    "123", " 42", "3.14", "\u0663", "\u00bd", "\u216b", "\U00010d40", "\U000116d0",
    "\U0001f600", "\U0001f44d\U0001f3fd", "\U0001f468\u200d\U0001f469\u200d\U0001f467", "e\u0301", "\u0301",
    "\u4e2d\u6587\u5b57", "\u65e5\u672c\u8a9e", "\ud55c\uad6d\uc5b4", "\u041f\u0440\u0438\u0432\u0435\u0442",
    "\ufb01", "\u01c5", "\U000105c0", "\ua7cb", "!!", "...", " \u2014", "\u00ab", "$", "\u00ad", "\ufeff",
    "\ue000", "\U0010fffd", "\x00", "a", "The", " the", "x", "<|endoftext|>", " <|endoftext|> ",
]
_chars = st.characters(exclude_categories=("Cs",))
TEXTS = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(_chars, max_size=4)), max_size=24).map("".join)


def stdlib_texts(max_chars: int = 2_000_000) -> list[str]:
    texts: list[str] = []
    total = 0
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        text = path.read_text(encoding="utf-8", errors="replace")
        texts.append(text)
        total += len(text)
        if total >= max_chars:
            break
    return texts


def enwiki_docs(max_chars: int = 1_200_000) -> list[str]:
    docs: list[str] = []
    total = 0
    with gzip.open(ENWIKI, "rt", encoding="utf-8") as f:
        for line in f:
            docs.append(json.loads(line)["text"])
            total += len(docs[-1])
            if total >= max_chars:
                break
    return docs


@pytest.fixture(scope="module")
def trained() -> HFTokenizer:
    return train_bpe(stdlib_texts(), 3000)


@pytest.fixture(scope="module")
def wiki() -> HFTokenizer:
    if not WIKI_TOKENIZER.exists():
        pytest.skip(NO_SHARED)
    return HFTokenizer.from_file(WIKI_TOKENIZER)


@pytest.fixture(scope="module")
def docs() -> list[str]:
    if not ENWIKI.exists():
        pytest.skip(NO_SHARED)
    return enwiki_docs()


def reference(tok: HFTokenizer, texts: list[str]) -> list[list[int]]:
    return [e.ids for e in tok._tok.encode_batch_fast(texts, add_special_tokens=False)]


def assert_same(tok: HFTokenizer, texts: list[str], threads: int = 1) -> None:
    tok.threads = threads
    got = tok.encode_batch(texts)
    want = reference(tok, texts)
    dtype = dtype_for_width(tok.width)
    for text, g, w in zip(texts, got, want, strict=True):
        assert g.dtype == dtype
        assert g.tolist() == w, repr(text)


def with_config(tok: HFTokenizer, change: Any) -> HFTokenizer:
    cfg = copy.deepcopy(json.loads(tok._tok.to_str()))
    change(cfg)
    return HFTokenizer(json.dumps(cfg))


# --- exact ids ---


def test_trained_tokenizer_is_eligible(trained: HFTokenizer) -> None:
    assert ineligible_reason(json.loads(trained._json)) is None
    assert trained.uses_native


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(TEXTS, min_size=1, max_size=6), threads=st.sampled_from([1, 2]))
def test_generated_text_trained(trained: HFTokenizer, texts: list[str], threads: int) -> None:
    assert_same(trained, texts, threads)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(TEXTS, min_size=1, max_size=6), threads=st.sampled_from([1, 2]))
def test_generated_text_wiki(wiki: HFTokenizer, texts: list[str], threads: int) -> None:
    assert_same(wiki, texts, threads)


def test_edge_cases(trained: HFTokenizer) -> None:
    texts = ["", " ", "  ", "\n", "a ", "a  ", " a", "'", "''s", "'s'", "x's", "x 's", "\r\n\r\n", "a\r\nb",
             "end   \n", "a" * 5000, "\u4e2d" * 3000, " " * 1000 + "x", "1" * 700, "!" * 900 + "a",
             "\U0001f600" * 300, "\t \u3000 x", "\x85a", "a\x85", " \x85", "\u2028 b"]
    assert_same(trained, texts)
    assert_same(trained, texts, threads=2)


def test_enwiki_documents(wiki: HFTokenizer, trained: HFTokenizer, docs: list[str]) -> None:
    assert_same(wiki, docs, threads=2)
    assert_same(trained, docs[:200], threads=1)


# --- character classes ---


def test_character_classes_match_tokenizers_for_every_code_point() -> None:
    """Every code point in the class the C table gives it: "a" + all letters is one pre-token, "1" + all
    numbers too, "!" + all others too, and all whitespace together. The four classes partition the code
    points for both sides, so four passing checks mean the tables agree everywhere."""
    from tokenizers import pre_tokenizers

    pt = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    members: dict[int, list[str]] = {c: [] for c in range(4)}
    for cp in range(0x110000):
        if not 0xD800 <= cp < 0xE000:
            members[lib.gd_bpe_char_class(cp)].append(chr(cp))
    prefix = {lib.GD_BPE_CLASS_LETTER: "a", lib.GD_BPE_CLASS_NUMBER: "1", lib.GD_BPE_CLASS_OTHER: "!",
              lib.GD_BPE_CLASS_SPACE: ""}
    for cls, chars in members.items():
        pieces = pt.pre_tokenize_str(prefix[cls] + "".join(chars))
        assert len(pieces) == 1, f"class {cls}: tokenizers splits it into {len(pieces)} pieces, e.g. {pieces[:3]}"
    assert len(members[lib.GD_BPE_CLASS_SPACE]) == 25
    assert "\x0b" in members[lib.GD_BPE_CLASS_SPACE] and "\x1c" in members[lib.GD_BPE_CLASS_OTHER]


# --- what goes to tokenizers ---


def test_added_tokens_go_to_tokenizers(trained: HFTokenizer) -> None:
    texts = ["a <|endoftext|> b", "<|endoftext|>", "x<|endoftext|><|endoftext|>y", "plain text"]
    assert_same(trained, texts)
    assert trained._native.needs_reference(texts[0]) and not trained._native.needs_reference(texts[3])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(st.one_of(st.sampled_from(["foo bar", "==", " qq", "Zz", "\u00e9\u00e9", "9 9", "<s>",
                                                  "</s>", "[X]", "\n\n"]), TEXTS), max_size=8))
def test_many_added_tokens(trained: HFTokenizer, parts: list[str]) -> None:
    tok = getattr(test_many_added_tokens, "_tok", None)
    if tok is None:
        tok = HFTokenizer(trained._json)
        tok._tok.add_tokens(["foo bar", "==", " qq", "Zz", "\u00e9\u00e9", "9 9", "\n\n"])
        tok._tok.add_special_tokens(["<s>", "</s>", "[X]"])
        tok = HFTokenizer(tok._tok.to_str())
        test_many_added_tokens._tok = tok  # type: ignore[attr-defined]
    assert tok.uses_native and tok._native._added_re is not None
    assert_same(tok, ["".join(parts), "".join(reversed(parts))])


def test_lone_surrogates_fail_as_in_tokenizers(trained: HFTokenizer) -> None:
    texts = ["fine", "broken \ud800 text"]
    with pytest.raises(Exception) as ref:  # noqa: B017 - tokenizers raises plain exceptions
        reference(trained, texts)
    with pytest.raises(type(ref.value)):
        trained.encode_batch(texts)


@pytest.mark.parametrize("name,change", [
    ("normalizer", lambda c: c.update(normalizer={"type": "Lowercase"})),
    ("prefix space", lambda c: c["pre_tokenizer"].update(add_prefix_space=True)),
    ("no regex", lambda c: c["pre_tokenizer"].update(use_regex=False)),
    ("other pre-tokenizer", lambda c: c.update(pre_tokenizer={"type": "Whitespace"})),
    ("byte fallback", lambda c: c["model"].update(byte_fallback=True)),
    ("template", lambda c: c.update(post_processor={
        "type": "TemplateProcessing", "single": [{"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {}})),
    ("truncation", lambda c: c.update(truncation={"direction": "Right", "max_length": 5, "strategy": "LongestFirst",
                                                   "stride": 0})),
])
def test_ineligible_tokenizers_fall_back(trained: HFTokenizer, name: str, change: Any) -> None:
    tok = with_config(trained, change)
    assert not tok.uses_native, name
    assert_same(tok, ["Hello  World's 12 caf\u00e9 \u4e2d\u6587!!", "it's  \n", ""] + FRAGMENTS)


def test_dropout_affixes_and_missing_bytes_are_ineligible(trained: HFTokenizer) -> None:
    assert not with_config(trained, lambda c: c["model"].update(dropout=0.1)).uses_native
    for key, value in (("continuing_subword_prefix", "##"), ("end_of_word_suffix", "</w>")):
        cfg = json.loads(trained._json)  # tokenizers itself cannot load these with this vocabulary
        cfg["model"][key] = value
        assert "prefix or end-of-word suffix" in (ineligible_reason(cfg) or "")
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {c: i for i, c in enumerate(BYTE_CHARS.values()) if c != BYTE_CHARS[0]}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    assert "byte tokens" in (ineligible_reason(json.loads(tok.to_str())) or "")
    assert ByteLevelBPE.from_tokenizer(tok) is None


@pytest.mark.parametrize("name,change", [
    ("sequence", lambda c: c.update(pre_tokenizer={"type": "Sequence", "pretokenizers": [c["pre_tokenizer"]]})),
    ("ignore merges", lambda c: c["model"].update(ignore_merges=True)),
    ("byte-level post-processor", lambda c: c.update(post_processor={
        "type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True})),
])
def test_eligible_variants(trained: HFTokenizer, name: str, change: Any) -> None:
    tok = with_config(trained, change)
    assert tok.uses_native, name
    texts = ["Hello  World's 12 caf\u00e9 \u4e2d\u6587!!", "it's  \n", "", "def __init__(self):\n    return"]
    assert_same(tok, texts + FRAGMENTS + stdlib_texts(200_000)[:20], threads=2)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(TEXTS, min_size=1, max_size=4))
def test_ignore_merges_generated(trained: HFTokenizer, texts: list[str]) -> None:
    tok = getattr(test_ignore_merges_generated, "_tok", None)
    if tok is None:
        tok = with_config(trained, lambda c: c["model"].update(ignore_merges=True))
        test_ignore_merges_generated._tok = tok  # type: ignore[attr-defined]
    assert_same(tok, texts)


# --- bad input and threads ---


def test_invalid_utf8_is_a_clear_error(trained: HFTokenizer) -> None:
    enc = trained._native
    for bad in (b"\xff", b"ok \xc3(", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf", b"abc\xe2\x82"):
        with pytest.raises(InvalidQueryError, match="text 1: invalid UTF-8"):
            enc.encode_utf8([b"fine", bad])
    ids, offsets = enc.encode_utf8([b"fine", b""])
    assert offsets.tolist() == [0, len(ids), len(ids)]


def test_two_threads_share_one_model(trained: HFTokenizer) -> None:
    enc = ByteLevelBPE(json.loads(trained._json))
    texts = [t.encode() for t in stdlib_texts(600_000)]
    want = enc.encode_utf8(texts)
    results: list[Any] = [None, None]

    def work(i: int) -> None:
        results[i] = [enc.encode_utf8(texts) for _ in range(3)]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for per_thread in results:
        for ids, offsets in per_thread:
            assert np.array_equal(ids, want[0]) and np.array_equal(offsets, want[1])


# --- the builder ---


def test_build_output_identical_with_and_without_native(tmp_path_factory: pytest.TempPathFactory,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from index_tools.cli import main

    root = tmp_path_factory.mktemp("gbn")
    rows = [{"text": t, "id": i} for i, t in enumerate(stdlib_texts(300_000)[:40] + FRAGMENTS + ["x <|endoftext|> y"])]
    (root / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    tok_path = root / "tok.json"
    tok_path.write_text(train_bpe(stdlib_texts(), 1000)._json, encoding="utf-8")
    common = ["build", "--input", str(root / "in.jsonl"), "--tokenizer", str(tok_path), "--quiet"]
    assert main([*common, "-o", str(root / "native"), "--threads", "2"]) == 0
    monkeypatch.setattr(ByteLevelBPE, "from_tokenizer", classmethod(lambda cls, tok: None))
    assert not HFTokenizer(tok_path.read_text(encoding="utf-8")).uses_native
    assert main([*common, "-o", str(root / "reference"), "--threads", "1"]) == 0
    names = sorted(p.name for p in (root / "native").iterdir())
    assert names == sorted(p.name for p in (root / "reference").iterdir())
    for name in names:
        if (root / "native" / name).is_file():
            assert (root / "native" / name).read_bytes() == (root / "reference" / name).read_bytes(), name


@pytest.mark.parametrize("threads", [1, 2])
def test_build_reports_a_failing_batch(tmp_path_factory: pytest.TempPathFactory, threads: int) -> None:
    """A lone surrogate (legal in JSON, not in UTF-8) fails the batch with its location, encoded in the
    background or not, and leaves no index."""
    from index_tools.build import BuildError, BuildOptions, build_index

    root = tmp_path_factory.mktemp("gbf")
    lines = [json.dumps({"text": f"document {i} is fine"}) for i in range(3000)]
    lines[2500] = '{"text": "broken \\ud800 here"}'
    (root / "in.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    tok_path = root / "tok.json"
    tok_path.write_text(train_bpe(stdlib_texts(300_000), 500)._json, encoding="utf-8")
    opts = BuildOptions(inputs=[root / "in.jsonl"], output=root / "idx", tokenizer=tok_path, threads=threads,
                        quiet=True, batch_docs=1000)
    with pytest.raises(BuildError, match=r"tokenizer failed on a batch starting at .*in\.jsonl:2001"):
        build_index(opts)
    assert not (root / "idx").exists()
