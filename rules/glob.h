// Path globs of the policy (rules/README.md, "Globs"), compiled into one
// RE2::Set so that matching a path costs the same for 10 globs or 10,000.
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace re2 {
class RE2;
}

namespace corral::rules {

// Why a glob is invalid, and the byte offset in the glob where it goes wrong
// (so a diagnostic can point at the exact column).
struct GlobError {
  std::string reason;
  size_t offset = 0;
};

// nullopt when `glob` is valid.
std::optional<GlobError> check_glob(std::string_view glob);
// nullopt when valid; the reason otherwise.
std::optional<std::string> glob_error(std::string_view glob);

// The anchored RE2 (Latin-1, i.e. bytewise) regular expression for a valid
// glob; `home` replaces a leading "~/". Throws std::invalid_argument for an
// invalid glob, or a "~/" glob with a home that is not absolute.
// Lexical normalisation of an absolute path ("//", ".", ".." collapsed;
// ".." stops at the root), or nullopt for a relative one.
std::optional<std::string> normalize_absolute(std::string_view path);

std::string glob_to_regex(std::string_view glob, const std::string& home);

class GlobSet {
 public:
  // Throws std::invalid_argument("<glob>: <reason>") for a bad glob: the
  // parser validates globs first, so this guards against bugs only.
  GlobSet(const std::vector<std::string>& globs, const std::string& home);
  ~GlobSet();
  GlobSet(GlobSet&&) noexcept;
  GlobSet& operator=(GlobSet&&) noexcept;

  // Indices (into the constructor's vector) of every glob matching the
  // absolute path, ascending. The path is normalised lexically first ("//",
  // ".", ".."); a relative path matches nothing.
  std::vector<int> match(std::string_view path) const;
  bool any(std::string_view path) const;
  size_t size() const { return regexes_.size(); }

 private:
  struct Impl;
  std::vector<std::string> regexes_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace corral::rules
