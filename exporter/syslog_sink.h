// The syslog sink: RFC 5424 messages over TCP with octet-counting framing
// (RFC 6587), or over TLS (RFC 5425). The structured data carries the
// fields a SIEM indexes on; the message body is the record (JSON or OCSF).
//
// Syslog over TCP has no acknowledgements. A record counts as delivered
// once the collector's TCP stack has acknowledged its bytes and
// `replay_window` has passed with the connection still up; when the
// connection fails, everything after that is sent again (the receiver drops
// duplicates by seq). The window covers what a collector read but had not
// yet processed when it went down.
#pragma once

#include <chrono>
#include <deque>
#include <memory>
#include <string>

#include "sink.h"
#include "unique_fd.h"

namespace corral {

struct SyslogSinkOptions {
  std::string name = "syslog";
  std::string host = "127.0.0.1";
  uint16_t port = 514;
  bool tls = false;
  std::string ca_file;      // TLS: trust anchors for the collector (empty: the system's)
  std::string cert_file;    // TLS: client certificate and key, when the collector asks
  std::string key_file;
  std::string server_name;  // TLS: the name the certificate must carry (default: host)
  SinkFormat format = SinkFormat::kJson;
  std::string app_name = "corral";
  std::chrono::milliseconds replay_window{2000};
  std::chrono::milliseconds io_timeout{5000};  // connect, and a write that makes no progress
};

// One RFC 5424 message (without the octet count) for a record.
std::string syslog_message(const LogRecord& record, const SyslogSinkOptions& options);

class SyslogSink : public Sink {
 public:
  explicit SyslogSink(SyslogSinkOptions options);
  ~SyslogSink() override;

  const std::string& name() const override { return options_.name; }
  ParseDepth depth() const override { return depth_for(options_.format); }
  void send(const LogRecord& record) override;
  uint64_t poll(std::chrono::milliseconds timeout) override;
  void reset() override;

 private:
  struct Tls;
  void connect();
  void write_out();
  uint64_t bytes_acked();

  SyslogSinkOptions options_;
  UniqueFd fd_;
  std::unique_ptr<Tls> tls_;
  std::string out_;
  uint64_t written_ = 0;  // bytes handed to the socket (TLS: on the wire)
  struct Mark {
    uint64_t seq;
    uint64_t end;  // written_ once the record is out
    std::chrono::steady_clock::time_point at;
  };
  std::deque<Mark> marks_;  // sent, not yet counted delivered
  uint64_t queued_seq_ = 0;  // the last record in out_
  uint64_t delivered_ = 0;
};

}  // namespace corral
