#include "path.h"

#include <vector>

#include "glob.h"

namespace corral {

std::string components_to_path(std::string_view components) {
  std::vector<std::string_view> names;
  size_t pos = 0;
  while (pos < components.size()) {
    size_t end = components.find('\0', pos);
    if (end == std::string_view::npos) end = components.size();
    if (end > pos) names.push_back(components.substr(pos, end - pos));
    pos = end + 1;
  }
  if (names.empty()) return "/";
  std::string out;
  for (auto it = names.rbegin(); it != names.rend(); ++it) {
    // the root dentry of a filesystem is named "/"; it is no component
    if (*it == "/") continue;
    out += '/';
    out += *it;
  }
  return out.empty() ? "/" : out;
}

std::string normalize_path(std::string_view path) {
  return rules::normalize_absolute(path).value_or(std::string(path));
}

ResolvedPath resolve_slot(const corral_path& desc, std::string_view slot) {
  ResolvedPath r;
  size_t comp_len = std::min<size_t>(desc.components_len, slot.size());
  std::string_view components = slot.substr(0, comp_len);
  std::string_view rest = slot.substr(comp_len);
  size_t str_len = std::min<size_t>(desc.string_len, rest.size());
  r.requested = std::string(rest.substr(0, str_len));
  while (!r.requested.empty() && r.requested.back() == '\0') r.requested.pop_back();
  r.truncated = desc.flags & CORRAL_PATH_TRUNCATED;

  if (desc.flags & CORRAL_PATH_RESOLVED) {
    r.path = components_to_path(components);
  } else if (!r.requested.empty() && r.requested.front() == '/') {
    r.path = normalize_path(r.requested);
  } else if (desc.flags & (CORRAL_PATH_BASE_CWD | CORRAL_PATH_BASE_DIRFD)) {
    r.path = normalize_path(components_to_path(components) + "/" + r.requested);
  } else {
    // no base could be found (a bad dirfd): say so rather than guess
    r.path = r.requested;
  }
  return r;
}

}  // namespace corral
