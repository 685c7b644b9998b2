"""The README's "Building an index" commands and its engine example run as written."""

from __future__ import annotations

import json
import os
import random
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")


def _block(section: str, lang: str) -> str:
    body = README.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    found = re.search(rf"```{lang}\n(.*?)```", body, re.S)
    assert found, f"no {lang} block in README section {section!r}"
    return found.group(1)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("readme")
    rng = random.Random(5)
    words = "the river flows into sea a city on its banks grew around old bridge over water".split()
    (root / "corpus").mkdir()
    with open(root / "corpus" / "docs.jsonl", "w", encoding="utf-8") as f:
        for i in range(400):
            text = " ".join(rng.choice(words) for _ in range(rng.randint(5, 40)))
            f.write(json.dumps({"text": f"the river flows into the sea . {text}", "id": i}) + "\n")
    gramdex = Path(sys.executable).with_name("gramdex")
    for line in _block("Building an index", "bash").strip().splitlines():
        args = shlex.split(line)
        assert args[0] == "gramdex"
        done = subprocess.run([str(gramdex), *args[1:]], cwd=root, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, (line, done.stderr)
    return root


def test_engine_example_runs(workdir: Path) -> None:
    code = _block("The engine from Python", "python")
    done = subprocess.run([sys.executable, "-c", code], cwd=workdir, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert int(lines[0]) >= 400  # every document starts with the 3-gram
    assert "ProbResult" in lines[1] and "NtdResult" in lines[2] and "Span(" in lines[6]
