"""docker/k8s: every manifest is valid against the Kubernetes schemas (kubernetes-validate, strict), the pieces
refer to each other correctly (selectors, headless Services, the router's replica URLs, probes, volumes), the
resource requests follow the documented sizing rule, and the index build Job's own command, run as separate
worker processes the way the Indexed Job runs its pods, gives the same shards as a single build."""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from service_support.fixtures import REPO, corpus_docs

from native.manifest import read_manifest
from service.settings import Settings

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

K8S = REPO / "docker" / "k8s"
kubernetes_validate = pytest.importorskip("kubernetes_validate")
UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def _docs() -> list[tuple[Path, dict[str, Any]]]:
    return [(f, d) for f in sorted(K8S.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]


def _kind(kind: str) -> list[dict[str, Any]]:
    return [d for _, d in _docs() if d["kind"] == kind]


def _bytes(quantity: str) -> int:
    m = re.fullmatch(r"(\d+)(Ki|Mi|Gi|Ti)?", quantity)
    assert m, quantity
    return int(m.group(1)) * UNITS.get(m.group(2) or "", 1)


def test_manifests_are_valid_kubernetes() -> None:
    docs = _docs()
    assert {d["kind"] for _, d in docs} >= {"Deployment", "StatefulSet", "Job", "Service", "ConfigMap",
                                           "PersistentVolumeClaim"}
    for _, doc in docs:
        kubernetes_validate.validate(doc, "1.30.0", strict=True)  # raises on any schema error
    broken = {**_kind("Deployment")[0], "spec": {"replicas": "two"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.30.0", strict=True)


def _pod_labels() -> list[dict[str, str]]:
    return [d["spec"]["template"]["metadata"]["labels"] for d in _kind("Deployment") + _kind("StatefulSet")]


def test_services_select_pods_and_probes_use_readyz() -> None:
    for svc in _kind("Service"):
        sel = svc["spec"]["selector"]
        assert any(sel.items() <= labels.items() for labels in _pod_labels()), svc["metadata"]["name"]
    for workload in _kind("Deployment") + _kind("StatefulSet"):
        assert workload["spec"]["selector"]["matchLabels"].items() <= \
            workload["spec"]["template"]["metadata"]["labels"].items()
        c = workload["spec"]["template"]["spec"]["containers"][0]
        assert "readinessProbe" in c and c["resources"]["requests"]["memory"]
        if workload["metadata"]["labels"]["app.kubernetes.io/component"] in ("router", "shard"):
            assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for sts in _kind("StatefulSet"):
        svc = next(s for s in _kind("Service") if s["metadata"]["name"] == sts["spec"]["serviceName"])
        assert svc["spec"]["clusterIP"] == "None"  # headless: stable per-replica DNS names for the router
        assert sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"


def test_router_config_names_every_replica_of_every_group() -> None:
    cm = next(d for d in _kind("ConfigMap") if d["metadata"]["name"] == "gramdex-router")
    settings = Settings(**tomllib.loads(cm["data"]["router.toml"]))
    groups = settings.router.indexes["enwiki"].shards
    statefulsets = {s["metadata"]["name"]: s for s in _kind("StatefulSet")}
    assert len(groups) == len(statefulsets)
    for g, group in enumerate(groups):
        sts = statefulsets[f"gramdex-shard-{g}"]
        want = [f"http://gramdex-shard-{g}-{r}.gramdex-shard-{g}:8000" for r in range(sts["spec"]["replicas"])]
        assert group.urls == want
        fetch = sts["spec"]["template"]["spec"]["initContainers"][0]["args"][0]
        assert f"/shared/enwiki/worker-{g} " in fetch  # group g serves build worker g's output
    router = _kind("Deployment")[0]
    assert "--router" in router["spec"]["template"]["spec"]["containers"][0]["args"]


def test_requests_follow_the_sizing_rule() -> None:
    """Shard servers: memory request >= index bytes + 2 Gi (the index stays in page cache), volume >= 1.1x."""
    for sts in _kind("StatefulSet"):
        index_bytes = int(sts["metadata"]["annotations"]["gramdex.io/index-bytes"])
        requests = sts["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]
        assert _bytes(requests["memory"]) >= index_bytes + 2 * 2**30
        volume = sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
        assert _bytes(volume) >= 1.1 * index_bytes
    job = _kind("Job")[0]
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    memory_gb = float(args[args.index("--memory-gb") + 1])
    requested = job["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["memory"]
    assert _bytes(requested) >= (memory_gb + 4) * 2**30


def _job_args(index: int, corpus: Path, indexes: Path) -> list[str]:
    job = _kind("Job")[0]
    c = job["spec"]["template"]["spec"]["containers"][0]
    assert job["spec"]["completionMode"] == "Indexed"
    assert c["env"][0]["name"] == "JOB_COMPLETION_INDEX"
    out = []
    for arg in c["args"]:
        arg = arg.replace("$(JOB_COMPLETION_INDEX)", str(index))
        arg = arg.replace("/corpus", str(corpus)).replace("/indexes", str(indexes))
        out.append(arg)
    assert out[0] == "gramdex"
    return out[1:]


def test_indexed_job_workers_as_processes_equal_a_single_build(tmp_path: Path) -> None:
    job = _kind("Job")[0]
    workers = job["spec"]["completions"]
    corpus, indexes = tmp_path / "corpus", tmp_path / "indexes"
    (corpus / "docs").mkdir(parents=True)
    (corpus / "docs" / "a.jsonl").write_text("".join(json.dumps(d) + "\n" for d in corpus_docs(120, seed=3)))
    trained = tmp_path / "trained"
    gramdex = [sys.executable, "-m", "index_tools.cli"]
    subprocess.run([*gramdex, "build", "-i", str(corpus / "docs"), "-o", str(trained), "-q", "--train-tokenizer",
                    "--vocab-size", "300"], cwd=REPO, check=True)
    stored = trained / read_manifest(trained).tokenizer_file  # type: ignore[operator]
    (corpus / "tokenizer.json").write_bytes(gzip.decompress(stored.read_bytes()))
    small = ["--threads", "1", "--memory-gb", "1"]

    def adapt(args: list[str]) -> list[str]:  # the cluster's threads and memory are not this machine's
        for flag, value in zip(small[::2], small[1::2], strict=True):
            args[args.index(flag) + 1] = value
        return args

    procs = [subprocess.Popen([*gramdex, *adapt(_job_args(i, corpus, indexes)), "-q"], cwd=REPO)
             for i in range(workers)]
    assert [p.wait(120) for p in procs] == [0] * workers
    args = adapt(_job_args(0, corpus, indexes))
    single = tmp_path / "single"
    for flag in ("--workers", "--worker-id"):
        i = args.index(flag)
        del args[i:i + 2]
    args[args.index("-o") + 1] = str(single)
    subprocess.run([*gramdex, *args, "-q"], cwd=REPO, check=True)
    shards = int(args[args.index("--shards") + 1])
    seen = []
    for w in range(workers):
        out = indexes / "enwiki" / f"worker-{w}"
        for entry in read_manifest(out).shards:
            seen.append(entry.global_shard)
            for stem in ("tokenized", "table", "offset", "metadata", "metaoff"):
                assert (out / f"{stem}.{entry.shard}").read_bytes() == \
                    (single / f"{stem}.{entry.global_shard}").read_bytes()
    assert sorted(seen) == list(range(shards))
