"""The optional abstractive backend: a tiny random causal LM built here with onnx.helper (Gather embedding -> MatMul,
plus a position bias that can script the output), a WordLevel tokenizer trained here on a few sentences; nothing is
fetched. Loading and validation, greedy decoding against a numpy re-computation of the same graph, truncation,
budget and deadline, the critics' verdict, and mode "abstractive" through a real gateway and real worker processes.
A second tiny model (one causal self-attention layer with a key/value cache in the "with past" layout) checks
decoding on the cache against numpy, one token per step, and the refusal of broken caches."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from fastapi import FastAPI  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from service_support.gateway import Gateway  # noqa: E402
from tokenizers import Tokenizer, models, pre_tokenizers, trainers  # noqa: E402

from service import app as service_app  # noqa: E402
from service.settings import Settings  # noqa: E402
from service.summarize import gateway as gateway_module  # noqa: E402
from service.summarize import worker  # noqa: E402
from service.summarize.gateway import PoolConfig, WorkerPool  # noqa: E402
from summarizer.abstractive import (  # noqa: E402
    CONFIG_FILE,
    AbstractiveModel,
    AbstractiveModelError,
    summarize_abstractive,
)
from summarizer.model import Model  # noqa: E402
from summarizer.sentences import words  # noqa: E402
from summarizer.summarize import Summarizer  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DOC = ("the city council approved a new budget on tuesday . the budget raises spending on schools by ten percent . "
       "critics said the plan ignores roads . the mayor said roads will get money next year . "
       "the vote was seven to two . a final reading is set for march .")
OTHER = ("a storm closed the harbor on friday . fishing boats stayed in port for two days . "
         "the coast guard warned sailors about high waves . the harbor opened again on sunday .")
# what the scripted model says after DOC's prompt: the document's first two sentences, verbatim, then </s>
SCRIPT = "the city council approved a new budget on tuesday . the budget raises spending on schools by ten percent ."
CONFIG = {"prompt": "{document}\nTL;DR:", "eos_token": "</s>", "max_new_tokens": 40, "max_input_tokens": 96,
          "name": "tiny-random"}
DIM = 8


def _tokenizer() -> Tokenizer:
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator([DOC, OTHER, "TL;DR:"], trainers.WordLevelTrainer(special_tokens=["[UNK]", "</s>"]))
    return tok


@dataclass
class Weights:
    emb: np.ndarray      # [vocab, DIM]
    out: np.ndarray      # [DIM, vocab_out]
    pos: np.ndarray      # [positions, vocab_out]

    def logits(self, ids: list[int]) -> np.ndarray:
        """The graph, in numpy: E[ids] @ W + P[0..n) (times the all-ones attention mask)."""
        return self.emb[np.asarray(ids)] @ self.out + self.pos[:len(ids)]

    def greedy(self, prompt: list[int], max_new: int, eos: int) -> list[int]:
        out: list[int] = []
        while len(out) < max_new:
            nxt = int(np.argmax(self.logits(prompt + out)[-1]))
            if nxt == eos:
                break
            out.append(nxt)
        return out


def write_model(directory: Path, *, script: str | None = None, seed: int = 0, extra_vocab: int = 0,
                input_name: str = "input_ids", input_type: int = TensorProto.INT64, output_name: str = "logits",
                config: dict[str, Any] | None = CONFIG) -> Weights:
    """A random causal LM; with `script`, a position bias makes it say that text (then </s>) after DOC's prompt."""
    directory.mkdir(parents=True, exist_ok=True)
    tok = _tokenizer()
    tok.save(str(directory / "tokenizer.json"))
    if config is not None:
        (directory / CONFIG_FILE).write_text(json.dumps(config), encoding="utf-8")
    vocab = tok.get_vocab_size()
    rng = np.random.default_rng(seed)
    v_out = vocab + extra_vocab
    w = Weights(rng.normal(size=(vocab, DIM)).astype(np.float32),
                (rng.normal(size=(DIM, v_out)) / np.sqrt(DIM)).astype(np.float32),
                rng.normal(scale=0.5, size=(CONFIG["max_input_tokens"] + CONFIG["max_new_tokens"] + 8, v_out))
                .astype(np.float32))
    if script is not None:
        start = len(tok.encode(DOC + "\nTL;DR:").ids) - 1   # the last prompt position predicts the first token
        for k, t in enumerate([*tok.encode(script).ids, tok.token_to_id("</s>")]):
            w.pos[start + k, t] += 50.0
    ids_type = input_type
    nodes = [
        helper.make_node("Gather", ["E", input_name], ["h"]),
        helper.make_node("MatMul", ["h", "W"], ["z"]),
        helper.make_node("Shape", [input_name], ["shape"]),
        helper.make_node("Gather", ["shape", "one"], ["seq"], axis=0),
        helper.make_node("Range", ["zero", "seq", "one"], ["positions"]),
        helper.make_node("Gather", ["P", "positions"], ["bias"]),
        helper.make_node("Add", ["z", "bias"], ["zb"]),
        helper.make_node("Cast", ["attention_mask"], ["maskf"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["maskf", "last"], ["mask3"]),
        helper.make_node("Mul", ["zb", "mask3"], [output_name]),
    ]
    if input_type != TensorProto.INT64:   # a model that takes float ids: cast them before the lookup
        nodes.insert(0, helper.make_node("Cast", [input_name], ["ids64"], to=TensorProto.INT64))
        nodes[1] = helper.make_node("Gather", ["E", "ids64"], ["h"])
        nodes[3] = helper.make_node("Shape", ["ids64"], ["shape"])
    inits = [numpy_helper.from_array(w.emb, "E"), numpy_helper.from_array(w.out, "W"),
             numpy_helper.from_array(w.pos, "P"), numpy_helper.from_array(np.array(0, dtype=np.int64), "zero"),
             numpy_helper.from_array(np.array(1, dtype=np.int64), "one"),
             numpy_helper.from_array(np.array([-1], dtype=np.int64), "last")]
    graph = helper.make_graph(
        nodes, "tiny-causal-lm",
        [helper.make_tensor_value_info(input_name, ids_type, ["batch", "seq"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["batch", "seq", v_out])], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    onnx.save(m, str(directory / "model.onnx"))
    return w


@pytest.fixture(scope="module")
def scripted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Weights]:
    d = tmp_path_factory.mktemp("abstractive") / "tiny-random"
    return d, write_model(d, script=SCRIPT)


@pytest.fixture(scope="module")
def summarizer() -> Summarizer:
    return Summarizer(Model.load())


# --- loading and validation ---

def _broken(tmp: Path, case: str) -> Path:
    d = tmp / case
    if case == "no-directory":
        return d
    if case == "input-name":
        write_model(d, input_name="tokens")
    elif case == "input-dtype":
        write_model(d, input_type=TensorProto.FLOAT)
    elif case == "output-name":
        write_model(d, output_name="scores")
    elif case == "vocab-mismatch":
        write_model(d, extra_vocab=3)
    else:
        write_model(d)
    if case == "no-model":
        (d / "model.onnx").unlink()
    elif case == "no-tokenizer":
        (d / "tokenizer.json").unlink()
    elif case == "garbage-model":
        (d / "model.onnx").write_bytes(b"not a protobuf at all")
    elif case == "garbage-tokenizer":
        (d / "tokenizer.json").write_text("{", encoding="utf-8")
    elif case in ("config-json", "config-key", "config-prompt", "config-eos", "config-budget", "config-room"):
        bad = {"config-json": "{", "config-key": json.dumps({**CONFIG, "temperature": 0.7}),
               "config-prompt": json.dumps({**CONFIG, "prompt": "summarize:"}),
               "config-eos": json.dumps({**CONFIG, "eos_token": "<|nope|>"}),
               "config-budget": json.dumps({**CONFIG, "max_new_tokens": 0}),
               "config-room": json.dumps({**CONFIG, "max_input_tokens": 3})}[case]
        (d / CONFIG_FILE).write_text(bad, encoding="utf-8")
    return d


@pytest.mark.parametrize(("case", "message"), [
    ("no-directory", r"does not exist"), ("no-model", r"model\.onnx is missing"),
    ("no-tokenizer", r"tokenizer\.json is missing"), ("garbage-model", r"not a loadable ONNX model"),
    ("garbage-tokenizer", r"not a tokenizers file"), ("input-name", r"no input named input_ids"),
    ("input-dtype", r"input input_ids must be int64, not tensor\(float\)"),
    ("output-name", r"no output named logits"), ("vocab-mismatch", r"vocab size mismatch: logits have 67 entries, "
                                                                 r"tokenizer\.json has 64 tokens"),
    ("config-json", r"not valid JSON"), ("config-key", r"unknown keys \['temperature'\]"),
    ("config-prompt", r"\{document\} exactly once"), ("config-eos", r"eos_token '<\|nope\|>' is not a token"),
    ("config-budget", r"max_new_tokens must be a positive integer"), ("config-room", r"the prompt alone is 4 tokens"),
])
def test_broken_directories_are_refused_with_the_reason(tmp_path: Path, case: str, message: str) -> None:
    with pytest.raises(AbstractiveModelError, match=message):
        AbstractiveModel(_broken(tmp_path, case))


def test_without_onnxruntime_loading_says_what_to_install(scripted: tuple[Path, Weights],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)   # `import onnxruntime` now raises ImportError
    with pytest.raises(AbstractiveModelError, match=r"pip install 'gramdex\[abstractive\]'"):
        AbstractiveModel(scripted[0])


def test_defaults_without_a_config_file(tmp_path: Path) -> None:
    write_model(tmp_path / "plain", config=None)
    m = AbstractiveModel(tmp_path / "plain")
    c = m.config
    assert (c.prompt, c.eos_token, c.max_new_tokens, c.max_input_tokens, m.name) == (
        "{document}\nTL;DR:", "</s>", 128, 512, "plain")


def test_a_worker_with_a_broken_model_stops_at_start_up(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert worker.main(["--abstractive-model", str(_broken(tmp_path, "vocab-mismatch"))]) == 2
    err = capsys.readouterr().err
    assert "gramdex summarize-worker: abstractive model:" in err and "vocab size mismatch" in err
    with pytest.raises(AbstractiveModelError, match="tokenizer.json is missing"):
        worker.create_app(abstractive_model=_broken(tmp_path, "no-tokenizer"))


# --- generation ---

def test_greedy_decoding_is_the_numpy_graph_and_deterministic(tmp_path: Path) -> None:
    w = write_model(tmp_path / "random", seed=3, config={**CONFIG, "eos_token": None})
    m = AbstractiveModel(tmp_path / "random")
    prompt, truncated = m.prompt_ids(OTHER)
    assert not truncated and m.tokenizer.decode(prompt).endswith("TL ; DR :")
    g = m.generate(OTHER)
    assert g.stopped == "max_new_tokens" and len(g.token_ids) == CONFIG["max_new_tokens"]
    assert list(g.token_ids) == w.greedy(prompt, CONFIG["max_new_tokens"], eos=-1)
    np.testing.assert_allclose(m._step(prompt, [], 0)[0], w.logits(prompt)[-1], rtol=1e-5, atol=1e-5)
    assert m.generate(OTHER) == g
    assert g.text == m.tokenizer.decode(list(g.token_ids))


def test_the_document_is_truncated_to_the_model_input(scripted: tuple[Path, Weights]) -> None:
    m = AbstractiveModel(scripted[0])
    long_doc = " ".join([OTHER] * 10)
    prompt, truncated = m.prompt_ids(long_doc)
    assert truncated and len(prompt) == CONFIG["max_input_tokens"]
    text = m.tokenizer.decode(prompt)
    assert text.endswith("TL ; DR :") and OTHER.startswith(text[:40])
    g = m.generate(long_doc, max_new_tokens=5)
    assert g.truncated and g.prompt_tokens == CONFIG["max_input_tokens"]
    assert list(g.token_ids) == scripted[1].greedy(prompt, 5, m.eos_id)


def test_eos_budget_and_deadline_stop_generation(scripted: tuple[Path, Weights]) -> None:
    m = AbstractiveModel(scripted[0])
    g = m.generate(DOC)
    assert (g.stopped, g.text) == ("eos", SCRIPT)
    cut = m.generate(DOC, max_words=5)
    assert cut.stopped == "budget" and cut.text == "the city council approved a" and len(cut.token_ids) == 6
    late = m.generate(DOC, deadline=time.monotonic())
    assert (late.stopped, late.text, late.token_ids) == ("deadline", "", ())


# --- a key/value cache ("with past" layout) ---

HEADS = 2


@dataclass
class AttentionWeights:
    """One causal self-attention layer (HEADS heads of DIM // HEADS) with a residual, then the output matrix."""

    emb: np.ndarray      # [vocab, DIM]
    pos: np.ndarray      # [positions, DIM]
    wq: np.ndarray       # [DIM, DIM]
    wk: np.ndarray
    wv: np.ndarray
    out: np.ndarray      # [DIM, vocab]

    def logits(self, ids: list[int]) -> np.ndarray:
        h = self.emb[np.asarray(ids)] + self.pos[:len(ids)]
        n, d = len(ids), DIM // HEADS

        def heads(x: np.ndarray) -> np.ndarray:
            return x.reshape(n, HEADS, d).transpose(1, 0, 2)   # [HEADS, n, d]

        q, k, v = heads(h @ self.wq), heads(h @ self.wk), heads(h @ self.wv)
        scores = q @ k.transpose(0, 2, 1) / np.sqrt(d) + np.triu(np.full((n, n), -1e9, dtype=np.float32), 1)
        att = np.exp(scores - scores.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        ctx = (att @ v).transpose(1, 0, 2).reshape(n, DIM)
        return (h + ctx) @ self.out

    def greedy(self, prompt: list[int], max_new: int) -> list[int]:
        out: list[int] = []
        while len(out) < max_new:
            out.append(int(np.argmax(self.logits(prompt + out)[-1])))
        return out


def write_cached_model(directory: Path, *, seed: int = 0, fault: str | None = None) -> AttentionWeights:
    """The attention layer as ONNX with past_key_values.0.key/.value in and present.0.key/.value out. `fault`:
    "stale" (the presents are the past: the new tokens dropped), "zeroed" (right shapes, the new tokens' values
    zeroed), "no-present" (no present.0.value), "symbolic" (heads not fixed), "shuffled" (the values' heads and
    positions swapped: attention over a cache of the wrong length fails at run time)."""
    directory.mkdir(parents=True, exist_ok=True)
    tok = _tokenizer()
    tok.save(str(directory / "tokenizer.json"))
    (directory / CONFIG_FILE).write_text(json.dumps({**CONFIG, "eos_token": None}), encoding="utf-8")
    vocab = tok.get_vocab_size()
    rng = np.random.default_rng(seed)

    def mat(*shape: int, scale: float = 1.0) -> np.ndarray:
        return (rng.normal(size=shape) * scale).astype(np.float32)

    w = AttentionWeights(mat(vocab, DIM), mat(CONFIG["max_input_tokens"] + CONFIG["max_new_tokens"], DIM, scale=0.5),
                         mat(DIM, DIM, scale=DIM ** -0.5), mat(DIM, DIM, scale=DIM ** -0.5),
                         mat(DIM, DIM, scale=DIM ** -0.5), mat(DIM, vocab, scale=DIM ** -0.5))
    d = DIM // HEADS
    split_heads = np.array([0, 0, HEADS, d], dtype=np.int64)    # [b, s, DIM] -> [b, s, HEADS, d]
    nodes = [
        helper.make_node("Gather", ["E", "input_ids"], ["tok"]),
        helper.make_node("Gather", ["P", "position_ids"], ["posv"]),
        helper.make_node("Add", ["tok", "posv"], ["h"]),
        *[n for name in ("q", "k", "v") for n in (
            helper.make_node("MatMul", ["h", f"W{name}"], [f"{name}2"]),
            helper.make_node("Reshape", [f"{name}2", "split"], [f"{name}3"]),
            helper.make_node("Transpose", [f"{name}3"], [f"{name}4"], perm=[0, 2, 1, 3]))],   # [b, HEADS, s, d]
        helper.make_node("Concat", ["past_key_values.0.key", "k4"], ["kall"], axis=2),
        helper.make_node("Concat", ["past_key_values.0.value", "v4"], ["vall"], axis=2),
        *[helper.make_node("Identity", [f"past_key_values.0.{kv}" if fault == "stale" else f"{kv[0]}all"],
                           [f"present.0.{kv}"])
          for kv in ("key", "value") if not (fault == "zeroed" and kv == "value")],
        *([helper.make_node("Mul", ["v4", "nothing"], ["v0"]),
           helper.make_node("Concat", ["past_key_values.0.value", "v0"], ["present.0.value"], axis=2)]
          if fault == "zeroed" else []),
        helper.make_node("Transpose", ["kall"], ["kT"], perm=[0, 1, 3, 2]),
        helper.make_node("MatMul", ["q4", "kT"], ["raw"]),
        helper.make_node("Mul", ["raw", "scale"], ["scores"]),                            # [b, HEADS, s, total]
        # causal mask over past + new: query i (position past + i) sees keys 0 .. past + i
        helper.make_node("Shape", ["scores"], ["sshape"]),
        helper.make_node("Slice", ["sshape", "two", "four"], ["st"]),                    # [s, total]
        helper.make_node("ConstantOfShape", ["st"], ["ones"], value=numpy_helper.from_array(np.ones(1, np.float32))),
        helper.make_node("Gather", ["st", "one"], ["total"]),
        helper.make_node("Gather", ["st", "zero"], ["s"]),
        helper.make_node("Sub", ["total", "s"], ["past_len"]),
        helper.make_node("Trilu", ["ones", "past_len"], ["causal"], upper=0),
        helper.make_node("Cast", ["attention_mask"], ["maskf"], to=TensorProto.FLOAT),    # [b, total]
        helper.make_node("Unsqueeze", ["maskf", "mid"], ["mask4"]),                       # [b, 1, 1, total]
        helper.make_node("Mul", ["causal", "mask4"], ["keep"]),
        helper.make_node("Sub", ["keep", "onef"], ["gone"]),                              # 0 kept, -1 masked
        helper.make_node("Mul", ["gone", "big"], ["penalty"]),
        helper.make_node("Add", ["scores", "penalty"], ["masked"]),
        helper.make_node("Softmax", ["masked"], ["att"], axis=-1),
        *([helper.make_node("Transpose", ["vall"], ["vbad"], perm=[0, 2, 1, 3]),
           helper.make_node("MatMul", ["att", "vbad"], ["ctx4"])] if fault == "shuffled"
          else [helper.make_node("MatMul", ["att", "vall"], ["ctx4"])]),
        helper.make_node("Transpose", ["ctx4"], ["ctx3"], perm=[0, 2, 1, 3]),
        helper.make_node("Reshape", ["ctx3", "merge"], ["ctx"]),
        helper.make_node("Add", ["h", "ctx"], ["hc"]),
        helper.make_node("MatMul", ["hc", "Wout"], ["logits"]),
    ]
    inits = [numpy_helper.from_array(a, n) for a, n in [
        (w.emb, "E"), (w.pos, "P"), (w.wq, "Wq"), (w.wk, "Wk"), (w.wv, "Wv"), (w.out, "Wout"),
        (split_heads, "split"), (np.array([0, 0, DIM], dtype=np.int64), "merge"),
        (np.array(1 / np.sqrt(d), dtype=np.float32), "scale"), (np.array([2], dtype=np.int64), "two"),
        (np.array([4], dtype=np.int64), "four"), (np.array(0, dtype=np.int64), "zero"),
        (np.array(1, dtype=np.int64), "one"), (np.array([1, 2], dtype=np.int64), "mid"),
        (np.array(1, dtype=np.float32), "onef"), (np.array(1e9, dtype=np.float32), "big"),
        (np.array(0, dtype=np.float32), "nothing")]]
    heads: int | str = "heads" if fault == "symbolic" else HEADS
    cache_in = [helper.make_tensor_value_info(f"past_key_values.0.{kv}", TensorProto.FLOAT,
                                              ["batch", heads, "past", d]) for kv in ("key", "value")]
    cache_out = [helper.make_tensor_value_info(f"present.0.{kv}", TensorProto.FLOAT, ["batch", heads, "total", d])
                 for kv in ("key", "value") if not (fault == "no-present" and kv == "value")]
    graph = helper.make_graph(
        nodes, "tiny-attention-lm",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "total"]),
         helper.make_tensor_value_info("position_ids", TensorProto.INT64, ["batch", "seq"]), *cache_in],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "seq", vocab]), *cache_out], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    onnx.save(m, str(directory / "model.onnx"))
    return w


