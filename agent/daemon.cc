#include "daemon.h"

#include <errno.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "control.h"
#include "errno_error.h"

namespace corral {
struct ControlServer::Connection {
  explicit Connection(boost::asio::io_context& io, int fd) : sock(io, fd) {}
  boost::asio::posix::stream_descriptor sock;
  uint64_t session = 0;  // 0: none started
  bool ended = false;
};

ControlServer::ControlServer(boost::asio::io_context& io, Supervisor& sup, std::string path)
    : io_(io), sup_(sup), path_(std::move(path)), listener_(io), watch_(io), invocations_(path_) {
  sockaddr_un addr{};
  if (path_.size() >= sizeof(addr.sun_path))
    throw std::runtime_error("control socket path too long: " + path_);
  if (control_listened(path_))
    throw std::runtime_error("a corral daemon already listens on " + path_);
  listen();
  watch();
}

ControlServer::~ControlServer() {
  if (listener_.is_open() && ours()) ::unlink(path_.c_str());
}

void ControlServer::listen() {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path_.c_str(), path_.size() + 1);
  auto dir = std::filesystem::path(path_).parent_path();
  if (!dir.empty() && !std::filesystem::exists(dir)) {
    std::filesystem::create_directories(dir);
    ::chmod(dir.c_str(), 0700);
  }
  ::unlink(path_.c_str());  // a dead daemon's socket

  UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) throw errno_error("failed to create the control socket");
  // Root-only from the first moment: no window with a wider mode.
  mode_t old = ::umask(0177);
  int rc = ::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  int bind_errno = errno;
  ::umask(old);
  if (rc != 0) {
    errno = bind_errno;
    throw errno_error("failed to bind the control socket to " + path_);
  }
  if (::listen(fd.get(), 64) != 0) throw errno_error("failed to listen on " + path_);
  struct stat st;
  if (::stat(path_.c_str(), &st) != 0) throw errno_error("failed to stat the control socket " + path_);
  socket_id_ = {st.st_dev, st.st_ino};
  boost::system::error_code ignored;
  listener_.close(ignored);  // a socket removed from under it: its accept waits end
  listener_.assign(fd.release());
  accept();
}

bool ControlServer::ours() const {
  struct stat st;
  return ::stat(path_.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) &&
         std::make_pair(st.st_dev, st.st_ino) == socket_id_;
}

// Each second: is the socket still there? Removed (a cleanup of /run, a
// mistaken rm), every `corral run` would find no daemon and run on its own
// under the default policy and log, not this daemon's; so it is bound
// again. Another daemon's socket in its place is left alone.
void ControlServer::watch() {
  watch_.expires_after(std::chrono::seconds(1));
  watch_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || idle_) return;
    if (!ours()) {
      try {
        if (control_listened(path_)) {
          spdlog::error("control socket {}: another corral daemon listens there now; this one "
                        "takes no new sessions",
                        path_);
          return;
        }
        listen();
        spdlog::warn("control socket {} was removed; listening there again", path_);
      } catch (const std::exception& e) {
        spdlog::error("control socket {} was removed and cannot be made again: {}", path_, e.what());
      }
    }
    watch();
  });
}

void ControlServer::accept() {
  listener_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                       [this](const boost::system::error_code& ec) {
                         if (ec) return;
                         for (;;) {
                           int fd = ::accept4(listener_.native_handle(), nullptr, nullptr, SOCK_CLOEXEC);
                           if (fd < 0) {
                             if (errno != EAGAIN && errno != EINTR)
                               spdlog::warn("control socket: accept: {}", std::strerror(errno));
                             break;
                           }
                           auto c = std::make_shared<Connection>(io_, fd);
                           connections_.emplace(c.get(), c);
                           uid_t uid = 0;
                           try {
                             uid = peer_uid(fd);
                           } catch (const std::exception& e) {
                             spdlog::warn("control socket: {}", e.what());
                             uid = static_cast<uid_t>(-1);
                           }
                           if (uid != 0) {
                             control::DaemonMessage m;
                             m.set_error("only root may start corral sessions (peer uid " +
                                         std::to_string(uid) + ")");
                             last_reply(c, m);
                             continue;
                           }
                           serve(c);
                         }
                         accept();
                       });
}

