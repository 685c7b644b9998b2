"""Optional abstractive backend: a user-supplied causal LM in ONNX, decoded greedily with onnxruntime on the CPU,
its output judged by the same critics as the student's (see README, "Summarizer").

The model directory (nothing is ever fetched from a hub):

- `model.onnx`: a causal LM. Input `input_ids` int64 [batch, seq]; optionally `attention_mask` and `position_ids`,
  int64 (fed all ones over the past and new tokens, and the new tokens' positions). Output `logits` float
  [batch, seq, vocab]; `vocab` must equal the tokenizer's vocabulary size. Optionally a key/value cache in the
  layout of Hugging Face exports "with past": inputs `past_key_values.<i>.key` and `.value` float
  [batch, heads, past_seq, head_dim] with fixed heads and head_dim, and for each an output `present.<i>.key` /
  `.value` holding the past and the new tokens. With it, each step feeds one new token (the first step the prompt,
  past_seq 0); without it, every step reruns the whole sequence. Loading checks that the cache gives the logits a
  full rerun gives.
- `tokenizer.json`: a Hugging Face `tokenizers` file.
- `gramdex-abstractive.json` (optional): `prompt` (default "{document}\\nTL;DR:", must hold "{document}" once),
  `eos_token` (default: the first of </s>, <|endoftext|>, <eos>, [EOS], <|eot_id|> in the vocabulary; null: none),
  `max_new_tokens` (default 128), `max_input_tokens` (default 512: the prompt's length, the document truncated to
  fit), `name` (default: the directory's name). The model must accept max_input_tokens + max_new_tokens tokens.

onnxruntime is imported only when a model is loaded: without the `[abstractive]` extra everything else works.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from summarizer.corpus_lm import CorpusLM
from summarizer.critics import Scores, Segment, Thresholds
from summarizer.sentences import split
from summarizer.summarize import Summarizer, Summary

MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "gramdex-abstractive.json"
DEFAULT_PROMPT = "{document}\nTL;DR:"
DEFAULTS = {"max_new_tokens": 128, "max_input_tokens": 512}
EOS_CANDIDATES = ("</s>", "<|endoftext|>", "<eos>", "[EOS]", "<|eot_id|>")
_INT64 = "tensor(int64)"
_FLOATS = ("tensor(float)", "tensor(float16)", "tensor(double)")
_OPTIONAL_INPUTS = ("attention_mask", "position_ids")
CacheSlot = tuple[str, str, tuple[int, int]]  # past input, present output, (heads, head_dim)
_PAST = re.compile(r"past_key_values\.(\d+)\.(key|value)")
log = logging.getLogger("gramdex.summarizer")


class AbstractiveModelError(ValueError):
    """The model directory is missing, incomplete or does not follow the contract (or onnxruntime is missing)."""


@dataclass(frozen=True, slots=True)
class AbstractiveConfig:
    prompt: str = DEFAULT_PROMPT
    eos_token: str | None = None     # None after loading: the model has no end-of-sequence token
    max_new_tokens: int = DEFAULTS["max_new_tokens"]
    max_input_tokens: int = DEFAULTS["max_input_tokens"]
    name: str = ""

    @classmethod
    def read(cls, directory: Path, vocab: dict[str, int]) -> AbstractiveConfig:
        path = directory / CONFIG_FILE
        raw: dict[str, Any] = {}
        if path.exists():
            try:
                raw = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise AbstractiveModelError(f"{path}: not valid JSON: {exc}") from None
            if not isinstance(raw, dict):
                raise AbstractiveModelError(f"{path}: expected a JSON object")
            unknown = set(raw) - {"prompt", "eos_token", "max_new_tokens", "max_input_tokens", "name"}
            if unknown:
                raise AbstractiveModelError(f"{path}: unknown keys {sorted(unknown)}")
        prompt = raw.get("prompt", DEFAULT_PROMPT)
        if not isinstance(prompt, str) or prompt.count("{document}") != 1:
            raise AbstractiveModelError(f"{path}: prompt must be a string holding {{document}} exactly once")
        for key in ("max_new_tokens", "max_input_tokens"):
            v = raw.get(key, DEFAULTS[key])
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise AbstractiveModelError(f"{path}: {key} must be a positive integer, not {v!r}")
        if "eos_token" in raw:
            eos = raw["eos_token"]
            if eos is not None and (not isinstance(eos, str) or eos not in vocab):
                raise AbstractiveModelError(f"{path}: eos_token {eos!r} is not a token of {TOKENIZER_FILE}")
        else:
            eos = next((t for t in EOS_CANDIDATES if t in vocab), None)
        name = raw.get("name", directory.name)
        if not isinstance(name, str) or not name:
            raise AbstractiveModelError(f"{path}: name must be a non-empty string")
        return cls(prompt, eos, raw.get("max_new_tokens", DEFAULTS["max_new_tokens"]),
                   raw.get("max_input_tokens", DEFAULTS["max_input_tokens"]), name)


@dataclass(frozen=True, slots=True)
class Generation:
    text: str                  # decoded, cut to the word budget
    token_ids: tuple[int, ...]  # generated model tokens (without the eos)
    stopped: str               # "eos" | "budget" (word budget reached) | "max_new_tokens" | "deadline"
    prompt_tokens: int
    truncated: bool            # the document was cut to fit max_input_tokens


def _import_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise AbstractiveModelError(
            f"the abstractive backend needs onnxruntime, which is not installed ({exc}); "
            "install it with pip install 'gramdex[abstractive]'") from None
    return onnxruntime


def _rank(shape: Any) -> int | None:
    return len(shape) if isinstance(shape, list | tuple) else None


class AbstractiveModel:
    """A validated model directory, ready to generate. Construction raises AbstractiveModelError with the reason."""

    def __init__(self, directory: Path) -> None:
        directory = Path(directory)
        if not directory.is_dir():
            raise AbstractiveModelError(f"abstractive model directory {directory} does not exist")
        for name in (MODEL_FILE, TOKENIZER_FILE):
            if not (directory / name).is_file():
                raise AbstractiveModelError(f"{directory}: {name} is missing (a model directory holds {MODEL_FILE}, "
                                            f"{TOKENIZER_FILE} and optionally {CONFIG_FILE})")
        from tokenizers import Tokenizer

        try:
            self.tokenizer = Tokenizer.from_file(str(directory / TOKENIZER_FILE))
        except Exception as exc:  # tokenizers raises plain Exceptions for unreadable files
            raise AbstractiveModelError(f"{directory / TOKENIZER_FILE}: not a tokenizers file: {exc}") from None
        vocab = self.tokenizer.get_vocab(with_added_tokens=True)
        self.vocab_size = self.tokenizer.get_vocab_size(with_added_tokens=True)
        self.config = AbstractiveConfig.read(directory, vocab)
        self.eos_id = None if self.config.eos_token is None else vocab[self.config.eos_token]
        self.directory = directory
        ort = _import_onnxruntime()
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(directory / MODEL_FILE), sess_options=options,
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's own exception types vary by version
            raise AbstractiveModelError(f"{directory / MODEL_FILE}: not a loadable ONNX model: {exc}") from None
        self._check_signature()
        overhead = len(self._encode(self.config.prompt.replace("{document}", "")).ids)
        if overhead >= self.config.max_input_tokens:
            raise AbstractiveModelError(f"{directory}: the prompt alone is {overhead} tokens, leaving no room for the "
                                        f"document in max_input_tokens={self.config.max_input_tokens}")
        try:
            logits, _ = self._step([0], self._empty_past(), 0)   # the graph runs; its vocabulary is the tokenizer's
            if logits.shape[-1] != self.vocab_size:
                raise AbstractiveModelError(f"{directory}: vocab size mismatch: logits have {logits.shape[-1]} "
                                            f"entries, {TOKENIZER_FILE} has {self.vocab_size} tokens")
            if self._past:
                self._check_cache()
        except AbstractiveModelError:
            raise
        except Exception as exc:  # onnxruntime's own exception types vary by version
            raise AbstractiveModelError(f"{directory / MODEL_FILE}: fails on a three-token input: {exc}") from None

    @property
    def name(self) -> str:
        return self.config.name

    def _check_signature(self) -> None:
        where = self.directory / MODEL_FILE
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = {o.name: o for o in self.session.get_outputs()}
        if "input_ids" not in inputs:
            raise AbstractiveModelError(f"{where}: no input named input_ids (inputs: {sorted(inputs)})")
        past = {name: i for name, i in inputs.items() if _PAST.fullmatch(name)}
        extra = sorted(set(inputs) - {"input_ids", *_OPTIONAL_INPUTS, *past})
        if extra:
            raise AbstractiveModelError(f"{where}: inputs this backend cannot feed: {extra} (it feeds input_ids, "
                                        f"attention_mask and position_ids when the model has them, and "
                                        f"past_key_values.<i>.key/.value)")
        self._past = self._check_cache_signature(past, outputs)
        for name, i in inputs.items():
            if name in past:
                continue
            if i.type != _INT64:
                raise AbstractiveModelError(f"{where}: input {name} must be int64, not {i.type}")
            if _rank(i.shape) not in (None, 2):
                raise AbstractiveModelError(f"{where}: input {name} must be [batch, seq], not {i.shape}")
        if "logits" not in outputs:
            raise AbstractiveModelError(f"{where}: no output named logits (outputs: {sorted(outputs)})")
        out = outputs["logits"]
        if out.type not in _FLOATS:
            raise AbstractiveModelError(f"{where}: output logits must be float, not {out.type}")
        if _rank(out.shape) not in (None, 3):
            raise AbstractiveModelError(f"{where}: output logits must be [batch, seq, vocab], not {out.shape}")
        self._feeds = sorted(inputs)

    def _check_cache_signature(self, past: dict[str, Any], outputs: dict[str, Any]) -> list[CacheSlot]:
        """(past input, present output, (heads, head_dim)) per cache tensor, in layer order; [] without a cache."""
        where = self.directory / MODEL_FILE
        cache = []
        for name in sorted(past, key=lambda n: (int(_PAST.fullmatch(n).group(1)), n)):  # type: ignore[union-attr]
            i = past[name]
            present = "present" + name.removeprefix("past_key_values")
            if present not in outputs:
                raise AbstractiveModelError(f"{where}: input {name} has no output {present} to carry the cache on")
            if i.type not in _FLOATS or outputs[present].type != i.type:
                raise AbstractiveModelError(f"{where}: {name} and {present} must be float of one type, not "
                                            f"{i.type} and {outputs[present].type}")
            shape = i.shape if isinstance(i.shape, list | tuple) else None
            if shape is None or len(shape) != 4 or not all(isinstance(d, int) and d > 0 for d in (shape[1], shape[3])):
                raise AbstractiveModelError(f"{where}: input {name} must be [batch, heads, past_seq, head_dim] with "
                                            f"fixed heads and head_dim, not {i.shape}")
            cache.append((name, present, (int(shape[1]), int(shape[3]))))
        layers = {_PAST.fullmatch(n).group(1) for n, _, _ in cache}  # type: ignore[union-attr]
        if len(cache) != 2 * len(layers):
            raise AbstractiveModelError(f"{where}: every past_key_values.<i> needs both .key and .value")
        self._cache_dtype = np.float16 if cache and past[cache[0][0]].type == "tensor(float16)" else np.float32
        return cache

    def _check_cache(self) -> None:
        """A step on the cache must give what a rerun of the whole sequence gives (a model whose presents drop
        or misplace tokens would otherwise decode nonsense without an error)."""
        ids = [0, min(1, self.vocab_size - 1), min(2, self.vocab_size - 1)]
        full, _ = self._step(ids, self._empty_past(), 0)
        _, past = self._step(ids[:2], self._empty_past(), 0)
        step, _ = self._step(ids[2:], past, 2)
        if not np.allclose(full, step, rtol=1e-3, atol=1e-3):
            raise AbstractiveModelError(f"{self.directory / MODEL_FILE}: its key/value cache does not reproduce a "
                                        f"full rerun (largest logit difference {float(np.abs(full - step).max()):.3g})")

    def _empty_past(self) -> list[np.ndarray]:
        return [np.zeros((1, heads, 0, dim), dtype=self._cache_dtype) for _, _, (heads, dim) in self._past]

    def _encode(self, text: str) -> Any:
        return self.tokenizer.encode(text, add_special_tokens=True)

    def _step(self, ids: Sequence[int], past: list[np.ndarray], start: int) -> tuple[np.ndarray, list[np.ndarray]]:
        """The next-token logits after `ids`, the new tokens at positions start.. after `past` (the cache of the
        `start` tokens before them; [] without a cache), and the cache that now covers them too."""
        x = np.asarray(ids, dtype=np.int64)[None, :]
        feed = {"input_ids": x}
        if "attention_mask" in self._feeds:
            feed["attention_mask"] = np.ones((1, start + x.shape[1]), dtype=np.int64)
        if "position_ids" in self._feeds:
            feed["position_ids"] = np.arange(start, start + x.shape[1], dtype=np.int64)[None, :]
        for (name, _, _), tensor in zip(self._past, past, strict=True):
            feed[name] = tensor
        logits, *present = self.session.run(["logits", *(p for _, p, _ in self._past)], feed)
        where = self.directory / MODEL_FILE
        if logits.ndim != 3 or logits.shape[:2] != x.shape:
            raise AbstractiveModelError(f"{where}: logits of shape {logits.shape} for input {x.shape}; expected "
                                        f"[batch, seq, vocab]")
        for (_, name, (heads, dim)), tensor in zip(self._past, present, strict=True):
            if tensor.shape != (1, heads, start + x.shape[1], dim):
                raise AbstractiveModelError(f"{where}: {name} has shape {tensor.shape}; expected "
                                            f"{(1, heads, start + x.shape[1], dim)} (past and new tokens)")
        return np.asarray(logits[0, -1], dtype=np.float32), present

    def prompt_ids(self, document: str) -> tuple[list[int], bool]:
        """The prompt's token ids with the document cut (at a token boundary) so they fit max_input_tokens."""
        limit = self.config.max_input_tokens
        ids = list(self._encode(self.config.prompt.replace("{document}", document)).ids)
        if len(ids) <= limit:
            return ids, False
        doc = self.tokenizer.encode(document, add_special_tokens=False)
        overhead = len(self._encode(self.config.prompt.replace("{document}", "")).ids)
        keep = min(len(doc.ids), limit - overhead)
        while True:   # merges across the cut can change the count by a token or two: shrink until it fits
            cut = doc.offsets[keep - 1][1] if keep > 0 else 0
            ids = list(self._encode(self.config.prompt.replace("{document}", document[:cut])).ids)
            if len(ids) <= limit or keep == 0:
                return ids[:limit], True
            keep = max(0, keep - (len(ids) - limit))

    def generate(self, document: str, *, max_words: int | None = None, max_new_tokens: int | None = None,
                 deadline: float | None = None) -> Generation:
        """Greedy decoding until the eos token, `max_words` summarizer tokens (words and punctuation, as the
        budget counts them), max_new_tokens model tokens, or time.monotonic() passing `deadline`."""
        prompt, truncated = self.prompt_ids(document)
        limit = min(self.config.max_new_tokens, max_new_tokens or self.config.max_new_tokens)
        out: list[int] = []
        stopped = "max_new_tokens"
        past = self._empty_past()
        while len(out) < limit:
            if deadline is not None and time.monotonic() >= deadline:
                stopped = "deadline"
                break
            if self._past:   # the cache holds every token but the last one generated
                fed = len(prompt) + len(out) - 1 if out else 0
                logits, past = self._step((prompt + out)[fed:], past, fed)
            else:
                logits, _ = self._step(prompt + out, [], 0)
            nxt = int(np.argmax(logits))
            if nxt == self.eos_id:
                stopped = "eos"
                break
            out.append(nxt)
            if max_words is not None and len(_word_spans(self._decode(out))) > max_words:
                stopped = "budget"
                break
        text = self._decode(out)
        if max_words is not None:
            spans = _word_spans(text)
            if len(spans) > max_words:
                text = text[:spans[max_words - 1][1]] if max_words > 0 else ""
        return Generation(text.strip(), tuple(out), stopped, len(prompt), truncated)

    def _decode(self, ids: Sequence[int]) -> str:
        return str(self.tokenizer.decode(list(ids), skip_special_tokens=True))


