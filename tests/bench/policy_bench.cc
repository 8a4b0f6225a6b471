// The policy benchmark's workloads and probes (scripts/bench_policy.sh; the
// latency table of scripts/bench.sh). One source, two programs:
//
// corral_bench_ops MODE ARGS...   (libc and libstdc++ only: it runs as the
// agent inside sessions, so it must not drag libraries in)
//
//   open-lat N FILE        N opens of FILE, each open() timed alone
//                          (clock_gettime around the call; close untimed)
//   open-distinct N DIR    one timed open of each of DIR/f0 .. DIR/f<N-1>:
//                          in a session, each is a first open, so a fanotify
//                          permission decision in the supervisor
//   connect-to ADDR PORT SECONDS
//                          socket + connect + close to ADDR:PORT (IPv4) in a
//                          loop for SECONDS (someone else's listener: an own
//                          loopback port skips the egress trie)
//   mkfiles N DIR          creates DIR/f0 .. DIR/f<N-1> (empty, mode 0644)
//   listen ADDR            listens on ADDR:0 (IPv4), prints "port=P", accepts
//                          and closes until stdin reaches EOF or a signal
//   stamp [idle]           prints "stamp_us=T": CLOCK_REALTIME in µs when this
//                          process reached main(); with idle, then waits for a
//                          signal (an idle agent)
//
// The latency modes print
//   MODE ops=N seconds=S ops_per_sec=R p50_us=.. p90_us=.. p99_us=.. p999_us=.. max_us=.. mean_us=..
// connect-to prints "connect-to ops=N seconds=S ops_per_sec=R".
//
// corral_bench_policy compile POLICY HOME CWD PATHDIR N   (links corral's own
// libraries) times, in this process, what a supervisor does with POLICY
// before and while a session runs: parse + validate (= `corral policy
// check`), the secret and protected RE2::Sets, the identity walk of the
// secret globs (FileGuard: `**/` globs walk CWD), the exec and egress kernel
// map compilation (hosts are not resolved), and the matcher's time per
// decision over N distinct paths PATHDIR/f<i>, first pass (lazy DFA states
// being built) and second pass. One line of key=value pairs.
//
// Exits 1 when an operation fails, 2 on bad usage.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#ifdef CORRAL_BENCH_POLICY
#include <climits>

#include "egress_rules.h"
#include "exec_rules.h"
#include "file_guard.h"
#include "matcher.h"
#include "policy.h"
#endif

#include "bench_util.h"

using namespace corral_bench;

namespace {

#ifndef CORRAL_BENCH_POLICY

// socket + connect + close to `addr`, for `seconds`.
unsigned long long connect_to_loop(const sockaddr_in &addr, double seconds, double &elapsed)
{
	// An abortive close (linger 0) leaves no TIME_WAIT behind, so tens of
	// thousands of connections a second do not run out of local ports.
	const linger abortive{1, 0};
	return run_for(seconds, 256, elapsed, [&] {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			die("socket");
		if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &abortive, sizeof(abortive)) < 0)
			die("setsockopt SO_LINGER");
		if (connect(fd, reinterpret_cast<const sockaddr *>(&addr), sizeof(addr)) < 0)
			die("connect");
		close(fd);
	});
}

// A listener on `ip`:0; returns its fd and fills `addr`.
int listen_on(const char *ip, sockaddr_in &addr)
{
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		die("socket (listener)");
	addr = sockaddr_in{};
	addr.sin_family = AF_INET;
	if (inet_pton(AF_INET, ip, &addr.sin_addr) != 1) {
		std::fprintf(stderr, "corral_bench: bad IPv4 address '%s'\n", ip);
		std::exit(2);
	}
	addr.sin_port = 0;
	if (bind(lfd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) < 0)
		die("bind");
	if (listen(lfd, 4096) < 0)
		die("listen");
	socklen_t len = sizeof(addr);
	if (getsockname(lfd, reinterpret_cast<sockaddr *>(&addr), &len) < 0)
		die("getsockname");
	return lfd;
}

