"""A word-level gramdex index over documents, tokenized exactly as the summarizer tokenizes.

The critics compare the cache model (over words of the document) with P_C token by token, so P_C must use the
same tokens: a `tokenizers` WordLevel model over whitespace-joined summarizer words, built by `gramdex build`.
"""

from __future__ import annotations

import gzip
import json
import tempfile
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from index_tools.build import BuildOptions, build_index
from summarizer.sentences import words

UNK = "[UNK]"
MAX_VOCAB = 65_000  # u16 ids, below the all-0xFF separator


def read_documents(path: Path, field: str = "document") -> list[str]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:  # type: ignore[operator]
        return [json.loads(line)[field] for line in f if line.strip()]


def word_level_tokenizer(counts: Counter[str], vocab_size: int = MAX_VOCAB) -> str:
    vocab = {UNK: 0}
    for w, _ in counts.most_common(vocab_size - 1):
        vocab[w] = len(vocab)
    return json.dumps({
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": [], "normalizer": None,
        "pre_tokenizer": {"type": "WhitespaceSplit"}, "post_processor": None, "decoder": None,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": UNK}})


def build_word_index(documents: Iterable[str], output: Path, threads: int = 2) -> Counter[str]:
    """Index the documents' words at `output`; returns the word counts (the model keeps the frequent ones)."""
    counts: Counter[str] = Counter()
    with tempfile.TemporaryDirectory() as tmp:
        text_path = Path(tmp) / "docs.jsonl"
        with text_path.open("w", encoding="utf-8") as f:
            for doc in documents:
                toks = words(doc)
                counts.update(toks)
                f.write(json.dumps({"text": " ".join(toks)}) + "\n")
        tok_path = Path(tmp) / "tokenizer.json"
        tok_path.write_text(word_level_tokenizer(counts), encoding="utf-8")
        build_index(BuildOptions(inputs=[text_path], output=output, tokenizer=tok_path, threads=threads, quiet=True))
    return counts
