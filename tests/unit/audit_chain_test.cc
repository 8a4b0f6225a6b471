// The local log's writer and `corral audit verify`: every kind of tampering
// is caught and named at the right seq; crashes and rotation are not
// mistaken for it.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <set>
#include <sstream>

#include "audit_log.h"
#include "verify.h"

namespace corral {
namespace {

namespace fs = std::filesystem;

// RLIMIT_FSIZE at `bytes` (a full disk, for this process) until it goes,
// whatever fails meanwhile: a limit left behind would fail every later test.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(uint64_t bytes) {
    ::getrlimit(RLIMIT_FSIZE, &saved_);
    handler_ = ::signal(SIGXFSZ, SIG_IGN);  // EFBIG, not a signal
    rlimit small = saved_;
    small.rlim_cur = bytes;
    EXPECT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  }
  ~FileSizeLimit() {
    ::setrlimit(RLIMIT_FSIZE, &saved_);
    ::signal(SIGXFSZ, handler_);
  }

 private:
  rlimit saved_{};
  sighandler_t handler_;
};

class AuditChain : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("corral-chain-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    path_ = (dir_ / "audit.jsonl").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  AuditLogOptions options() const {
    AuditLogOptions o;
    o.path = path_;
    o.key_path = (dir_ / "key").string();
    o.checkpoint_every = 10;
    o.fsync = FsyncPolicy::kNever;
    o.host = "testhost";
    o.boot_id = "boot";
    return o;
  }

  static audit::Record exec_record(int i) {
    audit::Record r;
    r.set_session("s1");
    r.mutable_process()->set_pid(100 + i);
    r.mutable_exec()->set_path("/usr/bin/git");
    r.mutable_exec()->add_argv("git");
    r.mutable_exec()->add_argv("status " + std::to_string(i));
    return r;
  }

  void write_records(AuditLog& log, int n) {
    for (int i = 0; i < n; ++i) {
      auto r = exec_record(i);
      log.append(r);
      if (i % 7 == 0) log.flush();
    }
    log.flush();
  }

  std::vector<std::string> lines(const std::string& path) const {
    std::ifstream in(path);
    std::vector<std::string> out;
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
  }
  void put_lines(const std::string& path, const std::vector<std::string>& ls) const {
    std::ofstream out(path, std::ios::trunc);
    for (const auto& l : ls) out << l << '\n';
  }
  // The index of the line holding `seq`.
  size_t index_of(const std::vector<std::string>& ls, uint64_t seq) const {
    for (size_t i = 0; i < ls.size(); ++i)
      if (chain::parse_head(ls[i])->seq == seq) return i;
    ADD_FAILURE() << "no seq " << seq;
    return 0;
  }

  VerifyResult verify(std::vector<std::string> files = {}) const {
    if (files.empty()) {
      files = AuditLog::rotated_files(path_);
      files.push_back(path_);
    }
    return verify_audit_logs(files, chain::VerifyKey::load((dir_ / "key.pub").string()));
  }

  fs::path dir_;
  std::string path_;
};

TEST_F(AuditChain, IntactLogVerifiesWithItsCount) {
  {
    AuditLog log(options());
    write_records(log, 95);
  }
  auto r = verify();
  ASSERT_FALSE(r.problem) << describe(r);
  // 95 records, a checkpoint after every 10 (9), one at close.
  EXPECT_EQ(r.records, 105u);
  EXPECT_EQ(r.first_seq, 1u);
  EXPECT_EQ(r.last_seq, 105u);
  EXPECT_EQ(r.signed_through, 105u);
  EXPECT_EQ(r.checkpoints, 10u);
  EXPECT_TRUE(r.warnings.empty()) << describe(r);
  auto ls = lines(path_);
  auto first = chain::parse_head(ls[0]);
  EXPECT_EQ(first->prev, chain::kGenesis);
}

TEST_F(AuditChain, EditedRecordIsNamed) {
  {
    AuditLog log(options());
    write_records(log, 50);
  }
  auto ls = lines(path_);
  size_t i = index_of(ls, 20);
  auto at = ls[i].find("/usr/bin/git");
  ASSERT_NE(at, std::string::npos);
  ls[i].replace(at, 12, "/usr/bin/gi7");
  put_lines(path_, ls);
  auto r = verify();
  ASSERT_TRUE(r.problem);
  EXPECT_EQ(r.problem->kind, Tamper::kEdited) << describe(r);
  EXPECT_EQ(r.problem->seq, 20u) << describe(r);
  EXPECT_EQ(r.records, 19u);
}

