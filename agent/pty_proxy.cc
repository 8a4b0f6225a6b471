#include "pty_proxy.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <climits>
#include <utility>

#include "errno_error.h"

namespace corral {
namespace {

// The two descriptors name one terminal.
bool same_terminal(int a, int b) {
  char x[PATH_MAX], y[PATH_MAX];
  return ::ttyname_r(a, x, sizeof(x)) == 0 && ::ttyname_r(b, y, sizeof(y)) == 0 &&
         std::string_view(x) == y;
}

// Writes all of `n` bytes to the user's terminal, which another program
// may have left non-blocking (the open file is the shell's too): a full
// terminal is waited for, not a reason to drop the agent's output.
void write_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EAGAIN) {
      pollfd out{fd, POLLOUT, 0};
      ::poll(&out, 1, -1);
      continue;
    }
    if (w <= 0) return;  // the terminal went away: nothing to show it on
    p += w;
    n -= static_cast<size_t>(w);
  }
}

}  // namespace

std::optional<PtyProxy> PtyProxy::open_if_terminal() {
  if (!::isatty(STDIN_FILENO) || !::isatty(STDOUT_FILENO) ||
      !same_terminal(STDIN_FILENO, STDOUT_FILENO) || ::tcgetpgrp(STDIN_FILENO) != ::getpgrp())
    return std::nullopt;
  PtyProxy p;
  termios user;
  if (::tcgetattr(STDIN_FILENO, &user) != 0) throw errno_error("failed to read the terminal's mode");
  winsize size{};
  bool sized = ::ioctl(STDIN_FILENO, TIOCGWINSZ, &size) == 0;

  p.master_.reset(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!p.master_) throw errno_error("failed to open a pseudo-terminal (/dev/ptmx)");
  char name[PATH_MAX];
  if (::grantpt(p.master_.get()) != 0 || ::unlockpt(p.master_.get()) != 0 ||
      ::ptsname_r(p.master_.get(), name, sizeof(name)) != 0)
    throw errno_error("failed to set up a pseudo-terminal");
  p.slave_.reset(::open(name, O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!p.slave_) throw errno_error(std::string("failed to open ") + name);
  // The agent's terminal starts as the user's was: line editing, signal
  // keys, size.
  if (::tcsetattr(p.slave_.get(), TCSANOW, &user) != 0 ||
      (sized && ::ioctl(p.slave_.get(), TIOCSWINSZ, &size) != 0))
    throw errno_error(std::string("failed to set up ") + name);
  int flags = ::fcntl(p.master_.get(), F_GETFL);
  if (flags < 0 || ::fcntl(p.master_.get(), F_SETFL, flags | O_NONBLOCK) != 0)
    throw errno_error("failed to make the pseudo-terminal's master non-blocking");
  p.stderr_is_terminal_ = same_terminal(STDIN_FILENO, STDERR_FILENO);
  p.saved_ = user;
  return p;
}

void PtyProxy::go_raw() {
  if (raw_ || !saved_) return;
  raw_ = true;
  resume();
}

PtyProxy::PtyProxy(PtyProxy&& o) noexcept
    : master_(std::move(o.master_)),
      slave_(std::move(o.slave_)),
      saved_(std::exchange(o.saved_, std::nullopt)),
      raw_(std::exchange(o.raw_, false)),
      stderr_is_terminal_(o.stderr_is_terminal_),
      user_open_(o.user_open_),
      to_agent_(std::move(o.to_agent_)) {}

PtyProxy::~PtyProxy() {
  if (raw_ && saved_) ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &*saved_);
}

void PtyProxy::pump_input() {
  char buf[4096];
  ssize_t n = ::read(STDIN_FILENO, buf, sizeof(buf));
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
  if (n <= 0) {
    user_open_ = false;  // hung up: what the agent does next is its own
    return;
  }
  to_agent_.append(buf, static_cast<size_t>(n));
  flush_input();
}

void PtyProxy::flush_input() {
  while (!to_agent_.empty()) {
    ssize_t w = ::write(master_.get(), to_agent_.data(), to_agent_.size());
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EAGAIN) return;  // the agent reads slower than the user types
    if (w <= 0) {
      to_agent_.clear();  // its side is gone
      return;
    }
    to_agent_.erase(0, static_cast<size_t>(w));
  }
}

bool PtyProxy::pump_output(int max_reads) {
  char buf[16384];
  for (int i = 0; i < max_reads; i++) {
    ssize_t n = ::read(master_.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return true;
    if (n <= 0) return false;  // EIO: no one holds the slave any more
    write_all(STDOUT_FILENO, buf, static_cast<size_t>(n));
  }
  return true;
}

void PtyProxy::suspend() {
  // In the background the terminal is the shell's already, and a
  // tcsetattr from there would stop us (SIGTTOU) before the stop we mean.
  if (raw_ && saved_ && ::tcgetpgrp(STDIN_FILENO) == ::getpgrp())
    ::tcsetattr(STDIN_FILENO, TCSADRAIN, &*saved_);
}

void PtyProxy::resume() {
  // Continued in the background (`bg`): the terminal is the shell's now.
  if (!raw_ || !saved_ || ::tcgetpgrp(STDIN_FILENO) != ::getpgrp()) return;
  // Raw: every key goes to the agent's terminal, which interprets it; what
  // was typed ahead stays, for the agent.
  termios raw = *saved_;
  ::cfmakeraw(&raw);
  ::tcsetattr(STDIN_FILENO, TCSADRAIN, &raw);
  resize();
}

void PtyProxy::resize() {
  winsize size{};
  if (::ioctl(STDIN_FILENO, TIOCGWINSZ, &size) == 0) ::ioctl(master_.get(), TIOCSWINSZ, &size);
}

}  // namespace corral
