"""Thin binding of the C suffix-array builder (sa_build.c): build, plan and verify `table.N`."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from native._gramdex import ffi, lib
from native.jobs import raise_status as _raise

# Phases as reported by gd_sa_progress.phase.
PHASE_NAMES = {0: "idle", 1: "sort", 2: "merge", 3: "write", 4: "done"}

ProgressFn = Callable[[str, int, int], None]
"""Called as (phase, done, total) from the calling thread while the build runs."""


@dataclass(frozen=True)
class SortPlan:
    tok_cnt: int
    ptr_size: int
    part_tokens: int
    overlap_tokens: int
    n_parts: int
    peak_bytes: int


def _options(token_width: int, memory_budget: int, threads: int, tmp_dir: str | None,
             max_part_tokens: int) -> tuple[object, list[object]]:
    opts = ffi.new("gd_sa_options *")
    opts.token_width = token_width
    opts.memory_budget = max(0, int(memory_budget))
    opts.threads = max(1, int(threads))
    opts.max_part_tokens = max(0, int(max_part_tokens))
    keep: list[object] = []  # C strings must outlive the call
    if tmp_dir is not None:
        c_tmp = ffi.new("char[]", os.fsencode(tmp_dir))
        keep.append(c_tmp)
        opts.tmp_dir = c_tmp
    return opts, keep


def ptr_size(ds_size: int) -> int:
    """Bytes per table entry for a token file of `ds_size` bytes (infini-gram's ratio)."""
    return int(lib.gd_sa_ptr_size(ds_size))


def plan(ds_size: int, token_width: int, memory_budget: int = 0, threads: int = 1,
         max_part_tokens: int = 0) -> SortPlan:
    """How `build` would split a token file of `ds_size` bytes."""
    opts, _keep = _options(token_width, memory_budget, threads, None, max_part_tokens)
    out = ffi.new("gd_sa_plan_info *")
    err = ffi.new("gd_error *")
    status = lib.gd_sa_plan(ds_size, opts, out, err)
    if status != lib.GD_OK:
        _raise(status, err)
    return SortPlan(out.tok_cnt, out.ptr_size, out.part_tokens, out.overlap_tokens, out.n_parts,
                    out.peak_bytes)


def build(tokenized: str | Path, table: str | Path, token_width: int, *, memory_budget: int = 0,
          threads: int = 1, tmp_dir: str | Path | None = None, max_part_tokens: int = 0,
          progress: ProgressFn | None = None, poll_s: float = 0.2) -> None:
    """Write `table` (the suffix array of `tokenized`); on failure no `table` is left behind.

    The C call releases the GIL; with `progress` it runs in a helper thread while this thread polls
    the shared progress counters.
    """
    opts, keep = _options(token_width, memory_budget, threads,
                          None if tmp_dir is None else os.fspath(tmp_dir), max_part_tokens)
    c_in = ffi.new("char[]", os.fsencode(os.fspath(tokenized)))
    c_out = ffi.new("char[]", os.fsencode(os.fspath(table)))
    prog = ffi.new("gd_sa_progress *")
    err = ffi.new("gd_error *")
    result: list[int] = []

    def run() -> None:
        result.append(lib.gd_sa_build(c_in, c_out, opts, prog, err))

    if progress is None:
        run()
    else:
        worker = threading.Thread(target=run, name="gd_sa_build", daemon=True)
        worker.start()
        while worker.is_alive():
            worker.join(poll_s)
            progress(PHASE_NAMES.get(prog.phase, "sort"), int(prog.done), int(prog.total))
    del keep
    if result[0] != lib.GD_OK:
        _raise(result[0], err)


def verify(tokenized: str | Path, table: str | Path, token_width: int, stride: int = 1) -> None:
    """Raise IndexFormatError unless `table` is a sorted suffix array of `tokenized`.

    stride 1 checks every entry, every adjacent pair and that offsets do not repeat; stride k checks
    the adjacent pairs at ranks 0, k, 2k, ...
    """
    bad = ffi.new("uint64_t *")
    err = ffi.new("gd_error *")
    status = lib.gd_sa_verify(os.fsencode(os.fspath(tokenized)), os.fsencode(os.fspath(table)),
                              token_width, max(1, int(stride)), bad, err)
    if status != lib.GD_OK:
        _raise(status, err)
