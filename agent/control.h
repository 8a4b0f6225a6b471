// The daemon's control socket, both ends: packets of one protobuf message
// each (SOCK_SEQPACKET keeps the boundaries), descriptors as SCM_RIGHTS.
// Only root may connect (mode 0600, and the daemon checks SO_PEERCRED).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "control.pb.h"
#include "unique_fd.h"

namespace corral {

constexpr const char* kDefaultControlSocket = "/run/corral/control.sock";

// corral's own exit codes, like a shell's for a command it cannot run.
constexpr int kCorralFailed = 125;
constexpr int kCannotRun = 126;
constexpr int kNotFound = 127;

// Sends `bytes` as one packet with `fds` (at most 8) attached as
// SCM_RIGHTS, without SIGPIPE; sendmsg's result, errno set on -1.
ssize_t send_with_fds(int sock, std::string_view bytes, const std::vector<int>& fds);

// Sends one message with `fds` attached. Throws std::runtime_error.
void send_packet(int sock, const google::protobuf::MessageLite& msg, const std::vector<int>& fds = {});

// Receives one packet into `msg`, and the descriptors that came with it.
// Returns false at EOF. Throws on errors, a truncated or unparsable packet.
bool recv_packet(int sock, google::protobuf::MessageLite& msg, std::vector<UniqueFd>* fds = nullptr);

// Connects to the daemon at `path`; an empty fd when nothing listens there
// (no socket, or a stale one). Throws on any other failure.
UniqueFd connect_control(const std::string& path);

// The uid of the peer of a connected unix socket. Throws.
uid_t peer_uid(int sock);

// One question to the daemon on `sock` (ListSessions, KillSession), its
// answer. Throws on an error answer, or when the daemon goes away.
control::DaemonMessage ask_daemon(int sock, const control::ClientMessage& question);

// Runs the session that `start` asks for (a RunRequest or an Invocation)
// in the daemon on `sock`, with our stdin, stdout and stderr as the
// agent's — on a terminal, a pty of its own that we proxy (see pty_proxy.h) —
// passing on the signals we get; returns the agent's exit code, or nullopt
// when the daemon hands the run back (the terminal, signal mask and
// descriptors then as they were). Throws std::runtime_error when the daemon
// refuses the session or goes away before it ends (its sessions die with
// it).
std::optional<int> run_in_daemon(int sock, control::ClientMessage start);

}  // namespace corral
