"""The model file: one compressed .npz of plain arrays (no pickles), loaded with allow_pickle=False.

Keys: `vocab` (UTF-8, newline-joined words), `counts`, `total` (the corpus word statistics that stand in for the
corpus LM when no index is configured), `sentence.*` and `deletion.*` (the two networks), `critic` (lam, beta,
order), `thresholds` (faithfulness, support, saliency, coherence), `meta` (JSON: format, seed, corpus, per-round log).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from summarizer.corpus_lm import Unigram
from summarizer.critics import CriticParams, Thresholds
from summarizer.student import Net

FORMAT = 3  # 2: a coherence threshold and the sentence feature `dependence`; 3: `graph_centrality`
DEFAULT_PATH = Path(__file__).parent / "models" / "default.npz"
_NET_KEYS = ("mean", "std", "w1", "b1", "w2", "b2")


class ModelFormatError(ValueError):
    pass


@dataclass
class Model:
    vocab: list[str]
    counts: np.ndarray
    total: int
    sentence_net: Net
    deletion_net: Net
    params: CriticParams
    thresholds: Thresholds
    meta: dict[str, Any] = field(default_factory=dict)

    def unigram(self) -> Unigram:
        return Unigram(self.vocab, self.counts, self.total)

    @property
    def name(self) -> str:
        return str(self.meta.get("name", "gramdex-summarizer"))

    def save(self, path: Path) -> None:
        arrays: dict[str, np.ndarray] = {
            "vocab": np.frombuffer("\n".join(self.vocab).encode("utf-8"), dtype=np.uint8),
            "counts": self.counts.astype(np.uint32), "total": np.array([self.total], dtype=np.int64),
            "critic": np.array([self.params.lam, self.params.beta, self.params.order], dtype=np.float64),
            "thresholds": np.array([self.thresholds.faithfulness, self.thresholds.support,
                                    self.thresholds.saliency, self.thresholds.coherence], dtype=np.float64),
            "meta": np.frombuffer(json.dumps({**self.meta, "format": FORMAT}).encode("utf-8"), dtype=np.uint8)}
        for prefix, net in (("sentence", self.sentence_net), ("deletion", self.deletion_net)):
            arrays.update({f"{prefix}.{k}": a.astype(np.float32) for k, a in zip(_NET_KEYS, net.arrays(), strict=True)})
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:  # a file object keeps numpy from appending ".npz" to the name
            np.savez_compressed(f, **arrays)

    @classmethod
    def load(cls, path: Path = DEFAULT_PATH) -> Model:
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(z["meta"].tobytes().decode("utf-8"))
                if meta.get("format") != FORMAT:
                    raise ModelFormatError(f"{path}: model format {meta.get('format')!r}, expected {FORMAT}")
                nets = [Net(*(z[f"{p}.{k}"].astype(np.float64) for k in _NET_KEYS)) for p in ("sentence", "deletion")]
                lam, beta, order = (float(v) for v in z["critic"])
                f, s, sal, coh = (float(v) for v in z["thresholds"])
                vocab = z["vocab"].tobytes().decode("utf-8").split("\n")
                return cls(vocab, z["counts"].astype(np.int64), int(z["total"][0]), nets[0], nets[1],
                           CriticParams(lam, beta, int(order)), Thresholds(f, s, sal, coh), meta)
        except (OSError, KeyError, ValueError) as exc:
            if isinstance(exc, ModelFormatError):
                raise
            raise ModelFormatError(f"{path}: not a summarizer model: {exc}") from None
