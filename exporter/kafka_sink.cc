#include "kafka_sink.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <syslog.h>

#include <algorithm>
#include <climits>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <utility>

namespace corral {

namespace {

// The seq travels as the message opaque, so it has to fit in a pointer.
static_assert(sizeof(uintptr_t) >= sizeof(uint64_t));

int to_poll_ms(std::chrono::milliseconds timeout) {
  return static_cast<int>(std::clamp<int64_t>(timeout.count(), 0, INT_MAX));
}

// librdkafka's text for `err`, or the underlying cause when it is the
// generic "fatal error" code.
std::string describe(rd_kafka_t* rk, rd_kafka_resp_err_t err) {
  if (err == RD_KAFKA_RESP_ERR__FATAL) {
    char reason[512];
    if (rd_kafka_fatal_error(rk, reason, sizeof reason) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return fmt::format("fatal producer error: {}", reason);
    }
  }
  return rd_kafka_err2str(err);
}

}  // namespace

KafkaSink::KafkaSink(KafkaSinkOptions options)
    : options_(std::move(options)), conf_(rd_kafka_conf_new()) {
  if (options_.brokers.empty()) {
    throw std::invalid_argument("kafka sink: no brokers configured");
  }
  auto set = [&](const std::string& property, const std::string& value) {
    char error[512];
    if (rd_kafka_conf_set(conf_.get(), property.c_str(), value.c_str(), error, sizeof error) !=
        RD_KAFKA_CONF_OK) {
      throw std::invalid_argument(
          fmt::format("kafka sink: cannot set {}={}: {}", property, value, error));
    }
  };
  set("bootstrap.servers", options_.brokers);
  set("client.id", "corral");
  // Idempotence caps in-flight requests at 5 and makes retries neither
  // reorder nor duplicate, so a host's records arrive in log order.
  set("enable.idempotence", "true");
  set("acks", "all");
  // A batch refused for good stops the producer instead of letting later
  // records through: what reaches a partition stays a prefix of what was
  // sent, and the replay after reset() continues it without a hole.
  set("enable.gapless.guarantee", "true");
  set("message.timeout.ms", std::to_string(options_.message_timeout.count()));
  for (const auto& [property, value] : options_.properties) set(property, value);

  rd_kafka_conf_set_opaque(conf_.get(), this);
  rd_kafka_conf_set_dr_msg_cb(conf_.get(), &KafkaSink::delivery_cb);
  rd_kafka_conf_set_error_cb(conf_.get(), &KafkaSink::error_cb);
  // Also keeps librdkafka from printing to stderr.
  rd_kafka_conf_set_log_cb(conf_.get(), &KafkaSink::log_cb);

  // Some combinations are only refused when the producer is created.
  std::string error;
  producer_ = open(error);
  if (!producer_.handle) throw std::invalid_argument(error);
}

KafkaSink::~KafkaSink() { reset(); }

KafkaSink::Producer KafkaSink::open(std::string& error) const {
  // rd_kafka_new() takes the configuration only when it succeeds.
  std::unique_ptr<rd_kafka_conf_t, ConfDeleter> conf(rd_kafka_conf_dup(conf_.get()));
  char reason[512];
  Producer producer;
  producer.handle.reset(rd_kafka_new(RD_KAFKA_PRODUCER, conf.get(), reason, sizeof reason));
  if (!producer.handle) {
    error = fmt::format("kafka sink: cannot create producer: {}", reason);
    return {};
  }
  conf.release();
  producer.topic.reset(rd_kafka_topic_new(producer.handle.get(), options_.topic.c_str(), nullptr));
  if (!producer.topic) {
    error = fmt::format("kafka sink: cannot open topic {}: {}", options_.topic,
                        rd_kafka_err2str(rd_kafka_last_error()));
    return {};
  }
  return producer;
}

void KafkaSink::send(const LogRecord& record) {
  if (!failure_.empty()) throw SinkError(failure_);
  if (record.seq <= last_sent_) {
    throw std::logic_error(
        fmt::format("kafka sink: seq {} sent after seq {} without reset", record.seq, last_sent_));
  }
  if (!producer_.handle) {
    std::string error;
    producer_ = open(error);
    if (!producer_.handle) throw SinkError(error);
  }
  rd_kafka_t* rk = producer_.handle.get();
  std::string body = render(record, options_.format);
  std::string seq = std::to_string(record.seq);
  const std::string& host = record.record.host();
  const std::string& session = record.record.session();
  for (;;) {
    rd_kafka_resp_err_t err = rd_kafka_producev(
        rk, RD_KAFKA_V_RKT(producer_.topic.get()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY(host.data(), host.size()), RD_KAFKA_V_VALUE(body.data(), body.size()),
        RD_KAFKA_V_HEADER("corral.seq", seq.data(), static_cast<ssize_t>(seq.size())),
        RD_KAFKA_V_HEADER("corral.session", session.data(), static_cast<ssize_t>(session.size())),
        RD_KAFKA_V_OPAQUE(reinterpret_cast<void*>(static_cast<uintptr_t>(record.seq))),
        RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) break;
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      throw SinkError(fmt::format("kafka sink: cannot produce seq {} to {}: {}", record.seq,
                                  options_.topic, describe(rk, err)));
    }
    // Back-pressure: delivery reports free queue space. Records that time
    // out meanwhile end the wait.
    serve(100);
    if (!failure_.empty()) throw SinkError(failure_);
  }
  in_flight_.push_back({record.seq, false});
  last_sent_ = record.seq;
}

uint64_t KafkaSink::poll(std::chrono::milliseconds timeout) {
  if (!producer_.handle) {
    // Nothing in flight until the next send(); wait like an idle producer.
    std::this_thread::sleep_for(timeout);
    return reported_ = delivered_;
  }
  if (failure_.empty()) serve(to_poll_ms(timeout));
  if (!failure_.empty() && delivered_ == reported_) throw SinkError(failure_);
  return reported_ = delivered_;
}

void KafkaSink::reset() {
  in_flight_.clear();  // so the purged records' reports are ignored
  if (producer_.handle) {
    // Without the purge, destroying waits for requests the brokers may
    // never answer.
    rd_kafka_purge(producer_.handle.get(), RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(producer_.handle.get(), 0);
    producer_.topic.reset();
    producer_.handle.reset();
  }
  last_sent_ = 0;
  failure_.clear();
  last_error_.clear();
}

void KafkaSink::serve(int timeout_ms) {
  rd_kafka_t* rk = producer_.handle.get();
  rd_kafka_poll(rk, timeout_ms);
  // A fatal error with nothing in flight (say, refused InitProducerId)
  // produces no failed delivery report.
  char reason[512];
  if (failure_.empty() &&
      rd_kafka_fatal_error(rk, reason, sizeof reason) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    failure_ = fmt::format("kafka sink: fatal producer error: {}", reason);
  }
}

void KafkaSink::on_delivery(rd_kafka_t* rk, const rd_kafka_message_t& message) {
  uint64_t seq = reinterpret_cast<uintptr_t>(message._private);
  auto it = std::lower_bound(in_flight_.begin(), in_flight_.end(), seq,
                             [](const InFlight& f, uint64_t s) { return f.seq < s; });
  if (it == in_flight_.end() || it->seq != seq) return;
  if (message.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    // The first failure is the cause; later records fail in its wake.
    if (failure_.empty()) {
      failure_ = fmt::format("kafka sink: seq {} not delivered to {}: {}", seq, options_.topic,
                             describe(rk, message.err));
      if (!last_error_.empty()) failure_ += fmt::format(" (last error: {})", last_error_);
    }
    return;
  }
  it->acked = true;
  last_error_.clear();
  while (!in_flight_.empty() && in_flight_.front().acked) {
    delivered_ = std::max(delivered_, in_flight_.front().seq);
    in_flight_.pop_front();
  }
}

void KafkaSink::delivery_cb(rd_kafka_t* rk, const rd_kafka_message_t* message, void* opaque) {
  static_cast<KafkaSink*>(opaque)->on_delivery(rk, *message);
}

// Served by rd_kafka_poll() on the shipper's thread, like delivery reports.
void KafkaSink::error_cb(rd_kafka_t*, int, const char* reason, void* opaque) {
  static_cast<KafkaSink*>(opaque)->last_error_ = reason;
}

// Called on librdkafka's threads; spdlog's default logger is thread-safe.
void KafkaSink::log_cb(const rd_kafka_t* rk, int level, const char* facility, const char* line) {
  const auto* sink = static_cast<const KafkaSink*>(rd_kafka_opaque(rk));
  spdlog::level::level_enum severity = level <= LOG_CRIT      ? spdlog::level::critical
                                       : level == LOG_ERR     ? spdlog::level::err
                                       : level == LOG_WARNING ? spdlog::level::warn
                                       : level <= LOG_INFO    ? spdlog::level::info
                                                              : spdlog::level::debug;
  // The sink asks for the experimental gapless mode on purpose, and every
  // new producer would say so again.
  if (std::string_view(facility) == "CONFWARN" &&
      std::string_view(line).find("enable.gapless.guarantee") != std::string_view::npos) {
    severity = spdlog::level::debug;
  }
  spdlog::log(severity, "{}: librdkafka {}: {}", sink->options_.name, facility, line);
}

}  // namespace corral
