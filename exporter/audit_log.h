// The local audit log: one JSON object per line, each a corral.audit.Record,
// hash-chained and signed at checkpoints (chain.h). One log per host: every
// corral process appending to the same path takes the log's lock for each
// batch and continues the chain and the sequence numbers where the file
// ends, so a host's records form one sequence whoever wrote them.
//
// Files: PATH is the one being written; rotation renames it to
// PATH.<first seq, 20 digits> after sealing it with a checkpoint, and the
// next file's first record chains to that seal.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "audit.pb.h"
#include "chain.h"
#include "unique_fd.h"

namespace corral {

// Serialises one record as a single JSON line (newline included).
std::string record_to_json_line(const audit::Record& record);

// Who writes: stamped on every record.
struct HostIdentity {
  std::string host;     // gethostname()
  std::string boot_id;  // /proc/sys/kernel/random/boot_id
};
HostIdentity host_identity();

// The seq of the last whole record in the log at PATH (its active file,
// else its newest rotated one); 0 when there is none.
uint64_t last_seq_in_log(const std::string& path);

enum class FsyncPolicy {
  kNever,     // the page cache decides; a power loss may cost recent records
  kInterval,  // fdatasync at most every fsync_interval (tick())
  kAlways,    // fdatasync after every batch
};

struct AuditLogOptions {
  std::string path;
  std::string key_path;             // Ed25519 signing key, created when missing
  uint32_t checkpoint_every = 1000; // records this writer appends between checkpoints
  FsyncPolicy fsync = FsyncPolicy::kInterval;
  std::chrono::milliseconds fsync_interval{1000};
  uint64_t max_bytes = 64ull << 20;  // rotate when the file reaches this size...
  std::chrono::seconds max_age{24 * 3600};  // ...or this age
  std::string host;     // stamped on the writer's own records (checkpoints)
  std::string boot_id;
};

class AuditLog {
 public:
  // Opens (creating, mode 0600) the log and its lock, loads the signing key,
  // and resumes the chain where the file ends. A record torn by a crash is
  // cut off and recorded in a signed "resume" checkpoint. Throws
  // std::system_error / std::runtime_error naming the file.
  explicit AuditLog(AuditLogOptions options);
  // Seals what this writer appended with a "close" checkpoint.
  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Serialises `record` into the pending batch; seq and prev are given at
  // flush(), under the lock. Sets record's seq to 0 (not known yet). The
  // batch grows until the caller flushes (pending_bytes()).
  void append(audit::Record& record);
  // Numbers, chains and writes the pending batch, checkpointing and rotating
  // as due. On a failed write the file is cut back to where it was, the
  // chain's state is as before, and the batch stays pending, to be written
  // whole by a later flush(); throws std::system_error. The same holds for
  // every checkpoint (resume, rotation, close): a full disk never leaves a
  // gap in the chain.
  void flush();
  // Periodic work (about once a second): fsync by interval, rotation by age.
  void tick();
  // Flushes and seals with a "close" checkpoint; idempotent.
  void close();

  const std::string& path() const { return options_.path; }
  uint64_t last_seq() const { return next_seq_ - 1; }
  size_t pending() const { return pending_records_.size(); }
  size_t pending_bytes() const { return pending_.size(); }

  // The name a file gets when rotated.
  static std::string rotated_name(const std::string& path, uint64_t first_seq);
  // PATH's rotated files, oldest first.
  static std::vector<std::string> rotated_files(const std::string& path);

 private:
  class Lock;
  void open_file();
  // Takes the chain's state (next seq, prev) from the end of the log, cutting
  // off a torn last record.
  void adopt_tail();
  void sync_with_file();
  void add_checkpoint(std::string& out, const std::string& reason, uint64_t torn_bytes = 0,
                      const std::string& torn_sha256 = {});
  void write_out(const std::string& out);
  // Runs `build` (chaining records into `out`), then writes `out`; if either
  // fails, the chain's state is put back: a failed write takes no seq.
  template <typename Build>
  void write_chained(std::string& out, Build build);
  void write_checkpoint(const std::string& reason);
  // The chain's end (last seq, its hash) in the lock file: written after each
  // write, read when the live file was moved away.
  void note_end();
  std::optional<std::pair<uint64_t, std::string>> noted_end() const;
  void rotate();
  void sync_data();

  AuditLogOptions options_;
  chain::SigningKey key_;
  chain::Hasher hasher_;
  UniqueFd fd_;
  UniqueFd lock_fd_;
  uint64_t file_ino_ = 0;
  uint64_t file_size_ = 0;  // where this writer last saw the file end
  std::chrono::system_clock::time_point file_birth_;
  uint64_t next_seq_ = 1;
  std::string prev_ = chain::kGenesis;
  uint32_t since_checkpoint_ = 0;
  // Torn records cut off whose "resume" checkpoints are not written yet:
  // more than one when writes fail (a full disk) and another writer dies
  // mid-record meanwhile.
  struct Torn {
    uint64_t bytes;
    std::string sha256;
  };
  std::vector<Torn> torn_;
  bool closed_ = false;
  bool dirty_ = false;  // written since the last fdatasync
  std::chrono::steady_clock::time_point last_sync_;
  // The pending batch: records with a blank head, back to back, and where
  // each one's body (after that head) begins and ends.
  std::string pending_;
  std::vector<std::pair<size_t, size_t>> pending_records_;
  std::string batch_;  // flush()'s, with the heads
};

}  // namespace corral
