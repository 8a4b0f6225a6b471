// Following the log as the shipper and `corral tail` do: from any seq, across
// rotations that happen while reading, never skipping or repeating a record.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "audit_log.h"
#include "log_reader.h"

namespace corral {
namespace {

namespace fs = std::filesystem;

class LogReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("corral-reader-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  AuditLogOptions options() const {
    AuditLogOptions o;
    o.path = (dir_ / "audit.jsonl").string();
    o.key_path = (dir_ / "key").string();
    o.checkpoint_every = 25;
    o.fsync = FsyncPolicy::kNever;
    o.max_bytes = 8192;  // a rotation every few dozen records
    return o;
  }

  static void write(AuditLog& log, int n) {
    for (int i = 0; i < n; ++i) {
      audit::Record r;
      r.set_session("s");
      r.mutable_open()->set_path("/etc/hostname");
      log.append(r);
      if (i % 10 == 9) log.flush();
    }
    log.flush();
  }

  // Reads what is there; checks seqs follow on from `next`.
  static void read_all(LogReader& reader, uint64_t& next) {
    while (auto rec = reader.next()) {
      ASSERT_EQ(rec->seq, next) << "a record skipped or repeated";
      ASSERT_EQ(rec->record.seq(), rec->seq);
      ++next;
    }
  }

  fs::path dir_;
};

TEST_F(LogReaderTest, FollowsRotationsWhileReading) {
  AuditLog log(options());
  LogReader reader(options().path, 1);
  uint64_t next = 1;
  for (int round = 0; round < 10; ++round) {
    write(log, 37);
    read_all(reader, next);
  }
  ASSERT_GE(AuditLog::rotated_files(options().path).size(), 5u);
  EXPECT_EQ(next, log.last_seq() + 1);
}

TEST_F(LogReaderTest, StartsAnywhere) {
  {
    AuditLog log(options());
    write(log, 300);
  }
  uint64_t last = last_seq_in_log(options().path);
  ASSERT_GT(last, 300u);
  for (uint64_t from : {uint64_t{1}, uint64_t{2}, uint64_t{77}, uint64_t{150}, last, last + 1}) {
    LogReader reader(options().path, from);
    uint64_t next = from;
    read_all(reader, next);
    EXPECT_EQ(next, last + 1) << "from " << from;
  }
}

}  // namespace
}  // namespace corral
