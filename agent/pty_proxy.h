// The terminal of a daemon-hosted agent: a pseudo-terminal pair that the
// client proxies to the user's terminal (as ssh -t and docker -t do).
//
// The user's terminal is the controlling terminal of the client's session,
// and a terminal can be that of one session only: handed to the daemon as
// is, the agent could read and write it but not own it, so job control
// (Ctrl-Z, fg), /dev/tty and the terminal's own signals would not work. The
// agent gets the slave of a fresh pty instead, as its controlling terminal
// (setsid + TIOCSCTTY before exec); once the session has started, the
// client puts the user's terminal in raw mode and copies bytes both ways, so Ctrl-C, Ctrl-Z and Ctrl-\ are
// interpreted by the agent's own line discipline, and resizes are copied
// onto the pty (the kernel sends the agent SIGWINCH).
#pragma once

#include <termios.h>

#include <optional>
#include <string>

#include "unique_fd.h"

namespace corral {

class PtyProxy {
 public:
  // A proxy when stdin and stdout are a terminal whose foreground we hold
  // (a background job must not change the terminal's mode); nullopt
  // otherwise, for the descriptors to be passed on as they are. Throws when
  // a terminal is there but no pty can be made.
  static std::optional<PtyProxy> open_if_terminal();

  PtyProxy(PtyProxy&& o) noexcept;
  PtyProxy& operator=(PtyProxy&&) = delete;
  // Puts the user's terminal back as it was.
  ~PtyProxy();

  // Raw mode on the user's terminal, once the session has started (or
  // when next continued in the foreground): until then the terminal is as
  // the user had it, and Ctrl-C stops the client, which has nothing to
  // pass it to yet.
  void go_raw();

  // The agent's stdin, stdout and stderr: the slave, except a stderr that
  // is not the terminal (redirected), which stays as it is.
  int agent_stdin() const { return slave_.get(); }
  int agent_stdout() const { return slave_.get(); }
  int agent_stderr() const { return stderr_is_terminal_ ? slave_.get() : STDERR_FILENO; }
  // After the descriptors went to the daemon: our copy of the slave goes,
  // so that the master reads EIO once the session's copies are gone.
  void close_slave() { slave_.reset(); }

  // The user's terminal, read (-1 once it ended) and written.
  int user_fd() const { return user_open_ ? STDIN_FILENO : -1; }
  int master() const { return master_.get(); }
  // Whether input waits for the agent to read it (poll the master for
  // POLLOUT).
  bool input_pending() const { return !to_agent_.empty(); }

  // Moves what the user typed to the agent; what the agent wrote to the
  // user; the user's window size onto the pty. Non-blocking on the master.
  void pump_input();
  void flush_input();
  // Around a stop of the client itself (SIGTSTP sent to it; the user's
  // Ctrl-Z goes to the agent): the user's terminal back as it was, then
  // raw again once continued in the foreground.
  void suspend();
  void resume();
  // Returns false when the agent's side has closed (EIO) or on EOF. At most
  // `max_reads` reads: an agent that floods its terminal must not keep the
  // proxy from the user's keys (Ctrl-C) and the daemon's messages.
  bool pump_output(int max_reads = 4);
  void resize();

 private:
  PtyProxy() = default;

  UniqueFd master_, slave_;
  std::optional<termios> saved_;  // the user's terminal before raw mode
  bool raw_ = false;              // go_raw() was called
  bool stderr_is_terminal_ = false;
  bool user_open_ = true;
  std::string to_agent_;  // typed, not yet taken by the pty
};

}  // namespace corral
