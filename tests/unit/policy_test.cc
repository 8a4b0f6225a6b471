#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "check.h"
#include "glob.h"
#include "matcher.h"
#include "policy.h"

using namespace std::string_literals;

namespace corral::rules {
namespace {

// Every diagnostic of parsing `yaml` as "p.yaml", as "FILE:LINE:COL: message".
std::vector<std::string> errors_of(std::string_view yaml) {
  LoadResult r = parse_policy(yaml, "p.yaml");
  std::vector<std::string> out;
  for (const auto& d : r.errors) out.push_back(d.str());
  EXPECT_EQ(r.policy.has_value(), out.empty()) << "a policy comes with no errors, never both";
  return out;
}

Policy ok(std::string_view yaml) {
  LoadResult r = parse_policy(yaml, "p.yaml");
  for (const auto& d : r.errors) ADD_FAILURE() << d.str();
  if (!r.policy) return {};
  return *r.policy;
}

using Errors = std::vector<std::string>;

// ---- diagnostics ---------------------------------------------------------

TEST(PolicyDiagnostics, YamlSyntaxErrorHasPosition) {
  Errors e = errors_of("version: 1\nsecrets: [a, b\n");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0], "p.yaml:3:1: yaml: end of sequence flow not found");
}

TEST(PolicyDiagnostics, YamlErrorsStayOnOneLine) {
  // yaml-cpp's message ends with the bad escape character, here a control one.
  EXPECT_EQ(errors_of("version: 1\nx: \"a\\\x01" "b\"\n"),
            Errors{"p.yaml:2:8: yaml: unknown escape character: \\x01"});
}

TEST(PolicyDiagnostics, UnknownKeyNamesItAndTheAllowedOnes) {
  EXPECT_EQ(errors_of("version: 1\nsecret: []\n"),
            Errors{"p.yaml:2:1: unknown key 'secret' (allowed: version, extends, secrets, "
                   "protected, exec, egress, writable, hidden)"});
  EXPECT_EQ(errors_of("version: 1\n"
                      "secrets:\n"
                      "  - id: a\n"
                      "    path: /x\n"),
            (Errors{"p.yaml:3:5: secrets[0]: missing key 'paths'",
                    "p.yaml:4:5: secrets[0]: unknown key 'path' (allowed: id, mode, paths)"}));
}

// writable and hidden are mounts: literal paths, never in shadow mode.
TEST(PolicyDiagnostics, MountSectionsTakePathsNotGlobs) {
  EXPECT_EQ(errors_of("version: 1\n"
                      "writable:\n"
                      "  - {id: w, paths: [\"~/.cache/*\", rel/dir, /a/../b, ~/ok]}\n"
                      "hidden:\n"
                      "  - {id: h, mode: shadow, paths: ~/.ssh}\n"),
            (Errors{"p.yaml:3:21: writable[0].paths[0]: '~/.cache/*': a mount path, not a "
                    "glob: no *, ? or [",
                    "p.yaml:3:35: writable[0].paths[1]: 'rel/dir': a mount path must be "
                    "absolute or start with ~/",
                    "p.yaml:3:44: writable[0].paths[2]: '/a/../b': no . or .. components",
                    "p.yaml:5:19: hidden[0].mode: a mount cannot be in shadow mode: use enforce "
                    "or off"}));
  auto r = corral::rules::parse_policy(
      "version: 1\nwritable: [{id: w, paths: [~/.cache]}]\nhidden: [{id: h, paths: /x}]\n",
      "p.yaml");
  ASSERT_TRUE(r.policy) << r.errors.front().str();
  EXPECT_EQ(r.policy->writable.at(0).globs, std::vector<std::string>{"~/.cache"});
  EXPECT_EQ(r.policy->hidden.at(0).globs, std::vector<std::string>{"/x"});
}

TEST(PolicyDiagnostics, WrongTypes) {
  EXPECT_EQ(errors_of("version: 1\n"
                      "exec:\n"
                      "  - {id: a, binary: x}\n"
                      "  - {id: b, binary: y}\n"
                      "  - id: c\n"
                      "    binary: git\n"
                      "    args: push\n"),
            Errors{"p.yaml:7:11: exec[2].args: expected a list of strings"});
  EXPECT_EQ(errors_of("version: 1\nexec: {id: a}\n"),
            Errors{"p.yaml:2:7: exec: expected a list of rules"});
  EXPECT_EQ(errors_of("version: 1\nsecrets: [{id: a, paths: {x: 1}}]\n"),
            Errors{"p.yaml:2:26: secrets[0].paths: expected a string or a list of strings"});
  EXPECT_EQ(errors_of("version: 1\nsecrets: [{id: a, paths: [/a, [/b]]}]\n"),
            Errors{"p.yaml:2:31: secrets[0].paths[1]: expected a string"});
  EXPECT_EQ(errors_of("version: 1\nexec: [{id: [a], binary: x}]\n"),
            Errors{"p.yaml:2:13: exec[0].id: expected a string"});
  EXPECT_EQ(errors_of("version: 1\nexec: [{id: a, binary: x, args: [p, {q: 1}]}]\n"),
            Errors{"p.yaml:2:37: exec[0].args[1]: expected a string"});
  EXPECT_EQ(errors_of("- version: 1\n"),
            Errors{"p.yaml:1:1: a policy is a mapping with keys version, extends, secrets, "
                   "protected, exec, egress, writable, hidden"});
  EXPECT_EQ(errors_of("version: 1\negress: [a]\n"),
            Errors{"p.yaml:2:9: egress: expected a mapping with keys default, allow"});
  EXPECT_EQ(errors_of("version: 1\nsecrets: [{id: a, paths: []}]\n"),
            Errors{"p.yaml:2:26: secrets[0].paths: empty list"});
}

TEST(PolicyDiagnostics, Ids) {
  EXPECT_EQ(errors_of("version: 1\nsecrets:\n  - paths: /x\n"),
            Errors{"p.yaml:3:5: secrets[0]: missing key 'id'"});
  EXPECT_EQ(errors_of("version: 1\nsecrets:\n  - {id: Dotenv, paths: /x}\n"),
            Errors{"p.yaml:3:10: secrets[0].id: bad id 'Dotenv': expected [a-z0-9][a-z0-9._-]*, "
                   "at most 128 characters"});
  EXPECT_EQ(errors_of("version: 1\nsecrets:\n  - {id: -x, paths: /x}\n").size(), 1u);
  EXPECT_EQ(errors_of("version: 1\nsecrets:\n  - {id: \"a b\", paths: /x}\n").size(), 1u);
  // Unique across the whole policy, not per section.
  EXPECT_EQ(errors_of("version: 1\n"
                      "secrets:\n"
                      "  - {id: same, paths: /x}\n"
                      "exec:\n"
                      "  - {id: ok, binary: a}\n"
                      "  - {id: same, binary: b}\n"),
            Errors{"p.yaml:6:10: exec[1].id: duplicate id 'same' (first defined at line 3, "
                   "secrets[0])"});
}

