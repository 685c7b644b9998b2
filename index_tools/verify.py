"""`gramdex verify`: check an index's files against its manifest and against each other."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from index_tools.tokenize import dtype_for_width, sep_id
from native.manifest import ManifestError, read_manifest

SAMPLE_PAIRS = 100_000  # adjacent suffix pairs checked without --full


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _check_offsets(path: Path, limit: int, what: str, report: Report) -> np.ndarray | None:
    size = path.stat().st_size
    if size % 8:
        report.problems.append(f"{path}: size {size} is not a multiple of 8")
        return None
    offs = np.fromfile(path, dtype="<u8")
    if len(offs) and offs[0] != 0:
        report.problems.append(f"{path}: first {what} offset is {offs[0]}, not 0")
    if len(offs) > 1 and not np.all(offs[1:] > offs[:-1]):
        bad = int(np.argmin(offs[1:] > offs[:-1])) + 1
        report.problems.append(f"{path}: {what} offsets not increasing at entry {bad}")
    if len(offs) and offs[-1] >= limit:
        report.problems.append(f"{path}: last {what} offset {offs[-1]} is past the end ({limit} bytes)")
    return offs


def verify_index(directory: Path, full: bool = False) -> Report:
    """Sizes, manifest, document and metadata offsets, and suffix order (sampled, or all with full)."""
    from native import suffix_array
    from native.errors import GramdexError

    report = Report()
    try:
        m = read_manifest(directory)
    except ManifestError as e:
        report.problems.append(str(e))
        return report
    width = m.token_width
    if m.tokenizer_file and not (directory / m.tokenizer_file).is_file():
        report.problems.append(f"{directory / m.tokenizer_file}: tokenizer file missing")
    docs = tokens = 0
    for sh in m.shards:
        n = sh.shard
        for name, size in sh.files.items():
            p = directory / name
            if not p.is_file():
                report.problems.append(f"{p}: missing")
            elif p.stat().st_size != size:
                report.problems.append(f"{p}: size {p.stat().st_size}, manifest says {size}")
        tok_path, table_path = directory / f"tokenized.{n}", directory / f"table.{n}"
        off_path = directory / f"offset.{n}"
        if not (tok_path.is_file() and table_path.is_file() and off_path.is_file()):
            report.problems.append(f"shard {n}: tokenized/table/offset file missing")
            continue
        ds_size = tok_path.stat().st_size
        if ds_size != sh.token_count * width:
            report.problems.append(f"{tok_path}: {ds_size} bytes, manifest says {sh.token_count} tokens")
            continue
        offs = _check_offsets(off_path, ds_size, "document", report)
        if offs is not None:
            if len(offs) != sh.doc_count:
                report.problems.append(f"{off_path}: {len(offs)} documents, manifest says {sh.doc_count}")
            toks = np.memmap(tok_path, dtype=dtype_for_width(width), mode="r")
            aligned = offs[offs % width == 0] if len(offs) else offs
            if len(aligned) != len(offs):
                report.problems.append(f"{off_path}: document offsets not token-aligned")
            elif len(offs) and not np.all(toks[(offs // width).astype(np.int64)] == sep_id(width)):
                report.problems.append(f"{off_path}: some document offsets do not point at a separator")
            elif full and int(np.count_nonzero(toks == sep_id(width))) != len(offs):
                report.problems.append(f"{tok_path}: separator count differs from the document count")
            del toks
        meta, metaoff = directory / f"metadata.{n}", directory / f"metaoff.{n}"
        if meta.is_file() and metaoff.is_file():
            moffs = _check_offsets(metaoff, max(meta.stat().st_size, 1), "metadata", report)
            if moffs is not None and len(moffs) != sh.doc_count:
                report.problems.append(f"{metaoff}: {len(moffs)} entries, expected {sh.doc_count}")
        stride = 1 if full else max(1, sh.token_count // SAMPLE_PAIRS)
        try:
            suffix_array.verify(tok_path, table_path, width, stride)
        except (GramdexError, OSError) as e:
            report.problems.append(str(e))
        report.checked.append(f"shard {n}: {sh.doc_count} docs, {sh.token_count} tokens, "
                              f"{'all' if stride == 1 else 'sampled'} suffix pairs in order")
        docs += sh.doc_count
        tokens += sh.token_count
    if docs != m.document_count or tokens != m.token_count:
        report.problems.append(f"manifest totals ({m.document_count} docs, {m.token_count} tokens) differ "
                               f"from its shards ({docs}, {tokens})")
    return report
