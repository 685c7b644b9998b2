"""Query n-grams for benchmarks: random spans of held-out Wikipedia text (`heldout_dev.txt`, articles that are
not in the indexed corpus), tokenized with the shared BPE tokenizer the benchmark index uses."""

from __future__ import annotations

import random

from bench.corpus_index import SHARED, load_tokenizer

HELDOUT = SHARED / "corpora" / "text" / "heldout_dev.txt"


class NgramSampler:
    def __init__(self, seed: int, max_articles: int | None = None) -> None:
        self.articles = [a for a in HELDOUT.read_text(encoding="utf-8").split("\n\n") if a.strip()][:max_articles]
        encodings = load_tokenizer().encode_batch(self.articles, add_special_tokens=False)
        self.streams = [e.ids for e in encodings if len(e.ids) > 60]
        self.rng = random.Random(seed)

    def ngram(self, lo: int, hi: int) -> list[int]:
        """A span of lo..hi tokens from a random held-out article."""
        s = self.rng.choice(self.streams)
        k = self.rng.randint(lo, hi)
        i = self.rng.randrange(len(s) - k)
        return s[i:i + k]