TEST(PolicyDiagnostics, Mode) {
  EXPECT_EQ(errors_of("version: 1\nexec:\n  - {id: a, binary: x, mode: block}\n"),
            Errors{"p.yaml:3:30: exec[0].mode: bad mode 'block': expected enforce, shadow or off"});
  Policy p = ok("version: 1\nexec:\n"
                "  - {id: a, binary: x}\n"
                "  - {id: b, binary: y, mode: shadow}\n"
                "  - {id: c, binary: z, mode: off}\n");
  ASSERT_EQ(p.exec.size(), 3u);
  EXPECT_EQ(p.exec[0].mode, Mode::kEnforce);
  EXPECT_EQ(p.exec[1].mode, Mode::kShadow);
  EXPECT_EQ(p.exec[2].mode, Mode::kOff);
  EXPECT_EQ(mode_name(Mode::kShadow), "shadow");
}

TEST(PolicyDiagnostics, BadGlobPointsAtTheOffendingCharacter) {
  // Plain scalar: the column of the '**' inside the component.
  EXPECT_EQ(errors_of("version: 1\nsecrets:\n  - {id: a, paths: /x/a**b}\n"),
            Errors{"p.yaml:3:24: secrets[0].paths: bad glob '/x/a**b': '**' must be a whole path "
                   "component"});
  // Quoted, in a list: past the quote.
  EXPECT_EQ(errors_of("version: 1\nsecrets:\n  - id: a\n    paths: [\"/ok\", \"/x/[ab\"]\n"),
            Errors{"p.yaml:4:24: secrets[0].paths[1]: bad glob '/x/[ab': unclosed '['"});
  EXPECT_EQ(errors_of("version: 1\nprotected:\n  - {id: a, paths: src/*.c}\n"),
            Errors{"p.yaml:3:20: protected[0].paths: bad glob 'src/*.c': glob must be absolute, "
                   "start with ~/ or **/"});
  EXPECT_EQ(errors_of("version: 1\nprotected:\n  - {id: a, paths: \"\"}\n"),
            Errors{"p.yaml:3:20: protected[0].paths: bad glob '': empty glob"});
  // A NUL written as a YAML escape: reported at the scalar, shown escaped.
  EXPECT_EQ(errors_of("version: 1\nprotected:\n  - {id: a, paths: \"/a\\0b\"}\n"),
            Errors{"p.yaml:3:23: protected[0].paths: bad glob '/a\\x00b': NUL byte in glob"});
}

TEST(PolicyDiagnostics, CidrPortsProtocolHost) {
  EXPECT_EQ(errors_of("version: 1\negress:\n  allow:\n    - {id: a, cidr: 10.0.0.0/33}\n"),
            Errors{"p.yaml:4:21: egress.allow[0].cidr: bad cidr '10.0.0.0/33': prefix must be "
                   "0..32 for IPv4"});
  EXPECT_EQ(errors_of("version: 1\negress:\n  allow:\n    - {id: a, cidr: [10.0.0.1/24]}\n"),
            Errors{"p.yaml:4:22: egress.allow[0].cidr[0]: bad cidr '10.0.0.1/24': host bits set "
                   "(did you mean 10.0.0.0/24?)"});
  EXPECT_EQ(errors_of("version: 1\negress:\n  allow:\n    - {id: a, cidr: example.com}\n"),
            Errors{"p.yaml:4:21: egress.allow[0].cidr: bad cidr 'example.com': not an IPv4 or "
                   "IPv6 address"});
  EXPECT_EQ(errors_of("version: 1\negress:\n  allow:\n    - {id: a, cidr: ::/129}\n"),
            Errors{"p.yaml:4:21: egress.allow[0].cidr: bad cidr '::/129': prefix must be 0..128 "
                   "for IPv6"});
  EXPECT_EQ(errors_of("version: 1\negress:\n  allow:\n"
                      "    - {id: a, host: x.org, ports: [0, 65536, \"100-90\", 80-x, 0443]}\n"),
            (Errors{"p.yaml:4:36: egress.allow[0].ports[0]: bad port '0': expected a number "
                    "1..65535 (no leading zero)",
                    "p.yaml:4:39: egress.allow[0].ports[1]: bad port '65536': expected a number "
                    "1..65535 (no leading zero)",
                    "p.yaml:4:46: egress.allow[0].ports[2]: bad port range '100-90': low end "
                    "above high end",
                    "p.yaml:4:56: egress.allow[0].ports[3]: bad port range '80-x': expected lo-hi, "
                    "each 1..65535",
                    "p.yaml:4:62: egress.allow[0].ports[4]: bad port '0443': expected a number "
                    "1..65535 (no leading zero)"}));
  EXPECT_EQ(errors_of("version: 1\negress:\n  allow:\n    - {id: a, host: x.org, ports: []}\n"),
            Errors{"p.yaml:4:35: egress.allow[0].ports: empty list: leave ports out to allow "
                   "every port"});
  EXPECT_EQ(errors_of("version: 1\negress:\n  allow:\n"
                      "    - {id: a, host: x.org, cidr: 10.0.0.0/8}\n"
                      "    - {id: b, ports: [443]}\n"),
            (Errors{"p.yaml:4:7: egress.allow[0]: give exactly one of host or cidr, not both",
                    "p.yaml:5:7: egress.allow[1]: missing host or cidr (exactly one is required)"}));
  EXPECT_EQ(errors_of("version: 1\negress:\n  allow:\n    - {id: a, host: x.org, protocol: icmp}\n"),
            Errors{"p.yaml:4:38: egress.allow[0].protocol: bad protocol 'icmp': expected tcp, udp "
                   "or any"});
  EXPECT_EQ(errors_of("version: 1\negress:\n  allow:\n    - {id: a, host: 10.1.2.3}\n"),
            Errors{"p.yaml:4:21: egress.allow[0].host: bad host '10.1.2.3': an address: use cidr"});
  EXPECT_EQ(errors_of("version: 1\negress:\n  allow:\n    - {id: a, host: \"*.x.org\"}\n").size(),
            1u);
  EXPECT_EQ(errors_of("version: 1\negress:\n  allow:\n    - {id: a, host: a..b}\n").size(), 1u);
  EXPECT_EQ(errors_of("version: 1\negress:\n  default: block\n"),
            Errors{"p.yaml:3:12: egress.default: bad default 'block': expected deny, allow or "
                   "shadow"});
}

TEST(PolicyDiagnostics, VersionAndExtends) {
  EXPECT_EQ(errors_of("version: 2\n"),
            Errors{"p.yaml:1:10: version: unsupported version '2' (supported: 1)"});
  EXPECT_EQ(errors_of("exec: []\n"),
            Errors{"p.yaml:1:1: missing key 'version' (this schema is version 1)"});
  EXPECT_EQ(errors_of("version: 1\nextends: strict\n"),
            Errors{"p.yaml:2:10: extends: unknown extends 'strict': expected default or none"});
  EXPECT_EQ(errors_of(""), Errors{"p.yaml:1:1: empty policy: expected a mapping starting with "
                                  "'version: 1'"});
  EXPECT_EQ(errors_of("# only a comment\n").size(), 1u);
  EXPECT_TRUE(ok("version: 1\nextends: none\n").exec.empty());
}

