// `corral daemon`: a supervisor that stays up with its kernel programs
// loaded, and hosts the sessions `corral run` asks for on its control
// socket (control.h). A session then only registers: no BPF load, no
// verifier, no detach ("warm" launch). The sessions are the daemon's
// children: if it dies, the kernel kills them (their PID namespace's init
// dies with it); if a session's `corral run` goes away, the daemon kills
// that session.
#pragma once

#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "control.pb.h"
#include "run_command.h"
#include "supervisor.h"

namespace corral {

class ControlServer {
 public:
  // Listens on `path` (its directory made 0700, the socket 0600). Throws
  // when another daemon answers there, or on any socket error.
  ControlServer(boost::asio::io_context& io, Supervisor& sup, std::string path);
  ~ControlServer();  // removes the socket
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // Takes no more sessions, passes `signo` to the live ones (killed after a
  // grace period), and calls `idle` once none is left. Called again, kills
  // them at once.
  void shut_down(int signo, std::function<void()> idle);

 private:
  struct Connection;
  // Binds and listens on path_ (replacing the listener), and accepts.
  void listen();
  // Is the socket at path_ the one this daemon bound?
  bool ours() const;
  void watch();
  void accept();
  void serve(const std::shared_ptr<Connection>& c);
  void handle(const std::shared_ptr<Connection>& c);
  void start(const std::shared_ptr<Connection>& c, const control::RunRequest& request,
             std::vector<UniqueFd> stdio);
  // corral ps and corral kill: one answer, then the connection closes.
  void answer(const std::shared_ptr<Connection>& c, const control::ClientMessage& msg);
  // Sends `m`, the connection's last message, and ends it.
  void last_reply(const std::shared_ptr<Connection>& c, const control::DaemonMessage& m);
  // Forgets a connection; a session still running without it is killed.
  void drop(Connection* c, const char* why);
  void check_idle();

  boost::asio::io_context& io_;
  Supervisor& sup_;
  std::string path_;
  boost::asio::posix::stream_descriptor listener_;
  std::pair<dev_t, ino_t> socket_id_{};  // of the socket file listener_ is bound to
  boost::asio::steady_timer watch_;  // that it is still there
  InvocationReader invocations_;
  std::map<Connection*, std::shared_ptr<Connection>> connections_;
  std::function<void()> idle_;  // set while shutting down
};

// Runs a daemon until SIGINT or SIGTERM and its sessions have ended.
// Throws std::runtime_error when it cannot start.
int run_daemon(SupervisorOptions options, const std::string& socket_path);

}  // namespace corral
