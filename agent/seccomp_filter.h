// The session's syscall filter (libseccomp): what an agent never needs and
// what would let it step around the guard. Above all: a new mount or user
// namespace would be made of fresh mounts that the session's fanotify marks
// do not cover.
#pragma once

#include <linux/filter.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <functional>
#include <vector>

#include "audit.pb.h"

namespace corral {

// Builds the filter once, in the supervisor. Throws std::runtime_error.
// Refused calls go to the supervisor as user notifications (so each is
// recorded, then answered EPERM); clone3 gets ENOSYS directly.
std::vector<sock_filter> build_session_filter();

// Installs it in the calling process and all it will start: raw system
// calls only (the session init uses it after clone). Sets no_new_privs
// first. Returns the notification listener's fd, or -errno.
int install_filter(const std::vector<sock_filter>& filter);

// Answers a session's refused calls: each notification becomes a `refused`
// record (the syscall by name, the process, the decision) and is answered
// EPERM. Owns the listener fd.
class SeccompListener {
 public:
  using Emit = std::function<void(audit::Record&)>;
  SeccompListener(boost::asio::io_context& io, int listener_fd, Emit emit);
  ~SeccompListener();
  SeccompListener(const SeccompListener&) = delete;
  SeccompListener& operator=(const SeccompListener&) = delete;

 private:
  void wait();
  void answer();

  boost::asio::posix::stream_descriptor fd_;
  Emit emit_;
  std::vector<char> notif_, resp_;  // sized by SECCOMP_GET_NOTIF_SIZES
};

}  // namespace corral
