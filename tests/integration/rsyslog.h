// A private, real rsyslogd for syslog export tests: RFC 5424 over TCP with octet-counted
// framing (RFC 6587) and over TLS (RFC 5425), listening on 127.0.0.1 only and writing what it
// receives to a file in its own scratch directory. It never loads imuxsock or imklog, so it
// neither takes /dev/log nor reads the kernel log, and it keeps its own messages to itself.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "harness.h"

namespace corral::test {

// Under CI=true a missing rsyslogd or openssl CLI is a failure; elsewhere a skip.
#define CORRAL_REQUIRE_RSYSLOG()                                                     \
  do {                                                                               \
    if (std::string why = ::corral::test::rsyslog_missing(); !why.empty()) {         \
      if (::corral::test::in_ci()) FAIL() << why << " (CI=true: not skipping)";      \
      GTEST_SKIP() << why;                                                           \
    }                                                                                \
  } while (0)

// Empty when /usr/sbin/rsyslogd and the openssl CLI are there; else what is missing.
std::string rsyslog_missing();

// One message as rsyslog's RFC 5424 parser saw it.
struct SyslogMessage {
  std::string input;            // the listener it came in on: "tcp" or "tls"
  bool rfc5424 = false;         // parsed as RFC 5424; false: rsyslog could not parse it
  int pri = -1;                 // PRI, facility * 8 + severity
  std::string timestamp;        // TIMESTAMP as rsyslog renders it (RFC 3339, precision kept)
  std::string hostname;         // the HOSTNAME field, not the peer's address
  std::string app_name;
  std::string procid;
  std::string msgid;            // "-" for the NILVALUE, as for the other header fields
  std::string structured_data;  // verbatim, escapes and all; "-" for none
  std::string msg;              // MSG after its one separating SP, a BOM kept, trailing LF not
  std::string raw;              // the whole message as received, without the frame length
};

class Rsyslog {
 public:
  struct Options {
    bool tls = true;             // also listen for TLS (RFC 5425) on tls_port()
    std::string tls_driver = "ossl";  // rsyslog's stream driver: "ossl" or "gtls"
    bool client_auth = false;    // TLS peers must present a certificate signed by the CA
  };

  // Picks the ports, writes CA and certificates, the config, and checks it with
  // `rsyslogd -N1`; a failure there is reported by start().
  Rsyslog();
  explicit Rsyslog(Options options);
  ~Rsyslog();  // stops rsyslogd, SIGKILL if it lingers
  Rsyslog(const Rsyslog&) = delete;
  Rsyslog& operator=(const Rsyslog&) = delete;

  // Runs `rsyslogd -n -f CONF -i PIDFILE` and waits until it listens on every port. Fails
  // with rsyslogd's stderr if it exits or does not listen in time. After stop() or kill() it
  // starts again on the same ports, appending to the same output file.
  ::testing::AssertionResult start(std::chrono::milliseconds timeout = std::chrono::seconds(15));
  // SIGTERM, then waits; SIGKILL and a failure if it lingers past `timeout` or exits badly.
  ::testing::AssertionResult stop(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  void kill();    // SIGKILL, reaped
  void freeze();  // SIGSTOP: rsyslogd stops reading, peers' send buffers fill up
  void thaw();    // SIGCONT
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }

  uint16_t port() const { return port_; }          // plain TCP, octet-counted framing
  uint16_t tls_port() const { return tls_port_; }  // 0 without Options::tls
  const std::string& ca_cert_path() const { return ca_cert_; }
  // For Options::client_auth: a certificate and key the server accepts.
  const std::string& client_cert_path() const { return client_cert_; }
  const std::string& client_key_path() const { return client_key_; }
  const std::string& dir() const { return dir_.path(); }
  const std::string& config_path() const { return config_; }
  const std::string& output_path() const { return output_; }

  // Every complete line of the output file, in arrival order; a line that does not parse
  // is a test failure.
  std::vector<SyslogMessage> messages() const;
  // Polls until at least `n` messages are there or `timeout` passes; returns what is there
  // (callers check the count, so a timeout shows what did arrive).
  std::vector<SyslogMessage> wait_for_messages(
      size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;
  // Polls until `done(messages)` holds or `timeout` passes; returns the last messages seen.
  std::vector<SyslogMessage> wait_until(
      const std::function<bool(const std::vector<SyslogMessage>&)>& done,
      std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;

  // rsyslogd's own messages (start, stop, connections opened/closed, TLS errors) and its
  // stderr, for failure messages.
  std::string internal_log() const;
  std::string stderr_text() const;

 private:
  std::string write_certificates();
  std::string write_config() const;
  std::vector<uint16_t> ports() const;
  ::testing::AssertionResult failure(const std::string& what) const;

  Options options_;
  TempDir dir_;
  uint16_t port_ = 0;
  uint16_t tls_port_ = 0;
  std::string ca_cert_, server_cert_, server_key_, client_cert_, client_key_;
  std::string config_, pidfile_, output_, internal_log_, stderr_path_;
  std::string setup_error_;  // reported by start()
  pid_t pid_ = -1;
};

// "LEN SP MSG" (RFC 6587 octet counting); LEN counts bytes, not characters.
std::string octet_frame(std::string_view msg);

// A plain TCP connection to 127.0.0.1; closed at destruction. Sends never raise SIGPIPE.
class TcpClient {
 public:
  TcpClient() = default;
  ~TcpClient();
  TcpClient(const TcpClient&) = delete;
  TcpClient& operator=(const TcpClient&) = delete;
  ::testing::AssertionResult connect(uint16_t port);
  ::testing::AssertionResult send(std::string_view data);
  void close();
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
};

// Connects to 127.0.0.1:port, sends `data` and closes.
::testing::AssertionResult send_tcp(uint16_t port, std::string_view data);
// The same over TLS with `openssl s_client`, which must verify the server against `ca_cert`
// (including its 127.0.0.1 SAN); `client_cert`/`client_key` for mutual TLS. Success means the
// handshake passed the client's checks and the data was written, not that it was accepted.
::testing::AssertionResult send_tls(uint16_t port, const std::string& ca_cert,
                                    std::string_view data, const std::string& client_cert = "",
                                    const std::string& client_key = "");
// Whether a TCP connect to 127.0.0.1:port is refused (nothing listens there).
bool port_refuses(uint16_t port);

}  // namespace corral::test
