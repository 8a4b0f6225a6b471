// /proc/PID/mountinfo, parsed once for everyone who needs mounts: the
// cgroup2 lookup and the fanotify guard's marks.
#pragma once

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

}  // namespace corral
