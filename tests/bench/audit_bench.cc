// corral_bench_audit MODE ARGS: the in-process half of the audit-trail
// benchmark (scripts/bench_audit.sh). Each throughput mode prints one
// key=value line on stdout:
//
//   log N DIR                 N records through AuditLog (chain, a signed
//                             checkpoint every 1000, fsync by interval: the
//                             default options), and the same records through
//                             a plain writer (JSON, the same 1 MiB batches,
//                             write(2), fdatasync every second; no hashing or
//                             signing); best of 2 each, interleaved. Then the
//                             chained log through verify_audit_logs.
//   ship-kafka N              an N-record log shipped by a Shipper with one
//                             KafkaSink to librdkafka's mock cluster (three
//                             brokers, in this process), from cursor 0.
//   ship-syslog N PORT OUTFILE
//                             the same with a SyslogSink (replay window 0) to
//                             a collector on 127.0.0.1:PORT that writes each
//                             message as a line to OUTFILE (new or empty);
//                             done when OUTFILE holds every seq.
//
// and two collector watchers for the storm, which record when each seq
// first arrived and how long after its event time, then read a target seq
// on stdin, wait until every seq up to it has arrived (or none came for
// 30 s) and print when that was, the latency quantiles and their own CPU:
//
//   watch-syslog OUTFILE      follows what is appended to OUTFILE from now on
//   kafka-mock                hosts a mock cluster (topic corral.audit),
//                             prints "kafka-mock bootstraps=..." first, and
//                             consumes the topic by the corral.seq header.
//
// A collector line's seq is the first seq="N" in it (the syslog message's
// structured data), its event time the first "time" (the record's JSON); a
// line without a seq counts as nothing.
//
// Exit status: 0 when the figures were measured, 1 when something broke
// (an I/O error, a log that does not verify, delivery that stalled), 2 on
// bad usage. No figure is judged here.
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <poll.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include "audit.pb.h"
#include "audit_log.h"
#include "chain.h"
#include "json.h"
#include "kafka_sink.h"
#include "shipper.h"
#include "sink.h"
#include "syslog_sink.h"
#include "unique_fd.h"
#include "verify.h"

namespace {

using corral::audit::Record;
using Clock = std::chrono::steady_clock;

constexpr const char* kTopic = "corral.audit";
constexpr size_t kPoolSize = 4096;
constexpr size_t kBatchBytes = 1u << 20;  // what AuditLog::append flushes at
// Delivery that makes no progress this long has broken, not slowed.
constexpr auto kStall = std::chrono::seconds(30);

// Usage errors exit 2, everything else that throws exits 1.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Wall clock, for comparing with `date +%s.%N` in the script.
double epoch_now() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

uint64_t parse_count(const char* s, const char* what) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(s, s + std::strlen(s), v);
  if (ec != std::errc() || *end != '\0' || v == 0)
    throw UsageError(std::string("bad ") + what + " '" + s + "'");
  return v;
}

std::system_error sys_error(const std::string& what) {
  return std::system_error(errno, std::generic_category(), what);
}

// ---- records -----------------------------------------------------------

