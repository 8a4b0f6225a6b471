#include "rsyslog.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <thread>

extern char** environ;

namespace corral::test {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr const char* kRsyslogd = "/usr/sbin/rsyslogd";

std::string errno_text(int e) { return std::strerror(e); }

std::string tail(const std::string& s, size_t n) {
  return s.size() <= n ? s : "..." + s.substr(s.size() - n);
}

std::string find_in_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exit code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "status " + std::to_string(status);
}

// A test run under a systemd unit must not make rsyslogd report readiness to that unit or
// take over sockets handed to it.
std::vector<std::string> child_environment() {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string_view v(*e);
    bool drop = false;
    for (std::string_view p : {"NOTIFY_SOCKET=", "LISTEN_PID=", "LISTEN_FDS=", "LISTEN_FDNAMES="})
      drop = drop || v.substr(0, p.size()) == p;
    if (!drop) env.emplace_back(v);
  }
  return env;
}

std::vector<char*> c_strings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// Keeps a forked child from inheriting the test's descriptors (a client socket held open by
// rsyslogd would hide a disconnect from the test) and from inheriting ignored signals.
// Only async-signal-safe calls: the test process may have threads.
void prepare_child(int first_fd_to_close) {
  ::close_range(first_fd_to_close, ~0U, 0);
  for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGCHLD}) ::signal(sig, SIG_DFL);
  sigset_t none;
  ::sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
}

struct ProcResult {
  int status = -1;
  bool timed_out = false;
  std::string output;  // stdout and stderr together
  std::string error;   // why it could not be run
};

// Runs argv[0] (a path) with `input` on stdin, collecting its output, bounded by `timeout`.
ProcResult run_process(std::vector<std::string> argv, std::string_view input,
                       milliseconds timeout) {
  ProcResult r;
  // stdin is a socket, not a pipe, so that writing to a child that has gone gives EPIPE
  // (MSG_NOSIGNAL) rather than a SIGPIPE that would kill the test.
  int in[2], out[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) != 0) {
    r.error = "socketpair: " + errno_text(errno);
    return r;
  }
  if (::pipe2(out, O_CLOEXEC) != 0) {
    r.error = "pipe: " + errno_text(errno);
    ::close(in[0]);
    ::close(in[1]);
    return r;
  }
  std::vector<std::string> env = child_environment();
  std::vector<char*> cargv = c_strings(argv), cenv = c_strings(env);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(in[1], 0);
    ::dup2(out[1], 1);
    ::dup2(out[1], 2);
    prepare_child(3);
    ::execve(cargv[0], cargv.data(), cenv.data());
    _exit(127);
  }
  ::close(in[1]);
  ::close(out[1]);
  if (pid < 0) {
    r.error = "fork: " + errno_text(errno);
    ::close(in[0]);
    ::close(out[0]);
    return r;
  }
  ::fcntl(out[0], F_SETFL, O_NONBLOCK);
  int in_fd = in[0];
  size_t sent = 0;
  if (input.empty()) {
    ::close(in_fd);
    in_fd = -1;
  }
  bool out_open = true, reaped = false;
  auto deadline = Clock::now() + timeout;
  while ((out_open || !reaped) && Clock::now() < deadline) {
    if (!out_open) {
      pid_t w = ::waitpid(pid, &r.status, WNOHANG);
      if (w == pid) reaped = true;
      else std::this_thread::sleep_for(milliseconds(5));
      continue;
    }
    pollfd fds[2] = {{out[0], POLLIN, 0}, {in_fd, POLLOUT, 0}};
    int left = static_cast<int>(
        std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count());
    if (::poll(fds, in_fd >= 0 ? 2 : 1, std::max(1, std::min(left, 100))) < 0 && errno != EINTR)
      break;
    if (fds[0].revents) {
      char buf[4096];
      ssize_t n = ::read(out[0], buf, sizeof buf);
      if (n > 0) r.output.append(buf, static_cast<size_t>(n));
      else if (n == 0 || (errno != EAGAIN && errno != EINTR)) out_open = false;
    }
    if (in_fd >= 0 && fds[1].revents) {
      ssize_t n = ::send(in_fd, input.data() + sent, input.size() - sent,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) sent += static_cast<size_t>(n);
      bool gone = n < 0 && errno != EAGAIN && errno != EINTR;
      if (gone || sent == input.size()) {
        ::close(in_fd);  // EOF on the child's stdin
        in_fd = -1;
      }
    }
  }
  if (in_fd >= 0) ::close(in_fd);
  ::close(out[0]);
  if (!reaped) {
    r.timed_out = true;
    ::kill(pid, SIGKILL);
    while (::waitpid(pid, &r.status, 0) < 0 && errno == EINTR) {
    }
  }
  return r;
}

