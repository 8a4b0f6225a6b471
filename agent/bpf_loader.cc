#include "bpf_loader.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <malloc.h>
#include <sched.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <fstream>
#include <cstdarg>
#include <cstring>
#include <stdexcept>
#include <system_error>
#include <vector>

#include "corral.skel.h"

namespace corral {
namespace {

std::string errstr(int err) { return std::strerror(err < 0 ? -err : err); }

int libbpf_log(enum libbpf_print_level level, const char* fmt, va_list args) {
  char buf[2048];
  int n = vsnprintf(buf, sizeof(buf), fmt, args);
  std::string_view line(buf, n > 0 ? std::min<size_t>(n, sizeof(buf) - 1) : 0);
  while (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  switch (level) {
    case LIBBPF_WARN: spdlog::warn("libbpf: {}", line); break;
    case LIBBPF_INFO: spdlog::debug("libbpf: {}", line); break;
    case LIBBPF_DEBUG: spdlog::trace("libbpf: {}", line); break;
  }
  return n;
}

// The syscalls of the file exit handler (file.bpf.c); connect has its own
// (net.bpf.c). Both are tail-called by number from corral_sys_exit.
constexpr int kFileSyscalls[] = {__NR_open,     __NR_openat,   __NR_openat2,  __NR_creat,
                                 __NR_unlink,   __NR_unlinkat, __NR_rmdir,    __NR_rename,
                                 __NR_renameat, __NR_renameat2, __NR_link,    __NR_linkat,
                                 __NR_symlink,  __NR_symlinkat, __NR_truncate, __NR_ftruncate};
static_assert(CORRAL_NR_OPEN == __NR_open && CORRAL_NR_OPENAT == __NR_openat &&
              CORRAL_NR_OPENAT2 == __NR_openat2 && CORRAL_NR_CREAT == __NR_creat &&
              CORRAL_NR_UNLINK == __NR_unlink && CORRAL_NR_UNLINKAT == __NR_unlinkat &&
              CORRAL_NR_RMDIR == __NR_rmdir && CORRAL_NR_RENAME == __NR_rename &&
              CORRAL_NR_RENAMEAT == __NR_renameat && CORRAL_NR_RENAMEAT2 == __NR_renameat2 &&
              CORRAL_NR_LINK == __NR_link && CORRAL_NR_LINKAT == __NR_linkat &&
              CORRAL_NR_SYMLINK == __NR_symlink && CORRAL_NR_SYMLINKAT == __NR_symlinkat &&
              CORRAL_NR_TRUNCATE == __NR_truncate && CORRAL_NR_FTRUNCATE == __NR_ftruncate &&
              CORRAL_NR_CONNECT == __NR_connect, "events.h and <sys/syscall.h> disagree");

}  // namespace

void route_libbpf_log() { libbpf_set_print(libbpf_log); }

namespace {
constexpr uintptr_t kHugePage = 2 << 20;
}  // namespace

BtfPrefault::BtfPrefault() {
  // The heap below is the main thread's arena; another thread's malloc
  // would reserve in an arena of its own, not between the heap and brk.
  if (::gettid() != ::getpid()) return;
  struct stat st {};
  if (::stat("/sys/kernel/btf/vmlinux", &st) != 0 || st.st_size <= 0) return;
  // Both copies, the type index (4 bytes a type, a type ~40 bytes) and room.
  const size_t want = 2 * static_cast<size_t>(st.st_size) + st.st_size / 8 + (4 << 20);
  // glibc's own rule, not a setting: freeing a block malloc had mmap()ed
  // raises the size below which malloc uses the heap to that block's size,
  // and what is freed at the heap's top stays there up to twice it. So the
  // second block comes from the heap and stays reserved, for libbpf's two
  // buffers, until malloc_trim() in finish().
  void* volatile first = std::malloc(want);  // volatile: a pair the compiler may not drop
  std::free(first);
  const size_t mapped = ::mallinfo2().hblkhd;
  void* block = std::malloc(want - 4096);  // a page under: below the new threshold, not at it
  const bool on_heap = ::mallinfo2().hblkhd == mapped;  // not mmap()ed after all
  const auto lo = reinterpret_cast<uintptr_t>(block);
  const auto top = reinterpret_cast<uintptr_t>(::sbrk(0));
  std::free(block);
  active_ = true;
  if (!block || !on_heap || lo >= top || lo + want - 4096 > top) return;
  const uintptr_t from = (lo + kHugePage - 1) & ~(kHugePage - 1);
  if (from >= top) return;
  auto* start = reinterpret_cast<void*>(from);
  const size_t len = top - from;
  try {
    toucher_ = std::thread([start, len] {
      // Both advisory: EINVAL where a kernel lacks one is only slower.
      ::madvise(start, len, MADV_HUGEPAGE);
      // A huge page a call: populating holds the address space's lock, and
      // the loading thread's mmap()s (a thread's stack) would wait for all.
      auto* p = static_cast<char*>(start);
      for (size_t off = 0; off < len; off += kHugePage)
        if (::madvise(p + off, std::min<size_t>(kHugePage, len - off), MADV_POPULATE_WRITE) != 0)
          break;
    });
  } catch (const std::system_error&) {
    // no thread to spare: the load faults its pages in itself
  }
}

void BtfPrefault::finish() {
  if (toucher_.joinable()) toucher_.join();
  if (!active_) return;
  active_ = false;
  ::malloc_trim(0);
}

BtfPrefault::~BtfPrefault() { finish(); }

void BpfLoader::SkelDeleter::operator()(corral_bpf* s) const { corral_bpf__destroy(s); }
void BpfLoader::RingDeleter::operator()(ring_buffer* r) const { ring_buffer__free(r); }

BpfLoader::BpfLoader(EventHandler handler, uint32_t ringbuf_bytes) : handler_(std::move(handler)) {
  route_libbpf_log();

  skel_.reset(corral_bpf__open());
  if (!skel_) throw std::runtime_error("failed to open BPF skeleton: " + errstr(errno));

  if (int err = bpf_map__set_max_entries(skel_->maps.events, ringbuf_bytes))
    throw std::runtime_error("failed to size ring buffer to " + std::to_string(ringbuf_bytes) +
                             " bytes: " + errstr(err));

  // Tail-call targets only: nothing to attach them to.
  bpf_program__set_autoattach(skel_->progs.corral_exit_file, false);
  bpf_program__set_autoattach(skel_->progs.corral_exit_connect, false);

  if (int err = corral_bpf__load(skel_.get()))
    throw std::runtime_error("failed to load BPF programs (the verifier log is above): " +
                             errstr(err));

  // Before attaching the dispatcher: no syscall of a member goes unseen.
  auto handle = [&](int nr, bpf_program* prog) {
    int fd = bpf_program__fd(prog);
    if (bpf_map__update_elem(skel_->maps.syscall_exits, &nr, sizeof(nr), &fd, sizeof(fd), BPF_ANY))
      throw std::runtime_error(std::string("failed to put ") + bpf_program__name(prog) +
                               " in syscall_exits: " + errstr(errno));
  };
  for (int nr : kFileSyscalls) handle(nr, skel_->progs.corral_exit_file);
  handle(__NR_connect, skel_->progs.corral_exit_connect);

  // libbpf's own warning (routed above) names the program that failed.
  if (int err = corral_bpf__attach(skel_.get()))
    throw std::runtime_error("failed to attach BPF programs: " + errstr(err));

  ring_.reset(ring_buffer__new(bpf_map__fd(skel_->maps.events), &BpfLoader::on_event, this, nullptr));
  if (!ring_) throw std::runtime_error("failed to create ring buffer reader: " + errstr(errno));
  keep_maps_from_children();
}

// The ring's mapping is VM_MIXEDMAP: fork copies every one of its page-table
// entries (8k for 16 MiB, mapped twice) into each session's init, and again
// into its agent, ~1 ms each. No child ever reads a map through memory.
void BpfLoader::keep_maps_from_children() {
  std::ifstream maps("/proc/self/maps");
  for (std::string line; std::getline(maps, line);) {
    if (!line.ends_with("anon_inode:bpf-map")) continue;
    uintptr_t lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%" SCNxPTR "-%" SCNxPTR, &lo, &hi) != 2) continue;
    if (::madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTFORK) != 0)
      spdlog::warn("failed to keep a map's mapping at {:#x} from children: {}", lo, errstr(errno));
  }
}

BpfLoader::~BpfLoader() = default;

// libbpf has advanced past a sample before its callback runs, so stopping
// with an error after handling it loses nothing.
constexpr int kBatchFull = -EAGAIN;
// Records handled between two yields of the CPU. A batch takes ~5 µs a
// record; a session process woken on this CPU (e.g. an opener the file
// guard has just answered) would wait behind the whole batch — measured:
// decided open() p99 ~200 µs without yielding, ~50 µs yielding every 4 (a
// yield with nobody waiting costs a fraction of a µs).
constexpr size_t kYieldEvery = 4;

int BpfLoader::on_event(void* ctx, void* data, size_t size) {
  auto* self = static_cast<BpfLoader*>(ctx);
  self->handler_({static_cast<const uint8_t*>(data), size});
  if (self->batch_count_ % kYieldEvery == kYieldEvery - 1) ::sched_yield();
  return ++self->batch_count_ >= self->batch_limit_ ? kBatchFull : 0;
}

void BpfLoader::add_session(uint64_t session_id, uint64_t cgroup_id) {
  if (bpf_map__update_elem(skel_->maps.session_cgroups, &cgroup_id, sizeof(cgroup_id), &session_id,
                           sizeof(session_id), BPF_ANY))
    throw std::runtime_error("failed to register cgroup " + std::to_string(cgroup_id) +
                             " in session_cgroups: " + errstr(errno));
}

void BpfLoader::add_session_task(uint64_t session_id, int pidfd, bool quiet) {
  corral_task entry{};
  entry.session_id = session_id;
  entry.flags = quiet ? CORRAL_TASK_QUIET : 0;
  // EAGAIN: the task's local-storage block (shared by every task-storage
  // map on the host) was being created by someone else at that instant;
  // the next try finds it.
  int rc, tries = 0;
  do rc = bpf_map__update_elem(skel_->maps.session_tasks, &pidfd, sizeof(pidfd), &entry,
                               sizeof(entry), BPF_ANY);
  while (rc == -EAGAIN && ++tries < 8);
  if (rc) throw std::runtime_error("failed to register the agent in session_tasks: " + errstr(rc));
}

void BpfLoader::remove_session(uint64_t session_id, uint64_t cgroup_id) {
  // Task entries die with their tasks; the cgroup and ports are ours.
  bpf_map__delete_elem(skel_->maps.session_cgroups, &cgroup_id, sizeof(cgroup_id), 0);
  std::vector<corral_session_port> stale;
  corral_session_port key, next;
  corral_session_port* prev = nullptr;
  while (bpf_map__get_next_key(skel_->maps.session_ports, prev, &next, sizeof(next)) == 0) {
    if (next.session_id == session_id) stale.push_back(next);
    key = next;
    prev = &key;
  }
  for (const auto& k : stale) bpf_map__delete_elem(skel_->maps.session_ports, &k, sizeof(k), 0);
}

CgroupLinks::~CgroupLinks() {
  for (bpf_link* l : links_) bpf_link__destroy(l);
}

CgroupLinks BpfLoader::attach_egress(int cgroup_fd, const std::string& path) {
  CgroupLinks links;
  for (bpf_program* prog :
       {skel_->progs.corral_connect4, skel_->progs.corral_connect6, skel_->progs.corral_sendmsg4,
        skel_->progs.corral_sendmsg6, skel_->progs.corral_post_bind4,
        skel_->progs.corral_post_bind6}) {
    bpf_link* link = bpf_program__attach_cgroup(prog, cgroup_fd);
    if (!link)
      throw std::runtime_error(std::string("failed to attach ") + bpf_program__name(prog) +
                               " to " + path + ": " + errstr(errno));
    links.add(link);
  }
  return links;
}

void BpfLoader::load_egress_rules(EgressMaps next, bool default_allow, bool default_shadow) {
  auto key_of = [](const EgressPrefix& p, corral_egress_key4& k4, corral_egress_key6& k6) {
    k4.prefixlen = k6.prefixlen = static_cast<__u32>(p.prefix);
    std::memcpy(k4.addr, p.addr.data(), 4);
    std::memcpy(k6.addr, p.addr.data(), 16);
  };
  for (const auto& [prefix, allow] : next.prefixes) {
    corral_egress_key4 k4{};
    corral_egress_key6 k6{};
    key_of(prefix, k4, k6);
    int rc = prefix.family == AF_INET
                 ? bpf_map__update_elem(skel_->maps.egress4, &k4, sizeof(k4), &allow, sizeof(allow), BPF_ANY)
                 : bpf_map__update_elem(skel_->maps.egress6, &k6, sizeof(k6), &allow, sizeof(allow), BPF_ANY);
    if (rc) throw std::runtime_error("failed to load the egress allowlist: " + errstr(errno));
  }
  for (const auto& [prefix, allow] : egress_loaded_.prefixes) {
    if (next.prefixes.count(prefix)) continue;
    corral_egress_key4 k4{};
    corral_egress_key6 k6{};
    key_of(prefix, k4, k6);
    if (prefix.family == AF_INET)
      bpf_map__delete_elem(skel_->maps.egress4, &k4, sizeof(k4), 0);
    else
      bpf_map__delete_elem(skel_->maps.egress6, &k6, sizeof(k6), 0);
  }
  skel_->bss->egress_default_allow = default_allow;
  skel_->bss->egress_default_shadow = default_shadow;
  egress_loaded_ = std::move(next);
}

void BpfLoader::load_exec_rules(ExecRuleMaps next) {
  auto update = [](bpf_map* map, const void* key, size_t ksz, const void* value, size_t vsz,
                   const char* what) {
    if (bpf_map__update_elem(map, key, ksz, value, vsz, BPF_ANY))
      throw std::runtime_error(std::string("failed to load ") + what + " into " +
                               bpf_map__name(map) + ": " + errstr(errno));
  };
  const uint8_t one = 1;
  for (const auto& t : next.tokens)
    update(skel_->maps.exec_tokens, &t, sizeof(t), &one, sizeof(one), "an exec rule token");
  for (const auto& p : next.paths)
    update(skel_->maps.exec_paths, &p, sizeof(p), &one, sizeof(one), "an exec rule path");
  for (const auto& [name, set] : next.names) {
    corral_exec_name key{};
    std::memcpy(key.name, name.data(), std::min(name.size(), sizeof(key.name) - 1));
    update(skel_->maps.exec_rules, &key, sizeof(key), &set, sizeof(set), "exec rules");
  }
  for (const auto& [name, set] : exec_loaded_.names) {
    if (next.names.count(name)) continue;
    corral_exec_name key{};
    std::memcpy(key.name, name.data(), std::min(name.size(), sizeof(key.name) - 1));
    bpf_map__delete_elem(skel_->maps.exec_rules, &key, sizeof(key), 0);
  }
  // Old generations' ids differ from the new ones: every old entry is stale.
  for (const auto& t : exec_loaded_.tokens)
    bpf_map__delete_elem(skel_->maps.exec_tokens, &t, sizeof(t), 0);
  for (const auto& p : exec_loaded_.paths)
    bpf_map__delete_elem(skel_->maps.exec_paths, &p, sizeof(p), 0);
  exec_loaded_ = std::move(next);
}

int BpfLoader::ring_fd() const { return ring_buffer__epoll_fd(ring_.get()); }

bool BpfLoader::consume(size_t limit) {
  batch_count_ = 0;
  batch_limit_ = limit;
  int n = ring_buffer__consume(ring_.get());
  if (n == kBatchFull) return true;
  if (n < 0) throw std::runtime_error("failed to read the ring buffer: " + errstr(n));
  return false;
}

BpfStats BpfLoader::read_stats() const {
  BpfStats out;
  int ncpu = libbpf_num_possible_cpus();
  const size_t cpus = ncpu > 0 ? static_cast<size_t>(ncpu) : 1;
  // All counters in one system call (twice at every session's end).
  std::array<uint32_t, CORRAL_STAT__MAX> keys{};
  std::vector<uint64_t> all(CORRAL_STAT__MAX * cpus);
  uint32_t next = 0, count = CORRAL_STAT__MAX;
  int err = bpf_map_lookup_batch(bpf_map__fd(skel_->maps.stats), nullptr, &next, keys.data(),
                                 all.data(), &count, nullptr);
  if ((err == 0 || errno == ENOENT) && count == CORRAL_STAT__MAX) {
    for (size_t k = 0; k < count; k++)
      for (size_t c = 0; c < cpus; c++)
        if (keys[k] < CORRAL_STAT__MAX) out.counters[keys[k]] += all[k * cpus + c];
    return out;
  }
  std::vector<uint64_t> values(cpus);
  for (uint32_t i = 0; i < CORRAL_STAT__MAX; i++) {
    if (bpf_map__lookup_elem(skel_->maps.stats, &i, sizeof(i), values.data(),
                             values.size() * sizeof(uint64_t), 0))
      continue;
    for (uint64_t v : values) out.counters[i] += v;
  }
  return out;
}

}  // namespace corral
