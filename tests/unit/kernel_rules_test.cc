// The policy as the kernel maps hold it: exec rules by name, egress by
// prefix. Pure: file and DNS lookups are stubbed.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstring>

#include "egress_rules.h"
#include "exec_rules.h"

using namespace std::string_literals;

namespace corral {
namespace {

rules::ExecRule exec_rule(std::string id, std::vector<std::string> bins, std::vector<std::string> args,
                          rules::Mode mode = rules::Mode::kEnforce) {
  rules::ExecRule r;
  r.id = std::move(id);
  r.binaries = std::move(bins);
  r.args = std::move(args);
  r.mode = mode;
  return r;
}

std::optional<std::string> fake_fs(const std::string& p) {
  if (p == "/usr/bin/nc") return "/usr/bin/nc.openbsd";  // an alternatives symlink
  if (p == "/usr/bin/git") return "/usr/bin/git";
  if (p == "/bin/git") return "/usr/bin/git";
  return std::nullopt;
}

TEST(ExecRules, NamesTokensAndAliases) {
  auto maps = compile_exec_rules({exec_rule("no-push", {"git"}, {"push"}),
                                  exec_rule("no-nc-e", {"nc"}, {"-e"}),
                                  exec_rule("off", {"ls"}, {}, rules::Mode::kOff),
                                  exec_rule("shadow", {"id"}, {}, rules::Mode::kShadow)},
                                 3, fake_fs, {"/usr/bin", "/bin"});
  ASSERT_TRUE(maps.names.count("git"));
  EXPECT_EQ(maps.names["git"].count, 1u);
  EXPECT_EQ(maps.names["git"].policy_gen, 3u);
  EXPECT_EQ(maps.names["git"].rules[0].ntokens, 1);
  EXPECT_EQ(exec_rule_index(maps.names["git"].rules[0].rule_index), 0u);
  EXPECT_TRUE(maps.names.count("nc"));
  EXPECT_TRUE(maps.names.count("nc.openbsd")) << "what `nc` resolves to is covered";
  EXPECT_FALSE(maps.names.count("ls")) << "mode off stays out of the kernel";
  EXPECT_EQ(maps.names["id"].rules[0].mode, CORRAL_MODE_SHADOW);
  ASSERT_EQ(maps.tokens.size(), 2u);
  EXPECT_STREQ(maps.tokens[0].text, "push");
  EXPECT_EQ(maps.tokens[0].position, 0u);
}

TEST(ExecRules, PathRulesPinTheResolvedFile) {
  auto maps = compile_exec_rules({exec_rule("no-bin-git", {"/bin/git"}, {})}, 1, fake_fs, {});
  ASSERT_TRUE(maps.names.count("git"));
  EXPECT_EQ(maps.names["git"].rules[0].has_path, 1);
  ASSERT_EQ(maps.paths.size(), 1u);
  EXPECT_EQ(std::memcmp(maps.paths[0].components, "git\0bin\0usr\0", 12), 0);
  EXPECT_EQ(leaf_first_components("/usr/bin/../bin/git"), "git\0bin\0usr\0"s);
}

TEST(ExecRules, LongNamesAlsoMatchTheirCommPrefix) {
  auto maps = compile_exec_rules({exec_rule("long", {"docker-compose-plugin"}, {})}, 1, fake_fs, {});
  EXPECT_TRUE(maps.names.count("docker-compose-plugin"));
  EXPECT_TRUE(maps.names.count("docker-compose-"));
}

TEST(ExecRules, WhatTheKernelCannotHoldIsRefused) {
  EXPECT_THROW(compile_exec_rules({exec_rule("a", {"x"}, {"1", "2", "3", "4", "5"})}, 1, fake_fs, {}),
               std::invalid_argument);
  EXPECT_THROW(compile_exec_rules({exec_rule("a", {"x"}, {std::string(40, 'y')})}, 1, fake_fs, {}),
               std::invalid_argument);
  std::vector<rules::ExecRule> many;
  for (int i = 0; i < 9; i++) many.push_back(exec_rule("r" + std::to_string(i), {"git"}, {"s" + std::to_string(i)}));
  EXPECT_THROW(compile_exec_rules(many, 1, fake_fs, {}), std::invalid_argument);
}

rules::Cidr cidr(const char* text, int prefix) {
  rules::Cidr c;
  c.prefix = prefix;
  if (inet_pton(AF_INET, text, c.addr.data()) == 1)
    c.family = AF_INET;
  else if (inet_pton(AF_INET6, text, c.addr.data()) == 1)
    c.family = AF_INET6;
  return c;
}

rules::EgressRule egress(std::string id, std::vector<rules::Cidr> cidrs, std::vector<rules::PortRange> ports,
                         rules::Protocol proto = rules::Protocol::kTcp, std::string host = "") {
  rules::EgressRule r;
  r.id = std::move(id);
  r.cidrs = std::move(cidrs);
  r.ports = std::move(ports);
  r.protocol = proto;
  r.host = std::move(host);
  r.mode = rules::Mode::kEnforce;
  return r;
}

Resolved fake_dns(const std::string& host) {
  if (host == "api.example") return {{cidr("10.9.9.9", 32), cidr("2001:db8::9", 128)}, 60};
  if (host == "slow.example") return {{cidr("10.8.8.8", 32)}, 3600};
  if (host == "cdn.example") return {{cidr("10.7.7.7", 32)}, 0};
  return {};
}

TEST(EgressRules, LongerPrefixesCarryTheShorterOnesEntries) {
  auto maps = compile_egress_rules({egress("wide", {cidr("10.0.0.0", 8)}, {{53, 53}}, rules::Protocol::kUdp),
                                    egress("host", {cidr("10.1.2.3", 32)}, {{443, 443}})},
                                   2, fake_dns, {});
  EgressPrefix p32{AF_INET, 32, {}};
  inet_pton(AF_INET, "10.1.2.3", p32.addr.data());
  ASSERT_TRUE(maps.prefixes.count(p32));
  const auto& allow = maps.prefixes[p32];
  ASSERT_EQ(allow.count, 2u) << "the /8's udp 53 folded into the /32";
  EXPECT_EQ(allow.policy_gen, 2u);
  EgressPrefix p8{AF_INET, 8, {}};
  inet_pton(AF_INET, "10.0.0.0", p8.addr.data());
  ASSERT_TRUE(maps.prefixes.count(p8));
  EXPECT_EQ(maps.prefixes[p8].count, 1u) << "not the other way round";
  EXPECT_EQ(maps.prefixes[p8].entries[0].protocols, CORRAL_PROTO_UDP);
}

TEST(EgressRules, HostsResolveWithTheirTtlAndResolversGetDns) {
  auto maps = compile_egress_rules(
      {egress("api", {}, {}, rules::Protocol::kTcp, "api.example"),
       egress("slow", {}, {{443, 443}}, rules::Protocol::kTcp, "slow.example"),
       egress("gone", {}, {}, rules::Protocol::kTcp, "nx.example")},
      1, fake_dns, {cidr("10.255.255.53", 32)});
  EXPECT_EQ(maps.min_ttl, 60u) << "refresh on the shortest TTL";
  EXPECT_EQ(maps.prefixes.size(), 4u);  // 10.9.9.9, 2001:db8::9, 10.8.8.8, the resolver
  EXPECT_EQ(maps.unresolved, std::vector<std::string>{"nx.example"});
  EgressPrefix r{AF_INET, 32, {}};
  inet_pton(AF_INET, "10.255.255.53", r.addr.data());
  ASSERT_TRUE(maps.prefixes.count(r));
  EXPECT_EQ(maps.prefixes[r].entries[0].port_lo, 53);
  EXPECT_EQ(maps.prefixes[r].entries[0].protocols, CORRAL_PROTO_TCP | CORRAL_PROTO_UDP);
  EXPECT_EQ(maps.prefixes[r].entries[0].rule_index, kResolverRule);
  // absent ports: all of them
  EgressPrefix api{AF_INET, 32, {}};
  inet_pton(AF_INET, "10.9.9.9", api.addr.data());
  EXPECT_EQ(maps.prefixes[api].entries[0].port_lo, 1);
  EXPECT_EQ(maps.prefixes[api].entries[0].port_hi, 65535);
}

TEST(EgressRules, AnAnswerWithTtlZeroIsAskedForAgain) {
  auto maps = compile_egress_rules({egress("cdn", {}, {}, rules::Protocol::kTcp, "cdn.example")}, 1,
                                   fake_dns, {});
  EXPECT_EQ(maps.min_ttl, 1u) << "0 would mean: no answers, never ask again";
  EXPECT_EQ(DnsSchedule().next(maps.min_ttl, false), 10u);
}

TEST(EgressRules, UnresolvedHostsAreAskedForSoonerBackingOff) {
  DnsSchedule s;
  EXPECT_EQ(s.next(0, false), 0u) << "no hosts: nothing to ask";
  EXPECT_EQ(s.next(3, false), 10u) << "not more often than every 10 s";
  EXPECT_EQ(s.next(600, false), 600u);
  // no answer at all (started offline): 5 s, doubling, up to 5 min
  EXPECT_EQ(s.next(0, true), 5u);
  EXPECT_EQ(s.next(0, true), 10u);
  EXPECT_EQ(s.next(600, true), 20u) << "the retry, when sooner than the TTL";
  for (int i = 0; i < 10; i++) s.next(0, true);
  EXPECT_EQ(s.next(0, true), 300u);
  EXPECT_EQ(s.next(60, true), 60u) << "the TTL, when sooner than the retry";
  EXPECT_EQ(s.next(600, false), 600u) << "all answered: the backoff is over";
  EXPECT_EQ(s.next(0, true), 5u) << "and starts over";
  s.next(0, true);
  s.reset();
  EXPECT_EQ(s.next(0, true), 5u) << "a new policy starts over";
}

TEST(EgressRules, TooManyEntriesForOnePrefixIsRefused) {
  std::vector<rules::PortRange> ports;
  for (uint16_t p = 1; p <= 9; p++) ports.push_back({p, p});
  EXPECT_THROW(compile_egress_rules({egress("many", {cidr("10.0.0.1", 32)}, ports)}, 1, fake_dns, {}),
               std::invalid_argument);
}

TEST(EgressRules, ResolvConf) {
  auto ns = parse_resolv_conf("# comment\nnameserver 10.0.0.2\nsearch x\nnameserver ::1\nnameserver bogus\n");
  ASSERT_EQ(ns.size(), 2u);
  EXPECT_EQ(ns[0].family, AF_INET);
  EXPECT_EQ(ns[1].family, AF_INET6);
}

}  // namespace
}  // namespace corral
