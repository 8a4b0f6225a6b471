// libFuzzer target for the policy parser (built and run by scripts/fuzz.sh).
// Beyond "no crash, no hang", it checks the parser's promises: a policy or
// errors, never both; every diagnostic one line; every glob the parser
// accepted compiles and matches without throwing.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "matcher.h"
#include "policy.h"

namespace {

void require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "invariant violated: %s\n", what);
    std::abort();
  }
}

}  // namespace

namespace {

int one_input(const uint8_t* data, size_t size) {
  using namespace corral::rules;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  LoadResult r = parse_policy(text, "fuzz.yaml");
  require(r.policy.has_value() == r.errors.empty(), "a policy if and only if no errors");
  require(r.errors.size() <= kMaxDiagnostics + 1, "diagnostics are capped");
  for (const auto& d : r.errors) {
    std::string line = d.str();
    require(line.find('\n') == std::string::npos, "a diagnostic is one line");
    require(!d.message.empty(), "a diagnostic says something");
  }
  if (!r.policy) return 0;

  const Policy& p = *r.policy;
  (void)summary(p);
  // Exercise the runtime matchers with paths and argv taken from the input.
  PathMatcher secrets(p.secrets, "/home/u");
  PathMatcher prot(p.protected_paths, "/home/u");
  std::vector<std::string> argv;
  for (const auto& rule : p.exec) {
    for (const auto& b : rule.binaries) argv.push_back(b);
    for (const auto& a : rule.args) argv.push_back(a);
  }
  for (const auto& rule : p.secrets)
    for (const auto& g : rule.globs) {
      std::string path = g[0] == '/' ? g : "/home/u/" + g;
      (void)secrets.match(path);
      (void)prot.match(path);
    }
  for (size_t i = 0; i < argv.size(); ++i) {
    std::vector<std::string> tail(argv.begin() + static_cast<ptrdiff_t>(i), argv.end());
    (void)match_exec(p.exec, argv[i], tail);
  }
  return 0;
}

}  // namespace

// An exception escaping would abort with no word of what it was.
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    return one_input(data, size);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "exception escaped: %s\n", e.what());
    std::abort();
  }
}
