"""Service settings: defaults < TOML file < environment (GRAMDEX_*) < command-line overrides.

Settings travel to uvicorn worker processes as the config file path plus a JSON blob of command-line
overrides in the environment, so every worker (and every reload) re-reads the same sources.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

CONFIG_ENV = "GRAMDEX_CONFIG"
OVERRIDES_ENV = "GRAMDEX_SETTINGS_OVERRIDES"


class IndexSettings(BaseModel):
    """One served index. Everything but `path` comes from the index's index.json when it has one."""

    path: Path
    tokenizer: Path | None = None  # a tokenizers JSON (.json or .json.gz); default: the one in index.json
    token_width: int | None = Field(default=None, description="bytes per token: 1, 2 or 4")
    eos_token_id: int | None = None
    vocab_size: int | None = None
    # None = automatic: on for byte-level BPE (a word inside running text carries its leading space)
    add_prefix_space: bool | None = None

    @field_validator("token_width")
    @classmethod
    def _width(cls, v: int | None) -> int | None:
        if v is not None and v not in (1, 2, 4):
            raise ValueError("token_width must be 1, 2 or 4")
        return v


class ApiKey(BaseModel):
    key: str = Field(min_length=8)
    name: str = "client"
    admin: bool = False
    rate_per_s: float | None = Field(default=None, gt=0, description="sustained requests per second")
    burst: int | None = Field(default=None, gt=0)


class Limits(BaseModel):
    max_body_bytes: int = 1 << 20
    # uvicorn's httptools parser takes headers of any size: past this total the request is answered 431
    max_header_bytes: int = 16 << 10
    max_query_chars: int = 10_000
    max_query_tokens: int = 1_000
    max_cnf_clauses: int = 8
    max_cnf_terms: int = 8          # per clause
    max_maxnum: int = 20
    max_disp_len: int = 10_000
    max_support: int = 10_000
    max_clause_freq: int = 500_000
    max_diff_tokens: int = 1_000
    max_locations: int = 1_000      # attribute: locations listed per span
    default_timeout_ms: float = 5_000
    max_timeout_ms: float = 30_000


class Concurrency(BaseModel):
    # cheap queries (count, prob, find, documents) and slow ones (ntd, CNF, attribute, score) use separate
    # thread pools, so a burst of slow queries cannot take the threads that cheap ones need
    fast_threads: int = Field(default=8, ge=1)
    slow_threads: int = Field(default=2, ge=1)
    max_queue: int = Field(default=256, ge=0, description="queued calls per pool before 503")
    retry_after_s: int = 1
    # how often a thread running Python code hands the GIL over: shorter lets the event loop answer cheap
    # queries while a slow one turns its millions of results into Python objects (the interpreter's default: 5 ms)
    gil_switch_interval_ms: float = Field(default=0.5, gt=0)
    # ntd reads O(max_support) suffix-array entries whatever the corpus size (one sample per `unit` ranks), so up to
    # this max_support it is a cheap call (fast lane); above it, or for infgram_ntd's extra searches, the slow lane
    fast_ntd_max_support: int = Field(default=1000, ge=0)
    # the slow lane's threads run at this nice value: on a busy machine a CNF query that takes a core for seconds
    # then leaves the CPU to the event loop and the cheap queries, and still gets what they leave
    slow_nice: int = Field(default=10, ge=0, le=19)


class Summarizer(BaseModel):
    """The summarizer's worker processes behind /v1/summarize."""

    workers: int = Field(default=2, ge=0, description="local worker processes that `gramdex serve` supervises")
    urls: list[str] = Field(default_factory=list, description="workers run elsewhere (gramdex summarize-worker)")
    model: Path | None = Field(default=None, description="a model .npz; default: the one shipped with gramdex")
    abstractive_model: Path | None = Field(
        default=None, description="an ONNX model directory (model.onnx, tokenizer.json) for mode 'abstractive'")
    deadline_s: float = Field(default=10.0, gt=0)
    max_queue: int = Field(default=32, ge=0, description="waiting documents beyond all workers' slots before 503")
    indexes: dict[str, Path] = Field(
        default_factory=dict, description="word-level indexes from gramdex distill that requests may name (NAME: DIR)")
    index: str | None = Field(default=None, description="the one of `indexes` a request that names none uses")

    @model_validator(mode="after")
    def _default_index_is_listed(self) -> Summarizer:
        if self.index is not None and self.index not in self.indexes:
            raise ValueError(f"summarizer.index {self.index!r} is not one of summarizer.indexes "
                             f"({', '.join(self.indexes) or 'none'})")
        return self


class ShardGroup(BaseModel):
    """One part of a routed index: servers holding the same shards (replicas), tried in turn."""

    name: str | None = Field(default=None, description="how errors name the group; default: shard-group-<n>")
    urls: list[str] = Field(min_length=1, description="base URLs of `gramdex serve` processes with the same files")


class RouterIndex(BaseModel):
    shards: list[ShardGroup] = Field(min_length=1, description="shard groups in the index's document order")
    name: str | None = Field(default=None, description="the index's name on the shard servers; default: the same")


class Router(BaseModel):
    """`gramdex serve --router`: the /v1 API answered by fanning out to shard servers."""

    indexes: dict[str, RouterIndex] = Field(default_factory=dict)
    shard_timeout_s: float = Field(default=10.0, gt=0, description="per request to one shard server")
    connect_timeout_s: float = Field(default=1.0, gt=0)
    # a replica that failed is tried last for this long, so requests do not keep paying its timeout
    down_cooldown_s: float = Field(default=5.0, ge=0)
    max_connections: int = Field(default=512, ge=1, description="the shared client's pool, all shard servers")
    api_key: str | None = Field(default=None, description="sent to the shard servers when they require a key")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GRAMDEX_", env_nested_delimiter="__", extra="forbid")

    indexes: dict[str, IndexSettings] = Field(default_factory=dict)
    demo: bool = Field(default=True, description="serve the demo index when no index is configured")
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = Field(default=1, ge=1)
    limits: Limits = Field(default_factory=Limits)
    concurrency: Concurrency = Field(default_factory=Concurrency)
    summarizer: Summarizer = Field(default_factory=Summarizer)
    api_keys: list[ApiKey] = Field(default_factory=list)
    router: Router = Field(default_factory=Router)
    # once a non-admin key is configured, queries without a key are refused; anonymous_rate_per_s limits each
    # client address that sends no key
    anonymous_rate_per_s: float | None = Field(default=None, gt=0)
    anonymous_burst: int | None = Field(default=None, gt=0)
    log_level: str = "warning"

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config = os.environ.get(CONFIG_ENV)
        if config:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config)))
        return tuple(sources)


def load_settings(config_file: Path | None = None, overrides: dict[str, Any] | None = None) -> Settings:
    """Read the settings; `config_file` and `overrides` default to what the parent process exported."""
    if config_file is not None:
        if not config_file.is_file():
            raise FileNotFoundError(f"config file {config_file} does not exist")
        os.environ[CONFIG_ENV] = str(config_file)
    if overrides is None:
        overrides = json.loads(os.environ.get(OVERRIDES_ENV, "{}"))
    return Settings(**overrides)


def export_for_workers(config_file: Path | None, overrides: dict[str, Any]) -> None:
    """Let worker processes (and reloads) rebuild the same settings."""
    if config_file is not None:
        os.environ[CONFIG_ENV] = str(config_file.resolve())
    os.environ[OVERRIDES_ENV] = json.dumps(overrides, default=str)