TEST(PolicyDiagnostics, DuplicateKey) {
  EXPECT_EQ(errors_of("version: 1\nexec:\n  - id: a\n    binary: x\n    binary: y\n"),
            Errors{"p.yaml:5:5: exec[0]: duplicate key 'binary' (first at line 4)"});
}

TEST(PolicyDiagnostics, UnreachableExecRule) {
  EXPECT_EQ(errors_of("version: 1\n"
                      "exec:\n"
                      "  - {id: any-git, binary: git}\n"
                      "  - {id: git-push, binary: git, args: [push]}\n"
                      "  - {id: push-force, binary: /usr/bin/git, args: [push, --force]}\n"),
            (Errors{"p.yaml:4:5: exec[1]: exec rule 'git-push' is unreachable: earlier rule "
                    "'any-git' (p.yaml:3:5) matches every command it matches",
                    "p.yaml:5:5: exec[2]: exec rule 'push-force' is unreachable: earlier rule "
                    "'any-git' (p.yaml:3:5) matches every command it matches"}));
  // An earlier rule that is off, or that covers only some binaries or other
  // args, leaves the later one reachable.
  ok("version: 1\n"
     "exec:\n"
     "  - {id: any-git, binary: git, mode: off}\n"
     "  - {id: git-push, binary: git, args: [push]}\n"
     "  - {id: push2, binary: [git, hub], args: [push, x]}\n"
     "  - {id: abs, binary: /usr/bin/git}\n"
     "  - {id: base, binary: git, args: [pull]}\n");
  // An absolute rule does not cover a basename rule: /opt/git is also "git".
  ok("version: 1\nexec:\n  - {id: a, binary: /usr/bin/git}\n  - {id: b, binary: git}\n");
}

TEST(PolicyDiagnostics, UnreachablePathRule) {
  EXPECT_EQ(errors_of("version: 1\n"
                      "secrets:\n"
                      "  - {id: a, paths: [\"**/.env\", /x]}\n"
                      "  - {id: b, paths: /y}\n"
                      "  - {id: c, paths: [/y, \"**/.env\"]}\n"
                      "  - {id: d, paths: [/y, /z]}\n"
                      "protected:\n"
                      "  - {id: e, paths: /y}\n"),
            Errors{"p.yaml:5:5: secrets[2]: secrets rule 'c' is unreachable: every glob is "
                   "already in earlier rules 'b' (p.yaml:4:5), 'a' (p.yaml:3:5)"});
}

TEST(PolicyDiagnostics, UnreachableEgressRule) {
  EXPECT_EQ(errors_of("version: 1\n"
                      "egress:\n"
                      "  allow:\n"
                      "    - {id: lan, cidr: 10.0.0.0/8, protocol: any}\n"
                      "    - {id: dns, cidr: 10.0.0.53, ports: [53], protocol: udp}\n"
                      "    - {id: web, host: x.org, ports: [\"400-500\"]}\n"
                      "    - {id: web2, host: X.org, ports: [443, 450-460]}\n"
                      "    - {id: web3, host: x.org, ports: [443, 501]}\n"
                      "    - {id: v6, cidr: \"::/0\", ports: [1-100, 101-200]}\n"
                      "    - {id: v6b, cidr: \"2001:db8::/32\", ports: [50-150]}\n"),
            (Errors{"p.yaml:5:7: egress.allow[1]: egress rule 'dns' is unreachable: earlier rule "
                    "'lan' (p.yaml:4:7) already allows all it allows",
                    "p.yaml:7:7: egress.allow[3]: egress rule 'web2' is unreachable: earlier rule "
                    "'web' (p.yaml:6:7) already allows all it allows",
                    "p.yaml:10:7: egress.allow[6]: egress rule 'v6b' is unreachable: earlier rule "
                    "'v6' (p.yaml:9:7) already allows all it allows"}));
  // Covered by a shorter prefix of a later rule's first CIDR, or only some
  // of its CIDRs covered (then it is reachable); exec through basenames.
  EXPECT_EQ(errors_of("version: 1\n"
                      "egress:\n"
                      "  allow:\n"
                      "    - {id: a, cidr: 10.128.0.0/9}\n"
                      "    - {id: b, cidr: 10.200.3.0/24}\n"
                      "    - {id: c, cidr: 10.0.0.0/24}\n"),
            (Errors{"p.yaml:5:7: egress.allow[1]: egress rule 'b' is unreachable: earlier rule "
                    "'a' (p.yaml:4:7) already allows all it allows"}));
  // udp is not covered by tcp; a host is never covered by a cidr.
  ok("version: 1\negress:\n  allow:\n"
     "    - {id: a, cidr: 0.0.0.0/0}\n"
     "    - {id: b, cidr: 1.2.3.4, protocol: udp}\n"
     "    - {id: c, host: x.org}\n");
}

TEST(PolicyDiagnostics, ReportsEveryProblemInSourceOrder) {
  Errors e = errors_of("version: 3\n"
                       "bogus: 1\n"
                       "secrets:\n"
                       "  - {id: a, paths: rel}\n"
                       "exec:\n"
                       "  - {id: a, binary: bin/x}\n"
                       "egress:\n"
                       "  allow:\n"
                       "    - {id: e, host: x.org, ports: [0]}\n");
  ASSERT_EQ(e.size(), 6u);
  EXPECT_EQ(e[0].substr(0, 12), "p.yaml:1:10:");
  EXPECT_EQ(e[1].substr(0, 11), "p.yaml:2:1:");
  EXPECT_EQ(e[2].substr(0, 12), "p.yaml:4:20:");
  EXPECT_EQ(e[3].substr(0, 12), "p.yaml:6:10:");  // duplicate id
  EXPECT_EQ(e[4].substr(0, 12), "p.yaml:6:21:");  // bad binary
  EXPECT_EQ(e[5].substr(0, 12), "p.yaml:9:36:");
}

