"""The container's runtime conditions without a container engine: the real service run the way the image runs it,
under the restrictions docker/compose.yaml and docker/k8s/ declare, reproduced with a mount namespace and chroot.

The sandbox (built by a helper run under `unshare -m --propagation private`, so every mount it makes lives and dies
with the sandbox's processes and none reaches the host's mount table):

* the root is a tmpfs made read-only, holding the image's layout: the host's top-level directories bound
  read-only (recursively), /opt/gramdex = the installed virtual environment (here the checkout's venv) with the
  entrypoint scripts the Dockerfile copies, /home/gramdex and /indexes owned by the image's user;
* writable: only the service's `tmpfs` entries (compose) / emptyDir at /tmp (k8s), and /dev/shm, which every
  container runtime gives a container;
* volumes as the service declares them: the index volume read-only for the API, read-write for the index builder,
  the corpus read-only;
* the process drops to the Dockerfile's USER (uid:gid 10001:10001, no supplementary groups, no capabilities,
  no-new-privileges) after chroot, with exactly the image's environment (its ENV lines, the service's
  `environment`, HOME of the image's user) and starts the image's ENTRYPOINT with the service's command.

Then the index is built in the index builder's sandbox and served from the API's with 2 uvicorn workers and
a summarizer worker each, queried over HTTP from the test; strace (when installed) records every file
system call that failed with EROFS/EACCES/EPERM in any process, and the test requires none.
Needs root (mounts, chroot); skipped otherwise.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from service_support.fixtures import ADMIN_KEY, corpus_docs, free_port

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / "docker"
BASE_IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # python:3.11-slim's PATH
# file system calls that create, change or remove; strace logs those that failed (and failed opens for reading)
WRITE_CALLS = ("open openat openat2 creat mkdir mkdirat rename renameat renameat2 unlink unlinkat rmdir link linkat "
               "symlink symlinkat truncate chmod fchmodat chown lchown fchownat utimensat mknod mknodat").split()

# Runs as root inside `unshare -m --propagation private`; builds the sandbox from a JSON description (argv[1]),
# then chroots, drops to the image's user and execs the command. Exit 77: the sandbox cannot be set up here.
HELPER = r'''
import ctypes, json, os, stat, subprocess, sys

cfg = json.load(open(sys.argv[1]))
root = cfg["root"]


def fail(msg, code=70):
    print(f"sandbox: {msg}", file=sys.stderr, flush=True)
    sys.exit(code)


def mount(*args):
    r = subprocess.run(["mount", "-n", *args], capture_output=True, text=True)  # -n: no /run/mount/utab
    if r.returncode != 0:
        fail(f"mount {' '.join(args)}: {r.stderr.strip()}", 77 if "permission denied" in r.stderr.lower() else 70)


def mountpoints_under(path):
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].encode().decode("unicode_escape")
            if mp == path or mp.startswith(path + "/"):
                out.append(mp)
    return out


def bind_ro(src, dst):
    mount("--rbind", src, dst)
    for mp in mountpoints_under(dst):
        r = subprocess.run(["mount", "-n", "-o", "remount,bind,ro", mp], capture_output=True)
        if r.returncode != 0:  # a host mount that cannot be made read-only is left out of the view
            subprocess.run(["umount", "-n", "-l", mp], check=True)


def inside(path):
    return os.path.join(root, path.lstrip("/"))


mount("-t", "tmpfs", "-o", "mode=755", "image", root)
image_tops = {p.strip("/").split("/")[0] for p in cfg["image_paths"]}
skeleton = set()
for name in sorted(os.listdir("/")):
    host = "/" + name
    if os.path.islink(host):
        os.symlink(os.readlink(host), inside(host))
    elif os.path.isdir(host):
        os.mkdir(inside(host), 0o755)
        if name in ("proc", "sys", "dev"):
            continue
        if name in image_tops or not os.stat(host).st_mode & stat.S_IXOTH:
            skeleton.add(name)  # the image's own directory, or one the image's user could not enter
        else:
            bind_ro(host, inside(host))

def under_tmpfs(host):
    return any(host == t or host.startswith(t.rstrip("/") + "/") for t in cfg["tmpfs"])


def expose(host):
    """host's tree, read-only, at the same place; a directory the image's user could not enter (a checkout in a
    `mktemp -d` directory, mode 700) is recreated enterable, holding its entries bound one by one"""
    os.makedirs(inside(host), 0o755, exist_ok=True)
    if os.stat(host).st_mode & stat.S_IXOTH:
        bind_ro(host, inside(host))
        return
    for name in os.listdir(host):
        src, dst = os.path.join(host, name), os.path.join(inside(host), name)
        if os.path.islink(src):
            os.symlink(os.readlink(src), dst)
            continue
        if os.path.isdir(src):
            os.mkdir(dst, 0o755)
        else:
            open(dst, "wb").close()
        bind_ro(src, dst)
    bind_ro(inside(host), inside(host))  # the recreated directory itself read-only too, as the host's bind would be


for host in cfg["expose"]:  # host paths the sandbox needs (the venv, its Python, the checkout) under skeleton dirs
    if host.strip("/").split("/")[0] in skeleton and not under_tmpfs(host):  # those under a tmpfs: after it
        expose(host)
for path, uid, gid, mode in cfg["dirs"]:
    os.makedirs(inside(path), 0o755, exist_ok=True)
    os.chown(inside(path), uid, gid)
    os.chmod(inside(path), mode)
for path, target in cfg["symlinks"]:
    os.symlink(target, inside(path))
for path, src, mode in cfg["files"]:
    with open(src, "rb") as f, open(inside(path), "wb") as out:
        out.write(f.read())
    os.chmod(inside(path), mode)
for src, dst, ro in cfg["binds"]:
    if ro:
        bind_ro(src, inside(dst))
    else:
        mount("--bind", src, inside(dst))
mount("-t", "proc", "proc", inside("/proc"))
mount("--bind", "/sys", inside("/sys"))
mount("-o", "remount,bind,ro", inside("/sys"))
mount("--bind", "/dev", inside("/dev"))
mount("-o", "remount,bind,ro", inside("/dev"))
for path in cfg["tmpfs"]:
    mount("-t", "tmpfs", "-o", "mode=1777,nosuid,nodev,noexec", "tmpfs", inside(path))
rebound = []
for host in sorted(cfg["expose"]):  # a checkout (and its venv) under /tmp, which the tmpfs just covered: bound back
    if under_tmpfs(host) and not any(host.startswith(b + "/") for b in rebound):  # (--rbind brings what is inside)
        expose(host)
        rebound.append(host)
mount("-o", "remount,ro", root)

os.chroot(root)
os.chdir(cfg["cwd"])
os.setgroups([])
os.setgid(cfg["gid"])
os.setuid(cfg["uid"])  # effective and permitted capabilities go with root
if ctypes.CDLL(None, use_errno=True).prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
    fail("prctl(PR_SET_NO_NEW_PRIVS) failed")
os.execvpe(cfg["argv"][0], cfg["argv"], cfg["env"])
'''


# --- what the deploy files declare ----------------------------------------------------------------------------

@dataclass
class Image:
    uid: int
    gid: int
    env: dict[str, str]
    workdir: str
    entrypoint: list[str]
    cmd: list[str]
    scripts: list[str]          # docker/<script> files copied to /opt/gramdex/docker
    owned: list[str] = field(default_factory=list)  # directories the runtime stage gives the user


def _runtime_stage() -> str:
    text = (DOCKER / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", re.sub(r"^\s*#.*\n", "", text, flags=re.M))  # comments out, continuations joined
    return text[[m.start() for m in re.finditer(r"^FROM ", text, re.M)][-1]:]


def image() -> Image:
    stage = _runtime_stage()
    user = re.findall(r"^USER (\d+):(\d+)\s*$", stage, re.M)
    assert user, "the runtime stage's USER is numeric uid:gid"
    env: dict[str, str] = {}
    for line in re.findall(r"^ENV (.*)$", stage, re.M):
        for item in shlex.split(line):
            key, _, value = item.partition("=")
            env[key] = value.replace("$PATH", BASE_IMAGE_PATH)
    copy = re.search(r"^COPY ((?:docker/\S+ )+)/opt/gramdex/docker/\s*$", stage, re.M)
    assert copy, "the entrypoint scripts are copied to /opt/gramdex/docker/"
    owned = re.findall(r"chown gramdex (\S+)", stage)
    return Image(uid=int(user[-1][0]), gid=int(user[-1][1]), env=env,
                 workdir=re.findall(r"^WORKDIR (\S+)", stage, re.M)[-1],
                 entrypoint=json.loads(re.findall(r"^ENTRYPOINT (\[.*\])", stage, re.M)[-1]),
                 cmd=json.loads(re.findall(r"^CMD (\[.*\])", stage, re.M)[-1]),
                 scripts=copy.group(1).split(), owned=owned)


def compose_services() -> dict[str, dict[str, Any]]:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())["services"]  # merge keys resolved


def _k8s_pods() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for f in sorted((DOCKER / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(f.read_text()):
            if doc and doc["kind"] in ("Deployment", "StatefulSet", "Job"):
                out.append((doc["metadata"]["name"], doc["spec"]["template"]["spec"]))
    return out


def test_deploy_files_declare_a_read_only_unprivileged_container() -> None:
    img = image()
    assert img.uid != 0 and img.gid != 0
    assert img.env.get("PYTHONDONTWRITEBYTECODE") == "1"
    assert img.env["GRAMDEX_CACHE_DIR"].startswith("/tmp/")  # the demo index, when /indexes holds none
    for name, svc in compose_services().items():
        assert svc["read_only"] is True and "/tmp" in svc["tmpfs"], name
        assert svc["cap_drop"] == ["ALL"] and "no-new-privileges:true" in svc["security_opt"], name
        assert "user" not in svc, name  # the image's USER
    assert "indexes:/indexes:ro" in compose_services()["api"]["volumes"]
    pods = _k8s_pods()
    assert pods
    for name, pod in pods:
        ctx = pod["securityContext"]
        assert ctx["runAsNonRoot"] is True and (ctx["runAsUser"], ctx["runAsGroup"]) == (img.uid, img.gid), name
        tmp = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
        for c in pod.get("initContainers", []) + pod["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False, (name, c["name"])
            assert sc["capabilities"]["drop"] == ["ALL"], (name, c["name"])
            if c in pod["containers"]:
                assert any(m["mountPath"] == "/tmp" and m["name"] in tmp for m in c["volumeMounts"]), (name, c["name"])
        for c in pod["containers"]:  # servers mount their indexes and config read-only
            if c["name"] in ("shard", "router"):
                assert all(m.get("readOnly") for m in c["volumeMounts"] if m["mountPath"] != "/tmp"), (name, c["name"])
    readme = (REPO / "README.md").read_text(encoding="utf-8").split("\n## Container\n", 1)[1].split("\n## ", 1)[0]
    run = next(line for line in readme.splitlines() if line.startswith("docker run "))
    assert "--read-only" in run and "--tmpfs /tmp" in run and ":/indexes:ro" in run


# --- the sandbox ----------------------------------------------------------------------------------------------

@dataclass
class Sandbox:
    """One container: a service's declared conditions, the image's user, environment and entrypoint."""

    work: Path
    env: dict[str, str]
    argv: list[str]
    tmpfs: list[str]
    binds: list[tuple[str, str, bool]]  # host dir, container path, read-only

    def config(self, img: Image) -> Path:
        root = self.work / "root"
        root.mkdir()
        venv = Path(sys.prefix)
        home = self.env["HOME"]
        dirs = [(img.workdir, img.uid, img.gid, 0o700), (home, img.uid, img.gid, 0o700),
                *[(d, img.uid, 0, 0o755) for d in img.owned], ("/opt/gramdex/docker", 0, 0, 0o755),
                *[(dst, 0, 0, 0o755) for _, dst, _ in self.binds], *[(t, 0, 0, 0o1777) for t in self.tmpfs],
                ("/dev/shm", 0, 0, 0o1777)]
        cfg = {
            "root": str(root),
            "image_paths": [d[0] for d in dirs],
            "expose": sorted({str(REPO), sys.prefix, sys.base_prefix, os.path.realpath(sys.base_prefix)}),
            "dirs": [d for d in dirs if not d[0].startswith("/dev/")],
            # the installed virtual environment at /opt/gramdex, as the builder stage leaves it
            "symlinks": [(f"/opt/gramdex/{p.name}", str(p)) for p in sorted(venv.iterdir())],
            "files": [(f"/opt/gramdex/docker/{Path(s).name}", str(REPO / s), 0o755) for s in img.scripts],
            "binds": self.binds,
            "tmpfs": [*self.tmpfs, "/dev/shm"],
            "uid": img.uid, "gid": img.gid, "cwd": img.workdir, "env": self.env, "argv": self.argv,
        }
        path = self.work / "sandbox.json"
        path.write_text(json.dumps(cfg))
        (self.work / "sandbox.py").write_text(HELPER)
        return path

    def command(self, img: Image, trace: Path | None = None) -> list[str]:
        cfg = self.config(img)
        # a mount namespace (nothing reaches the host's mount table) and a PID namespace whose first process, as in a
        # container, is the entrypoint: when it exits the kernel kills whatever else is left in the sandbox
        cmd = ["unshare", "--mount", "--pid", "--fork", "--propagation", "private", sys.executable, "-I", "-B",
               str(self.work / "sandbox.py"), str(cfg)]
        if trace is not None:
            cmd = ["strace", "-f", "--seccomp-bpf", "-qq", "-e", "trace=" + ",".join("?" + c for c in WRITE_CALLS),
                   "-e", "status=failed", "-o", str(trace), *cmd]
        return cmd


def _container(service: str, work: Path, volumes: dict[str, Path], img: Image, command: list[str] | None = None,
               env: dict[str, str] | None = None) -> Sandbox:
    """A compose service's container: its tmpfs, its volumes (`volumes` maps volume names and relative host
    paths to host directories), the image's environment + the service's + `env`, the image's entrypoint."""
    svc = compose_services()[service]
    assert svc["read_only"] is True
    binds = []
    for spec in svc.get("volumes", []):
        src, dst, *mode = spec.split(":")
        binds.append((str(volumes[src]), dst, mode == ["ro"]))
    environment = {**img.env, "HOME": img.workdir, **svc.get("environment", {}), **(env or {})}
    return Sandbox(work=work, env=environment, argv=img.entrypoint + (command or svc.get("command") or img.cmd),
                   tmpfs=list(svc["tmpfs"]), binds=binds)


