"""Fixtures of the service tests: real indexes built by `gramdex build`, real servers started by `gramdex serve`
as subprocesses on free loopback ports, real HTTP through httpx."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from index_tools.cli import main as gramdex

REPO = Path(__file__).resolve().parents[2]
ADMIN_KEY = "admin-key-0123456789"

SUBJECTS = ["the cat", "the dog", "a bird", "my friend", "the old man", "a small child"]
VERBS = ["sat on", "looked at", "ran to", "jumped over", "slept near"]
OBJECTS = ["the mat", "the hat", "a red house", "the big tree", "the garden"]


def corpus_docs(n: int = 300, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        sentences = [f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}."
                     for _ in range(rng.randint(1, 6))]
        docs.append({"text": " ".join(sentences), "id": i, "title": f"doc {i}"})
    return docs


@dataclass(frozen=True)
class Indexes:
    text: Path   # trained BPE tokenizer, u16, with metadata
    slow: Path   # UTF-8 bytes over a 3-letter alphabet: CNF queries over it take a good fraction of a second


def _build(root: Path, name: str, rows: list[dict[str, Any]], *tok_args: str) -> Path:
    src = root / f"{name}.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = root / name
    assert gramdex(["build", "-i", str(src), "-o", str(out), "-q", *tok_args]) == 0
    return out


@pytest.fixture(scope="session")
def indexes(tmp_path_factory: pytest.TempPathFactory) -> Indexes:
    # a directory name without infini-gram's file-role words ("table", "offset", ...): its engine opens these too
    root = tmp_path_factory.mktemp("gs")
    rng = random.Random(1)
    slow_rows = [{"text": "".join(rng.choice("abc") for _ in range(50_000))} for _ in range(60)]
    return Indexes(text=_build(root, "txt", corpus_docs(), "--train-tokenizer", "--vocab-size", "400"),
                   slow=_build(root, "slw", slow_rows, "--bytes"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def toml_value(v: Any) -> str:
    return json.dumps(str(v) if isinstance(v, Path) else v)


def write_config(path: Path, indexes: dict[str, Path], extra: str = "") -> Path:
    lines = [extra]
    for name, p in indexes.items():
        lines += [f"[indexes.{name}]", f"path = {toml_value(p)}"]
    lines += ["[[api_keys]]", f'key = "{ADMIN_KEY}"', 'name = "admin"', "admin = true"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class Server:
    """`gramdex serve` in a subprocess; .client talks to it."""

    def __init__(self, config: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = config.with_suffix(".log")
        # summarizer workers only where a test asks for them: each is a process that loads the model
        full_env = {**os.environ, "PYTHONPATH": str(REPO), "GRAMDEX_SUMMARIZER__WORKERS": "0", **(env or {})}
        full_env.pop("GRAMDEX_CONFIG", None)
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "index_tools.cli", "serve", "--config", str(config), "--port", str(self.port),
                 *args], stdout=log, stderr=subprocess.STDOUT, env=full_env, cwd=REPO)
        self.client = httpx.Client(base_url=self.url, timeout=30)
        self._wait()

    def _wait(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()}")
            try:
                if self.client.get("/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server did not become ready: {self.log.read_text()}")

    def hup(self) -> None:
        self.proc.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="session")
def server(indexes: Indexes, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The shared server: `demo` (text) and `slow` (bytes) indexes, no client keys, an admin key."""
    cfg = write_config(tmp_path_factory.mktemp("srv") / "gramdex.toml", {"demo": indexes.text, "slow": indexes.slow},
                       "[concurrency]\nfast_threads = 4\nslow_threads = 2\n")
    srv = Server(cfg, env={"GRAMDEX_SUMMARIZER__WORKERS": "1"})
    yield srv
    srv.stop()


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Any]:
    """make_server(indexes, extra_toml, *args) -> a fresh server, stopped after the test."""
    started: list[Server] = []

    def make(indexes: dict[str, Path], extra: str = "", *args: str, env: dict[str, str] | None = None) -> Server:
        cfg = write_config(tmp_path / f"cfg{len(started)}.toml", indexes, extra)
        srv = Server(cfg, *args, env=env)
        started.append(srv)
        return srv

    yield make
    for srv in started:
        srv.stop()