void ControlServer::serve(const std::shared_ptr<Connection>& c) {
  std::weak_ptr<Connection> weak = c;
  c->sock.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                     [this, weak](const boost::system::error_code& ec) {
                       auto c = weak.lock();
                       if (ec || !c) return;
                       handle(c);
                     });
}

void ControlServer::handle(const std::shared_ptr<Connection>& c) {
  control::ClientMessage msg;
  std::vector<UniqueFd> fds;
  try {
    if (!recv_packet(c->sock.native_handle(), msg, &fds)) {
      drop(c.get(), "its corral run went away");
      return;
    }
  } catch (const std::exception& e) {
    spdlog::warn("control socket: {}", e.what());
    drop(c.get(), "its corral run sent an unreadable message");
    return;
  }
  switch (msg.body_case()) {
    case control::ClientMessage::kRun:
      start(c, msg.run(), std::move(fds));
      break;
    case control::ClientMessage::kInvocation:
      if (c->session) {
        spdlog::warn("control socket: a run on a session's connection, ignored");
        break;
      }
      if (auto request = invocations_.request(msg.invocation())) {
        start(c, *request, std::move(fds));
        break;
      }
      {
        control::DaemonMessage back;  // corral-core does it, or says why not
        back.mutable_hand_back();
        last_reply(c, back);
      }
      return;
    case control::ClientMessage::kSignal:
      if (Session* s = c->session && !c->ended ? sup_.find_session(c->session) : nullptr) {
        // a resized window is never a request to stop
        if (msg.signal().from_terminal() || msg.signal().signo() == SIGWINCH)
          s->forward_signal(msg.signal().signo());
        else
          s->on_signal(msg.signal().signo(), /*from_kernel=*/false);
      }
      break;
    case control::ClientMessage::kList:
    case control::ClientMessage::kKill:
      if (c->session) {  // a session's own connection only carries its signals
        spdlog::warn("control socket: a question on a session's connection, ignored");
        break;
      }
      answer(c, msg);
      return;  // one question, one answer
    default:
      if (!c->session) {  // a newer corral's request: say so rather than hang it
        control::DaemonMessage m;
        m.set_error("the corral daemon does not know this request (is it older than the corral "
                    "command? restart it)");
        last_reply(c, m);
        return;
      }
      spdlog::warn("control socket: a message of no known kind on a session's connection, ignored");
      break;
  }
  if (connections_.count(c.get())) serve(c);
}

void ControlServer::answer(const std::shared_ptr<Connection>& c, const control::ClientMessage& msg) {
  control::DaemonMessage reply;
  if (msg.has_list()) {
    auto now = std::chrono::steady_clock::now();
    // set even when empty: an empty reply would be a zero-length packet,
    // which the client cannot tell from the daemon hanging up
    auto* list = reply.mutable_sessions();
    for (const auto& [id, s] : sup_.sessions()) {
      auto* info = list->add_sessions();
      info->set_session(s->id_string());
      for (const auto& a : s->spec().argv) info->add_command(a);
      info->set_user(s->spec().creds.name);
      info->set_uid(s->spec().creds.uid);
      info->set_pid(s->init_pid());
      info->set_cwd(s->spec().cwd);
      info->set_worktree(s->spec().worktree);
      info->set_seconds(std::chrono::duration<double>(now - s->started()).count());
    }
  } else {
    std::vector<Session*> found;
    for (const auto& [id, s] : sup_.sessions())
      if (!msg.kill().session().empty() && s->id_string().starts_with(msg.kill().session()))
        found.push_back(s.get());
    if (found.size() == 1) {
      spdlog::warn("session {}: killed at the request of corral kill", found[0]->id_string());
      found[0]->kill();
      reply.set_killed(found[0]->id_string());
    } else {
      reply.set_error(found.empty() ? "no live session '" + msg.kill().session() + "'"
                                    : "'" + msg.kill().session() + "' names " +
                                          std::to_string(found.size()) + " sessions");
    }
  }
  last_reply(c, reply);
}

