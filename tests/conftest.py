"""Shared fixtures. tests/support holds the index writer and the brute-force reference model."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from support.index_factory import write_index

# infini-gram finds its files by substring of the *full path* ("table", "offset", ...), so every index
# the tests write lives under a directory named without those words (not under tmp_path, whose name
# is the test's name).
IndexMaker = Callable[..., Path]


@pytest.fixture
def make_index(tmp_path_factory: pytest.TempPathFactory) -> IndexMaker:
    """make_index(shards, token_width, **write_index_kwargs) -> a fresh index directory."""

    def make(shards: Sequence[Sequence[Sequence[int]]], token_width: int, **kwargs: Any) -> Path:
        return write_index(tmp_path_factory.mktemp("gx"), shards, token_width, **kwargs)

    return make

# the HTTP service's fixtures (real indexes, real servers) live beside the tests' other support code
pytest_plugins = ["service_support.fixtures"]
