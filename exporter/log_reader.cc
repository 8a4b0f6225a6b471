#include "log_reader.h"

#include <fcntl.h>
#include <google/protobuf/util/json_util.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

#include "audit_log.h"
#include "chain.h"

namespace corral {
namespace {

uint64_t seq_in_name(const std::string& rotated) {
  return std::stoull(rotated.substr(rotated.size() - 20));
}

}  // namespace

LogReader::LogReader(std::string path, uint64_t from_seq)
    : path_(std::move(path)), want_(from_seq ? from_seq : 1) {}

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

// Reads what was appended since; false when nothing was.
bool LogReader::fill() {
  if (pos_ > 0) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  char chunk[1 << 16];
  bool got = false;
  while (true) {
    ssize_t n = ::read(fd_.get(), chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      throw std::system_error(errno, std::generic_category(), "failed to read audit log " + file_);
    if (n == 0) break;
    buf_.append(chunk, static_cast<size_t>(n));
    got = true;
    if (buf_.size() >= (4u << 20)) break;
  }
  return got;
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
    google::protobuf::util::JsonParseOptions opts;
    opts.ignore_unknown_fields = true;  // a newer writer's fields
    if (!google::protobuf::util::JsonStringToMessage(rec.line, &rec.record, opts).ok())
      rec.record.Clear();
    want_ = head->seq + 1;
    return rec;
  }
}

}  // namespace corral