// Accepts and closes on `lfd` until shutdown() of it (or a fatal error).
void accept_until_shutdown(int lfd, const std::atomic<bool> &stop)
{
	while (!stop.load(std::memory_order_relaxed)) {
		int c = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
		if (c >= 0)
			close(c);
		else if (errno != EINTR && errno != ECONNABORTED)
			break;  // shutdown() of the listener, at the end
	}
}

// `listen ADDR`: serves until stdin reaches EOF (the script closes it or
// dies) or a signal ends the process.
int listen_main(const char *ip)
{
	sockaddr_in addr{};
	int lfd = listen_on(ip, addr);
	std::printf("port=%u\n", ntohs(addr.sin_port));
	std::fflush(stdout);
	std::atomic<bool> stop{false};
	std::thread acceptor([lfd, &stop] { accept_until_shutdown(lfd, stop); });
	char buf[256];
	while (read(STDIN_FILENO, buf, sizeof(buf)) > 0) {
	}
	stop.store(true);
	shutdown(lfd, SHUT_RDWR);
	acceptor.join();
	close(lfd);
	return 0;
}

// Per-operation latencies, in nanoseconds.
struct Latencies {
	std::vector<uint32_t> ns;
	double elapsed = 0;

	void print(const std::string &mode)
	{
		std::vector<uint32_t> v = ns;
		std::sort(v.begin(), v.end());
		auto pct = [&](double p) {
			if (v.empty())
				return 0.0;
			size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
			return v[std::min(i, v.size() - 1)] / 1000.0;
		};
		double sum = 0;
		for (uint32_t x : v)
			sum += x;
		std::printf("%s ops=%zu seconds=%.3f ops_per_sec=%.1f p50_us=%.2f p90_us=%.2f "
			    "p99_us=%.2f p999_us=%.2f max_us=%.2f mean_us=%.2f\n",
			    mode.c_str(), v.size(), elapsed, static_cast<double>(v.size()) / elapsed,
			    pct(0.50), pct(0.90), pct(0.99), pct(0.999), v.empty() ? 0.0 : v.back() / 1000.0,
			    v.empty() ? 0.0 : sum / static_cast<double>(v.size()) / 1000.0);
	}
};

uint64_t now_ns()
{
	timespec ts{};
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

// Times open(path) alone; closes the file untimed.
inline uint32_t timed_open(const char *path)
{
	uint64_t t0 = now_ns();
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	uint64_t t1 = now_ns();
	if (fd < 0) {
		std::fprintf(stderr, "corral_bench: open %s: %s\n", path, std::strerror(errno));
		std::exit(1);
	}
	close(fd);
	uint64_t d = t1 - t0;
	return d > 0xffffffffull ? 0xffffffffu : static_cast<uint32_t>(d);
}

Latencies open_lat(unsigned long n, const char *file)
{
	Latencies l;
	l.ns.reserve(n);
	const double start = now();
	for (unsigned long i = 0; i < n; ++i)
		l.ns.push_back(timed_open(file));
	l.elapsed = now() - start;
	return l;
}

std::string numbered(const std::string &dir, unsigned long i) { return dir + "/f" + std::to_string(i); }

Latencies open_distinct(unsigned long n, const std::string &dir)
{
	std::vector<std::string> paths;
	paths.reserve(n);
	for (unsigned long i = 0; i < n; ++i)
		paths.push_back(numbered(dir, i));
	Latencies l;
	l.ns.reserve(n);
	const double start = now();
	for (const auto &p : paths)
		l.ns.push_back(timed_open(p.c_str()));
	l.elapsed = now() - start;
	return l;
}

int mkfiles(unsigned long n, const std::string &dir)
{
	for (unsigned long i = 0; i < n; ++i) {
		std::string p = numbered(dir, i);
		int fd = open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0)
			die(p.c_str());
		fchmod(fd, 0644);  // whatever the umask
		close(fd);
	}
	return 0;
}