TEST(PolicyDiagnostics, HostileShapesAreRejectedCleanly) {
  std::string deep = "version: 1\nexec: " + std::string(100, '[') + std::string(100, ']') + "\n";
  EXPECT_EQ(errors_of(deep), Errors{"p.yaml:2:70: nesting deeper than 64 levels"});
  // Far past yaml-cpp's own recursion limit: still one clean diagnostic.
  std::string deeper = "version: 1\nexec: " + std::string(200000, '[') + "\n";
  EXPECT_EQ(errors_of(deeper).size(), 1u);
  std::string block = "version: 1\nx:\n";
  for (int i = 0; i < 100; ++i) block += std::string(static_cast<size_t>(i + 1), ' ') + "- \n";
  EXPECT_EQ(errors_of(block).size(), 1u);
  EXPECT_EQ(errors_of("version: 1\nsecrets: &s [{id: a, paths: /x}]\nprotected: *s\n"),
            Errors{"p.yaml:3:12: aliases (*name) are not supported: write the value out"});
  EXPECT_EQ(errors_of("version: 1\n---\nversion: 1\n"),
            Errors{"p.yaml:2:1: more than one YAML document: a policy is one document"});
  EXPECT_EQ(errors_of("version: 1\n#" + std::string(kMaxPolicyBytes, 'x') + "\n"),
            Errors{"p.yaml:0:0: policy is larger than 1 MiB"});
  std::string many = "version: 1\nexec:\n";
  for (int i = 0; i < 500; ++i) many += "  - {id: \"X\", binary: a}\n";
  Errors e = errors_of(many);
  ASSERT_EQ(e.size(), kMaxDiagnostics + 1);
  EXPECT_EQ(e.back(), "p.yaml:0:0: 300 more problems not shown");
}

TEST(PolicyDiagnostics, NonStringKey) {
  EXPECT_EQ(errors_of("version: 1\n[a]: 1\n"), Errors{"p.yaml:2:1: keys must be strings"});
}

// ---- files, default, extends ------------------------------------------------

std::string write_temp(const std::string& text) {
  char name[] = "/tmp/corral-policy-XXXXXX";
  int fd = mkstemp(name);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  close(fd);
  return name;
}

TEST(PolicyFile, UnreadableFile) {
  LoadResult r = load_policy_file("/nonexistent/policy.yaml");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_FALSE(r.policy);
  EXPECT_EQ(r.errors[0].str(), "/nonexistent/policy.yaml:0:0: cannot read: No such file or directory");
  EXPECT_EQ(load_policy_file("/tmp").errors[0].str(), "/tmp:0:0: cannot read: Is a directory");
  // Endless input stops at the size limit.
  EXPECT_EQ(load_policy_file("/dev/zero").errors[0].str(),
            "/dev/zero:0:0: policy is larger than 1 MiB");
}

TEST(PolicyFile, CheckPrintsDiagnosticsOrSummary) {
  std::string bad = write_temp("version: 1\nexec:\n  - {id: a, binary: x, mode: no}\n  - {id: B}\n");
  std::ostringstream out, err;
  EXPECT_EQ(policy_check(bad, out, err), 1);
  EXPECT_EQ(out.str(), "");
  EXPECT_EQ(err.str(), bad + ":3:30: exec[0].mode: bad mode 'no': expected enforce, shadow or off\n" +
                           bad + ":4:5: exec[1]: missing key 'binary'\n" + bad +
                           ":4:10: exec[1].id: bad id 'B': expected [a-z0-9][a-z0-9._-]*, at most "
                           "128 characters\n");
  std::string good = write_temp("version: 1\n"
                                "secrets: [{id: s, paths: [/a, /b]}]\n"
                                "exec: [{id: x, binary: x, mode: shadow}]\n"
                                "egress: {default: allow}\n");
  std::ostringstream out2, err2;
  EXPECT_EQ(policy_check(good, out2, err2), 0);
  EXPECT_EQ(err2.str(), "");
  EXPECT_EQ(out2.str(), "policy ok: 1 secret rules (2 globs), 0 protected (0 globs), 1 exec, 0 "
                        "egress allow (default allow), 0 writable, 0 hidden; 1 in shadow mode, "
                        "0 off\n");
  unlink(bad.c_str());
  unlink(good.c_str());
}

TEST(DefaultPolicy, LoadsWithoutErrors) {
  LoadResult r = load_default_policy();
  for (const auto& d : r.errors) ADD_FAILURE() << d.str();
  ASSERT_TRUE(r.policy);
  const Policy& p = *r.policy;
  EXPECT_EQ(p.sources, std::vector<std::string>{"<default>"});
  EXPECT_FALSE(p.egress_default_allow);
  EXPECT_GE(p.secrets.size(), 15u);
  EXPECT_GE(p.protected_paths.size(), 5u);
  EXPECT_GE(p.exec.size(), 4u);
  EXPECT_EQ(p.egress.size(), 18u);
  for (const auto& e : p.egress) {
    EXPECT_FALSE(e.host.empty()) << e.id;
    EXPECT_EQ(e.protocol, Protocol::kTcp) << e.id;
  }
  EXPECT_EQ(p.egress.back().id, "debian-mirror");
  ASSERT_EQ(p.egress.back().ports.size(), 2u);
  EXPECT_EQ(p.egress.back().loc.file, "<default>");
}

TEST(DefaultPolicy, EmbeddedCopyMatchesTheSourceFile) {
  std::ifstream in(default_policy_path());
  ASSERT_TRUE(in) << default_policy_path();
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_EQ(ss.str(), default_policy_text());
  // The file on disk parses just the same.
  LoadResult r = load_policy_file(default_policy_path());
  for (const auto& d : r.errors) ADD_FAILURE() << d.str();
}

TEST(DefaultPolicy, GuardsWhatTheIssueAsks) {
  Policy p = *load_default_policy().policy;
  PathMatcher secrets(p.secrets, "/home/u");
  PathMatcher prot(p.protected_paths, "/home/u");
  for (const char* s : {"/w/.env", "/w/app/.env.local", "/home/u/.ssh/id_ed25519",
                        "/home/u/.aws/credentials", "/home/u/.config/gcloud/x/y.json",
                        "/home/u/.kube/config", "/home/u/.netrc", "/home/u/.git-credentials",
                        "/home/u/.docker/config.json", "/home/u/.gnupg/private-keys-v1.d/k.key",
                        "/home/u/.npmrc", "/home/u/.pypirc", "/etc/shadow", "/etc/gshadow",
                        "/home/u/.mozilla/firefox/ab.default/cookies.sqlite",
                        "/home/u/.config/google-chrome/Default/Login Data",
                        "/home/u/.config/chromium/Profile 1/Cookies"})
    EXPECT_NE(secrets.match(s).rule, nullptr) << s;
  for (const char* s : {"/home/u/.ssh/id_ed25519.pub", "/home/u/.ssh/known_hosts", "/w/env",
                        "/w/src/main.c", "/home/u/.config/google-chrome/Default/History"})
    EXPECT_EQ(secrets.match(s).rule, nullptr) << s;
  for (const char* s : {"/w/.git/hooks/pre-commit", "/w/.git/config", "/w/.github/workflows/ci.yml",
                        "/w/.gitlab-ci.yml", "/home/u/.bashrc", "/home/u/.ssh/authorized_keys",
                        "/etc/crontab", "/var/spool/cron/crontabs/u"})
    EXPECT_NE(prot.match(s).rule, nullptr) << s;
  EXPECT_EQ(prot.match("/w/.git/HEAD").rule, nullptr);
  EXPECT_EQ(prot.match("/w/src/config").rule, nullptr);

  auto hit = [&](std::string_view path, std::vector<std::string> argv) {
    const ExecRule* r = match_exec(p.exec, path, argv);
    return r ? r->id : "";
  };
  EXPECT_EQ(hit("/usr/bin/git", {"git", "-C", "/w", "push", "origin"}), "no-git-push");
  EXPECT_EQ(hit("/usr/bin/git", {"git", "status"}), "");
  EXPECT_EQ(hit("/usr/bin/sudo", {"sudo", "id"}), "no-privilege");
  EXPECT_EQ(hit("/usr/bin/crontab", {"crontab", "-l"}), "no-crontab");
  EXPECT_EQ(hit("/usr/bin/nc.openbsd", {"nc", "-e", "/bin/sh", "h", "1"}), "no-netcat-exec");
  EXPECT_EQ(hit("/usr/bin/nc.traditional", {"/usr/bin/nc.traditional", "-lv", "-e", "/bin/sh"}),
            "no-netcat-exec");
  EXPECT_EQ(hit("/usr/bin/ncat", {"ncat", "--sh-exec", "sh", "h"}), "no-ncat-sh-exec-long");
  EXPECT_EQ(hit("/usr/bin/nc.openbsd", {"nc", "-z", "host", "443"}), "");
}

