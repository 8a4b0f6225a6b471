// How a record's decision reads: one place for the exporters.
#pragma once

#include "audit.pb.h"

namespace corral {

// The rule was in force: "deny", or "missed" (it happened all the same).
// Only "would_deny", shadow mode, is not; an unknown action counts as in
// force, so that a reader never ranks it low.
inline bool enforced(const audit::Decision& d) { return d.action() != "would_deny"; }

inline const char* verdict_word(const audit::Decision& d) {
  if (d.action() == "deny") return "DENIED";
  if (d.action() == "missed") return "MISSED";
  return enforced(d) ? "ENFORCED" : "WOULD DENY";
}

}  // namespace corral