int stamp_main(bool idle)
{
	timespec ts{};
	clock_gettime(CLOCK_REALTIME, &ts);
	std::printf("stamp_us=%lld\n",
		    static_cast<long long>(ts.tv_sec) * 1000000ll + ts.tv_nsec / 1000);
	std::fflush(stdout);
	if (idle) {
		sigset_t none;
		sigemptyset(&none);
		sigsuspend(&none);  // until a signal ends us
	}
	return 0;
}

#endif  // !CORRAL_BENCH_POLICY

bool parse_count(const char *text, unsigned long &out)
{
	char *end = nullptr;
	errno = 0;
	out = std::strtoul(text, &end, 10);
	return end != text && *end == '\0' && errno == 0 && out > 0;
}



#ifndef CORRAL_BENCH_POLICY
bool parse_seconds(const char *text, double &out)
{
	char *end = nullptr;
	out = std::strtod(text, &end);
	return end != text && *end == '\0' && out > 0;
}
#endif

#ifdef CORRAL_BENCH_POLICY

// A callable's result that converts to whatever the resolver returns: the
// benchmark policies name no hosts, and none is looked up.
struct NoAddresses {
	template <typename T>
	operator T() const
	{
		return T{};
	}
};

std::optional<std::string> real_path(const std::string &path)
{
	char buf[PATH_MAX];
	if (!::realpath(path.c_str(), buf))
		return std::nullopt;
	return std::string(buf);
}

double ms_since(double start) { return (now() - start) * 1000.0; }

struct Pct {
	double p50 = 0, p99 = 0, max = 0;
};

Pct percentiles(std::vector<double> v)
{
	Pct p;
	if (v.empty())
		return p;
	std::sort(v.begin(), v.end());
	auto at = [&](double q) { return v[static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5)]; };
	p.p50 = at(0.50);
	p.p99 = at(0.99);
	p.max = v.back();
	return p;
}

int compile_main(const std::string &file, const std::string &home, const std::string &cwd,
		 const std::string &pathdir, unsigned long n)
{
	double t = now();
	corral::rules::LoadResult loaded = corral::rules::load_policy_file(file);
	const double load_ms = ms_since(t);
	if (!loaded.policy) {
		for (const auto &d : loaded.errors)
			std::fprintf(stderr, "%s\n", d.str().c_str());
		return 1;
	}
	const corral::rules::Policy &p = *loaded.policy;

	t = now();
	corral::rules::PathMatcher secrets(p.secrets, home);
	const double secrets_ms = ms_since(t);
	t = now();
	corral::rules::PathMatcher protect(p.protected_paths, home);
	const double protected_ms = ms_since(t);

	// FileGuard::build: every glob of an active rule expanded to existing files
	t = now();
	size_t found = 0;
	for (const auto *section : {&p.secrets, &p.protected_paths})
		for (const auto &rule : *section) {
			if (rule.mode == corral::rules::Mode::kOff)
				continue;
			for (const auto &g : rule.globs)
				found += corral::expand_glob(g, home, cwd, 100000).size();
		}
	const double identities_ms = ms_since(t);

	const std::vector<std::string> dirs = {"/usr/local/sbin", "/usr/local/bin", "/usr/sbin",
					       "/usr/bin", "/sbin", "/bin"};
	t = now();
	corral::ExecRuleMaps exec = corral::compile_exec_rules(p.exec, 1, real_path, dirs);
	const double exec_ms = ms_since(t);
	t = now();
	corral::EgressMaps egress = corral::compile_egress_rules(
		p.egress, 1, [](const std::string &) { return NoAddresses{}; }, {});
	const double egress_ms = ms_since(t);

	// What FileGuard::decide asks for a read of a file no rule names: the
	// secret set, then the protected set (may the allow be cached?).
	std::vector<std::string> paths;
	for (unsigned long i = 0; i < n; ++i)
		paths.push_back(pathdir + "/f" + std::to_string(i));
	auto pass = [&] {
		std::vector<double> us;
		us.reserve(paths.size());
		size_t hits = 0;
		for (const auto &path : paths) {
			double s = now();
			hits += secrets.match(path).rule != nullptr;
			hits += protect.match(path).rule != nullptr;
			us.push_back((now() - s) * 1e6);
		}
		if (hits)
			std::fprintf(stderr, "corral_bench: %zu of the probe paths match a rule\n", hits);
		return percentiles(us);
	};
	Pct cold = pass();
	Pct warm = pass();

	size_t globs = 0;
	for (const auto &r : p.secrets)
		globs += r.globs.size();
	std::printf("compile secret_globs=%zu exec_rules=%zu exec_names=%zu egress_rules=%zu "
		    "egress_prefixes=%zu load_ms=%.1f secrets_set_ms=%.1f protected_set_ms=%.1f "
		    "identities_ms=%.1f identities=%zu exec_compile_ms=%.1f egress_compile_ms=%.1f "
		    "match_cold_p50_us=%.2f match_cold_p99_us=%.2f match_cold_max_us=%.1f "
		    "match_warm_p50_us=%.2f match_warm_p99_us=%.2f\n",
		    globs, p.exec.size(), exec.names.size(), p.egress.size(), egress.prefixes.size(),
		    load_ms, secrets_ms, protected_ms, identities_ms, found, exec_ms, egress_ms, cold.p50,
		    cold.p99, cold.max, warm.p50, warm.p99);
	return 0;
}

