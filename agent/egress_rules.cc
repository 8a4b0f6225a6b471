#include "egress_rules.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <cstring>
#include <sstream>
#include <stdexcept>

namespace corral {
namespace {

struct Item {
  EgressPrefix prefix;
  corral_egress_entry entry;
};

EgressPrefix prefix_of(const rules::Cidr& c) {
  EgressPrefix p;
  p.family = c.family;
  p.prefix = c.prefix;
  p.addr = c.addr;
  return p;
}

// Does `outer` contain `inner`?
bool contains(const EgressPrefix& outer, const EgressPrefix& inner) {
  if (outer.family != inner.family || outer.prefix > inner.prefix) return false;
  int full = outer.prefix / 8, rest = outer.prefix % 8;
  if (std::memcmp(outer.addr.data(), inner.addr.data(), full) != 0) return false;
  if (!rest) return true;
  uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (outer.addr[full] & mask) == (inner.addr[full] & mask);
}

uint8_t protocols_of(rules::Protocol p) {
  switch (p) {
    case rules::Protocol::kTcp: return CORRAL_PROTO_TCP;
    case rules::Protocol::kUdp: return CORRAL_PROTO_UDP;
    case rules::Protocol::kAny: return CORRAL_PROTO_TCP | CORRAL_PROTO_UDP;
  }
  return 0;
}

std::string prefix_text(const EgressPrefix& p) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(p.family, p.addr.data(), buf, sizeof(buf));
  return std::string(buf) + "/" + std::to_string(p.prefix);
}

}  // namespace

EgressMaps compile_egress_rules(const std::vector<rules::EgressRule>& rules, uint32_t gen,
                                const std::function<std::vector<rules::Cidr>(const std::string&)>& resolve,
                                const std::vector<rules::Cidr>& resolvers) {
  EgressMaps out;
  std::vector<Item> items;
  for (size_t i = 0; i < rules.size(); i++) {
    const rules::EgressRule& r = rules[i];
    if (r.mode == rules::Mode::kOff) continue;
    std::vector<rules::Cidr> cidrs = r.cidrs;
    if (!r.host.empty()) {
      auto addrs = resolve(r.host);
      if (addrs.empty()) out.notes.push_back("egress rule " + r.id + ": " + r.host + " did not resolve");
      cidrs.insert(cidrs.end(), addrs.begin(), addrs.end());
    }
    std::vector<rules::PortRange> ports = r.ports;
    if (ports.empty()) ports.push_back({1, 65535});
    for (const auto& c : cidrs)
      for (const auto& pr : ports)
        items.push_back({prefix_of(c), corral_egress_entry{pr.lo, pr.hi, protocols_of(r.protocol),
                                                           {}, static_cast<uint32_t>(i)}});
  }
  for (const auto& c : resolvers)
    items.push_back({prefix_of(c), corral_egress_entry{53, 53, CORRAL_PROTO_TCP | CORRAL_PROTO_UDP,
                                                       {}, kResolverRule}});

  for (const auto& item : items) {
    if (out.prefixes.count(item.prefix)) continue;
    corral_egress_allow allow{};
    allow.policy_gen = gen;
    for (const auto& other : items) {
      if (!contains(other.prefix, item.prefix)) continue;
      if (allow.count >= CORRAL_EGRESS_ENTRIES)
        throw std::invalid_argument("more than " + std::to_string(CORRAL_EGRESS_ENTRIES) +
                                    " egress allow entries apply to " + prefix_text(item.prefix));
      allow.entries[allow.count++] = other.entry;
    }
    out.prefixes.emplace(item.prefix, allow);
  }
  return out;
}

std::vector<rules::Cidr> resolve_host(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  std::vector<rules::Cidr> out;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &res) != 0) return out;
  for (addrinfo* a = res; a; a = a->ai_next) {
    rules::Cidr c;
    c.family = a->ai_family;
    if (a->ai_family == AF_INET) {
      std::memcpy(c.addr.data(), &reinterpret_cast<sockaddr_in*>(a->ai_addr)->sin_addr, 4);
      c.prefix = 32;
    } else if (a->ai_family == AF_INET6) {
      std::memcpy(c.addr.data(), &reinterpret_cast<sockaddr_in6*>(a->ai_addr)->sin6_addr, 16);
      c.prefix = 128;
    } else {
      continue;
    }
    out.push_back(c);
  }
  freeaddrinfo(res);
  return out;
}

std::vector<rules::Cidr> parse_resolv_conf(const std::string& text) {
  std::vector<rules::Cidr> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string key, addr;
    if (!(words >> key >> addr) || key != "nameserver") continue;
    rules::Cidr c;
    if (inet_pton(AF_INET, addr.c_str(), c.addr.data()) == 1) {
      c.family = AF_INET;
      c.prefix = 32;
    } else if (inet_pton(AF_INET6, addr.c_str(), c.addr.data()) == 1) {
      c.family = AF_INET6;
      c.prefix = 128;
    } else {
      continue;
    }
    out.push_back(c);
  }
  return out;
}

}  // namespace corral
