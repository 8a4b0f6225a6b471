// `corral tail`: the trail, live, from the local log.
#pragma once

#include <atomic>
#include <cstdint>
#include <ostream>
#include <string>

namespace corral {

struct TailOptions {
  std::string path;
  std::string session;   // a session id, or a prefix of one
  std::string kind;      // exec, open, connect, decision, ... (a record's event name)
  bool json = false;     // the log's lines as they are
  bool color = false;    // ANSI colours by decision
  bool follow = true;    // keep waiting for records
  uint64_t last = 10;    // start with this many records already written
  bool from_start = false;
};

// Prints records until `stop` is set (or the end, without follow).
void tail(const TailOptions& options, std::ostream& out, const std::atomic<bool>& stop);

}  // namespace corral
