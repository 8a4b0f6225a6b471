// Starting the agent: a child that waits, already forked, until the
// supervisor has put it in its session.
#pragma once

#include <sys/types.h>

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "cgroup_limits.h"
#include "mnt.h"
#include "unique_fd.h"
#include "user.h"

namespace corral {

enum class NetMode { kAllow, kNone, kHost };

// What every session's init uses, made once per process: the seccomp
// filter (libseccomp) and corral-init's sealed memfd. A supervisor makes
// them on another thread while its programs load; throws what the first
// session would.
void prepare_session_init();

// The session's first process: pid 1 of new PID, mount, IPC and UTS
// namespaces, its mounts laid out by `mounts` (mnt.h), then corral-init
// (init_main.cc), held until release() says what the agent is. Then it
// starts the agent, which drops privileges and execs, and stays behind as
// the namespace's reaper. It dies with the supervisor (PR_SET_PDEATHSIG),
// and the kernel kills every process of a PID namespace whose init dies: no
// session process can outlive its supervisor.
class SessionInit {
 public:
  // Clones the init (into the cgroup v2 directory `cgroup_fd` when given)
  // for an agent running as `creds`, and waits until its namespaces are set
  // up and `rlimits` applied. Throws std::runtime_error naming the failed
  // step and path.
  SessionInit(const Credentials& creds, const MountPlan& mounts,
              const std::vector<RlimitSetting>& rlimits, NetMode net = NetMode::kAllow,
              int cgroup_fd = -1);
  ~SessionInit();  // kills the init (and so the session) if never released
  SessionInit(const SessionInit&) = delete;
  SessionInit& operator=(const SessionInit&) = delete;

  // The init, as the host sees it; its mount namespace is the session's.
  pid_t pid() const { return pid_; }
  // Whether the init is still there (it could die waiting: killed by root).
  bool running() const;
  // Readable when the init exits (the session has no process left).
  int pidfd() const { return pidfd_.get(); }
  // The session's seccomp listener: a refused syscall waits for an answer.
  int notify_fd() const { return notify_.get(); }
  // Readable when the agent has exited; then read_agent_status(). Readable
  // again when the init has no child left (a byte), and at its exit (EOF).
  int status_fd() const { return status_.get(); }
  int read_agent_status();
  // Kills the init, if still there, and waits for it: for after the session
  // ended. Blocks while the kernel tears its namespaces down.
  void reap();
  // Lets the agent go: `exe` with `argv` and `env`, on `stdio` (-1: the
  // init's own, which it inherited), `terminal` when stdin is the agent's
  // own pty. It does not wait: the agent's exec is itself an open the
  // supervisor's guard must answer. Throws; then nothing was released.
  void release(const std::string& exe, const std::vector<std::string>& argv,
               const std::vector<std::string>& env, std::array<int, 3> stdio = {-1, -1, -1},
               bool terminal = false);
  // Readable once the agent has exec'd (EOF) or failed to (an errno);
  // then exec_error() says which.
  int exec_result_fd() const { return exec_err_.get(); }
  // 0 when the agent runs its command, else why it could not.
  int exec_error();
  // Passes a signal to the agent (through the init, which forwards what the
  // terminal did not already deliver).
  void signal_agent(int signo) const;

 private:
  pid_t pid_ = -1;
  UniqueFd pidfd_;
  UniqueFd go_;         // a socket: one message releases the agent
  UniqueFd exec_err_;   // read end: errno if exec failed, EOF if it worked
  UniqueFd status_;     // read end: the agent's wait status
  UniqueFd notify_;     // seccomp user notifications of the session
  bool released_ = false;
};

// wait(2) status -> the exit code a shell reports: status, or 128 + signal.
int shell_exit_code(int wait_status);

}  // namespace corral
