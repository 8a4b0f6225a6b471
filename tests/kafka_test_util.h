// librdkafka's in-process mock cluster and a consumer that reads a topic
// back, for the Kafka sink's tests (unit and end to end). The brokers
// listen on 127.0.0.1.
#pragma once

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace corral::test {

struct KafkaHandleDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
using KafkaHandle = std::unique_ptr<rd_kafka_t, KafkaHandleDeleter>;

// A client for the tests' own use, quiet on stderr.
inline KafkaHandle make_kafka_client(
    rd_kafka_type_t type, const std::vector<std::pair<const char*, std::string>>& properties) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char error[512];
  for (const auto& [property, value] : properties)
    EXPECT_EQ(rd_kafka_conf_set(conf, property, value.c_str(), error, sizeof error),
              RD_KAFKA_CONF_OK)
        << error;
  rd_kafka_conf_set_log_cb(conf, [](const rd_kafka_t*, int, const char*, const char*) {});
  rd_kafka_t* rk = rd_kafka_new(type, conf, error, sizeof error);
  EXPECT_NE(rk, nullptr) << error;
  if (!rk) rd_kafka_conf_destroy(conf);
  return KafkaHandle(rk);
}

// A mock cluster of `brokers` brokers, hosted by a handle of its own.
class MockKafka {
 public:
  explicit MockKafka(int brokers) {
    host_ = make_kafka_client(RD_KAFKA_PRODUCER, {});
    if (host_) mock_.reset(rd_kafka_mock_cluster_new(host_.get(), brokers));
  }
  bool ok() const { return mock_ != nullptr; }
  std::string error() const { return "cannot start librdkafka's mock cluster"; }
  std::string bootstraps() const { return rd_kafka_mock_cluster_bootstraps(mock_.get()); }
  rd_kafka_mock_cluster_t* get() const { return mock_.get(); }
  ::testing::AssertionResult create_topic(const std::string& topic, int partitions) {
    auto err = rd_kafka_mock_topic_create(mock_.get(), topic.c_str(), partitions, 3);
    if (err) return ::testing::AssertionFailure() << rd_kafka_err2str(err);
    return ::testing::AssertionSuccess();
  }

 private:
  struct MockDeleter {
    void operator()(rd_kafka_mock_cluster_t* m) const { rd_kafka_mock_cluster_destroy(m); }
  };
  KafkaHandle host_;  // outlives nothing: declared first, destroyed last
  std::unique_ptr<rd_kafka_mock_cluster_t, MockDeleter> mock_;
};

struct KafkaMessage {
  int32_t partition = -1;
  std::string key;
  std::string value;
  uint64_t seq = 0;  // from the corral.seq header
};

// Everything in `topic` up to each partition's high watermark at the call,
// per partition in offset order.
inline std::vector<KafkaMessage> consume_all(const std::string& brokers, const std::string& topic,
                                             std::chrono::seconds patience = std::chrono::seconds(30)) {
  std::vector<KafkaMessage> out;
  auto rk = make_kafka_client(RD_KAFKA_CONSUMER, {{"bootstrap.servers", brokers},
                                                  {"group.id", "corral-test"},
                                                  {"enable.auto.commit", "false"},
                                                  {"enable.partition.eof", "false"},
                                                  {"fetch.wait.max.ms", "10"}});
  if (!rk) return out;
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_topic_t* t = rd_kafka_topic_new(rk.get(), topic.c_str(), nullptr);
  auto err = rd_kafka_metadata(rk.get(), 0, t, &md, 10000);
  rd_kafka_topic_destroy(t);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    ADD_FAILURE() << "no metadata for topic " << topic << ": " << rd_kafka_err2str(err);
    return out;
  }
  int partitions = md->topics[0].partition_cnt;
  rd_kafka_metadata_destroy(md);
  std::unique_ptr<rd_kafka_topic_partition_list_t, void (*)(rd_kafka_topic_partition_list_t*)>
      assignment(rd_kafka_topic_partition_list_new(partitions),
                 rd_kafka_topic_partition_list_destroy);
  std::vector<int64_t> end(static_cast<size_t>(partitions));
  int unread = 0;
  for (int32_t p = 0; p < partitions; ++p) {
    int64_t low = 0;
    err = rd_kafka_query_watermark_offsets(rk.get(), topic.c_str(), p, &low,
                                           &end[static_cast<size_t>(p)], 10000);
    EXPECT_EQ(err, RD_KAFKA_RESP_ERR_NO_ERROR) << rd_kafka_err2str(err);
    if (end[static_cast<size_t>(p)] > low) {
      rd_kafka_topic_partition_list_add(assignment.get(), topic.c_str(), p)->offset =
          RD_KAFKA_OFFSET_BEGINNING;
      ++unread;
    }
  }
  EXPECT_EQ(rd_kafka_assign(rk.get(), assignment.get()), RD_KAFKA_RESP_ERR_NO_ERROR);
  auto deadline = std::chrono::steady_clock::now() + patience;
  while (unread > 0 && std::chrono::steady_clock::now() < deadline) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk.get(), 100);
    if (!m) continue;
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      ADD_FAILURE() << "consume: " << rd_kafka_message_errstr(m);
    } else {
      KafkaMessage c{m->partition, std::string(static_cast<const char*>(m->key), m->key_len),
                     std::string(static_cast<const char*>(m->payload), m->len), 0};
      rd_kafka_headers_t* headers = nullptr;
      const void* value = nullptr;
      size_t size = 0;
      if (rd_kafka_message_headers(m, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR &&
          rd_kafka_header_get_last(headers, "corral.seq", &value, &size) ==
              RD_KAFKA_RESP_ERR_NO_ERROR)
        c.seq = std::stoull(std::string(static_cast<const char*>(value), size));
      out.push_back(std::move(c));
      if (m->offset + 1 == end[static_cast<size_t>(m->partition)]) --unread;
    }
    rd_kafka_message_destroy(m);
  }
  EXPECT_EQ(unread, 0) << "partitions not read to their end";
  rd_kafka_consumer_close(rk.get());
  return out;
}

}  // namespace corral::test
