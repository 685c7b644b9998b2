"""gramdex's query engine: a C core over memory-mapped suffix arrays, with a cffi binding."""

from native.engine import Engine
from native.errors import (
    DeadlineExceededError,
    EngineIOError,
    GramdexError,
    IndexFormatError,
    InvalidQueryError,
)
from native.results import (
    CnfResult,
    CountResult,
    Document,
    FindResult,
    NtdResult,
    ProbResult,
    SearchResult,
    ShardInfo,
    Span,
    TokenScore,
)

__all__ = [
    "CnfResult", "CountResult", "DeadlineExceededError", "Document", "Engine", "EngineIOError", "FindResult",
    "GramdexError", "IndexFormatError", "InvalidQueryError", "NtdResult", "ProbResult", "SearchResult",
    "ShardInfo", "Span", "TokenScore",
]
