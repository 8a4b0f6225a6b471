// `corral run`'s command line, and the session request it makes: read by
// corral-core for its own runs, and by the daemon for the runs the small
// corral command hands it as they were typed (see run_client.cc), so both
// read the same flags and check them the same way.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "control.h"
#include "user.h"

namespace corral {

constexpr const char* kDefaultAudit = "/var/log/corral/audit.jsonl";
constexpr const char* kDefaultAuditKey = "/etc/corral/audit.key";

// An error for the user, and the exit code it ends corral with.
struct Failure {
  int code;
  std::string message;
};

// The local log's settings, shared by every command that writes it.
struct AuditFlags {
  std::string path = kDefaultAudit;
  std::string key = kDefaultAuditKey;
  std::string fsync = "interval";
  uint32_t checkpoint_every = 1000;
  uint64_t max_mib = 64;
  double max_age_hours = 24;

  void add_to(CLI::App* cmd);
};

struct RunOptions {
  AuditFlags audit;
  bool quiet = false;
  std::string user;
  bool allow_root = false;
  uint32_t ringbuf_mib = 16;
  double linger_seconds = 2;
  uint64_t max_pids = 0, max_memory_mib = 0, max_open_files = 0;  // 0: no limit
  double timeout_seconds = 0;
  std::string worktree, base, worktrees_dir;
  std::string net = "allow";
  std::string policy;
  std::string daemon_socket;  // empty: the default one, if a daemon listens
  bool embedded = false;
  // flags that configure a supervisor of our own (so no daemon's session);
  // filled by note_embedded_flags() after parsing
  std::vector<std::string> embedded_flags;
  std::vector<std::string> command;
};

// Adds the `run` subcommand, its flags bound to `o`.
CLI::App* add_run_command(CLI::App& app, RunOptions& o);
// After parsing: which of the given flags only a supervisor of this run's
// own can honour.
void note_embedded_flags(const CLI::App& run_cmd, RunOptions& o);

// Where `corral run` was typed: its environment (NAME=VALUE) and directory
// (absolute). corral-core's own, or those the corral command sent.
struct RunContext {
  std::vector<std::string> env;
  std::string cwd;

  static RunContext ours();
  // NAME's value, or nullptr when unset.
  const char* get(std::string_view name) const;
};

// Who the agent runs as (--user, else sudo's caller); refuses root without
// --allow-root. Throws Failure.
Credentials run_credentials(const RunOptions& o, const RunContext& ctx);
// The command's binary, found on the context's PATH, as an absolute path
// (a relative one from the context's directory). Throws Failure.
std::string run_executable(const RunOptions& o, const RunContext& ctx);
// The request for a session of `exe` as `creds` in the context's
// directory: the agent's environment, network mode and limits. Throws
// Failure on a bad limit.
control::RunRequest run_request(const RunOptions& o, const Credentials& creds,
                                const std::string& exe, const RunContext& ctx);

// Reads the runs the corral command hands over as typed, for the daemon
// listening at `socket`. The parser is made once (making it took ~0.2 ms
// of every run here).
class InvocationReader {
 public:
  explicit InvocationReader(std::string socket);
  InvocationReader(const InvocationReader&) = delete;
  InvocationReader& operator=(const InvocationReader&) = delete;

  // The request for `inv`; nullopt when this daemon does not host it as it
  // stands (see HandBack in control.proto): corral-core then runs it, or
  // reports what is wrong with it.
  std::optional<control::RunRequest> request(const control::Invocation& inv);

 private:
  std::string socket_;
  CLI::App app_;
  RunOptions o_;
  CLI::App* run_cmd_;
};

}  // namespace corral
