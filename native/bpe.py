"""Exact native encoder for GPT-2-style byte-level BPE tokenizers (bpe.c), with Hugging Face
`tokenizers` as the reference it must equal.

`ByteLevelBPE.from_tokenizer(tok)` returns an encoder when the loaded `tokenizers.Tokenizer` is one
whose ids the C core reproduces exactly (see `ineligible_reason`), else None. Texts that contain
an added token's content must still go through `tokenizers` (it splits on added tokens first):
`needs_reference(text)` says which. Encoding releases the GIL; each thread gets its own word cache,
so several threads may encode with one encoder at once.
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any

import numpy as np

from native._gramdex import ffi, lib
from native.jobs import raise_status as _raise

NO_ID = 0xFFFFFFFF


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> character table: printable Latin-1 bytes stand for themselves, the other
    bytes, in order, for U+0100 onwards."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in keep}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


BYTE_CHARS = bytes_to_unicode()
CHAR_BYTES = {c: b for b, c in BYTE_CHARS.items()}


def _is_plain_byte_level(pre: Any) -> bool:
    return (isinstance(pre, dict) and pre.get("type") == "ByteLevel" and pre.get("add_prefix_space") is False
            and pre.get("use_regex", True) is True)


def ineligible_reason(cfg: dict[str, Any]) -> str | None:
    """Why the tokenizer (its JSON as `tokenizers` writes it back) cannot use the native encoder, or None."""
    if cfg.get("normalizer") is not None:
        return "it has a normalizer"
    pre = cfg.get("pre_tokenizer")
    if isinstance(pre, dict) and pre.get("type") == "Sequence" and len(pre.get("pretokenizers") or []) == 1:
        pre = pre["pretokenizers"][0]
    if not _is_plain_byte_level(pre):
        return "its pre-tokenizer is not ByteLevel(add_prefix_space=False, use_regex=True)"
    if cfg.get("truncation") is not None or cfg.get("padding") is not None:
        return "it truncates or pads"
    post = cfg.get("post_processor")
    if post is not None and not (isinstance(post, dict) and post.get("type") == "ByteLevel"):
        return "it has a post-processor other than ByteLevel"
    model = cfg.get("model") or {}
    if model.get("type") != "BPE":
        return "its model is not BPE"
    if model.get("dropout") is not None:
        return "its BPE has dropout"
    if model.get("continuing_subword_prefix") or model.get("end_of_word_suffix"):
        return "its BPE has a continuing-subword prefix or end-of-word suffix"
    if model.get("byte_fallback"):
        return "its BPE uses byte fallback"
    vocab = model.get("vocab")
    if not isinstance(vocab, dict):
        return "its vocabulary is not a mapping"
    ids = list(vocab.values())
    if any(not isinstance(i, int) or not 0 <= i < NO_ID for i in ids) or len(set(ids)) != len(ids):
        return "its vocabulary ids are not distinct 32-bit ids"
    missing = [b for b, c in BYTE_CHARS.items() if c not in vocab]
    if missing:
        return f"{len(missing)} of the 256 byte tokens are not in its vocabulary"
    if _parse_merges(model.get("merges"), vocab) is None:
        return "its merges do not parse"
    return None


def _parse_merges(merges: Any, vocab: dict[str, int]) -> tuple[list[int], list[int], list[int]] | None:
    if not isinstance(merges, list):
        return None
    left: list[int] = []
    right: list[int] = []
    result: list[int] = []
    for m in merges:
        if isinstance(m, str):
            parts = m.split(" ")
        elif isinstance(m, list):
            parts = m
        else:
            return None
        if len(parts) != 2 or not all(isinstance(p, str) for p in parts):
            return None
        a, b = parts
        if a not in vocab or b not in vocab or a + b not in vocab:
            return None
        left.append(vocab[a])
        right.append(vocab[b])
        result.append(vocab[a + b])
    return left, right, result


class ByteLevelBPE:
    """The C core's byte-level BPE model built from one tokenizer's JSON."""

    def __init__(self, cfg: dict[str, Any], cache_bytes: int = 64 << 20) -> None:
        reason = ineligible_reason(cfg)
        if reason is not None:
            raise ValueError(f"not a plain byte-level BPE tokenizer: {reason}")
        model = cfg["model"]
        vocab: dict[str, int] = model["vocab"]
        merges = _parse_merges(model["merges"], vocab)
        assert merges is not None
        self.ignore_merges = bool(model.get("ignore_merges"))
        self._cache_bytes = cache_bytes
        contents = sorted({t["content"] for t in cfg.get("added_tokens") or [] if isinstance(t, dict)})
        self.added_contents: list[str] = contents
        self._added_re = re.compile("|".join(map(re.escape, contents))) if len(contents) > 8 else None

        keep: list[Any] = []  # cffi arrays the spec points into, alive while the model is built

        def u32(values: list[int]) -> Any:
            arr = ffi.new("uint32_t[]", values if values else [0])
            keep.append(arr)
            return arr

        spec = ffi.new("gd_bpe_spec *")
        spec.byte_ids = u32([vocab[BYTE_CHARS[b]] for b in range(256)])
        spec.merge_left, spec.merge_right, spec.merge_result = (u32(x) for x in merges)
        spec.n_merges = len(merges[0])
        if self.ignore_merges:
            words = [(bytes(CHAR_BYTES[c] for c in w), i) for w, i in vocab.items()
                     if w and all(c in CHAR_BYTES for c in w)]
            blob = b"".join(w for w, _ in words)
            offsets = np.zeros(len(words) + 1, dtype=np.uintp)
            np.cumsum([len(w) for w, _ in words], out=offsets[1:])
            words_buf = ffi.new("char[]", blob or b"\0")
            offsets_buf = ffi.new("size_t[]", offsets.tolist())
            keep += [words_buf, offsets_buf]
            spec.words = words_buf
            spec.word_offsets = offsets_buf
            spec.word_ids = u32([i for _, i in words])
            spec.n_words = len(words)
            spec.flags = lib.GD_BPE_IGNORE_MERGES
        out = ffi.new("gd_bpe_model **")
        err = ffi.new("gd_error *")
        _raise(lib.gd_bpe_model_new(spec, out, err), err)
        self._model = ffi.gc(out[0], lib.gd_bpe_model_free)
        self._local = threading.local()

    @classmethod
    def from_tokenizer(cls, tok: Any) -> ByteLevelBPE | None:
        """The native encoder of a loaded `tokenizers.Tokenizer`, or None when it is not eligible."""
        cfg = json.loads(tok.to_str())
        if ineligible_reason(cfg) is not None:
            return None
        return cls(cfg)

    def needs_reference(self, text: str) -> bool:
        """True when `tokenizers` must encode text: it holds an added token's content."""
        if self._added_re is not None:
            return self._added_re.search(text) is not None
        return any(c in text for c in self.added_contents)

    def reset_caches(self) -> None:
        """Forget every thread's cached words (benchmarks: measure from a cold cache)."""
        self._local = threading.local()

    def _cache(self) -> Any:
        cache = getattr(self._local, "cache", None)
        if cache is None:
            out = ffi.new("gd_bpe_cache **")
            err = ffi.new("gd_error *")
            _raise(lib.gd_bpe_cache_new(self._model, self._cache_bytes, out, err), err)
            cache = self._local.cache = ffi.gc(out[0], lib.gd_bpe_cache_free)
        return cache

    def encode_utf8(self, texts: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
        """Ids of UTF-8 texts, all in one uint32 array, and n + 1 offsets: text i is ids[off[i]:off[i + 1]]."""
        n = len(texts)
        blob = b"".join(texts)
        text_off = np.zeros(n + 1, dtype=np.uintp)
        if n:
            np.cumsum(np.fromiter(map(len, texts), dtype=np.uintp, count=n), out=text_off[1:])
        ids = np.empty(max(len(blob), 1), dtype=np.uint32)
        id_off = np.zeros(n + 1, dtype=np.uintp)
        err = ffi.new("gd_error *")
        status = lib.gd_bpe_encode_batch(
            self._model, self._cache(), ffi.from_buffer("char[]", blob), ffi.from_buffer("size_t[]", text_off), n,
            ffi.from_buffer("uint32_t[]", ids), len(ids), ffi.from_buffer("size_t[]", id_off), err)
        _raise(status, err)
        return ids[:int(id_off[-1])], id_off

    def encode(self, text: str) -> list[int]:
        """Ids of one text (that needs no reference encoding): for tests and small inputs."""
        ids, _ = self.encode_utf8([text.encode("utf-8")])
        return ids.tolist()
