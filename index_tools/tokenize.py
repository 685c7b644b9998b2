"""Tokenizers for building: UTF-8 bytes, a Hugging Face `tokenizers` file, or one trained on the input."""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from native.manifest import read_tokenizer_text

# gzipped (a quarter of the size; the service, the engine's tools and HFTokenizer.from_file read it as is):
# an index's own files stay within the peer's bytes per token although gramdex's also carry the tokenizer
TOKENIZER_FILE = "tokenizer.json.gz"
# Common end-of-text token names, so the engine can report a document's end as the model's EOS.
_EOS_NAMES = ("<|endoftext|>", "</s>", "<eos>", "<|end_of_text|>", "[SEP]", "<|eot_id|>")


def width_for_vocab(vocab_size: int) -> int:
    """Token width in bytes: the all-0xFF id of each width is the document separator, so ids stay below it."""
    if vocab_size <= 0xFF:
        return 1
    if vocab_size <= 0xFFFF:
        return 2
    return 4


def dtype_for_width(width: int) -> np.dtype:
    return np.dtype({1: "u1", 2: "<u2", 4: "<u4"}[width])


def sep_id(width: int) -> int:
    return (1 << (8 * width)) - 1


class Tokenizer:
    """Turns texts into token-id arrays; knows its vocabulary size, token width and EOS id."""

    vocab_size: int
    eos_token_id: int
    file_name: str | None  # stored in the index next to the shards; None for bytes
    threads: int = 1  # encode_batch may use this many threads

    @property
    def width(self) -> int:
        return width_for_vocab(self.vocab_size)

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        raise NotImplementedError

    def save(self, directory: Path) -> None:
        """Store what the service needs to tokenize text queries later."""


class BytesTokenizer(Tokenizer):
    """UTF-8 bytes as tokens (u8); 0xFF never occurs in UTF-8, so it is free for the separator."""

    def __init__(self) -> None:
        self.vocab_size = 255
        self.eos_token_id = 0xFF
        self.file_name = None

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        return [np.frombuffer(t.encode("utf-8"), dtype=np.uint8) for t in texts]


class HFTokenizer(Tokenizer):
    """Any `tokenizers` JSON file (GPT-2, Llama, ...); special tokens are not added to documents.

    GPT-2-style byte-level BPE files (native.bpe.ineligible_reason says which) are encoded by the C
    core's exact encoder, which gives the same ids as `tokenizers` several times faster and runs on
    `threads` threads; a document holding an added token's content, and every other kind of
    tokenizer, goes through `tokenizers` itself.
    """

    def __init__(self, json_text: str, native: bool = True) -> None:
        import tokenizers

        self._json = json_text
        self._tok = tokenizers.Tokenizer.from_str(json_text)
        self.vocab_size = self._tok.get_vocab_size(with_added_tokens=True)
        if self.vocab_size >= 0xFFFFFFFF:
            raise ValueError(f"vocabulary of {self.vocab_size} ids is too large")
        self.file_name = TOKENIZER_FILE
        self.eos_token_id = sep_id(self.width)
        for name in _EOS_NAMES:
            tid = self._tok.token_to_id(name)
            if tid is not None:
                self.eos_token_id = tid
                break
        self._native: Any = None
        if native:
            from native.bpe import ByteLevelBPE

            self._native = ByteLevelBPE.from_tokenizer(self._tok)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_size = 0

    @property
    def uses_native(self) -> bool:
        return self._native is not None

    @classmethod
    def from_file(cls, path: Path) -> HFTokenizer:
        return cls(read_tokenizer_text(path))

    def _reference(self, texts: list[str], dtype: np.dtype) -> list[np.ndarray]:
        encs = self._tok.encode_batch_fast(texts, add_special_tokens=False) \
            if hasattr(self._tok, "encode_batch_fast") else \
            self._tok.encode_batch(texts, add_special_tokens=False)
        return [np.asarray(e.ids, dtype=dtype) for e in encs]

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        dtype = dtype_for_width(self.width)
        if self._native is None:
            return self._reference(texts, dtype)
        out: list[np.ndarray] = [np.empty(0, dtype=dtype)] * len(texts)
        plain_ix: list[int] = []
        plain: list[bytes] = []
        ref_ix: list[int] = []
        for i, text in enumerate(texts):
            if self._native.needs_reference(text):
                ref_ix.append(i)
                continue
            try:
                plain.append(text.encode("utf-8"))
            except UnicodeEncodeError:  # lone surrogates: tokenizers reports them as it always has
                ref_ix.append(i)
                continue
            plain_ix.append(i)
        if ref_ix:
            for i, arr in zip(ref_ix, self._reference([texts[i] for i in ref_ix], dtype), strict=True):
                out[i] = arr
        for i, arr in zip(plain_ix, self._encode_native(plain, dtype), strict=True):
            out[i] = arr
        return out

    def _encode_native(self, texts: list[bytes], dtype: np.dtype) -> list[np.ndarray]:
        chunks = _split_by_bytes(texts, self.threads)
        if len(chunks) == 1:
            results = [self._native.encode_utf8(texts)]
        else:
            if self._pool is None or self._pool_size < len(chunks) - 1:
                if self._pool is not None:
                    self._pool.shutdown()
                self._pool_size = len(chunks) - 1
                self._pool = ThreadPoolExecutor(max_workers=self._pool_size, thread_name_prefix="bpe")
            futures = [self._pool.submit(self._native.encode_utf8, chunk) for chunk in chunks[1:]]
            results = [self._native.encode_utf8(chunks[0])] + [f.result() for f in futures]
        arrays: list[np.ndarray] = []
        for ids, offsets in results:
            flat = ids.astype(dtype, copy=False)
            off = offsets.tolist()
            arrays.extend(flat[off[j]:off[j + 1]] for j in range(len(off) - 1))
        return arrays

    def save(self, directory: Path) -> None:
        with open(directory / TOKENIZER_FILE, "wb") as raw, \
                gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as f:  # no name or time: deterministic
            f.write(self._json.encode("utf-8"))


def _split_by_bytes(texts: list[bytes], parts: int) -> list[list[bytes]]:
    """texts in at most `parts` consecutive runs of about equal size."""
    if parts <= 1 or len(texts) < 2:
        return [texts]
    parts = min(parts, len(texts))
    step = sum(map(len, texts)) / parts
    chunks: list[list[bytes]] = []
    start, acc = 0, 0
    for i, t in enumerate(texts):
        acc += len(t)
        if len(chunks) < parts - 1 and acc >= step * (len(chunks) + 1):
            chunks.append(texts[start:i + 1])
            start = i + 1
    chunks.append(texts[start:])
    return [c for c in chunks if c] or [texts]


def train_bpe(texts: Iterable[str], vocab_size: int) -> HFTokenizer:
    """Byte-level BPE trained on `texts` (deterministic for the same sample and size)."""
    import tokenizers
    from tokenizers import decoders, models, pre_tokenizers, trainers

    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    return HFTokenizer(tok.to_str())


def sample_texts(docs: Iterator[str], max_bytes: int) -> Iterator[str]:
    """The first documents up to about max_bytes of text: the training sample."""
    total = 0
    for text in docs:
        yield text
        total += len(text)
        if total >= max_bytes:
            return