std::string run_or_error(const std::vector<std::string>& argv) {
  ProcResult r = run_process(argv, {}, std::chrono::seconds(30));
  std::string cmd;
  for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
  if (!r.error.empty()) return "cannot run `" + cmd + "`: " + r.error;
  if (r.timed_out) return "`" + cmd + "` timed out: " + r.output;
  if (r.status != 0) return "`" + cmd + "` failed (" + describe_status(r.status) + "): " + r.output;
  return "";
}

bool bindable(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

// A port that is free now and, being below the ephemeral range, will not be taken by some
// client's outgoing connection while rsyslogd is stopped for an outage test. Ports are
// handed out once per process so that two instances never share one.
uint16_t pick_port() {
  static std::mutex mu;
  static std::set<uint16_t> handed_out;
  std::lock_guard lock(mu);
  int low = 32768, high = 60999;
  std::ifstream("/proc/sys/net/ipv4/ip_local_port_range") >> low >> high;
  std::mt19937 rng(std::random_device{}());
  if (low > 11000) {
    std::uniform_int_distribution<int> dist(10000, low - 1);
    for (int i = 0; i < 500; ++i) {
      auto p = static_cast<uint16_t>(dist(rng));
      if (!handed_out.count(p) && bindable(p)) {
        handed_out.insert(p);
        return p;
      }
    }
  }
  for (int i = 0; i < 50; ++i) {  // the kernel's choice, when the range leaves no room below
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    uint16_t p = 0;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
      p = ntohs(addr.sin_port);
    ::close(fd);
    if (p && !handed_out.count(p)) {
      handed_out.insert(p);
      return p;
    }
  }
  return 0;
}

// The socket inodes that `pid` holds.
std::set<std::string> socket_inodes(pid_t pid) {
  std::set<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(
           "/proc/" + std::to_string(pid) + "/fd", ec)) {
    auto target = std::filesystem::read_symlink(e.path(), ec).string();
    if (!ec && target.rfind("socket:[", 0) == 0) out.insert(target.substr(8, target.size() - 9));
  }
  return out;
}

// Ports on which one of `inodes` listens on 127.0.0.1. Read from /proc rather than probed
// with connect(): a bare connect to the TLS port makes rsyslogd log handshake errors.
std::set<uint16_t> loopback_listeners(const std::set<std::string>& inodes) {
  std::set<uint16_t> out;
  std::ifstream in("/proc/net/tcp");
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string sl, local, remote, state, queues, timer, retransmits, uid, timeout, inode;
    f >> sl >> local >> remote >> state >> queues >> timer >> retransmits >> uid >> timeout;
    f >> inode;
    if (state != "0A" || !inodes.count(inode) || local.rfind("0100007F:", 0) != 0) continue;
    out.insert(static_cast<uint16_t>(std::stoul(local.substr(9), nullptr, 16)));
  }
  return out;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// A JSON string at s[i] (the opening quote). Lenient about raw control characters and bytes
