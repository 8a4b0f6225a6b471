// `corral export`: ships the local log to its sinks, one thread per sink,
// each from its own durable cursor (STATE_DIR/NAME.cursor, the last seq
// the sink confirmed). The guard only ever writes the local log, so a sink
// that is down or slow never holds it up; when the sink is back, the
// shipper replays from the cursor, in order. Delivery is at least once:
// receivers drop duplicates by seq.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "sink.h"

namespace corral {

struct ShipperOptions {
  std::string log_path;
  std::string state_dir;
  uint64_t max_in_flight = 100'000;  // records sent but not yet confirmed, per sink
  std::chrono::milliseconds backoff_max{5000};
  std::chrono::milliseconds idle_poll{100};
  // Told when a sink goes down or comes back (the CLI writes these into the
  // audit trail itself).
  std::function<void(const std::string& sink, bool up, const std::string& message)> on_change;
};

class Shipper {
 public:
  explicit Shipper(ShipperOptions options);
  ~Shipper();  // stop()

  // Before start(). Throws when two sinks share a name (their cursors would).
  void add(std::unique_ptr<Sink> sink);
  void start();
  // Confirms what it can (briefly), saves every cursor and joins.
  void stop();

  // The cursor of `sink`: the last seq it confirmed.
  static uint64_t load_cursor(const std::string& state_dir, const std::string& sink);

 private:
  struct Lane;
  void run(Lane& lane);
  bool sleep_for(std::chrono::milliseconds d);  // false when stopping

  ShipperOptions options_;
  std::vector<std::unique_ptr<Lane>> lanes_;
  std::atomic<bool> stopping_{false};
  std::mutex mutex_;
  std::condition_variable wake_;
};

}  // namespace corral
