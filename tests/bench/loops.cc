// corral_bench_loops MODE SECONDS
//
// The workloads of the overhead benchmark (scripts/bench.sh). Each runs one
// operation in a loop for SECONDS of wall clock and prints
//
//   MODE ops=N seconds=S ops_per_sec=R
//
//   open     open("/etc/hostname", O_RDONLY) + close
//   exec     fork + execve("/bin/true") + waitpid
//   connect  socket + connect + close to a listener of our own on 127.0.0.1
//            (an ephemeral port; a thread accepts and closes)
//
// Only libc and libstdc++. Exits 1 when an operation fails, 2 on bad usage.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

extern char **environ;

#include "bench_util.h"

using namespace corral_bench;

namespace {

unsigned long long open_loop(double seconds, double &elapsed)
{
	return run_for(seconds, 256, elapsed, [] {
		int fd = open("/etc/hostname", O_RDONLY);
		if (fd < 0)
			die("open /etc/hostname");
		close(fd);
	});
}

unsigned long long exec_loop(double seconds, double &elapsed)
{
	static char arg0[] = "true";
	static char *const argv[] = {arg0, nullptr};
	// A fork+exec takes hundreds of microseconds: look at the clock often.
	return run_for(seconds, 4, elapsed, [] {
		pid_t pid = fork();
		if (pid < 0)
			die("fork");
		if (pid == 0) {
			execve("/bin/true", argv, environ);
			_exit(127);
		}
		int status = 0;
		while (waitpid(pid, &status, 0) < 0)
			if (errno != EINTR)
				die("waitpid");
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			std::fprintf(stderr, "corral_bench_loops: /bin/true ended with status %d\n", status);
			std::exit(1);
		}
	});
}

unsigned long long connect_loop(double seconds, double &elapsed)
{
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		die("socket (listener)");
	sockaddr_in addr{};
	addr.sin_family = AF_INET;
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	addr.sin_port = 0;
	if (bind(lfd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) < 0)
		die("bind 127.0.0.1:0");
	if (listen(lfd, 4096) < 0)
		die("listen");
	socklen_t len = sizeof(addr);
	if (getsockname(lfd, reinterpret_cast<sockaddr *>(&addr), &len) < 0)
		die("getsockname");

	std::atomic<bool> stop{false};
	std::thread acceptor([lfd, &stop] {
		while (!stop.load(std::memory_order_relaxed)) {
			int c = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
			if (c >= 0)
				close(c);
			else if (errno != EINTR && errno != ECONNABORTED)
				break;  // shutdown() of the listener, at the end
		}
	});

	// An abortive close (linger 0) leaves no TIME_WAIT behind, so tens of
	// thousands of connections a second do not run out of local ports.
	const linger abortive{1, 0};
	unsigned long long ops = run_for(seconds, 256, elapsed, [&] {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			die("socket");
		if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &abortive, sizeof(abortive)) < 0)
			die("setsockopt SO_LINGER");
		if (connect(fd, reinterpret_cast<const sockaddr *>(&addr), sizeof(addr)) < 0)
			die("connect 127.0.0.1");
		close(fd);
	});

	stop.store(true);
	shutdown(lfd, SHUT_RDWR);  // wakes the acceptor
	acceptor.join();
	close(lfd);
	return ops;
}

}  // namespace

int main(int argc, char **argv)
{
	program = "corral_bench_loops";
	if (argc != 3) {
		std::fprintf(stderr, "usage: %s open|exec|connect SECONDS\n", argv[0]);
		return 2;
	}
	const std::string mode = argv[1];
	char *end = nullptr;
	const double seconds = std::strtod(argv[2], &end);
	if (end == argv[2] || *end != '\0' || !(seconds > 0)) {
		std::fprintf(stderr, "corral_bench_loops: bad SECONDS '%s'\n", argv[2]);
		return 2;
	}

	double elapsed = 0;
	unsigned long long ops = 0;
	if (mode == "open")
		ops = open_loop(seconds, elapsed);
	else if (mode == "exec")
		ops = exec_loop(seconds, elapsed);
	else if (mode == "connect")
		ops = connect_loop(seconds, elapsed);
	else {
		std::fprintf(stderr, "corral_bench_loops: unknown mode '%s' (open|exec|connect)\n",
			     mode.c_str());
		return 2;
	}

	std::printf("%s ops=%llu seconds=%.3f ops_per_sec=%.1f\n", mode.c_str(), ops, elapsed,
		    static_cast<double>(ops) / elapsed);
	return 0;
}
