#!/usr/bin/env bash
# The container's entrypoint; the first argument is the role:
#   serve (default)    the API (gramdex serve) with the summarizer workers it supervises
#                      (GRAMDEX_SUMMARIZER__WORKERS, default 2; 0 with GRAMDEX_SUMMARIZER__URLS for workers run apart).
#                      Every directory under $GRAMDEX_INDEX_ROOT (default /indexes) that holds an index.json is
#                      served, named after the directory; with none, the demo index.
#   summarize-worker   one summarizer worker on $GRAMDEX_WORKER_PORT (default 8100), scaled apart from the API
#   build-index        build an index once (build-index.sh)
#   anything else      runs as a command: gramdex info /indexes/wiki, bash, ...
# Settings come from the environment (GRAMDEX_*, see the README's configuration reference).
set -euo pipefail
here=$(dirname "$(readlink -f "$0")")
role=${1:-serve}
if [ $# -gt 0 ]; then shift; fi
case "$role" in
serve)
    root=${GRAMDEX_INDEX_ROOT:-/indexes}
    indexes=()
    for dir in "$root"/*/; do
        if [ -f "$dir/index.json" ]; then
            indexes+=(--index "$(basename "$dir")=${dir%/}")
        fi
    done
    exec gramdex serve --host "${GRAMDEX_HOST:-0.0.0.0}" --port "${GRAMDEX_PORT:-8000}" "${indexes[@]}" "$@"
    ;;
summarize-worker)
    exec gramdex summarize-worker --host "${GRAMDEX_HOST:-0.0.0.0}" --port "${GRAMDEX_WORKER_PORT:-8100}" "$@"
    ;;
build-index)
    exec "$here/build-index.sh" "$@"
    ;;
*)
    exec "$role" "$@"
    ;;
esac
