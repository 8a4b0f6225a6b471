// Follows the local log from a sequence number on, across rotations: what
// the shipper feeds sinks from and what `corral tail` shows.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "sink.h"
#include "unique_fd.h"

namespace corral {

// Parses `line` (as the log's writer prints it) to the kHead depth; false
// when it is not such a line.
bool parse_record_head(std::string_view line, audit::Record& record);

class LogReader {
 public:
  // Reads records with seq >= from_seq of the log at `path` (and its
  // rotated files). Nothing is opened until the first next().
  LogReader(std::string path, uint64_t from_seq, ParseDepth depth = ParseDepth::kFull);

  // The next whole record, or nullopt when the writer has not written it
  // yet. A line that is not valid JSON comes with an empty `record`.
  std::optional<LogRecord> next();
  // The seq the next record will have at least.
  uint64_t position() const { return want_; }

 private:
  bool open_for(uint64_t seq);
  bool open_file(const std::string& file, bool active);
  bool advance_file();
  bool fill();

  std::string path_;
  uint64_t want_;
  ParseDepth depth_;
  UniqueFd fd_;
  std::string file_;       // what fd_ was opened as
  uint64_t ino_ = 0;
  bool active_ = false;    // fd_ is (or was, until rotated) PATH itself
  uint64_t last_seq_ = 0;  // the last seq read from fd_'s file
  std::string buf_;
  size_t pos_ = 0;   // the first byte of buf_ not yet consumed
  uint64_t off_ = 0;  // the file offset of buf_'s first byte
};

}  // namespace corral