@pytest.fixture(scope="module")
def img() -> Image:
    if os.geteuid() != 0:
        pytest.skip("the sandbox needs root (mount namespaces, chroot): not root here")
    if not shutil.which("unshare") or not shutil.which("mount"):
        pytest.skip("the sandbox needs util-linux's unshare and mount")
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "true"], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"mount namespaces are not permitted here: {r.stderr.strip()}")
    if not (Path(sys.prefix) / "bin" / "gramdex").exists():
        pytest.skip("gramdex is not installed in the running interpreter's environment")
    return image()


def _trace_available() -> bool:
    if not shutil.which("strace"):
        return False
    r = subprocess.run(["strace", "-f", "--seccomp-bpf", "-qq", "-o", os.devnull, "true"], capture_output=True)
    return r.returncode == 0


def _denied_writes(trace: Path) -> list[str]:
    """Calls that a read-only or unwritable place refused: any EROFS; EACCES/EPERM when the call writes."""
    bad = []
    for line in trace.read_text(errors="replace").splitlines():
        if " EROFS " in line:
            bad.append(line)
        elif re.search(r"= -1 (EACCES|EPERM) ", line):
            call = re.match(r"\d+\s+(?:<\.\.\. )?(\w+)", line)
            opening = call is not None and call.group(1) in ("open", "openat", "openat2")
            if not opening or re.search(r"O_WRONLY|O_RDWR|O_CREAT|O_TRUNC", line):
                bad.append(line)
    return bad


