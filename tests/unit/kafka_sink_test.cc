// The Kafka sink against librdkafka's mock cluster (three brokers on
// 127.0.0.1): every record arrives, keyed by host, in order, and outages end
// in replay rather than loss.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "audit_log.h"
#include "kafka_sink.h"
#include "kafka_test_util.h"

namespace corral {
namespace {

using test::consume_all;
using test::KafkaMessage;
using test::make_kafka_client;

using namespace std::chrono_literals;

constexpr int kPartitions = 3;
constexpr int16_t kProduceApi = 0;  // Kafka protocol ApiKey of Produce
// Only a bound against hanging: every wait below normally ends far sooner.
constexpr auto kPatience = 30s;

// A few thousand records of one host's log as the supervisor writes them:
// execs and opens, about 450 bytes each.
std::vector<LogRecord> make_log(size_t count) {
  std::vector<LogRecord> log(count);
  for (size_t i = 0; i < count; ++i) {
    audit::Record& r = log[i].record;
    r.set_seq(i + 1);
    r.mutable_time()->set_seconds(1795000000 + static_cast<int64_t>(i / 100));
    r.mutable_time()->set_nanos(static_cast<int32_t>(i % 100) * 10000000);
    r.set_boot_ns(5000000000ull + i * 1000);
    r.set_host("build-7.example.net");
    r.set_session("00000000000000ff");
    r.set_boot_id("6c1e2a8e-3f5b-4c1d-9a63-0d7c2f1e5b44");
    r.set_prev(std::string(56, 'a') + std::to_string(10000000 + i));
    audit::Process* p = r.mutable_process();
    p->set_pid(4000 + static_cast<uint32_t>(i % 50));
    p->set_tid(p->pid());
    p->set_ppid(3999);
    p->set_uid(1000);
    p->set_gid(1000);
    if (i % 3 == 0) {
      p->set_comm("git");
      audit::Exec* e = r.mutable_exec();
      e->set_path("/usr/bin/git");
      for (const char* arg : {"git", "commit", "-m", "fix the \"parser\" édition"})
        e->add_argv(arg);
    } else {
      p->set_comm("cc1plus");
      audit::FileOpen* o = r.mutable_open();
      o->set_path("/home/dev/project/src/module_" + std::to_string(i) + ".cc");
      o->set_requested("src/module_" + std::to_string(i) + ".cc");
      o->add_flags("O_RDONLY");
      o->add_flags("O_CLOEXEC");
      o->set_raw_flags(02000000);
      o->set_result(3);
    }
    log[i].seq = r.seq();
    log[i].line = record_to_json_line(r);
    log[i].line.pop_back();  // the '\n'
  }
  return log;
}

// Whether `consumed` holds the whole log, keyed by host, in one partition,
// in order once replayed duplicates (a seq not above the highest seen) are
// dropped.
void expect_whole_log(const std::vector<KafkaMessage>& consumed, const std::vector<LogRecord>& log,
                      SinkFormat format = SinkFormat::kJson) {
  ASSERT_FALSE(consumed.empty());
  uint64_t highest = 0;
  for (const KafkaMessage& c : consumed) {
    ASSERT_GE(c.seq, 1u);
    ASSERT_LE(c.seq, log.size());
    const LogRecord& r = log[c.seq - 1];
    ASSERT_EQ(c.partition, consumed.front().partition) << "seq " << c.seq;
    ASSERT_EQ(c.key, r.record.host()) << "seq " << c.seq;
    ASSERT_EQ(c.value, render(r, format)) << "seq " << c.seq;
    if (c.seq <= highest) continue;
    ASSERT_EQ(c.seq, highest + 1) << "a record is missing";
    highest = c.seq;
  }
  EXPECT_EQ(highest, log.size());
}

// What the shipper does with a sink: sends from its cursor on, advances the
// cursor to what poll() reports, and after a SinkError resets the sink and
// replays from the cursor.
struct Shipper {
  Shipper(Sink& sink, const std::vector<LogRecord>& log) : sink(sink), log(log) {}