// >= 0x80, which rsyslog's jsonf leaves as they are (a tab, UTF-8).
bool parse_json_string(std::string_view s, size_t& i, std::string& out, std::string& err) {
  if (i >= s.size() || s[i] != '"') {
    err = "expected a string at offset " + std::to_string(i);
    return false;
  }
  ++i;
  auto hex4 = [&](size_t at, uint32_t& v) {
    if (at + 4 > s.size()) return false;
    v = 0;
    for (size_t k = at; k < at + 4; ++k) {
      char c = s[k];
      int d = c >= '0' && c <= '9' ? c - '0'
              : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                     : -1;
      if (d < 0) return false;
      v = v * 16 + static_cast<uint32_t>(d);
    }
    return true;
  };
  while (i < s.size()) {
    char c = s[i++];
    if (c == '"') return true;
    if (c != '\\') {
      out += c;
      continue;
    }
    if (i >= s.size()) break;
    char e = s[i++];
    switch (e) {
      case '"': out += '"'; break;
      case '\\': out += '\\'; break;
      case '/': out += '/'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'u': {
        uint32_t cp = 0;
        if (!hex4(i, cp)) {
          err = "bad \\u escape at offset " + std::to_string(i);
          return false;
        }
        i += 4;
        uint32_t low = 0;
        if (cp >= 0xD800 && cp < 0xDC00 && i + 6 <= s.size() && s[i] == '\\' && s[i + 1] == 'u' &&
            hex4(i + 2, low) && low >= 0xDC00 && low < 0xE000) {
          cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          i += 6;
        }
        append_utf8(out, cp);
        break;
      }
      default:
        err = std::string("unknown escape \\") + e + " at offset " + std::to_string(i - 1);
        return false;
    }
  }
  err = "unterminated string";
  return false;
}

// One line of the output file: a flat JSON object of strings, as the corral_json template
// writes it.
bool parse_line(std::string_view line, SyslogMessage& m, std::string& err) {
  size_t i = 0;
  auto skip_ws = [&] {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\r')) ++i;
  };
  skip_ws();
  if (i >= line.size() || line[i++] != '{') {
    err = "not a json object";
    return false;
  }
  std::set<std::string> seen;
  for (;;) {
    skip_ws();
    if (i < line.size() && line[i] == '}') break;
    std::string key, value;
    if (!parse_json_string(line, i, key, err)) return false;
    skip_ws();
    if (i >= line.size() || line[i++] != ':') {
      err = "expected ':' after \"" + key + "\"";
      return false;
    }
    skip_ws();
    if (!parse_json_string(line, i, value, err)) return false;
    seen.insert(key);
    if (key == "input") m.input = value;
    else if (key == "protocol_version") m.rfc5424 = value == "1";
    else if (key == "pri") m.pri = value.empty() ? -1 : std::atoi(value.c_str());
    else if (key == "timestamp") m.timestamp = value;
    else if (key == "hostname") m.hostname = value;
    else if (key == "app_name") m.app_name = value;
    else if (key == "procid") m.procid = value;
    else if (key == "msgid") m.msgid = value;
    else if (key == "structured_data") m.structured_data = value;
    else if (key == "msg") m.msg = value;
    else if (key == "raw") m.raw = value;
    skip_ws();
    if (i < line.size() && line[i] == ',') {
      ++i;
      continue;
    }
    if (i < line.size() && line[i] == '}') break;
    err = "expected ',' or '}' at offset " + std::to_string(i);
    return false;
  }
  for (const char* k : {"input", "protocol_version", "pri", "hostname", "app_name", "msgid",
                        "structured_data", "msg", "raw"}) {
    if (!seen.count(k)) {
      err = std::string("no \"") + k + "\" field";
      return false;
    }
  }
  return true;
}

// Complete lines only: rsyslogd may be halfway through writing a large message.
std::vector<SyslogMessage> parse_output(const std::string& path, std::vector<std::string>* errors) {
  std::vector<SyslogMessage> out;
  std::string text = read_file(path);
  size_t start = 0;
  for (size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1) {
    std::string_view line(text.data() + start, nl - start);
    if (line.empty()) continue;
    SyslogMessage m;
    std::string err;
    if (parse_line(line, m, err)) out.push_back(std::move(m));
    else if (errors) errors->push_back(err + ": " + std::string(line.substr(0, 300)));
  }
  return out;
}

