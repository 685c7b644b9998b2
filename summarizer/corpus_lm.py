"""P_C, the corpus language model behind the critics: the ∞-gram LM of a gramdex index, or, with no index,
the unigram statistics stored in the model.

The ∞-gram estimate alone is zero whenever the longest matching context was never followed by the word, so it is
interpolated with the unigram the same way the cache interpolates over suffix lengths:
P_C(w | h) = (c(h* w) + gamma * P_1(w)) / (c(h*) + gamma), h* the longest suffix of h found in the corpus, and
P_1(w) = (c(w) + 1) / (N + V + 1) (add-one, with one extra slot shared by all unseen words), so log P_C > -inf.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from native.engine import Engine
from native.manifest import read_tokenizer_text


class CorpusLM(Protocol):
    name: str

    def logprobs(self, words: Sequence[str]) -> np.ndarray:
        """log P_C(w_i | w_<i) for every word, contexts starting at words[0]."""
        ...


class Unigram:
    """Word counts (the model's stored statistics, or an index's unigram table)."""

    def __init__(self, vocab: Sequence[str], counts: np.ndarray, total: int) -> None:
        self.vocab = list(vocab)
        self.index = {w: i for i, w in enumerate(self.vocab)}
        denom = float(total + len(self.vocab) + 1)
        self.logp = np.log((counts.astype(np.float64) + 1.0) / denom)
        self.unseen = float(np.log(1.0 / denom))
        self.name = "unigram"

    def logprob(self, word: str) -> float:
        i = self.index.get(word)
        return self.unseen if i is None else float(self.logp[i])

    def logprobs(self, words: Sequence[str]) -> np.ndarray:
        return np.array([self.logprob(w) for w in words], dtype=np.float64)


class NotWordLevelError(ValueError):
    """The index exists but its tokenizer is not a word-level one: its token ids are not the critics' words."""


class InfiniGram:
    """The ∞-gram LM of a word-level gramdex index (built by `gramdex distill` with summarizer's tokenizer)."""

    def __init__(self, index_dir: Path, gamma: float = 1.0) -> None:
        self.engine = Engine(index_dir)
        manifest = self.engine.manifest
        name = manifest.tokenizer_file if manifest is not None and manifest.tokenizer_file else "tokenizer.json"
        tok = json.loads(read_tokenizer_text(index_dir / name))
        model = tok.get("model") if isinstance(tok.get("model"), dict) else {}
        kind = model.get("type")
        if kind != "WordLevel" or not model.get("unk_token"):
            # a subword index would silently score word strings as the wrong tokens
            raise NotWordLevelError(f"{index_dir} is not a word-level index (its tokenizer is {kind or 'unknown'}): "
                                    "the summarizer's critics need one built by gramdex distill")
        self.ids: dict[str, int] = tok["model"]["vocab"]
        self.unk = self.ids[tok["model"]["unk_token"]]
        counts = self.engine.unigram_counts(0)
        id_counts = np.array([counts.get(i, 0) for i in range(len(self.ids))], dtype=np.int64)
        total = sum(c for i, c in counts.items() if i < len(self.ids))
        self.gamma = gamma
        # the id -> word table is only used to give the unigram the corpus counts
        vocab = [""] * len(self.ids)
        for w, i in self.ids.items():
            vocab[i] = w
        self.unigram = Unigram(vocab, id_counts, total)
        self.name = f"infini-gram:{index_dir}"

    def logprobs(self, words: Sequence[str]) -> np.ndarray:
        if not words:
            return np.zeros(0)
        ids = [self.ids.get(w, self.unk) for w in words]
        scores = self.engine.score(ids)
        uni = np.array([self.unigram.unseen if i == self.unk else self.unigram.logp[i] for i in ids])
        prompt = np.array([s.prompt_cnt if s.suffix_len > 0 else 0 for s in scores], dtype=np.float64)
        cont = np.array([s.cont_cnt if s.suffix_len > 0 else 0 for s in scores], dtype=np.float64)
        return np.log((cont + self.gamma * np.exp(uni)) / (prompt + self.gamma))