// A pool of records like those the supervisor writes for a build: mostly
// opens, some execs and connects, 390-470 bytes of JSON besides the chain's
// seq/prev head (the supervisor's opens: 390-480). Records are reused
// from the pool with a fresh time (stamp()), so building them is not what
// is measured.
std::vector<Record> make_pool() {
  std::mt19937_64 rng(42);
  auto pick = [&](std::initializer_list<const char*> options) {
    return *(options.begin() + rng() % options.size());
  };
  std::vector<Record> pool(kPoolSize);
  for (size_t i = 0; i < kPoolSize; ++i) {
    Record& r = pool[i];
    r.set_host("ci-runner-07");
    r.set_session("3f9a0c21d4b7e865");
    r.set_boot_id("f0995dc2-3312-4b76-b4ce-f6bd3d621a9a");
    r.set_redacted(0);
    auto* p = r.mutable_process();
    p->set_pid(41000 + static_cast<uint32_t>(rng() % 400));
    p->set_tid(p->pid() + static_cast<uint32_t>(rng() % 3));
    p->set_ppid(40990);
    p->set_uid(1000);
    p->set_gid(1000);
    unsigned kind = static_cast<unsigned>(rng() % 20);
    if (kind < 15) {
      p->set_comm(pick({"cc1plus", "python3", "node", "git", "cargo"}));
      auto* o = r.mutable_open();
      std::string rel = std::string(pick({"src", "include", "lib", "tests"})) + "/" +
                        pick({"parser", "main", "config", "index"}) + std::to_string(rng() % 100) +
                        pick({".cc", ".h", ".py", ".js"});
      o->set_path("/home/dev/app/" + rel);
      o->set_requested(rel);
      bool missing = rng() % 8 == 0;
      o->add_flags("O_RDONLY");
      o->add_flags("O_CLOEXEC");
      o->set_raw_flags(02000000);
      o->set_result(missing ? -2 : 3 + static_cast<int64_t>(rng() % 20));
      if (missing) o->set_error("ENOENT");
    } else if (kind < 18) {
      p->set_comm(pick({"bash", "make", "sh"}));
      auto* e = r.mutable_exec();
      if (rng() % 2) {
        e->set_path("/usr/bin/git");
        for (const char* a : {"git", "status", "--porcelain=v2", "--untracked-files=no"})
          e->add_argv(a);
      } else {
        e->set_path("/usr/bin/x86_64-linux-gnu-g++-12");
        for (const char* a : {"c++", "-O2", "-std=c++20", "-c", "src/parser.cc", "-o", "parser.o"})
          e->add_argv(a);
      }
    } else {
      p->set_comm(pick({"node", "curl", "pip"}));
      auto* c = r.mutable_connect();
      c->set_family("inet");
      c->set_address(pick({"140.82.112.3", "151.101.0.223", "104.16.24.35"}));
      c->set_port(443);
      c->set_fd(5 + static_cast<int32_t>(rng() % 10));
      c->set_result(-115);
      c->set_error("EINPROGRESS");
      c->set_protocol("tcp");
    }
  }
  return pool;
}

