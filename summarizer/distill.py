"""`gramdex distill`: expert iteration. The teacher proposes, the critics (∞-gram LM of a corpus index + cache
model of the document) keep what clears all thresholds, the student learns from the survivors, then proposes the
next round's candidates itself. Deterministic for a seed: every random draw is seeded by the document's number.

The unlabeled documents are dealt in two: 4 in 5 go into the corpus index behind P_C, 1 in 5 are distilled on.
A document must not be in the index it is judged by: P_C would then predict it verbatim and every PMI be ~0.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from summarizer import teacher
from summarizer.corpus_lm import InfiniGram
from summarizer.critics import CriticParams, Scores, Thresholds
from summarizer.features import DELETION_FEATURES, SENTENCE_FEATURES, deletion_features
from summarizer.model import Model
from summarizer.sentences import split
from summarizer.student import HIDDEN, Net, sample, select, train
from summarizer.summarize import Summarizer
from summarizer.word_index import build_word_index, read_documents

VOCAB = 30_000          # words kept in the model for index-free serving (~0.3 MB compressed)
SUPPORT = 0.95          # hard: at most 1 token in 20 outside a verbatim 3-token span of the document
LEAD_K = (1, 2, 3)      # a document's budget is the length of its first k sentences, k drawn per document
CALIBRATION_DOCS = 200


@dataclass
class Config:
    corpus: Path
    output: Path
    workdir: Path
    seed: int = 0
    train_docs: int = 1000
    heldout_docs: int = 150
    rounds: int = 3
    samples: int = 6
    workers: int = 2
    saliency_pct: float = 60.0   # a survivor must beat this share of random same-budget subsets in saliency
    faithfulness_pct: float = 10.0
    coherence_pct: float = 50.0  # ... and be at least as coherent as the median random subset


@dataclass
class DocResult:
    """What one document contributes to a round: sentence targets, deletion examples, counts for the log."""

    features: np.ndarray
    targets: np.ndarray
    deletions: list[tuple[np.ndarray, float]]
    proposed: int
    passed: int


Job = tuple[str, str, int, int, int]  # (mode, text, budget, document number, round)
_STATE: dict[str, Any] = {}


def _init(index: str, model_path: str, samples: int, seed: int) -> None:
    _STATE.update(lm=InfiniGram(Path(index)), samples=samples, seed=seed, path=None)
    _load(model_path)


def _load(model_path: str) -> Summarizer:
    if _STATE["path"] != model_path:
        _STATE["summarizer"], _STATE["path"] = Summarizer(Model.load(Path(model_path))), model_path
    return _STATE["summarizer"]


def _soft_targets(n: int, survivors: list[teacher.Candidate]) -> np.ndarray:
    """Rank-weighted share of the surviving candidates (best saliency first) that contain each sentence."""
    ranked = sorted(survivors, key=lambda c: -c.scores.saliency)
    weights = 0.7 ** np.arange(len(ranked))
    t = np.zeros(n)
    for w, c in zip(weights, ranked, strict=True):
        t[list(c.picks)] += w
    return t / max(weights.sum(), 1e-9)


def _work(arg: tuple[str, Job]) -> Any:
    model_path, (mode, text, budget, number, round_no) = arg
    s = _load(model_path)
    a = s.analyse(text)
    if len(a.doc) < 3:
        return None
    critic = a.critic.with_lm(_STATE["lm"])
    rng = np.random.default_rng([_STATE["seed"], number, round_no])
    if mode == "calibrate":  # random same-budget subsets: the reference population for the percentiles
        out = []
        for _ in range(5):
            picks = tuple(i for i in rng.permutation(len(a.doc)) if len(a.doc[i]) <= budget)
            chosen, used = [], 0
            for i in picks:
                if used + len(a.doc[i]) <= budget:
                    chosen.append(int(i))
                    used += len(a.doc[i])
            if chosen:
                out.append(teacher.candidate(critic, a.doc, chosen).scores)
        return out
    scores = s.sentence_scores(a)
    if mode == "heldout":
        sel = select(a.doc, scores, budget)
        segs = [a.doc[i] for i in sel.picks] if sel.truncated is None else [a.doc[sel.picks[0]][:sel.truncated]]
        return critic.score(segs, sel.picks)
    extractive = teacher.subsets(critic, a.doc, budget)
    if mode == "student":
        # the student's proposals join the teacher's pool: a round can add survivors, never lose the teacher's
        sels = [select(a.doc, scores, budget)] + [sample(a.doc, scores, budget, 1.0, rng)
                                                  for _ in range(_STATE["samples"])]
        known = {c.picks for c in extractive}
        uniq = sorted({x.picks for x in sels if x.truncated is None and x.picks} - known)
        extractive += [teacher.candidate(critic, a.doc, p) for p in uniq]
    thr = s.model.thresholds
    survivors = [c for c in extractive if thr.passes(c.scores)]
    proposed, dels = len(extractive), []
    for base in sorted(extractive, key=lambda c: -c.scores.saliency)[:2]:
        for comp in teacher.compressions(critic, a.doc, base):
            proposed += 1
            ok = thr.passes(comp.scores)
            survivors += [comp] if ok else []
            i, d = comp.deletions[-1]
            # worth deleting: the critics accept it and the summary carries at least as much saliency per token
            dense = comp.scores.saliency / comp.scores.tokens >= base.scores.saliency / base.scores.tokens
            dels.append((deletion_features(a.doc[i], d, s.unigram), float(ok and dense)))
    return DocResult(a.features, _soft_targets(len(a.doc), survivors), dels, proposed, len(survivors))


def _placeholder_net(width: int, seed: int) -> Net:
    return Net.init(np.zeros((1, width)), HIDDEN, np.random.default_rng(seed))


def _percentile(scores: list[Scores], what: str, pct: float) -> float:
    return float(np.percentile([getattr(s, what) for s in scores], pct))


def distill(cfg: Config, say: Any = print) -> Model:
    t0 = time.monotonic()
    docs = read_documents(cfg.corpus)
    index_docs = [d for i, d in enumerate(docs) if i % 5 != 0]
    pool = [d for i, d in enumerate(docs) if i % 5 == 0]
    order = np.random.default_rng(cfg.seed).permutation(len(pool))
    train_ids = [int(i) for i in order[:cfg.train_docs]]
    held_ids = [int(i) for i in order[cfg.train_docs:cfg.train_docs + cfg.heldout_docs]]
    # matched-length budgets: the length of the document's first k sentences, the lengths summaries are asked for
    lead_k = np.random.default_rng(cfg.seed + 1).choice(LEAD_K, size=len(pool))
    budgets = np.zeros(len(pool), dtype=np.int64)
    for i in (*train_ids, *held_ids):
        budgets[i] = max(1, sum(len(s.words) for s in split(pool[i])[:lead_k[i]]))
    cfg.workdir.mkdir(parents=True, exist_ok=True)
    index = cfg.workdir / "index"
    counts_file = cfg.workdir / "word_counts.json"
    if not (index / "index.json").exists():
        say(f"indexing {len(index_docs):,} documents at {index}")
        counts = build_word_index(index_docs, index)
        counts_file.write_text(json.dumps(counts), encoding="utf-8")
    counts = Counter(json.loads(counts_file.read_text(encoding="utf-8")))
    top = counts.most_common(VOCAB)
    params = CriticParams()
    meta: dict[str, Any] = {"name": "gramdex-summarizer", "seed": cfg.seed, "corpus": cfg.corpus.name,
                            "train_docs": cfg.train_docs, "heldout_docs": cfg.heldout_docs, "rounds": []}
    model = Model([w for w, _ in top], np.array([c for _, c in top]), sum(counts.values()),
                  _placeholder_net(len(SENTENCE_FEATURES), cfg.seed),
                  _placeholder_net(len(DELETION_FEATURES), cfg.seed), params, Thresholds(-np.inf, SUPPORT, -np.inf),
                  meta)

    def jobs(mode: str, ids: list[int], r: int, step: str) -> list[tuple[str, Job]]:
        """Workers load the model from a file named per round and step, so each sees the current student."""
        path = cfg.workdir / f"round{r}-{step}.npz"
        model.save(path)
        return [(str(path), (mode, pool[i], int(budgets[i]), i, r)) for i in ids]

    calibration = jobs("calibrate", train_ids[:CALIBRATION_DOCS], 0, "calibrate")
    ctx = get_context("fork")
    with ctx.Pool(cfg.workers, _init, (str(index), calibration[0][0], cfg.samples, cfg.seed)) as workers:
        calib = [s for out in workers.map(_work, calibration, 8) if out for s in out]
        model.thresholds = Thresholds(_percentile(calib, "faithfulness", cfg.faithfulness_pct), SUPPORT,
                                      _percentile(calib, "saliency", cfg.saliency_pct),
                                      _percentile(calib, "coherence", cfg.coherence_pct))
        say(f"thresholds from {len(calib)} random subsets: {model.thresholds}")
        features: list[np.ndarray] = []
        targets: list[np.ndarray] = []
        del_x: list[np.ndarray] = []
        del_y: list[float] = []
        for r in range(cfg.rounds + 1):
            mode = "teacher" if r == 0 else "student"
            results = [x for x in workers.map(_work, jobs(mode, train_ids, r, "propose"), 8) if x is not None]
            proposed, passed = sum(x.proposed for x in results), sum(x.passed for x in results)
            for x in results:
                if x.targets.any():
                    features.append(x.features)
                    targets.append(x.targets)
                for f, y in x.deletions:
                    del_x.append(f)
                    del_y.append(y)
            feats, tgts = np.concatenate(features), np.concatenate(targets)
            # soft targets accumulate over rounds: earlier survivors stay evidence, as in expert iteration
            model.sentence_net, losses = train(feats, tgts, np.ones(len(tgts)), seed=cfg.seed + r)
            dx, dy = np.array(del_x), np.array(del_y)
            model.deletion_net, _ = train(dx, dy, np.ones(len(dy)), hidden=4, seed=cfg.seed + r)
            held = [x for x in workers.map(_work, jobs("heldout", held_ids, r, "trained"), 8) if x is not None]
            entry = {"round": r, "proposer": mode, "proposed": proposed, "passed": passed,
                     "pass_rate": round(passed / max(1, proposed), 4), "train_loss": round(losses[-1], 5),
                     "deletions_accepted": round(float(dy.mean()) if len(dy) else 0.0, 4),
                     "heldout_saliency": round(float(np.mean([h.saliency for h in held])), 5),
                     "heldout_faithfulness": round(float(np.mean([h.faithfulness for h in held])), 4),
                     "heldout_support": round(float(np.mean([h.support for h in held])), 4),
                     "heldout_coherence": round(float(np.mean([h.coherence for h in held])), 4),
                     "heldout_pass_rate": round(float(np.mean([model.thresholds.passes(h) for h in held])), 4),
                     "seconds": round(time.monotonic() - t0, 1)}
            meta["rounds"].append(entry)
            say(json.dumps(entry))
    model.save(cfg.output)
    return model


def add_distill_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    p = sub.add_parser("distill", help="distill the summarizer from unlabeled documents",
                       description="Expert iteration with ∞-gram critics; writes one .npz model.")
    p.add_argument("--corpus", type=Path, required=True, help="jsonl(.gz) of unlabeled documents (field document)")
    p.add_argument("--output", "-o", type=Path, required=True, help="model file to write (.npz)")
    p.add_argument("--workdir", type=Path, required=True, help="where the corpus index and round models go")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-docs", type=int, default=1000)
    p.add_argument("--heldout-docs", type=int, default=150)
    p.add_argument("--rounds", type=int, default=3, help="student rounds after the teacher round")
    p.add_argument("--workers", type=int, default=2)
    return p


def run_distill(a: argparse.Namespace) -> int:
    cfg = Config(a.corpus, a.output, a.workdir, seed=a.seed, train_docs=a.train_docs, heldout_docs=a.heldout_docs,
                 rounds=a.rounds, workers=a.workers)
    distill(cfg, say=lambda m: print(m, file=sys.stderr, flush=True))
    return 0