TEST(Extends, DefaultRulesComeFirstAndSameIdReplacesInPlace) {
  Policy def = *load_default_policy().policy;
  LoadResult r = parse_policy("version: 1\n"
                              "extends: default\n"
                              "exec:\n"
                              "  - {id: no-git-push, mode: off, binary: git, args: [push]}\n"
                              "  - {id: no-rm-rf, binary: rm, args: [-rf]}\n"
                              "secrets:\n"
                              "  - {id: dotenv, mode: shadow, paths: \"**/.env\"}\n"
                              "egress:\n"
                              "  allow:\n"
                              "    - {id: corp-proxy, cidr: 10.1.0.0/16, ports: [3128]}\n",
                              "user.yaml");
  for (const auto& d : r.errors) ADD_FAILURE() << d.str();
  ASSERT_TRUE(r.policy);
  const Policy& p = *r.policy;
  EXPECT_EQ(p.sources, (std::vector<std::string>{"<default>", "user.yaml"}));
  ASSERT_EQ(p.exec.size(), def.exec.size() + 1);
  EXPECT_EQ(p.exec[0].id, "no-git-push");  // the default's position
  EXPECT_EQ(p.exec[0].mode, Mode::kOff);
  EXPECT_EQ(p.exec[0].loc.file, "user.yaml");
  EXPECT_EQ(p.exec[0].loc.line, 4);
  EXPECT_EQ(p.exec.back().id, "no-rm-rf");
  EXPECT_EQ(p.secrets.size(), def.secrets.size());
  EXPECT_EQ(p.secrets[0].mode, Mode::kShadow);
  EXPECT_EQ(p.secrets[0].globs, std::vector<std::string>{"**/.env"});
  EXPECT_EQ(p.egress.size(), def.egress.size() + 1);
  EXPECT_FALSE(p.egress_default_allow);
  // Turned off: git push no longer hits a rule.
  EXPECT_EQ(match_exec(p.exec, "/usr/bin/git", {"git", "push"}), nullptr);

  EXPECT_TRUE(ok("version: 1\nextends: default\negress: {default: allow}\n").egress_default_allow);
  auto shadow = ok("version: 1\nextends: default\negress: {default: shadow}\n");
  EXPECT_FALSE(shadow.egress_default_allow);
  EXPECT_TRUE(shadow.egress_default_shadow);
  EXPECT_NE(summary(shadow).find("(default shadow)"), std::string::npos) << summary(shadow);
}

TEST(Extends, ProblemsAcrossTheMerge) {
  // An override changing section, and a rule the default already covers.
  LoadResult r = parse_policy("version: 1\n"
                              "extends: default\n"
                              "exec:\n"
                              "  - {id: dotenv, binary: cat}\n"
                              "  - {id: push-force, binary: git, args: [push, --force]}\n",
                              "user.yaml");
  ASSERT_EQ(r.errors.size(), 2u);
  EXPECT_FALSE(r.policy);
  EXPECT_TRUE(r.errors[0].str().starts_with(
      "user.yaml:4:10: exec[0].id: id 'dotenv' names a default secrets rule (<default>:"))
      << r.errors[0].str();
  EXPECT_TRUE(r.errors[1].str().starts_with(
      "user.yaml:5:5: exec[1]: exec rule 'push-force' is unreachable: earlier rule 'no-git-push' "
      "(<default>:"))
      << r.errors[1].str();
  // Without extends, the same rules are fine.
  ok("version: 1\nexec:\n  - {id: dotenv, binary: cat}\n"
     "  - {id: push-force, binary: git, args: [push, --force]}\n");
}

TEST(Extends, FromAFile) {
  std::string path = write_temp("version: 1\nextends: default\n");
  LoadResult r = load_policy_file(path);
  ASSERT_TRUE(r.policy);
  EXPECT_EQ(r.policy->sources, (std::vector<std::string>{"<default>", path}));
  EXPECT_EQ(r.policy->exec.size(), load_default_policy().policy->exec.size());
  unlink(path.c_str());
}

// ---- globs --------------------------------------------------------------------

bool glob_matches(const std::string& glob, std::string_view path, const std::string& home = "/home/u") {
  return GlobSet({glob}, home).any(path);
}

TEST(Glob, StarStaysInOneComponent) {
  EXPECT_TRUE(glob_matches("/a/*.c", "/a/x.c"));
  EXPECT_TRUE(glob_matches("/a/*.c", "/a/.c"));
  EXPECT_FALSE(glob_matches("/a/*.c", "/a/b/x.c"));
  EXPECT_FALSE(glob_matches("/a/*", "/a"));
  EXPECT_TRUE(glob_matches("/a/*", "/a/b"));
}

TEST(Glob, QuestionMarkIsOneCharacter) {
  EXPECT_TRUE(glob_matches("/a/?.c", "/a/x.c"));
  EXPECT_FALSE(glob_matches("/a/?.c", "/a/xy.c"));
  EXPECT_FALSE(glob_matches("/a?b", "/a/b"));
}

TEST(Glob, Classes) {
  EXPECT_TRUE(glob_matches("/f[abc]", "/fb"));
  EXPECT_FALSE(glob_matches("/f[abc]", "/fd"));
  EXPECT_TRUE(glob_matches("/f[a-c0-9]", "/f7"));
  EXPECT_TRUE(glob_matches("/f[!x]", "/fy"));
  EXPECT_FALSE(glob_matches("/f[!x]", "/fx"));
  EXPECT_FALSE(glob_matches("/a[!x]b", "/a/b")) << "a negated class never matches '/'";
  EXPECT_TRUE(glob_matches("/f[]]", "/f]"));
  EXPECT_TRUE(glob_matches("/f[a-]", "/f-"));
  EXPECT_TRUE(glob_matches("/f[\\]x]", "/f]"));
  EXPECT_TRUE(glob_matches("/f[.^$]", "/f^"));
  EXPECT_EQ(glob_error("/f[z-a]"), "bad range 'z-a' in class");
  EXPECT_EQ(glob_error("/f[a/b]"), "unclosed '['");
  EXPECT_EQ(glob_error("/f[é]"), "non-ASCII character in a class");
}