def _run(box: Sandbox, img: Image, trace: Path | None = None) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(box.command(img, trace), capture_output=True, text=True, timeout=120)
    if r.returncode == 77:
        pytest.skip(r.stderr.strip())
    return r


# --- /proc, seen from the host ----------------------------------------------------------------------------------

def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _process(pid: int) -> dict[str, Any]:
    proc = Path("/proc") / str(pid)
    try:
        status = dict(line.split(":\t", 1) for line in (proc / "status").read_text().splitlines() if ":\t" in line)
        environ = (proc / "environ").read_bytes().decode(errors="replace").split("\0")
        argv = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return {"argv": [], "env": {}}
    return {"pid": pid, "uid": status["Uid"].split(), "gid": status["Gid"].split(), "nspid": status["NSpid"].split(),
            "argv": argv, "env": dict(e.partition("=")[::2] for e in environ if e)}


def _stop(proc: subprocess.Popen[bytes]) -> bool:
    """`docker stop`: SIGTERM to the container's first process (PID 1 in the sandbox), SIGKILL after 20 s."""
    init = [p["pid"] for p in map(_process, _descendants(proc.pid)) if p.get("nspid", [])[-1:] == ["1"]]
    if init:
        os.kill(init[0], signal.SIGTERM)
    try:
        proc.wait(20)
        return True
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        return False


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns, p.stat().st_mode)
            for p in sorted(root.rglob("*"))}


