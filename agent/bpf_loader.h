// The kernel programs (bpf/*.bpf.c) as one RAII object: skeleton, links and
// ring buffer live and die together. Open -> configure -> load -> attach.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "event_layout.h"
#include "egress_rules.h"
#include "exec_rules.h"

struct corral_bpf;
struct ring_buffer;
struct bpf_link;

namespace corral {

struct BpfStats {
  std::array<uint64_t, CORRAL_STAT__MAX> counters{};
  uint64_t operator[](corral_stat s) const { return counters[s]; }
};

// Programs attached to one cgroup, detached together.
class CgroupLinks {
 public:
  CgroupLinks() = default;
  CgroupLinks(CgroupLinks&&) = default;
  CgroupLinks& operator=(CgroupLinks&&) = default;
  ~CgroupLinks();
  void add(bpf_link* link) { links_.push_back(link); }

 private:
  std::vector<bpf_link*> links_;
};

class BpfLoader {
 public:
  using EventHandler = std::function<void(std::span<const uint8_t>)>;

  // Loads and attaches every program. Throws
  // std::runtime_error naming the step, the object and errno.
  BpfLoader(EventHandler handler, uint32_t ringbuf_bytes = 16u << 20);
  ~BpfLoader();
  BpfLoader(const BpfLoader&) = delete;
  BpfLoader& operator=(const BpfLoader&) = delete;

  // Session membership, as the kernel programs see it: the session's
  // cgroup, and its first task (by pidfd), whose descendants inherit it. A
  // quiet task's own activity is not reported (corral's session init).
  void add_session(uint64_t session_id, uint64_t cgroup_id);
  void add_session_task(uint64_t session_id, int pidfd, bool quiet);
  void remove_session(uint64_t session_id, uint64_t cgroup_id);

  // The egress programs on a session's cgroup (an O_DIRECTORY fd).
  CgroupLinks attach_egress(int cgroup_fd, const std::string& path);
  // Replaces the egress allowlist, new entries first, stale ones last.
  void load_egress_rules(EgressMaps next, bool default_allow, bool default_shadow);

  // Replaces the kernel's exec rules. New entries go in first, then names
  // switch one by one (each switch atomic), then stale entries go: at no
  // moment is an exec matched against nothing, or against half a rule.
  void load_exec_rules(ExecRuleMaps next);

  // The ring buffer's epoll fd: readable when events wait.
  int ring_fd() const;
  // Hands waiting events to the handler, at most `limit`; returns true when
  // it stopped at the limit with more waiting.
  bool consume(size_t limit = SIZE_MAX);
  // Events the last consume() handed over.
  size_t consumed() const { return batch_count_; }

  // Counters summed over CPUs.
  BpfStats read_stats() const;

 private:
  void keep_maps_from_children();
  struct SkelDeleter {
    void operator()(corral_bpf* s) const;
  };
  struct RingDeleter {
    void operator()(ring_buffer* r) const;
  };
  static int on_event(void* ctx, void* data, size_t size);

  EventHandler handler_;
  size_t batch_count_ = 0;
  size_t batch_limit_ = SIZE_MAX;
  std::unique_ptr<corral_bpf, SkelDeleter> skel_;
  std::unique_ptr<ring_buffer, RingDeleter> ring_;
  ExecRuleMaps exec_loaded_;
  EgressMaps egress_loaded_;
};

// Memory first touched is dear where the hypervisor takes free pages back
// (~2.7 ms per MiB measured on one such VM), and libbpf 1.1 reads the
// kernel's ~5 MiB of BTF into one fresh buffer, then copies it into a
// second: most of a cold start's load. Made before the load on the main
// thread, which then loads, this has malloc serve those buffers from the heap,
// reserved here and faulted in meanwhile on another CPU, with transparent
// huge pages where the host allows them. finish() (or the destructor) waits
// for that thread and gives the memory back. A failure only costs speed.
class BtfPrefault {
 public:
  BtfPrefault();
  ~BtfPrefault();
  BtfPrefault(const BtfPrefault&) = delete;
  BtfPrefault& operator=(const BtfPrefault&) = delete;
  void finish();

 private:
  std::thread toucher_;
  bool active_ = false;
};

// Routes libbpf's log into spdlog (debug lines at trace level).
void route_libbpf_log();

}  // namespace corral
