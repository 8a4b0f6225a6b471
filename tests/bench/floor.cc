// The floor under the overhead benchmark's b/a: attaches a program that
// does nothing to the sys_exit raw tracepoint (corral's hook for file and
// connect syscalls) and holds it until stdin closes. What the open loop
// loses while it is attached is the kernel's price for any program there
// (every task of the host goes through the slow syscall path), which no
// corral code can win back. Used by scripts/bench.sh; prints "attached".
#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "unique_fd.h"

int main() {
  // r0 = 0; exit
  const struct bpf_insn insns[] = {
      {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0},
      {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
  };
  corral::UniqueFd prog(bpf_prog_load(BPF_PROG_TYPE_RAW_TRACEPOINT, "corral_floor", "GPL", insns,
                                      sizeof(insns) / sizeof(insns[0]), nullptr));
  if (!prog) {
    std::fprintf(stderr, "corral_bench_floor: failed to load a no-op program: %s\n", std::strerror(errno));
    return 1;
  }
  corral::UniqueFd link(bpf_raw_tracepoint_open("sys_exit", prog.get()));
  if (!link) {
    std::fprintf(stderr, "corral_bench_floor: failed to attach to raw tracepoint sys_exit: %s\n",
                 std::strerror(errno));
    return 1;
  }
  std::printf("attached\n");
  std::fflush(stdout);
  for (;;) {
    char c;
    ssize_t n = ::read(STDIN_FILENO, &c, 1);
    if (n == 0 || (n < 0 && errno != EINTR)) return 0;
  }
}
