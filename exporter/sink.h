// What every export destination (syslog, Kafka) implements. The shipper
// (exporter/shipper.h) reads the local log from a sink's durable cursor and
// feeds it; a sink only has to say how far delivery is certain. Sinks run on
// the shipper's threads, never on the guard's.
#pragma once

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "audit.pb.h"

namespace corral {

// One record of the local log as the shipper read it.
struct LogRecord {
  uint64_t seq = 0;
  std::string line;      // the JSON line exactly as written, without '\n'
  audit::Record record;  // the same, parsed
};

// The body a sink sends for each record.
enum class SinkFormat { kJson, kOcsf };

// How much of each line the reader parses into LogRecord::record.
enum class ParseDepth {
  kFull,  // every field (protobuf's JSON parser: ~35 µs a record)
  // What sinks that send the line itself use: seq, time, host, session,
  // boot_id, the process's pid, the decision's action and rule, and which
  // kind of event it is (an empty message of it). A few µs a record.
  kHead,
};

// A sink sending `format` reads this much: the line itself needs the head.
inline ParseDepth depth_for(SinkFormat format) {
  return format == SinkFormat::kOcsf ? ParseDepth::kFull : ParseDepth::kHead;
}

// The message body for `record` in `format`: the log line itself, or OCSF.
std::string render(const LogRecord& record, SinkFormat format);

// A destination is unreachable or refused records; the shipper resets the
// sink, backs off and replays from the last delivered record.
struct SinkError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Sink {
 public:
  virtual ~Sink() = default;
  // For cursor files and messages: "syslog", "kafka", or the configured name.
  virtual const std::string& name() const = 0;
  // What send() reads of LogRecord::record.
  virtual ParseDepth depth() const = 0;
  // Hands one record over, in seq order; may block while the destination
  // applies back-pressure. Throws SinkError when it is gone.
  virtual void send(const LogRecord& record) = 0;
  // Serves the connection for at most `timeout` and returns the highest seq
  // such that it and every record sent before it are delivered for good
  // (acknowledged, or past the sink's replay window); 0 when none yet.
  // Throws SinkError when delivery failed.
  virtual uint64_t poll(std::chrono::milliseconds timeout) = 0;
  // Drops the connection and everything in flight; the next send() starts
  // over (the shipper replays from its cursor).
  virtual void reset() = 0;
};

}  // namespace corral