TEST_F(AuditChain, RemovedRecordIsNamed) {
  {
    AuditLog log(options());
    write_records(log, 50);
  }
  auto ls = lines(path_);
  ls.erase(ls.begin() + static_cast<ptrdiff_t>(index_of(ls, 30)));
  put_lines(path_, ls);
  auto r = verify();
  ASSERT_TRUE(r.problem);
  EXPECT_EQ(r.problem->kind, Tamper::kRemoved) << describe(r);
  EXPECT_EQ(r.problem->seq, 30u);
}

TEST_F(AuditChain, ReorderedRecordsAreNamed) {
  {
    AuditLog log(options());
    write_records(log, 50);
  }
  auto ls = lines(path_);
  std::swap(ls[index_of(ls, 12)], ls[index_of(ls, 13)]);
  put_lines(path_, ls);
  auto r = verify();
  ASSERT_TRUE(r.problem);
  EXPECT_EQ(r.problem->kind, Tamper::kReordered) << describe(r);
  EXPECT_EQ(r.problem->seq, 12u);
}

// Someone who edits a record and recomputes every prev after it still cannot
// sign the next checkpoint.
TEST_F(AuditChain, RechainedForgeryFailsAtTheNextCheckpoint) {
  {
    AuditLog log(options());
    write_records(log, 50);
  }
  auto ls = lines(path_);
  size_t i = index_of(ls, 25);
  ls[i].replace(ls[i].find("/usr/bin/git"), 12, "/usr/bin/vim");
  chain::Hasher h;
  for (size_t k = i + 1; k < ls.size(); ++k) {
    std::string prev = h.hex(ls[k - 1]);
    ls[k].replace(ls[k].find("\"prev\":\"") + 8, 64, prev);
  }
  put_lines(path_, ls);
  auto r = verify();
  ASSERT_TRUE(r.problem);
  EXPECT_EQ(r.problem->kind, Tamper::kBadSignature) << describe(r);
  // The first checkpoint after seq 25: records are 1..10 then a checkpoint
  // (11), 12..21, checkpoint 22, 23..32, checkpoint 33.
  EXPECT_EQ(r.problem->seq, 33u) << describe(r);
  EXPECT_EQ(r.signed_through, 22u);
}

TEST_F(AuditChain, OtherKeyIsRefused) {
  {
    AuditLog log(options());
    write_records(log, 5);
  }
  auto other = dir_ / "other";
  chain::SigningKey::load_or_create(other.string());
  auto r = verify_audit_logs({path_}, chain::VerifyKey::load(other.string() + ".pub"));
  ASSERT_TRUE(r.problem);
  EXPECT_EQ(r.problem->kind, Tamper::kBadSignature);
}

TEST_F(AuditChain, RotationChainsAcrossFilesInAnyOrder) {
  auto o = options();
  o.max_bytes = 4096;
  {
    AuditLog log(o);
    write_records(log, 200);
  }
  auto rotated = AuditLog::rotated_files(path_);
  ASSERT_GE(rotated.size(), 3u);
  std::vector<std::string> files = rotated;
  files.push_back(path_);
  std::shuffle(files.begin(), files.end(), std::mt19937(7));
  auto r = verify(files);
  ASSERT_FALSE(r.problem) << describe(r);
  EXPECT_EQ(r.first_seq, 1u);
  EXPECT_EQ(r.signed_through, r.last_seq);
  // Every rotated file ends in its seal.
  for (const auto& f : rotated) EXPECT_NE(lines(f).back().find("\"reason\":\"rotation\""), std::string::npos);

  // A rotated file cut short (its seal and records before it gone).
  auto ls = lines(rotated[1]);
  ls.resize(ls.size() - 3);
  put_lines(rotated[1], ls);
  r = verify();
  ASSERT_TRUE(r.problem);
  EXPECT_EQ(r.problem->kind, Tamper::kTruncated) << describe(r);
  EXPECT_EQ(r.problem->file, rotated[2]);
}

