#include "control_client.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "control_wire.h"
#include "errno_error.h"
#include "pty_proxy.h"

namespace corral {

ssize_t send_with_fds(int sock, std::string_view bytes, const std::vector<int>& fds) {
  constexpr size_t kMaxAttached = 8;
  if (fds.size() > kMaxAttached) {
    errno = EINVAL;
    return -1;
  }
  iovec iov{const_cast<char*>(bytes.data()), bytes.size()};
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxAttached)] = {};
  if (!fds.empty()) {
    mh.msg_control = control;
    mh.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  ssize_t n;
  do n = ::sendmsg(sock, &mh, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  return n;
}

void send_bytes(int sock, std::string_view packet, const std::vector<int>& fds) {
  if (packet.size() > kMaxControlPacket)
    throw std::runtime_error("control message of " + std::to_string(packet.size()) +
                             " bytes is over the limit of " + std::to_string(kMaxControlPacket));
  if (fds.size() > kMaxControlFds) throw std::runtime_error("too many descriptors for one control message");
  if (send_with_fds(sock, packet, fds) < 0) throw errno_error("failed to send on the control socket");
}

bool recv_with_fds(int sock, std::string& bytes, std::vector<UniqueFd>* fds) {
  // The packet's length first (no control buffer: a peek installs no
  // descriptors), so most packets need a few bytes, not the limit.
  char probe;
  ssize_t len;
  do len = ::recv(sock, &probe, 1, MSG_PEEK | MSG_TRUNC);
  while (len < 0 && errno == EINTR);
  if (len < 0) throw errno_error("failed to receive on the control socket");
  bytes.assign(std::clamp<size_t>(static_cast<size_t>(len), 1, kMaxControlPacket + 1), '\0');
  iovec iov{bytes.data(), bytes.size()};
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxControlFds)];
  mh.msg_control = control;
  mh.msg_controllen = sizeof(control);
  ssize_t n;
  do n = ::recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0) throw errno_error("failed to receive on the control socket");
  // Descriptors are ours from here, whatever else is wrong with the packet.
  std::vector<UniqueFd> got;
  for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; i++) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      got.emplace_back(fd);
    }
  }
  if (n == 0) return false;
  if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
    throw std::runtime_error("control message truncated (over " + std::to_string(kMaxControlPacket) +
                             " bytes or " + std::to_string(kMaxControlFds) + " descriptors)");
  bytes.resize(static_cast<size_t>(n));
  if (fds) *fds = std::move(got);
  return true;
}

namespace {

// A unix SOCK_SEQPACKET socket (`flags` as socket(2)'s), connected to
// `path`; `error` is connect(2)'s errno, 0 when it connected.
UniqueFd connect_unix(const std::string& path, int flags, int& error) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path))
    throw std::runtime_error("control socket path too long: " + path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  UniqueFd sock(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | flags, 0));
  if (!sock) throw errno_error("failed to create a unix socket");
  error = ::connect(sock.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 ? 0 : errno;
  return sock;
}

bool nobody_listens(int error) { return error == ENOENT || error == ECONNREFUSED; }

}  // namespace

UniqueFd connect_control(const std::string& path) {
  int error;
  UniqueFd sock = connect_unix(path, 0, error);
  if (nobody_listens(error)) return UniqueFd();
  if (error) throw errno_error("failed to connect to " + path, error);
  return sock;
}

bool control_listened(const std::string& path) {
  int error;
  connect_unix(path, SOCK_NONBLOCK, error);
  if (nobody_listens(error)) return false;
  // EAGAIN: a listener whose backlog is full
  if (error && error != EAGAIN) throw errno_error("failed to connect to " + path, error);
  return true;
}

