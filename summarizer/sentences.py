"""Sentence splitting and word tokenization with character offsets into the caller's text.

One tokenizer serves the corpus index, the cache model and the student, so that "the same word" means the
same thing to every critic: lowercased words, contractions kept whole (PTB's "n't" stays one token), every
other punctuation character a token of its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TOKEN = re.compile(r"\w+(?:['’.]\w+)*|[^\w\s]")
# a sentence ends after . ! ? (and closing quotes or brackets) followed by whitespace, or at a line break; a
# straight quote right against the mark closes a quotation (`bad." The`), one after a space is left to
# _closing_quote (tokenized text writes `bad . " the` for a closing and an opening quote alike); the full-width
# marks of Chinese and Japanese end a sentence with no space after them, unless a quotation closes after them
_END = re.compile(r"[.!?]+(?:[\"']|\s*(?:''|[”’)\]]))?(?=\s)|[。！？]+(?![」』”）])|\n+")
_NEXT_START = re.compile(r"[.!?][\"'”’)\]]*\s+[\"'“‘(\[]*(\w)")
_ABBREV = frozenset("mr mrs ms dr st jr sr prof gen col lt sgt rep sen gov no vs etc inc co corp ltd jan feb mar apr "
                    "jun jul aug sep sept oct nov dec fig al e.g i.e u.s u.k".split())


@dataclass(frozen=True, slots=True)
class Sentence:
    start: int          # character offsets of the sentence in the original text
    end: int
    words: tuple[str, ...]
    spans: tuple[tuple[int, int], ...]  # each word's character offsets in the original text


def words(text: str) -> list[str]:
    return [m.group().lower() for m in _TOKEN.finditer(text)]


def _is_abbreviation(text: str, end: int) -> bool:
    """A period right after a short word like "mr" or "u.s" does not end the sentence."""
    if text[end - 1] != ".":
        return False
    start = end - 1
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    word = text[start:end - 1].lower().lstrip("([{")  # "(e.g. ReLU)"; not quotes: "She said 'no.' Then"
    return len(word) == 1 and word.isalpha() or word in _ABBREV


def split(text: str) -> list[Sentence]:
    sentences: list[Sentence] = []
    start = 0
    quoting = False  # a straight double quote is open in the paragraph so far
    cased = _capitalises_sentences(text)
    for m in _END.finditer(text):
        if m.group()[0] == "." and _is_abbreviation(text, m.start() + 1) \
                or _lowercase_follows(text, m, cased):
            continue
        quoting ^= text.count('"', start, m.end()) % 2 == 1
        end = m.end()
        if "\n" in m.group():  # a paragraph ends: no quotation carries over
            quoting = False
        elif quoting and (after := _closing_quote(text, end)) is not None:
            end, quoting = after, False
        _add(sentences, text, start, end)
        start = end
    _add(sentences, text, start, len(text))
    return sentences


def _capitalises_sentences(text: str) -> bool:
    """Whether the writer starts sentences with a capital: most words after an end mark are capitalised. Then a
    lowercase word after a period goes on the sentence ("at 3 p.m. on Jan. 5"); lowercased text (as the news
    corpora come) and text that is lowercase but for names (as the PubMed papers come) give no such evidence."""
    upper = lower = 0
    for m in _NEXT_START.finditer(text):
        upper += m.group(1).isupper()
        lower += m.group(1).islower()
    return upper >= 2 * lower and upper > 0


def _lowercase_follows(text: str, m: re.Match[str], cased: bool) -> bool:
    """The end mark is followed by a lowercase word that continues the sentence: in cased text after any mark but
    a line break, otherwise only after a quotation closing against its mark (`"Yes!" he said.`)."""
    mark = m.group()
    if "\n" in mark:
        return False
    if not cased and (len(mark) < 2 or mark[-1] not in "\"'" or mark[-2] not in ".!?"):
        return False
    rest = text[m.end():m.end() + 40].lstrip()
    return bool(rest) and rest[0].islower()


def _closing_quote(text: str, end: int) -> int | None:
    """Where a straight double quote standing right after a sentence's end stops, if one does: while a quotation
    is open (`... deterrence . " the report`, also at the end of a quotation of several sentences) it closes that
    quotation rather than opening the next sentence."""
    after = end
    while after < len(text) and text[after] in " \t":
        after += 1
    if after < len(text) and text[after] == '"' and (after + 1 == len(text) or text[after + 1].isspace()):
        return after + 1
    return None


def _add(sentences: list[Sentence], text: str, start: int, end: int) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    found = list(_TOKEN.finditer(text, start, end))
    if found:
        sentences.append(Sentence(start, end, tuple(m.group().lower() for m in found),
                                  tuple((m.start(), m.end()) for m in found)))
