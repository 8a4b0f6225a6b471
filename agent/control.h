// The daemon's control socket for corral-core and the daemon: its
// messages as control.proto's generated classes. The corral command's end
// is control_client.h.
#pragma once

#include <sys/types.h>

#include <vector>

#include "control.pb.h"
#include "control_client.h"
#include "unique_fd.h"

namespace corral {

// Sends one message with `fds` attached. Throws std::runtime_error.
void send_packet(int sock, const google::protobuf::MessageLite& msg, const std::vector<int>& fds = {});

// Receives one packet into `msg`, and the descriptors that came with it.
// Returns false at EOF. Throws on errors, a truncated or unparsable packet.
bool recv_packet(int sock, google::protobuf::MessageLite& msg, std::vector<UniqueFd>* fds = nullptr);

// The uid of the peer of a connected unix socket. Throws.
uid_t peer_uid(int sock);

// One question to the daemon on `sock` (ListSessions, KillSession), its
// answer. Throws on an error answer, or when the daemon goes away.
control::DaemonMessage ask_daemon(int sock, const control::ClientMessage& question);

}  // namespace corral
