"""Request and response bodies of POST /v1/summarize and /v1/summarize/batch (the worker builds the answers; these
models document them in the contract)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_BATCH = 32

_EXAMPLE_TEXT = ("the city council approved a new budget on tuesday . the budget raises spending on schools by ten "
                 "percent . critics said the plan ignores roads . the mayor said roads will get money next year .")


class SummarizeRequest(BaseModel):
    # strict and closed, as the engine's requests (service.schemas.Strict): "max_tokens": true is not a budget of 1,
    # and a misspelt "mdoe" is an error rather than a silent extractive summary
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [
        {"text": _EXAMPLE_TEXT, "max_tokens": 20},
        {"text": _EXAMPLE_TEXT, "ratio": 0.5, "mode": "compressive"},
    ]})

    text: Any = None
    max_tokens: int | None = Field(default=None, description="hard budget in words and punctuation tokens")
    ratio: float | None = Field(default=None, description="budget as a share of the document's tokens")
    index: str | None = Field(
        default=None, description="one of the summarizer's word-level indexes (setting summarizer.indexes) for the "
                                  "critics' P_C; default: setting summarizer.index, else the model's word statistics")
    mode: Literal["extractive", "compressive", "abstractive"] = Field(
        default="extractive", description="abstractive: the configured ONNX model's summary if it clears the critics' "
        "thresholds, else the student's; the answer names the `backend` and scores both `candidates`")


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [
        {"documents": [{"text": _EXAMPLE_TEXT, "max_tokens": 20}, {"text": _EXAMPLE_TEXT, "ratio": 0.3}]},
    ]})

    documents: list[SummarizeRequest] = Field(min_length=1, max_length=MAX_BATCH)


class SummarySentence(BaseModel):
    index: int = Field(description="the sentence's number in the input")
    text: str
    start: int = Field(description="character offset of the kept text in the input")
    end: int
    pieces: list[list[int]] = Field(description="[start, end) character ranges kept (several after compression)")


class SummaryScores(BaseModel):
    saliency: float = Field(description="how much the summary helps predict the document: 0 empty, 1 the document")
    faithfulness: float = Field(description="mean pointwise mutual information of the summary's tokens with the input")
    support: float = Field(description="share of the summary's tokens inside a >= 3-token span of the input")
    tokens: int
    coherence: float | None = Field(default=None, description="in candidates: 0 for a prefix of the input, below "
                                    "when summary sentences lean on context the summary left out")


class CandidateSentence(BaseModel):
    text: str
    source: int = Field(description="the input sentence it shares the most words with (the critics' reference)")


class Candidate(BaseModel):
    model: str
    text: str
    passed: bool = Field(description="cleared every critic's threshold")
    failed: list[str] = Field(description="the critics it did not clear")
    scores: SummaryScores
    sentences: list[CandidateSentence] | None = None
    stopped: str | None = Field(default=None, description="abstractive: why generation stopped")
    generated_tokens: int | None = None
    prompt_tokens: int | None = None
    document_truncated: bool | None = None
    error: str | None = Field(default=None, description="abstractive: why the model gave no text")


class Thresholds(BaseModel):
    faithfulness: float
    support: float
    saliency: float
    coherence: float


class SummarizeResponse(BaseModel):
    summary: str
    model: str
    budget: int = Field(description="the token budget the request asked for")
    backend: Literal["student", "abstractive"] = Field(default="student", description="which candidate this is")
    sentences: list[SummarySentence] = Field(description="empty when an abstractive text won (no offsets)")
    scores: SummaryScores
    candidates: dict[str, Candidate] | None = Field(default=None, description="mode abstractive: both candidates")
    thresholds: Thresholds | None = Field(default=None, description="mode abstractive: what a candidate had to clear")


class BatchResponse(BaseModel):
    results: list[SummarizeResponse]