// Rotation by age: tick() seals and renames a file older than max_age, and
// the chain carries on into the next one.
TEST_F(AuditChain, RotationByAge) {
  auto o = options();
  o.max_age = std::chrono::seconds(0);
  {
    AuditLog log(o);
    write_records(log, 5);
    log.tick();
    EXPECT_EQ(AuditLog::rotated_files(path_).size(), 1u);
    log.tick();  // nothing written since: an empty file is not rotated
    EXPECT_EQ(AuditLog::rotated_files(path_).size(), 1u);
    write_records(log, 5);
  }
  auto r = verify();
  ASSERT_FALSE(r.problem) << describe(r);
  EXPECT_EQ(r.first_seq, 1u);
  EXPECT_EQ(r.signed_through, r.last_seq);
}

// A full disk, as a file size limit: every write fails (a batch part-way
// through), rotation by age keeps failing; once writes work again the held
// batch goes out whole and the chain has no gap. It had one: a rotation
// checkpoint that could not be written still took its seq.
TEST_F(AuditChain, FailedWritesLeaveNoGapAndAreWrittenLater) {
  auto o = options();
  o.max_age = std::chrono::seconds(0);
  {
    AuditLog log(o);
    write_records(log, 20);
    uint64_t seq = log.last_seq();
    auto limit = std::make_unique<FileSizeLimit>(fs::file_size(path_) + 300);  // part of a batch
    uint64_t size = fs::file_size(path_);
    // idle, the rotation by age due: its checkpoint cannot be written
    for (int i = 0; i < 3; ++i) EXPECT_THROW(log.tick(), std::system_error);
    for (int i = 0; i < 30; ++i) {
      auto r = exec_record(100 + i);
      log.append(r);
    }
    EXPECT_THROW(log.flush(), std::system_error);
    EXPECT_EQ(fs::file_size(path_), size) << "the parts written were cut back";
    EXPECT_EQ(log.last_seq(), seq) << "nothing failed took a seq";
    EXPECT_EQ(log.pending(), 30u) << "the batch is held";
    limit.reset();
    log.flush();
    EXPECT_EQ(log.pending(), 0u);
    log.tick();  // the rotation, at last
    EXPECT_EQ(AuditLog::rotated_files(path_).size(), 1u);
  }
  auto r = verify();
  ASSERT_FALSE(r.problem) << describe(r);
  EXPECT_EQ(r.first_seq, 1u);
  EXPECT_EQ(r.signed_through, r.last_seq);
  std::set<std::string> execs;
  for (const auto& l : lines(AuditLog::rotated_files(path_).front()))
    if (l.find("/usr/bin/git") != std::string::npos) execs.insert(l.substr(l.find("status ")));
  EXPECT_EQ(execs.size(), 50u) << "every record once";
}

// logrotate's `create` (or an mv) moves the live file away under a running
// writer: the new file carries the chain on, not a new one from seq 1.
TEST_F(AuditChain, LiveFileMovedAwayCarriesTheChainOn) {
  const std::string moved = path_ + ".1";
  {
    AuditLog log(options());
    write_records(log, 20);
    uint64_t last = log.last_seq();
    fs::rename(path_, moved);
    write_records(log, 5);
    EXPECT_EQ(chain::parse_head(lines(path_).front())->seq, last + 1);
  }
  EXPECT_EQ(chain::parse_head(lines(path_).front())->prev, chain::Hasher().hex(lines(moved).back()));
  auto r = verify({moved, path_});
  ASSERT_FALSE(r.problem) << describe(r);
  EXPECT_EQ(r.first_seq, 1u);
  EXPECT_EQ(r.signed_through, r.last_seq);
}

// The same with two writers: the one that writes first after the move is
// not the one that wrote last before it, and a third starts after it.
TEST_F(AuditChain, LiveFileMovedAwayUnderTwoWritersForksNothing) {
  const std::string moved = path_ + ".1";
  AuditLog b(options());
  write_records(b, 5);
  {
    AuditLog a(options());
    write_records(a, 20);
  }
  uint64_t end = chain::parse_head(lines(path_).back())->seq;
  fs::rename(path_, moved);
  write_records(b, 5);
  EXPECT_EQ(chain::parse_head(lines(path_).front())->seq, end + 1) << "b's own end was behind a's";
  {
    AuditLog c(options());
    write_records(c, 3);
  }
  b.close();
  auto r = verify({moved, path_});
  ASSERT_FALSE(r.problem) << describe(r);
  EXPECT_EQ(r.signed_through, r.last_seq);
}