// The record's event time, as the supervisor stamps it.
void stamp(Record& r, uint64_t i) {
  static const uint64_t base_ns = static_cast<uint64_t>(epoch_now() * 1e9);
  uint64_t ns = base_ns + i * 5000;
  r.mutable_time()->set_seconds(static_cast<int64_t>(ns / 1'000'000'000));
  r.mutable_time()->set_nanos(static_cast<int32_t>(ns % 1'000'000'000));
  r.set_boot_ns(10'000'000'000'000ull + i * 5000);
}

corral::AuditLogOptions log_options(const std::string& dir) {
  corral::AuditLogOptions o;
  o.path = dir + "/audit.jsonl";
  o.key_path = dir + "/audit.key";
  o.host = "ci-runner-07";
  o.boot_id = "f0995dc2-3312-4b76-b4ce-f6bd3d621a9a";
  return o;
}

std::vector<std::string> log_files(const std::string& path) {
  auto files = corral::AuditLog::rotated_files(path);
  files.push_back(path);
  return files;
}

void remove_log(const std::string& path) {
  for (const auto& f : log_files(path)) std::filesystem::remove(f);
}

uint64_t total_size(const std::vector<std::string>& files) {
  uint64_t n = 0;
  for (const auto& f : files) n += std::filesystem::file_size(f);
  return n;
}

// Appends n records as the supervisor does (a flush at each MiB, a tick
// about once a second)
// and closes the log; returns the seconds that took, construction excluded.
double write_chained(std::vector<Record>& pool, uint64_t n, const corral::AuditLogOptions& o) {
  corral::AuditLog log(o);
  auto start = Clock::now();
  auto last_tick = start;
  for (uint64_t i = 0; i < n; ++i) {
    Record& r = pool[i % pool.size()];
    stamp(r, i);
    log.append(r);
    if (log.pending_bytes() >= (1u << 20)) log.flush();
    if ((i & 1023) == 0 && Clock::now() - last_tick >= std::chrono::seconds(1)) {
      log.tick();
      last_tick = Clock::now();
    }
  }
  log.close();
  return seconds_since(start);
}

void write_all(int fd, const std::string& out, const std::string& path) {
  size_t done = 0;
  while (done < out.size()) {
    ssize_t w = ::write(fd, out.data() + done, out.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) throw sys_error("write " + path);
    done += static_cast<size_t>(w);
  }
}

// The baseline: what writing the same records costs without the chain.
double write_plain(std::vector<Record>& pool, uint64_t n, const std::string& path) {
  corral::UniqueFd fd(
      ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600));
  if (!fd) throw sys_error("open " + path);
  std::string out;
  out.reserve(kBatchBytes + 4096);
  auto start = Clock::now();
  auto last_sync = start;
  for (uint64_t i = 0; i < n; ++i) {
    Record& r = pool[i % pool.size()];
    stamp(r, i);
    r.set_seq(i + 1);
    corral::append_json(r, out);
    out.push_back('\n');
    if (out.size() >= kBatchBytes) {
      write_all(fd.get(), out, path);
      out.clear();
      if (Clock::now() - last_sync >= std::chrono::seconds(1)) {
        if (::fdatasync(fd.get()) != 0) throw sys_error("fdatasync " + path);
        last_sync = Clock::now();
      }
    }
  }
  write_all(fd.get(), out, path);
  if (::fdatasync(fd.get()) != 0) throw sys_error("fdatasync " + path);
  return seconds_since(start);
}

int mode_log(uint64_t n, const std::string& dir) {
  std::filesystem::create_directories(dir);
  auto pool = make_pool();
  auto o = log_options(dir);
  std::string plain_path = dir + "/plain.jsonl";
  double best_chain = 0, best_plain = 0;
  uint64_t chain_bytes = 0, plain_bytes = 0;
  // Interleaved so that a burst of load from elsewhere hits both alike.
  for (int rep = 0; rep < 2; ++rep) {
    std::filesystem::remove(plain_path);
    double p = write_plain(pool, n, plain_path);
    plain_bytes = std::filesystem::file_size(plain_path);
    std::filesystem::remove(plain_path);
    best_plain = std::max(best_plain, n / p);

    remove_log(o.path);
    double c = write_chained(pool, n, o);
    chain_bytes = total_size(log_files(o.path));
    best_chain = std::max(best_chain, n / c);
    std::fprintf(stderr, "#   log run %d: chain %.0f records/s, plain %.0f records/s\n", rep + 1,
                 n / c, n / p);
  }

  // The last chained log, as `corral audit verify` reads it.
  auto key = corral::chain::VerifyKey::load(o.key_path + ".pub");
  auto start = Clock::now();
  auto result = corral::verify_audit_logs(log_files(o.path), key);
  double v = seconds_since(start);
  if (result.problem) {
    std::fprintf(stderr, "corral_bench_audit: the chained log does not verify: %s",
                 corral::describe(result).c_str());
    return 1;
  }
  uint64_t last = corral::last_seq_in_log(o.path);
  if (result.records != last) {
    std::fprintf(stderr, "corral_bench_audit: verified %llu records of %llu\n",
                 static_cast<unsigned long long>(result.records),
                 static_cast<unsigned long long>(last));
    return 1;
  }
  std::printf(
      "log records=%llu chain_per_sec=%.0f plain_per_sec=%.0f ratio=%.3f chain_bytes=%.0f "
      "plain_bytes=%.0f files=%zu verified=%llu checkpoints=%llu verify_per_sec=%.0f\n",
      static_cast<unsigned long long>(n), best_chain, best_plain, best_chain / best_plain,
      static_cast<double>(chain_bytes) / static_cast<double>(last),
      static_cast<double>(plain_bytes) / static_cast<double>(n), log_files(o.path).size(),
      static_cast<unsigned long long>(result.records),
      static_cast<unsigned long long>(result.checkpoints), result.records / v);
  remove_log(o.path);
  return 0;
}

// ---- collectors ----------------------------------------------------------

// When each seq first reached a collector.
class Arrivals {
 public:
  // `event` is the record's own time (0 when unknown): how long after it
  // the record arrived is its latency.
  void add(uint64_t seq, double at, double event) {
    if (seq >= at_.size()) at_.resize(std::max<size_t>(seq + 1, at_.size() * 2), 0);
    if (at_[seq] != 0) {
      ++duplicates_;
      return;
    }
    at_[seq] = at;
    ++distinct_;
    if (event > 0) latencies_.push_back(at - event);
    while (through_ + 1 < at_.size() && at_[through_ + 1] != 0) ++through_;
  }
  // Every seq in 1..through() has arrived.
  uint64_t through() const { return through_; }
  // When the latest of 1..target arrived, once through() >= target.
  double last(uint64_t target) const {
    return *std::max_element(at_.begin() + 1, at_.begin() + static_cast<ptrdiff_t>(target) + 1);
  }
  uint64_t distinct() const { return distinct_; }
  uint64_t duplicates() const { return duplicates_; }
  uint64_t missing(uint64_t target) const {
    uint64_t have = 0;
    for (uint64_t s = 1; s <= target && s < at_.size(); ++s) have += at_[s] != 0;
    return target - have;
  }
  // The q-quantile of the latencies, seconds (0 when there are none).
  double latency(double q) {
    if (latencies_.empty()) return 0;
    auto k =
        latencies_.begin() + static_cast<ptrdiff_t>(q * static_cast<double>(latencies_.size() - 1));
    std::nth_element(latencies_.begin(), k, latencies_.end());
    return *k;
  }

 private:
  std::vector<double> at_;
  uint64_t through_ = 0;
  uint64_t distinct_ = 0;
  uint64_t duplicates_ = 0;
  std::vector<double> latencies_;
};

// The "time" of a record's JSON (RFC 3339, UTC, as append_json writes it)
// as epoch seconds; 0 when there is none.
double time_of(std::string_view json) {
  constexpr std::string_view kKey = "\"time\":\"";
  size_t at = json.find(kKey);
  if (at == std::string_view::npos || json.size() - at < kKey.size() + 20) return 0;
  std::string text(json.substr(at + kKey.size(), 40));
  struct tm tm {};
  int consumed = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &consumed) != 6)
    return 0;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  double seconds = static_cast<double>(timegm(&tm));
  double scale = 0.1;
  if (text[static_cast<size_t>(consumed)] == '.')
    for (size_t i = static_cast<size_t>(consumed) + 1; i < text.size() && std::isdigit(text[i]);
         ++i) {
      seconds += (text[i] - '0') * scale;
      scale /= 10;
    }
  return seconds;
}

// The first seq="N" of a collector's line.
std::optional<uint64_t> seq_of_line(std::string_view line) {
  constexpr std::string_view kKey = "seq=\"";
  size_t at = line.find(kKey);
  if (at == std::string_view::npos) return std::nullopt;
  const char* p = line.data() + at + kKey.size();
  uint64_t seq = 0;
  auto [end, ec] = std::from_chars(p, line.data() + line.size(), seq);
  if (ec != std::errc() || end == p || *end != '"') return std::nullopt;
  return seq;
}

// Follows a file that rsyslogd appends to (and may not have created yet):
// from its start, or from where it ends now.
class FileTail {
 public:
  FileTail(std::string path, bool from_end) : path_(std::move(path)) {
    if (!from_end) return;
    fd_ = corral::UniqueFd(::open(path_.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd_ && ::lseek(fd_.get(), 0, SEEK_END) < 0) throw sys_error("lseek " + path_);
  }
  // Reads what was appended; returns the number of whole lines seen.
  size_t read(Arrivals& arrivals) {
    if (!fd_) {
      fd_ = corral::UniqueFd(::open(path_.c_str(), O_RDONLY | O_CLOEXEC));
      if (!fd_) {
        if (errno == ENOENT) return 0;
        throw sys_error("open " + path_);
      }
    }
    size_t lines = 0;
    char buf[1 << 16];
    while (true) {
      ssize_t n = ::read(fd_.get(), buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw sys_error("read " + path_);
      if (n == 0) break;
      double now = epoch_now();
      partial_.append(buf, static_cast<size_t>(n));
      size_t begin = 0, nl;
      while ((nl = partial_.find('\n', begin)) != std::string::npos) {
        std::string_view line = std::string_view(partial_).substr(begin, nl - begin);
        if (auto seq = seq_of_line(line)) arrivals.add(*seq, now, time_of(line));
        ++lines;
        begin = nl + 1;
      }
      partial_.erase(0, begin);
    }
    return lines;
  }

 private:
  std::string path_;
  corral::UniqueFd fd_;
  std::string partial_;
};

// librdkafka's handles and its mock cluster, torn down in reverse order.
struct KafkaDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
  void operator()(rd_kafka_mock_cluster_t* m) const { rd_kafka_mock_cluster_destroy(m); }
  void operator()(rd_kafka_topic_partition_list_t* l) const {
    rd_kafka_topic_partition_list_destroy(l);
  }
};
using KafkaHandle = std::unique_ptr<rd_kafka_t, KafkaDeleter>;

KafkaHandle kafka_client(rd_kafka_type_t type,
                         const std::vector<std::pair<const char*, std::string>>& properties) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char error[512];
  for (const auto& [k, v] : properties)
    if (rd_kafka_conf_set(conf, k, v.c_str(), error, sizeof error) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      throw std::runtime_error(std::string("kafka: ") + error);
    }
  // The mock brokers log every connection; only failures below matter.
  rd_kafka_conf_set_log_cb(conf, [](const rd_kafka_t*, int, const char*, const char*) {});
  rd_kafka_t* rk = rd_kafka_new(type, conf, error, sizeof error);
  if (!rk) {
    rd_kafka_conf_destroy(conf);
    throw std::runtime_error(std::string("kafka: ") + error);
  }
  return KafkaHandle(rk);
}

// Three mock brokers on 127.0.0.1 and the topic (three partitions, each on
// all three brokers, as a production topic would be).
struct MockCluster {
  KafkaHandle host = kafka_client(RD_KAFKA_PRODUCER, {});
  std::unique_ptr<rd_kafka_mock_cluster_t, KafkaDeleter> mock;
  std::string bootstraps;

  MockCluster() {
    mock.reset(rd_kafka_mock_cluster_new(host.get(), 3));
    if (!mock) throw std::runtime_error("kafka: cannot start the mock cluster");
    bootstraps = rd_kafka_mock_cluster_bootstraps(mock.get());
    if (rd_kafka_mock_topic_create(mock.get(), kTopic, 3, 3) != RD_KAFKA_RESP_ERR_NO_ERROR)
      throw std::runtime_error(std::string("kafka: cannot create topic ") + kTopic);
  }
};

// Reads the topic from the start, every partition, by the corral.seq header.
class TopicReader {
 public:
  explicit TopicReader(const std::string& bootstraps)
      : rk_(kafka_client(RD_KAFKA_CONSUMER, {{"bootstrap.servers", bootstraps},
                                             {"group.id", "corral-bench"},
                                             {"enable.auto.commit", "false"},
                                             {"fetch.wait.max.ms", "10"}})) {
    std::unique_ptr<rd_kafka_topic_partition_list_t, KafkaDeleter> all(
        rd_kafka_topic_partition_list_new(3));
    for (int32_t p = 0; p < 3; ++p)
      rd_kafka_topic_partition_list_add(all.get(), kTopic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    if (rd_kafka_assign(rk_.get(), all.get()) != RD_KAFKA_RESP_ERR_NO_ERROR)
      throw std::runtime_error("kafka: cannot assign the topic's partitions");
  }
  ~TopicReader() { rd_kafka_consumer_close(rk_.get()); }

  // Consumes for up to timeout_ms.
  void read(Arrivals& arrivals, int timeout_ms) {
    for (rd_kafka_message_t* m = rd_kafka_consumer_poll(rk_.get(), timeout_ms); m;
         m = rd_kafka_consumer_poll(rk_.get(), 0)) {
      double now = epoch_now();
      rd_kafka_headers_t* headers = nullptr;
      const void* value = nullptr;
      size_t size = 0;
      if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR && rd_kafka_message_headers(m, &headers) == 0 &&
          rd_kafka_header_get_last(headers, "corral.seq", &value, &size) == 0) {
        const char* p = static_cast<const char*>(value);
        uint64_t seq = 0;
        if (std::from_chars(p, p + size, seq).ec == std::errc())
          arrivals.add(seq, now,
                       time_of(std::string_view(static_cast<const char*>(m->payload), m->len)));
      } else if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR &&
                 m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        std::fprintf(stderr, "corral_bench_audit: kafka consumer: %s\n",
                     rd_kafka_message_errstr(m));
      }
      rd_kafka_message_destroy(m);
    }
  }

 private:
  KafkaHandle rk_;
};