  Sink& sink;
  const std::vector<LogRecord>& log;
  size_t available = 0;  // how much of the log has been written so far
  size_t batch = 200;    // records sent between polls
  uint64_t cursor = 0;
  size_t next = 0;  // index of the next record to send; log[i].seq == i + 1
  std::vector<std::string> errors;

  void step() {
    try {
      for (size_t n = 0; n < batch && next < available; ++n) sink.send(log[next++]);
      uint64_t delivered = sink.poll(10ms);
      EXPECT_GE(delivered, cursor) << "delivery went back";
      EXPECT_LE(delivered, next) << "delivered before sent";
      cursor = delivered;
    } catch (const SinkError& e) {
      errors.push_back(e.what());
      sink.reset();
      next = cursor;
    }
  }

  // Ships until the cursor reaches `seq`.
  bool ship_to(uint64_t seq) {
    available = std::max<size_t>(available, seq);
    auto deadline = std::chrono::steady_clock::now() + kPatience;
    while (cursor < seq && std::chrono::steady_clock::now() < deadline) step();
    return cursor >= seq;
  }
};

// One mock cluster for all tests (it takes a second to shut down), a topic
// of their own for each.
class KafkaSinkTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    kafka_ = std::make_unique<test::MockKafka>(3);
    ASSERT_TRUE(kafka_->ok()) << kafka_->error();
    brokers_ = kafka_->bootstraps();
  }

  static void TearDownTestSuite() {
    kafka_.reset();
  }

  void SetUp() override {
    ASSERT_TRUE(kafka_ && kafka_->ok());
    topic_ = std::string("corral.audit.") +
             ::testing::UnitTest::GetInstance()->current_test_info()->name();
    ASSERT_EQ(rd_kafka_mock_topic_create(kafka_->get(), topic_.c_str(), kPartitions, 3),
              RD_KAFKA_RESP_ERR_NO_ERROR);
  }

  // Whatever a failed test left behind must not fail the next one.
  void TearDown() override {
    if (!kafka_ || !kafka_->ok()) return;
    rd_kafka_mock_broker_set_up(kafka_->get(), -1);
    rd_kafka_mock_clear_request_errors(kafka_->get(), kProduceApi);
  }

  KafkaSinkOptions options() const {
    KafkaSinkOptions o;
    o.brokers = brokers_;
    o.topic = topic_;
    o.message_timeout = 10s;
    // Back on the brokers soon after an outage ends, and quick retries.
    o.properties = {{"reconnect.backoff.ms", "20"},
                    {"reconnect.backoff.max.ms", "200"},
                    {"retry.backoff.ms", "20"}};
    return o;
  }

  static inline std::unique_ptr<test::MockKafka> kafka_;
  static inline std::string brokers_;
  std::string topic_;
};

TEST_F(KafkaSinkTest, RoundTripsEveryRecordInOrder) {
  std::vector<LogRecord> log = make_log(3000);
  KafkaSink sink(options());
  EXPECT_EQ(sink.name(), "kafka");
  Shipper shipper(sink, log);
  ASSERT_TRUE(shipper.ship_to(log.size())) << "delivered up to " << shipper.cursor;
  EXPECT_TRUE(shipper.errors.empty()) << shipper.errors.front();

  std::vector<KafkaMessage> consumed = consume_all(brokers_, topic_);
  ASSERT_EQ(consumed.size(), log.size()) << "exactly once without failures";
  for (size_t i = 0; i < log.size(); ++i) {
    ASSERT_EQ(consumed[i].seq, log[i].seq);
    ASSERT_EQ(consumed[i].value, log[i].line) << "seq " << log[i].seq;
    ASSERT_EQ(consumed[i].key, "build-7.example.net");
    ASSERT_EQ(consumed[i].partition, consumed[0].partition);
  }
}

