#!/usr/bin/env bash
# Builds every native/tests/test_*.c with the C core under AddressSanitizer + UBSan and runs it.
# Each test is a standalone program: exit status 0 means it passed.
set -euo pipefail
cd "$(dirname "$0")/../.."
cc="${CC:-gcc}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
status=0
for test in native/tests/test_*.c; do
    name="$(basename "$test" .c)"
    "$cc" -std=c11 -D_GNU_SOURCE -g -O1 -Wall -Wextra -Werror -fno-omit-frame-pointer \
        -fsanitize=address,undefined -fno-sanitize-recover=all -Inative/include -Inative/src \
        "$test" native/src/*.c -o "$out/$name" -lpthread
    if ASAN_OPTIONS=detect_leaks=1 "$out/$name" "$out"; then
        echo "native: $name passed"
    else
        echo "native: $name FAILED"
        status=1
    fi
done
exit $status
