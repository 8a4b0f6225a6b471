#include "matcher.h"

#include <algorithm>

namespace corral::rules {
namespace {

std::vector<PathRule> active(const std::vector<PathRule>& rules) {
  std::vector<PathRule> out;
  std::copy_if(rules.begin(), rules.end(), std::back_inserter(out),
               [](const PathRule& r) { return r.mode != Mode::kOff; });
  return out;
}

std::vector<std::string> all_globs(const std::vector<PathRule>& rules, std::vector<size_t>& owner) {
  std::vector<std::string> globs;
  for (size_t i = 0; i < rules.size(); ++i) {
    for (const auto& g : rules[i].globs) {
      globs.push_back(g);
      owner.push_back(i);
    }
  }
  return globs;
}

std::string_view basename(std::string_view p) {
  size_t slash = p.rfind('/');
  return slash == std::string_view::npos ? p : p.substr(slash + 1);
}

bool binary_matches(std::string_view rule, std::string_view resolved, std::string_view argv0) {
  if (rule.empty()) return false;
  if (rule[0] == '/') return rule == resolved || rule == argv0;
  return (!resolved.empty() && basename(resolved) == rule) ||
         (!argv0.empty() && basename(argv0) == rule);
}

// Whether rule args equal argv[pos..] token by token.
bool args_at(const std::vector<std::string>& args, const std::vector<std::string>& argv,
             size_t pos) {
  if (argv.size() - pos < args.size()) return false;
  return std::equal(args.begin(), args.end(), argv.begin() + static_cast<ptrdiff_t>(pos));
}

}  // namespace

PathMatcher::PathMatcher(const std::vector<PathRule>& rules, const std::string& home)
    : rules_(active(rules)), globs_(all_globs(rules_, rule_of_glob_), home) {}

PathDecision PathMatcher::match(std::string_view path) const {
  // Indices come back ascending and globs are laid out in rule order, so the
  // first hit belongs to the first matching rule.
  std::vector<int> hits = globs_.match(path);
  if (hits.empty()) return {};
  return {&rules_[rule_of_glob_[static_cast<size_t>(hits.front())]]};
}

bool exec_rule_matches(const ExecRule& rule, std::string_view resolved_path,
                       const std::vector<std::string>& argv) {
  std::string_view argv0 = argv.empty() ? std::string_view() : std::string_view(argv[0]);
  if (std::none_of(rule.binaries.begin(), rule.binaries.end(),
                   [&](const std::string& b) { return binary_matches(b, resolved_path, argv0); }))
    return false;
  if (rule.args.empty()) return true;
  // Leading options are skipped ("-C DIR" and "-c K=V" with their value, as
  // git takes them); the rule may match at the first non-option token or at
  // any option token on the way, so a rule like ["-e"] can match an option.
  size_t pos = 1;
  while (pos < argv.size()) {
    if (args_at(rule.args, argv, pos)) return true;
    const std::string& tok = argv[pos];
    if (tok.empty() || tok[0] != '-') return false;
    pos += (tok == "-C" || tok == "-c") ? 2 : 1;
  }
  return false;
}

const ExecRule* match_exec(const std::vector<ExecRule>& rules, std::string_view resolved_path,
                           const std::vector<std::string>& argv) {
  for (const auto& r : rules)
    if (r.mode != Mode::kOff && exec_rule_matches(r, resolved_path, argv)) return &r;
  return nullptr;
}

}  // namespace corral::rules
