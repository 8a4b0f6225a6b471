// The corral command. A run that a running daemon can host — the common
// case, and the one whose start a user waits for — is handed to it from
// here as typed: the arguments, environment, directory and stdio. The
// daemon reads them with the code corral-core would (run_command.h), warm,
// so this program loads no argument parser, user database or path lookup,
// and starts about as fast as any static program; corral-core (next to
// this file's binary) links twenty libraries and registers the audit
// schema before its main, ~5 ms on a small machine. Anything else (another
// command, no daemon listening, a run the daemon hands back: --help,
// --embedded, --worktree, a supervisor's flag, any error) runs corral-core
// with the same arguments, which does it or reports what is wrong.
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "control_client.h"
#include "control_wire.h"

extern char** environ;

namespace {

using namespace corral;

// The socket the run names, else the default. The daemon checks it
// against its own reading of the flags, and hands back a mismatch.
std::string named_socket(int argc, char** argv) {
  for (int i = 2; i < argc; i++) {
    std::string_view a = argv[i];
    if (a == "--") break;
    if (a == "--daemon-socket" && i + 1 < argc) return argv[i + 1];
    if (a.starts_with("--daemon-socket=")) return std::string(a.substr(a.find('=') + 1));
  }
  return kDefaultControlSocket;
}

std::optional<int> run_in_daemon_as_typed(int argc, char** argv) {
  char cwd[PATH_MAX];
  if (!::getcwd(cwd, sizeof(cwd))) return std::nullopt;
  UniqueFd sock;
  try {
    sock = connect_control(named_socket(argc, argv));
  } catch (const std::exception&) {
    return std::nullopt;
  }
  if (!sock) return std::nullopt;
  std::vector<std::string_view> args(argv + 1, argv + argc), env;
  for (char** e = environ; e && *e; e++) env.emplace_back(*e);
  try {
    return run_in_daemon(sock.get(),
                         [&](bool terminal) { return wire::invocation(args, env, cwd, terminal); });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "corral: error: %s\n", e.what());
    return kCannotRun;
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string_view(argv[1]) == "run" && ::geteuid() == 0)
    if (auto code = run_in_daemon_as_typed(argc, argv)) return *code;

  char core[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", core, sizeof(core) - 1);
  if (n <= 0) {
    std::perror("corral: error: failed to read /proc/self/exe");
    return kCorralFailed;
  }
  core[n] = '\0';
  char* slash = std::strrchr(core, '/');
  const char name[] = "corral-core";
  if (!slash || static_cast<size_t>(slash + 1 - core) + sizeof(name) > sizeof(core)) {
    std::fprintf(stderr, "corral: error: no corral-core beside %s\n", core);
    return kCorralFailed;
  }
  std::memcpy(slash + 1, name, sizeof(name));
  ::execv(core, argv);
  std::fprintf(stderr, "corral: error: failed to run %s: %s\n", core, std::strerror(errno));
  return kCorralFailed;
}
