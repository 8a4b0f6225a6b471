#include "log_reader.h"

#include <fcntl.h>
#include <google/protobuf/util/json_util.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <time.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <optional>
#include <system_error>

#include "audit_log.h"
#include "chain.h"

namespace corral {
namespace {

uint64_t seq_in_name(const std::string& rotated) {
  return std::stoull(rotated.substr(rotated.size() - 20));
}

// A cursor over one JSON text: just enough to walk the writer's objects
// (json.cc) without building them.
struct Scan {
  std::string_view s;
  size_t i = 0;

  bool eat(char c) {
    if (i < s.size() && s[i] == c) {
      ++i;
      return true;
    }
    return false;
  }
  // A string's raw span (escapes kept), after its opening quote.
  std::optional<std::string_view> raw_string() {
    if (!eat('"')) return std::nullopt;
    size_t start = i;
    while (i < s.size() && s[i] != '"') i += s[i] == '\\' ? 2 : 1;
    if (i >= s.size()) return std::nullopt;
    return s.substr(start, i++ - start);
  }
  // Skips one value of any kind.
  bool skip() {
    if (i >= s.size()) return false;
    if (s[i] == '"') return raw_string().has_value();
    if (s[i] == '{' || s[i] == '[') {
      int depth = 0;
      while (i < s.size()) {
        char c = s[i];
        if (c == '"') {
          if (!raw_string()) return false;
          continue;
        }
        if (c == '{' || c == '[') depth++;
        if (c == '}' || c == ']') depth--;
        ++i;
        if (depth == 0) return true;
      }
      return false;
    }
    while (i < s.size() && s[i] != ',' && s[i] != '}' && s[i] != ']') ++i;
    return true;
  }
};

// JSON string escapes undone (the writer emits \", \\, \n, \t, \uXXXX...).
std::string unescape(std::string_view raw) {
  std::string out;
  out.reserve(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] != '\\' || i + 1 >= raw.size()) {
      out += raw[i];
      continue;
    }
    char c = raw[++i];
    switch (c) {
      case 'n': out += '\n'; break;
      case 't': out += '\t'; break;
      case 'r': out += '\r'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'u': {
        unsigned cp = 0;
        if (i + 4 >= raw.size() ||
            std::from_chars(raw.data() + i + 1, raw.data() + i + 5, cp, 16).ptr != raw.data() + i + 5)
          return out;
        i += 4;
        // The writer escapes control characters only: one byte each.
        if (cp < 0x80) out += static_cast<char>(cp);
        else out += "\xef\xbf\xbd";
        break;
      }
      default: out += c;
    }
  }
  return out;
}

// The members of the object at `scan` (its opening brace next), each with
// its value's span.
template <typename F>
bool members(Scan& scan, F&& each) {
  if (!scan.eat('{')) return false;
  if (scan.eat('}')) return true;
  do {
    auto key = scan.raw_string();
    if (!key || !scan.eat(':')) return false;
    size_t start = scan.i;
    if (!scan.skip()) return false;
    each(*key, scan.s.substr(start, scan.i - start));
  } while (scan.eat(','));
  return scan.eat('}');
}

std::string string_value(std::string_view v) {
  Scan sc{v};
  auto raw = sc.raw_string();
  return raw ? unescape(*raw) : std::string();
}

// RFC 3339 in UTC as json.cc writes it: 2026-11-27T14:02:46.596510421Z.
bool parse_time(std::string_view t, google::protobuf::Timestamp& out) {
  struct tm tm{};
  if (t.size() < 20 || t[4] != '-' || t[10] != 'T') return false;
  auto num = [&](size_t at, size_t n) {
    int v = 0;
    std::from_chars(t.data() + at, t.data() + at + n, v);
    return v;
  };
  tm.tm_year = num(0, 4) - 1900;
  tm.tm_mon = num(5, 2) - 1;
  tm.tm_mday = num(8, 2);
  tm.tm_hour = num(11, 2);
  tm.tm_min = num(14, 2);
  tm.tm_sec = num(17, 2);
  int32_t nanos = 0;
  if (t[19] == '.') {
    size_t digits = 0;
    for (size_t k = 20; k < t.size() && t[k] >= '0' && t[k] <= '9'; ++k, ++digits)
      nanos = nanos * 10 + (t[k] - '0');
    for (; digits < 9; ++digits) nanos *= 10;
  }
  out.set_seconds(timegm(&tm));
  out.set_nanos(nanos);
  return true;
}

}  // namespace

bool parse_record_head(std::string_view line, audit::Record& r) {
  r.Clear();
  Scan scan{line};
  const auto* oneof = audit::Record::descriptor()->FindOneofByName("event");
  bool ok = members(scan, [&](std::string_view key, std::string_view v) {
    if (key == "seq") {
      uint64_t seq = 0;
      std::from_chars(v.data() + 1, v.data() + v.size(), seq);
      r.set_seq(seq);
    } else if (key == "time") {
      parse_time(string_value(v), *r.mutable_time());
    } else if (key == "host") {
      r.set_host(string_value(v));
    } else if (key == "session") {
      r.set_session(string_value(v));
    } else if (key == "boot_id") {
      r.set_boot_id(string_value(v));
    } else if (key == "process") {
      Scan sub{v};
      members(sub, [&](std::string_view k, std::string_view pv) {
        uint32_t pid = 0;
        if (k == "pid" && std::from_chars(pv.data(), pv.data() + pv.size(), pid).ec == std::errc())
          r.mutable_process()->set_pid(pid);
      });
    } else if (key == "decision") {
      Scan sub{v};
      members(sub, [&](std::string_view k, std::string_view dv) {
        if (k == "action") r.mutable_decision()->set_action(string_value(dv));
        if (k == "rule") r.mutable_decision()->set_rule(string_value(dv));
      });
    } else if (const auto* f = audit::Record::descriptor()->FindFieldByName(std::string(key));
               f && f->containing_oneof() == oneof) {
      r.GetReflection()->MutableMessage(&r, f);  // which kind, not its content
    }
  });
  return ok && r.seq() != 0;
}