#endif  // CORRAL_BENCH_POLICY

int usage(const char *argv0)
{
#ifdef CORRAL_BENCH_POLICY
	std::fprintf(stderr, "usage: %s compile POLICY HOME CWD PATHDIR N\n", argv0);
#else
	std::fprintf(stderr,
		     "usage: %s open-lat N FILE | open-distinct N DIR | mkfiles N DIR\n"
		     "       %s connect-to ADDR PORT SECONDS | listen ADDR | stamp [idle]\n",
		     argv0, argv0);
#endif
	return 2;
}

}  // namespace

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage(argv[0]);
	const std::string mode = argv[1];
#ifdef CORRAL_BENCH_POLICY
	unsigned long n = 0;
	if (mode != "compile" || argc != 7 || !parse_count(argv[6], n))
		return usage(argv[0]);
	try {
		return compile_main(argv[2], argv[3], argv[4], argv[5], n);
	} catch (const std::exception &e) {
		std::fprintf(stderr, "corral_bench: %s\n", e.what());
		return 1;
	}
#else
	if (mode == "stamp" && (argc == 2 || (argc == 3 && std::string(argv[2]) == "idle")))
		return stamp_main(argc == 3);
	if (mode == "listen" && argc == 3)
		return listen_main(argv[2]);
	if (mode == "mkfiles" || mode == "open-lat" || mode == "open-distinct") {
		unsigned long n = 0;
		if (argc != 4 || !parse_count(argv[2], n))
			return usage(argv[0]);
		if (mode == "mkfiles")
			return mkfiles(n, argv[3]);
		Latencies l = mode == "open-lat" ? open_lat(n, argv[3]) : open_distinct(n, argv[3]);
		l.print(mode);
		return 0;
	}
	if (mode == "connect-to" && argc == 5) {
		unsigned long port = 0;
		double seconds = 0, elapsed = 0;
		if (!parse_count(argv[3], port) || port > 65535 || !parse_seconds(argv[4], seconds))
			return usage(argv[0]);
		sockaddr_in addr{};
		addr.sin_family = AF_INET;
		addr.sin_port = htons(static_cast<uint16_t>(port));
		if (inet_pton(AF_INET, argv[2], &addr.sin_addr) != 1) {
			std::fprintf(stderr, "corral_bench: bad IPv4 address '%s'\n", argv[2]);
			return 2;
		}
		unsigned long long ops = connect_to_loop(addr, seconds, elapsed);
		std::printf("connect-to ops=%llu seconds=%.3f ops_per_sec=%.1f\n", ops, elapsed,
			    static_cast<double>(ops) / elapsed);
		return 0;
	}
	return usage(argv[0]);
#endif
}
