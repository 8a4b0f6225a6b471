// The local audit log: one JSON object per line, each a corral.audit.Record
// with its proto field names. Records are numbered here.
#pragma once

#include <cstdint>
#include <string>

#include "audit.pb.h"
#include "unique_fd.h"

namespace corral {

// Serialises one record as a single JSON line (newline included).
std::string record_to_json_line(const audit::Record& record);

class AuditLog {
 public:
  // Opens (creating, mode 0600) `path` for appending. Throws
  // std::system_error naming the path when it cannot.
  explicit AuditLog(const std::string& path);

  // Numbers `record`, serialises it into the write buffer.
  void append(audit::Record& record);
  // Writes the buffer out; throws std::system_error on a failed write.
  void flush();

  const std::string& path() const { return path_; }

 private:
  std::string path_;
  UniqueFd fd_;
  std::string buffer_;
  uint64_t next_seq_ = 1;
};

}  // namespace corral