sockaddr_in loopback(uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  return addr;
}

}  // namespace

std::string rsyslog_missing() {
  if (::access(kRsyslogd, X_OK) != 0)
    return std::string("no rsyslogd at ") + kRsyslogd + ": " + errno_text(errno) +
           " (apt-get install rsyslog rsyslog-openssl rsyslog-gnutls)";
  if (find_in_path("openssl").empty()) return "no openssl CLI in PATH (apt-get install openssl)";
  return "";
}

Rsyslog::Rsyslog() : Rsyslog(Options{}) {}

Rsyslog::Rsyslog(Options options) : options_(std::move(options)) {
  const std::string& d = dir_.path();
  config_ = d + "/rsyslog.conf";
  pidfile_ = d + "/rsyslogd.pid";
  output_ = d + "/messages.jsonl";
  internal_log_ = d + "/rsyslogd.log";
  stderr_path_ = d + "/rsyslogd.stderr";
  if (d.find_first_of("\"\\") != std::string::npos) {
    setup_error_ = "scratch dir " + d + " cannot be quoted in an rsyslog config";
    return;
  }
  if (std::string missing = rsyslog_missing(); !missing.empty()) {
    setup_error_ = missing;
    return;
  }
  if (options_.tls && options_.tls_driver != "ossl" && options_.tls_driver != "gtls") {
    setup_error_ = "unknown rsyslog tls driver '" + options_.tls_driver + "' (ossl or gtls)";
    return;
  }
  std::error_code ec;
  std::filesystem::create_directory(d + "/work", ec);
  if (ec) {
    setup_error_ = "cannot create " + d + "/work: " + ec.message();
    return;
  }
  port_ = pick_port();
  if (options_.tls) tls_port_ = pick_port();
  if (port_ == 0 || (options_.tls && tls_port_ == 0)) {
    setup_error_ = "found no free tcp port on 127.0.0.1";
    return;
  }
  if (options_.tls) {
    setup_error_ = write_certificates();
    if (!setup_error_.empty()) return;
  }
  {
    std::ofstream conf(config_);
    conf << write_config();
    if (!conf.flush()) {
      setup_error_ = "cannot write " + config_ + ": " + errno_text(errno);
      return;
    }
  }
  // rsyslogd -n runs on past config errors with whatever it could load; -N1 fails on them.
  if (std::string err = run_or_error({kRsyslogd, "-N1", "-f", config_}); !err.empty())
    setup_error_ = "rsyslogd rejects the generated config " + config_ + ": " + err;
}

Rsyslog::~Rsyslog() {
  if (running()) (void)stop();
}

