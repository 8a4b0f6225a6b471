#include "shipper.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <system_error>

#include "log_reader.h"
#include "unique_fd.h"

namespace corral {
namespace {

std::string cursor_path(const std::string& dir, const std::string& sink) {
  return dir + "/" + sink + ".cursor";
}

// Written whole or not at all: a crash leaves the old cursor, and the
// records after it are sent again.
void save_cursor(const std::string& dir, const std::string& sink, uint64_t seq) {
  std::string path = cursor_path(dir, sink);
  std::string tmp = path + ".tmp";
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd) throw std::system_error(errno, std::generic_category(), "failed to write " + tmp);
  std::string text = std::to_string(seq) + "\n";
  if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()) ||
      ::fdatasync(fd.get()) != 0)
    throw std::system_error(errno, std::generic_category(), "failed to write " + tmp);
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    throw std::system_error(errno, std::generic_category(), "failed to replace " + path);
}

}  // namespace

struct Shipper::Lane {
  std::unique_ptr<Sink> sink;
  std::thread thread;
};

Shipper::Shipper(ShipperOptions options) : options_(std::move(options)) {
  std::filesystem::create_directories(options_.state_dir);
}

Shipper::~Shipper() { stop(); }

uint64_t Shipper::load_cursor(const std::string& state_dir, const std::string& sink) {
  std::ifstream in(cursor_path(state_dir, sink));
  uint64_t seq = 0;
  if (in && !(in >> seq))
    throw std::runtime_error("cursor file " + cursor_path(state_dir, sink) +
                             " is unreadable; remove it to ship from the log's start");
  return seq;
}

void Shipper::add(std::unique_ptr<Sink> sink) {
  for (const auto& l : lanes_)
    if (l->sink->name() == sink->name())
      throw std::invalid_argument("two sinks named " + sink->name() +
                                  ": give each its own name (its cursor file)");
  auto lane = std::make_unique<Lane>();
  lane->sink = std::move(sink);
  lanes_.push_back(std::move(lane));
}

void Shipper::start() {
  for (auto& l : lanes_) l->thread = std::thread([this, lane = l.get()] { run(*lane); });
}

void Shipper::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& l : lanes_)
    if (l->thread.joinable()) l->thread.join();
}

bool Shipper::sleep_for(std::chrono::milliseconds d) {
  std::unique_lock lock(mutex_);
  return !wake_.wait_for(lock, d, [this] { return stopping_.load(); });
}

void Shipper::run(Lane& lane) {
  // A collector hanging up mid-write must be an error here, not a signal
  // that ends the process.
  sigset_t pipe;
  sigemptyset(&pipe);
  sigaddset(&pipe, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe, nullptr);

  Sink& sink = *lane.sink;
  const std::string& name = sink.name();
  uint64_t cursor = load_cursor(options_.state_dir, name);
  uint64_t saved = cursor;
  auto saved_at = std::chrono::steady_clock::now();
  LogReader reader(options_.log_path, cursor + 1, sink.depth());
  uint64_t sent = cursor;
  bool down = false;
  uint64_t down_at = 0;  // the cursor when the sink went down
  auto backoff = std::chrono::milliseconds(100);
  spdlog::info("export {}: shipping from seq {}", name, cursor + 1);

  auto save = [&] {
    if (cursor == saved) return;
    try {
      save_cursor(options_.state_dir, name, cursor);
      saved = cursor;
      saved_at = std::chrono::steady_clock::now();
    } catch (const std::exception& e) {
      spdlog::error("export {}: {}", name, e.what());
    }
  };

  while (!stopping_) {
    try {
      size_t n = 0;
      while (n < 4096 && sent - cursor < options_.max_in_flight) {
        auto rec = reader.next();
        if (!rec) break;
        sink.send(*rec);
        sent = rec->seq;
        ++n;
      }
      uint64_t d = sink.poll(n ? std::chrono::milliseconds(0) : options_.idle_poll);
      if (d > cursor) cursor = d;
      if (down && cursor > down_at) {
        down = false;
        backoff = std::chrono::milliseconds(100);
        spdlog::info("export {}: delivering again from seq {}", name, down_at + 1);
        if (options_.on_change)
          options_.on_change(name, true, "delivering again, replayed from seq " +
                                             std::to_string(down_at + 1));
      }
      if (std::chrono::steady_clock::now() - saved_at >= std::chrono::seconds(1)) save();
    } catch (const SinkError& e) {
      if (!down) {
        down = true;
        down_at = cursor;
        spdlog::warn("export {}: {}; replaying from seq {} when it is back", name, e.what(),
                     cursor + 1);
        if (options_.on_change)
          options_.on_change(name, false,
                             std::string(e.what()) + "; delivered through seq " +
                                 std::to_string(cursor));
      }
      sink.reset();
      save();
      if (!sleep_for(backoff)) break;
      backoff = std::min(backoff * 2, options_.backoff_max);
      reader = LogReader(options_.log_path, cursor + 1, sink.depth());
      sent = cursor;
    } catch (const std::exception& e) {
      // The log itself is unreadable: nothing to do but say so and retry.
      spdlog::error("export {}: {}", name, e.what());
      if (!sleep_for(options_.backoff_max)) break;
    }
  }
  // Confirm what was sent, briefly, before leaving.
  try {
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    while (cursor < sent && std::chrono::steady_clock::now() < until)
      cursor = std::max(cursor, sink.poll(std::chrono::milliseconds(100)));
  } catch (const std::exception&) {
  }
  save();
}

}  // namespace corral