// Brokers down for less than message.timeout.ms: librdkafka holds the
// records and delivers them once the brokers are back, no replay needed.
TEST_F(KafkaSinkTest, RidesOutShortOutage) {
  std::vector<LogRecord> log = make_log(3000);
  KafkaSink sink(options());
  Shipper shipper(sink, log);
  ASSERT_TRUE(shipper.ship_to(1000));

  ASSERT_EQ(rd_kafka_mock_broker_set_down(kafka_->get(), -1), RD_KAFKA_RESP_ERR_NO_ERROR);
  uint64_t before = shipper.cursor;
  shipper.available = 2000;
  auto outage_end = std::chrono::steady_clock::now() + 500ms;
  while (std::chrono::steady_clock::now() < outage_end) {
    shipper.step();
    ASSERT_EQ(shipper.cursor, before) << "reported delivered while every broker is down";
  }
  ASSERT_EQ(shipper.next, 2000u) << "the sink would not take records during the outage";
  ASSERT_EQ(rd_kafka_mock_broker_set_up(kafka_->get(), -1), RD_KAFKA_RESP_ERR_NO_ERROR);

  ASSERT_TRUE(shipper.ship_to(log.size())) << "delivered up to " << shipper.cursor;
  EXPECT_TRUE(shipper.errors.empty()) << shipper.errors.front();
  std::vector<KafkaMessage> consumed = consume_all(brokers_, topic_);
  EXPECT_EQ(consumed.size(), log.size()) << "retries duplicated records";
  expect_whole_log(consumed, log);
}

// Brokers down for longer than message.timeout.ms: poll() fails, and the
// shipper's reset and replay deliver everything once they are back.
TEST_F(KafkaSinkTest, ReplaysAfterLongOutage) {
  std::vector<LogRecord> log = make_log(3000);
  KafkaSinkOptions o = options();
  o.message_timeout = 1s;
  KafkaSink sink(o);
  Shipper shipper(sink, log);
  ASSERT_TRUE(shipper.ship_to(1000));

  ASSERT_EQ(rd_kafka_mock_broker_set_down(kafka_->get(), -1), RD_KAFKA_RESP_ERR_NO_ERROR);
  uint64_t before = shipper.cursor;
  shipper.available = 2000;
  auto deadline = std::chrono::steady_clock::now() + kPatience;
  while (shipper.errors.empty() && std::chrono::steady_clock::now() < deadline) {
    shipper.step();
    ASSERT_EQ(shipper.cursor, before) << "reported delivered while every broker is down";
  }
  ASSERT_FALSE(shipper.errors.empty()) << "timed-out records were not reported";
  EXPECT_NE(shipper.errors.front().find(
                fmt::format("kafka sink: seq {} not delivered to {}: ", before + 1, topic_)),
            std::string::npos)
      << shipper.errors.front();
  EXPECT_NE(shipper.errors.front().find("timed out"), std::string::npos) << shipper.errors.front();
  ASSERT_EQ(rd_kafka_mock_broker_set_up(kafka_->get(), -1), RD_KAFKA_RESP_ERR_NO_ERROR);

  ASSERT_TRUE(shipper.ship_to(log.size())) << "delivered up to " << shipper.cursor;
  expect_whole_log(consume_all(brokers_, topic_), log);
}

// Retriable broker errors are librdkafka's business: retried in order,
// without duplicates, without bothering the shipper.
TEST_F(KafkaSinkTest, RetriesTransientProduceErrors) {
  std::vector<LogRecord> log = make_log(3000);
  KafkaSink sink(options());
  Shipper shipper(sink, log);
  ASSERT_TRUE(shipper.ship_to(1000));
  rd_kafka_mock_push_request_errors(
      kafka_->get(), kProduceApi, 4, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
      RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
      RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT);
  ASSERT_TRUE(shipper.ship_to(log.size())) << "delivered up to " << shipper.cursor;
  EXPECT_TRUE(shipper.errors.empty()) << shipper.errors.front();
  std::vector<KafkaMessage> consumed = consume_all(brokers_, topic_);
  EXPECT_EQ(consumed.size(), log.size()) << "retries duplicated records";
  expect_whole_log(consumed, log);
}

