#include "glob.h"

#include <re2/re2.h>
#include <re2/set.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <stdexcept>

namespace corral::rules {
namespace {

// RE2's memory budget for one set. The default (8 MiB) is too small for the
// DFA of thousands of globs; the budget is a cap per set, not an allocation.
constexpr int64_t kSetMaxMem = int64_t{64} << 20;

bool is_alnum(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// One byte as a regex literal. Latin-1 mode makes \x{hh} one byte, so paths
// that are not UTF-8 match bytewise like any other.
void append_byte(std::string& re, unsigned char c) {
  if (is_alnum(c)) {
    re += static_cast<char>(c);
  } else {
    char buf[8];
    std::snprintf(buf, sizeof buf, "\\x{%02x}", c);
    re += buf;
  }
}

// Translates one path component (no '/'); `base` is its offset in the glob.
std::optional<GlobError> translate_component(std::string_view comp, size_t base,
                                             std::string* re) {
  if (comp.empty()) return GlobError{"empty path component ('//' or a trailing '/')", base};
  if (comp == "." || comp == "..")
    return GlobError{"'.' and '..' components never match a normalised path", base};
  if (comp == "**") {
    if (re) *re += "(?:/[^/]+)*";
    return std::nullopt;
  }
  if (re) *re += '/';
  for (size_t i = 0; i < comp.size(); ++i) {
    unsigned char c = comp[i];
    switch (c) {
      case '*':
        if (i + 1 < comp.size() && comp[i + 1] == '*')
          return GlobError{"'**' must be a whole path component", base + i};
        if (re) *re += "[^/]*";
        break;
      case '?':
        if (re) *re += "[^/]";
        break;
      case '\\':
        if (i + 1 == comp.size())
          return GlobError{"trailing '\\' escapes nothing", base + i};
        ++i;
        if (re) append_byte(*re, comp[i]);
        break;
      case '[': {
        size_t open = i++;
        bool negate = i < comp.size() && (comp[i] == '!' || comp[i] == '^');
        if (negate) ++i;
        std::string cls = negate ? "[^" : "[";
        bool first = true;
        bool closed = false;
        while (i < comp.size()) {
          unsigned char m = comp[i];
          if (m == ']' && !first) {
            closed = true;
            break;
          }
          first = false;
          if (m == '\\') {
            if (++i == comp.size()) break;
            m = comp[i];
          }
          if (m >= 0x80)
            return GlobError{"non-ASCII character in a class", base + i};
          unsigned char hi = m;
          if (i + 2 < comp.size() && comp[i + 1] == '-' && comp[i + 2] != ']') {
            size_t at = i;
            i += 2;
            if (comp[i] == '\\') {
              if (++i == comp.size()) break;
            }
            hi = comp[i];
            if (hi >= 0x80)
              return GlobError{"non-ASCII character in a class", base + i};
            if (hi < m)
              return GlobError{"bad range '" + std::string(1, static_cast<char>(m)) + "-" +
                                   std::string(1, static_cast<char>(hi)) + "' in class",
                               base + at};
          }
          append_byte(cls, m);
          if (hi != m) {
            cls += '-';
            append_byte(cls, hi);
          }
          ++i;
        }
        if (!closed) return GlobError{"unclosed '['", base + open};
        // A class never matches '/': it stays within one component.
        if (negate) cls += "/";
        cls += ']';
        if (re) *re += cls;
        break;
      }
      default:
        if (re) append_byte(*re, c);
    }
  }
  return std::nullopt;
}


// Validates `glob` and, when `re` is set, writes its regex. `home` is only
// read when writing.
std::optional<GlobError> translate(std::string_view glob, const std::string* home,
                                   std::string* re) {
  if (glob.empty()) return GlobError{"empty glob", 0};
  if (size_t nul = glob.find('\0'); nul != std::string_view::npos)
    return GlobError{"NUL byte in glob", nul};

  size_t start;  // offset of the first component
  std::string prefix;
  bool root = false;
  if (glob[0] == '/') {
    start = 1;
    root = true;
  } else if (glob.starts_with("~/") || glob == "~") {
    if (glob == "~") return GlobError{"'~' must be followed by '/'", 0};
    start = 2;
    if (re) {
      auto h = home ? normalize_absolute(*home) : std::nullopt;
      if (!h) throw std::invalid_argument(std::string(glob) + ": home directory is not absolute");
      if (*h != "/") {
        for (unsigned char c : *h) append_byte(prefix, c);
      } else {
        root = true;
      }
    }
  } else if (glob[0] == '~') {
    return GlobError{"'~user' is not supported: use '~/' or an absolute path", 0};
  } else if (glob.starts_with("**/")) {
    start = 0;  // the first component is "**": zero or more, from the root
    root = true;
  } else {
    return GlobError{"glob must be absolute, start with ~/ or **/", 0};
  }

  std::string body;
  bool all_double_star = true;
  size_t pos = start;
  if (pos < glob.size()) {
    while (true) {
      size_t end = glob.find('/', pos);
      if (end == std::string_view::npos) end = glob.size();
      std::string_view comp = glob.substr(pos, end - pos);
      if (comp != "**") all_double_star = false;
      if (auto err = translate_component(comp, pos, re ? &body : nullptr)) return err;
      if (end == glob.size()) break;
      pos = end + 1;
    }
  }
  if (re) {
    if (root && all_double_star) {
      // "/" and "/**" also match the root itself (zero components).
      *re = body.empty() ? "/" : "(?:/|" + body + ")";
    } else {
      *re = prefix + body;
    }
  }
  return std::nullopt;
}

RE2::Options set_options() {
  RE2::Options o;
  o.set_encoding(RE2::Options::EncodingLatin1);
  o.set_max_mem(kSetMaxMem);
  o.set_log_errors(false);
  return o;
}

}  // namespace

std::optional<GlobError> check_glob(std::string_view glob) {
  return translate(glob, nullptr, nullptr);
}

std::optional<std::string> glob_error(std::string_view glob) {
  if (auto err = check_glob(glob)) return err->reason;
  return std::nullopt;
}

std::string glob_to_regex(std::string_view glob, const std::string& home) {
  std::string re;
  if (auto err = translate(glob, &home, &re))
    throw std::invalid_argument(std::string(glob) + ": " + err->reason);
  return re;
}

struct GlobSet::Impl {
  RE2::Set set{set_options(), RE2::ANCHOR_BOTH};
  // Used only if the set's DFA runs out of memory on some path: matching then
  // goes glob by glob rather than fail open.
  mutable std::once_flag fallback_once;
  mutable std::vector<std::unique_ptr<RE2>> fallback;
};

GlobSet::GlobSet(const std::vector<std::string>& globs, const std::string& home)
    : impl_(std::make_unique<Impl>()) {
  regexes_.reserve(globs.size());
  for (const auto& g : globs) regexes_.push_back(glob_to_regex(g, home));
  for (const auto& re : regexes_) {
    std::string error;
    if (impl_->set.Add(re, &error) < 0)
      throw std::logic_error("glob regex " + re + " rejected by RE2: " + error);
  }
  if (!regexes_.empty() && !impl_->set.Compile())
    throw std::length_error("too many globs: RE2 set out of memory");
}

GlobSet::~GlobSet() = default;
GlobSet::GlobSet(GlobSet&&) noexcept = default;
GlobSet& GlobSet::operator=(GlobSet&&) noexcept = default;

std::vector<int> GlobSet::match(std::string_view path) const {
  std::vector<int> hits;
  if (regexes_.empty()) return hits;
  auto norm = normalize_absolute(path);
  if (!norm) return hits;
  RE2::Set::ErrorInfo info{RE2::Set::kNoError};
  if (!impl_->set.Match(*norm, &hits, &info) && info.kind != RE2::Set::kNoError) {
    std::call_once(impl_->fallback_once, [this] {
      RE2::Options o = set_options();
      for (const auto& re : regexes_) impl_->fallback.push_back(std::make_unique<RE2>(re, o));
    });
    hits.clear();
    for (size_t i = 0; i < impl_->fallback.size(); ++i)
      if (RE2::FullMatch(*norm, *impl_->fallback[i])) hits.push_back(static_cast<int>(i));
  }
  std::sort(hits.begin(), hits.end());
  return hits;
}

bool GlobSet::any(std::string_view path) const { return !match(path).empty(); }

std::optional<std::string> normalize_absolute(std::string_view path) {
  if (path.empty() || path[0] != '/') return std::nullopt;
  bool clean = path.find("//") == std::string_view::npos &&
               path.find("/./") == std::string_view::npos &&
               path.find("/../") == std::string_view::npos &&
               !(path.size() > 1 && path.back() == '/') && !path.ends_with("/.") &&
               !path.ends_with("/..");
  if (clean) return std::string(path);
  std::vector<std::string_view> parts;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t end = path.find('/', pos);
    if (end == std::string_view::npos) end = path.size();
    std::string_view part = path.substr(pos, end - pos);
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
    } else if (!part.empty() && part != ".") {
      parts.push_back(part);
    }
    pos = end + 1;
  }
  std::string out;
  for (auto p : parts) {
    out += '/';
    out += p;
  }
  return out.empty() ? "/" : out;
}

}  // namespace corral::rules
