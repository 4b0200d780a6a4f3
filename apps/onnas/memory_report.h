// A run's memory, said before it runs and held against the process afterwards: the
// plan (named parts: arena, weights, gradients, optimizer state, program tables), the
// data it holds, and the fixed overhead of the process (code, libraries, thread
// stacks), measured at start-up. After the run, the peak RSS of the process is
// printed beside their sum, with a warning when it exceeds the sum by more than 10%.
// Every subcommand that runs programs makes one MemoryReport.
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <string>
#include <vector>

namespace onnas {
class ParamStore;
}

namespace onnas::app {

// The process's resident set now, and its peak so far (VmHWM, as ru_maxrss).
size_t current_rss_bytes();
size_t peak_rss_bytes();

// The fixed overhead: the resident set once the thread pool is up and before any data
// or plan exists, plus the executable code of the program and its libraries that is
// not resident yet (it may be paged in later). Measured once, by
// measure_fixed_overhead(), which main() calls before parsing; 0 before that.
void measure_fixed_overhead();
size_t fixed_overhead_bytes();

// What a set-up holds beyond the parts a budget's choice sees: the bookkeeping
// (parameter names, samplers, gates, step attributes, the allocator's: 1.7-2.8 MiB in
// every configuration measured on 2026-12-01, C=4 to 16, since it follows the number
// of nodes, not the widths) and small tables (a query evaluation's: under 1 MiB). A
// choice under --memory-budget reserves it: a set-up that does not fit would itself
// break the bound (compiling the step is the run's peak until the arena is written).
constexpr size_t kSetUpReserveBytes = size_t(7) << 19;  // 3.5 MiB
// A meta step (meta-train) allocates small blocks beyond its plan: the meta update's
// and the cell fold's temporaries, in the heap of whichever thread runs them. Their
// resident peak is not known before the first step; measured on Fashion-MNIST
// (2026-12-01) at 0.3-0.9 MiB above plan + data + overhead, so 1 MiB is
// planned for it (a line of the plan, inside the budget).
constexpr size_t kMetaStepHeapBytes = size_t(1) << 20;  // 1 MiB

class MemoryReport {
 public:
  explicit MemoryReport(std::string what) : what_(std::move(what)) {}

  // A part of the plan (bytes the step programs and their state hold).
  void plan(std::string name, size_t bytes);
  // The store's memory by kind: weights, architecture, gradients, optimizer state,
  // buffers (each part only when it holds bytes). Gradients held elsewhere (a search's
  // gradient block) are the caller's part.
  void plan_params(const ParamStore& params, const std::string& prefix = "");
  // A part of the data (images, labels, batch buffers).
  void data(std::string name, size_t bytes);
  // Once set up, before the run: the memory the program holds beyond the parts named so
  // far (runtime/heap.h dynamic_memory_bytes(): names, samplers, gates, the allocator's
  // own) becomes a part of the plan, "bookkeeping", so that the bound holds what the
  // process holds; memory that appears later still shows as peak RSS above the bound.
  // Returns those bytes.
  size_t add_bookkeeping();

  size_t plan_bytes() const;
  size_t data_bytes() const;
  // plan + data + fixed overhead: what the process's peak RSS must keep to.
  size_t bound_bytes() const;

  // "memory: plan 47.8 MiB (arena 21.3 MiB, ...) + data 2.1 MiB + overhead 7.9 MiB = 57.8 MiB"
  std::string describe() const;
  // Prints describe() on stderr, before the run.
  void print_plan() const;
  // Prints the peak RSS beside the bound on stderr, and a warning when it is more than
  // 10% above it. Returns whether it kept to the bound (within 10%).
  bool print_peak() const;
  // {"plan_bytes", "plan": {name: bytes}, "data_bytes", "data": {...},
  //  "overhead_bytes", "bound_bytes", "peak_rss_bytes", "within_bound"}
  nlohmann::json to_json() const;

 private:
  std::string what_;
  std::vector<std::pair<std::string, size_t>> plan_, data_;
};

}  // namespace onnas::app
