// Starting the agent: who it runs as, where its binary is, and a child that
// waits, already forked, until the supervisor has put it in its session.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "unique_fd.h"

namespace corral {

struct Credentials {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary
  std::string name;
  std::string home;
};

// Who runs the agent: `user` (a name or a number) when given, else the
// sudo caller (SUDO_UID/SUDO_GID), else the current user. Throws
// std::runtime_error when the user does not exist.
Credentials resolve_credentials(const std::string& user, const char* sudo_uid,
                                const char* sudo_gid);

// Looks `cmd` up like execvp(3): as is when it has a '/', else in `path`.
// Returns the path, or nullopt when no executable file is found.
std::optional<std::string> find_executable(const std::string& cmd, const std::string& path);

// A forked child held before exec. release() lets it drop privileges and
// exec; it returns the exec error, if any.
class HeldChild {
 public:
  // Forks; the child unblocks all signals, waits, becomes `creds`, sets
  // PR_SET_PDEATHSIG and execs `exe` with `argv` and `env`.
  HeldChild(const std::string& exe, const std::vector<std::string>& argv,
            const std::vector<std::string>& env, const Credentials& creds);
  ~HeldChild();  // kills the child if it was never released
  HeldChild(const HeldChild&) = delete;
  HeldChild& operator=(const HeldChild&) = delete;

  pid_t pid() const { return pid_; }
  // Readable when the child exits.
  int pidfd() const { return pidfd_.get(); }
  // Lets the child go; throws std::runtime_error with the reason when it
  // could not exec (the child has then exited).
  void release();

 private:
  pid_t pid_ = -1;
  UniqueFd pidfd_;
  UniqueFd go_;         // write end: one byte releases the child
  UniqueFd exec_err_;   // read end: errno if exec failed, EOF if it worked
  bool released_ = false;
};

// The agent's environment: ours, with HOME, USER and LOGNAME of `creds`.
std::vector<std::string> agent_environment(char** environ_in, const Credentials& creds);

// wait(2) status -> the exit code a shell reports: status, or 128 + signal.
int shell_exit_code(int wait_status);

}  // namespace corral
