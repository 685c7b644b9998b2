"""Cue phrases (Edmundson, 1969): a sentence in which the authors state what they did ("we propose ...", "this
paper shows ...") is the one a reader of a scientific or technical abstract wants, and it is rarely the first: an
abstract opens with background. The student learns from news, where such sentences hardly occur, so it cannot
learn this; the summarizer adds it as a prior at inference (summarize.CUE_PRIOR).

Matched on the shared tokenizer's lowercased words, so cased and lowercased text agree. Quoted speech is left
out: "we found ..." inside quotation marks is a news source speaking, not the authors.
"""

from __future__ import annotations

from collections.abc import Sequence

# "this paper shows", "our method outperforms": the authors' work as the subject
_WORK_NOUNS = frozenset("paper work study article letter report thesis note approach method model results analysis "
                        "experiments".split())
_WORK_DETERMINERS = frozenset(("this", "our", "present"))
# stems of the verbs of a contribution: "propose(s|d)", "introduc(e|es|ing)", "stud(y|ied)", "analy(se|ze|sis)"
_VERB_STEMS = ("propos", "present", "introduc", "show", "demonstrat", "develop", "describ", "stud", "investigat",
               "find", "found", "prov", "achiev", "outperform", "design", "explor", "analy", "establish", "report",
               "argu", "formulat", "obtain", "deriv", "extend", "offer", "evaluat", "examin", "conduct", "identif",
               "perform", "aim", "contribut", "seek", "address")
# between the subject and its verb only adverbs and auxiliaries: "we also propose", "we have developed", "our
# method is evaluated"; a modal ("we will provide", "we can develop") is intention or ability, as e-mails and
# dialogues say it, and anything else ("we do the reports") means the stem matched some other word
_BETWEEN = frozenset("also further then first here now finally additionally furthermore thus therefore hence next "
                     "instead even already have has had is are was were been".split())
_QUOTES = frozenset(('"', "'", "``", "''", "‘", "’", "“", "”"))
_WINDOW = 3  # words allowed between the subject and its verb


def states_contribution(words: Sequence[str]) -> bool:
    """True when the sentence (lowercased words) has the authors, or their work, as the subject of a verb of
    contribution, with at most _WINDOW adverbs or auxiliaries between them, outside quotation marks; not a
    question."""
    if not words or words[-1] == "?" or _QUOTES.intersection(words):
        return False
    for k, w in enumerate(words):
        if w == "we" or (w in _WORK_NOUNS and k > 0 and words[k - 1] in _WORK_DETERMINERS):
            for v in words[k + 1:k + 2 + _WINDOW]:
                if v.startswith(_VERB_STEMS):
                    return True
                if v not in _BETWEEN and not v.endswith("ly"):
                    break
    return False
