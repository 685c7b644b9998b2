#!/usr/bin/env bash
# HEALTHCHECK: healthy when $GRAMDEX_HEALTH_URL (default: this container's /readyz, where every index is mapped and
# answers a query) returns 200. The slim image has no curl; Python is there.
set -euo pipefail
url=${GRAMDEX_HEALTH_URL:-http://127.0.0.1:${GRAMDEX_PORT:-8000}/readyz}
exec python3 -c '
import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=3) as r:
        sys.exit(0 if r.status == 200 else 1)
except Exception:
    sys.exit(1)
' "$url"
