"""The container deploy without a Docker engine: the Dockerfile and compose file linted and schema-checked, and the
very scripts the Dockerfile runs tested here: install into a fresh virtual environment from a copy of the source,
build an index, start, and query /readyz, a count and a summary through the installed (not the checked-out) code."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from service_support.fixtures import corpus_docs, free_port

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / "docker"
TOOLS = Path(sys.executable).parent  # hadolint and check-jsonschema come with the test dependencies


def test_dockerfile_lints_clean() -> None:
    r = subprocess.run([str(TOOLS / "hadolint"), "--failure-threshold", "info", str(DOCKER / "Dockerfile")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_compose_file_matches_the_compose_spec() -> None:
    r = subprocess.run([str(TOOLS / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec",
                        str(DOCKER / "compose.yaml")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    services = yaml.safe_load((DOCKER / "compose.yaml").read_text())["services"]
    assert services["index-builder"]["command"] == ["build-index"]
    assert "indexes:/indexes" in services["index-builder"]["volumes"]
    assert services["summarizer"]["command"] == ["summarize-worker"] and services["summarizer"]["deploy"]["replicas"]
    api = services["api"]
    assert "indexes:/indexes:ro" in api["volumes"]
    assert api["depends_on"]["index-builder"]["condition"] == "service_completed_successfully"
    assert api["environment"]["GRAMDEX_SUMMARIZER__WORKERS"] == "0"
    assert all(u.startswith("http://summarizer:") for u in json.loads(api["environment"]["GRAMDEX_SUMMARIZER__URLS"]))


def test_dockerfile_runs_the_tested_scripts() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    stages = re.findall(r"^FROM .*$", text, re.M)
    assert len(stages) == 2 and stages[0].endswith("AS builder")
    runtime = text[text.rindex(stages[1]):]
    assert "RUN bash docker/build.sh /src /opt/gramdex" in text and "gcc" not in runtime
    assert 'ENTRYPOINT ["/opt/gramdex/docker/start.sh"]' in runtime
    assert 'CMD ["/opt/gramdex/docker/healthcheck.sh"]' in runtime and "HEALTHCHECK" in runtime
    user = re.findall(r"^USER (\S+)$", runtime, re.M)
    assert user and user[-1] not in ("root", "0")
    for script in ("start.sh", "build-index.sh", "healthcheck.sh"):
        assert f"docker/{script}" in runtime and os.access(DOCKER / script, os.X_OK)


def test_readme_container_commands_name_real_files() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    container = readme.split("\n## Container\n", 1)[1].split("\n## ", 1)[0]
    commands = container.split("```text\n", 1)[1].split("```", 1)[0].splitlines()
    assert commands[0] == "docker build -f docker/Dockerfile -t gramdex ."
    assert "-v /data/indexes:/indexes:ro" in commands[1]
    assert commands[2].startswith("docker compose -f docker/compose.yaml up")
    for path in re.findall(r"`(docker/[\w./-]+)`", container):
        assert (REPO / path.rstrip("/")).exists() or path == "docker/corpus/", path


def _source_copy(dest: Path) -> Path:
    """What `COPY . .` puts in the builder: the files git knows, less Dockerfile.dockerignore's."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """docker/build.sh into a fresh virtual environment; the environment the container's scripts run with."""
    root = tmp_path_factory.mktemp("dk")
    src = _source_copy(root / "src")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRAMDEX_", "PYTHON", "VIRTUAL_ENV"))}
    # byte-compiling every dependency is the image's business; skipping it here halves the install
    r = subprocess.run(["bash", str(DOCKER / "build.sh"), str(src), str(root / "venv")], cwd=root,
                       env={**env, "PIP_NO_COMPILE": "1"}, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    (root / "corpus").mkdir()
    (root / "corpus" / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in corpus_docs(120)))
    yield {**env, "PATH": f"{root / 'venv' / 'bin'}{os.pathsep}{env['PATH']}", "HOME": str(root),
           "GRAMDEX_CORPUS": str(root / "corpus"), "GRAMDEX_INDEX_ROOT": str(root / "indexes"),
           "GRAMDEX_INDEX_NAME": "news", "GRAMDEX_TOKENIZER_ARGS": "--train-tokenizer --vocab-size 300",
           "GRAMDEX_HOST": "127.0.0.1", "GRAMDEX_PORT": str(free_port()), "GRAMDEX_SUMMARIZER__WORKERS": "1",
           "CWD": str(root)}


def _script(name: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(DOCKER / name), *args], cwd=env["CWD"], env=env, capture_output=True,
                          text=True, timeout=120)


def test_install_build_start_and_query(installed: dict[str, str]) -> None:
    env = installed
    built = _script("build-index.sh", env)
    assert built.returncode == 0, built.stderr
    index = Path(env["GRAMDEX_INDEX_ROOT"]) / "news"
    assert (index / "index.json").is_file() and (index / "tokenizer.json.gz").is_file()
    again = _script("build-index.sh", env)
    assert again.returncode == 0 and "exists; keeping it" in again.stdout
    assert _script("healthcheck.sh", env).returncode == 1  # nothing listens yet

    log = Path(env["CWD"]) / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(["bash", str(DOCKER / "start.sh")], cwd=env["CWD"], env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while _script("healthcheck.sh", env).returncode != 0:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        url = f"http://127.0.0.1:{env['GRAMDEX_PORT']}"
        ready = httpx.get(url + "/readyz")
        assert ready.status_code == 200 and ready.json()["indexes"] == {"news": "ok"}
        count = httpx.post(url + "/v1/indexes/news/count", json={"query": "the cat"}).json()
        assert count["count"] > 0
        assert httpx.get(url + "/").status_code == 200  # the explorer's files were packaged
        text = "The cat sat on the mat. The dog ran to the garden. A bird looked at the big tree."
        while True:  # the summarizer worker starts in the background; until then, 503
            summary = httpx.post(url + "/v1/summarize", json={"text": text, "max_tokens": 8}, timeout=30)
            if summary.status_code != 503 or time.monotonic() > deadline + 30:
                break
            time.sleep(0.2)
        assert summary.status_code == 200 and summary.json()["sentences"], summary.text
        # the installed code answers, not the checkout's
        where = subprocess.run([str(Path(env["PATH"].split(os.pathsep)[0]) / "python"), "-c",
                                "import service; print(service.__file__)"], cwd=env["CWD"], env=env,
                               capture_output=True, text=True)
        assert "site-packages" in where.stdout and str(REPO) not in where.stdout
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
