#include "enforcer.h"

#include <spdlog/spdlog.h>
#include <stdlib.h>

#include <climits>
#include <fstream>
#include <set>
#include <map>
#include <sstream>

#include "egress_rules.h"

#include "exec_rules.h"

namespace corral {
namespace {

const std::vector<std::string> kBinaryDirs = {"/usr/local/sbin", "/usr/local/bin", "/usr/sbin",
                                              "/usr/bin", "/sbin", "/bin"};

std::optional<std::string> real_path(const std::string& path) {
  char buf[PATH_MAX];
  if (!::realpath(path.c_str(), buf)) return std::nullopt;
  return std::string(buf);
}

std::vector<rules::Cidr> system_resolvers() {
  std::ifstream in("/etc/resolv.conf");
  std::stringstream text;
  text << in.rdbuf();
  return parse_resolv_conf(text.str());
}

std::string join(const std::vector<std::string>& v, const char* sep) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
  return out;
}

}  // namespace

Enforcer::Enforcer(BpfLoader& bpf, std::string path) : bpf_(bpf), path_(std::move(path)) {}

rules::LoadResult Enforcer::read(const std::string& path) {
  return path.empty() ? rules::load_default_policy() : rules::load_policy_file(path);
}

audit::PolicyLoad Enforcer::load(rules::LoadResult result) {
  audit::PolicyLoad out;
  out.set_generation(generation_);
  if (!result.policy) {
    for (const auto& d : result.errors) out.add_errors(d.str());
    return out;
  }
  auto policy = std::make_shared<const rules::Policy>(std::move(*result.policy));
  uint32_t gen = generation_ + 1;
  try {
    // Compile everything before touching the kernel: a policy the kernel
    // cannot hold is refused whole.
    ExecRuleMaps exec = compile_exec_rules(policy->exec, gen, real_path, kBinaryDirs);
    EgressMaps egress = compile_egress_rules(policy->egress, gen, known_answer(), system_resolvers());
    bpf_.load_exec_rules(std::move(exec));
    bpf_.load_egress_rules(std::move(egress), policy->egress_default_allow,
                           policy->egress_default_shadow);
  } catch (const std::exception& e) {
    // Nothing of the new policy is in force: load_exec_rules swaps last.
    out.add_errors((path_.empty() ? std::string("<default>") : path_) + ": " + e.what());
    return out;
  }
  policies_[gen] = policy;
  if (generation_ > 1) policies_.erase(generation_ - 1);
  generation_ = gen;
  dns_.reset();  // the new policy's hosts get the quick retries too
  out.set_generation(gen);
  out.set_accepted(true);
  for (const auto& s : policy->sources) out.add_sources(s);
  out.set_summary(rules::summary(*policy));
  return out;
}

std::function<Resolved(const std::string&)> Enforcer::known_answer() const {
  return [this](const std::string& host) {
    auto it = answers_.find(host);
    return it == answers_.end() ? Resolved{} : it->second;
  };
}

std::vector<std::string> Enforcer::hosts() const {
  std::set<std::string> out;
  if (loaded())
    for (const auto& r : policy().egress)
      if (!r.host.empty() && r.mode != rules::Mode::kOff) out.insert(r.host);
  return {out.begin(), out.end()};
}

void Enforcer::apply_answers(std::map<std::string, Resolved> answers) {
  if (!loaded()) return;
  for (auto& [host, res] : answers)
    if (!res.addrs.empty()) answers_[host] = std::move(res);  // keep the last good answer
  refresh_egress(true);
}

void Enforcer::resolvers_changed() {
  dns_.reset();  // a network that just came up: the hosts get the quick retries again
  if (loaded()) refresh_egress(false);
}

void Enforcer::refresh_egress(bool after_answers) {
  const rules::Policy& p = policy();
  try {
    EgressMaps egress = compile_egress_rules(p.egress, generation_, known_answer(), system_resolvers());
    if (after_answers) refresh_seconds_ = dns_.next(egress.min_ttl, !egress.unresolved.empty());
    if (after_answers && egress.unresolved != unresolved_) {
      if (egress.unresolved.empty())
        spdlog::info("egress: every host the policy names has an address now");
      else
        spdlog::warn("egress: {} host(s) the policy names did not resolve, so their rules allow "
                     "nothing yet (asking again in {} s): {}",
                     egress.unresolved.size(), refresh_seconds_, join(egress.unresolved, ", "));
      unresolved_ = egress.unresolved;
    }
    bpf_.load_egress_rules(std::move(egress), p.egress_default_allow, p.egress_default_shadow);
  } catch (const std::exception& e) {
    // the previous allowlist stays in force
    spdlog::warn("egress refresh failed: {}", e.what());
  }
}

void Enforcer::describe(audit::Record& record) const {
  auto* d = record.mutable_decision();
  auto it = policies_.find(d->policy_generation());
  if (record.has_exec() && it != policies_.end() && d->rule_index() < it->second->exec.size()) {
    const rules::ExecRule& rule = it->second->exec[d->rule_index()];
    d->set_rule(rule.id);
    d->set_reason("exec of " + join(rule.binaries, "|") +
                  (rule.args.empty() ? "" : " with args " + join(rule.args, " ")));
    return;
  }
  d->set_rule("unknown");
  d->set_reason("rule " + std::to_string(d->rule_index()) + " of policy generation " +
                std::to_string(d->policy_generation()) + ", no longer known");
}

}  // namespace corral
