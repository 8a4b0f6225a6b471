// One guarded agent: its cgroup, its kernel registration, its main process,
// and the records that carry its id. A supervisor hosts any number of them.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bpf_loader.h"
#include "cgroup2.h"
#include "control.pb.h"
#include "file_guard.h"
#include "process.h"
#include "seccomp_filter.h"

namespace corral {

class Supervisor;

struct SessionSpec {
  std::string exe;                // resolved binary
  std::vector<std::string> argv;  // as the user typed it
  std::vector<std::string> env;
  Credentials creds;
  std::string cwd;
  // How long processes the agent left behind may run on after it exits.
  std::chrono::milliseconds linger{2000};
  LimitSpec limits;
  std::chrono::milliseconds timeout{0};  // 0: none
  std::vector<std::string> writable;     // besides cwd and the policy's
  std::vector<OverlayMount> overlays;    // a worktree's git refs and objects
  std::string worktree;                  // NAME for a --worktree session
  // allow: the policy's egress allowlist; none: a network namespace with
  // only loopback; host: the host's network, connects only recorded.
  NetMode net = NetMode::kAllow;
  // The agent's stdin, stdout, stderr (a daemon's client's); empty: ours.
  std::vector<UniqueFd> stdio;
  // stdin is a pty of the agent's own, to be its controlling terminal.
  bool terminal = false;
};

// A session spec from a run request (control.proto), checking what a
// launcher relies on (absolute paths, a command, a known --net, limits);
// throws std::invalid_argument naming the field.
SessionSpec from_request(const control::RunRequest& request);

// What of `spec` a session's setup depends on (what Session::fits()
// compares): user, directories, network, limits; no command.
SessionSpec setup_of(const SessionSpec& spec);

class Session {
 public:
  using EndHandler = std::function<void(int exit_code)>;

  Session(Supervisor& supervisor, uint64_t id, SessionSpec spec, EndHandler on_end);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Sets up all but the agent: the cgroup, limits and egress programs, the
  // namespaces and mounts, the init waiting in them, the seccomp listener
  // and the file guard. Nothing is recorded yet and the kernel programs do
  // not know the session. Throws on any failure, leaving nothing behind.
  void prepare();
  // Registers the prepared session with the kernel programs, records its
  // start and releases the agent (the spec's command, environment, stdio).
  // Throws on any failure, leaving nothing behind.
  void launch();

  // Whether this session, prepared and not launched, can host `spec` as
  // it is: all its setup depended on — user, directories, network, limits,
  // policy `generation` — is the same, it is younger than `max_age`, its
  // init waits, and none of the paths its mounts and its guard's scan of
  // existing files were made from changed since.
  bool fits(const SessionSpec& spec, uint32_t generation,
            std::chrono::steady_clock::duration max_age) const;
  // Takes the rest of `spec` (which fits()) — command, environment, stdio,
  // timeout — and the handler of its end.
  void adopt(SessionSpec spec, EndHandler on_end);
  // Hands what waits on the kernel (the init's exit, the cgroups' removal)
  // to the supervisor's reaper; for a session done with, ended or never
  // launched.
  void retire();

  uint64_t id() const { return id_; }
  const std::string& id_string() const { return id_string_; }
  const SessionSpec& spec() const { return spec_; }
  pid_t init_pid() const { return child_ ? child_->pid() : 0; }
  std::chrono::steady_clock::time_point started() const { return started_; }
  void count_record() { records_++; }
  // Adds what only this session knows to one of its kernel records.
  void annotate(audit::Record& record) const {
    if (file_guard_) file_guard_->annotate(record);
  }

  // A signal the supervisor received. One the kernel sent (the terminal's
  // Ctrl-C, Ctrl-\, hangup) already reached the agent, which shares our
  // process group; one sent to us alone is passed on, and the session is
  // killed if the agent is still there after a grace period.
  void on_signal(int signo, bool from_kernel);

  // A signal the agent's terminal sent to a client of a daemon: the agent
  // gets it, as it would have from the terminal itself.
  void forward_signal(int signo);

  // Kills every process of the session now (whoever asked for it is gone).
  void kill();

  // The supervisor reloaded its policy: the file guard switches to it.
  void apply_policy();

 private:
  void watch_main();
  void on_main_exit();
  // Wakes await_empty() when the init reports it has no child left, or exits.
  void watch_init_idle();
  void report_exec_error();
  bool only_init_left() const;
  // Waits until the cgroup is empty; at the deadline, kills what is left
  // (once) or gives up. Woken by the init's exit (the session's last
  // process), polled besides.
  void await_empty(std::chrono::steady_clock::time_point deadline, bool kill_at_deadline);
  void finish();
  // Records limits hit since the last look (cgroup counters, polled).
  void watch_limits();
  void check_limits();

  Supervisor& sup_;
  uint64_t id_;
  std::string id_string_;
  SessionSpec spec_;
  EndHandler on_end_;
  std::unique_ptr<Cgroup> cgroup_;
  std::unique_ptr<SessionInit> child_;
  std::unique_ptr<FileGuard> file_guard_;
  std::unique_ptr<CgroupLinks> egress_links_;
  std::unique_ptr<SessionLimits> limits_;
  std::unique_ptr<SeccompListener> seccomp_;
  SessionLimits::Usage limits_seen_;
  boost::asio::posix::stream_descriptor status_watch_;
  boost::asio::posix::stream_descriptor exec_watch_;
  bool init_idle_ = false;  // the init has no child left, or is gone
  std::chrono::steady_clock::time_point empty_deadline_;
  bool kill_at_deadline_ = false;
  boost::asio::steady_timer timer_;
  boost::asio::steady_timer grace_timer_;
  boost::asio::steady_timer limits_timer_;
  boost::asio::steady_timer timeout_timer_;
  bool timed_out_ = false;
  int64_t prepared_boot_ns_ = 0;
  std::string node_name_;  // the host's, which its UTS namespace copied
  // What the mounts and the guard's scan were made from: a spare holds
  // while none of it changed.
  std::unique_ptr<PathStates> inputs_;
  uint32_t generation_ = 0;  // of the policy it was prepared with
  bool launched_ = false;
  std::chrono::steady_clock::time_point started_;
  int exit_code_ = 0;
  int exit_signal_ = 0;
  uint32_t leftovers_killed_ = 0;
  uint64_t records_ = 0;
  bool registered_ = false;
  bool ended_ = false;
};

}  // namespace corral
