// The kernels benchmark executable: every bench/kernels/*.cc registers its own cases.
#include <benchmark/benchmark.h>

BENCHMARK_MAIN();
