"""Text <-> token ids with an index's own tokenizer (UTF-8 bytes, or a Hugging Face tokenizers file)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

from native.manifest import read_tokenizer_text


class Codec(Protocol):
    name: str
    vocab_size: int

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...

    def tokens(self, ids: list[int]) -> list[str]: ...


class BytesCodec:
    """UTF-8 bytes are the tokens (u8 indexes built with `--bytes`)."""

    name = "utf-8 bytes"
    vocab_size = 255

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: list[int]) -> str:
        # a window may cut a multi-byte character; the separator id 255 is never text
        return bytes(i for i in ids if i < 255).decode("utf-8", "replace")

    def tokens(self, ids: list[int]) -> list[str]:
        return [chr(i) if i < 0x80 else f"<0x{i:02X}>" for i in ids]


class HFCodec:
    """A `tokenizers` JSON file; special tokens are never added, as the builder adds none to documents."""

    def __init__(self, path: Path, add_prefix_space: bool | None = None) -> None:
        import tokenizers

        text = read_tokenizer_text(path)
        self._tok = tokenizers.Tokenizer.from_str(text)
        self.vocab_size = self._tok.get_vocab_size(with_added_tokens=True)
        self.name = path.name.removesuffix(".gz")
        if add_prefix_space is None:
            # byte-level BPE marks a word's leading space inside the token (GPT-2's "Ġ"); a query means the
            # words as they occur in running text, so it gets the space a word there has (as infini-gram's
            # API does for its byte-level tokenizers)
            spec = json.loads(text)
            add_prefix_space = "ByteLevel" in json.dumps([spec.get("pre_tokenizer"), spec.get("decoder")])
        self.add_prefix_space = add_prefix_space
        # every answer names its tokens: one list lookup each instead of a call into the tokenizer
        self._names = [self._tok.id_to_token(i) or f"<{i}>" for i in range(self.vocab_size)]

    def encode(self, text: str) -> list[int]:
        if self.add_prefix_space and text and not text[0].isspace():
            text = " " + text
        return self._tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: list[int]) -> str:
        return self._tok.decode([i for i in ids if i < self.vocab_size], skip_special_tokens=False)

    def tokens(self, ids: list[int]) -> list[str]:
        names, n = self._names, len(self._names)
        return [names[i] if i < n else f"<{i}>" for i in ids]

    def token_text(self, token_id: int) -> str:
        return self.decode([token_id])


def load_codec(tokenizer_file: Path | None, add_prefix_space: bool | None = None) -> Codec:
    return BytesCodec() if tokenizer_file is None else HFCodec(tokenizer_file, add_prefix_space)