std::optional<int> run_in_daemon(int sock, const std::function<std::string(bool terminal)>& start) {
  // Signals arrive as data from here on, to be passed to the daemon once
  // the session has started; one that means "stop" before then ends the
  // run here (a daemon that never answers must not hold the user).
  sigset_t set, before;
  sigemptyset(&set);
  // SIGCONT too: blocked, it still continues us, and says when to take the
  // terminal back (after a stop of ours, or a shell's `fg` after `bg`).
  for (int s : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGWINCH, SIGTSTP, SIGCONT}) sigaddset(&set, s);
  sigprocmask(SIG_BLOCK, &set, &before);
  UniqueFd sigfd(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!sigfd) throw errno_error("failed to create signalfd");

  std::optional<PtyProxy> pty = []() -> std::optional<PtyProxy> {
    try {
      return PtyProxy::open_if_terminal();
    } catch (const std::exception& e) {
      // The agent still gets the terminal itself, without owning it.
      std::fprintf(stderr, "corral: warning: %s; the agent's terminal is yours, without job control\n",
                   e.what());
      return std::nullopt;
    }
  }();
  std::vector<int> stdio = {STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO};
  if (pty) stdio = {pty->agent_stdin(), pty->agent_stdout(), pty->agent_stderr()};
  send_bytes(sock, start(pty.has_value()), stdio);
  if (pty) pty->close_slave();
  bool agent_side_open = pty.has_value();
  bool started = false;

  for (;;) {
    pollfd fds[4] = {{sock, POLLIN, 0}, {sigfd.get(), POLLIN, 0}, {-1, 0, 0}, {-1, 0, 0}};
    // The user's keys and the agent's output once there is an agent: until
    // then typed keys wait in the terminal, for the agent.
    if (pty && started) {
      fds[2] = {pty->user_fd(), POLLIN, 0};
      if (agent_side_open)
        fds[3] = {pty->master(), static_cast<short>(POLLIN | (pty->input_pending() ? POLLOUT : 0)), 0};
    }
    if (::poll(fds, 4, -1) < 0) {
      if (errno == EINTR) continue;
      throw errno_error("failed to wait for the daemon");
    }
    if (fds[1].revents & POLLIN) {
      signalfd_siginfo info;
      while (::read(sigfd.get(), &info, sizeof(info)) == sizeof(info)) {
        if (pty && info.ssi_signo == SIGWINCH) {
          pty->resize();  // the kernel tells the agent
          continue;
        }
        if (info.ssi_signo == SIGTSTP) {
          // This client is stopped, not the agent (in raw mode the user's
          // Ctrl-Z reaches the agent as a byte): by the default action,
          // which the kernel drops in an orphaned process group (no one
          // would continue it), with the user's terminal left as it was.
          if (pty) pty->suspend();
          sigset_t tstp;
          sigemptyset(&tstp);
          sigaddset(&tstp, SIGTSTP);
          sigprocmask(SIG_UNBLOCK, &tstp, nullptr);
          ::raise(SIGTSTP);
          sigprocmask(SIG_BLOCK, &tstp, nullptr);
          if (pty) pty->resume();
          continue;
        }
        if (info.ssi_signo == SIGCONT) {
          if (pty) pty->resume();  // no-op unless the terminal is ours
          continue;
        }
        if (!started) {
          // Nothing runs yet: this run ends, by the signal, as it would
          // have without corral; the daemon drops a session it makes for
          // a connection that is gone.
          pty.reset();
          sigprocmask(SIG_SETMASK, &before, nullptr);
          ::signal(static_cast<int>(info.ssi_signo), SIG_DFL);
          ::raise(static_cast<int>(info.ssi_signo));
          return 128 + static_cast<int>(info.ssi_signo);
        }
        send_bytes(sock, wire::signal(static_cast<int>(info.ssi_signo), info.ssi_code == SI_KERNEL), {});
      }
    }
    if (fds[2].revents & (POLLIN | POLLHUP | POLLERR)) pty->pump_input();
    if (fds[3].revents & POLLOUT) pty->flush_input();
    if (fds[3].revents & (POLLIN | POLLHUP | POLLERR)) agent_side_open = pty->pump_output();
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      std::string packet;
      if (!recv_with_fds(sock, packet, nullptr))
        throw std::runtime_error(
            "the corral daemon went away before the session ended; the session died with it");
      wire::Reply reply = wire::reply(packet);
      switch (reply.kind) {
        case wire::Reply::Kind::kStarted:
          started = true;
          if (pty) pty->go_raw();
          break;
        case wire::Reply::Kind::kHandBack:
          // Nothing started; what we changed, as it was, the terminal
          // before the mask (a pending signal acts at once).
          pty.reset();
          sigprocmask(SIG_SETMASK, &before, nullptr);
          return std::nullopt;
        case wire::Reply::Kind::kEnded:
          // No process of the session is left: all it wrote is in the pty.
          if (pty && agent_side_open) pty->pump_output(INT_MAX);
          return reply.exit_code;
        case wire::Reply::Kind::kError:
          throw std::runtime_error(reply.error);
        default:
          throw std::runtime_error("unexpected message from the corral daemon");
      }
    }
  }
}

}  // namespace corral
