#include "egress_rules.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <resolv.h>
#include <sys/socket.h>

#include <algorithm>
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
                                const std::function<Resolved(const std::string&)>& resolve,
                                const std::vector<rules::Cidr>& resolvers) {
  EgressMaps out;
  std::vector<Item> items;
  for (size_t i = 0; i < rules.size(); i++) {
    const rules::EgressRule& r = rules[i];
    if (r.mode == rules::Mode::kOff) continue;
    std::vector<rules::Cidr> cidrs = r.cidrs;
    if (!r.host.empty()) {
      Resolved res = resolve(r.host);
      if (res.addrs.empty()) out.unresolved.push_back(r.host);
      cidrs.insert(cidrs.end(), res.addrs.begin(), res.addrs.end());
      // an answer with TTL 0 (some CDNs) is asked for again as soon as allowed
      uint32_t ttl = std::max<uint32_t>(res.ttl, 1);
      if (!res.addrs.empty() && (!out.min_ttl || ttl < out.min_ttl)) out.min_ttl = ttl;
    }
    std::vector<rules::PortRange> ports = r.ports;
    if (ports.empty()) ports.push_back({1, 65535});
    for (const auto& c : cidrs)
      for (const auto& pr : ports)
        items.push_back({prefix_of(c), corral_egress_entry{pr.lo, pr.hi, protocols_of(r.protocol),
                                                           {}, static_cast<uint32_t>(i)}});
  }
  std::sort(out.unresolved.begin(), out.unresolved.end());
  out.unresolved.erase(std::unique(out.unresolved.begin(), out.unresolved.end()), out.unresolved.end());
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

namespace {

// One DNS question through libresolv, for the TTL getaddrinfo hides.
void query(res_state state, const std::string& host, int type, Resolved& out) {
  unsigned char answer[4096];
  int len = res_nquery(state, host.c_str(), ns_c_in, type, answer, sizeof(answer));
  if (len <= 0) return;
  ns_msg msg;
  if (ns_initparse(answer, len, &msg) != 0) return;
  for (int i = 0; i < ns_msg_count(msg, ns_s_an); i++) {
    ns_rr rr;
    if (ns_parserr(&msg, ns_s_an, i, &rr) != 0 || ns_rr_type(rr) != type) continue;
    rules::Cidr c;
    if (type == ns_t_a && ns_rr_rdlen(rr) == 4) {
      c.family = AF_INET;
      c.prefix = 32;
      std::memcpy(c.addr.data(), ns_rr_rdata(rr), 4);
    } else if (type == ns_t_aaaa && ns_rr_rdlen(rr) == 16) {
      c.family = AF_INET6;
      c.prefix = 128;
      std::memcpy(c.addr.data(), ns_rr_rdata(rr), 16);
    } else {
      continue;
    }
    out.addrs.push_back(c);
    uint32_t ttl = ns_rr_ttl(rr);
    if (!out.ttl || ttl < out.ttl) out.ttl = ttl;
  }
}

}  // namespace

Resolved resolve_host(const std::string& host, uint32_t fallback_ttl) {
  Resolved out;
  struct __res_state state {};
  if (res_ninit(&state) == 0) {
    state.retrans = 2;  // seconds; an unanswered name costs ~4 s, not 30
    state.retry = 1;
    query(&state, host, ns_t_a, out);
    query(&state, host, ns_t_aaaa, out);
    res_nclose(&state);
  }
  if (!out.addrs.empty()) return out;

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
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
    out.addrs.push_back(c);
  }
  freeaddrinfo(res);
  if (!out.addrs.empty()) out.ttl = fallback_ttl;
  return out;
}

uint32_t DnsSchedule::next(uint32_t min_ttl, bool unresolved) {
  constexpr uint32_t kMinTtl = 10, kFirstRetry = 5, kMaxRetry = 300;
  retry_ = unresolved ? std::min(retry_ ? retry_ * 2 : kFirstRetry, kMaxRetry) : 0;
  uint32_t ttl = min_ttl ? std::max(min_ttl, kMinTtl) : 0;
  if (!retry_) return ttl;
  return ttl ? std::min(ttl, retry_) : retry_;
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