// A batch refused for good fails the sink; the replay fills the hole, and
// none of the batches in flight behind the refused one got in ahead of it.
TEST_F(KafkaSinkTest, ReplaysRefusedRecords) {
  std::vector<LogRecord> log = make_log(3000);
  KafkaSinkOptions o = options();
  o.properties["batch.num.messages"] = "50";  // many batches in flight
  KafkaSink sink(o);
  Shipper shipper(sink, log);
  ASSERT_TRUE(shipper.ship_to(1000));
  rd_kafka_mock_push_request_errors(kafka_->get(), kProduceApi, 1,
                                    RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
  shipper.batch = log.size();
  ASSERT_TRUE(shipper.ship_to(log.size())) << "delivered up to " << shipper.cursor;
  ASSERT_FALSE(shipper.errors.empty()) << "the refusal was not reported";
  EXPECT_NE(shipper.errors.front().find("Topic authorization failed"), std::string::npos)
      << shipper.errors.front();
  expect_whole_log(consume_all(brokers_, topic_), log);
}

TEST_F(KafkaSinkTest, SendsOcsfBodies) {
  std::vector<LogRecord> log = make_log(200);
  KafkaSinkOptions o = options();
  o.name = "siem";
  o.format = SinkFormat::kOcsf;
  KafkaSink sink(o);
  EXPECT_EQ(sink.name(), "siem");
  Shipper shipper(sink, log);
  ASSERT_TRUE(shipper.ship_to(log.size())) << "delivered up to " << shipper.cursor;
  expect_whole_log(consume_all(brokers_, topic_), log, SinkFormat::kOcsf);
}

TEST_F(KafkaSinkTest, SeqsMustIncreaseUntilReset) {
  std::vector<LogRecord> log = make_log(2);
  KafkaSink sink(options());
  sink.send(log[1]);
  EXPECT_THROW(sink.send(log[0]), std::logic_error);
  sink.reset();
  sink.send(log[0]);
  sink.send(log[1]);
  auto deadline = std::chrono::steady_clock::now() + kPatience;
  uint64_t delivered = 0;
  while (delivered < 2 && std::chrono::steady_clock::now() < deadline) delivered = sink.poll(10ms);
  EXPECT_EQ(delivered, 2u);
}

std::string construction_error(KafkaSinkOptions options) {
  try {
    KafkaSink sink(std::move(options));
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "(accepted)";
}

TEST(KafkaSinkConfig, RejectsBadProperties) {
  KafkaSinkOptions o;
  o.brokers = "127.0.0.1:9";
  o.properties = {{"linger.ms", "abc"}};
  std::string error = construction_error(o);
  EXPECT_EQ(error.rfind("kafka sink: cannot set linger.ms=abc: ", 0), 0u) << error;
  EXPECT_EQ(error.find('\n'), std::string::npos) << error;

  o.properties = {{"no.such.property", "1"}};
  error = construction_error(o);
  EXPECT_EQ(error.rfind("kafka sink: cannot set no.such.property=1: ", 0), 0u) << error;

  // Only refused when the producer is created: idempotence needs acks=all.
  o.properties = {{"acks", "1"}};
  error = construction_error(o);
  EXPECT_EQ(error.rfind("kafka sink: cannot create producer: ", 0), 0u) << error;
  EXPECT_NE(error.find("acks"), std::string::npos) << error;

  o.properties.clear();
  o.brokers.clear();
  EXPECT_EQ(construction_error(o), "kafka sink: no brokers configured");
}

}  // namespace
}  // namespace corral