TEST(Glob, DoubleStarIsZeroOrMoreComponents) {
  EXPECT_TRUE(glob_matches("/a/**/b", "/a/b"));
  EXPECT_TRUE(glob_matches("/a/**/b", "/a/x/y/b"));
  EXPECT_FALSE(glob_matches("/a/**/b", "/a/xb"));
  EXPECT_TRUE(glob_matches("/a/**", "/a"));
  EXPECT_TRUE(glob_matches("/a/**", "/a/x/y"));
  EXPECT_FALSE(glob_matches("/a/**", "/ab"));
  EXPECT_TRUE(glob_matches("/**", "/"));
  EXPECT_TRUE(glob_matches("/**", "/etc/passwd"));
  EXPECT_EQ(glob_error("/a/**b"), "'**' must be a whole path component");
  EXPECT_EQ(glob_error("/a/b**"), "'**' must be a whole path component");
  EXPECT_EQ(glob_error("/a/***"), "'**' must be a whole path component");
}

TEST(Glob, AnywherePrefix) {
  EXPECT_TRUE(glob_matches("**/.env", "/.env"));
  EXPECT_TRUE(glob_matches("**/.env", "/w/p/.env"));
  EXPECT_FALSE(glob_matches("**/.env", "/w/p/x.env"));
  EXPECT_FALSE(glob_matches("**/.env", "/w/p/.env/x"));
  EXPECT_TRUE(glob_matches("**/.git/hooks/**", "/r/.git/hooks"));
  EXPECT_TRUE(glob_matches("**/.git/hooks/**", "/r/.git/hooks/pre-push"));
  EXPECT_EQ(glob_error("src/*.c"), "glob must be absolute, start with ~/ or **/");
  EXPECT_EQ(glob_error("**"), "glob must be absolute, start with ~/ or **/");
  EXPECT_EQ(glob_error("*/x"), "glob must be absolute, start with ~/ or **/");
}

TEST(Glob, HomeDirectory) {
  EXPECT_TRUE(glob_matches("~/.netrc", "/home/u/.netrc"));
  EXPECT_FALSE(glob_matches("~/.netrc", "/home/v/.netrc"));
  EXPECT_FALSE(glob_matches("~/.netrc", "/home/u2/.netrc"));
  EXPECT_TRUE(glob_matches("~/.netrc", "/home/u.x/.netrc", "/home/u.x"));
  EXPECT_FALSE(glob_matches("~/.netrc", "/home/uax/.netrc", "/home/u.x")) << "home is literal";
  EXPECT_TRUE(glob_matches("~/.netrc", "/home/u/.netrc", "/home/u/"));
  EXPECT_TRUE(glob_matches("~/.netrc", "/.netrc", "/"));
  EXPECT_TRUE(glob_matches("~/**", "/home/u"));
  EXPECT_THROW(GlobSet({"~/.netrc"}, ""), std::invalid_argument);
  EXPECT_THROW(GlobSet({"~/.netrc"}, "home/u"), std::invalid_argument);
  EXPECT_EQ(glob_error("~"), "'~' must be followed by '/'");
  EXPECT_EQ(glob_error("~root/.ssh"), "'~user' is not supported: use '~/' or an absolute path");
}

TEST(Glob, MetacharactersAreLiteral) {
  EXPECT_TRUE(glob_matches("/a/x+y(1).c", "/a/x+y(1).c"));
  EXPECT_FALSE(glob_matches("/a/x.c", "/a/xyc"));
  EXPECT_TRUE(glob_matches("/a/\\*", "/a/*"));
  EXPECT_FALSE(glob_matches("/a/\\*", "/a/b"));
  EXPECT_TRUE(glob_matches("/a/Login Data", "/a/Login Data"));
  EXPECT_TRUE(glob_matches("/caf\xc3\xa9/*", "/caf\xc3\xa9/x"));
  EXPECT_TRUE(glob_matches("/a/*", "/a/\xff\xfe")) << "paths are bytes, not UTF-8";
  EXPECT_TRUE(glob_matches("/a/*", "/a/x\ny"));
  EXPECT_EQ(glob_error("/a\\"), "trailing '\\' escapes nothing");
}

TEST(Glob, InvalidGlobs) {
  EXPECT_EQ(glob_error(""), "empty glob");
  EXPECT_EQ(glob_error("/a//b"), "empty path component ('//' or a trailing '/')");
  EXPECT_EQ(glob_error("/a/"), "empty path component ('//' or a trailing '/')");
  EXPECT_EQ(glob_error("/a/../b"), "'.' and '..' components never match a normalised path");
  EXPECT_EQ(glob_error("/a\0b"s), "NUL byte in glob");
  auto e = check_glob("/ok/a**b");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->offset, 5u);
  EXPECT_EQ(check_glob("/ok/[ab")->offset, 4u);
  EXPECT_FALSE(glob_error("/"));
  EXPECT_THROW(GlobSet({"/ok", "rel"}, "/h"), std::invalid_argument);
  EXPECT_THROW(glob_to_regex("/a**", "/h"), std::invalid_argument);
}

TEST(Glob, RegexIsAnchoredAndBytewise) {
  EXPECT_EQ(glob_to_regex("/a/*.c", "/h"), "/a/[^/]*\\x{2e}c");
  EXPECT_EQ(glob_to_regex("**/x", "/h"), "(?:/[^/]+)*/x");
  EXPECT_EQ(glob_to_regex("~/x", "/h"), "\\x{2f}h/x");
  EXPECT_EQ(glob_to_regex("/[!a]", "/h"), "/[^a/]");
}

TEST(Glob, MatchesNormalisedPathsOnly) {
  GlobSet s({"/etc/shadow"}, "/h");
  EXPECT_TRUE(s.any("/etc/../etc/./shadow"));
  EXPECT_TRUE(s.any("//etc//shadow"));
  EXPECT_FALSE(s.any("etc/shadow"));
  EXPECT_FALSE(s.any(""));
}

TEST(GlobSet, ReturnsEveryMatchingIndexAscending) {
  GlobSet s({"/a/*", "/b/*", "**/x", "/a/x"}, "/h");
  EXPECT_EQ(s.size(), 4u);
  EXPECT_EQ(s.match("/a/x"), (std::vector<int>{0, 2, 3}));
  EXPECT_EQ(s.match("/b/y"), (std::vector<int>{1}));
  EXPECT_TRUE(s.match("/c/y").empty());
  GlobSet empty({}, "/h");
  EXPECT_FALSE(empty.any("/a"));
}

