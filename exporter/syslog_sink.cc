#include "syslog_sink.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/sockios.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "decision.h"

namespace corral {
namespace {

// RFC 5424 facility 13, "log audit".
constexpr int kFacility = 13;
// The IANA enterprise number reserved for documentation (RFC 5612): the
// SD-ID says which vendor's parameters these are.
constexpr const char* kSdId = "corral@32473";

std::string kind_of(const audit::Record& r) {
  if (r.event_case() == audit::Record::EVENT_NOT_SET) return "-";
  return r.GetDescriptor()->FindFieldByNumber(r.event_case())->name();
}

int severity_of(const audit::Record& r) {
  if (r.has_decision()) return enforced(r.decision()) ? 4 : 5;  // warning, notice
  if (r.has_lost()) return 3;                                            // error
  return 6;                                                              // informational
}

// PARAM-VALUE escaping (RFC 5424 6.3.3).
void sd_param(std::string& out, const char* name, std::string_view value) {
  out += ' ';
  out += name;
  out += "=\"";
  for (char c : value) {
    if (c == '"' || c == '\\' || c == ']') out += '\\';
    out += c;
  }
  out += '"';
}

// HOSTNAME, APP-NAME, PROCID, MSGID: printable US-ASCII, no spaces, capped.
std::string header_field(std::string_view v, size_t max) {
  std::string out;
  for (char c : v.substr(0, max))
    if (c > 32 && c < 127) out += c;
  return out.empty() ? "-" : out;
}

std::string timestamp(const audit::Record& r) {
  if (!r.has_time()) return "-";
  time_t secs = static_cast<time_t>(r.time().seconds());
  struct tm tm;
  gmtime_r(&secs, &tm);
  return fmt::format("{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}.{:06d}Z", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     r.time().nanos() / 1000);
}

std::string ssl_error() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (!e) return std::strerror(errno);
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

}  // namespace

std::string syslog_message(const LogRecord& rec, const SyslogSinkOptions& o) {
  const audit::Record& r = rec.record;
  std::string out = fmt::format("<{}>1 {} {} {} {} {} [{}", kFacility * 8 + severity_of(r),
                                timestamp(r), header_field(r.host(), 255),
                                header_field(o.app_name, 48),
                                r.has_process() ? std::to_string(r.process().pid()) : "-",
                                header_field(kind_of(r), 32), kSdId);
  sd_param(out, "seq", std::to_string(rec.seq));
  if (!r.session().empty()) sd_param(out, "session", r.session());
  if (!r.boot_id().empty()) sd_param(out, "boot_id", r.boot_id());
  if (r.has_decision()) {
    sd_param(out, "action", r.decision().action());
    sd_param(out, "rule", r.decision().rule());
  }
  out += "] ";
  out += render(rec, o.format);
  return out;
}

struct SyslogSink::Tls {
  std::unique_ptr<SSL_CTX, void (*)(SSL_CTX*)> ctx{nullptr, SSL_CTX_free};
  std::unique_ptr<SSL, void (*)(SSL*)> ssl{nullptr, SSL_free};
};

SyslogSink::SyslogSink(SyslogSinkOptions options) : options_(std::move(options)) {
  if (options_.server_name.empty()) options_.server_name = options_.host;
}

SyslogSink::~SyslogSink() = default;

void SyslogSink::connect() {
  std::string where = fmt::format("{}:{}", options_.host, options_.port);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(options_.host.c_str(), std::to_string(options_.port).c_str(), &hints, &res);
  if (rc != 0) throw SinkError("syslog " + where + ": cannot resolve: " + gai_strerror(rc));
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> guard(res, freeaddrinfo);
  std::string last = "no address";
  for (addrinfo* a = res; a; a = a->ai_next) {
    UniqueFd fd(::socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) {
      last = std::strerror(errno);
      continue;
    }
    if (::connect(fd.get(), a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
      last = std::strerror(errno);
      continue;
    }
    pollfd p{fd.get(), POLLOUT, 0};
    int n = ::poll(&p, 1, static_cast<int>(options_.io_timeout.count()));
    int err = 0;
    socklen_t len = sizeof err;
    if (n == 0) {
      last = "connect timed out";
      continue;
    }
    ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (n < 0 || err) {
      last = std::strerror(n < 0 ? errno : err);
      continue;
    }
    // Blocking from here, with a bound on a write that makes no progress.
    ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) & ~O_NONBLOCK);
    timeval tv{static_cast<time_t>(options_.io_timeout.count() / 1000),
               static_cast<suseconds_t>(options_.io_timeout.count() % 1000 * 1000)};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    fd_ = std::move(fd);
    break;
  }
  if (!fd_) throw SinkError("syslog " + where + ": cannot connect: " + last);
  written_ = 0;
  if (!options_.tls) return;

