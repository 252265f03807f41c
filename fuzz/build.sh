#!/usr/bin/env bash
# Builds the libFuzzer harness fuzz/fuzz_core.c against the C core (csrc/*.c)
# with AddressSanitizer + UndefinedBehaviorSanitizer.
#   fuzz/build.sh [OUTPUT]     (default: fuzz/fuzz_core)
# Needs clang with its compiler-rt (Debian bookworm: clang libclang-rt-14-dev).
# csrc/check.c (the invariant checker, run after every operation) is built
# with the sanitizers but without coverage instrumentation: its loops over
# every table entry would otherwise dominate the run time and guide nothing.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
out="${1:-$here/fuzz_core}"
CC="${CC:-clang}"
common=(-std=c11 -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
        -Wall -Wextra -I"$root/csrc")
obj="$(mktemp -d)"
trap 'rm -rf "$obj"' EXIT
"$CC" "${common[@]}" -O2 -c "$root/csrc/check.c" -o "$obj/check.o"
sources=()
for f in "$root"/csrc/*.c; do
    [ "$(basename "$f")" = check.c ] || sources+=("$f")
done
"$CC" "${common[@]}" -fsanitize=fuzzer "$here/fuzz_core.c" "${sources[@]}" "$obj/check.o" -lpthread -o "$out"
echo "built $out"
