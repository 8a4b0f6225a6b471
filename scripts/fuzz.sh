#!/usr/bin/env bash
# Fuzzes the policy parser: builds tests/fuzz/policy_fuzz.cc with clang's
# libFuzzer, ASan and UBSan into $1 (default build/fuzz) and runs it for
# FUZZ_SECONDS (default 30). Exits non-zero on a crash, hang, leak or
# sanitizer report; the offending input is left in $1 as crash-*/timeout-*/
# leak-*.
#
#   scripts/fuzz.sh [OUT_DIR]          FUZZ_SECONDS=600 scripts/fuzz.sh
#   build/fuzz/policy_fuzz INPUT       replay one input
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${1:-$root/build/fuzz}" && cd "${1:-$root/build/fuzz}" && pwd)
seconds=${FUZZ_SECONDS:-30}
cxx=${CXX_FUZZ:-clang++}

# The same embedded default the CMake build generates.
cmake -DIN="$root/rules/default.yaml" -DOUT="$out/default_policy_data.cc" \
  -P "$root/rules/embed.cmake"

echo "fuzz: building $out/policy_fuzz"
# yaml-cpp and re2 are the system libraries, not instrumented: coverage
# guides through our code, and ASan sees what our code does with their output.
"$cxx" -std=c++20 -g -O1 -Wall -Wextra -Werror \
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -DCORRAL_DEFAULT_POLICY="\"$root/rules/default.yaml\"" \
  -I"$root/rules" \
  "$root"/rules/check.cc "$root"/rules/glob.cc "$root"/rules/matcher.cc "$root"/rules/policy.cc \
  "$out/default_policy_data.cc" "$root/tests/fuzz/policy_fuzz.cc" \
  $(pkg-config --cflags --libs re2) -lyaml-cpp \
  -o "$out/policy_fuzz"

# Seeds: the shipped default and one small snippet per schema feature.
seeds="$out/seeds"
rm -rf "$seeds"
mkdir -p "$seeds" "$out/corpus"
cp "$root/rules/default.yaml" "$seeds/default.yaml"
printf 'version: 1\nextends: default\nexec:\n  - {id: no-git-push, mode: off, binary: git, args: [push]}\n' \
  >"$seeds/extends.yaml"
printf 'version: 1\nsecrets:\n  - id: a\n    mode: shadow\n    paths: ["**/.env", "~/.ssh/id_*", "/etc/[!x]?/**"]\n' \
  >"$seeds/secrets.yaml"
printf 'version: 1\nprotected:\n  - {id: p, paths: /a/**/b}\n  - {id: q, paths: [/a/**/b]}\n' \
  >"$seeds/protected.yaml"
printf 'version: 1\nexec:\n  - {id: g, binary: [git, /usr/bin/git], args: ["-c", push]}\n  - {id: h, binary: git}\n' \
  >"$seeds/exec.yaml"
printf 'version: 1\negress:\n  default: allow\n  allow:\n    - {id: a, cidr: [10.0.0.0/8, "fd00::/8"], ports: [53, "1000-2000"], protocol: any}\n    - {id: b, host: X.example.org, protocol: udp}\n' \
  >"$seeds/egress.yaml"
printf 'version: 1\nsecrets: &s [{id: a, paths: /x}]\nprotected: *s\n---\nversion: 2\n' \
  >"$seeds/hostile.yaml"
printf 'version: 1\nexec: [[[[[[[[{a: [[[[1]]]]}]]]]]]]]\n' >"$seeds/nested.yaml"

echo "fuzz: running for ${seconds}s"
cd "$out"
# -timeout: one input may not take 5 s (a hang); -rss_limit_mb: nor 2 GiB.
# FUZZ_SEED pins the run (CI passes one so that a gate does not depend on
# luck); unset, every run explores from a new seed.
./policy_fuzz -max_total_time="$seconds" -timeout=5 -rss_limit_mb=2048 ${FUZZ_SEED:+-seed=$FUZZ_SEED} \
  -dict="$root/tests/fuzz/policy.dict" -artifact_prefix="$out/" -print_final_stats=1 \
  "$out/corpus" "$seeds"