// A line from stdin, if one is complete; sets eof when stdin ended.
std::optional<std::string> stdin_line(std::string& buf, bool& eof) {
  pollfd p{0, POLLIN, 0};
  if (!eof && ::poll(&p, 1, 0) > 0) {
    char chunk[256];
    ssize_t n = ::read(0, chunk, sizeof chunk);
    if (n <= 0)
      eof = true;
    else
      buf.append(chunk, static_cast<size_t>(n));
  }
  size_t nl = buf.find('\n');
  if (nl == std::string::npos) return std::nullopt;
  std::string line = buf.substr(0, nl);
  buf.erase(0, nl + 1);
  return line;
}

// The storm's watchers: `collect` takes in what arrived, waiting up to the
// given milliseconds; runs until the target read on stdin is complete.
int watch(const char* name, const std::function<void(Arrivals&, int)>& collect) {
  Arrivals arrivals;
  std::string buf;
  bool eof = false;
  uint64_t target = 0;
  uint64_t seen = 0;
  auto progress_at = Clock::now();
  while (true) {
    collect(arrivals, 10);
    if (arrivals.distinct() + arrivals.duplicates() != seen) {
      seen = arrivals.distinct() + arrivals.duplicates();
      progress_at = Clock::now();
    }
    if (!target) {
      if (auto line = stdin_line(buf, eof)) {
        target = parse_count(line->c_str(), "target seq");
        progress_at = Clock::now();
      } else if (eof) {
        return 1;  // the script went away
      }
      continue;
    }
    bool complete = arrivals.through() >= target;
    if (complete || Clock::now() - progress_at >= kStall) {
      rusage ru{};
      getrusage(RUSAGE_SELF, &ru);
      auto secs = [](const timeval& tv) {
        return static_cast<double>(tv.tv_sec) + tv.tv_usec * 1e-6;
      };
      std::printf(
          "%s target=%llu received=%llu missing=%llu duplicates=%llu last_arrival=%.3f "
          "latency_p50=%.3f latency_p99=%.3f latency_max=%.3f cpu_seconds=%.2f\n",
          name, static_cast<unsigned long long>(target),
          static_cast<unsigned long long>(arrivals.distinct()),
          static_cast<unsigned long long>(arrivals.missing(target)),
          static_cast<unsigned long long>(arrivals.duplicates()),
          complete ? arrivals.last(target) : epoch_now(), arrivals.latency(0.5),
          arrivals.latency(0.99), arrivals.latency(1), secs(ru.ru_utime) + secs(ru.ru_stime));
      return 0;
    }
  }
}

