#!/usr/bin/env bash
# The test command: dependencies, configure, build, every test (unit and,
# as root, integration against the real kernel). Under CI=true a test that
# cannot get root or load BPF fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
scripts/setup.sh
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j "$(nproc)"
cd "$BUILD"
ctest --output-on-failure --timeout 300 "$@"
