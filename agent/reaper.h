// Finishes ended sessions off the supervisor's loop. A teardown waits on the
// kernel: closing a fanotify group waits for an SRCU grace period (~10 ms
// here), the session init's exit unmounts its whole namespace, a cgroup is
// removed once the kernel has emptied it. On the loop, those waits would
// hold up every other session's events and the next session's start.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace corral {

class Reaper {
 public:
  Reaper();
  // Runs what is still queued, then joins.
  ~Reaper();
  Reaper(const Reaper&) = delete;
  Reaper& operator=(const Reaper&) = delete;

  // Runs `job` on the reaper's thread, after the jobs posted before it.
  // Jobs must not throw; of what the loop's thread uses they may only make
  // system calls that are safe from any thread (BPF map updates).
  void post(std::function<void()> job);

 private:
  void run();

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> queue_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace corral
