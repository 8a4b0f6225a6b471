// The corral command. A run that a running daemon can host — the common
// case, and the one whose start a user waits for — is handed over from
// here, by a program that loads little: corral-core (next to this file's
// binary) links twenty libraries and registers the audit schema before its
// main, ~5 ms on a small machine. Anything else (another command, --help,
// --embedded, --worktree, a supervisor's flag, no daemon listening, any
// error before the request is sent) runs corral-core with the same
// arguments, which does the same checks again and reports them.
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "control.h"
#include "run_command.h"

namespace {

std::optional<int> run_in_daemon_directly(int argc, char** argv) {
  using namespace corral;
  CLI::App app;
  RunOptions o;
  auto* run_cmd = add_run_command(app, o);
  control::RunRequest request;
  UniqueFd sock;
  try {
    app.parse(argc, argv);
    note_embedded_flags(*run_cmd, o);
    if (o.embedded || !o.worktree.empty() || !o.embedded_flags.empty()) return std::nullopt;
    Credentials creds = run_credentials(o);
    request = run_request(o, creds, run_executable(o), std::filesystem::current_path());
    sock = connect_control(o.daemon_socket.empty() ? kDefaultControlSocket : o.daemon_socket);
  } catch (...) {
    return std::nullopt;
  }
  if (!sock) return std::nullopt;
  try {
    return run_in_daemon(sock.get(), request);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "corral: error: %s\n", e.what());
    return kCannotRun;
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string_view(argv[1]) == "run" && ::geteuid() == 0)
    if (auto code = run_in_daemon_directly(argc, argv)) return *code;

  char self[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) {
    std::perror("corral: error: failed to read /proc/self/exe");
    return corral::kCorralFailed;
  }
  self[n] = '\0';
  std::string core = std::filesystem::path(self).parent_path() / "corral-core";
  ::execv(core.c_str(), argv);
  std::fprintf(stderr, "corral: error: failed to run %s: %s\n", core.c_str(), std::strerror(errno));
  return corral::kCorralFailed;
}