int mode_watch_syslog(const std::string& outfile) {
  FileTail tail(outfile, true);
  return watch("syslog", [&](Arrivals& a, int ms) {
    if (!tail.read(a)) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  });
}

int mode_kafka_mock() {
  MockCluster cluster;
  std::printf("kafka-mock bootstraps=%s\n", cluster.bootstraps.c_str());
  std::fflush(stdout);
  TopicReader reader(cluster.bootstraps);
  return watch("kafka", [&](Arrivals& a, int ms) { reader.read(a, ms); });
}

// ---- shipping --------------------------------------------------------------

// A sink as the shipper sees it, noting when delivery of the whole log was
// first confirmed (the cursor file is saved only once a second, too coarse
// to time by alone).
class TimedSink : public corral::Sink {
 public:
  TimedSink(std::unique_ptr<corral::Sink> inner, uint64_t target)
      : inner_(std::move(inner)), target_(target) {}
  const std::string& name() const override { return inner_->name(); }
  corral::ParseDepth depth() const override { return inner_->depth(); }
  void send(const corral::LogRecord& record) override { inner_->send(record); }
  uint64_t poll(std::chrono::milliseconds timeout) override {
    uint64_t d = inner_->poll(timeout);
    delivered_ = d;
    if (d >= target_ && !done_) {
      done_at_ = Clock::now();
      done_ = true;
    }
    return d;
  }
  void reset() override {
    ++resets_;
    inner_->reset();
  }

