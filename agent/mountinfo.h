// /proc/PID/mountinfo, parsed once for everyone who needs mounts: the
// cgroup2 lookup and the fanotify guard's marks; and watched, for a
// daemon's prepared session.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace corral {

struct Mount {
  int id = 0;
  std::string mountpoint;  // octal escapes (\040 for a space) decoded
  std::string fstype;
};

std::vector<Mount> parse_mountinfo(std::string_view text);

// This process's mount table (the host's, for a daemon), watched: poll(2)
// on /proc/self/mountinfo says POLLPRI once for any mount, unmount or
// remount since it last asked. A prepared session's mount namespace is a
// private copy taken when it was made; a later change of the host's is not
// in it (and an unmounted filesystem stays busy while it lives).
class MountTableWatch {
 public:
  // on_change runs on the loop after each change that changed() did not
  // report first.
  MountTableWatch(boost::asio::io_context& io, std::function<void()> on_change);
  // Whether the table changed since the last call or on_change (always,
  // once the watch failed). Does not block.
  bool changed();
  bool watching() const { return watching_; }

 private:
  void wait();

  boost::asio::posix::stream_descriptor fd_;
  std::function<void()> on_change_;
  bool watching_ = true;
};

}  // namespace corral
