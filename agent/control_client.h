// The daemon's control socket, the corral command's end: packets of one
// control.proto message each (SOCK_SEQPACKET keeps the boundaries),
// descriptors as SCM_RIGHTS. No protobuf runtime here: the command, static
// and started for every warm run, writes and reads its few messages itself
// (control_wire.h); corral-core and the daemon have control.h.
// Only root may connect (mode 0600, and the daemon checks SO_PEERCRED).
#pragma once

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "unique_fd.h"

namespace corral {

constexpr const char* kDefaultControlSocket = "/run/corral/control.sock";

// corral's own exit codes, like a shell's for a command it cannot run.
constexpr int kCorralFailed = 125;
constexpr int kCannotRun = 126;
constexpr int kNotFound = 127;

// One control packet at most: an agent's argv and environment.
constexpr size_t kMaxControlPacket = 1u << 20;
constexpr size_t kMaxControlFds = 3;

// Sends `bytes` as one packet with `fds` (at most 8) attached as
// SCM_RIGHTS, without SIGPIPE; sendmsg's result, errno set on -1.
ssize_t send_with_fds(int sock, std::string_view bytes, const std::vector<int>& fds);

// Sends one packet, checked against the limits, with `fds` attached.
// Throws std::runtime_error.
void send_bytes(int sock, std::string_view packet, const std::vector<int>& fds);

// Receives one packet into `bytes`, and the descriptors that came with it
// (closed when `fds` is null). Returns false at EOF. Throws on errors and
// on a packet over kMaxControlPacket bytes or kMaxControlFds descriptors.
bool recv_with_fds(int sock, std::string& bytes, std::vector<UniqueFd>* fds);

// Connects to the daemon at `path`; an empty fd when nothing listens there
// (no socket, or a stale one). Throws on any other failure.
UniqueFd connect_control(const std::string& path);
// Whether anything listens on the socket at `path`, asked without waiting
// (a listener that accepts nothing leaves connect(2) blocked for good once
// its backlog is full). Throws on failures other than nobody there.
bool control_listened(const std::string& path);

// Runs a session in the daemon on `sock`: sends start(terminal), the
// ClientMessage that asks for it (a RunRequest or an Invocation) for a
// session with or without a terminal of its own, with our stdin, stdout
// and stderr as the agent's — on a terminal, a pty of its own that we proxy
// (see pty_proxy.h) — and passes on the signals we get. Returns the agent's
// exit code, or nullopt when the daemon hands the run back (the terminal,
// signal mask and descriptors then as they were). Throws
// std::runtime_error when the daemon refuses the session or goes away
// before it ends (its sessions die with it).
std::optional<int> run_in_daemon(int sock, const std::function<std::string(bool terminal)>& start);

}  // namespace corral