  uint64_t delivered() const { return delivered_; }
  bool done() const { return done_; }
  Clock::time_point done_at() const { return done_at_; }  // once done()
  unsigned resets() const { return resets_; }

 private:
  std::unique_ptr<corral::Sink> inner_;
  uint64_t target_;
  std::atomic<uint64_t> delivered_{0};
  std::atomic<bool> done_{false};
  Clock::time_point done_at_;  // written before done_ is set
  std::atomic<unsigned> resets_{0};
};

// Writes an n-record log in a fresh directory; returns its last seq.
uint64_t write_log_to_ship(uint64_t n, const std::string& dir) {
  auto pool = make_pool();
  write_chained(pool, n, log_options(dir));
  return corral::last_seq_in_log(log_options(dir).path);
}

// A directory of our own under $TMPDIR, removed when done.
struct TempDir {
  std::string path;
  TempDir() {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/corral-bench-audit.XXXXXX";
    if (!::mkdtemp(templ.data())) throw sys_error("mkdtemp " + templ);
    path = templ;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

// Ships the log at dir from cursor 0 through `sink` until it is delivered,
// `arrived` says the collector has it all (when given) and the cursor file
// has caught up. Prints the line for `mode`.
int ship(const char* mode, const std::string& dir, uint64_t last,
         std::unique_ptr<corral::Sink> sink, const std::function<bool()>& arrived) {
  auto timed = std::make_unique<TimedSink>(std::move(sink), last);
  TimedSink& t = *timed;
  std::string state = dir + "/state";
  corral::ShipperOptions so;
  so.log_path = log_options(dir).path;
  so.state_dir = state;
  so.on_change = [](const std::string& sink, bool up, const std::string& message) {
    std::fprintf(stderr, "#   %s %s: %s\n", sink.c_str(), up ? "up" : "down", message.c_str());
  };
  corral::Shipper shipper(so);
  std::string name = t.name();
  shipper.add(std::move(timed));

  auto start = Clock::now();
  shipper.start();
  std::optional<double> at_collector, cursor_saved;
  uint64_t progress = 0;
  auto progress_at = start;
  while (!t.done() || (arrived && !at_collector) || !cursor_saved) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    if (arrived && !at_collector && arrived()) at_collector = seconds_since(start);
    if (!cursor_saved && corral::Shipper::load_cursor(state, name) >= last)
      cursor_saved = seconds_since(start);
    if (t.delivered() != progress) {
      progress = t.delivered();
      progress_at = Clock::now();
    }
    if (Clock::now() - progress_at >= kStall) {
      std::fprintf(stderr, "corral_bench_audit: %s: delivery stalled at seq %llu of %llu\n", mode,
                   static_cast<unsigned long long>(progress),
                   static_cast<unsigned long long>(last));
      return 1;
    }
  }
  shipper.stop();
  double confirmed = std::chrono::duration<double>(t.done_at() - start).count();
  // The figure is end to end: the later of the sink confirming and the
  // collector having every record.
  double seconds = std::max(confirmed, at_collector.value_or(0));
  std::printf(
      "%s records=%llu seconds=%.3f records_per_sec=%.0f confirmed_seconds=%.3f "
      "cursor_seconds=%.3f resets=%u\n",
      mode, static_cast<unsigned long long>(last), seconds, last / seconds, confirmed,
      *cursor_saved, t.resets());
  return 0;
}

int mode_ship_kafka(uint64_t n) {
  TempDir dir;
  uint64_t last = write_log_to_ship(n, dir.path);
  MockCluster cluster;
  corral::KafkaSinkOptions ko;
  ko.brokers = cluster.bootstraps;
  ko.topic = kTopic;
  return ship("ship-kafka", dir.path, last, std::make_unique<corral::KafkaSink>(ko), nullptr);
}

int mode_ship_syslog(uint64_t n, uint16_t port, const std::string& outfile) {
  TempDir dir;
  uint64_t last = write_log_to_ship(n, dir.path);
  corral::SyslogSinkOptions so;
  so.port = port;
  so.replay_window = std::chrono::milliseconds(0);
  FileTail tail(outfile, false);
  Arrivals arrivals;
  return ship("ship-syslog", dir.path, last, std::make_unique<corral::SyslogSink>(so), [&] {
    tail.read(arrivals);
    return arrivals.through() >= last;
  });
}

int usage() {
  std::fprintf(stderr,
               "usage: corral_bench_audit log N DIR\n"
               "       corral_bench_audit ship-kafka N\n"
               "       corral_bench_audit ship-syslog N PORT OUTFILE\n"
               "       corral_bench_audit watch-syslog OUTFILE   (then the target seq on stdin)\n"
               "       corral_bench_audit kafka-mock             (then the target seq on stdin)\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  // corral's libraries log through spdlog; stdout is for the figures.
  spdlog::set_default_logger(spdlog::stderr_color_mt("corral_bench_audit"));
  spdlog::set_level(spdlog::level::warn);
  if (argc < 2) return usage();
  std::string mode = argv[1];
  try {
    if (mode == "log" && argc == 4) return mode_log(parse_count(argv[2], "N"), argv[3]);
    if (mode == "ship-kafka" && argc == 3) return mode_ship_kafka(parse_count(argv[2], "N"));
    if (mode == "ship-syslog" && argc == 5) {
      uint64_t port = parse_count(argv[3], "PORT");
      if (port > 65535) throw UsageError(std::string("bad PORT '") + argv[3] + "'");
      return mode_ship_syslog(parse_count(argv[2], "N"), static_cast<uint16_t>(port), argv[4]);
    }
    if (mode == "watch-syslog" && argc == 3) return mode_watch_syslog(argv[2]);
    if (mode == "kafka-mock" && argc == 2) return mode_kafka_mock();
    return usage();
  } catch (const UsageError& e) {
    std::fprintf(stderr, "corral_bench_audit: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "corral_bench_audit: %s: %s\n", mode.c_str(), e.what());
    return 1;
  }
}
