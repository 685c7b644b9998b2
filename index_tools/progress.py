"""A small progress bar on stderr: count, rate and ETA, redrawn at most a few times per second."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _fmt_count(n: float, unit: str) -> str:
    if unit == "B":
        for suffix in ("B", "KiB", "MiB", "GiB", "TiB"):
            if abs(n) < 1024 or suffix == "TiB":
                return f"{n:.1f} {suffix}" if suffix != "B" else f"{int(n)} B"
            n /= 1024
    for suffix in ("", "k", "M", "G"):
        if abs(n) < 1000 or suffix == "G":
            return f"{n:.0f}{suffix}" if suffix == "" else f"{n:.1f}{suffix}"
        n /= 1000
    return str(n)


def _fmt_time(s: float) -> str:
    s = int(s)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class Progress:
    """`with Progress("tokenize", total, "B", quiet) as p: p.update(done)`; quiet prints nothing."""

    def __init__(self, label: str, total: int, unit: str = "", quiet: bool = False,
                 stream: TextIO | None = None, interval_s: float = 0.25) -> None:
        self.label, self.total, self.unit, self.quiet = label, max(0, total), unit, quiet
        self.stream = stream or sys.stderr
        self.interval_s = interval_s
        self.start = time.monotonic()
        self._last_draw = 0.0
        self.done = 0

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(ok=exc[0] is None)

    def set_total(self, total: int) -> None:
        self.total = max(0, total)

    def update(self, done: int, force: bool = False) -> None:
        self.done = done
        now = time.monotonic()
        if self.quiet or (not force and now - self._last_draw < self.interval_s):
            return
        self._last_draw = now
        self.stream.write("\r" + self._line(now) + "\x1b[K")
        self.stream.flush()

    def _line(self, now: float) -> str:
        elapsed = now - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        unit = self.unit
        if self.total:
            frac = min(1.0, self.done / self.total)
            bar = "#" * int(frac * 24)
            eta = (self.total - self.done) / rate if rate > 0 else 0.0
            return (f"{self.label:>10} [{bar:<24}] {frac * 100:5.1f}% "
                    f"{_fmt_count(self.done, unit)}/{_fmt_count(self.total, unit)} "
                    f"{_fmt_count(rate, unit)}/s ETA {_fmt_time(eta)}")
        done = _fmt_count(self.done, unit)
        return f"{self.label:>10} {done} {_fmt_count(rate, unit)}/s {_fmt_time(elapsed)}"

    def close(self, ok: bool = True) -> None:
        if self.quiet:
            return
        if ok and self.total:
            self.done = self.total
        self.update(self.done, force=True)
        self.stream.write(f" ({_fmt_time(time.monotonic() - self.start)})\n")
        self.stream.flush()


def note(message: str, quiet: bool = False) -> None:
    if not quiet:
        print(message, file=sys.stderr, flush=True)