def test_a_key_value_cache_decodes_one_token_a_step_as_a_full_rerun_would(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    w = write_cached_model(tmp_path / "cached", seed=5)
    m = AbstractiveModel(tmp_path / "cached")
    prompt, _ = m.prompt_ids(OTHER)
    fed: list[tuple[int, int]] = []   # (new tokens, past tokens) of every session call
    run = m.session.run

    def recording(names: list[str], feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        fed.append((feed["input_ids"].shape[1], feed["past_key_values.0.key"].shape[2]))
        return run(names, feed)  # type: ignore[no-any-return]

    monkeypatch.setattr(m.session, "run", recording)
    g = m.generate(OTHER, max_new_tokens=12)
    assert list(g.token_ids) == w.greedy(prompt, 12)
    assert fed == [(len(prompt), 0)] + [(1, len(prompt) + k) for k in range(11)]
    assert len(set(g.token_ids)) > 1   # the attention makes the answer depend on more than the last token


@pytest.mark.parametrize(("fault", "message"), [
    ("stale", r"present.0.key has shape \(1, 2, 0, 4\); expected \(1, 2, 1, 4\)"),
    ("zeroed", "does not reproduce a full rerun"),
    ("no-present", "has no output present.0.value"),
    ("symbolic", "fixed heads and head_dim"),
    ("shuffled", "fails on a three-token input"),
])
def test_a_broken_cache_is_refused_at_load(tmp_path: Path, fault: str, message: str) -> None:
    write_cached_model(tmp_path / fault, fault=fault)
    with pytest.raises(AbstractiveModelError, match=message):
        AbstractiveModel(tmp_path / fault)


# --- the critics' verdict ---

def test_the_critics_pick_the_abstractive_summary_only_when_it_clears_them(
        scripted: tuple[Path, Weights], summarizer: Summarizer) -> None:
    m = AbstractiveModel(scripted[0])
    r = summarize_abstractive(summarizer, m, DOC, max_tokens=20)
    assert r.winner is r.abstractive and r.abstractive.passed and r.abstractive.text == SCRIPT
    assert r.abstractive.sources == (0, 1) and r.abstractive.scores.support == 1.0
    assert r.student.text == r.student_summary.text and r.budget == 20
    # on another document the script is out of place: unsupported words, the student's summary stands
    other = summarize_abstractive(summarizer, m, OTHER, max_tokens=20)
    assert other.winner is other.student and "support" in other.abstractive.failed
    assert other.abstractive.text and len(words(other.abstractive.text)) <= 20


def test_a_model_that_fails_at_run_time_loses_to_the_student(tmp_path: Path, summarizer: Summarizer) -> None:
    # positions past the bias table's 144 rows: the graph's Gather fails once the prompt is longer than that
    write_model(tmp_path / "short", config={**CONFIG, "max_input_tokens": 300})
    r = summarize_abstractive(summarizer, AbstractiveModel(tmp_path / "short"), " ".join([OTHER] * 6), max_tokens=10)
    assert r.winner is r.student and r.abstractive.failed == ("error",) and r.abstractive.error
    assert str(tmp_path) not in r.abstractive.error   # no file path reaches a client


# --- through the service ---

def test_the_worker_stops_generating_at_its_share_of_the_deadline(scripted: tuple[Path, Weights]) -> None:
    from fastapi.testclient import TestClient

    with TestClient(worker.create_app(abstractive_model=scripted[0])) as c:
        assert c.get("/healthz").json()["abstractive_model"] == "tiny-random"
        body = c.post("/summarize", json={"text": DOC, "max_tokens": 20, "mode": "abstractive",
                                          "deadline_s": 1e-9}).json()
        a = body["candidates"]["abstractive"]
        assert (a["stopped"], a["text"], a["failed"][0], body["backend"]) == ("deadline", "", "empty", "student")
        assert body["summary"] == body["candidates"]["student"]["text"]


@pytest.fixture(scope="module")
def gateways(scripted: tuple[Path, Weights]) -> Iterator[tuple[Gateway, Gateway]]:
    both = []
    try:   # one with the abstractive model, one without: a worker each
        both.append(Gateway(PoolConfig(local_workers=1, abstractive_model=scripted[0])))
        both.append(Gateway(PoolConfig(local_workers=1)))
        yield both[0], both[1]
    finally:
        for g in both:
            g.close()


def test_mode_abstractive_through_gateway_and_workers(gateways: tuple[Gateway, Gateway]) -> None:
    with httpx.Client(base_url=gateways[0].url, timeout=30) as c:
        r = c.post("/v1/summarize", json={"text": DOC, "max_tokens": 20, "mode": "abstractive"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["backend"], body["model"], body["summary"], body["sentences"]) == (
            "abstractive", "tiny-random", SCRIPT, [])
        a, s = body["candidates"]["abstractive"], body["candidates"]["student"]
        assert a["passed"] and a["failed"] == [] and a["stopped"] == "eos" and a["text"] == SCRIPT
        assert a["sentences"] == [{"text": t + " .", "source": i} for i, t in enumerate(SCRIPT[:-2].split(" . "))]
        assert body["scores"] == {k: a["scores"][k] for k in ("saliency", "faithfulness", "support", "tokens")}
        assert s["model"] == "gramdex-summarizer" and s["text"] and set(s["scores"]) == set(a["scores"]) == {
            "saliency", "faithfulness", "support", "tokens", "coherence"}
        assert set(body["thresholds"]) == {"faithfulness", "support", "saliency", "coherence"}

        # the model's text fails the critics on another document: the student's summary, both scored
        r = c.post("/v1/summarize", json={"text": OTHER, "ratio": 0.4, "mode": "abstractive"})
        body = r.json()
        assert r.status_code == 200 and body["backend"] == "student" and body["model"] == "gramdex-summarizer"
        assert body["summary"] == body["candidates"]["student"]["text"] and body["sentences"]
        assert not body["candidates"]["abstractive"]["passed"] and body["candidates"]["abstractive"]["failed"]
        for sent in body["sentences"]:
            assert OTHER[sent["start"]:sent["end"]] == sent["text"]

        # the other modes name their backend too
        r = c.post("/v1/summarize", json={"text": DOC, "max_tokens": 20})
        assert r.status_code == 200 and r.json()["backend"] == "student" and "candidates" not in r.json()


@pytest.mark.parametrize("budget", [1, 5, 12])
def test_the_budget_holds_for_both_candidates(gateways: tuple[Gateway, Gateway], budget: int) -> None:
    r = httpx.post(f"{gateways[0].url}/v1/summarize", json={"text": DOC, "max_tokens": budget, "mode": "abstractive"},
                   timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["budget"] == budget and len(words(body["summary"])) <= budget
    for c in body["candidates"].values():
        assert len(words(c["text"])) <= budget and c["scores"]["tokens"] <= budget
    assert body["candidates"]["abstractive"]["stopped"] == "budget"
    assert body["candidates"]["abstractive"]["text"] == " ".join(SCRIPT.split()[:budget])


def test_batch_and_bad_budget_in_mode_abstractive(gateways: tuple[Gateway, Gateway]) -> None:
    r = httpx.post(f"{gateways[0].url}/v1/summarize/batch", timeout=30, json={"documents": [
        {"text": DOC, "max_tokens": 20, "mode": "abstractive"}, {"text": OTHER, "max_tokens": 10}]})
    assert r.status_code == 200 and [x["backend"] for x in r.json()["results"]] == ["abstractive", "student"]
    r = httpx.post(f"{gateways[0].url}/v1/summarize", json={"text": DOC, "ratio": 1.5, "mode": "abstractive"})
    assert r.status_code == 422 and r.json()["type"].endswith(":impossible-budget")


def test_not_configured_is_a_clear_problem(gateways: tuple[Gateway, Gateway]) -> None:
    r = httpx.post(f"{gateways[1].url}/v1/summarize", json={"text": DOC, "max_tokens": 20, "mode": "abstractive"},
                   timeout=30)
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    p = r.json()
    assert p["type"] == "urn:gramdex:problem:validation-error" and p["field"] == "mode"
    assert "summarizer.abstractive_model" in p["detail"] and "retry-after" not in r.headers
    ok = httpx.post(f"{gateways[1].url}/v1/summarize", json={"text": DOC, "max_tokens": 20}, timeout=30)
    assert ok.status_code == 200


def test_the_setting_reaches_the_workers(scripted: tuple[Path, Weights], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAMDEX_SUMMARIZER__ABSTRACTIVE_MODEL", str(scripted[0]))
    settings = Settings()
    assert settings.summarizer.abstractive_model == scripted[0]
    started: list[PoolConfig] = []

    async def start(config: PoolConfig) -> None:
        started.append(config)

    monkeypatch.setattr(service_app.WorkerPool, "start", start)
    asyncio.run(service_app._start_summarizer(FastAPI(), settings))
    assert started[0].abstractive_model == scripted[0]
    pool = WorkerPool.__new__(WorkerPool)
    pool.config = started[0]
    monkeypatch.setattr(gateway_module.subprocess, "Popen", lambda cmd: cmd)
    cmd = pool._spawn().process
    assert cmd[cmd.index("--abstractive-model") + 1] == str(scripted[0])


def test_readme_example_runs(scripted: tuple[Path, Weights], capsys: pytest.CaptureFixture[str]) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = re.search(r"^## Summarizer\n(.*?)(?=^## )", readme, re.S | re.M)
    assert section
    code = next(b for b in re.findall(r"^```python\n(.*?)^```", section.group(1), re.S | re.M) if "abstractive" in b)
    assert "models/my-onnx-summarizer" in code
    exec(compile(code.replace("models/my-onnx-summarizer", str(scripted[0])), "README", "exec"), {})
    out = capsys.readouterr().out
    assert out.startswith("abstractive ")


def test_sdk_and_terminal_ask_for_mode_abstractive(gateways: tuple[Gateway, Gateway], scripted: tuple[Path, Weights],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from gramdex_client import Client

    from index_tools.cli import main as gramdex

    with Client(gateways[0].url) as c:
        s = c.summarize(DOC, max_tokens=20, mode="abstractive")
    assert (s.backend, s.summary, s.sentences) == ("abstractive", SCRIPT, [])
    assert s.candidates is not None and s.candidates["abstractive"]["passed"] and s.thresholds
    # in this process, with the model given on the command line
    assert gramdex(["summarize", DOC, "--max-tokens", "20", "--mode", "abstractive", "--abstractive-model",
                    str(scripted[0]), "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert (body["backend"], body["summary"]) == ("abstractive", SCRIPT)
    assert gramdex(["summarize", DOC, "--max-tokens", "20", "--mode", "abstractive"]) == 1
    assert "not configured" in capsys.readouterr().err
    assert gramdex(["summarize", DOC, "--max-tokens", "20", "--abstractive-model", str(scripted[0].parent)]) == 1
    assert "--abstractive-model:" in capsys.readouterr().err
