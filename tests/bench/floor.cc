// The floor under the overhead benchmark's b/a.
//
// corral_bench_floor
//   attaches a program that does nothing to the sys_exit raw tracepoint
//   (corral's hook for file and connect syscalls) and holds it until stdin
//   closes. What the open loop loses while it is attached is the kernel's
//   price for any program there (every task of the host goes through the
//   slow syscall path), which no corral code can win back. Used by
//   scripts/bench.sh; prints "attached".
//
// corral_bench_floor --compare [ROUNDS [MS]]
//   the same open/close loop as corral_bench_loops, in segments of MS
//   milliseconds (default 200) rotating through: nothing attached; the no-op
//   raw sys_exit program; a no-op perf tracepoint program on one syscall
//   the loop never makes (the kernel's price for any syscall tracepoint at
//   all: every task takes the slow syscall path); and one on sys_exit_openat
//   (what a per-syscall hook on open would cost). ROUNDS rounds (default
//   30); prints each kind's median time per operation and the median of
//   its per-round ratio to the segment without programs. Segments this short
//   and interleaved see the same host: this VM's speed drifts by tens of
//   percent within minutes, more than the few percent being measured.
#include <bpf/bpf.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/perf_event.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "bench_util.h"
#include "unique_fd.h"

using namespace corral_bench;

namespace {

// r0 = 0; exit
const struct bpf_insn kNoop[] = {
    {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0},
    {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
};

corral::UniqueFd load_noop(bpf_prog_type type)
{
	corral::UniqueFd prog(bpf_prog_load(type, "corral_floor", "GPL", kNoop,
					    sizeof(kNoop) / sizeof(kNoop[0]), nullptr));
	if (!prog)
		die("failed to load a no-op program");
	return prog;
}

corral::UniqueFd attach_raw_sys_exit(int prog)
{
	corral::UniqueFd link(bpf_raw_tracepoint_open("sys_exit", prog));
	if (!link)
		die("failed to attach to raw tracepoint sys_exit");
	return link;
}

constexpr const char *kTracefs = "/sys/kernel/tracing";

// A fresh machine here boots without tracefs; mount it as the supervisor does.
void need_tracefs()
{
	struct stat st;
	if (stat("/sys/kernel/tracing/events/syscalls", &st) == 0)
		return;
	if (mount("tracefs", kTracefs, "tracefs", 0, nullptr) != 0)
		die("failed to mount tracefs at /sys/kernel/tracing");
}

// A perf event on tracepoint syscalls/EVENT running `prog`; closing it detaches.
corral::UniqueFd attach_syscall_tp(const char *event, int prog)
{
	std::string path = std::string(kTracefs) + "/events/syscalls/" + event + "/id";
	std::ifstream in(path);
	unsigned long long id = 0;
	if (!(in >> id)) {
		std::fprintf(stderr, "%s: failed to read %s\n", program, path.c_str());
		std::exit(1);
	}
	perf_event_attr attr{};
	attr.type = PERF_TYPE_TRACEPOINT;
	attr.size = sizeof(attr);
	attr.config = id;
	attr.sample_period = 1;
	corral::UniqueFd ev(static_cast<int>(syscall(__NR_perf_event_open, &attr, -1, 0, -1, PERF_FLAG_FD_CLOEXEC)));
	if (!ev)
		die("perf_event_open of a syscall tracepoint");
	if (ioctl(ev.get(), PERF_EVENT_IOC_SET_BPF, prog) != 0 || ioctl(ev.get(), PERF_EVENT_IOC_ENABLE, 0) != 0)
		die("failed to attach a program to a syscall tracepoint");
	return ev;
}

// Nanoseconds per open+close of the loop, over `seconds`.
double open_loop_ns(double seconds)
{
	double elapsed = 0;
	unsigned long long ops = run_for(seconds, 256, elapsed, [] {
		int fd = open("/etc/hostname", O_RDONLY);
		if (fd < 0)
			die("open /etc/hostname");
		close(fd);
	});
	return elapsed * 1e9 / static_cast<double>(ops);
}

double median(std::vector<double> v)
{
	std::sort(v.begin(), v.end());
	return v[v.size() / 2];
}

int compare(int rounds, int ms)
{
	need_tracefs();
	corral::UniqueFd raw = load_noop(BPF_PROG_TYPE_RAW_TRACEPOINT);
	corral::UniqueFd tp = load_noop(BPF_PROG_TYPE_TRACEPOINT);
	struct Kind {
		const char *name;
		corral::UniqueFd (*attach)(int raw, int tp);
		std::vector<double> ns, ratio;
	};
	Kind kinds[] = {
	    {"nothing attached", [](int, int) { return corral::UniqueFd(); }, {}, {}},
	    {"no-op raw_tp sys_exit (corral's hook)", [](int r, int) { return attach_raw_sys_exit(r); }, {}, {}},
	    // quotactl: a syscall the loop never makes
	    {"no-op tp syscalls/sys_exit_quotactl",
	     [](int, int t) { return attach_syscall_tp("sys_exit_quotactl", t); }, {}, {}},
	    {"no-op tp syscalls/sys_exit_openat",
	     [](int, int t) { return attach_syscall_tp("sys_exit_openat", t); }, {}, {}},
	};
	const double seconds = ms / 1000.0;
	for (int r = 0; r < rounds; ++r) {
		double base = 0;
		for (Kind &k : kinds) {
			corral::UniqueFd link = k.attach(raw.get(), tp.get());
			open_loop_ns(0.02);  // past the attach's own disturbance
			double ns = open_loop_ns(seconds);
			if (&k == &kinds[0])
				base = ns;
			k.ns.push_back(ns);
			k.ratio.push_back(ns / base);
		}
	}
	std::printf("open loop, %d rounds of %d ms segments: median ns per open+close, median ratio to nothing\n",
		    rounds, ms);
	for (Kind &k : kinds)
		std::printf("  %-40s %7.0f ns  %.3f\n", k.name, median(k.ns), median(k.ratio));
	return 0;
}

int hold()
{
	corral::UniqueFd prog = load_noop(BPF_PROG_TYPE_RAW_TRACEPOINT);
	corral::UniqueFd link = attach_raw_sys_exit(prog.get());
	std::printf("attached\n");
	std::fflush(stdout);
	for (;;) {
		char c;
		ssize_t n = ::read(STDIN_FILENO, &c, 1);
		if (n == 0 || (n < 0 && errno != EINTR))
			return 0;
	}
}

}  // namespace

int main(int argc, char **argv)
{
	program = "corral_bench_floor";
	if (argc == 1)
		return hold();
	if (std::strcmp(argv[1], "--compare") == 0 && argc <= 4) {
		int rounds = argc > 2 ? std::atoi(argv[2]) : 30;
		int ms = argc > 3 ? std::atoi(argv[3]) : 200;
		if (rounds > 0 && ms > 0)
			return compare(rounds, ms);
	}
	std::fprintf(stderr, "usage: corral_bench_floor [--compare [ROUNDS [MS]]]\n");
	return 2;
}