def _word_spans(text: str) -> list[tuple[int, int]]:
    return [span for s in split(text) for span in s.spans]


# --- the critics' verdict ---

@dataclass(frozen=True, slots=True)
class Candidate:
    backend: str                       # "abstractive" | "student"
    model: str
    text: str
    scores: Scores
    failed: tuple[str, ...]            # thresholds not met (empty: passed)
    sources: tuple[int, ...] = ()      # abstractive: the document sentence each summary sentence is attributed to
    sentences: tuple[str, ...] = ()
    generation: Generation | None = None
    error: str | None = None           # abstractive: the model failed to run

    @property
    def passed(self) -> bool:
        return not self.failed


@dataclass(frozen=True, slots=True)
class AbstractiveResult:
    winner: Candidate
    abstractive: Candidate
    student: Candidate
    student_summary: Summary
    thresholds: Thresholds
    budget: int


def failed_thresholds(scores: Scores, t: Thresholds) -> tuple[str, ...]:
    names = ("faithfulness", "support", "saliency", "coherence")
    failed = tuple(n for n in names if not getattr(scores, n) >= getattr(t, n))
    return ("empty", *failed) if scores.tokens == 0 else failed


def attribute(segments: Sequence[Segment], doc: Sequence[Segment]) -> list[int]:
    """The document sentence each generated sentence shares the most words with (the earliest on ties; 0 when it
    shares none). The critics bar that sentence from predicting itself (saliency) and take the text before it as
    the sentence's context (coherence), as they do for an extracted sentence."""
    bags = [Counter(s) for s in doc]
    out = []
    for seg in segments:
        mine = Counter(seg)
        overlaps = [sum((mine & b).values()) for b in bags]
        out.append(int(np.argmax(overlaps)) if overlaps else 0)
    return out