# --- the tests ----------------------------------------------------------------------------------------------------

PROBE = r"""
import errno, json, os, sys
from service.demo_index import demo_path
status = dict(line.split(":\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\t" in line)
out = {"pid": os.getpid(), "ids": [os.getuid(), os.geteuid(), os.getgid(), os.getgroups()],
       "cap_eff": status["CapEff"].strip(), "no_new_privs": status["NoNewPrivs"].strip(),
       "dont_write_bytecode": sys.dont_write_bytecode, "demo": str(demo_path()), "cwd": os.getcwd(),
       "home": os.path.expanduser("~"), "writable": {}}
for place in sys.argv[1:]:
    try:
        os.close(os.open(os.path.join(place, ".probe"), os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600))
        os.unlink(os.path.join(place, ".probe"))
        out["writable"][place] = "yes"
    except OSError as e:
        out["writable"][place] = errno.errorcode[e.errno]
with open("/dev/null", "w") as f:
    f.write("x")
print(json.dumps(out))
"""


def test_sandbox_is_read_only_and_unprivileged(img: Image, tmp_path: Path) -> None:
    """The API's container as the sandbox builds it: the image's user without capabilities as PID 1, nothing
    writable but /tmp and /dev/shm; the write check sees every refused write (the probe's own)."""
    volume = tmp_path / "volume"
    volume.mkdir()
    os.chown(volume, img.uid, img.gid)
    places = ["/", "/etc", "/opt/gramdex", "/opt/gramdex/bin", img.workdir, "/indexes", str(REPO),
              str(REPO / "service"), sys.prefix, "/tmp", "/dev/shm"]
    box = _container("api", tmp_path, {"indexes": volume}, img,
                     command=["/opt/gramdex/bin/python", "-c", PROBE, *places])
    trace = tmp_path / "trace.txt" if _trace_available() else None
    r = _run(box, img, trace)
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out["pid"] == 1 and out["ids"] == [img.uid, img.uid, img.gid, []]
    assert out["cap_eff"] == "0000000000000000" and out["no_new_privs"] == "1"
    assert out["dont_write_bytecode"] is True and out["demo"].startswith("/tmp/")
    assert out["cwd"] == img.workdir and out["home"] == img.workdir
    read_only = [p for p in places if p not in ("/tmp", "/dev/shm")]
    assert out["writable"] == {**{p: "EROFS" for p in read_only}, "/tmp": "yes", "/dev/shm": "yes"}
    if trace is not None:
        denied = _denied_writes(trace)
        assert len(denied) == len(read_only) and all(f'"{os.path.join(p, ".probe")}"' in d
                                                      for p, d in zip(read_only, denied, strict=True)), denied
    assert list(volume.iterdir()) == []
    assert str(tmp_path) not in Path("/proc/self/mountinfo").read_text()  # nothing left in the host's mount table


