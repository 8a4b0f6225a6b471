#include "path.h"

#include "glob.h"

namespace corral {

std::string components_to_path(std::string_view components) {
  std::string out;
  out.reserve(components.size() + 1);
  // Leaf first: names are taken from the end, between NULs.
  for (size_t end = components.size();;) {
    size_t nul = end == 0 ? std::string_view::npos : components.rfind('\0', end - 1);
    size_t start = nul == std::string_view::npos ? 0 : nul + 1;
    std::string_view name = components.substr(start, end - start);
    // the root dentry of a filesystem is named "/"; it is no component
    if (!name.empty() && name != "/") {
      out += '/';
      out += name;
    }
    if (nul == std::string_view::npos) break;
    end = nul;
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
