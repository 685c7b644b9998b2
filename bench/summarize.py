"""Summarizer benchmark on the labeled dev set: ROUGE-1/2/Lsum (rouge-score, stemming on) per source for the
student, the teacher, Lead-3 (Lead-1 for one-sentence sources), LexRank and TextRank (sumy), every system
given the same token budget: the Lead baseline's own length; the student's gap to each baseline with a 95%
paired-bootstrap interval. Also the student's critic scores and its latency, in process and (with --url) through
POST /v1/summarize.

    python -m bench.summarize --index /tmp/sumwork/full/index --per-source 200 [--url http://127.0.0.1:8000]
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from rouge_score import rouge_scorer
from sumy.models.dom import ObjectDocumentModel, Paragraph
from sumy.models.dom import Sentence as SumySentence
from sumy.nlp.stemmers import Stemmer
from sumy.summarizers.lex_rank import LexRankSummarizer
from sumy.summarizers.text_rank import TextRankSummarizer
from sumy.utils import get_stop_words

from bench.paired_bootstrap import paired_difference
from summarizer import teacher
from summarizer.corpus_lm import CorpusLM, InfiniGram
from summarizer.model import DEFAULT_PATH, Model
from summarizer.sentences import words
from summarizer.summarize import Summarizer

DEV = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "summarization" / "dev.jsonl.gz"
ONE_SENTENCE = {"scitldr_a", "aeslc"}      # one-sentence references: Lead-1
SOURCES = ("cnn_dailymail", "scitldr_a", "sumpubmed", "aeslc", "dialogsum")
METRICS = ("R-1", "R-2", "R-Lsum")


class _Words:
    """sumy's tokenizer interface over the summarizer's own tokenizer (nothing to download)."""

    def to_words(self, text: str) -> list[str]:
        return [w for w in words(text) if any(c.isalnum() for c in w)]


def _sumy_ratings(kind: str, texts: list[str]) -> np.ndarray:
    tok = _Words()
    doc = ObjectDocumentModel([Paragraph([SumySentence(t, tok) for t in texts])])
    if kind == "lexrank":
        s = LexRankSummarizer(Stemmer("english"))
        s.stop_words = get_stop_words("english")
        sets = [s._to_words_set(x) for x in doc.sentences]
        matrix = s._create_matrix(sets, s.threshold, s._compute_tf(sets), s._compute_idf(sets))
        return np.asarray(s.power_method(matrix, s.epsilon), dtype=float)
    t = TextRankSummarizer(Stemmer("english"))
    t.stop_words = get_stop_words("english")
    ratings = t.rate_sentences(doc)
    return np.array([ratings[x] for x in doc.sentences], dtype=float)


def _greedy(lengths: list[int], ratings: np.ndarray, budget: int) -> list[int]:
    picks, used = [], 0
    for i in np.argsort(-ratings, kind="stable"):
        if used + lengths[i] <= budget:
            picks.append(int(i))
            used += lengths[i]
    return sorted(picks)


def load(path: Path, per_source: int, start: int = 0) -> dict[str, list[dict[str, Any]]]:
    """Per source, its non-empty documents number `start` to `start + per_source` (file order)."""
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    seen: dict[str, int] = defaultdict(int)
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            if not d["document"].strip():
                continue
            seen[d["source"]] += 1
            if seen[d["source"]] > start and len(rows[d["source"]]) < per_source:
                rows[d["source"]].append(d)
    return rows


def run(args: argparse.Namespace) -> dict[str, Any]:
    model = Model.load(args.model)
    student = Summarizer(model)
    lm: CorpusLM = InfiniGram(args.index) if args.index else student.unigram
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeLsum"], use_stemmer=True)
    report: dict[str, Any] = {}
    latencies: list[float] = []
    http_docs: list[str] = []
    for source, rows in load(args.dev, args.per_source, args.start).items():
        if source not in args.sources:
            continue
        res: dict[str, list[list[float]]] = defaultdict(list)
        critic_scores: list[tuple[float, float, float]] = []
        k = 1 if source in ONE_SENTENCE else 3
        for d in rows:
            a = student.analyse(d["document"])
            if not a.doc:
                continue
            segs = a.doc
            lengths = [len(s) for s in segs]
            budget = sum(lengths[:k])
            texts = [d["document"][s.start:s.end] for s in a.sentences]
            t0 = time.perf_counter()
            out = student.summarize(d["document"], max_tokens=budget)
            elapsed = time.perf_counter() - t0
            if 700 <= len(words(d["document"])) <= 900 or source == "cnn_dailymail":
                latencies.append(elapsed)
                http_docs.append(d["document"])
            # the timed call above analyses the text itself (that is part of its latency); this one reuses `a`
            comp = student.summarize(d["document"], max_tokens=budget, mode="compressive", analysis=a)
            critic = a.critic.with_lm(lm)
            pool = teacher.subsets(critic, segs, budget)
            best = teacher.best(pool, model.thresholds) or (pool[0] if pool else None)
            systems = {
                "student": [p.text for p in out.sentences],
                "student (compressive)": [p.text for p in comp.sentences],
                "teacher": [texts[i] for i in best.picks] if best else [],
                f"lead-{k}": texts[:k],
                "lexrank": [texts[i] for i in _greedy(lengths, _sumy_ratings("lexrank", texts), budget)],
                "textrank": [texts[i] for i in _greedy(lengths, _sumy_ratings("textrank", texts), budget)],
            }
            refs = d.get("references") or [d["summary"]]
            for name, sents in systems.items():
                r = scorer.score_multi(refs, "\n".join(sents))
                res[name].append([r["rouge1"].fmeasure, r["rouge2"].fmeasure, r["rougeLsum"].fmeasure])
            sc = critic.score([a.doc[p.index] for p in out.sentences], [p.index for p in out.sentences])
            critic_scores.append((out.scores.support, sc.faithfulness, sc.saliency, sc.coherence))
        if not critic_scores:   # --start past this source's last document
            continue
        report[source] = {
            "docs": len(critic_scores),
            "rouge": {name: [round(100 * float(v), 2) for v in np.mean(vals, 0)] for name, vals in res.items()},
            "student_minus": {name: _differences(res["student"], res[name])
                              for name in (f"lead-{k}", "lexrank", "textrank")},
            "student_support": round(float(np.mean([c[0] for c in critic_scores])), 4),
            "student_faithfulness": round(float(np.mean([c[1] for c in critic_scores])), 3),
            "student_saliency": round(float(np.mean([c[2] for c in critic_scores])), 4),
            "student_coherence": round(float(np.mean([c[3] for c in critic_scores])), 4),
        }
        print(json.dumps({source: report[source]}), flush=True)
    if latencies:  # none when the chosen sources have no 700-900-word document (sumpubmed alone)
        report["latency_in_process_ms"] = {"p50": round(1000 * float(np.percentile(latencies, 50)), 2),
                                           "p99": round(1000 * float(np.percentile(latencies, 99)), 2)}
    if args.url:
        report["latency_http_ms"] = http_latency(args.url, http_docs[:args.http_docs])
    return report


def _differences(student: list[list[float]], other: list[list[float]]) -> dict[str, list[float]]:
    """Per metric: the student's mean ROUGE minus the other system's, its 95% paired-bootstrap interval and the
    share of resamples in which the student is not ahead, in ROUGE points."""
    s, o = np.array(student), np.array(other)
    out = {}
    for m, name in enumerate(METRICS):
        d = paired_difference(s[:, m], o[:, m])
        out[name] = [round(100 * d.mean, 2), round(100 * d.low, 2), round(100 * d.high, 2), round(d.p_not_above, 4)]
    return out


def http_latency(url: str, docs: list[str]) -> dict[str, float]:
    import httpx

    times = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for text in docs:
            t0 = time.perf_counter()
            r = client.post("/v1/summarize", json={"text": text, "max_tokens": 80})
            r.raise_for_status()
            times.append(time.perf_counter() - t0)
    return {"docs": len(times), "p50": round(1000 * float(np.percentile(times, 50)), 2),
            "p99": round(1000 * float(np.percentile(times, 99)), 2)}


def table(report: dict[str, Any]) -> str:
    lines = ["| source | system | R-1 | R-2 | R-Lsum |", "|---|---|---:|---:|---:|"]
    for source in SOURCES:
        if source not in report:
            continue
        for name, (r1, r2, rl) in report[source]["rouge"].items():
            lines.append(f"| {source} | {name} | {r1:.2f} | {r2:.2f} | {rl:.2f} |")
    lines += ["", "student minus baseline, ROUGE points: mean [95% paired-bootstrap interval] (share of resamples "
                  "where the student is not ahead)",
              "| source | baseline | R-1 | R-2 | R-Lsum |", "|---|---|---|---|---|"]
    for source in SOURCES:
        for name, diffs in report.get(source, {}).get("student_minus", {}).items():
            cells = [f"{m:+.2f} [{lo:+.2f}, {hi:+.2f}] ({p:.3f})" for m, lo, hi, p in diffs.values()]
            lines.append(f"| {source} | {name} | {' | '.join(cells)} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dev", type=Path, default=DEV)
    p.add_argument("--model", type=Path, default=DEFAULT_PATH)
    p.add_argument("--index", type=Path, help="word-level corpus index for the teacher's critics (gramdex distill's)")
    p.add_argument("--per-source", type=int, default=200)
    p.add_argument("--start", type=int, default=0,
                   help="skip each source's first START documents: report on documents no choice was made on "
                        "(README: Choices made by dev ROUGE)")
    p.add_argument("--sources", nargs="+", default=list(SOURCES), choices=SOURCES,
                   help="sources to run (sumpubmed's ~4,000-word papers make the teacher column slow)")
    p.add_argument("--url", help="a running gateway, to time POST /v1/summarize")
    p.add_argument("--http-docs", type=int, default=200)
    p.add_argument("--json", type=Path, help="write the full report here")
    args = p.parse_args()
    report = run(args)
    print(table(report))
    print(json.dumps({k: v for k, v in report.items() if k.startswith("latency")}))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
