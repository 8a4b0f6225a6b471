// The policy in force: loads and reloads it, puts its kernel parts in place
// (exec rules), and names the rule behind a kernel decision. A reload is
// all or nothing: a policy with any error is refused and the old one stays.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "audit.pb.h"
#include "bpf_loader.h"
#include "egress_rules.h"
#include "policy.h"

namespace corral {

class Enforcer {
 public:
  // `path` empty: the shipped default policy.
  Enforcer(BpfLoader& bpf, std::string path);

  // Loads the policy and applies it. Returns the record that says what
  // happened; on refusal the previous policy (if any) stays in force.
  audit::PolicyLoad load() { return load(read(path_)); }
  // The same in two steps: read() parses (no kernel, any thread), load()
  // compiles and applies what it read.
  static rules::LoadResult read(const std::string& path);
  audit::PolicyLoad load(rules::LoadResult result);

  bool loaded() const { return generation_ > 0; }
  uint32_t generation() const { return generation_; }
  const rules::Policy& policy() const { return *policies_.at(generation_); }

  // Hosts are resolved off the event loop (DNS may be slow or silent, and
  // the loop answers the sessions' opens): until a host's first answer
  // arrives it is simply not allowed. hosts() names what to resolve;
  // apply_answers() swaps the allowlist once answers are in, and says in
  // one line when the set of hosts without an address changes;
  // refresh_seconds() says when to ask again (DnsSchedule; 0: never).
  std::vector<std::string> hosts() const;
  void apply_answers(std::map<std::string, Resolved> answers);
  uint32_t refresh_seconds() const { return refresh_seconds_; }
  // /etc/resolv.conf changed (DHCP, a VPN): the system resolvers' DNS
  // entries of the allowlist follow it.
  void resolvers_changed();

  // Completes a kernel decision (generation + rule index) with the rule's
  // id and what it matched.
  void describe(audit::Record& record) const;

 private:
  std::function<Resolved(const std::string&)> known_answer() const;
  // Compiles the allowlist again (the answers so far, the resolvers now) and
  // swaps it in; on failure the previous one stays. After a round of
  // answers it also says when to ask again.
  void refresh_egress(bool after_answers);

  BpfLoader& bpf_;
  std::string path_;
  uint32_t generation_ = 0;
  DnsSchedule dns_;
  uint32_t refresh_seconds_ = 0;
  std::vector<std::string> unresolved_;  // as last said in the log
  std::map<std::string, Resolved> answers_;  // the latest answer per host
  // Events in flight may name the previous generation's rules.
  std::map<uint32_t, std::shared_ptr<const rules::Policy>> policies_;
};

}  // namespace corral
