// The policy: what a session's processes may not read, write or run, and
// where they may connect. Schema and semantics: rules/README.md.
//
// Parsing returns either a complete Policy or every problem found, each with
// its file, line and column: a policy is never half-applied.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace corral::rules {

// enforce: deny and record; shadow: allow, and record "would deny";
// off: the rule does nothing (how a default rule is turned off).
enum class Mode { kEnforce, kShadow, kOff };
std::string_view mode_name(Mode);

// line and column are 1-based; 0 when the problem is about the whole file.
struct SourceLoc {
  std::string file;
  int line = 0;
  int column = 0;
};

// A secrets or protected rule: a path matching any glob hits it.
struct PathRule {
  std::string id;
  Mode mode = Mode::kEnforce;
  std::vector<std::string> globs;
  SourceLoc loc;
};

struct ExecRule {
  std::string id;
  Mode mode = Mode::kEnforce;
  std::vector<std::string> binaries;  // basenames or absolute paths
  std::vector<std::string> args;      // token prefix; empty = every invocation
  SourceLoc loc;
};

enum class Protocol { kTcp, kUdp, kAny };
std::string_view protocol_name(Protocol);

struct Cidr {
  int family = 0;                  // AF_INET or AF_INET6
  std::array<uint8_t, 16> addr{};  // network order; IPv4 in the first 4 bytes
  int prefix = 0;
};

struct PortRange {
  uint16_t lo = 0, hi = 0;  // inclusive
};

// An egress allow rule: `host` (lowercase DNS name) or `cidrs`, never both.
struct EgressRule {
  std::string id;
  Mode mode = Mode::kEnforce;
  std::string host;
  std::vector<Cidr> cidrs;
  std::vector<PortRange> ports;  // empty = all ports
  Protocol protocol = Protocol::kTcp;
  SourceLoc loc;
};

struct Policy {
  std::vector<PathRule> secrets, protected_paths;
  // The session's mount namespace: paths made writable besides the project
  // directory and a private /tmp (the rest of the host is read-only), and
  // directories covered by an empty read-only mount. Literal paths ("~/"
  // allowed), not globs; enforce or off.
  std::vector<PathRule> writable, hidden;
  std::vector<ExecRule> exec;
  bool egress_default_allow = false;
  // `default: shadow`: what the allowlist does not name still connects, and
  // is recorded as would_deny (trying an allowlist out before enforcing it).
  bool egress_default_shadow = false;
  std::vector<EgressRule> egress;
  std::vector<std::string> sources;  // files it was read from, in order
};

struct Diagnostic {
  SourceLoc loc;
  std::string message;
  std::string str() const;  // "FILE:LINE:COL: message"
};

struct LoadResult {
  std::optional<Policy> policy;     // set if and only if errors is empty
  std::vector<Diagnostic> errors;   // sorted by source, line, column
};

// Limits that keep a hostile policy from exhausting the stack or memory.
inline constexpr size_t kMaxPolicyBytes = size_t{1} << 20;
inline constexpr int kMaxPolicyDepth = 64;
// Past this many problems, one more diagnostic says how many were left out.
inline constexpr size_t kMaxDiagnostics = 200;

// The filename that diagnostics and SourceLocs use for the embedded default.
inline constexpr std::string_view kDefaultPolicyName = "<default>";

// Parses one policy document; `extends: default` merges the embedded default
// first. `filename` only labels diagnostics.
LoadResult parse_policy(std::string_view yaml_text, const std::string& filename);
// Reads the file (error "FILE:0:0: cannot read: <strerror>") and parses it.
LoadResult load_policy_file(const std::string& path);
// The shipped default (rules/default.yaml), from the copy embedded at build
// time, so an installed binary needs no source tree.
LoadResult load_default_policy();
// The source path of the shipped default, for messages and documentation.
std::string default_policy_path();
// The embedded text of the shipped default.
std::string_view default_policy_text();

// One line, e.g. "policy ok: 12 secret rules (34 globs), 5 protected
// (7 globs), 9 exec, 7 egress allow (default deny)".
std::string summary(const Policy&);

}  // namespace corral::rules
