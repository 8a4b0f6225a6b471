// The rsyslog harness against the real rsyslogd: what goes in over TCP and TLS comes back
// field by field, and the daemon restarts on the same ports. Needs no root.
#include "rsyslog.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

namespace corral::test {
namespace {

using namespace std::chrono_literals;

std::string rfc5424(const std::string& host, const std::string& msgid, const std::string& sd,
                    const std::string& body) {
  return "<134>1 2026-11-27T10:00:00.000Z " + host + " corral 42 " + msgid + " " + sd + " " + body;
}

const SyslogMessage* find_msgid(const std::vector<SyslogMessage>& msgs, const std::string& id) {
  for (const auto& m : msgs)
    if (m.msgid == id) return &m;
  return nullptr;
}

TEST(Rsyslog, PlainTcpRoundTripsEveryField) {
  CORRAL_REQUIRE_RSYSLOG();
  Rsyslog rs(Rsyslog::Options{.tls = false});
  ASSERT_TRUE(rs.start());
  // Quotes, a JSON-escaped and a raw tab, a backslash, non-ASCII UTF-8.
  const std::string body1 =
      "{\"seq\":\"1\",\"x\":\"a b\\tc\",\"q\":\"say \\\"hi\\\"\",\"raw\":\"\t\","
      "\"u\":\"é 日本\",\"bs\":\"C:\\\\x\"}";
  const std::string sd1 = "[corral@32473 seq=\"1\" session=\"ab\"]";
  // RFC 5424 PARAM-VALUE escapes ", \ and ]; rsyslog must keep them verbatim.
  const std::string sd2 =
      "[corral@32473 seq=\"2\" session=\"ab\" path=\"/tmp/a\\\"b\\\\c\\]d\"][meta@32473 n=\"é\"]";
  const std::string body2 = "{\"seq\":\"2\",\"pad\":\"" + std::string(20 * 1024, 'p') + "\"}";
  const std::string body3 = "{\"seq\":\"3\",\"pad\":\"" + std::string(64 * 1024, 'q') + "\"}";
  const std::string m1 = rfc5424("myhost", "exec", sd1, body1);
  const std::string m2 = rfc5424("myhost", "file", sd2, body2);
  const std::string m3 = rfc5424("host.example.com", "-", "-", body3);

  TcpClient c;
  ASSERT_TRUE(c.connect(rs.port()));
  ASSERT_TRUE(c.send(octet_frame(m1) + octet_frame(m2)));
  // The third frame in two writes, split inside its length and inside its body.
  std::string f3 = octet_frame(m3);
  ASSERT_TRUE(c.send(f3.substr(0, 3)));
  std::this_thread::sleep_for(50ms);
  ASSERT_TRUE(c.send(f3.substr(3, 40000)));
  std::this_thread::sleep_for(50ms);
  ASSERT_TRUE(c.send(f3.substr(40003)));
  c.close();

  auto msgs = rs.wait_for_messages(3);
  ASSERT_EQ(msgs.size(), 3u) << rs.internal_log();
  const auto& a = msgs[0];
  EXPECT_TRUE(a.rfc5424);
  EXPECT_EQ(a.input, "tcp");
  EXPECT_EQ(a.pri, 134);
  EXPECT_EQ(a.timestamp, "2026-11-27T10:00:00.000Z");
  EXPECT_EQ(a.hostname, "myhost");
  EXPECT_EQ(a.app_name, "corral");
  EXPECT_EQ(a.procid, "42");
  EXPECT_EQ(a.msgid, "exec");
  EXPECT_EQ(a.structured_data, sd1);
  EXPECT_EQ(a.msg, body1);
  EXPECT_EQ(a.raw, m1);

  const auto& b = msgs[1];
  EXPECT_TRUE(b.rfc5424);
  EXPECT_EQ(b.msgid, "file");
  EXPECT_EQ(b.structured_data, sd2);
  EXPECT_EQ(b.msg.size(), body2.size());
  EXPECT_EQ(b.msg, body2);

  const auto& d = msgs[2];
  EXPECT_TRUE(d.rfc5424);
  EXPECT_EQ(d.hostname, "host.example.com");
  EXPECT_EQ(d.msgid, "-");
  EXPECT_EQ(d.structured_data, "-");
  EXPECT_EQ(d.msg.size(), body3.size());
  EXPECT_EQ(d.msg, body3);
}

TEST(Rsyslog, MarksWhatIsNotRfc5424) {
  CORRAL_REQUIRE_RSYSLOG();
  Rsyslog rs(Rsyslog::Options{.tls = false});
  ASSERT_TRUE(rs.start());
  // rsyslogd says it discards such a message yet still writes it; the flag tells tests.
  ASSERT_TRUE(send_tcp(rs.port(), octet_frame("not syslog at all") +
                                      octet_frame(rfc5424("h", "after", "-", "ok"))));
  auto msgs = rs.wait_for_messages(2);
  ASSERT_EQ(msgs.size(), 2u) << rs.internal_log();
  EXPECT_FALSE(msgs[0].rfc5424);
  EXPECT_EQ(msgs[0].raw, "not syslog at all");
  EXPECT_TRUE(msgs[1].rfc5424);
  EXPECT_EQ(msgs[1].msg, "ok");
}

class RsyslogTls : public ::testing::TestWithParam<std::string> {};

TEST_P(RsyslogTls, DeliversOverTlsVerifiedAgainstTheCa) {
  CORRAL_REQUIRE_RSYSLOG();
  Rsyslog rs(Rsyslog::Options{.tls = true, .tls_driver = GetParam()});
  ASSERT_TRUE(rs.start());
  ASSERT_NE(rs.tls_port(), 0);
  ASSERT_NE(rs.tls_port(), rs.port());
  const std::string sd = "[corral@32473 seq=\"1\" session=\"tls\"]";
  const std::string body = "{\"via\":\"tls\",\"u\":\"é 日本\",\"q\":\"\\\"\"}";
  const std::string m = rfc5424("tlshost", "exec", sd, body);
  ASSERT_TRUE(send_tls(rs.tls_port(), rs.ca_cert_path(), octet_frame(m)));

  auto msgs = rs.wait_for_messages(1);
  ASSERT_EQ(msgs.size(), 1u) << rs.internal_log();
  EXPECT_TRUE(msgs[0].rfc5424);
  EXPECT_EQ(msgs[0].input, "tls");
  EXPECT_EQ(msgs[0].hostname, "tlshost");
  EXPECT_EQ(msgs[0].msgid, "exec");
  EXPECT_EQ(msgs[0].structured_data, sd);
  EXPECT_EQ(msgs[0].msg, body);

  // A client that trusts another CA refuses this server: the chain is really checked.
  Rsyslog other(Rsyslog::Options{.tls = true});
  EXPECT_FALSE(send_tls(rs.tls_port(), other.ca_cert_path(),
                        octet_frame(rfc5424("h", "wrongca", "-", "x"))));
  // Plain syslog on the TLS port gets nothing through.
  ASSERT_TRUE(send_tcp(rs.tls_port(), octet_frame(rfc5424("h", "plain", "-", "x"))));
  // The server still serves TLS after that. rsyslog's ossl driver now and
  // then drops a session opened while it tears the plain one down: a second
  // try, and only then a failure.
  for (int attempt = 0; attempt < 3; attempt++) {
    ASSERT_TRUE(send_tls(rs.tls_port(), rs.ca_cert_path(),
                         octet_frame(rfc5424("h", "last", "-", "x"))));
    msgs = rs.wait_until([](const auto& ms) { return find_msgid(ms, "last") != nullptr; },
                         std::chrono::seconds(4));
    if (find_msgid(msgs, "last")) break;
  }
  EXPECT_NE(find_msgid(msgs, "last"), nullptr) << rs.internal_log();
  EXPECT_EQ(find_msgid(msgs, "wrongca"), nullptr);
  EXPECT_EQ(find_msgid(msgs, "plain"), nullptr);
}

INSTANTIATE_TEST_SUITE_P(Rsyslog, RsyslogTls, ::testing::Values("ossl", "gtls"),
                         [](const auto& info) { return info.param; });

TEST(Rsyslog, MutualTlsAcceptsOnlyACertifiedClient) {
  CORRAL_REQUIRE_RSYSLOG();
  Rsyslog rs(Rsyslog::Options{.tls = true, .client_auth = true});
  ASSERT_TRUE(rs.start());
  // Under TLS 1.3 the client may finish its handshake before the server rejects it, so
  // only the absence of the message tells.
  (void)send_tls(rs.tls_port(), rs.ca_cert_path(), octet_frame(rfc5424("h", "nocert", "-", "x")));
  ASSERT_TRUE(send_tls(rs.tls_port(), rs.ca_cert_path(),
                       octet_frame(rfc5424("h", "withcert", "-", "x")), rs.client_cert_path(),
                       rs.client_key_path()));
  auto msgs = rs.wait_until([](const auto& ms) { return find_msgid(ms, "withcert") != nullptr; });
  EXPECT_NE(find_msgid(msgs, "withcert"), nullptr) << rs.internal_log();
  EXPECT_EQ(find_msgid(msgs, "nocert"), nullptr);
}

TEST(Rsyslog, RestartsOnTheSamePorts) {
  CORRAL_REQUIRE_RSYSLOG();
  Rsyslog rs;
  ASSERT_TRUE(rs.start());
  const uint16_t port = rs.port(), tls_port = rs.tls_port();
  ASSERT_TRUE(send_tcp(port, octet_frame(rfc5424("h", "before", "-", "1"))));
  ASSERT_EQ(rs.wait_for_messages(1).size(), 1u);

  // A client mid-outage holds its connection while rsyslogd goes away.
  TcpClient held;
  ASSERT_TRUE(held.connect(port));
  ASSERT_TRUE(rs.stop());
  EXPECT_FALSE(rs.running());
  EXPECT_TRUE(port_refuses(port));
  EXPECT_TRUE(port_refuses(tls_port));
  EXPECT_TRUE(rs.stop());  // stopping twice is harmless

  ASSERT_TRUE(rs.start());
  EXPECT_EQ(rs.port(), port);
  EXPECT_EQ(rs.tls_port(), tls_port);
  ASSERT_TRUE(send_tcp(port, octet_frame(rfc5424("h", "after", "-", "2"))));
  ASSERT_TRUE(
      send_tls(tls_port, rs.ca_cert_path(), octet_frame(rfc5424("h", "aftertls", "-", "3"))));
  auto msgs = rs.wait_for_messages(3);
  ASSERT_EQ(msgs.size(), 3u) << rs.internal_log();
  EXPECT_EQ(msgs[0].msgid, "before");  // appended to, not truncated
  EXPECT_NE(find_msgid(msgs, "after"), nullptr);
  EXPECT_NE(find_msgid(msgs, "aftertls"), nullptr);

  // SIGKILL leaves a stale pidfile behind; start() copes.
  rs.kill();
  EXPECT_FALSE(rs.running());
  EXPECT_TRUE(port_refuses(port));
  ASSERT_TRUE(rs.start());
  ASSERT_TRUE(send_tcp(port, octet_frame(rfc5424("h", "afterkill", "-", "4"))));
  EXPECT_EQ(rs.wait_for_messages(4).size(), 4u) << rs.internal_log();
}

TEST(Rsyslog, StartFailsClearlyWhenThePortIsTaken) {
  CORRAL_REQUIRE_RSYSLOG();
  Rsyslog rs(Rsyslog::Options{.tls = false});
  // Someone else listens on the port: rsyslogd runs on without it, start() must not wait
  // forever nor claim success.
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(rs.port());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << strerror(errno);
  ASSERT_EQ(::listen(fd, 1), 0);
  auto r = rs.start(2s);
  ::close(fd);
  EXPECT_FALSE(r);
  EXPECT_NE(std::string(r.message()).find("did not listen on 127.0.0.1 port"), std::string::npos)
      << r.message();
  EXPECT_FALSE(rs.running());
  ASSERT_TRUE(rs.start());  // and once the port is free again, it starts
}

TEST(Rsyslog, FrozenDaemonReadsNothingUntilThawed) {
  CORRAL_REQUIRE_RSYSLOG();
  Rsyslog rs(Rsyslog::Options{.tls = false});
  ASSERT_TRUE(rs.start());
  rs.freeze();
  ASSERT_TRUE(send_tcp(rs.port(), octet_frame(rfc5424("h", "frozen", "-", "x"))));
  std::this_thread::sleep_for(300ms);
  EXPECT_TRUE(rs.messages().empty());
  rs.thaw();
  EXPECT_EQ(rs.wait_for_messages(1).size(), 1u) << rs.internal_log();
}

// Socket inodes of one /proc/net table (whose inode is column `inode_col`), with their lines.
std::vector<std::pair<std::string, std::string>> proc_net(const std::string& table,
                                                          size_t inode_col) {
  std::vector<std::pair<std::string, std::string>> out;
  std::ifstream in("/proc/net/" + table);
  std::string line;
  std::getline(in, line);
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string field;
    for (size_t i = 0; i <= inode_col && f >> field; ++i) {
    }
    out.emplace_back(field, line);
  }
  return out;
}

TEST(Rsyslog, ListensOnLoopbackOnlyAndLeavesTheSystemLogAlone) {
  CORRAL_REQUIRE_RSYSLOG();
  Rsyslog rs;
  ASSERT_TRUE(rs.start());
  std::set<std::string> sockets;
  std::error_code ec;
  std::string fd_dir = "/proc/" + std::to_string(rs.pid()) + "/fd";
  for (const auto& e : std::filesystem::directory_iterator(fd_dir, ec)) {
    std::error_code link_ec;  // an fd closed meanwhile is no error of the walk
    std::string target = std::filesystem::read_symlink(e.path(), link_ec).string();
    if (target.rfind("socket:[", 0) == 0) sockets.insert(target.substr(8, target.size() - 9));
    for (const char* bad : {"kmsg", "/dev/log", "journal", "/dev/console"})
      EXPECT_EQ(target.find(bad), std::string::npos) << "rsyslogd holds " << target;
  }
  ASSERT_FALSE(ec) << fd_dir << ": " << ec.message();
  std::set<std::string> tcp_listeners;
  for (const auto& [inode, line] : proc_net("tcp", 9)) {
    if (!sockets.count(inode)) continue;
    std::istringstream f(line);
    std::string sl, local, remote, state;
    f >> sl >> local >> remote >> state;
    EXPECT_EQ(state, "0A") << "rsyslogd has a tcp socket that is not listening: " << line;
    tcp_listeners.insert(local);
  }
  auto hex_port = [](uint16_t p) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "0100007F:%04X", p);
    return std::string(buf);
  };
  EXPECT_EQ(tcp_listeners, (std::set<std::string>{hex_port(rs.port()), hex_port(rs.tls_port())}));
  for (const char* table : {"tcp6", "udp", "udp6", "raw", "raw6"})
    for (const auto& [inode, line] : proc_net(table, 9))
      EXPECT_FALSE(sockets.count(inode)) << "rsyslogd has a " << table << " socket: " << line;
  // Unix sockets: only unnamed ones (no /dev/log, no journal socket). The path is the 8th
  // column, the inode the 7th.
  for (const auto& [inode, line] : proc_net("unix", 6)) {
    if (!sockets.count(inode)) continue;
    std::istringstream f(line);
    std::string field, path;
    for (int i = 0; i < 7 && f >> field; ++i) {
    }
    f >> path;
    EXPECT_TRUE(path.empty()) << "rsyslogd has a named unix socket: " << line;
  }
}

}  // namespace
}  // namespace corral::test