def summarize_abstractive(summarizer: Summarizer, model: AbstractiveModel, text: str, *,
                          max_tokens: int | None = None, ratio: float | None = None, lm: CorpusLM | None = None,
                          deadline: float | None = None) -> AbstractiveResult:
    """The model's summary if it clears every critic threshold of the student's model, else the student's
    (extractive) summary; both candidates come back with their scores. Raises BudgetError and
    DocumentTooLargeError like Summarizer."""
    a = summarizer.analyse(text)
    student = summarizer.summarize(text, max_tokens=max_tokens, ratio=ratio, mode="extractive", lm=lm, analysis=a)
    thresholds = summarizer.model.thresholds
    sc = Candidate("student", student.model, student.text, student.scores,
                   failed_thresholds(student.scores, thresholds))
    doc = a.doc
    critic = a.critic if lm is None else a.critic.with_lm(lm)
    try:
        gen = model.generate(text, max_words=student.budget, deadline=deadline)
    except Exception as exc:  # a model that fails at run time loses to the student; the log has the details
        log.exception("abstractive model %s failed", model.name)
        ac = Candidate("abstractive", model.name, "", critic.score([], []), ("error",),
                       error=f"the model failed to run ({type(exc).__name__}); the worker's log has the details")
    else:
        sentences = split(gen.text)
        segments = [s.words for s in sentences]
        sources = attribute(segments, doc)
        scores = critic.score(segments, sources)
        ac = Candidate("abstractive", model.name, gen.text, scores, failed_thresholds(scores, thresholds),
                       tuple(sources), tuple(gen.text[s.start:s.end] for s in sentences), gen)
    winner = ac if ac.passed else sc
    return AbstractiveResult(winner, ac, sc, student, thresholds, student.budget)
