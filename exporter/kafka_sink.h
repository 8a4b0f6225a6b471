// A sink that produces every record to a Kafka topic through librdkafka's
// idempotent producer: acks from all in-sync replicas, no reordering or
// duplicates from internal retries, and the host as message key so one
// host's records stay in one partition, in order. librdkafka's log goes to
// spdlog.
#pragma once

#include <librdkafka/rdkafka.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>

#include "sink.h"

namespace corral {

struct KafkaSinkOptions {
  std::string name = "kafka";
  std::string brokers;  // bootstrap.servers, "host:port,..."
  std::string topic = "corral.audit";
  SinkFormat format = SinkFormat::kJson;
  // librdkafka properties, applied after the sink's own so an operator can
  // tune anything (compression.type, security.protocol, ...).
  std::map<std::string, std::string> properties;
  // How long librdkafka retries a record before poll() reports it failed
  // (message.timeout.ms); the shipper then resets and replays.
  std::chrono::milliseconds message_timeout{std::chrono::minutes(5)};
};

class KafkaSink : public Sink {
 public:
  // Throws std::invalid_argument naming the property when librdkafka
  // refuses the configuration.
  explicit KafkaSink(KafkaSinkOptions options);
  ~KafkaSink() override;
  KafkaSink(const KafkaSink&) = delete;
  KafkaSink& operator=(const KafkaSink&) = delete;

  const std::string& name() const override { return options_.name; }
  ParseDepth depth() const override { return depth_for(options_.format); }
  // Record seqs must increase between resets (std::logic_error if not).
  // Blocks while librdkafka's queue is full; nothing is ever dropped.
  void send(const LogRecord& record) override;
  // The highest seq acknowledged with every seq sent before it; never goes
  // back, not even across reset(). Reports progress before a failure: it
  // throws once there is none left to report.
  uint64_t poll(std::chrono::milliseconds timeout) override;
  // Purges everything in flight and closes the producer.
  void reset() override;

 private:
  struct HandleDeleter {
    void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
  };
  struct TopicDeleter {
    void operator()(rd_kafka_topic_t* rkt) const { rd_kafka_topic_destroy(rkt); }
  };
  struct ConfDeleter {
    void operator()(rd_kafka_conf_t* conf) const { rd_kafka_conf_destroy(conf); }
  };
  // Declared in this order so the topic handle goes before its producer.
  struct Producer {
    std::unique_ptr<rd_kafka_t, HandleDeleter> handle;
    std::unique_ptr<rd_kafka_topic_t, TopicDeleter> topic;
  };
  struct InFlight {
    uint64_t seq;
    bool acked;
  };

  // A producer for the validated configuration; a null handle and `error`
  // when librdkafka refuses.
  Producer open(std::string& error) const;
  // Serves callbacks for up to `timeout_ms` and notices fatal errors.
  void serve(int timeout_ms);
  void on_delivery(rd_kafka_t* rk, const rd_kafka_message_t& message);
  static void delivery_cb(rd_kafka_t* rk, const rd_kafka_message_t* message, void* opaque);
  static void error_cb(rd_kafka_t* rk, int err, const char* reason, void* opaque);
  static void log_cb(const rd_kafka_t* rk, int level, const char* facility, const char* line);

  KafkaSinkOptions options_;
  std::unique_ptr<rd_kafka_conf_t, ConfDeleter> conf_;  // validated, copied per producer
  Producer producer_;               // handle is null between reset() and the next send()
  std::deque<InFlight> in_flight_;  // sent and not yet part of delivered_, by seq
  uint64_t last_sent_ = 0;
  uint64_t delivered_ = 0;
  uint64_t reported_ = 0;   // what poll() last returned
  std::string failure_;     // why delivery failed; set until reset()
  std::string last_error_;  // librdkafka's latest error report, for context
};

}  // namespace corral
