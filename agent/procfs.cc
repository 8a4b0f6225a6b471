#include "procfs.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string_view>

#include "errno_error.h"
#include "unique_fd.h"

namespace corral {

ProcStatus parse_proc_status(const std::string& text) {
  ProcStatus s;
  std::string_view rest(text);
  while (!rest.empty()) {
    size_t eol = rest.find('\n');
    std::string_view line = rest.substr(0, eol);
    rest = eol == std::string_view::npos ? std::string_view() : rest.substr(eol + 1);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view key = line.substr(0, colon);
    std::string value(line.substr(colon + 1));
    value.erase(0, value.find_first_not_of(" \t"));
    if (key == "Name") s.comm = value;  // all of it: a name may hold spaces
    else if (key == "Tgid") s.tgid = static_cast<pid_t>(std::strtol(value.c_str(), nullptr, 10));
    else if (key == "PPid") s.ppid = static_cast<pid_t>(std::strtol(value.c_str(), nullptr, 10));
    else if (key == "Uid") s.uid = static_cast<uid_t>(std::strtoul(value.c_str(), nullptr, 10));
    else if (key == "Gid") s.gid = static_cast<gid_t>(std::strtoul(value.c_str(), nullptr, 10));
  }
  return s;
}

std::string read_small_file(int dirfd, const std::string& rel, const std::string& shown) {
  UniqueFd fd(::openat(dirfd, rel.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) throw errno_error("failed to open " + shown);
  std::string out;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw errno_error("failed to read " + shown);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

std::optional<ProcStatus> read_proc_status(pid_t tid) {
  std::string path = "/proc/" + std::to_string(tid) + "/status";
  try {
    return parse_proc_status(read_small_file(AT_FDCWD, path, path));
  } catch (const std::exception&) {
    return std::nullopt;  // gone
  }
}

}  // namespace corral