std::string Rsyslog::write_certificates() {
  const std::string& d = dir_.path();
  std::string openssl = find_in_path("openssl");
  std::string cnf = d + "/openssl.cnf";
  // Our own extension sections, so that the system's openssl.cnf cannot change what the
  // certificates say. EC keys: generating them takes no time.
  std::ofstream(cnf) << "[req]\n"
                        "distinguished_name = dn\n"
                        "[dn]\n"
                        "[ca_ext]\n"
                        "basicConstraints = critical,CA:TRUE\n"
                        "keyUsage = critical,keyCertSign,cRLSign\n"
                        "subjectKeyIdentifier = hash\n"
                        "[server_ext]\n"
                        "basicConstraints = critical,CA:FALSE\n"
                        "keyUsage = critical,digitalSignature,keyEncipherment\n"
                        "extendedKeyUsage = serverAuth\n"
                        "subjectAltName = IP:127.0.0.1,DNS:localhost\n"
                        "subjectKeyIdentifier = hash\n"
                        "authorityKeyIdentifier = keyid\n"
                        "[client_ext]\n"
                        "basicConstraints = critical,CA:FALSE\n"
                        "keyUsage = critical,digitalSignature\n"
                        "extendedKeyUsage = clientAuth\n"
                        "subjectKeyIdentifier = hash\n"
                        "authorityKeyIdentifier = keyid\n";
  ca_cert_ = d + "/ca.pem";
  server_cert_ = d + "/server.pem";
  server_key_ = d + "/server.key";
  client_cert_ = d + "/client.pem";
  client_key_ = d + "/client.key";
  const std::vector<std::string> ec_key = {"-newkey", "ec", "-pkeyopt",
                                           "ec_paramgen_curve:prime256v1", "-nodes"};
  auto req = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = {openssl, "req", "-config", cnf};
    argv.insert(argv.end(), ec_key.begin(), ec_key.end());
    argv.insert(argv.end(), args.begin(), args.end());
    return run_or_error(argv);
  };
  auto sign = [&](const std::string& csr, const std::string& cert, const std::string& ext,
                  const std::string& serial) {
    return run_or_error({openssl, "x509", "-req", "-in", csr, "-CA", ca_cert_, "-CAkey",
                         d + "/ca.key", "-set_serial", serial, "-days", "30", "-extfile", cnf,
                         "-extensions", ext, "-out", cert});
  };
  std::string err = req({"-x509", "-keyout", d + "/ca.key", "-out", ca_cert_, "-days", "30",
                         "-subj", "/CN=corral test ca", "-extensions", "ca_ext"});
  if (err.empty())
    err = req({"-new", "-keyout", server_key_, "-out", d + "/server.csr", "-subj",
               "/CN=localhost"});
  if (err.empty()) err = sign(d + "/server.csr", server_cert_, "server_ext", "2");
  if (err.empty())
    err = req({"-new", "-keyout", client_key_, "-out", d + "/client.csr", "-subj",
               "/CN=corral test client"});
  if (err.empty()) err = sign(d + "/client.csr", client_cert_, "client_ext", "3");
  return err.empty() ? "" : "generating test certificates: " + err;
}

