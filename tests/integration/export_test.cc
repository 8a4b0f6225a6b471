// `corral export` end to end: real sessions write the host log, the shipper
// streams it to a real rsyslogd (TCP, TLS) and to librdkafka's mock cluster,
// and what arrives is compared with the log, record by record.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <thread>

#include "harness.h"
#include "kafka_test_util.h"
#include "rsyslog.h"

namespace corral::test {
namespace {

using namespace std::chrono_literals;

// The log's lines by seq (all files of it).
std::map<uint64_t, std::string> log_lines(const std::string& path) {
  std::map<uint64_t, std::string> out;
  std::vector<std::string> files;
  std::string base = std::filesystem::path(path).filename();
  for (const auto& e : std::filesystem::directory_iterator(std::filesystem::path(path).parent_path()))
    if (e.path().filename().string().starts_with(base) &&
        !e.path().filename().string().ends_with(".lock"))
      files.push_back(e.path());
  for (const auto& f : files) {
    std::ifstream in(f);
    for (std::string l; std::getline(in, l);) {
      auto q = l.find("\",\"prev\"");
      if (l.starts_with("{\"seq\":\"") && q != std::string::npos)
        out[std::stoull(l.substr(8, q - 8))] = l;
    }
  }
  return out;
}

uint64_t sd_seq(const SyslogMessage& m) {
  static const std::regex re("seq=\"([0-9]+)\"");
  std::smatch match;
  return std::regex_search(m.structured_data, match, re) ? std::stoull(match[1]) : 0;
}

// `corral export` as a child; SIGTERM and reaped at destruction.
class Exporter {
 public:
  Exporter(const std::string& audit, const std::string& state, std::vector<std::string> sink_args)
      : log_(state + "/export.stderr") {
    std::vector<std::string> args = {corral_bin(), "export",      "--audit",  audit,
                                     "--audit-key", audit_key(),  "--state-dir", state};
    args.insert(args.end(), sink_args.begin(), sink_args.end());
    std::filesystem::create_directories(state);
    pid_ = ::fork();
    if (pid_ == 0) {
      int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(fd, 2);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      _exit(127);
    }
  }
  ~Exporter() { stop(); }
  int stop() {
    if (pid_ <= 0) return status_;
    ::kill(pid_, SIGTERM);
    int st = 0;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return status_;
  }
  std::string stderr_text() const {
    std::ifstream in(log_);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

 private:
  std::string log_;
  pid_t pid_ = -1;
  int status_ = -1;
};

// A session that writes a few hundred records a second for `seconds`.
pid_t storm_session(const std::string& audit, int seconds, const std::string& err) {
  std::string script = "for i in $(seq 1 " + std::to_string(seconds * 4) + "); do " + actor_bin() +
                       " opens 100 /etc/hostname; sleep 0.25; done";
  return spawn_corral({"--allow-root"}, {"/bin/bash", "-c", script}, audit, err);
}

int wait_exit(pid_t pid) {
  int st = 0;
  ::waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

// Every record of the log arrives, whatever the collector went through:
// stopped for 10 s mid-storm, it is replayed from the cursor when back.
TEST(Export, SyslogOutageLosesNothing) {
  CORRAL_REQUIRE_ROOT();
  CORRAL_REQUIRE_RSYSLOG();
  TempDir d;
  Rsyslog rsyslog(Rsyslog::Options{.tls = false});
  ASSERT_TRUE(rsyslog.start());
  std::string audit = d.path() + "/audit.jsonl";
  Exporter exporter(audit, d.path() + "/state",
                    {"--syslog", "127.0.0.1:" + std::to_string(rsyslog.port())});

  pid_t corral = storm_session(audit, 14, d.path() + "/run.stderr");
  ASSERT_TRUE(wait_for_session_start(audit));
  std::this_thread::sleep_for(2s);
  ASSERT_TRUE(rsyslog.stop());
  std::this_thread::sleep_for(10s);
  ASSERT_TRUE(rsyslog.start());
  EXPECT_EQ(wait_exit(corral), 0);

  // Everything the log holds now (the exporter's own sink_down/sink_up
  // records included) must arrive.
  auto lines = log_lines(audit);
  ASSERT_GT(lines.size(), 3000u);
  std::map<uint64_t, std::string> got;
  size_t copies = 0;
  auto messages = rsyslog.wait_until(
      [&](const std::vector<SyslogMessage>& ms) {
        std::set<uint64_t> seen;
        for (const auto& m : ms) seen.insert(sd_seq(m));
        for (const auto& [seq, line] : lines)
          if (!seen.count(seq)) return false;
        return true;
      },
      60s);
  for (const auto& m : messages) {
    uint64_t seq = sd_seq(m);
    ASSERT_NE(seq, 0u) << m.raw;
    copies++;
    auto [it, fresh] = got.emplace(seq, m.msg);
    if (!fresh) {
      EXPECT_EQ(it->second, m.msg) << "two different bodies for seq " << seq;
    }
  }
  size_t missing = 0;
  for (const auto& [seq, line] : lines) {
    auto it = got.find(seq);
    if (it == got.end()) {
      if (++missing < 5) ADD_FAILURE() << "seq " << seq << " never arrived";
      continue;
    }
    EXPECT_EQ(it->second, line) << "seq " << seq;
  }
  EXPECT_EQ(missing, 0u) << exporter.stderr_text() << rsyslog.internal_log();
  std::cerr << "delivered " << lines.size() << " records, " << copies - got.size()
            << " duplicates replayed after the outage\n";
  // The outage is in the trail itself, and the trail is intact.
  std::string all;
  for (auto until = std::chrono::steady_clock::now() + 10s;
       all.find("sink_up") == std::string::npos && std::chrono::steady_clock::now() < until;
       std::this_thread::sleep_for(100ms)) {
    all.clear();
    for (const auto& [seq, line] : log_lines(audit)) all += line + "\n";
  }
  EXPECT_EQ(exporter.stop(), 0) << exporter.stderr_text();
  EXPECT_NE(all.find("\"kind\":\"sink_down\""), std::string::npos);
  EXPECT_NE(all.find("\"kind\":\"sink_up\""), std::string::npos);
  auto v = verify_audit({audit});
  EXPECT_EQ(v.exit_code, 0) << v.output;
}

// TLS with the collector's certificate checked, OCSF bodies; and a
// collector whose certificate does not chain to the given CA gets nothing.
TEST(Export, SyslogTlsCarriesOcsf) {
  CORRAL_REQUIRE_ROOT();
  CORRAL_REQUIRE_RSYSLOG();
  TempDir d;
  Rsyslog rsyslog;
  ASSERT_TRUE(rsyslog.start());
  std::string audit = d.path() + "/audit.jsonl";
  auto r = run_command({corral_bin(), "run", "--quiet", "--allow-root", "--audit", audit,
                        "--audit-key", audit_key(), "--", "/bin/sh", "-c", "cat /etc/hostname"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto lines = log_lines(audit);

  Exporter exporter(audit, d.path() + "/state",
                    {"--syslog", "127.0.0.1:" + std::to_string(rsyslog.tls_port()), "--syslog-tls",
                     "--syslog-ca", rsyslog.ca_cert_path(), "--format", "ocsf"});
  auto messages = rsyslog.wait_for_messages(lines.size(), 20s);
  ASSERT_GE(messages.size(), lines.size()) << exporter.stderr_text();
  std::set<int> classes;
  for (const auto& m : messages) {
    EXPECT_EQ(m.input, "tls");
    auto j = nlohmann::json::parse(m.msg);
    ASSERT_TRUE(j.contains("class_uid")) << m.msg;
    classes.insert(j["class_uid"].get<int>());
    EXPECT_EQ(j["metadata"]["sequence"].get<uint64_t>(), sd_seq(m));
  }
  EXPECT_TRUE(classes.count(1007)) << "process activity for the exec";
  EXPECT_TRUE(classes.count(1001)) << "file system activity for the open";
  exporter.stop();

  // The wrong CA: the handshake fails and the cursor stays where it was.
  TempDir other;
  auto gen = run_command({"/usr/bin/openssl", "req", "-x509", "-newkey", "ed25519", "-nodes",
                          "-subj", "/CN=other", "-days", "1", "-keyout", other.path() + "/k.pem",
                          "-out", other.path() + "/ca.pem"});
  ASSERT_EQ(gen.exit_code, 0) << gen.output;
  Exporter wrong(audit, d.path() + "/state2",
                 {"--syslog", "127.0.0.1:" + std::to_string(rsyslog.tls_port()), "--syslog-tls",
                  "--syslog-ca", other.path() + "/ca.pem"});
  std::this_thread::sleep_for(2s);
  wrong.stop();
  EXPECT_NE(wrong.stderr_text().find("certificate verify failed"), std::string::npos)
      << wrong.stderr_text();
  std::ifstream cursor(d.path() + "/state2/syslog.cursor");
  uint64_t c = 0;
  if (cursor) cursor >> c;
  EXPECT_EQ(c, 0u);
}

// Kafka: a session's records produced through `corral export` and consumed
// back, each one equal to its log line, keyed by host, in one partition.
TEST(Export, KafkaRoundTrip) {
  CORRAL_REQUIRE_ROOT();
  TempDir d;
  MockKafka kafka(3);
  ASSERT_TRUE(kafka.ok()) << kafka.error();
  ASSERT_TRUE(kafka.create_topic("corral.audit", 3));
  std::string audit = d.path() + "/audit.jsonl";
  Exporter exporter(audit, d.path() + "/state",
                    {"--kafka", kafka.bootstraps(), "--kafka-topic", "corral.audit"});
  auto r = run_command({corral_bin(), "run", "--quiet", "--allow-root", "--audit", audit,
                        "--audit-key", audit_key(), "--", "/bin/bash", "-c",
                        actor_bin() + " opens 2000 /etc/hostname"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto lines = log_lines(audit);
  ASSERT_GT(lines.size(), 2000u);

  std::map<uint64_t, KafkaMessage> got;
  auto deadline = std::chrono::steady_clock::now() + 30s;
  while (got.size() < lines.size() && std::chrono::steady_clock::now() < deadline) {
    for (auto& m : consume_all(kafka.bootstraps(), "corral.audit")) got.emplace(m.seq, m);
    if (got.size() < lines.size()) std::this_thread::sleep_for(200ms);
  }
  ASSERT_GE(got.size(), lines.size()) << exporter.stderr_text();
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  int32_t partition = got.begin()->second.partition;
  for (const auto& [seq, line] : lines) {
    auto it = got.find(seq);
    ASSERT_NE(it, got.end()) << "seq " << seq << " never arrived";
    EXPECT_EQ(it->second.value, line) << "seq " << seq;
    EXPECT_EQ(it->second.key, host);
    EXPECT_EQ(it->second.partition, partition) << "one host, one partition";
  }
  EXPECT_EQ(exporter.stop(), 0) << exporter.stderr_text();
}

// `corral tail` shows the trail: filtered by kind, or as the log's lines.
TEST(Export, TailShowsTheTrail) {
  CORRAL_REQUIRE_ROOT();
  TempDir d;
  std::string audit = d.path() + "/audit.jsonl";
  auto r = run_command({corral_bin(), "run", "--quiet", "--allow-root", "--audit", audit,
                        "--audit-key", audit_key(), "--", "/bin/sh", "-c",
                        "cat /etc/hostname; /bin/true"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto t = run_command({corral_bin(), "tail", "--audit", audit, "--no-follow", "--from-start",
                        "--kind", "exec", "--color", "never"});
  ASSERT_EQ(t.exit_code, 0) << t.output;
  EXPECT_NE(t.output.find("exec     /usr/bin/cat"), std::string::npos) << t.output;
  EXPECT_NE(t.output.find("exec     /usr/bin/true"), std::string::npos) << t.output;
  EXPECT_EQ(t.output.find("open "), std::string::npos) << t.output;

  auto j = run_command({corral_bin(), "tail", "--audit", audit, "--no-follow", "--json", "-n",
                        "3"});
  ASSERT_EQ(j.exit_code, 0);
  auto lines = log_lines(audit);
  std::string expected;
  auto it = lines.end();
  std::advance(it, -3);
  for (; it != lines.end(); ++it) expected += it->second + "\n";
  EXPECT_EQ(j.output, expected);
}

}  // namespace
}  // namespace corral::test
