#include "exec_rules.h"

#include <cstring>
#include <stdexcept>

#include "path.h"

namespace corral {
namespace {

std::string basename_of(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

void add_to_name(ExecRuleMaps& maps, const std::string& name, const corral_exec_rule& rule,
                 uint32_t gen, const std::string& rule_id) {
  if (name.empty() || name.size() >= CORRAL_EXEC_NAME_LEN)
    throw std::invalid_argument("exec rule " + rule_id + ": binary name '" + name +
                                "' is empty or longer than " +
                                std::to_string(CORRAL_EXEC_NAME_LEN - 1) + " bytes");
  auto [it, fresh] = maps.names.try_emplace(name);
  corral_exec_rules& set = it->second;
  if (fresh) {
    std::memset(&set, 0, sizeof(set));
    set.policy_gen = gen;
  }
  for (uint32_t i = 0; i < set.count; i++)
    if (set.rules[i].rule_index == rule.rule_index) return;  // listed twice
  if (set.count >= CORRAL_EXEC_RULES_PER_NAME)
    throw std::invalid_argument("exec rule " + rule_id + ": more than " +
                                std::to_string(CORRAL_EXEC_RULES_PER_NAME) +
                                " exec rules name the binary '" + name + "'");
  set.rules[set.count++] = rule;
}

}  // namespace

std::string leaf_first_components(const std::string& absolute_path) {
  std::string norm = normalize_path(absolute_path);
  std::vector<std::string> parts;
  size_t pos = 1;
  while (pos < norm.size()) {
    size_t end = norm.find('/', pos);
    if (end == std::string::npos) end = norm.size();
    parts.push_back(norm.substr(pos, end - pos));
    pos = end + 1;
  }
  std::string out;
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
    out += *it;
    out.push_back('\0');
  }
  return out;
}

ExecRuleMaps compile_exec_rules(const std::vector<rules::ExecRule>& rules, uint32_t gen,
                                const std::function<std::optional<std::string>(const std::string&)>& resolve,
                                const std::vector<std::string>& search_dirs) {
  if (rules.size() > 0xffff) throw std::invalid_argument("more than 65535 exec rules");
  ExecRuleMaps maps;
  for (size_t index = 0; index < rules.size(); index++) {
    const rules::ExecRule& r = rules[index];
    if (r.mode == rules::Mode::kOff) continue;
    if (r.args.size() > CORRAL_EXEC_TOKENS_MAX)
      throw std::invalid_argument("exec rule " + r.id + ": more than " +
                                  std::to_string(CORRAL_EXEC_TOKENS_MAX) + " args");
    corral_exec_rule k{};
    k.rule_index = exec_rule_id(gen, static_cast<uint32_t>(index));
    k.mode = r.mode == rules::Mode::kEnforce ? CORRAL_MODE_ENFORCE : CORRAL_MODE_SHADOW;
    k.ntokens = static_cast<uint8_t>(r.args.size());

    for (size_t pos = 0; pos < r.args.size(); pos++) {
      const std::string& a = r.args[pos];
      if (a.empty() || a.size() >= CORRAL_EXEC_TOKEN_LEN)
        throw std::invalid_argument("exec rule " + r.id + ": arg '" + a +
                                    "' is empty or longer than " +
                                    std::to_string(CORRAL_EXEC_TOKEN_LEN - 1) + " bytes");
      corral_exec_token t{};
      t.rule_index = k.rule_index;
      t.position = static_cast<uint32_t>(pos);
      std::memcpy(t.text, a.data(), a.size());
      maps.tokens.push_back(t);
    }

    for (const std::string& binary : r.binaries) {
      if (!binary.empty() && binary.front() == '/') {
        // A path rule: the resolved file must be this one.
        std::string canonical = resolve(binary).value_or(normalize_path(binary));
        std::string comps = leaf_first_components(canonical);
        if (comps.size() >= CORRAL_EXEC_PATH_LEN)
          throw std::invalid_argument("exec rule " + r.id + ": path " + canonical +
                                      " is longer than the kernel matches");
        corral_exec_path p{};
        p.rule_index = k.rule_index;
        std::memcpy(p.components, comps.data(), comps.size());
        maps.paths.push_back(p);
        corral_exec_rule with_path = k;
        with_path.has_path = 1;
        add_to_name(maps, basename_of(canonical), with_path, gen, r.id);
        continue;
      }
      add_to_name(maps, binary, k, gen, r.id);
      // the kernel sees the name it was run by cut to 15 bytes (comm)
      if (binary.size() >= CORRAL_COMM_LEN)
        add_to_name(maps, binary.substr(0, CORRAL_COMM_LEN - 1), k, gen, r.id);
      for (const std::string& dir : search_dirs) {
        auto real = resolve(dir + "/" + binary);
        if (real && basename_of(*real) != binary) add_to_name(maps, basename_of(*real), k, gen, r.id);
      }
    }
  }
  return maps;
}

}  // namespace corral
