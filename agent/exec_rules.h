// The policy's exec rules as the kernel matches them (bpf/exec.bpf.h):
// entries of the maps exec_rules, exec_tokens and exec_paths. Pure: file
// lookups go through the `resolve` callback so tests need no filesystem.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "event_layout.h"
#include "policy.h"

namespace corral {

struct ExecRuleMaps {
  std::map<std::string, corral_exec_rules> names;  // key: binary name
  std::vector<corral_exec_token> tokens;
  std::vector<corral_exec_path> paths;
};

// The id the kernel carries for rule `index` of generation `gen`, so that
// old and new rules never share an id during a reload.
inline uint32_t exec_rule_id(uint32_t gen, uint32_t index) { return (gen << 16) | index; }
inline uint32_t exec_rule_index(uint32_t id) { return id & 0xffff; }

// `resolve(path)` returns the canonical path of an existing file (realpath),
// or nullopt. Basename rules also cover what a same-named binary in
// `search_dirs` resolves to (e.g. nc -> nc.openbsd via alternatives).
// Throws std::invalid_argument naming the rule when the kernel cannot hold
// it (token over 31 bytes, over 4 tokens, over 8 rules for one name, a
// path over 255 bytes, over 65535 rules).
ExecRuleMaps compile_exec_rules(const std::vector<rules::ExecRule>& rules, uint32_t gen,
                                const std::function<std::optional<std::string>(const std::string&)>& resolve,
                                const std::vector<std::string>& search_dirs);

// "/usr/bin/git" -> "git\0bin\0usr\0": a path as bpf/path.bpf.h sends it.
std::string leaf_first_components(const std::string& absolute_path);

}  // namespace corral
