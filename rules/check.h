// `corral policy check FILE`.
#pragma once

#include <ostream>
#include <string>

namespace corral::rules {

// Loads the policy (resolving `extends`). Prints every problem to `err`, one
// "FILE:LINE:COL: message" per line, and returns 1; or prints the one-line
// summary to `out` and returns 0.
int policy_check(const std::string& path, std::ostream& out, std::ostream& err);

}  // namespace corral::rules
