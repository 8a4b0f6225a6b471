// Paths as the kernel programs send them (bpf/path.bpf.h): dentry names
// leaf first, each NUL-terminated, plus the user's string. Pure functions.
#pragma once

#include <string>
#include <string_view>

#include "event_layout.h"

namespace corral {

// "c\0b\0a\0" -> "/a/b/c"; "" -> "/".
std::string components_to_path(std::string_view components);

// Lexical normalisation of an absolute path: collapses "//", "." and "..";
// ".." at the root stays at the root (rules::normalize_absolute). A
// relative path comes back as it is.
std::string normalize_path(std::string_view path);

// The absolute path a slot describes: the resolved file itself, or the user
// string alone when absolute, or the user string joined to its base.
struct ResolvedPath {
  std::string path;
  std::string requested;  // the user string, as passed
  bool truncated = false;
};
ResolvedPath resolve_slot(const corral_path& desc, std::string_view slot);

}  // namespace corral