std::string Rsyslog::write_config() const {
  const std::string& d = dir_.path();
  std::ostringstream c;
  c << "# A private rsyslogd for corral's tests (tests/integration/rsyslog.cc): TCP and TLS\n"
       "# on 127.0.0.1 only. Only imtcp is loaded, so it takes neither /dev/log (imuxsock) nor\n"
       "# the kernel log (imklog).\n"
       "global(\n"
       "  # Private state; nothing under /var/lib/rsyslog.\n"
       "  workDirectory=\"" << d << "/work\"\n"
       "  # Its own messages stay in this instance (the default ruleset below) instead of\n"
       "  # going to the system's log socket.\n"
       "  processInternalMessages=\"on\"\n"
       "  localHostName=\"corral-test-rsyslog\"\n"
       "  # No reverse lookups of the peer: they can stall on a machine without DNS.\n"
       "  net.enableDNS=\"off\"\n"
       "  # Room for 64 KiB bodies and more; must come before any input.\n"
       "  maxMessageSize=\"256k\"\n"
       "  # Deliver bytes as received: no #011-style escapes of tabs and control\n"
       "  # characters, and UTF-8 left alone.\n"
       "  parser.escapeControlCharactersOnReceive=\"off\"\n"
       "  parser.escapeControlCharacterTab=\"off\"\n"
       "  parser.escape8BitCharactersOnReceive=\"off\"\n"
       ")\n"
       "# One worker: messages of one connection reach the file in the order sent.\n"
       "main_queue(queue.workerThreads=\"1\")\n"
       "# maxFrameSize: octet-counted frames as large as maxMessageSize. Connection open/close\n"
       "# notes go to the internal log, to see a client's reconnects.\n"
       "module(load=\"imtcp\" maxFrameSize=\"262144\" notifyOnConnectionOpen=\"on\"\n"
       "       notifyOnConnectionClose=\"on\")\n"
       "# One JSON object a line; jsonf escapes quotes, backslashes, newlines and most control\n"
       "# characters and keeps UTF-8 (a tab stays raw: the harness reads that back).\n"
       "template(name=\"corral_json\" type=\"list\" option.jsonf=\"on\") {\n"
       "  property(outname=\"input\" name=\"inputname\" format=\"jsonf\")\n"
       "  property(outname=\"protocol_version\" name=\"protocol-version\" format=\"jsonf\")\n"
       "  property(outname=\"pri\" name=\"pri\" format=\"jsonf\")\n"
       "  property(outname=\"timestamp\" name=\"timereported\" dateFormat=\"rfc3339\""
       " format=\"jsonf\")\n"
       "  property(outname=\"hostname\" name=\"hostname\" format=\"jsonf\")\n"
       "  property(outname=\"app_name\" name=\"app-name\" format=\"jsonf\")\n"
       "  property(outname=\"procid\" name=\"procid\" format=\"jsonf\")\n"
       "  property(outname=\"msgid\" name=\"msgid\" format=\"jsonf\")\n"
       "  property(outname=\"structured_data\" name=\"structured-data\" format=\"jsonf\")\n"
       "  property(outname=\"msg\" name=\"msg\" format=\"jsonf\")\n"
       "  property(outname=\"raw\" name=\"rawmsg\" format=\"jsonf\")\n"
       "}\n"
       "# Received messages: RFC 5424 only (no fallback to RFC 3164 guessing), written\n"
       "# synchronously (direct queue, no async writer, flushed after every batch).\n"
       "ruleset(name=\"corral_received\" parser=\"rsyslog.rfc5424\") {\n"
       "  action(type=\"omfile\" name=\"corral_messages\" file=\"" << output_ << "\"\n"
       "         template=\"corral_json\" fileCreateMode=\"0644\" queue.type=\"Direct\"\n"
       "         asyncWriting=\"off\" flushOnTXEnd=\"on\")\n"
       "}\n"
       "input(type=\"imtcp\" name=\"tcp\" address=\"127.0.0.1\" port=\"" << port_ << "\"\n"
       "      ruleset=\"corral_received\" supportOctetCountedFraming=\"on\")\n";
  if (options_.tls) {
    c << "# RFC 5425: TLS only (mode 1) with our own CA's server certificate.\n"
         "input(type=\"imtcp\" name=\"tls\" address=\"127.0.0.1\" port=\"" << tls_port_ << "\"\n"
         "      ruleset=\"corral_received\" supportOctetCountedFraming=\"on\"\n"
         "      streamDriver.name=\"" << options_.tls_driver << "\" streamDriver.mode=\"1\"\n"
         "      streamDriver.authMode=\""
      << (options_.client_auth ? "x509/certvalid" : "anon") << "\"\n"
         "      streamDriver.CAFile=\"" << ca_cert_ << "\"\n"
         "      streamDriver.CertFile=\"" << server_cert_ << "\"\n"
         "      streamDriver.KeyFile=\"" << server_key_ << "\")\n";
  }
  c << "# rsyslogd's own messages (default ruleset), for failure reports.\n"
       "action(type=\"omfile\" file=\"" << internal_log_ << "\" fileCreateMode=\"0644\")\n";
  return c.str();
}

std::vector<uint16_t> Rsyslog::ports() const {
  std::vector<uint16_t> out = {port_};
  if (options_.tls) out.push_back(tls_port_);
  return out;
}

::testing::AssertionResult Rsyslog::failure(const std::string& what) const {
  return ::testing::AssertionFailure()
         << what << "\n--- rsyslogd stderr ---\n" << tail(stderr_text(), 4000)
         << "\n--- rsyslogd internal log (" << internal_log_ << ") ---\n"
         << tail(internal_log(), 4000);
}