TEST(GlobSet, TenThousandGlobs) {
  std::vector<std::string> globs;
  for (int i = 0; i < 10000; ++i) {
    switch (i % 4) {
      case 0: globs.push_back("/data/d" + std::to_string(i) + "/*.key"); break;
      case 1: globs.push_back("**/secret-" + std::to_string(i)); break;
      case 2: globs.push_back("~/cfg/f" + std::to_string(i) + "/**"); break;
      default: globs.push_back("/srv/s[0-9]/n" + std::to_string(i) + "?"); break;
    }
  }
  GlobSet s(globs, "/home/u");
  EXPECT_EQ(s.size(), 10000u);
  EXPECT_EQ(s.match("/data/d4000/a.key"), std::vector<int>{4000});
  EXPECT_EQ(s.match("/x/y/secret-9997"), std::vector<int>{9997});
  EXPECT_EQ(s.match("/home/u/cfg/f9998/a/b"), std::vector<int>{9998});
  EXPECT_EQ(s.match("/home/u/cfg/f9998"), std::vector<int>{9998});
  EXPECT_EQ(s.match("/srv/s7/n9999z"), std::vector<int>{9999});
  EXPECT_TRUE(s.match("/data/d4000/a.pem").empty());
  EXPECT_TRUE(s.match("/data/d4001/a.key").empty());
  EXPECT_TRUE(s.match("/x/secret-9996").empty());
  EXPECT_TRUE(s.match("/srv/sx/n9999z").empty());
  // Every glob, checked against its own path and a neighbour's.
  for (int i = 0; i < 10000; i += 97) {
    std::string path;
    switch (i % 4) {
      case 0: path = "/data/d" + std::to_string(i) + "/k.key"; break;
      case 1: path = "/a/secret-" + std::to_string(i); break;
      case 2: path = "/home/u/cfg/f" + std::to_string(i) + "/z"; break;
      default: path = "/srv/s1/n" + std::to_string(i) + "q"; break;
    }
    EXPECT_EQ(s.match(path), std::vector<int>{i}) << path;
  }
}

TEST(PathMatcher, FirstActiveRuleInOrder) {
  std::vector<PathRule> rules = {
      {"off", Mode::kOff, {"/a/**"}, {}},
      {"shadow", Mode::kShadow, {"/a/b/*", "/z"}, {}},
      {"enforce", Mode::kEnforce, {"/a/**"}, {}},
  };
  PathMatcher m(rules, "/h");
  ASSERT_NE(m.match("/a/b/c").rule, nullptr);
  EXPECT_EQ(m.match("/a/b/c").rule->id, "shadow");
  EXPECT_EQ(m.match("/z").rule->id, "shadow");
  EXPECT_EQ(m.match("/a/x").rule->id, "enforce");
  EXPECT_EQ(m.match("/b").rule, nullptr);
  PathMatcher none({{"off", Mode::kOff, {"/**"}, {}}}, "/h");
  EXPECT_EQ(none.match("/a").rule, nullptr);
}

// ---- exec ------------------------------------------------------------------------

ExecRule exec_rule(std::vector<std::string> bins, std::vector<std::string> args,
                   Mode mode = Mode::kEnforce, std::string id = "r") {
  return ExecRule{std::move(id), mode, std::move(bins), std::move(args), {}};
}

TEST(ExecMatch, ArgsArePrefixAfterLeadingOptions) {
  ExecRule push = exec_rule({"git"}, {"push"});
  auto m = [&](std::vector<std::string> argv) { return exec_rule_matches(push, "/usr/bin/git", argv); };
  EXPECT_TRUE(m({"git", "push"}));
  EXPECT_TRUE(m({"git", "push", "--force", "origin"}));
  EXPECT_TRUE(m({"git", "-C", "/repo", "push"}));
  EXPECT_TRUE(m({"git", "--no-pager", "-c", "k=v", "push"}));
  EXPECT_TRUE(m({"git", "-ck=v", "push"}));
  EXPECT_FALSE(m({"git", "status"}));
  EXPECT_FALSE(m({"git", "log", "push"})) << "only the first non-option token counts";
  EXPECT_FALSE(m({"git", "-C", "push"})) << "'push' is -C's value here";
  EXPECT_FALSE(m({"git"}));
  EXPECT_FALSE(m({"git", "pushx"}));

  ExecRule force = exec_rule({"git"}, {"push", "--force"});
  EXPECT_TRUE(exec_rule_matches(force, "/usr/bin/git", {"git", "push", "--force", "o"}));
  EXPECT_FALSE(exec_rule_matches(force, "/usr/bin/git", {"git", "push", "o", "--force"}));
  EXPECT_FALSE(exec_rule_matches(force, "/usr/bin/git", {"git", "push"}));

  ExecRule all = exec_rule({"git"}, {});
  EXPECT_TRUE(exec_rule_matches(all, "/usr/bin/git", {"git"}));
  EXPECT_TRUE(exec_rule_matches(all, "/usr/bin/git", {}));
}

TEST(ExecMatch, OptionRuleMatchesAmongLeadingOptions) {
  ExecRule e = exec_rule({"nc"}, {"-e"});
  EXPECT_TRUE(exec_rule_matches(e, "/usr/bin/nc", {"nc", "-e", "/bin/sh", "h", "1"}));
  EXPECT_TRUE(exec_rule_matches(e, "/usr/bin/nc", {"nc", "-v", "-e", "/bin/sh"}));
  EXPECT_FALSE(exec_rule_matches(e, "/usr/bin/nc", {"nc", "h", "-e"})) << "after the first operand";
  EXPECT_FALSE(exec_rule_matches(e, "/usr/bin/nc", {"nc", "-ve", "/bin/sh"})) << "documented limit";
}

TEST(ExecMatch, ShellIsNotTheCommandItRuns) {
  ExecRule push = exec_rule({"git"}, {"push"});
  EXPECT_FALSE(exec_rule_matches(push, "/usr/bin/dash", {"sh", "-c", "git push"}));
  EXPECT_FALSE(exec_rule_matches(push, "/usr/bin/bash", {"bash", "-c", "git push"}));
}

TEST(ExecMatch, BasenameRuleMatchesArgv0OrResolvedPath) {
  ExecRule nc = exec_rule({"nc"}, {});
  // argv[0] basename: the alternatives symlink resolves to nc.openbsd.
  EXPECT_TRUE(exec_rule_matches(nc, "/usr/bin/nc.openbsd", {"nc", "h"}));
  EXPECT_TRUE(exec_rule_matches(nc, "/usr/bin/nc.openbsd", {"/usr/bin/nc", "h"}));
  // Resolved basename: argv[0] can be anything the caller wants.
  EXPECT_TRUE(exec_rule_matches(nc, "/opt/bin/nc", {"innocent", "h"}));
  EXPECT_FALSE(exec_rule_matches(nc, "/usr/bin/nc.openbsd", {"nc.openbsd", "h"}));
  EXPECT_FALSE(exec_rule_matches(nc, "/usr/bin/ncat", {"ncat"}));
}

