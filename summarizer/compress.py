"""Sentence compressions: deletions of parentheticals, appositives, attributions, leading adverbials and
relative clauses, found by token patterns (the text is lowercased, so no capitalisation or parser is used).

Every deletion is only a proposal: the critics (support, faithfulness) decide whether the result survives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

RULES = ("parenthetical", "appositive", "attribution", "adverbial", "relative")
_DETERMINERS = frozenset("a an the his her their its our my".split())
_RELATIVES = frozenset("who which whose whom where".split())
_SAY = frozenset("said says say told added explained according claimed reported".split())
_ADVERBS = frozenset("however meanwhile but and so also still yet now then instead moreover additionally "
                     "indeed earlier later finally overall separately previously currently".split())
_PREPOSITIONS = frozenset("in on at after before during since with for by from under despite following".split())
_FUNCTION = frozenset("the a an on in at of for to by with and or from as is was are were".split())
_END = frozenset(". ! ? '' \"".split())
MAX_INNER = 12  # longer asides usually carry the sentence's point; leave them to whole-sentence selection


@dataclass(frozen=True, slots=True)
class Deletion:
    start: int  # word offsets inside the sentence, end exclusive
    end: int
    rule: str


def _closing(words: Sequence[str], start: int, closer: str) -> int | None:
    for j in range(start, min(len(words), start + MAX_INNER + 1)):
        if words[j] == closer:
            return j
    return None


def _body_end(words: Sequence[str]) -> int:
    end = len(words)
    while end > 0 and words[end - 1] in _END:
        end -= 1
    return end


def deletions(words: Sequence[str]) -> list[Deletion]:
    """Every deletion the rules propose for one sentence (overlapping ones included)."""
    out: list[Deletion] = []
    n, body = len(words), _body_end(words)
    for i, w in enumerate(words):
        if w in ("(", "[") and (j := _closing(words, i + 1, ")" if w == "(" else "]")) is not None:
            out.append(Deletion(i, j + 1, "parenthetical"))
        elif w == "--" and i > 0 and (j := _closing(words, i + 1, "--")) is not None:
            out.append(Deletion(i, j + 1, "parenthetical"))
        elif w == "," and 0 < i and i + 1 < n:
            nxt = words[i + 1]
            closing = _closing(words, i + 2, ",")
            if nxt in _RELATIVES:
                out.append(Deletion(i, closing + 1 if closing is not None else body, "relative"))
            elif closing is not None and (nxt in _DETERMINERS or nxt.isdigit()) and words[i - 1] not in _ADVERBS:
                out.append(Deletion(i, closing + 1, "appositive"))
            elif closing is None and body - i <= 6 and any(t in _SAY for t in words[i + 1:body]) \
                    and "that" not in words[i + 1:body]:
                out.append(Deletion(i, body, "attribution"))
    if n > 1 and words[0] in _ADVERBS:
        out.append(Deletion(0, 2 if words[1] == "," else 1, "adverbial"))
    if n > 1 and words[0] in _PREPOSITIONS and (j := _closing(words, 1, ",")) is not None and j <= 6:
        out.append(Deletion(0, j + 1, "adverbial"))
    if n > 2 and words[0] == "according" and words[1] == "to" and (j := _closing(words, 2, ",")) is not None:
        out.append(Deletion(0, j + 1, "attribution"))
    for k in range(1, min(5, body)):
        if words[k] in _SAY and k + 1 < body and words[k + 1] == "that":
            out.append(Deletion(0, k + 2, "attribution"))
            break
    return [d for d in out if d.end > d.start and body - (d.end - d.start) >= 4]


_OUTLET_MAX = 5    # "( cnn )", "( the hollywood reporter )", "( cnnmoney )": a short credit in brackets
_DASHES = frozenset("- – —".split())  # the separator after a wire dateline's credit ("--" is two "-" tokens)
_PLACE_MAX = 8     # "tulsa , oklahoma", "west of baghdad , iraq": the dateline's place before it


def dateline(words: Sequence[str]) -> Deletion | None:
    """A news dateline opening the document: "[place ,] ( outlet )" before the first sentence's text, as wire and
    network copy starts ("tulsa , oklahoma ( cnn ) amid growing scrutiny ..."). It is boilerplate, not content:
    dropping it leaves the sentence whole and frees its tokens for content. Only words and commas may precede the
    bracket (no article: "the budget ( approved on monday )" is a sentence), the credit is a name (words, no
    function word but a leading "the"), and at least 4 tokens must follow it."""
    if "(" not in words[:_PLACE_MAX + 1]:
        return None
    i = words.index("(")
    if not all((w.isalpha() and w not in _DETERMINERS) or w in ",-." for w in words[:i]):
        return None
    j = _closing(words, i + 1, ")")
    if j is None or j - i - 1 > _OUTLET_MAX or j == i + 1:
        return None
    credit = words[i + 1:j]
    if not all(w.isalpha() or w in ".-" for w in credit) or any(w in _FUNCTION for w in credit[1:]) \
            or credit[0] in _FUNCTION - {"the"}:
        return None
    end = j + 1
    while end < len(words) and words[end] in _DASHES:  # wire copy: "washington ( reuters ) - the fed ..."
        end += 1
    if _body_end(words) - end < 4:
        return None
    return Deletion(0, end, "dateline")


def apply(words: Sequence[str], dels: Sequence[Deletion]) -> tuple[str, ...]:
    gone = {i for d in dels for i in range(d.start, d.end)}
    return tuple(w for i, w in enumerate(words) if i not in gone)
