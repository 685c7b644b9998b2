#!/usr/bin/env bash
# Longer robustness runs of the C core under AddressSanitizer + UBSan than CI's:
#   1. native/tests/test_fuzz_random.c (random small indexes, a third corrupted, random queries of every kind,
#      brute-force checked) with ITERATIONS iterations (CI runs 400);
#   2. when clang with libFuzzer is installed (apt-get install -y clang), the coverage-guided harness
#      native/fuzz/fuzz_engine.c for FUZZ_SECONDS, from a generated seed corpus (valid, damaged and raw indexes).
# Crashes land in $OUT (default .bench-data/fuzz); each one becomes a regression test.
#   ITERATIONS=20000 FUZZ_SECONDS=300 bench/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."
iterations="${ITERATIONS:-20000}"
seconds="${FUZZ_SECONDS:-300}"
out="${OUT:-.bench-data/fuzz}"
mkdir -p "$out/scratch" "$out/corpus" "$out/crashes"
flags=(-std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer -Inative/include -Inative/src)
core=(native/src/*.c)

gcc "${flags[@]}" -fsanitize=address,undefined -fno-sanitize-recover=all native/tests/test_fuzz_random.c \
    "${core[@]}" -o "$out/test_fuzz_random" -lpthread
start=$(date +%s)
ASAN_OPTIONS=detect_leaks=1 "$out/test_fuzz_random" "$out/scratch" "$iterations"
echo "fuzz: test_fuzz_random: $iterations iterations passed in $(( $(date +%s) - start )) s"

if ! command -v clang >/dev/null || ! echo 'int LLVMFuzzerTestOneInput(const char*d,long n){return 0;}' \
        | clang -x c - -fsanitize=fuzzer -o "$out/probe" 2>/dev/null; then
    echo "fuzz: clang with libFuzzer not available: skipping the coverage-guided run"
    exit 0
fi
clang "${flags[@]}" -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all native/fuzz/fuzz_engine.c \
    "${core[@]}" -o "$out/fuzz_engine" -lpthread
python3 - "$out/corpus" <<'PY'
import os, random, sys
rng = random.Random(0)
for i in range(48):
    mode = rng.choice([0, 1, 2, 0x40, 0x10, 0x80 | rng.randrange(4)])
    body = bytes(rng.randrange(256) if mode & 0x80 else rng.randrange(7) for _ in range(rng.randrange(20, 400)))
    open(os.path.join(sys.argv[1], f"seed{i:02d}"), "wb").write(bytes([mode]) + body)
PY
ASAN_OPTIONS=detect_leaks=1 "$out/fuzz_engine" -max_total_time="$seconds" -max_len=4096 -timeout=10 \
    -artifact_prefix="$out/crashes/" -print_final_stats=1 "$out/corpus" 2>&1 | tail -25
rm -rf /dev/shm/gramdex-fuzz-*  # the harness's scratch index directories
echo "fuzz: libFuzzer ran $seconds s; corpus $(ls "$out/corpus" | wc -l) inputs; crashes: $(ls "$out/crashes" | wc -l)"
