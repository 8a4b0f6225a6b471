#include "decode.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string_view>
#include <type_traits>

#include "event_layout.h"
#include "exec_rules.h"
#include "path.h"

namespace corral {
namespace {

// Copies the fixed part of an event (`fixed` bytes, all of which must be
// present). What of T lies past it, the data area, is left unset: its slots
// are read from `bytes` (zeroing its 8 KiB took longer than decoding).
template <typename T>
bool read_fixed(std::span<const uint8_t> bytes, size_t fixed, T& out, std::string& error) {
  static_assert(std::is_trivially_copyable_v<T>);
  if (bytes.size() < fixed) {
    error = "event of " + std::to_string(bytes.size()) + " bytes is shorter than its fixed part (" +
            std::to_string(fixed) + ")";
    return false;
  }
  std::memcpy(&out, bytes.data(), fixed);
  return true;
}

void fill_common(const corral_event_header& h, audit::Record& out) {
  auto* p = out.mutable_process();
  p->set_pid(h.pid);
  p->set_tid(h.tid);
  p->set_ppid(h.ppid);
  p->set_uid(h.uid);
  p->set_gid(h.gid);
  p->set_comm(h.comm, strnlen(h.comm, sizeof(h.comm)));
  char id[16];
  format_session_id(h.session_id, id);
  out.set_session(id, sizeof id);
  out.set_boot_ns(h.boot_ns);
}

// The bytes of slot `index` of the data area that starts at `data_off`.
std::string_view slot_bytes(std::span<const uint8_t> bytes, size_t data_off, size_t index) {
  size_t start = data_off + index * CORRAL_SLOT_SIZE;
  if (start >= bytes.size()) return {};
  size_t len = std::min<size_t>(CORRAL_SLOT_SIZE, bytes.size() - start);
  return {reinterpret_cast<const char*>(bytes.data() + start), len};
}

template <typename Msg>
void set_result(Msg* m, int64_t ret) {
  m->set_result(ret);
  if (ret < 0) m->set_error(errno_name(static_cast<int>(-ret)));
}

void decode_exec(std::span<const uint8_t> bytes, const corral_exec_event& e, audit::Record& out) {
  constexpr size_t data_off = offsetof(corral_exec_event, data);
  std::string_view slot = slot_bytes(bytes, data_off, 0);
  auto* x = out.mutable_exec();
  auto path = resolve_slot(e.path, slot);
  x->set_path(std::move(path.path));
  x->set_path_truncated(path.truncated);
  size_t comp = std::min<size_t>(e.path.components_len, slot.size());
  std::string_view argv = slot.substr(comp, std::min<size_t>(e.argv_len, slot.size() - comp));
  size_t pos = 0;
  while (pos < argv.size()) {
    size_t end = argv.find('\0', pos);
    if (end == std::string_view::npos) end = argv.size();
    x->add_argv(std::string(argv.substr(pos, end - pos)));
    pos = end + 1;
  }
  x->set_argv_truncated(e.argv_full_len > e.argv_len);
  if (e.verdict != CORRAL_VERDICT_NONE) {
    auto* d = out.mutable_decision();
    d->set_action(e.verdict == CORRAL_VERDICT_DENIED ? "deny" : "would_deny");
    d->set_mode(e.verdict == CORRAL_VERDICT_DENIED ? "enforce" : "shadow");
    d->set_policy_generation(e.policy_gen);
    d->set_rule_index(exec_rule_index(e.rule_index));
  }
}

void decode_connect(const corral_connect_event& e, audit::Record& out) {
  auto* c = out.mutable_connect();
  char buf[INET6_ADDRSTRLEN] = {};
  switch (e.family) {
    case AF_INET:
      c->set_family("inet");
      inet_ntop(AF_INET, e.addr, buf, sizeof(buf));
      c->set_address(buf);
      c->set_port(e.port);
      break;
    case AF_INET6:
      c->set_family("inet6");
      inet_ntop(AF_INET6, e.addr, buf, sizeof(buf));
      c->set_address(buf);
      c->set_port(e.port);
      break;
    case AF_UNIX: {
      c->set_family("unix");
      size_t n = strnlen(e.unix_path, sizeof(e.unix_path));
      if (n == 0 && e.unix_path[1] != '\0') {  // abstract: NUL, then the name
        c->set_address("@" + std::string(e.unix_path + 1,
                                         strnlen(e.unix_path + 1, sizeof(e.unix_path) - 1)));
      } else {
        c->set_address(std::string(e.unix_path, n));
      }
      break;
    }
    default:
      c->set_family(std::to_string(e.family));
  }
  c->set_fd(e.fd);
  set_result(c, e.ret);
}

}  // namespace

bool decode_event(std::span<const uint8_t> bytes, audit::Record& out, std::string& error) {
  corral_event_header hdr;
  if (!read_fixed(bytes, sizeof(hdr), hdr, error)) return false;
  if (hdr.size != bytes.size()) {
    error = "event says it has " + std::to_string(hdr.size) + " bytes, the ring buffer gave " +
            std::to_string(bytes.size());
    return false;
  }
  fill_common(hdr, out);

  switch (hdr.type) {
    case CORRAL_EV_EXEC: {
      corral_exec_event e;
      if (!read_fixed(bytes, offsetof(corral_exec_event, data), e, error)) return false;
      decode_exec(bytes, e, out);
      return true;
    }
    case CORRAL_EV_EXIT: {
      corral_exit_event e;
      if (!read_fixed(bytes, sizeof(e), e, error)) return false;
      auto* x = out.mutable_exit();
      if (e.exit_code & 0x7f) {
        x->set_signal(e.exit_code & 0x7f);
        x->set_core_dumped(e.exit_code & 0x80);
      } else {
        x->set_code((e.exit_code >> 8) & 0xff);
      }
      return true;
    }
    case CORRAL_EV_OPEN: {
      corral_open_event e;
      constexpr size_t data_off = offsetof(corral_open_event, data);
      if (!read_fixed(bytes, data_off, e, error)) return false;
      auto path = resolve_slot(e.path, slot_bytes(bytes, data_off, 0));
      auto* o = out.mutable_open();
      o->set_path(std::move(path.path));
      o->set_requested(std::move(path.requested));
      o->set_path_truncated(path.truncated);
      add_open_flag_names(e.flags, *o->mutable_flags());
      o->set_raw_flags(e.flags);
      o->set_mode(e.mode);
      set_result(o, e.ret);
      return true;
    }
    case CORRAL_EV_UNLINK: {
      corral_unlink_event e;
      constexpr size_t data_off = offsetof(corral_unlink_event, data);
      if (!read_fixed(bytes, data_off, e, error)) return false;
      auto path = resolve_slot(e.path, slot_bytes(bytes, data_off, 0));
      auto* u = out.mutable_unlink();
      u->set_path(std::move(path.path));
      u->set_path_truncated(path.truncated);
      u->set_directory(e.flags & AT_REMOVEDIR);
      set_result(u, e.ret);
      return true;
    }
    case CORRAL_EV_RENAME:
    case CORRAL_EV_LINK:
    case CORRAL_EV_SYMLINK: {
      corral_rename_event e;
      constexpr size_t data_off = offsetof(corral_rename_event, data);
      if (!read_fixed(bytes, data_off, e, error)) return false;
      auto from = resolve_slot(e.from, slot_bytes(bytes, data_off, 0));
      auto to = resolve_slot(e.to, slot_bytes(bytes, data_off, 1));
      auto fill = [&](auto* r) {
        r->set_from(std::move(from.path));
        r->set_to(std::move(to.path));
        r->set_flags(e.flags);
        r->set_path_truncated(from.truncated || to.truncated);
        set_result(r, e.ret);
      };
      if (hdr.type == CORRAL_EV_RENAME) {
        fill(out.mutable_rename());
      } else {
        auto* l = out.mutable_link();
        // a symlink's target is its text, relative to the link's folder
        if (hdr.type == CORRAL_EV_SYMLINK) from = {std::move(from.requested), {}, false};
        fill(l);
        l->set_symbolic(hdr.type == CORRAL_EV_SYMLINK);
      }
      return true;
    }
    case CORRAL_EV_TRUNCATE: {
      corral_truncate_event e;
      constexpr size_t data_off = offsetof(corral_truncate_event, data);
      if (!read_fixed(bytes, data_off, e, error)) return false;
      auto path = resolve_slot(e.path, slot_bytes(bytes, data_off, 0));
      auto* t = out.mutable_truncate();
      t->set_path(std::move(path.path));
      t->set_path_truncated(path.truncated);
      t->set_length(e.length);
      t->set_fd(e.fd);
      set_result(t, e.ret);
      return true;
    }
    case CORRAL_EV_EGRESS: {
      corral_egress_event e;
      if (!read_fixed(bytes, sizeof(e), e, error)) return false;
      auto* c = out.mutable_connect();
      char buf[INET6_ADDRSTRLEN] = {};
      inet_ntop(e.family, e.addr, buf, sizeof(buf));
      c->set_family(e.family == AF_INET ? "inet" : "inet6");
      c->set_address(buf);
      c->set_port(e.port);
      c->set_fd(-1);
      c->set_protocol(e.protocol == CORRAL_PROTO_UDP ? "udp" : "tcp");
      const bool shadow = e.verdict == CORRAL_VERDICT_WOULD_DENY;
      set_result(c, shadow ? 0 : -EPERM);  // shadow: the call goes on
      auto* d = out.mutable_decision();
      d->set_action(shadow ? "would_deny" : "deny");
      d->set_mode(shadow ? "shadow" : "enforce");
      d->set_rule(e.loopback ? "egress-loopback" : "egress-default-deny");
      d->set_reason(e.loopback ? "a loopback port no session process listens on"
                               : "destination not in the egress allowlist");
      return true;
    }
    case CORRAL_EV_CONNECT: {
      corral_connect_event e;
      if (!read_fixed(bytes, sizeof(e), e, error)) return false;
      decode_connect(e, out);
      return true;
    }
  }
  error = "unknown event type " + std::to_string(hdr.type);
  return false;
}

void format_session_id(uint64_t id, char (&out)[16]) {
  static constexpr char kDigits[] = "0123456789abcdef";
  for (int i = 15; i >= 0; i--, id >>= 4) out[i] = kDigits[id & 15];
}

std::string session_id_string(uint64_t id) {
  char buf[16];
  format_session_id(id, buf);
  return std::string(buf, sizeof buf);
}

std::string errno_name(int err) {
  const char* name = strerrorname_np(err);
  return name ? name : std::to_string(err);
}

void add_open_flag_names(uint32_t flags, google::protobuf::RepeatedPtrField<std::string>& names) {
  switch (flags & O_ACCMODE) {
    case O_RDONLY: names.Add("O_RDONLY"); break;
    case O_WRONLY: names.Add("O_WRONLY"); break;
    case O_RDWR: names.Add("O_RDWR"); break;
    default: names.Add("O_ACCMODE"); break;
  }
  // O_SYNC and O_TMPFILE include other flags' bits: test them whole, first
  uint32_t rest = flags & ~static_cast<uint32_t>(O_ACCMODE);
  static constexpr std::pair<uint32_t, const char*> kFlags[] = {
      {O_TMPFILE, "O_TMPFILE"},   {O_SYNC, "O_SYNC"},         {O_CREAT, "O_CREAT"},
      {O_EXCL, "O_EXCL"},         {O_NOCTTY, "O_NOCTTY"},     {O_TRUNC, "O_TRUNC"},
      {O_APPEND, "O_APPEND"},     {O_NONBLOCK, "O_NONBLOCK"}, {O_DSYNC, "O_DSYNC"},
      {O_DIRECT, "O_DIRECT"},     {0100000 /* the kernel's; glibc defines 0 on 64-bit */, "O_LARGEFILE"}, {O_DIRECTORY, "O_DIRECTORY"},
      {O_NOFOLLOW, "O_NOFOLLOW"}, {O_NOATIME, "O_NOATIME"},   {O_CLOEXEC, "O_CLOEXEC"},
      {O_PATH, "O_PATH"},
  };
  for (auto [bits, name] : kFlags) {
    if ((rest & bits) == bits) {
      names.Add(name);
      rest &= ~bits;
    }
  }
  if (rest) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "0x%x", rest);
    names.Add(buf);
  }
}

}  // namespace corral
