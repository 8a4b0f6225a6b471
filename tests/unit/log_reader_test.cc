// Following the log as the shipper and `corral tail` do: from any seq, across
// rotations that happen while reading, never skipping or repeating a record.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <vector>

#include "audit_log.h"
#include "log_reader.h"
#include "syslog_sink.h"

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

// A writer killed mid-batch leaves half a line; the reader waits at it.
// The next writer cuts it off and writes on from there: the reader reads
// what is there now, not the old half joined to the new bytes (a line
// that was neither record, seqs skipped after it).
TEST_F(LogReaderTest, ATornTailCutOffByTheNextWriterIsNotJoined) {
  auto o = options();
  o.max_bytes = 1 << 20;
  LogReader reader(o.path, 1);
  uint64_t next = 1;
  {
    AuditLog log(o);
    write(log, 20);
  }
  read_all(reader, next);  // its close checkpoint included
  uint64_t before = next;
  std::string torn = "{\"seq\":\"" + std::to_string(before) + "\",\"prev\":\"ab12";
  torn += std::string(3000, 'x');
  std::ofstream(o.path, std::ios::app) << torn;
  EXPECT_FALSE(reader.next()) << "half a line is not a record";
  {
    AuditLog log(o);  // cuts it off, notes it in a resume checkpoint
    write(log, 5);
  }
  std::vector<LogRecord> got;
  while (auto rec = reader.next()) got.push_back(*rec);
  ASSERT_FALSE(got.empty());
  EXPECT_EQ(got.front().seq, before);
  EXPECT_TRUE(got.front().record.has_checkpoint()) << got.front().line;
  EXPECT_EQ(got.front().record.checkpoint().reason(), "resume");
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].seq, before + i) << "a record skipped or repeated";
    EXPECT_EQ(got[i].record.seq(), got[i].seq) << "not a whole record: " << got[i].line.substr(0, 80);
  }
  EXPECT_EQ(got.back().seq, last_seq_in_log(o.path));
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

// The head parse reads what the line-sending sinks use exactly as the full
// parse does: their syslog messages and Kafka keys come out the same.
TEST(ParseRecordHead, AgreesWithTheFullParse) {
  std::vector<audit::Record> samples(4);
  samples[0].mutable_exec()->set_path("/usr/bin/git");
  samples[0].mutable_exec()->add_argv("git \"push\"\t\\ é");
  samples[0].mutable_decision()->set_action("deny");
  samples[0].mutable_decision()->set_rule("no-git-push");
  samples[0].mutable_decision()->set_reason("a \"quoted\" } reason {");
  samples[1].mutable_open()->set_path("/tmp/x\ny");
  samples[2].mutable_session_end()->set_exit_code(3);
  samples[3].mutable_checkpoint()->set_reason("close");
  uint64_t seq = 40;
  for (auto& r : samples) {
    r.set_seq(++seq);
    r.set_host("build-7\"host");
    r.set_session("ab12cd");
    r.set_boot_id("boot-1");
    r.mutable_time()->set_seconds(1795000000);
    r.mutable_time()->set_nanos(123456789);
    if (!r.has_checkpoint()) r.mutable_process()->set_pid(4242);
    std::string line = record_to_json_line(r);
    line.pop_back();
    LogRecord full{r.seq(), line, r};
    LogRecord head{r.seq(), line, {}};
    ASSERT_TRUE(parse_record_head(line, head.record)) << line;
    EXPECT_EQ(head.record.seq(), r.seq());
    EXPECT_EQ(head.record.host(), r.host());
    EXPECT_EQ(head.record.session(), r.session());
    EXPECT_EQ(head.record.event_case(), r.event_case()) << line;
    EXPECT_EQ(head.record.time().nanos(), r.time().nanos());
    SyslogSinkOptions o;
    EXPECT_EQ(syslog_message(head, o), syslog_message(full, o)) << line;
  }
  audit::Record junk;
  EXPECT_FALSE(parse_record_head("not json", junk));
  EXPECT_FALSE(parse_record_head(R"({"seq":"1","host":"unterminated)", junk));
}

}  // namespace
}  // namespace corral
