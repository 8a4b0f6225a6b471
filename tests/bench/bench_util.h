// What the benchmark workloads share: a monotonic clock, a timed loop, and
// dying with errno. Header-only; the workloads link nothing but libc.
#pragma once

#include <time.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace corral_bench {

inline double now()
{
	timespec ts{};
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Set by each program to its own name, for error messages.
inline const char *program = "corral_bench";

[[noreturn]] inline void die(const char *what)
{
	std::fprintf(stderr, "%s: %s: %s\n", program, what, std::strerror(errno));
	std::exit(1);
}

// Runs `op` until `seconds` have passed, looking at the clock every `check`
// iterations; returns the operation count and sets `elapsed`.
template <typename Op>
unsigned long long run_for(double seconds, unsigned check, double &elapsed, Op op)
{
	unsigned long long ops = 0;
	const double start = now();
	double t = start;
	do {
		for (unsigned i = 0; i < check; ++i)
			op();
		ops += check;
		t = now();
	} while (t - start < seconds);
	elapsed = t - start;
	return ops;
}

}  // namespace corral_bench
