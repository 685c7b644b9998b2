"""The student's training converges, the model file round-trips, inference honours budgets and offsets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from summarizer.critics import CriticParams, Thresholds
from summarizer.features import SENTENCE_FEATURES
from summarizer.model import Model
from summarizer.student import Net, select, train
from summarizer.summarize import BudgetError, Summarizer

TEXT = ("( cnn ) the city council approved a new budget on monday . the budget cuts funding for parks . "
        "council members said the parks budget would be restored next year . "
        "residents protested the cuts , which were announced last week . the mayor , a former teacher , "
        "defended the budget . \" we had no choice , \" she said .")


def test_training_converges_on_a_small_set() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 5))
    target = 1 / (1 + np.exp(-(2 * x[:, 0] - 3 * x[:, 1] * x[:, 2])))   # soft labels with an interaction
    net, losses = train(x, target, np.ones(300), epochs=600, seed=1)
    floor = -np.mean(target * np.log(target) + (1 - target) * np.log(1 - target))  # entropy of the soft labels
    assert losses[-1] < losses[0] - 0.1
    assert losses[-1] - floor < 0.02
    pred = 1 / (1 + np.exp(-net.logits(x)))
    assert np.corrcoef(pred, target)[0, 1] > 0.97


def _model(tmp_path: Path) -> Model:
    rng = np.random.default_rng(0)
    from summarizer.features import DELETION_FEATURES, SENTENCE_FEATURES

    nets = [Net.init(rng.normal(size=(4, len(f))), 4, rng) for f in (SENTENCE_FEATURES, DELETION_FEATURES)]
    m = Model(["the", "budget", "parks"], np.array([100, 5, 3]), 1000, nets[0], nets[1], CriticParams(),
              Thresholds(1.0, 0.95, 0.1), {"name": "test-model"})
    m.save(tmp_path / "m.npz")
    return Model.load(tmp_path / "m.npz")


def test_model_file_round_trips(tmp_path: Path) -> None:
    m = _model(tmp_path)
    assert m.vocab == ["the", "budget", "parks"] and m.total == 1000 and m.name == "test-model"
    assert m.thresholds == Thresholds(1.0, 0.95, 0.1)
    (tmp_path / "bad.npz").write_bytes(b"not a model")
    with pytest.raises(ValueError):
        Model.load(tmp_path / "bad.npz")


@pytest.mark.parametrize("mode", ["extractive", "compressive"])
def test_summary_respects_budget_and_offsets(tmp_path: Path, mode: str) -> None:
    s = Summarizer(_model(tmp_path)).summarize(TEXT, max_tokens=25, mode=mode)
    assert 0 < s.scores.tokens <= 25 and s.budget == 25
    for p in s.sentences:
        assert " ".join(TEXT[a:b] for a, b in p.pieces) == p.text
    if mode == "extractive":
        assert s.scores.support == 1.0


def test_default_model_summarizes_without_an_index() -> None:
    s = Summarizer(Model.load()).summarize(TEXT, ratio=0.4)
    assert s.text and s.scores.support == 1.0 and s.model


def test_selection_blocks_repeated_trigrams_and_cuts_when_nothing_fits() -> None:
    doc = [("a", "b", "c", "d"), ("a", "b", "c", "e"), ("x", "y")]
    assert select(doc, np.array([3.0, 2.0, 1.0]), 10).picks == (0, 2)
    cut = select(doc, np.array([3.0, 2.0, 1.0]), 2)
    assert cut.picks == (2,) and cut.truncated is None
    cut = select([("a", "b", "c")], np.array([1.0]), 2)
    assert cut.truncated == 2


def test_impossible_budgets() -> None:
    s = Summarizer(Model.load())
    for kwargs in ({}, {"max_tokens": 0}, {"ratio": 1.5}, {"max_tokens": 5, "ratio": 0.5}):
        with pytest.raises(BudgetError):
            s.summarize(TEXT, **kwargs)


def test_teacher_pool_has_leading_sentences_and_the_critics_choose() -> None:
    from summarizer import teacher
    from summarizer.critics import DocumentCritic
    from summarizer.sentences import split

    s = Summarizer(Model.load())
    doc = [x.words for x in split(TEXT)]
    critic = DocumentCritic(doc, s.unigram, s.model.params)
    budget = sum(len(x) for x in doc[:2])
    pool = teacher.subsets(critic, doc, budget)
    picks = [c.picks for c in pool]
    assert (0,) in picks and (0, 1) in picks and len(set(picks)) == len(picks)
    assert all(c.scores.tokens <= budget for c in pool)
    assert [c.scores.saliency for c in pool] == sorted((c.scores.saliency for c in pool), reverse=True)
    everything = Thresholds(-np.inf, 0.0, -np.inf)
    assert teacher.best(pool, everything) == pool[0]
    assert teacher.best(pool, Thresholds(np.inf, 0.0, -np.inf)) is None


def test_dateline_is_boilerplate_only_at_the_start() -> None:
    from summarizer.compress import dateline
    from summarizer.sentences import words

    d = dateline(words("Tulsa, Oklahoma (CNN) Amid growing scrutiny, a new report raises an allegation ."))
    assert d is not None and (d.start, d.end, d.rule) == (0, 6, "dateline")
    assert dateline(words("(The Hollywood Reporter) The film is heading to television .")).end == 5
    assert dateline(words("The budget (approved on Monday) cuts funding for parks .")) is None   # not a dateline
    assert dateline(words("( cnn ) hello .")) is None                                           # nothing left
    for sep in ("-", "--", "—"):  # wire copy separates the credit from the text with a dash: it goes too
        line = words(f"WASHINGTON (Reuters) {sep} The Federal Reserve held rates steady on Wednesday.")
        assert line[dateline(line).end:][:2] == ["the", "federal"]
    s = Summarizer(Model.load()).summarize(TEXT, max_tokens=40, mode="compressive")
    assert s.sentences[0].index == 0 and s.text.startswith("the city council") and s.sentences[0].pieces[0][0] == 8


def test_redundancy_is_repeated_content_not_shared_grammar() -> None:
    from summarizer.student import content_trigrams

    assert content_trigrams(tuple("one of the people said".split())) == set()
    assert ("new", "budget", "plan") in content_trigrams(tuple("the new budget plan".split()))
    doc = [tuple("one of the councils approved the new budget plan".split()),
           tuple("one of the members said so".split()), tuple("the new budget plan was cut".split())]
    assert select(doc, np.array([3.0, 2.0, 1.0]), 30).picks == (0, 1)


def test_position_prior_fades_in_long_documents() -> None:
    from summarizer import summarize as sm

    s = Summarizer(Model.load())
    short = s.analyse(TEXT)
    base = s.sentence_scores(short)
    z = (base - base.mean()) / base.std()
    assert np.allclose(s.selection_scores(short) - z, -sm.POSITION_PRIOR * np.log1p(np.arange(len(short.doc))))
    long_text = " ".join(f"sentence number {i} talks about topic {i % 7} ." for i in range(sm.LONG_DOC[1] + 5))
    a = s.analyse(long_text)
    raw = s.sentence_scores(a)
    g = a.features[:, SENTENCE_FEATURES.index("graph_centrality")]
    # past LONG_DOC[1] sentences no position prior is left, and the centrality prior has taken its place
    assert np.allclose(s.selection_scores(a), (raw - raw.mean()) / (raw.std() + 1e-9)
                       + sm.CENTRALITY_PRIOR * (g - g.mean()) / (g.std() + 1e-9))


def test_knapsack_selection_fills_the_budget() -> None:
    doc = [("a", "b", "c", "d", "e", "f"), ("g", "h", "i", "j", "k"), ("l", "m", "n", "o", "p"), ("q",)]
    scores = np.array([1.0, 0.9, 0.8, -5.0])
    # greedy takes the best sentence and then only the one-token one fits; the knapsack takes the two that
    # fill the budget with nearly as good a score per token
    assert select(doc, scores, 10).picks == (0, 3)
    assert select(doc, scores, 10, search=3).picks == (1, 2)
    # a sentence worth much more per token still wins, and the greedy fill uses what is left
    assert select(doc, np.array([3.0, 0.9, 0.8, -5.0]), 10, search=3).picks == (0, 3)
    # mutually redundant sentences are never chosen together
    red = [("x", "new", "budget", "plan"), ("new", "budget", "plan", "y"), ("z", "w", "v")]
    assert select(red, np.array([1.0, 0.9, 0.5]), 8, search=3).picks == (0, 2)
    cut = select([("a", "b", "c")], np.array([1.0]), 2, search=6)
    assert cut.truncated == 2


def test_graph_centrality_favours_the_sentence_the_others_are_about() -> None:
    # LexRank's graph, self-loops included: an isolated sentence keeps the uniform share (1.0 after scaling)
    from collections import Counter

    from summarizer.features import graph_centrality

    vecs = [Counter({"budget": 1, "parks": 1}), Counter({"budget": 1}), Counter({"parks": 1}), Counter({"rain": 1})]
    c = graph_centrality(vecs, {"budget": 1.0, "parks": 1.0, "rain": 1.0})
    assert np.isclose(c.mean(), 1.0) and int(np.argmax(c)) == 0 and np.isclose(c[1], c[2]) and c[1] < c[3] < c[0]
    assert np.allclose(graph_centrality([Counter()], {}), [1.0])


def test_a_straight_closing_quote_ends_its_own_sentence() -> None:
    from summarizer.sentences import split

    text = ('he said " it is bad . it got worse . " the report , he said , was late . " yes . " ok .\n'
            '" a new paragraph . "\nan open " quote .\n" opens this paragraph .')
    got = [s.words for s in split(text)]
    assert got == [("he", "said", '"', "it", "is", "bad", "."), ("it", "got", "worse", ".", '"'),
                   ("the", "report", ",", "he", "said", ",", "was", "late", "."), ('"', "yes", ".", '"'),
                   ("ok", "."), ('"', "a", "new", "paragraph", ".", '"'), ("an", "open", '"', "quote", "."),
                   ('"', "opens", "this", "paragraph", ".")]
    assert all(text[s.start:s.end].split()[-1] == s.words[-1] for s in split(text))


def test_untokenized_quotations_end_where_the_writer_ended_them() -> None:
    from summarizer.sentences import split

    text = ('He said "It is bad." The report was late. She said \'no.\' Then she left. "Yes!" he said. '
            'We asked: "what is the best achievable performance?" We focus on budgets.')
    assert [text[s.start:s.end] for s in split(text)] == [
        'He said "It is bad."', "The report was late.", "She said 'no.'", "Then she left.", '"Yes!" he said.',
        'We asked: "what is the best achievable performance?"', "We focus on budgets."]


def test_a_lowercase_word_after_a_period_continues_only_where_the_writer_capitalises_sentences() -> None:
    from summarizer.sentences import split

    def texts(t: str) -> list[str]:
        return [t[s.start:s.end] for s in split(t)]

    assert texts("Dr. Smith arrived at 3 p.m. on Jan. 5. She met Mr. Jones. They used (e.g. ReLU) units.") == [
        "Dr. Smith arrived at 3 p.m. on Jan. 5.", "She met Mr. Jones.", "They used (e.g. ReLU) units."]
    # sentences that start lowercase (PubMed's papers, lowercased news) give no such evidence, names or not
    assert texts("the gene is found in E. coli. the protein binds DNA. we measured it at 3 p.m. today.") == [
        "the gene is found in E. coli.", "the protein binds DNA.", "we measured it at 3 p.m.", "today."]


def test_full_width_marks_end_sentences_without_a_space() -> None:
    from summarizer.sentences import split

    text = "東京は日本の首都です。人口は多いです！「本当？」と彼は聞いた。経済の中心でもあります"
    assert [text[s.start:s.end] for s in split(text)] == [
        "東京は日本の首都です。", "人口は多いです！", "「本当？」と彼は聞いた。", "経済の中心でもあります"]


def test_contribution_statements_are_the_authors_not_quoted_speech() -> None:
    from summarizer.cues import states_contribution
    from summarizer.sentences import words

    for text in ("We propose a new loss for sparse rewards.", "In this paper, we also show that it converges.",
                 "This paper presents a benchmark.", "Our method outperforms the baselines by 3 points.",
                 "In this work, we show that we can build a dictionary.", "This paper aims at evaluating them.",
                 "Our method is evaluated on two datasets."):
        assert states_contribution(words(text)), text
    for text in ('"We found the records," he said.', "The US agency for international development searched.",
                 "We went home early and later they showed up.", "Researchers propose a new loss.",
                 "Previous work has shown that it converges.", "We will provide you with a summary version.",
                 "If you are in a hurry we can develop it in 3 hours.", "We can't find the records.",
                 "Can we be study partners?", "Every time we do the reports, we love making posters."):
        assert not states_contribution(words(text)), text


def test_a_sentence_stating_the_contribution_outranks_the_opening_background(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from summarizer import summarize as sm

    abstract = ("Deep neural networks have achieved remarkable success across many areas of machine learning in "
                "recent years. However, training them requires large amounts of labeled data. "
                "In this paper, we propose a simple method that learns from unlabeled text alone.")
    s = Summarizer(Model.load())
    budget = len(s.analyse(abstract).doc[0])
    assert [p.index for p in s.summarize(abstract, max_tokens=budget).sentences] == [2]
    monkeypatch.setattr(sm, "CUE_PRIOR", 0.0)
    assert [p.index for p in s.summarize(abstract, max_tokens=budget).sentences] == [0]


def test_inference_never_picks_a_sentence_without_a_word() -> None:
    doc = [("a", "b"), ("...",), ("c", "d")]
    scores = np.array([1.0, 5.0, 0.0])
    # distillation's proposals keep the candidates the model was trained with
    assert select(doc, scores, 3).picks == (0, 1)
    assert select(doc, scores, 3, allow_wordless=False).picks == (0,)
    # when no segment has a word there is nothing else to say
    assert select([("...",), ('"',)], np.array([0.0, 1.0]), 3, allow_wordless=False).picks == (0, 1)
    s = Summarizer(Model.load())
    text = "The council approved the budget on Monday. ... The mayor defended the cuts to the parks budget."
    for budget in (4, 12, 20):   # without the rule: "...", "...", and the first sentence with "..."
        assert all(any(c.isalnum() for c in p.text) for p in s.summarize(text, max_tokens=budget).sentences)


def test_centrality_and_recurrence_features_equal_their_definitions() -> None:
    """Each sentence against the rest of the text (its content words' weighted counts minus its own), computed
    here the plain way, sentence by sentence."""
    from collections import Counter

    from summarizer.features import sentence_features

    s = Summarizer(Model.load())
    a = s.analyse(TEXT + " the parks budget cuts were restored . parks and residents protested again .")
    feats = sentence_features(a.doc, s.unigram, a.critic)
    weight = {w: -s.unigram.logprob(w) for seg in a.doc for w in seg}
    vecs = [Counter(w for w in seg if w.isalnum() and weight[w] > 7.0) for seg in a.doc]
    doc_vec = sum(vecs, Counter())
    assert sum(1 for v in vecs if v) >= 4 and feats[:, SENTENCE_FEATURES.index("centrality")].max() > 0
    for i, (seg, vec) in enumerate(zip(a.doc, vecs, strict=True)):
        rest = {w: c - vec.get(w, 0) for w, c in doc_vec.items() if c > vec.get(w, 0)}
        dot = sum(vec[w] * rest.get(w, 0) * weight[w] ** 2 for w in vec)
        norm = np.sqrt(sum((vec[w] * weight[w]) ** 2 for w in vec) * sum((rest[w] * weight[w]) ** 2 for w in rest))
        recurrence = sum(weight[w] * np.log1p(rest.get(w, 0)) for w in vec) / len(seg)
        assert feats[i, SENTENCE_FEATURES.index("centrality")] == pytest.approx(dot / norm if norm > 0 else 0.0)
        assert feats[i, SENTENCE_FEATURES.index("recurrence")] == pytest.approx(recurrence)
