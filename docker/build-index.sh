#!/usr/bin/env bash
# One-shot index build (compose's index-builder): the documents under $GRAMDEX_CORPUS (default /corpus; .jsonl,
# .jsonl.gz, .jsonl.zst or .txt) become the index $GRAMDEX_INDEX_ROOT/$GRAMDEX_INDEX_NAME (default /indexes/corpus).
# An index that is already there is kept, so restarting the stack does not rebuild it; `gramdex build` writes the
# index atomically, so a build that was stopped leaves no half index behind. Extra arguments go to gramdex build;
# the tokenizer options (default: train a byte-level BPE of 32,000 ids on the corpus) can be replaced with
# GRAMDEX_TOKENIZER_ARGS, e.g. "--tokenizer /corpus/tokenizer.json" or "--bytes".
set -euo pipefail
corpus=${GRAMDEX_CORPUS:-/corpus}
out=${GRAMDEX_INDEX_ROOT:-/indexes}/${GRAMDEX_INDEX_NAME:-corpus}
if [ -f "$out/index.json" ]; then
    echo "build-index: $out exists; keeping it"
    exit 0
fi
read -r -a tokenizer <<<"${GRAMDEX_TOKENIZER_ARGS:---train-tokenizer --vocab-size 32000}"
exec gramdex build --input "$corpus" --output "$out" "${tokenizer[@]}" --quiet "$@"
