#!/usr/bin/env bash
# The main job on a fresh machine: installs what is missing, builds, and runs
# a scripted "agent" as a guarded session, then shows its audit trail.
# Run as root (sudo scripts/demo.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
BUILD_ABS=$(cd "$(dirname "$BUILD")" && pwd)/$(basename "$BUILD")
scripts/setup.sh
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j "$(nproc)" --target corral >/dev/null

work=$(mktemp -d /tmp/corral-demo-XXXXXX)
trap 'rm -rf "$work"' EXIT
audit="$work/audit.jsonl"
mkdir -p "$work/project/test-results"
echo "SECRET_TOKEN=do-not-leak" > "$work/project/.env"
echo "<testsuite failures='3'/>" > "$work/project/test-results/junit.xml"
chmod -R a+rwX "$work"

# A scripted agent doing what a prompt-injected one does: reads, runs tools,
# reads a secret, phones home, hides the failing test report.
agent_script='
cd project
cat /etc/hostname >/dev/null
ls >/dev/null
cat ./.env >/dev/null
(sleep 0.2; echo late background work >/dev/null) &
exec 3<>/dev/tcp/127.0.0.1/9 2>/dev/null || true
rm -f test-results/junit.xml
wait
'
user_opt=(--allow-root)
[[ -n "${SUDO_UID:-}" ]] && user_opt=()

echo "== corral run: live view (stderr) =="
(cd "$work" && "$BUILD_ABS/agent/corral" run --audit "$audit" "${user_opt[@]}" -- bash -c "$agent_script") \
  2>&1 | grep -v -E 'open .*(/usr/lib|/etc/ld.so|locale)' || true

echo
echo "== the audit trail: $(wc -l < "$audit") records in $audit; the ones that matter =="
grep -E '"(exec|connect|unlink)"|\.env|session_end' "$audit"