void ControlServer::last_reply(const std::shared_ptr<Connection>& c, const control::DaemonMessage& m) {
  try {
    send_packet(c->sock.native_handle(), m);
  } catch (const std::exception& e) {
    spdlog::warn("control socket: {}", e.what());
  }
  drop(c.get(), nullptr);
}

void ControlServer::start(const std::shared_ptr<Connection>& c, const control::RunRequest& request,
                          std::vector<UniqueFd> stdio) {
  auto refuse = [&](const std::string& why) {
    spdlog::warn("session refused: {}", why);
    control::DaemonMessage m;
    m.set_error(why);
    try {
      send_packet(c->sock.native_handle(), m);
    } catch (const std::exception& e) {
      spdlog::warn("control socket: {}", e.what());
    }
  };
  if (idle_) return refuse("the corral daemon is shutting down");
  if (c->session) return refuse("one session per connection");
  if (stdio.size() != 3)
    return refuse("a run request carries the agent's stdin, stdout and stderr; got " +
                  std::to_string(stdio.size()) + " descriptors");
  SessionSpec spec;
  try {
    spec = from_request(request);
  } catch (const std::exception& e) {
    return refuse(e.what());
  }
  spec.stdio = std::move(stdio);

  std::weak_ptr<Connection> weak = c;
  try {
    Session& s = sup_.start_session(std::move(spec), [this, weak](int code) {
      auto c = weak.lock();
      if (!c) {  // its client went away first
        check_idle();
        return;
      }
      c->ended = true;
      control::DaemonMessage m;
      m.mutable_ended()->set_exit_code(code);
      try {
        send_packet(c->sock.native_handle(), m);
      } catch (const std::exception& e) {
        spdlog::warn("control socket: {}", e.what());
      }
      drop(c.get(), nullptr);
    });
    c->session = s.id();
    control::DaemonMessage m;
    m.mutable_started()->set_session(s.id_string());
    send_packet(c->sock.native_handle(), m);
  } catch (const std::exception& e) {
    if (!c->session) return refuse(e.what());
    spdlog::warn("control socket: {}", e.what());  // started; the client will see it end
  }
}

void ControlServer::drop(Connection* c, const char* why) {
  auto it = connections_.find(c);
  if (it == connections_.end()) return;
  auto keep = it->second;  // alive until this returns
  connections_.erase(it);
  if (c->session && !c->ended) {
    if (Session* s = sup_.find_session(c->session)) {
      spdlog::warn("session {}: {}; killing the session", s->id_string(), why ? why : "dropped");
      s->kill();
    }
  }
  boost::system::error_code ignored;
  c->sock.close(ignored);
  check_idle();
}

void ControlServer::shut_down(int signo, std::function<void()> idle) {
  if (idle_) {  // asked again: no more grace
    spdlog::warn("shutting down now: killing {} live session(s)", sup_.session_count());
    sup_.kill_sessions();
    return;
  }
  idle_ = std::move(idle);
  sup_.stop_spares();
  boost::system::error_code ignored;
  watch_.cancel();
  if (ours()) ::unlink(path_.c_str());
  listener_.close(ignored);
  spdlog::info("shutting down: no new sessions; passing signal {} to {} live one(s)", signo,
               sup_.session_count());
  sup_.signal_sessions(signo);
  check_idle();
}

void ControlServer::check_idle() {
  if (!idle_) return;
  // Posted: an ending session is forgotten by a handler posted before ours.
  boost::asio::post(io_, [this] {
    if (idle_ && sup_.session_count() == 0) idle_();
  });
}

int run_daemon(SupervisorOptions options, const std::string& socket_path) {
  boost::asio::io_context io;
  options.keep_egress_attached = true;  // for the many sessions to come
  options.keep_spare = true;
  Supervisor sup(io, options);
  ControlServer server(io, sup, socket_path);
  sup.on_stop([&](int signo) { server.shut_down(signo, [&] { io.stop(); }); });
  spdlog::info("daemon ready: programs loaded, sessions through {}", socket_path);
  io.run();
  return sup.close_log(std::chrono::seconds(5)) ? 0 : 1;
}

}  // namespace corral