@pytest.fixture(scope="module")
def volume(img: Image, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """compose's index-builder: `build-index` in its container writes the index into the (fresh) named volume."""
    work = tmp_path_factory.mktemp("ro-build")
    corpus, volume = work / "corpus", work / "volume"
    corpus.mkdir()
    (corpus / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in corpus_docs(120)))
    volume.mkdir()
    os.chown(volume, img.uid, img.gid)  # a fresh named volume takes /indexes' owner from the image
    box = _container("index-builder", work, {"./corpus": corpus, "indexes": volume}, img,
                     env={"GRAMDEX_TOKENIZER_ARGS": "--train-tokenizer --vocab-size 300"})  # a small corpus
    trace = work / "trace.txt" if _trace_available() else None
    r = _run(box, img, trace)
    assert r.returncode == 0, r.stdout + r.stderr
    index = volume / box.env["GRAMDEX_INDEX_NAME"]
    assert (index / "index.json").is_file()
    assert {(p.stat().st_uid, p.stat().st_gid) for p in [index, *index.iterdir()]} == {(img.uid, img.gid)}
    if trace is not None:
        assert _denied_writes(trace) == []
    return volume


def test_api_serves_from_a_read_only_root(img: Image, volume: Path, tmp_path: Path) -> None:
    """compose's api container, with the summarizer workers supervised as in the README's `docker run` (2 uvicorn
    workers, each supervising 1 summarizer worker): every operation answers, nothing tries to write outside /tmp."""
    port = free_port()
    env = {"GRAMDEX_HOST": "127.0.0.1", "GRAMDEX_PORT": str(port), "GRAMDEX_WORKERS": "2",
           "GRAMDEX_SUMMARIZER__WORKERS": "1",
           "GRAMDEX_API_KEYS": json.dumps([{"key": ADMIN_KEY, "name": "ops", "admin": True}])}
    box = _container("api", tmp_path, {"indexes": volume}, img, env=env)
    box.env.pop("GRAMDEX_SUMMARIZER__URLS")  # compose's separate summarizer service: supervised workers instead
    assert box.argv == [*img.entrypoint, "serve"]
    name = compose_services()["index-builder"]["environment"]["GRAMDEX_INDEX_NAME"]
    before = _snapshot(volume)
    trace = tmp_path / "trace.txt" if _trace_available() else None
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(box.command(img, trace), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60

    def alive() -> None:
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()

    try:
        while not _answers(url + "/readyz"):
            alive()
            time.sleep(0.2)
        ready = httpx.get(url + "/readyz").json()
        assert ready["indexes"] == {name: "ok"} and "unleased" not in ready  # read leases on the read-only mount
        count = httpx.post(f"{url}/v1/indexes/{name}/count", json={"query": "the cat"}).json()
        assert count["count"] > 0
        ntd = httpx.post(f"{url}/v1/indexes/{name}/ntd", json={"prompt": "the cat", "max_support": 100}).json()
        assert ntd["prompt_cnt"] > 0 and ntd["next_tokens"]
        doc = httpx.get(f"{url}/v1/indexes/{name}/documents/3", params={"max_disp_len": 50})
        assert doc.status_code == 200 and doc.json()["text"]

        # each uvicorn worker starts its summarizer worker in the background: wait until both answer
        while True:
            workers = [p for p in map(_process, _descendants(proc.pid)) if "service.summarize.worker" in p["argv"]]
            ports = [p["argv"][p["argv"].index("--port") + 1] for p in workers]
            if len(ports) == 2 and all(_answers(f"http://127.0.0.1:{port}/healthz") for port in ports):
                break
            alive()
            time.sleep(0.2)
        text = "The cat sat on the mat. The dog ran to the garden. A bird looked at the big tree."
        answered = 0
        while answered < 4:  # connections spread over the uvicorn workers
            summary = httpx.post(url + "/v1/summarize", json={"text": text, "max_tokens": 8}, timeout=30)
            if summary.status_code == 503:  # a gateway still waiting for its worker's first /healthz
                alive()
                time.sleep(0.2)
                continue
            assert summary.status_code == 200 and summary.json()["sentences"], summary.text
            answered += 1

        reload = httpx.post(url + "/v1/admin/reload", headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30)
        assert reload.status_code == 200 and reload.json()["indexes"] == [name], reload.text
        again = httpx.post(f"{url}/v1/indexes/{name}/count", json={"query": "the cat"}).json()
        assert again["count"] == count["count"]
        metrics = httpx.get(url + "/metrics")  # both uvicorn workers' samples, merged from the multiprocess dir
        assert metrics.status_code == 200 and f'index="{name}"' in metrics.text

        sandboxed = [p for p in map(_process, _descendants(proc.pid)) if p["env"].get("GRAMDEX_INDEX_ROOT")]
        assert all(p["uid"] == [str(img.uid)] * 4 and p["gid"] == [str(img.gid)] * 4 for p in sandboxed), sandboxed
        uvicorn = [p for p in sandboxed if "--multiprocessing-fork" in p["argv"]]
        assert len(uvicorn) == 2 and len(workers) == 2
        # gramdex serve made it (mkdtemp) once started, so only the uvicorn workers' start-up environment shows it
        multiproc = {p["env"].get("PROMETHEUS_MULTIPROC_DIR") for p in uvicorn}
        assert len(multiproc) == 1 and str(multiproc.pop()).startswith("/tmp/gramdex-metrics-"), uvicorn
    finally:
        stopped = _stop(proc)
    served = log.read_text(errors="replace")
    assert stopped, served
    assert not re.search(r"Read-only file system|PermissionError|Permission denied|Traceback|Errno", served), served
    if trace is not None:
        assert _denied_writes(trace) == [], "\n".join(_denied_writes(trace))
    assert _snapshot(volume) == before
    assert str(tmp_path) not in Path("/proc/self/mountinfo").read_text()  # the mounts went with the processes
