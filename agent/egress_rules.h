// The policy's egress allowlist as the kernel matches it (bpf/egress.bpf.c):
// entries of the LPM tries egress4/egress6. Pure: name resolution goes
// through the `resolve` callback so tests need no DNS.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "event_layout.h"
#include "policy.h"

namespace corral {

struct EgressPrefix {
  int family = 0;  // AF_INET or AF_INET6
  int prefix = 0;
  std::array<uint8_t, 16> addr{};
  auto operator<=>(const EgressPrefix&) const = default;
};

struct EgressMaps {
  std::map<EgressPrefix, corral_egress_allow> prefixes;
  std::vector<std::string> unresolved;  // hosts without an address (sorted): their rules allow nothing
  uint32_t min_ttl = 0;                 // seconds until a host's answer expires; 0: no answers
};

// Addresses of `host` (A and AAAA from the system's DNS servers, with the
// smallest TTL of the answers), or from getaddrinfo (/etc/hosts and the
// like) with `fallback_ttl` when DNS has no answer.
struct Resolved {
  std::vector<rules::Cidr> addrs;
  uint32_t ttl = 0;
};
// The rule index the kernel reports for the system resolvers' DNS entries.
inline constexpr uint32_t kResolverRule = 0xffffffff;

// `resolve(host)` returns the host's addresses now (as /32 or /128) and
// their TTL;
// `resolvers` are the system's DNS servers, allowed on port 53 (tcp and udp)
// so that the names in the policy can be looked up at all. Every prefix
// gets the entries of every rule whose CIDR contains it: the kernel's trie
// returns only the longest match. Throws std::invalid_argument when more
// than CORRAL_EGRESS_ENTRIES entries apply to one prefix.
EgressMaps compile_egress_rules(const std::vector<rules::EgressRule>& rules, uint32_t gen,
                                const std::function<Resolved(const std::string&)>& resolve,
                                const std::vector<rules::Cidr>& resolvers);

Resolved resolve_host(const std::string& host, uint32_t fallback_ttl = 300);

// When to ask DNS again after a round of answers: when the shortest TTL
// runs out (not more often than every 10 s), and sooner while some host
// has no address at all, backing off from 5 s to 5 min: a host agent
// started before the network was up would otherwise deny those hosts
// until its policy is reloaded.
class DnsSchedule {
 public:
  // Seconds until the next round; 0: nothing to ask.
  uint32_t next(uint32_t min_ttl, bool unresolved);
  void reset() { retry_ = 0; }

 private:
  uint32_t retry_ = 0;
};
// The nameservers of a resolv.conf text.
std::vector<rules::Cidr> parse_resolv_conf(const std::string& text);

}  // namespace corral