::testing::AssertionResult Rsyslog::start(milliseconds timeout) {
  if (!setup_error_.empty()) return ::testing::AssertionFailure() << setup_error_;
  if (running())
    return ::testing::AssertionFailure() << "rsyslogd is already running (pid " << pid_ << ")";
  std::error_code ec;
  std::filesystem::remove(pidfile_, ec);  // stale after kill(); rsyslogd would refuse it
  int err_fd = ::open(stderr_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (err_fd < 0)
    return ::testing::AssertionFailure() << "cannot open " << stderr_path_ << ": "
                                         << errno_text(errno);
  int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  int exec_status[2];  // carries errno if execve fails; closed by a successful exec
  if (null_fd < 0 || ::pipe2(exec_status, O_CLOEXEC) != 0) {
    int e = errno;
    ::close(err_fd);
    if (null_fd >= 0) ::close(null_fd);
    return ::testing::AssertionFailure() << "cannot set up rsyslogd's stdio: " << errno_text(e);
  }
  std::vector<std::string> argv = {kRsyslogd, "-n", "-f", config_, "-i", pidfile_};
  std::vector<std::string> env = child_environment();
  std::vector<char*> cargv = c_strings(argv), cenv = c_strings(env);
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid == 0) {
    // If the test process dies, rsyslogd must not linger holding the ports.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) _exit(126);
    ::dup2(null_fd, 0);
    ::dup2(null_fd, 1);
    ::dup2(err_fd, 2);
    ::dup2(exec_status[1], 3);
    ::fcntl(3, F_SETFD, FD_CLOEXEC);
    prepare_child(4);
    ::execve(cargv[0], cargv.data(), cenv.data());
    int e = errno;
    (void)!::write(3, &e, sizeof e);
    _exit(127);
  }
  int fork_errno = errno;
  ::close(err_fd);
  ::close(null_fd);
  ::close(exec_status[1]);
  if (pid < 0) {
    ::close(exec_status[0]);
    return ::testing::AssertionFailure() << "cannot fork rsyslogd: " << errno_text(fork_errno);
  }
  int exec_errno = 0;
  ssize_t n;
  while ((n = ::read(exec_status[0], &exec_errno, sizeof exec_errno)) < 0 && errno == EINTR) {
  }
  ::close(exec_status[0]);
  if (n == sizeof exec_errno) {
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    return ::testing::AssertionFailure() << "cannot exec " << kRsyslogd << ": "
                                         << errno_text(exec_errno);
  }
  pid_ = pid;
  auto deadline = Clock::now() + timeout;
  std::vector<uint16_t> want = ports();
  for (;;) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return failure("rsyslogd exited during startup (" + describe_status(status) + ")");
    }
    std::set<uint16_t> listening = loopback_listeners(socket_inodes(pid_));
    bool all = true;
    for (uint16_t p : want) all = all && listening.count(p);
    if (all) return ::testing::AssertionSuccess();
    if (Clock::now() >= deadline) break;
    std::this_thread::sleep_for(milliseconds(20));
  }
  std::string which;
  for (uint16_t p : want) which += (which.empty() ? "" : " and ") + std::to_string(p);
  kill();
  return failure("rsyslogd did not listen on 127.0.0.1 port " + which + " within " +
                 std::to_string(timeout.count()) + " ms (port taken?)");
}

::testing::AssertionResult Rsyslog::stop(milliseconds timeout) {
  if (!running()) return ::testing::AssertionSuccess();
  ::kill(pid_, SIGTERM);
  ::kill(pid_, SIGCONT);  // a frozen rsyslogd would never act on the SIGTERM
  auto deadline = Clock::now() + timeout;
  int status = 0;
  while (::waitpid(pid_, &status, WNOHANG) != pid_) {
    if (Clock::now() >= deadline) {
      kill();
      return failure("rsyslogd did not exit within " + std::to_string(timeout.count()) +
                     " ms of sigterm; killed it");
    }
    std::this_thread::sleep_for(milliseconds(10));
  }
  pid_ = -1;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return failure("rsyslogd ended badly on sigterm (" + describe_status(status) + ")");
  return ::testing::AssertionSuccess();
}

