#include "check.h"

#include "policy.h"

namespace corral::rules {

int policy_check(const std::string& path, std::ostream& out, std::ostream& err) {
  LoadResult r = load_policy_file(path);
  if (!r.policy) {
    for (const auto& d : r.errors) err << d.str() << '\n';
    return 1;
  }
  out << summary(*r.policy) << '\n';
  return 0;
}

}  // namespace corral::rules
