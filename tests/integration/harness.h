// Runs the real `corral` binary as root against the real kernel and reads
// back the audit records it wrote.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "audit.pb.h"

namespace corral::test {

// Under CI=true a missing privilege is a failure; elsewhere a skip.
#define CORRAL_REQUIRE_ROOT()                                                     \
  do {                                                                            \
    if (::geteuid() != 0) {                                                       \
      if (::corral::test::in_ci()) FAIL() << "integration tests need root (CI=true)"; \
      GTEST_SKIP() << "integration tests need root";                              \
    }                                                                             \
  } while (0)

bool in_ci();

struct RunResult {
  int exit_code = -1;  // corral's
  std::string stderr_text;
  std::vector<audit::Record> records;
  std::string audit_path;
};

// A fresh scratch directory, removed at destruction.
class TempDir {
 public:
  // Under `parent`: /tmp is private in sessions, so a test that needs the
  // session to see the host's files outside its project puts them elsewhere.
  explicit TempDir(const std::string& parent = "/tmp");
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Runs the test (and the corral it starts) in `dir` until the scope ends:
// a session's project directory, the one writable place it has, is the
// directory corral runs in.
class InDir {
 public:
  explicit InDir(const std::string& dir);
  ~InDir();

 private:
  std::string old_;
};

// `corral run --quiet --audit <tmp> <options> -- <command>`, waited for;
// the log must then pass `corral audit verify`.
// `while_running(pid)` runs once the session has started, if given.
// `wrapper` runs corral itself (e.g. {"/usr/bin/unshare", "--net"}).
RunResult run_corral(const std::vector<std::string>& options, const std::vector<std::string>& command,
                     const std::function<void(pid_t)>& while_running = {},
                     const std::vector<std::string>& wrapper = {});

// Spawns corral without waiting; returns its pid. The audit path is set.
pid_t spawn_corral(const std::vector<std::string>& options, const std::vector<std::string>& command,
                   const std::string& audit_path, const std::string& stderr_path,
                   const std::vector<std::string>& wrapper = {});
// Spawns `args` (argv[0] a path) without waiting, stdin from /dev/null,
// stderr (and stdout when `with_stdout`) to `output_path`; returns its pid.
pid_t spawn_command(std::vector<std::string> args, const std::string& output_path,
                    bool with_stdout = true);
// A log's files in seq order: its rotated files (PATH.<20-digit seq>), then
// PATH itself.
std::vector<std::string> audit_files(const std::string& path);
// The records of a log and its rotated files, checkpoints left out.
std::vector<audit::Record> read_audit(const std::string& path);
// Waits until the audit file holds a session_start record (or times out).
bool wait_for_session_start(const std::string& audit_path, int timeout_ms = 10000);

std::string actor_bin();
std::string corral_bin();

// A file's whole content ("" when it cannot be read); a file made with
// `text` and mode 0644.
std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& text);
// The signing key every test run uses (created by corral on first use).
std::string audit_key();

// Runs a command, waits; its exit code and everything it printed.
struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr, interleaved
};
CommandResult run_command(const std::vector<std::string>& argv);
// `corral audit verify` on the given files with the test key.
CommandResult verify_audit(const std::vector<std::string>& files);

// Alive and not a zombie waiting for a reaper.
bool running(pid_t pid);
// The processes in a cgroup v2 directory.
std::vector<pid_t> cgroup_pids(const std::string& cgroup);

// Shell helpers for an agent script that writes "NAME RESULT" lines to
// `status`: t NAME CMD... (exit status), o NAME PATH (open's fd or -errno),
// await FILE (until it exists, else exit 99).
std::string prelude(const std::string& status);
std::map<std::string, std::string> read_status(const std::string& path);

template <typename Pred>
std::vector<const audit::Record*> select(const RunResult& r, Pred pred) {
  std::vector<const audit::Record*> out;
  for (const auto& rec : r.records)
    if (pred(rec)) out.push_back(&rec);
  return out;
}

}  // namespace corral::test
