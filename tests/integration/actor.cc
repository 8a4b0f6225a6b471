// A scripted "agent" for the integration tests: performs exactly the
// syscalls a test names, so the audit records can be checked one by one.
//   actor openat DIR REL        openat(open(DIR), REL, O_RDONLY)
//   actor connect6 PORT         TCP connect to [::1]:PORT
//   actor connect-unix PATH     connect to a unix socket path
//   actor rename FROM TO | unlink PATH | rmdir PATH
//   actor truncate PATH | ftruncate PATH
//   actor opens N PATH          N open+close of PATH
//   actor self-connect         listen on 127.0.0.1:0 and connect to it
//   actor udp HOST PORT         send one datagram (sendmsg path of egress)
//   actor unlinks N PATH [GO]   N unlink of PATH (missing: no file is touched);
//                               with GO, first creates GO.ready, then waits for GO
//   actor tiocsti TEXT          push each byte of TEXT into stdin's terminal's
//                               input (TIOCSTI; every other call with the
//                               request's upper 32 bits set, which the
//                               kernel ignores); prints how many got in
//   actor packet-sockets        socket(AF_PACKET, SOCK_DGRAM), plainly and
//                               with the domain's upper 32 bits set
//   actor aslr-off             personality(ADDR_NO_RANDOMIZE), plainly and
//                               with bit 31 set
//   actor file-syscalls         in the cwd, each raw syscall of the file
//                               families once: open creat openat openat2
//                               truncate ftruncate rename renameat renameat2
//                               link linkat (by name, by fd) symlink symlinkat
//                               unlink unlinkat (file, dir) rmdir
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <linux/openat2.h>
#include <unistd.h>

#include <string>

