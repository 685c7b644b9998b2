"""Inference: text -> sentences -> student scores -> selection (and compression) under the budget, with
the critics' scores of the result. Milliseconds per news article, numpy only."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from summarizer import compress
from summarizer.corpus_lm import CorpusLM
from summarizer.critics import DocumentCritic, Scores, Segment
from summarizer.cues import states_contribution
from summarizer.features import SENTENCE_FEATURES, deletion_features, sentence_features
from summarizer.model import Model
from summarizer.sentences import Sentence, split
from summarizer.student import Selection, select

MODES = ("extractive", "compressive")
# Inference-time position prior: selection scores are the student's standardised logits plus
# POSITION_PRIOR * -log(1 + sentence number). News, abstracts, e-mails and dialogues put the point first; the
# student learns position from the critics' survivors but underweights it (it trailed Lead-3 on news). Long texts
# (scientific papers) open with background, so the prior fades out between LONG_DOC[0] and LONG_DOC[1] sentences.
# The strength was chosen on dev documents 100-199 of each source (see README); distillation does not use it.
POSITION_PRIOR = 1.5
LONG_DOC = (60, 120)
# Where the position prior fades out, a centrality prior fades in: CENTRALITY_PRIOR times the document's
# standardised graph centrality (LexRank's graph, the `graph_centrality` feature), what a long paper is about
# rather than how it opens. Chosen on the same dev documents; it changes nothing below LONG_DOC[0] sentences.
CENTRALITY_PRIOR = 0.75
# Selection fills the budget as a knapsack over the SEARCH best-scored sentences, each worth its length times
# exp(score / TEMPERATURE), then greedily (student.select): at matched length, a summary that leaves budget unused
# for a sentence scored only slightly higher loses words. Both chosen on the same dev documents.
SEARCH = 6
TEMPERATURE = 0.5
# A sentence in which the authors state their contribution ("we propose ...", cues.states_contribution) gets
# CUE_PRIOR added to its score: in an abstract it outweighs the position prior's preference for the opening
# background sentence. News, e-mails and dialogues hardly have such sentences. Chosen on dev documents 100-699 of
# scitldr_a and aeslc, 100-1099 of cnn_dailymail and 100-249 of dialogsum (see README).
CUE_PRIOR = 6.0


_GRAPH = SENTENCE_FEATURES.index("graph_centrality")


class BudgetError(ValueError):
    """The requested length cannot be met (no budget, a non-positive one, or both forms at once)."""


@dataclass(frozen=True, slots=True)
class Picked:
    index: int                          # sentence number in the document
    text: str
    pieces: tuple[tuple[int, int], ...]  # character ranges of the input that make up `text`


@dataclass(frozen=True, slots=True)
class Summary:
    text: str
    sentences: tuple[Picked, ...]
    scores: Scores
    budget: int
    model: str


@dataclass
class Analysis:
    """Everything the student needs about a document; distillation reuses it for its proposals."""

    sentences: list[Sentence]
    doc: list[Segment]
    critic: DocumentCritic          # over the model's unigram statistics: the student's feature source
    features: np.ndarray


def budget_for(n_tokens: int, max_tokens: int | None, ratio: float | None) -> int:
    if (max_tokens is None) == (ratio is None):
        raise BudgetError("give exactly one of max_tokens and ratio")
    if max_tokens is not None:
        if max_tokens < 1:
            raise BudgetError(f"max_tokens must be at least 1, not {max_tokens}")
        return max_tokens
    assert ratio is not None
    if not 0 < ratio <= 1:
        raise BudgetError(f"ratio must be in (0, 1], not {ratio}")
    return max(1, round(ratio * n_tokens))


class Summarizer:
    def __init__(self, model: Model) -> None:
        self.model = model
        self.unigram = model.unigram()

    def analyse(self, text: str) -> Analysis:
        sentences = split(text)
        doc = [s.words for s in sentences]
        critic = DocumentCritic(doc, self.unigram, self.model.params)
        return Analysis(sentences, doc, critic, sentence_features(doc, self.unigram, critic))

    def sentence_scores(self, a: Analysis) -> np.ndarray:
        return self.model.sentence_net.logits(a.features) if a.doc else np.zeros(0)

    def selection_scores(self, a: Analysis) -> np.ndarray:
        """The student's scores standardised per document, plus the position prior, or in long documents the
        centrality prior, plus the cue prior (see POSITION_PRIOR, CENTRALITY_PRIOR and CUE_PRIOR)."""
        n = len(a.doc)
        if n == 0:
            return np.zeros(0)
        raw = self.sentence_scores(a)
        z = (raw - raw.mean()) / (raw.std() + 1e-9)
        fade = float(np.clip((LONG_DOC[1] - n) / (LONG_DOC[1] - LONG_DOC[0]), 0.0, 1.0))
        scores = z - POSITION_PRIOR * fade * np.log1p(np.arange(n))
        if fade < 1.0:
            g = a.features[:, _GRAPH]
            scores = scores + CENTRALITY_PRIOR * (1.0 - fade) * (g - g.mean()) / (g.std() + 1e-9)
        return scores + CUE_PRIOR * np.array([states_contribution(seg) for seg in a.doc], dtype=float)

    def planned_deletions(self, a: Analysis) -> dict[int, list[compress.Deletion]]:
        """Per sentence, the non-overlapping deletions the student expects the critics to accept; in the first
        sentence, a news dateline ("tulsa , oklahoma ( cnn )") always goes: it is boilerplate."""
        plan: dict[int, list[compress.Deletion]] = {}
        for i, seg in enumerate(a.doc):
            taken: set[int] = set()
            if i == 0 and (dl := compress.dateline(seg)) is not None:
                plan[0] = [dl]
                taken |= set(range(dl.start, dl.end))
            props = compress.deletions(seg)
            if not props:
                continue
            p = self.model.deletion_net.logits(np.array([deletion_features(seg, d, self.unigram) for d in props]))
            for j in np.argsort(-p):
                d = props[j]
                span = set(range(d.start, d.end))
                if p[j] > 0 and not span & taken and len(seg) - len(taken) - len(span) >= 4:
                    plan.setdefault(i, []).append(d)
                    taken |= span
        return plan

    def summarize(self, text: str, *, max_tokens: int | None = None, ratio: float | None = None,
                  mode: str = "extractive", lm: CorpusLM | None = None, analysis: Analysis | None = None) -> Summary:
        """`analysis`: the text's own, where the caller has it already (analysing is the costly part)."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        a = analysis if analysis is not None else self.analyse(text)
        budget = budget_for(sum(len(s) for s in a.doc), max_tokens, ratio)
        plan = self.planned_deletions(a) if mode == "compressive" else {}
        sel = select(a.doc, self.selection_scores(a), budget, plan, search=SEARCH, temperature=TEMPERATURE,
                     allow_wordless=False)
        picked = render(text, a.sentences, sel)
        segs = [tuple(w for w in compress.apply(a.doc[p.index], [d for i, d in sel.deletions if i == p.index]))
                for p in picked]
        if sel.truncated is not None:
            segs = [segs[0][:sel.truncated]]
        critic = a.critic if lm is None else a.critic.with_lm(lm)
        scores = critic.score(segs, [p.index for p in picked])
        return Summary(" ".join(p.text for p in picked), picked, scores, budget, self.model.name)


def render(text: str, sentences: list[Sentence], sel: Selection) -> tuple[Picked, ...]:
    out = []
    for i in sel.picks:
        s = sentences[i]
        gone = {k for j, d in sel.deletions if j == i for k in range(d.start, d.end)}
        keep = [k for k in range(len(s.words)) if k not in gone]
        if sel.truncated is not None:
            keep = keep[:sel.truncated]
        kept = set(keep)
        pieces: list[tuple[int, int]] = []
        for k in keep:
            a, b = s.spans[k]
            if pieces and (k - 1) in kept:
                pieces[-1] = (pieces[-1][0], b)
            else:
                pieces.append((a, b))
        out.append(Picked(i, " ".join(text[a:b] for a, b in pieces), tuple(pieces)))
    return tuple(out)
