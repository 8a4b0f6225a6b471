// Egress, on the real kernel: a session reaches what the policy allows and
// its own listeners, nothing else; processes outside are never affected.
// All traffic stays on loopback, or inside a network namespace with only a
// loopback device (for the link-local case).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "harness.h"

namespace corral::test {
namespace {

int listen_tcp(const char* ip, uint16_t* port) {
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  inet_pton(AF_INET, ip, &a.sin_addr);
  socklen_t len = sizeof(a);
  EXPECT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  EXPECT_EQ(::listen(s, 16), 0);
  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  *port = ntohs(a.sin_port);
  return s;
}

std::string write_policy(const TempDir& dir, const std::string& body) {
  std::string path = dir.path() + "/policy.yaml";
  std::ofstream(path) << "version: 1\n" << body;
  return path;
}

// "inet 127.0.0.1:80 0" for each connect record, and whether it was denied.
std::set<std::string> connects(const RunResult& r) {
  std::set<std::string> out;
  for (const auto& rec : r.records) {
    if (!rec.has_connect()) continue;
    out.insert(rec.connect().address() + ":" + std::to_string(rec.connect().port()) + " " +
               (rec.has_decision() ? "denied-by-" + rec.decision().rule()
                                   : "result-" + std::to_string(rec.connect().result())));
  }
  return out;
}

TEST(Egress, LoopbackOnlyToTheSessionsOwnListeners) {
  CORRAL_REQUIRE_ROOT();
  TempDir dir;
  uint16_t port = 0;
  int l = listen_tcp("127.0.0.1", &port);  // the host's service, not the session's
  auto r = run_corral({"--allow-root", "--policy", write_policy(dir, "")},
                      {"/bin/bash", "-c",
                       actor_bin() + " self-connect | grep -q '> 0$' || exit 3; " + actor_bin() +
                           " connect6 " + std::to_string(port) + " | grep -q '> -1$' || exit 4; " +
                           "exec 3<>/dev/tcp/127.0.0.1/" + std::to_string(port) + " && exit 5; exit 0"});
  EXPECT_EQ(r.exit_code, 0) << "3: own listener refused, 4/5: host listener reached\n" << r.stderr_text;
  auto seen = connects(r);
  EXPECT_TRUE(seen.count("127.0.0.1:" + std::to_string(port) + " denied-by-egress-loopback"))
      << r.stderr_text;
  EXPECT_TRUE(seen.count("::1:" + std::to_string(port) + " denied-by-egress-loopback"));
  // meanwhile the host reaches its own service
  int c = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  ::close(c);
  ::close(l);
}

// --net: none is a network namespace with only its own loopback (the host's
// listener is not there, its own is); host leaves the allowlist out, so the
// host's listener the policy refuses is reached, and the connect recorded.
TEST(Egress, NetNoneAndNetHost) {
  CORRAL_REQUIRE_ROOT();
  TempDir dir;
  uint16_t port = 0;
  int l = listen_tcp("127.0.0.1", &port);
  const std::string policy = write_policy(dir, "");
  const std::string host_connect = "exec 3<>/dev/tcp/127.0.0.1/" + std::to_string(port);
  auto none = run_corral({"--allow-root", "--policy", policy, "--net", "none"},
                         {"/bin/bash", "-c",
                          actor_bin() + " self-connect | grep -q '> 0$' || exit 3; " +
                              host_connect + " && exit 4; " +
                              "test $(grep -c : /proc/net/dev) -eq 1 || exit 5; exit 0"});
  EXPECT_EQ(none.exit_code, 0) << "3: own loopback unusable, 4: host listener reached, "
                                  "5: an interface besides lo\n"
                               << none.stderr_text;
  ASSERT_TRUE(none.records.front().has_session_start());
  EXPECT_EQ(none.records.front().session_start().net(), "none");
  // The allowlist still decides first (the host's port is not the
  // session's); past it, the namespace's loopback has nothing there.
  EXPECT_TRUE(connects(none).count("127.0.0.1:" + std::to_string(port) +
                                   " denied-by-egress-loopback"));

  auto host = run_corral({"--allow-root", "--policy", policy, "--net", "host"},
                         {"/bin/bash", "-c", host_connect + " || exit 4; exit 0"});
  EXPECT_EQ(host.exit_code, 0) << host.stderr_text;
  EXPECT_TRUE(connects(host).count("127.0.0.1:" + std::to_string(port) + " result-0"));
  ::close(l);
}

// default: shadow: what the allowlist does not name still connects, and the
// trail says it would have been denied.
TEST(Egress, ShadowDefaultLetsThroughAndRecordsWouldDeny) {
  CORRAL_REQUIRE_ROOT();
  TempDir dir;
  uint16_t port = 0;
  int l = listen_tcp("127.0.0.1", &port);
  auto r = run_corral({"--allow-root", "--policy", write_policy(dir, "egress: {default: shadow}\n")},
                      {"/bin/bash", "-c",
                       "exec 3<>/dev/tcp/127.0.0.1/" + std::to_string(port) + " || exit 4"});
  ::close(l);
  EXPECT_EQ(r.exit_code, 0) << "the connect was refused in shadow mode\n" << r.stderr_text;
  auto would = select(r, [port](const audit::Record& rec) {
    return rec.has_connect() && rec.connect().port() == port && rec.has_decision();
  });
  ASSERT_EQ(would.size(), 1u) << r.stderr_text;
  EXPECT_EQ(would[0]->decision().action(), "would_deny");
  EXPECT_EQ(would[0]->decision().mode(), "shadow");
  EXPECT_EQ(would[0]->decision().rule(), "egress-loopback");
  EXPECT_EQ(would[0]->connect().result(), 0);
}

TEST(Egress, AllowlistByCidrPortAndProtocol) {
  CORRAL_REQUIRE_ROOT();
  TempDir dir;
  uint16_t p2 = 0, p3 = 0;
  int l2 = listen_tcp("127.0.0.2", &p2);
  int l3 = listen_tcp("127.0.0.3", &p3);
  std::string policy = write_policy(dir,
                                    "egress:\n  allow:\n"
                                    "    - id: db\n      cidr: 127.0.0.2/32\n      ports: [" +
                                        std::to_string(p2) +
                                        "]\n"
                                        "    - id: wide\n      cidr: 127.0.0.0/30\n      ports: [9]\n"
                                        "      protocol: udp\n");
  std::string a = actor_bin();
  auto r = run_corral(
      {"--allow-root", "--policy", policy},
      {"/bin/bash", "-c",
       "exec 3<>/dev/tcp/127.0.0.2/" + std::to_string(p2) + " || exit 3; " +  // named: allowed
           "(exec 4<>/dev/tcp/127.0.0.3/" + std::to_string(p3) + ") && exit 4; " +  // not named
           "(exec 5<>/dev/tcp/127.0.0.2/" + std::to_string(p3) + ") && exit 5; " +  // wrong port
           a + " udp 127.0.0.2 9 | grep -q '> 1$' || exit 6; " +  // covered by the /30, udp
           a + " udp 127.0.0.2 10 | grep -q '> -1$' || exit 7; exit 0"});
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  auto seen = connects(r);
  EXPECT_TRUE(seen.count("127.0.0.2:" + std::to_string(p2) + " result-0"));
  EXPECT_TRUE(seen.count("127.0.0.3:" + std::to_string(p3) + " denied-by-egress-loopback"));
  EXPECT_TRUE(seen.count("127.0.0.2:10 denied-by-egress-loopback")) << "udp sendmsg audited";
  ::close(l2);
  ::close(l3);
}

// A host the policy names that has no address when the session starts (a
// host agent started before the network was up) is asked for again, soon,
// and allowed once it resolves. corral runs in a mount namespace of its own
// where /etc/hosts is a file of the test's; the name comes into it only
// after the session's first connect was denied.
TEST(Egress, HostsWithoutAnAddressAreAskedForAgain) {
  CORRAL_REQUIRE_ROOT();
  TempDir dir("/var/tmp");  // the project: writable in the session
  InDir cwd(dir.path());
  const std::string hosts = dir.path() + "/hosts";
  std::ofstream(hosts) << "127.0.0.1 localhost\n";
  uint16_t port = 0;
  int l = listen_tcp("127.0.0.4", &port);
  const std::string name = "corral-late.test";  // .test: never in public DNS
  std::string policy = write_policy(dir, "egress:\n  allow:\n    - id: late\n      host: " + name +
                                             "\n      ports: [" + std::to_string(port) + "]\n");
  const std::string connect = "(exec 3<>/dev/tcp/127.0.0.4/" + std::to_string(port) + ") 2>/dev/null";
  auto r = run_corral(
      {"--allow-root", "--policy", policy},
      {"/bin/bash", "-c",
       connect + " && exit 3; : > denied; " +
           "for i in $(seq 600); do " + connect + " && exit 0; sleep 0.1; done; exit 4"},
      [&](pid_t) {
        for (int i = 0; i < 1000 && !std::filesystem::exists(dir.path() + "/denied"); i++)
          ::usleep(10000);
        std::ofstream(hosts, std::ios::app) << "127.0.0.4 " << name << "\n";  // same inode: the bind sees it
      },
      {"/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh", "-c",
       "mount --bind \"$0\" /etc/hosts && exec \"$@\"", hosts});
  ::close(l);
  EXPECT_EQ(r.exit_code, 0) << "3: allowed before it resolved, 4: never allowed\n" << r.stderr_text;
  auto seen = connects(r);
  EXPECT_TRUE(seen.count("127.0.0.4:" + std::to_string(port) + " denied-by-egress-loopback"))
      << r.stderr_text;
  EXPECT_TRUE(seen.count("127.0.0.4:" + std::to_string(port) + " result-0")) << r.stderr_text;
  // said once, in one line, and its end said too
  size_t first = r.stderr_text.find("did not resolve");
  ASSERT_NE(first, std::string::npos) << r.stderr_text;
  EXPECT_EQ(r.stderr_text.find("did not resolve", first + 1), std::string::npos) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find(name), std::string::npos);
  EXPECT_NE(r.stderr_text.find("every host the policy names has an address now"), std::string::npos)
      << r.stderr_text;
}

// The system resolvers are allowed DNS; when /etc/resolv.conf changes (DHCP,
// a VPN) the allowlist follows it, whatever the policy names (here nothing:
// no host, so no DNS refresh to ride on). /etc/resolv.conf is a file of
// the test's, bound in corral's own mount namespace.
TEST(Egress, ResolversFollowResolvConf) {
  CORRAL_REQUIRE_ROOT();
  TempDir dir("/var/tmp");
  InDir cwd(dir.path());
  const std::string resolv = dir.path() + "/resolv.conf";
  std::ofstream(resolv) << "nameserver 127.0.0.5\n";
  std::string a = actor_bin();
  auto r = run_corral(
      {"--allow-root", "--policy", write_policy(dir, "")},
      {"/bin/bash", "-c",
       a + " udp 127.0.0.5 53 | grep -q '> 1$' || exit 3; " +
           a + " udp 127.0.0.6 53 | grep -q '> -1$' || exit 4; : > asked; " +
           "until [ -e changed ]; do sleep 0.01; done; " +
           "for i in $(seq 100); do " + a + " udp 127.0.0.6 53 | grep -q '> 1$' && break; sleep 0.1; done; " +
           a + " udp 127.0.0.6 53 | grep -q '> 1$' || exit 5; " +
           a + " udp 127.0.0.5 53 | grep -q '> -1$' || exit 6; exit 0"},
      [&](pid_t) {
        for (int i = 0; i < 1000 && !std::filesystem::exists(dir.path() + "/asked"); i++) ::usleep(10000);
        std::ofstream(resolv, std::ios::trunc) << "nameserver 127.0.0.6\n";  // same inode
        std::ofstream(dir.path() + "/changed").close();
      },
      {"/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh", "-c",
       "mount --bind \"$0\" /etc/resolv.conf && exec \"$@\"", resolv});
  EXPECT_EQ(r.exit_code, 0) << "3: the resolver refused, 4: a non-resolver allowed, 5: the new "
                               "resolver never allowed, 6: the old one still allowed\n"
                            << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("/etc/resolv.conf changed"), std::string::npos) << r.stderr_text;
}

// Link-local metadata and the wider network: denied before any packet
// exists. corral runs in a fresh network namespace (only a loopback
// device), so nothing could leave the machine even if it were allowed.
TEST(Egress, MetadataAndUnlistedHostsDenied) {
  CORRAL_REQUIRE_ROOT();
  TempDir dir;
  std::string policy = write_policy(
      dir, "egress:\n  allow:\n    - id: lan\n      cidr: 10.1.0.0/16\n      protocol: any\n");
  std::string a = actor_bin();
  auto r = run_corral({"--allow-root", "--policy", policy},
                      {"/bin/sh", "-c",
                       a + " udp 169.254.169.254 80; " + a + " udp 10.2.0.1 53; " + a +
                           " udp 10.1.2.3 53; true"},
                      {}, {"/usr/bin/unshare", "--net"});
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  auto seen = connects(r);
  EXPECT_TRUE(seen.count("169.254.169.254:80 denied-by-egress-default-deny")) << r.stderr_text;
  EXPECT_TRUE(seen.count("10.2.0.1:53 denied-by-egress-default-deny"));
  for (const auto& s : seen) EXPECT_EQ(s.find("10.1.2.3"), std::string::npos) << "allowed: " << s;
}

}  // namespace
}  // namespace corral::test
