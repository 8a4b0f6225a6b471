// What the supervisor asks at runtime: does this path or this exec hit a
// rule? Semantics: rules/README.md.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "glob.h"
#include "policy.h"

namespace corral::rules {

struct PathDecision {
  // The first matching rule whose mode is not off, in policy order; null if
  // none. Points into the PathMatcher, which must outlive it.
  const PathRule* rule = nullptr;
};

// One per rule section (secrets, protected) and per home directory. All
// globs of all active rules are in one GlobSet: one match per path.
class PathMatcher {
 public:
  // Throws std::invalid_argument for a bad glob (the parser rejects those)
  // or, when a rule has a "~/" glob, a home that is not absolute.
  PathMatcher(const std::vector<PathRule>& rules, const std::string& home);
  // `path` is absolute; it is normalised lexically before matching.
  PathDecision match(std::string_view path) const;

 private:
  std::vector<PathRule> rules_;  // the active (not off) rules, in order
  std::vector<size_t> rule_of_glob_;
  GlobSet globs_;
};

// Whether one exec rule matches: its binary is argv[0]'s basename or the
// resolved path's basename (a basename rule), or argv[0] or the resolved path
// itself (an absolute rule); and its args are a token prefix of argv[1..]
// after leading options (README, "Exec rules"). The rule's mode is ignored.
bool exec_rule_matches(const ExecRule& rule, std::string_view resolved_path,
                       const std::vector<std::string>& argv);

// The first rule, in order, whose mode is not off and that matches; or null.
const ExecRule* match_exec(const std::vector<ExecRule>& rules, std::string_view resolved_path,
                           const std::vector<std::string>& argv);

}  // namespace corral::rules