TEST(ExecMatch, AbsoluteRuleMatchesThatPathOnly) {
  ExecRule git = exec_rule({"/usr/bin/git"}, {"push"});
  EXPECT_TRUE(exec_rule_matches(git, "/usr/bin/git", {"git", "push"}));
  EXPECT_TRUE(exec_rule_matches(git, "/tmp/x", {"/usr/bin/git", "push"}));
  EXPECT_FALSE(exec_rule_matches(git, "/opt/git/bin/git", {"git", "push"}));
  EXPECT_FALSE(exec_rule_matches(git, "/usr/bin/gitx", {"gitx", "push"}));
}

TEST(ExecMatch, FirstActiveRuleWins) {
  std::vector<ExecRule> rules = {
      exec_rule({"git"}, {}, Mode::kOff, "off"),
      exec_rule({"git"}, {"push"}, Mode::kShadow, "shadow-push"),
      exec_rule({"git", "hub"}, {}, Mode::kEnforce, "any"),
  };
  EXPECT_EQ(match_exec(rules, "/usr/bin/git", {"git", "push"})->id, "shadow-push");
  EXPECT_EQ(match_exec(rules, "/usr/bin/git", {"git", "pull"})->id, "any");
  EXPECT_EQ(match_exec(rules, "/usr/bin/hub", {"hub"})->id, "any");
  EXPECT_EQ(match_exec(rules, "/usr/bin/ls", {"ls"}), nullptr);
}

TEST(ExecParse, BinariesAndArgs) {
  Policy p = ok("version: 1\nexec:\n"
                "  - {id: a, binary: [git, /usr/local/bin/git], args: [\"-c\", push, \"\"]}\n");
  ASSERT_EQ(p.exec.size(), 1u);
  EXPECT_EQ(p.exec[0].binaries, (std::vector<std::string>{"git", "/usr/local/bin/git"}));
  EXPECT_EQ(p.exec[0].args, (std::vector<std::string>{"-c", "push", ""}));
  EXPECT_EQ(p.exec[0].loc.line, 3);
  EXPECT_EQ(p.exec[0].loc.column, 5);
  for (const char* bad : {"bin/git", "/usr//bin/git", "/usr/bin/", "/", "..", "\"\""}) {
    Errors e = errors_of("version: 1\nexec:\n  - {id: a, binary: " + std::string(bad) + "}\n");
    ASSERT_EQ(e.size(), 1u) << bad;
    EXPECT_TRUE(e[0].starts_with("p.yaml:3:21: exec[0].binary: bad binary ")) << e[0];
  }
}

// ---- egress values ---------------------------------------------------------------

Cidr one_cidr(const std::string& text) {
  Policy p = ok("version: 1\negress:\n  allow:\n    - {id: a, cidr: \"" + text + "\"}\n");
  if (p.egress.size() != 1 || p.egress[0].cidrs.size() != 1) return {};
  return p.egress[0].cidrs[0];
}

TEST(EgressParse, Cidrs) {
  Cidr any4 = one_cidr("0.0.0.0/0");
  EXPECT_EQ(any4.family, AF_INET);
  EXPECT_EQ(any4.prefix, 0);
  Cidr any6 = one_cidr("::/0");
  EXPECT_EQ(any6.family, AF_INET6);
  EXPECT_EQ(any6.prefix, 0);
  Cidr host4 = one_cidr("10.0.0.53");
  EXPECT_EQ(host4.prefix, 32);
  EXPECT_EQ(host4.addr[0], 10);
  EXPECT_EQ(host4.addr[3], 53);
  Cidr net6 = one_cidr("2001:db8::/32");
  EXPECT_EQ(net6.prefix, 32);
  EXPECT_EQ(net6.addr[0], 0x20);
  EXPECT_EQ(net6.addr[1], 0x01);
  EXPECT_EQ(net6.addr[2], 0x0d);
  EXPECT_EQ(net6.addr[3], 0xb8);
  EXPECT_EQ(one_cidr("::1").prefix, 128);
  EXPECT_EQ(one_cidr("192.168.1.128/25").prefix, 25);
  for (const char* bad : {"10.0.0.0/33", "10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/+8", "10.0.0/8",
                          "010.0.0.0/8", "10.0.0.0/8/8", "::/129", "fe80::1%eth0", "1.2.3.4 /32",
                          "10.0.0.1/8", "10.0.0.0/08x"}) {
    Errors e =
        errors_of("version: 1\negress:\n  allow:\n    - {id: a, cidr: \"" + std::string(bad) + "\"}\n");
    ASSERT_EQ(e.size(), 1u) << bad;
    EXPECT_TRUE(e[0].starts_with("p.yaml:4:21: egress.allow[0].cidr: bad cidr ")) << e[0];
  }
}

TEST(EgressParse, PortsAndProtocol) {
  Policy p = ok("version: 1\negress:\n  allow:\n"
                "    - {id: a, host: API.Example.com, ports: [1, 65535, \"8000-8100\", 53-53]}\n"
                "    - {id: b, cidr: [10.0.0.0/8, \"fd00::/8\"], protocol: udp, ports: 53}\n"
                "    - {id: c, host: x.org, protocol: any}\n");
  ASSERT_EQ(p.egress.size(), 3u);
  EXPECT_EQ(p.egress[0].host, "api.example.com");
  ASSERT_EQ(p.egress[0].ports.size(), 4u);
  EXPECT_EQ(p.egress[0].ports[1].lo, 65535);
  EXPECT_EQ(p.egress[0].ports[2].lo, 8000);
  EXPECT_EQ(p.egress[0].ports[2].hi, 8100);
  EXPECT_EQ(p.egress[0].protocol, Protocol::kTcp);
  EXPECT_EQ(p.egress[1].cidrs.size(), 2u);
  EXPECT_EQ(p.egress[1].protocol, Protocol::kUdp);
  ASSERT_EQ(p.egress[1].ports.size(), 1u);
  EXPECT_EQ(p.egress[1].ports[0].hi, 53);
  EXPECT_TRUE(p.egress[2].ports.empty()) << "absent = all ports";
  EXPECT_EQ(p.egress[2].protocol, Protocol::kAny);
  for (const char* bad : {"0", "65536", "100-90", "-5", "5-", "1-65536", "99999999999", "x", "1 ",
                          "0-10"}) {
    Errors e = errors_of("version: 1\negress:\n  allow:\n    - {id: a, host: x.org, ports: [\"" +
                         std::string(bad) + "\"]}\n");
    ASSERT_EQ(e.size(), 1u) << bad;
    EXPECT_TRUE(e[0].starts_with("p.yaml:4:36: egress.allow[0].ports[0]: bad port")) << e[0];
  }
}

}  // namespace
}  // namespace corral::rules
