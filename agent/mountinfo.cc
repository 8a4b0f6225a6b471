#include "mountinfo.h"

#include <fcntl.h>
#include <poll.h>
#include <spdlog/spdlog.h>

#include <cstdlib>

#include "errno_error.h"

namespace corral {
namespace {

std::string decode_octal(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '3' && s[i + 2] >= '0' && s[i + 2] <= '7' &&
        s[i + 3] >= '0' && s[i + 3] <= '7') {
      out.push_back(static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0')));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

}  // namespace

std::vector<Mount> parse_mountinfo(std::string_view text) {
  // id parent major:minor root mountpoint options [optional...] - fstype source super
  std::vector<Mount> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    std::vector<std::string_view> fields;
    size_t i = 0;
    while (i < line.size()) {
      size_t sp = line.find(' ', i);
      if (sp == std::string_view::npos) sp = line.size();
      if (sp > i) fields.push_back(line.substr(i, sp - i));
      i = sp + 1;
    }
    if (fields.size() < 7) continue;
    size_t sep = 6;
    while (sep < fields.size() && fields[sep] != "-") sep++;
    if (sep + 1 >= fields.size()) continue;
    Mount m;
    m.id = std::atoi(std::string(fields[0]).c_str());
    m.mountpoint = decode_octal(fields[4]);
    m.fstype = std::string(fields[sep + 1]);
    out.push_back(std::move(m));
  }
  return out;
}

MountTableWatch::MountTableWatch(boost::asio::io_context& io, std::function<void()> on_change)
    : fd_(io), on_change_(std::move(on_change)) {
  int fd = ::open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw errno_error("failed to open /proc/self/mountinfo");
  fd_.assign(fd);
  wait();
}

bool MountTableWatch::changed() {
  pollfd p{fd_.native_handle(), POLLPRI, 0};
  return !watching_ || (::poll(&p, 1, 0) == 1 && (p.revents & POLLPRI));
}

void MountTableWatch::wait() {
  // Any poll of the file takes the change it reports (epoll's, changed()'s,
  // and the one epoll_ctl makes as this wait is armed again, which may take
  // a change made while on_change ran): on_change must leave nothing that
  // a change since could make stale.
  fd_.async_wait(boost::asio::posix::stream_descriptor::wait_error,
                 [this](const boost::system::error_code& ec) {
                   if (ec == boost::asio::error::operation_aborted) return;
                   if (ec) {
                     spdlog::error("failed to watch /proc/self/mountinfo: {}", ec.message());
                     watching_ = false;
                     on_change_();
                     return;
                   }
                   on_change_();
                   wait();
                 });
}

}  // namespace corral
