"""`gramdex count|ntd|prob|infgram|docs|attribute|summarize`: the same answers from an index directory (engine in
process) and from a real server (SDK), readable tables, JSON, and errors as one line."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest
from gramdex_client import Client
from service_support.fixtures import Indexes, Server

from index_tools.cli import main as gramdex

REPO = Path(__file__).resolve().parents[1]
NEWS = ("The council approved the new budget on Monday. The plan adds money for schools and roads. "
        "Critics said the budget ignores housing. The mayor will sign it next week. Weather was mild.")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = gramdex(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def as_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    code, out, err = run(capsys, *args, "--json")
    assert code == 0, err
    body = json.loads(out)
    assert body.pop("latency_ms") >= 0
    return body


QUERIES = [
    ("count", "the cat"),
    ("count", "cat AND mat OR hat"),
    ("count", "259 318", "--ids"),
    ("ntd", "the cat", "--max-support", "50"),
    ("prob", "the cat", "sat"),
    ("infgram", "zqxj the cat"),
    ("infgram", "zqxj the cat", "--cont", "sat"),
    ("docs", "the cat", "--maxnum", "2", "--max-disp-len", "20", "--seed", "3"),
    ("docs", "cat AND mat"),
    ("attribute", "the cat sat on the big tree and flew", "--min-len", "2"),
]


@pytest.mark.parametrize("args", QUERIES, ids=[" ".join(q) for q in QUERIES])
def test_index_directory_and_server_agree(args: tuple[str, ...], capsys: pytest.CaptureFixture[str],
                                          indexes: Indexes, server: Server) -> None:
    local = as_json(capsys, *args, "--index", str(indexes.text))
    remote = as_json(capsys, *args, "--url", server.url, "--name", "demo")
    assert local == remote


def test_tables(capsys: pytest.CaptureFixture[str], indexes: Indexes, server: Server) -> None:
    with Client(server.url, index="demo") as c:
        n = c.count("the cat").count
        top = c.ntd("the cat").next_tokens[0]
    code, out, _ = run(capsys, "count", "the cat", "--index", str(indexes.text))
    assert code == 0 and out.splitlines()[2].split() == ['"', 'the', 'cat"', str(n), "no"]
    assert out.splitlines()[-1].endswith(" ms)")
    code, out, _ = run(capsys, "ntd", "the cat", "--top", "1", "--url", server.url, "--name", "demo")
    lines = out.splitlines()
    assert lines[0] == f'prompt: " the cat"  count {n}' and len(lines) == 5  # head, header, rule, 1 row, latency
    assert lines[3].split()[2:5] == [str(top.token_id), str(top.cont_cnt), f"{top.prob:.4g}"] and "█" in lines[3]
    code, out, _ = run(capsys, "docs", "the cat", "--maxnum", "1", "--index", str(indexes.text))
    assert "[ the cat]" in out and '"title": "doc ' in out
    code, out, _ = run(capsys, "attribute", "-", "--index", str(indexes.text))  # empty stdin under capsys
    assert code == 1


def test_errors_are_one_line(capsys: pytest.CaptureFixture[str], indexes: Indexes, server: Server,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRAMDEX_URL", raising=False)
    cases = [
        (["count", "x", "--url", server.url, "--name", "nope"], "404 Unknown index: no index named 'nope'"),
        (["count", "x", "--url", server.url], "the server has indexes demo, slow: choose one with --name"),
        (["count", "1,x", "--ids", "--index", str(indexes.text)], "--ids expects token ids"),
        (["count", "x"], "give --index DIR"),
        (["count", "x", "--index", str(indexes.text), "--url", server.url], "not both"),
        (["prob", "the", "sat on the mat", "--index", str(indexes.text)], "The query is malformed: cont:"),
        (["ntd", "x", "--max-support", "0", "--url", server.url, "--name", "demo"], "422"),
        (["count", "x", "--url", "http://127.0.0.1:9", "--name", "demo"], "http://127.0.0.1:9"),
        (["summarize", "Some words here.", "--index", str(indexes.text)], "exactly one of --max-tokens"),
        (["summarize", "Some words here.", "--index", str(indexes.text), "--max-tokens", "3"],
         "--index: index 'local' at"),  # a subword index cannot be the critics' corpus: it says so
    ]
    monkeypatch.setenv("GRAMDEX_MAX_RETRIES", "0")
    for args, message in cases:
        code, out, err = run(capsys, *args)
        assert code == 1 and out == "" and message in err and err.count("\n") == 1, (args, err)


def test_url_from_the_environment(capsys: pytest.CaptureFixture[str], server: Server,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAMDEX_URL", server.url)
    monkeypatch.setenv("GRAMDEX_INDEX", "slow")
    assert as_json(capsys, "count", "ab")["token_ids"] == [97, 98]


def test_summarize_in_process(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    doc = tmp_path / "news.txt"
    doc.write_text(NEWS, encoding="utf-8")
    body = as_json(capsys, "summarize", f"@{doc}", "--max-tokens", "12")
    assert body["sentences"] and body["scores"]["tokens"] <= 12 == body["budget"]
    for s in body["sentences"]:
        assert NEWS[s["start"]:s["end"]] == s["text"]
    code, out, _ = run(capsys, "summarize", NEWS, "--ratio", "0.3", "--mode", "compressive")
    assert code == 0 and "saliency" in out and "kept text" in out


def test_readme_commands_run(capsys: pytest.CaptureFixture[str], indexes: Indexes, server: Server, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    terminal = text.split("\n## Terminal\n", 1)[1].split("\n## ", 1)[0]
    lines = [ln for block in terminal.split("```bash\n")[1:] for ln in block.split("```")[0].splitlines() if ln]
    assert len(lines) >= 8
    (tmp_path / "article.txt").write_text(NEWS, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    commands = {shlex.split(ln)[1] for ln in lines}
    assert commands == {"count", "ntd", "prob", "infgram", "docs", "attribute", "summarize"}
    for line in lines:
        args = shlex.split(line.replace("path/to/index", str(indexes.text)).replace("http://127.0.0.1:8000",
                                                                                      server.url))
        assert args[0] == "gramdex"
        code, out, err = run(capsys, *args[1:])
        assert code == 0 and out, (line, err)
