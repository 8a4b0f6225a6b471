#include "audit_log.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <system_error>

#include "json.h"

namespace corral {
namespace {

// What a record with seq 0 and no prev starts with; replaced at flush.
constexpr std::string_view kBlankHead = "{\"seq\":\"0\",\"prev\":\"\"";

std::system_error sys_error(const std::string& what) {
  return std::system_error(errno, std::generic_category(), what);
}

void pread_all(int fd, char* buf, size_t len, uint64_t off, const std::string& path) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = ::pread(fd, buf + done, len - done, static_cast<off_t>(off + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw sys_error("failed to read audit log " + path);
    if (n == 0) throw std::runtime_error("audit log " + path + " shrank while being read");
    done += static_cast<size_t>(n);
  }
}

// The last whole line of a file ending at `size` (which ends in '\n'),
// without its newline.
std::string last_line(int fd, uint64_t size, const std::string& path) {
  std::string tail;
  uint64_t chunk = 64 * 1024;
  while (true) {
    uint64_t start = size > chunk ? size - chunk : 0;
    tail.resize(size - start);
    pread_all(fd, tail.data(), tail.size(), start, path);
    // tail ends with '\n'; the line starts after the newline before it.
    size_t nl = tail.size() >= 2 ? tail.rfind('\n', tail.size() - 2) : std::string::npos;
    if (nl != std::string::npos) return tail.substr(nl + 1, tail.size() - nl - 2);
    if (start == 0) return tail.substr(0, tail.size() - 1);
    chunk *= 4;
  }
}

// Where the last whole record of a file of `size` bytes ends (after its
// newline); what follows is a record a crash tore. 0 when there is none.
uint64_t whole_records_end(int fd, uint64_t size, const std::string& path) {
  std::string buf;
  for (uint64_t end = size; end > 0;) {
    uint64_t start = end > 65536 ? end - 65536 : 0;
    buf.resize(end - start);
    pread_all(fd, buf.data(), buf.size(), start, path);
    size_t nl = buf.rfind('\n');
    if (nl != std::string::npos) return start + nl + 1;
    end = start;
  }
  return 0;
}

uint64_t first_seq_of(int fd, const std::string& path) {
  char buf[128];  // the head: {"seq":"N","prev":"<64 hex>"
  ssize_t n = ::pread(fd, buf, sizeof buf, 0);
  if (n < 0) throw sys_error("failed to read audit log " + path);
  auto head = chain::parse_head(std::string_view(buf, static_cast<size_t>(n)));
  if (!head) throw std::runtime_error("audit log " + path + " does not start with a record");
  return head->seq;
}

int64_t now_ns(clockid_t clock) {
  timespec ts;
  clock_gettime(clock, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace

// flock on PATH.lock, held for one batch.
class AuditLog::Lock {
 public:
  explicit Lock(AuditLog& log) : log_(log) {
    while (::flock(log_.lock_fd_.get(), LOCK_EX) != 0)
      if (errno != EINTR) throw sys_error("failed to lock audit log " + log_.options_.path);
  }
  ~Lock() { ::flock(log_.lock_fd_.get(), LOCK_UN); }

 private:
  AuditLog& log_;
};

std::string record_to_json_line(const audit::Record& record) {
  std::string line;
  append_json(record, line);
  line.push_back('\n');
  return line;
}

HostIdentity host_identity() {
  HostIdentity id;
  char buf[256] = {};
  ::gethostname(buf, sizeof buf - 1);
  id.host = buf;
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::getline(in, id.boot_id);
  return id;
}

uint64_t last_seq_in_log(const std::string& path) {
  auto files = AuditLog::rotated_files(path);
  files.push_back(path);
  for (auto it = files.rbegin(); it != files.rend(); ++it) {
    UniqueFd fd(::open(it->c_str(), O_RDONLY | O_CLOEXEC));
    struct stat st;
    if (!fd || ::fstat(fd.get(), &st) != 0 || st.st_size == 0) continue;
    uint64_t end = whole_records_end(fd.get(), static_cast<uint64_t>(st.st_size), *it);
    if (end == 0) continue;
    if (auto head = chain::parse_head(last_line(fd.get(), end, *it))) return head->seq;
  }
  return 0;
}

std::string AuditLog::rotated_name(const std::string& path, uint64_t first_seq) {
  return fmt::format("{}.{:020d}", path, first_seq);
}

std::vector<std::string> AuditLog::rotated_files(const std::string& path) {
  std::filesystem::path p(path);
  std::filesystem::path dir = p.parent_path().empty() ? "." : p.parent_path();
  std::string prefix = p.filename().string() + ".";
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    if (name.size() == prefix.size() + 20 && name.starts_with(prefix) &&
        std::all_of(name.begin() + static_cast<ptrdiff_t>(prefix.size()), name.end(),
                    [](char c) { return c >= '0' && c <= '9'; }))
      out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());  // zero-padded: name order is seq order
  return out;
}

AuditLog::AuditLog(AuditLogOptions options)
    : options_(std::move(options)),
      key_(chain::SigningKey::load_or_create(options_.key_path)),
      last_sync_(std::chrono::steady_clock::now()) {
  open_file();  // first: an unwritable log is the error to report
  std::string lock_path = options_.path + ".lock";
  lock_fd_ = UniqueFd(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!lock_fd_) throw sys_error("failed to open audit log lock " + lock_path);
  {
    Lock lock(*this);
    open_file();  // again under the lock: another writer may have rotated it
    adopt_tail();
  }
  if (!torn_.empty()) {
    try {
      flush();
    } catch (const std::exception& e) {
      // The cut is done; its checkpoint goes first in the next batch.
      spdlog::error("{}", e.what());
    }
  }
}

AuditLog::~AuditLog() {
  try {
    close();
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
  }
}

void AuditLog::open_file() {
  fd_ = UniqueFd(::open(options_.path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600));
  if (!fd_) throw sys_error("failed to open audit log " + options_.path + " for appending");
  struct statx stx;
  if (::statx(fd_.get(), "", AT_EMPTY_PATH, STATX_INO | STATX_SIZE | STATX_BTIME, &stx) != 0)
    throw sys_error("failed to stat audit log " + options_.path);
  file_ino_ = stx.stx_ino;
  file_size_ = stx.stx_size;
  // Age counts from the file's birth where the filesystem knows it.
  file_birth_ = (stx.stx_mask & STATX_BTIME)
                    ? std::chrono::system_clock::time_point(std::chrono::seconds(stx.stx_btime.tv_sec))
                    : std::chrono::system_clock::now();
}

void AuditLog::adopt_tail() {
  uint64_t size = file_size_;
  uint64_t torn = 0;
  std::string torn_sha;
  if (size > 0) {
    uint64_t end = whole_records_end(fd_.get(), size, options_.path);
    if (end < size) {
      std::string bytes(size - end, '\0');
      pread_all(fd_.get(), bytes.data(), bytes.size(), end, options_.path);
      torn = bytes.size();
      torn_sha = hasher_.hex(bytes);
      size = end;  // cut below, once nothing can stop the note of it
    }
  }

  std::string line;
  std::string from = options_.path;
  if (size > 0) {
    line = last_line(fd_.get(), size, options_.path);
  } else {
    // A fresh file continues the newest rotated one.
    auto rotated = rotated_files(options_.path);
    if (!rotated.empty()) {
      from = rotated.back();
      UniqueFd old(::open(from.c_str(), O_RDONLY | O_CLOEXEC));
      struct stat st;
      if (!old || ::fstat(old.get(), &st) != 0) throw sys_error("failed to read audit log " + from);
      if (st.st_size > 0) line = last_line(old.get(), static_cast<uint64_t>(st.st_size), from);
    }
  }
  uint64_t seq = 1;
  std::string prev = chain::kGenesis;
  if (!line.empty()) {
    auto head = chain::parse_head(line);
    if (!head)
      throw std::runtime_error("audit log " + from +
                               ": the last record has no seq/prev head; refusing to continue a "
                               "chain it cannot read (run `corral audit verify`)");
    seq = head->seq + 1;
    prev = hasher_.hex(line);
  }
  if (auto end = noted_end(); size == 0 && end && end->first + 1 > seq) {
    // The live file was moved away or removed by something else (logrotate's
    // `create`, mv, rm): the chain's end went with it, and the lock file says
    // where it was. Starting over would repeat seqs a shipper has passed.
    seq = end->first + 1;
    prev = std::move(end->second);
    spdlog::warn("audit log {} was moved away or removed; the chain carries on at seq {}",
                 options_.path, seq);
  }
  if (torn) {
    if (::ftruncate(fd_.get(), static_cast<off_t>(size)) != 0)
      throw sys_error("failed to cut the torn record off audit log " + options_.path);
    spdlog::warn("audit log {}: cut off a torn record of {} bytes a crash left", options_.path,
                 torn);
    file_size_ = size;
    // Noted by the next flush, first in its batch.
    torn_.push_back({torn, torn_sha});
  }
  next_seq_ = seq;
  prev_ = std::move(prev);
}

void AuditLog::sync_with_file() {
  struct stat st;
  if (::stat(options_.path.c_str(), &st) != 0 || st.st_ino != file_ino_) {
    // Another writer rotated it (or it was removed): continue in the new one.
    open_file();
    adopt_tail();
    return;
  }
  if (static_cast<uint64_t>(st.st_size) != file_size_) {
    // Another writer appended.
    file_size_ = static_cast<uint64_t>(st.st_size);
    adopt_tail();
  }
}

void AuditLog::append(audit::Record& record) {
  record.set_seq(0);
  record.clear_prev();
  // Written where it stays; flush() skips the blank head (seq and prev are
  // printed first, as declared first in audit.proto).
  size_t start = pending_.size();
  append_json(record, pending_);
  pending_records_.push_back({start + kBlankHead.size(), pending_.size()});
}

void AuditLog::add_checkpoint(std::string& out, const std::string& reason, uint64_t torn_bytes,
                              const std::string& torn_sha256) {
  audit::Record cp;
  cp.set_seq(next_seq_);
  cp.set_prev(prev_);
  int64_t wall = now_ns(CLOCK_REALTIME);
  cp.mutable_time()->set_seconds(wall / 1'000'000'000);
  cp.mutable_time()->set_nanos(static_cast<int32_t>(wall % 1'000'000'000));
  cp.set_boot_ns(static_cast<uint64_t>(now_ns(CLOCK_BOOTTIME)));
  cp.set_host(options_.host);
  cp.set_boot_id(options_.boot_id);
  auto* c = cp.mutable_checkpoint();
  c->set_reason(reason);
  c->set_key_id(key_.key_id());
  c->set_signature(key_.sign_hex(chain::checkpoint_message(next_seq_, prev_, reason)));
  c->set_torn_bytes(torn_bytes);
  c->set_torn_sha256(torn_sha256);
  size_t start = out.size();
  append_json(cp, out);
  prev_ = hasher_.hex(std::string_view(out).substr(start));
  out.push_back('\n');
  next_seq_++;
  since_checkpoint_ = 0;
}

void AuditLog::write_out(const std::string& out) {
  // Room first: a full disk then fails the write before any of it lands, so
  // no reader sees lines that are cut back (nor the retry's, different).
  if (::fallocate(fd_.get(), FALLOC_FL_KEEP_SIZE, static_cast<off_t>(file_size_),
                  static_cast<off_t>(out.size())) != 0 &&
      errno != EOPNOTSUPP && errno != ENOSYS)
    throw sys_error("failed to write audit log " + options_.path);
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::write(fd_.get(), out.data() + done, out.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      // Leave no torn record behind: the batch is retried whole.
      if (done && ::ftruncate(fd_.get(), static_cast<off_t>(file_size_)) != 0)
        spdlog::error("failed to cut a partial batch off audit log {}: {}", options_.path,
                      std::strerror(errno));
      errno = err;
      throw sys_error("failed to write audit log " + options_.path);
    }
    done += static_cast<size_t>(n);
  }
  file_size_ += out.size();
  dirty_ = true;
  note_end();
}

// The chain's end, kept in the lock file by every writer under the lock: the
// one place it survives the live file being moved away. Best effort: it is
// only read when the live file is new and empty.
void AuditLog::note_end() {
  char line[128];
  int n = std::snprintf(line, sizeof line, "%020llu %s\n", static_cast<unsigned long long>(next_seq_ - 1),
                        prev_.c_str());
  if (n > 0 && static_cast<size_t>(n) < sizeof line) (void)!::pwrite(lock_fd_.get(), line, n, 0);
}

std::optional<std::pair<uint64_t, std::string>> AuditLog::noted_end() const {
  char line[128] = {};
  ssize_t n = ::pread(lock_fd_.get(), line, sizeof line - 1, 0);
  if (n < 22) return std::nullopt;
  std::string_view text(line, static_cast<size_t>(n));
  size_t sp = text.find(' '), nl = text.find('\n');
  if (sp == std::string_view::npos || nl == std::string_view::npos || nl <= sp + 1) return std::nullopt;
  uint64_t seq = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + sp, seq);
  if (ec != std::errc() || p != text.data() + sp || seq == 0) return std::nullopt;
  return std::make_pair(seq, std::string(text.substr(sp + 1, nl - sp - 1)));
}

template <typename Build>
void AuditLog::write_chained(std::string& out, Build build) {
  uint64_t seq0 = next_seq_;
  std::string prev0 = prev_;
  uint32_t since0 = since_checkpoint_;
  try {
    build();
    write_out(out);
  } catch (...) {
    next_seq_ = seq0;
    prev_ = std::move(prev0);
    since_checkpoint_ = since0;
    throw;
  }
}

void AuditLog::write_checkpoint(const std::string& reason) {
  std::string out;
  write_chained(out, [&] { add_checkpoint(out, reason); });
}

void AuditLog::flush() {
  if (pending_records_.empty() && torn_.empty()) return;
  Lock lock(*this);
  sync_with_file();
  // Kept between batches: a fresh MiB each time cost its page faults again.
  std::string& out = batch_;
  out.clear();
  out.reserve(pending_.size() + pending_records_.size() * 100);
  write_chained(out, [&] {
    for (const Torn& t : torn_) add_checkpoint(out, "resume", t.bytes, t.sha256);
    for (auto [begin, end] : pending_records_) {
      size_t start = out.size();
      chain::append_head(out, next_seq_, prev_);
      out.append(pending_, begin, end - begin);
      hasher_.hex(std::string_view(out).substr(start), prev_);
      out.push_back('\n');
      next_seq_++;
      if (++since_checkpoint_ >= options_.checkpoint_every) add_checkpoint(out, "interval");
    }
  });
  torn_.clear();
  pending_.clear();
  pending_records_.clear();
  if (pending_.capacity() > (8u << 20)) {  // what a failing disk made it hold
    std::string().swap(pending_);
    std::string().swap(batch_);
    std::vector<std::pair<size_t, size_t>>().swap(pending_records_);
  }
  if (file_size_ >= options_.max_bytes) rotate();
  if (options_.fsync == FsyncPolicy::kAlways) sync_data();
}

void AuditLog::rotate() {
  write_checkpoint("rotation");
  sync_data();
  std::string to = rotated_name(options_.path, first_seq_of(fd_.get(), options_.path));
  if (::rename(options_.path.c_str(), to.c_str()) != 0)
    throw sys_error("failed to rotate audit log " + options_.path + " to " + to);
  auto dir = std::filesystem::path(options_.path).parent_path();
  UniqueFd dfd(::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dfd) ::fsync(dfd.get());
  spdlog::info("audit log rotated to {}", to);
  // The chain (prev_, next_seq_) carries on into the new file.
  fd_ = UniqueFd(::open(options_.path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600));
  if (!fd_) throw sys_error("failed to open audit log " + options_.path + " for appending");
  struct stat st;
  if (::fstat(fd_.get(), &st) != 0) throw sys_error("failed to stat audit log " + options_.path);
  file_ino_ = st.st_ino;
  file_size_ = 0;
  file_birth_ = std::chrono::system_clock::now();
}

void AuditLog::sync_data() {
  if (!dirty_) return;
  if (::fdatasync(fd_.get()) != 0) throw sys_error("failed to sync audit log " + options_.path);
  dirty_ = false;
  last_sync_ = std::chrono::steady_clock::now();
}

void AuditLog::tick() {
  flush();
  if (std::chrono::system_clock::now() - file_birth_ >= options_.max_age && file_size_ > 0) {
    Lock lock(*this);
    sync_with_file();
    if (file_size_ > 0 && std::chrono::system_clock::now() - file_birth_ >= options_.max_age)
      rotate();
  }
  if (options_.fsync == FsyncPolicy::kInterval &&
      std::chrono::steady_clock::now() - last_sync_ >= options_.fsync_interval)
    sync_data();
}

void AuditLog::close() {
  if (closed_) return;
  flush();
  if (since_checkpoint_ > 0) {
    Lock lock(*this);
    sync_with_file();
    write_checkpoint("close");
  }
  if (options_.fsync != FsyncPolicy::kNever) sync_data();
  closed_ = true;
}

}  // namespace corral
