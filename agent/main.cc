#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>

#include "cli.h"

int main(int argc, char** argv) {
  // Started with 0, 1 or 2 closed (`<&-`, some service managers), the next
  // descriptor opened would take that number — a BPF map, the audit log —
  // and a session's init, which sets its stdio up by number, would close or
  // overwrite it. /dev/null holds the place.
  for (int fd = 0; fd < 3; fd++)
    if (::fcntl(fd, F_GETFD) < 0 && errno == EBADF && ::open("/dev/null", O_RDWR) != fd) return 1;
  // A peer gone (a session's init that died before its release, a sink's
  // socket) is an error to report where the write fails, not the end of
  // the supervisor. Agents start with every signal at its default.
  ::signal(SIGPIPE, SIG_IGN);
  return corral::cli_main(argc, argv);
}
