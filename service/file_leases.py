"""Linux read leases on mapped index files, so that no other process can truncate one under a running query.

A read lease (fcntl F_SETLEASE, F_RDLCK) on a read-only descriptor makes the kernel hold back any other process's
open for writing, O_TRUNC or truncate() of the file, and signal the holder (SIGIO), until the holder releases the
lease or /proc/sys/fs/lease-break-time (45 s by default) passes. The holder marks what it maps from those files
unusable, waits for the reads already running, unmaps, and releases: the writer goes on, and no read ever touches a
mapping whose file shrank (which would raise SIGBUS and kill the process). Renames and deletions do not break read
leases; they need no protection, as the mapped inode stays intact.

SIGIO kills a process that has no handler for it, so leases are taken only while the `watcher` has one installed:
`watcher.start(loop)` on the event loop of the main thread (the server), or `watcher.start()` from the main thread
without a loop (the handler then scans in a helper thread). Each process holds its own leases (uvicorn workers).
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import logging
import os
import signal
import threading
from collections.abc import Callable, Sequence

log = logging.getLogger("gramdex.service")
LEASE_SIGNAL = signal.SIGIO
_SETLEASE = getattr(fcntl, "F_SETLEASE", None)
_GETLEASE = getattr(fcntl, "F_GETLEASE", None)


def break_time_s() -> float:
    """How long the kernel lets a writer wait for a lease holder before it breaks the lease itself."""
    try:
        with open("/proc/sys/fs/lease-break-time", encoding="ascii") as f:
            return float(f.read().strip())
    except (OSError, ValueError):
        return 45.0


class Leases:
    """Read leases on some files for one owner. `on_break(reason)` is called once, from the watcher's handler (on
    the event loop, or a helper thread), when another process starts to write or truncate one of them; the writer
    waits until `release()`. `error` says why the files are not leased (then nothing protects them)."""

    def __init__(self, on_break: Callable[[str], None]) -> None:
        self.on_break = on_break
        self.error: str | None = None
        self._fds: list[tuple[str, int]] = []
        self._lock = threading.Lock()  # poll and release never see a closed (or reused) descriptor
        self._fired = False

    @property
    def held(self) -> bool:
        return bool(self._fds)

    def _acquire(self, paths: Sequence[str]) -> None:
        for path in paths:
            name = os.path.basename(path)
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as exc:
                self._fail(f"{name}: {os.strerror(exc.errno or 0)}")
                return
            try:
                fcntl.fcntl(fd, _SETLEASE, fcntl.F_RDLCK)
            except OSError as exc:
                os.close(fd)
                self._fail(_why(name, path, exc))
                return
            with self._lock:
                self._fds.append((path, fd))

    def _fail(self, reason: str) -> None:
        self.release()  # a lease on some files only would protect nothing
        self.error = reason

    def poll(self) -> None:
        """Fires on_break if a lease is being broken (F_GETLEASE then answers F_UNLCK, not F_RDLCK)."""
        with self._lock:
            breaking = next((path for path, fd in self._fds if fcntl.fcntl(fd, _GETLEASE) != fcntl.F_RDLCK), None)
            if breaking is None or self._fired:
                return
            self._fired = True
        self.on_break(f"{os.path.basename(breaking)} is being written or truncated by another process")

    def release(self) -> None:
        """Gives the leases up (the writers waiting on them go on); call only once nothing reads the mapping."""
        with self._lock:
            fds, self._fds = self._fds, []
            for _, fd in fds:
                try:
                    fcntl.fcntl(fd, _SETLEASE, fcntl.F_UNLCK)  # also where a forked child shares the descriptor
                except OSError:
                    pass
                os.close(fd)
        watcher.forget(self)


def _why(name: str, path: str, exc: OSError) -> str:
    why = {errno.EAGAIN: "open for writing by some process", errno.EACCES: "not owned by the server (no CAP_LEASE)",
           errno.EPERM: "not owned by the server (no CAP_LEASE)",
           errno.EINVAL: "the filesystem has no leases"}.get(exc.errno or 0, os.strerror(exc.errno or 0))
    try:
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            why += "; read-only mount"
    except OSError:
        pass
    return f"{name}: {why}"


class Watcher:
    """The process's lease-break handler and the leases it watches."""

    def __init__(self) -> None:
        self._owners: set[Leases] = set()
        self._lock = threading.Lock()
        self._users = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def active(self) -> bool:
        return self._users > 0

    def start(self, loop: asyncio.AbstractEventLoop | None = None, longest_call_s: float | None = None) -> bool:
        """Installs the handler (on `loop`, which must run in the main thread, or as a plain signal handler from
        the main thread); False where neither is possible or the platform has no leases: then none are taken."""
        if _SETLEASE is None:
            return False
        with self._lock:
            if self._users == 0:
                try:
                    if loop is not None:
                        loop.add_signal_handler(LEASE_SIGNAL, self.scan)
                    else:
                        signal.signal(LEASE_SIGNAL, lambda *_: threading.Thread(target=self.scan, daemon=True).start())
                except (ValueError, RuntimeError, NotImplementedError) as exc:  # not the main thread
                    log.warning("index files are not leased: no %s handler (%s)", LEASE_SIGNAL.name, exc)
                    return False
                self._loop = loop
            self._users += 1
        limit = break_time_s()
        if longest_call_s is not None and longest_call_s >= limit - 1:
            log.warning("a query may run %.0f s, longer than the lease break time (%.0f s): a file truncated "
                        "under such a query can still crash the process", longest_call_s, limit)
        return True

    def stop(self) -> None:
        """Removes the handler; a lease still held then makes writers wait for the break time (SIGIO ignored)."""
        with self._lock:
            if self._users == 0:
                return
            self._users -= 1
            if self._users:
                return
            loop, self._loop = self._loop, None
            if loop is not None and not loop.is_closed():
                loop.remove_signal_handler(LEASE_SIGNAL)
            signal.signal(LEASE_SIGNAL, signal.SIG_IGN)

    def take(self, paths: Sequence[str], on_break: Callable[[str], None]) -> Leases:
        """Read leases on all of `paths`, or on none (with `error` set)."""
        leases = Leases(on_break)
        if not self.active:
            leases.error = "no lease-break handler in this process"
            return leases
        with self._lock:
            self._owners.add(leases)  # before the first lease, so no break goes unseen
        leases._acquire(paths)
        leases.poll()  # a break that began before the owner was registered
        return leases

    def forget(self, leases: Leases) -> None:
        with self._lock:
            self._owners.discard(leases)

    def scan(self) -> None:
        with self._lock:
            owners = list(self._owners)
        for leases in owners:
            try:
                leases.poll()
            except Exception:  # one owner's failure must not hide another's break
                log.exception("lease break handling failed")


watcher = Watcher()