static int report(const char* what, int rc) {
  printf("%s -> %d\n", what, rc < 0 ? -errno : rc);
  return 0;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: actor VERB ARGS...\n");
    return 2;
  }
  std::string verb = argv[1];
  if (verb == "file-syscalls") {
    // raw syscalls: libc would pick its own variant of each
    auto sys = [](long nr, auto... args) { return static_cast<int>(syscall(nr, args...)); };
    close(sys(SYS_open, "f_open", O_CREAT | O_WRONLY, 0644));
    close(sys(SYS_creat, "f_creat", 0644));
    close(sys(SYS_openat, AT_FDCWD, "f_openat", O_CREAT | O_WRONLY, 0644));
    open_how how{};
    how.flags = O_CREAT | O_WRONLY;
    how.mode = 0600;
    close(sys(SYS_openat2, AT_FDCWD, "f_openat2", &how, sizeof(how)));
    sys(SYS_truncate, "f_open", 3);
    int fd = open("f_creat", O_WRONLY);
    sys(SYS_ftruncate, fd, 2);
    close(fd);
    sys(SYS_rename, "f_open", "r_rename");
    sys(SYS_renameat, AT_FDCWD, "f_creat", AT_FDCWD, "r_renameat");
    sys(SYS_renameat2, AT_FDCWD, "f_openat", AT_FDCWD, "r_renameat2", 1 /* NOREPLACE */);
    sys(SYS_link, "r_renameat2", "l_link");
    sys(SYS_linkat, AT_FDCWD, "r_renameat2", AT_FDCWD, "l_linkat", 0);
    int file = open("r_renameat2", O_RDONLY);
    sys(SYS_linkat, file, "", AT_FDCWD, "l_empty", AT_EMPTY_PATH);
    close(file);
    // with a path, AT_EMPTY_PATH changes nothing: the path names the file
    int dir = open(".", O_RDONLY | O_DIRECTORY);
    sys(SYS_linkat, dir, "r_renameat2", AT_FDCWD, "l_named", AT_EMPTY_PATH);
    close(dir);
    sys(SYS_symlink, "r_renameat2", "s_symlink");
    sys(SYS_symlinkat, "../elsewhere", AT_FDCWD, "s_symlinkat");
    sys(SYS_unlink, "r_rename");
    sys(SYS_unlinkat, AT_FDCWD, "r_renameat", 0);
    mkdir("d_unlinkat", 0755);
    sys(SYS_unlinkat, AT_FDCWD, "d_unlinkat", AT_REMOVEDIR);
    mkdir("d_rmdir", 0755);
    sys(SYS_rmdir, "d_rmdir");
    return 0;
  }
  if (verb == "tiocsti" && argc == 3) {
    size_t pushed = 0, n = strlen(argv[2]);
    for (size_t i = 0; i < n; i++) {
      unsigned long request = TIOCSTI | (i % 2 ? 0xabcd00000000ul : 0);
      if (syscall(SYS_ioctl, 0, request, &argv[2][i]) == 0) pushed++;
    }
    printf("tiocsti pushed %zu of %zu\n", pushed, n);
    return 0;
  }
  if (verb == "aslr-off") {
    for (unsigned long persona : {0x0040000ul, 0x80040000ul})
      report("personality", static_cast<int>(syscall(SYS_personality, persona)));
    return 0;
  }
  if (verb == "packet-sockets") {
    for (unsigned long high : {0ul, 0x100000000ul}) {
      long fd = syscall(SYS_socket, AF_PACKET | high, SOCK_DGRAM, 0);
      report("packet-socket", static_cast<int>(fd));
    }
    return 0;
  }
  if (verb == "openat" && argc == 4) {
    int dir = open(argv[2], O_RDONLY | O_DIRECTORY);
    if (dir < 0) return 3;
    return report("openat", openat(dir, argv[3], O_RDONLY));
  }
  if (verb == "connect6") {
    int s = socket(AF_INET6, SOCK_STREAM, 0);
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(atoi(argv[2]));
    a.sin6_addr = in6addr_loopback;
    return report("connect6", connect(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)));
  }
  if (verb == "connect-unix") {
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", argv[2]);
    return report("connect-unix", connect(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)));
  }
  if (verb == "rename" && argc == 4) return report("rename", rename(argv[2], argv[3]));
  if (verb == "unlink") return report("unlink", unlink(argv[2]));
  if (verb == "rmdir") return report("rmdir", rmdir(argv[2]));
  if (verb == "truncate") return report("truncate", truncate(argv[2], 0));
  if (verb == "ftruncate") {
    int fd = open(argv[2], O_WRONLY);
    return report("ftruncate", ftruncate(fd, 1));
  }
  if (verb == "opens" && argc == 4) {
    long n = atol(argv[2]);
    for (long i = 0; i < n; i++) {
      int fd = open(argv[3], O_RDONLY);
      if (fd >= 0) close(fd);
    }
    return 0;
  }
  if (verb == "self-connect") {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (bind(l, reinterpret_cast<sockaddr*>(&a), sizeof(a)) || listen(l, 1) ||
        getsockname(l, reinterpret_cast<sockaddr*>(&a), &len))
      return 3;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    return report("self-connect", connect(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)));
  }
  if (verb == "udp" && argc == 4) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(atoi(argv[3]));
    inet_pton(AF_INET, argv[2], &a.sin_addr);
    return report("udp", sendto(s, "x", 1, 0, reinterpret_cast<sockaddr*>(&a), sizeof(a)));
  }
  if (verb == "unlinks" && (argc == 4 || argc == 5)) {
    // with GO: says it runs (GO.ready), then starts once GO exists (polled
    // with stat: no open for a stopped supervisor's guard to hold)
    if (argc == 5) {
      std::string ready = std::string(argv[4]) + ".ready";
      int fd = open(ready.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
      if (fd < 0) return 3;
      close(fd);
      struct stat st;
      while (stat(argv[4], &st) != 0) usleep(10000);
    }
    long n = atol(argv[2]);
    for (long i = 0; i < n; i++) unlink(argv[3]);
    return 0;
  }
  fprintf(stderr, "actor: bad arguments for %s\n", verb.c_str());
  return 2;
}