void Rsyslog::kill() {
  if (!running()) return;
  ::kill(pid_, SIGKILL);
  while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

void Rsyslog::freeze() {
  if (running()) ::kill(pid_, SIGSTOP);
}

void Rsyslog::thaw() {
  if (running()) ::kill(pid_, SIGCONT);
}

std::vector<SyslogMessage> Rsyslog::messages() const {
  std::vector<std::string> errors;
  auto out = parse_output(output_, &errors);
  for (const auto& e : errors) ADD_FAILURE() << "unparseable line in " << output_ << ": " << e;
  return out;
}

std::vector<SyslogMessage> Rsyslog::wait_for_messages(size_t n, milliseconds timeout) const {
  return wait_until([n](const std::vector<SyslogMessage>& m) { return m.size() >= n; }, timeout);
}

std::vector<SyslogMessage> Rsyslog::wait_until(
    const std::function<bool(const std::vector<SyslogMessage>&)>& done,
    milliseconds timeout) const {
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline && !done(parse_output(output_, nullptr)))
    std::this_thread::sleep_for(milliseconds(20));
  return messages();  // once more, reporting unparseable lines
}

std::string Rsyslog::internal_log() const { return read_file(internal_log_); }
std::string Rsyslog::stderr_text() const { return read_file(stderr_path_); }

std::string octet_frame(std::string_view msg) {
  return std::to_string(msg.size()) + " " + std::string(msg);
}

TcpClient::~TcpClient() { close(); }

void TcpClient::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

::testing::AssertionResult TcpClient::connect(uint16_t port) {
  close();
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return ::testing::AssertionFailure() << "socket: " << errno_text(errno);
  sockaddr_in addr = loopback(port);
  while (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno == EINTR) continue;
    int e = errno;
    close();
    return ::testing::AssertionFailure() << "connect to 127.0.0.1:" << port << ": "
                                         << errno_text(e);
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult TcpClient::send(std::string_view data) {
  if (fd_ < 0) return ::testing::AssertionFailure() << "send on a closed connection";
  size_t sent = 0;
  while (sent < data.size()) {
    ssize_t n = ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ::testing::AssertionFailure() << "send: " << errno_text(errno);
    sent += static_cast<size_t>(n);
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult send_tcp(uint16_t port, std::string_view data) {
  TcpClient c;
  if (auto r = c.connect(port); !r) return r;
  return c.send(data);
}

::testing::AssertionResult send_tls(uint16_t port, const std::string& ca_cert,
                                    std::string_view data, const std::string& client_cert,
                                    const std::string& client_key) {
  std::string openssl = find_in_path("openssl");
  if (openssl.empty()) return ::testing::AssertionFailure() << "no openssl CLI in PATH";
  // -no_ign_eof after -quiet (which turns ign_eof on): end the session at our stdin's EOF.
  std::vector<std::string> argv = {openssl, "s_client", "-connect",
                                   "127.0.0.1:" + std::to_string(port), "-CAfile", ca_cert,
                                   "-verify_return_error", "-verify_ip", "127.0.0.1",
                                   "-noservername", "-quiet", "-no_ign_eof"};
  if (!client_cert.empty()) {
    argv.insert(argv.end(), {"-cert", client_cert, "-key", client_key});
  }
  ProcResult r = run_process(argv, data, std::chrono::seconds(15));
  if (!r.error.empty()) return ::testing::AssertionFailure() << "openssl s_client: " << r.error;
  if (r.timed_out)
    return ::testing::AssertionFailure() << "openssl s_client to 127.0.0.1:" << port
                                         << " timed out: " << r.output;
  if (r.status != 0)
    return ::testing::AssertionFailure() << "openssl s_client to 127.0.0.1:" << port
                                         << " failed (" << describe_status(r.status)
                                         << "): " << r.output;
  return ::testing::AssertionSuccess();
}

bool port_refuses(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr = loopback(port);
  bool refused = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 &&
                 errno == ECONNREFUSED;
  ::close(fd);
  return refused;
}

}  // namespace corral::test