TEST_F(AuditChain, MissingMiddleFileIsTruncation) {
  auto o = options();
  o.max_bytes = 4096;
  {
    AuditLog log(o);
    write_records(log, 200);
  }
  auto files = AuditLog::rotated_files(path_);
  files.push_back(path_);
  files.erase(files.begin() + 1);
  auto r = verify(files);
  ASSERT_TRUE(r.problem);
  // The file before the gap is sealed, so what is missing was removed.
  EXPECT_EQ(r.problem->kind, Tamper::kRemoved) << describe(r);
}

// kill -9 of a writer mid-storm: the log verifies up to its last whole
// record; the next writer cuts a torn record off, says so in a signed
// checkpoint, and carries the chain on.
TEST_F(AuditChain, KilledWriterThenResume) {
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    AuditLog log(options());
    for (int i = 0;; ++i) {
      auto r = exec_record(i);
      log.append(r);
      if (i % 50 == 0) log.flush();
    }
  }
  // Let it write a while, then kill it where it stands.
  for (int i = 0; i < 200 && (!fs::exists(path_) || fs::file_size(path_) < 200'000); ++i)
    ::usleep(10'000);
  ::kill(child, SIGKILL);
  int status;
  ::waitpid(child, &status, 0);
  // A power loss can also leave half a record; add one.
  std::ofstream(path_, std::ios::app) << "{\"seq\":\"9999999\",\"prev\":\"ab12";

  auto r = verify();
  ASSERT_FALSE(r.problem) << describe(r);
  uint64_t before = r.last_seq;
  EXPECT_GT(before, 500u);
  EXPECT_NE(describe(r).find("torn record"), std::string::npos) << describe(r);

  {
    AuditLog log(options());
    EXPECT_EQ(log.last_seq(), before + 1);  // the resume checkpoint
    write_records(log, 20);
  }
  r = verify();
  ASSERT_FALSE(r.problem) << describe(r);
  EXPECT_EQ(r.last_seq, r.signed_through);
  EXPECT_GT(r.last_seq, before + 20);
  // At least the 29 bytes added; more when the kill itself tore a write.
  std::smatch m;
  std::string text = describe(r);
  ASSERT_TRUE(std::regex_search(text, m, std::regex("cut off a torn record of ([0-9]+) bytes")))
      << text;
  EXPECT_GE(std::stoul(m[1]), 29u) << text;
}

// A writer that cannot write (a full disk) when it cuts a torn record off
// holds its note; another writer dies mid-record meanwhile. Both cuts are
// told, each in a signed checkpoint of its own, in order.
TEST_F(AuditChain, TwoTornRecordsBeforeAWriteAreBothTold) {
  {
    AuditLog log(options());
    write_records(log, 10);
  }
  const std::string first = "{\"seq\":\"999\",\"prev\":\"ab";
  const std::string second = "{\"seq\":\"1000\",\"prev\":\"cd12";
  std::ofstream(path_, std::ios::app) << first;
  auto limit = std::make_unique<FileSizeLimit>(fs::file_size(path_) - first.size());  // no byte more
  {
    AuditLog log(options());  // cuts the first off; its note cannot be written
    limit.reset();
    std::ofstream(path_, std::ios::app) << second;  // another writer's crash
    write_records(log, 3);
  }
  auto r = verify();
  ASSERT_FALSE(r.problem) << describe(r);
  EXPECT_EQ(r.signed_through, r.last_seq);
  std::vector<uint64_t> cuts;
  const std::string text = describe(r);
  const std::regex cut("cut off a torn record of ([0-9]+) bytes");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), cut); it != std::sregex_iterator(); ++it)
    cuts.push_back(std::stoull((*it)[1]));
  EXPECT_EQ(cuts, (std::vector<uint64_t>{first.size(), second.size()})) << text;
}

// Two corral processes on one host log: one sequence, one chain.
TEST_F(AuditChain, ConcurrentWritersShareOneChain) {
  std::vector<pid_t> kids;
  for (int k = 0; k < 2; ++k) {
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      {
        AuditLog log(options());
        write_records(log, 500);
      }
      _exit(0);
    }
    kids.push_back(child);
  }
  for (pid_t k : kids) {
    int status;
    ::waitpid(k, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  auto r = verify();
  ASSERT_FALSE(r.problem) << describe(r);
  EXPECT_EQ(r.first_seq, 1u);
  uint64_t exec_lines = 0;
  for (const auto& l : lines(path_)) exec_lines += l.find("\"exec\":{") != std::string::npos;
  EXPECT_EQ(exec_lines, 1000u);
}

}  // namespace
}  // namespace corral
