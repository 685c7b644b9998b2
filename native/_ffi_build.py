"""cffi (API mode) build of the gramdex C core: compiled at install time, never shipped prebuilt."""

from __future__ import annotations

import os
import re
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
HEADER = HERE / "include" / "gramdex.h"


def _cdef_from_header(text: str) -> str:
    """The public header is the single source of declarations: drop what pycparser cannot read."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    # preprocessor lines and the bare braces of the C++ `extern "C"` guard
    keep = [ln for ln in text.splitlines()
            if not ln.lstrip().startswith("#") and ln.strip() not in ('extern "C" {', "}")]
    return "\n".join(keep)


def _sources() -> list[str]:
    return sorted(str(p.relative_to(HERE.parent)) for p in (HERE / "src").glob("*.c"))


ffibuilder = FFI()
ffibuilder.cdef(_cdef_from_header(HEADER.read_text()))
ffibuilder.set_source(
    "native._gramdex",
    '#include "gramdex.h"',
    sources=_sources(),
    include_dirs=[str(HEADER.parent.relative_to(HERE.parent))],
    extra_compile_args=["-std=c11", "-O2", "-D_GNU_SOURCE", "-Wall", "-Wextra",
                        *os.environ.get("GRAMDEX_CFLAGS", "").split()],
    extra_link_args=["-pthread"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
