#include "audit_log.h"

#include <fcntl.h>

#include <cerrno>
#include <system_error>

#include "json.h"

namespace corral {

std::string record_to_json_line(const audit::Record& record) {
  std::string line;
  append_json(record, line);
  line.push_back('\n');
  return line;
}

AuditLog::AuditLog(const std::string& path)
    : path_(path), fd_(::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600)) {
  if (!fd_)
    throw std::system_error(errno, std::generic_category(),
                            "failed to open audit log " + path + " for appending");
}

void AuditLog::append(audit::Record& record) {
  record.set_seq(next_seq_++);
  append_json(record, buffer_);
  buffer_.push_back('\n');
  if (buffer_.size() >= (1u << 20)) flush();
}

void AuditLog::flush() {
  size_t done = 0;
  while (done < buffer_.size()) {
    ssize_t n = ::write(fd_.get(), buffer_.data() + done, buffer_.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      buffer_.erase(0, done);
      throw std::system_error(err, std::generic_category(), "failed to write audit log " + path_);
    }
    done += static_cast<size_t>(n);
  }
  buffer_.clear();
}

}  // namespace corral
