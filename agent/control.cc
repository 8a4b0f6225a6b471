#include "control.h"

#include <sys/socket.h>

#include <stdexcept>
#include <string>

#include "errno_error.h"

namespace corral {

void send_packet(int sock, const google::protobuf::MessageLite& msg, const std::vector<int>& fds) {
  send_bytes(sock, msg.SerializeAsString(), fds);
}

bool recv_packet(int sock, google::protobuf::MessageLite& msg, std::vector<UniqueFd>* fds) {
  std::string bytes;
  if (!recv_with_fds(sock, bytes, fds)) return false;
  if (!msg.ParseFromString(bytes)) throw std::runtime_error("unparsable control message");
  return true;
}

uid_t peer_uid(int sock) {
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (::getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
    throw errno_error("failed to read the control peer's credentials");
  return cred.uid;
}

control::DaemonMessage ask_daemon(int sock, const control::ClientMessage& question) {
  send_packet(sock, question);
  control::DaemonMessage reply;
  if (!recv_packet(sock, reply)) throw std::runtime_error("the corral daemon closed the connection");
  if (reply.has_error()) throw std::runtime_error(reply.error());
  return reply;
}

}  // namespace corral