LogReader::LogReader(std::string path, uint64_t from_seq, ParseDepth depth)
    : path_(std::move(path)), want_(from_seq ? from_seq : 1), depth_(depth) {}

// Opens the file that holds `seq`: the newest rotated file starting at or
// before it, else the oldest one there is, else the active file.
bool LogReader::open_for(uint64_t seq) {
  auto rotated = AuditLog::rotated_files(path_);
  std::string pick;
  for (const auto& f : rotated)
    if (seq_in_name(f) <= seq) pick = f;
  if (pick.empty() && !rotated.empty() && seq < seq_in_name(rotated.front())) pick = rotated.front();
  if (pick.empty()) return open_file(path_, true);
  return open_file(pick, false);
}

// Reads `file` from its start next; false when it is not there, or is the
// file already being read.
bool LogReader::open_file(const std::string& file, bool active) {
  UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) return false;
    throw std::system_error(errno, std::generic_category(), "failed to open audit log " + file);
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0)
    throw std::system_error(errno, std::generic_category(), "failed to stat audit log " + file);
  if (fd_ && st.st_ino == ino_) return false;
  fd_ = std::move(fd);
  file_ = file;
  ino_ = st.st_ino;
  active_ = active;
  buf_.clear();
  pos_ = 0;
  off_ = 0;
  return true;
}

// At the end of a finished file: on to the one after it.
bool LogReader::advance_file() {
  if (active_) {
    // PATH is only finished once it has been rotated away.
    struct stat st;
    if (::stat(path_.c_str(), &st) == 0 && st.st_ino == ino_) return false;
    if (fill()) return true;  // the writer's last bytes before renaming
  }
  uint64_t next = last_seq_ + 1;
  for (const auto& f : AuditLog::rotated_files(path_))
    if (seq_in_name(f) == next) return open_file(f, false);
  return open_file(path_, true);
}

// Reads from the end of the last whole line on; false when nothing new
// came. What is left of the buffer is half a line: a batch still being
// written, or a torn one that the next writer cuts off and writes over, so
// it is read again from where it starts, never appended to.
bool LogReader::fill() {
  off_ += pos_;
  struct stat st;
  if (::fstat(fd_.get(), &st) == 0 && static_cast<uint64_t>(st.st_size) < off_) {
    // Whole lines read were cut back (a writer's failed batch, where the
    // filesystem could not reserve its room first); its retry is the next.
    spdlog::warn("audit log {} was cut back from {} to {} bytes under the reader", file_, off_,
                 st.st_size);
    off_ = static_cast<uint64_t>(st.st_size);
  }
  const size_t had = buf_.size() - pos_;
  buf_.clear();
  pos_ = 0;
  char chunk[1 << 16];
  bool line = false;  // a whole line in buf_
  // ~4 MiB at a time, but at least one whole line however long
  while (!line || buf_.size() < (4u << 20)) {
    ssize_t n = ::pread(fd_.get(), chunk, sizeof chunk, static_cast<off_t>(off_ + buf_.size()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      throw std::system_error(errno, std::generic_category(), "failed to read audit log " + file_);
    if (n == 0) break;
    line = line || std::memchr(chunk, '\n', static_cast<size_t>(n));
    buf_.append(chunk, static_cast<size_t>(n));
  }
  return line || buf_.size() > had;
}

std::optional<LogRecord> LogReader::next() {
  if (!fd_ && !open_for(want_)) return std::nullopt;
  while (true) {
    size_t nl = buf_.find('\n', pos_);
    if (nl == std::string::npos) {
      if (fill()) continue;
      if (advance_file()) continue;
      return std::nullopt;
    }
    std::string_view line(buf_.data() + pos_, nl - pos_);
    pos_ = nl + 1;
    auto head = chain::parse_head(line);
    if (!head) continue;  // not a record; `corral audit verify` is the judge of that
    last_seq_ = head->seq;
    if (head->seq < want_) continue;
    LogRecord rec;
    rec.seq = head->seq;
    rec.line.assign(line);
    if (depth_ == ParseDepth::kHead) {
      if (!parse_record_head(rec.line, rec.record)) rec.record.Clear();
    } else {
      google::protobuf::util::JsonParseOptions opts;
      opts.ignore_unknown_fields = true;  // a newer writer's fields
      if (!google::protobuf::util::JsonStringToMessage(rec.line, &rec.record, opts).ok())
        rec.record.Clear();
    }
    want_ = head->seq + 1;
    return rec;
  }
}

}  // namespace corral