  auto tls = std::make_unique<Tls>();
  tls->ctx.reset(SSL_CTX_new(TLS_client_method()));
  if (!tls->ctx) throw SinkError("syslog " + where + ": tls setup failed: " + ssl_error());
  SSL_CTX_set_min_proto_version(tls->ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_verify(tls->ctx.get(), SSL_VERIFY_PEER, nullptr);
  int ok = options_.ca_file.empty()
               ? SSL_CTX_set_default_verify_paths(tls->ctx.get())
               : SSL_CTX_load_verify_locations(tls->ctx.get(), options_.ca_file.c_str(), nullptr);
  if (ok != 1)
    throw SinkError("syslog: cannot load ca file " + options_.ca_file + ": " + ssl_error());
  if (!options_.cert_file.empty() &&
      (SSL_CTX_use_certificate_chain_file(tls->ctx.get(), options_.cert_file.c_str()) != 1 ||
       SSL_CTX_use_PrivateKey_file(tls->ctx.get(), options_.key_file.c_str(), SSL_FILETYPE_PEM) !=
           1))
    throw SinkError("syslog: cannot load client certificate " + options_.cert_file + ": " +
                    ssl_error());
  tls->ssl.reset(SSL_new(tls->ctx.get()));
  if (!tls->ssl || SSL_set_fd(tls->ssl.get(), fd_.get()) != 1 ||
      SSL_set1_host(tls->ssl.get(), options_.server_name.c_str()) != 1 ||
      SSL_set_tlsext_host_name(tls->ssl.get(), options_.server_name.c_str()) != 1)
    throw SinkError("syslog " + where + ": tls setup failed: " + ssl_error());
  if (SSL_connect(tls->ssl.get()) != 1) {
    std::string why = ssl_error();
    long v = SSL_get_verify_result(tls->ssl.get());
    if (v != X509_V_OK) why += std::string(" (") + X509_verify_cert_error_string(v) + ")";
    fd_.reset();
    throw SinkError("syslog " + where + ": tls handshake failed: " + why);
  }
  tls_ = std::move(tls);
}

void SyslogSink::send(const LogRecord& record) {
  if (!fd_) connect();
  std::string msg = syslog_message(record, options_);
  out_ += std::to_string(msg.size());
  out_ += ' ';
  out_ += msg;
  queued_seq_ = record.seq;
  if (out_.size() >= (256u << 10)) write_out();
}

void SyslogSink::write_out() {
  if (out_.empty()) return;
  size_t done = 0;
  while (done < out_.size()) {
    ssize_t n;
    if (tls_) {
      n = SSL_write(tls_->ssl.get(), out_.data() + done, static_cast<int>(out_.size() - done));
      if (n <= 0)
        throw SinkError(fmt::format("syslog {}:{}: tls write failed: {}", options_.host,
                                    options_.port, ssl_error()));
    } else {
      n = ::send(fd_.get(), out_.data() + done, out_.size() - done, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0)
        throw SinkError(fmt::format("syslog {}:{}: write failed: {}", options_.host,
                                    options_.port,
                                    errno == EAGAIN ? "timed out" : std::strerror(errno)));
      written_ += static_cast<uint64_t>(n);
    }
    done += static_cast<size_t>(n);
  }
  out_.clear();
  if (tls_) written_ = BIO_number_written(SSL_get_wbio(tls_->ssl.get()));
  marks_.push_back({queued_seq_, written_, std::chrono::steady_clock::now()});
}

// Bytes the collector's TCP stack has acknowledged.
uint64_t SyslogSink::bytes_acked() {
  int unacked = 0;
  if (::ioctl(fd_.get(), SIOCOUTQ, &unacked) != 0) return 0;
  return written_ - static_cast<uint64_t>(unacked);
}

uint64_t SyslogSink::poll(std::chrono::milliseconds timeout) {
  if (!fd_) {
    if (timeout.count()) ::poll(nullptr, 0, static_cast<int>(timeout.count()));
    return delivered_;
  }
  write_out();
  // Sleep until the collector hangs up or the timeout.
  pollfd p{fd_.get(), POLLRDHUP, 0};
  int n = ::poll(&p, 1, static_cast<int>(timeout.count()));
  if (n > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)))
    throw SinkError(fmt::format("syslog {}:{}: the collector closed the connection",
                                options_.host, options_.port));
  uint64_t acked = bytes_acked();
  auto now = std::chrono::steady_clock::now();
  while (!marks_.empty() && marks_.front().end <= acked &&
         now - marks_.front().at >= options_.replay_window) {
    delivered_ = marks_.front().seq;
    marks_.pop_front();
  }
  return delivered_;
}

void SyslogSink::reset() {
  tls_.reset();
  fd_.reset();
  out_.clear();
  marks_.clear();
  written_ = 0;
}

}  // namespace corral
