// apps/: the tool's memory report (memory_report.h). Reads /proc/self; Linux only, as
// the tool is.
#include "apps/onnas/memory_report.h"

#include <fmt/format.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include "apps/onnas/common.h"
#include "runtime/heap.h"
#include "runtime/param_store.h"
#include "runtime/threading.h"

namespace onnas::app {
namespace {

// A "Name:   1234 kB" line of /proc/self/status, in bytes; 0 when absent.
size_t status_kib(const char* name) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const std::string key = std::string(name) + ":";
  while (std::getline(in, line))
    if (line.compare(0, key.size(), key) == 0) return size_t(std::stoull(line.substr(key.size()))) * 1024;
  return 0;
}

// Bytes of executable file mappings (code of the program and its libraries) that are
// not resident now: /proc/self/smaps, per mapping Size - Rss where the permissions hold x.
size_t code_not_resident_bytes() {
  std::ifstream in("/proc/self/smaps");
  std::string line;
  bool exec = false;
  size_t size = 0, total = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    if (std::isxdigit(static_cast<unsigned char>(line[0])) && line.find('-') != std::string::npos &&
        line.find(':') > line.find(' ')) {
      // "start-end perms offset dev inode path": a mapping's header.
      std::istringstream h(line);
      std::string range, perms, offset, dev, inode, path;
      h >> range >> perms >> offset >> dev >> inode >> path;
      exec = perms.size() > 2 && perms[2] == 'x' && !path.empty() && path[0] == '/';
      continue;
    }
    if (!exec) continue;
    if (line.compare(0, 5, "Size:") == 0) size = size_t(std::stoull(line.substr(5))) * 1024;
    if (line.compare(0, 4, "Rss:") == 0) {
      const size_t rss = size_t(std::stoull(line.substr(4))) * 1024;
      total += size > rss ? size - rss : 0;
    }
  }
  return total;
}

std::atomic<size_t> g_overhead{0};

}  // namespace

size_t current_rss_bytes() { return status_kib("VmRSS"); }
size_t peak_rss_bytes() { return status_kib("VmHWM"); }

void measure_fixed_overhead() {
  if (g_overhead.load() != 0) return;
  // Start every worker of the pool (their stacks count), each on a chunk of its own.
  std::atomic<int> busy{0};
  parallel_for(0, 64, 1, [&](int64_t, int64_t) {
    busy.fetch_add(1);
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  });
  g_overhead = current_rss_bytes() + code_not_resident_bytes();
}

size_t fixed_overhead_bytes() { return g_overhead.load(); }

void MemoryReport::plan(std::string name, size_t bytes) { plan_.emplace_back(std::move(name), bytes); }
void MemoryReport::plan_params(const ParamStore& params, const std::string& prefix) {
  const std::pair<ParamKind, const char*> kinds[] = {{ParamKind::weight, "weights"},
                                                     {ParamKind::arch, "alpha/beta"},
                                                     {ParamKind::grad, "gradients"},
                                                     {ParamKind::state, "optimizer state"},
                                                     {ParamKind::buffer, "buffers"}};
  for (const auto& [kind, name] : kinds)
    if (const size_t b = params.bytes(kind)) plan(prefix + name, b);
}

void MemoryReport::data(std::string name, size_t bytes) { data_.emplace_back(std::move(name), bytes); }

size_t MemoryReport::add_bookkeeping() {
  const size_t held = dynamic_memory_bytes(), named = plan_bytes() + data_bytes();
  const size_t rest = held > named ? held - named : 0;
  if (rest) plan("bookkeeping (measured once set up: names, samplers, the allocator's)", rest);
  return rest;
}

size_t MemoryReport::plan_bytes() const {
  size_t s = 0;
  for (const auto& p : plan_) s += p.second;
  return s;
}

size_t MemoryReport::data_bytes() const {
  size_t s = 0;
  for (const auto& p : data_) s += p.second;
  return s;
}

size_t MemoryReport::bound_bytes() const { return plan_bytes() + data_bytes() + fixed_overhead_bytes(); }

std::string MemoryReport::describe() const {
  auto parts = [](const std::vector<std::pair<std::string, size_t>>& v) {
    std::string s;
    for (const auto& [name, bytes] : v) {
      if (!s.empty()) s += ", ";
      s += name + " " + format_bytes(double(bytes));
    }
    return s;
  };
  return fmt::format("{} memory: plan {} ({}) + data {} ({}) + fixed overhead {} = {}", what_,
                     format_bytes(double(plan_bytes())), parts(plan_), format_bytes(double(data_bytes())),
                     data_.empty() ? std::string("none") : parts(data_), format_bytes(double(fixed_overhead_bytes())),
                     format_bytes(double(bound_bytes())));
}

void MemoryReport::print_plan() const { std::fprintf(stderr, "%s\n", describe().c_str()); }

bool MemoryReport::print_peak() const {
  const size_t peak = peak_rss_bytes(), bound = bound_bytes();
  const double ratio = bound ? double(peak) / double(bound) : 0.0;
  std::fprintf(stderr, "%s peak RSS %s of %s planned (plan + data + fixed overhead): %.2fx\n", what_.c_str(),
               format_bytes(double(peak)).c_str(), format_bytes(double(bound)).c_str(), ratio);
  if (ratio > 1.10) {
    std::fprintf(stderr,
                 "onnas: warning: the peak RSS is %.0f%% above the plan + data + fixed overhead; memory the plan "
                 "does not account for was used\n",
                 (ratio - 1.0) * 100.0);
    return false;
  }
  return true;
}

nlohmann::json MemoryReport::to_json() const {
  nlohmann::json plan = nlohmann::json::object(), data = nlohmann::json::object();
  for (const auto& [name, bytes] : plan_) plan[name] = bytes;
  for (const auto& [name, bytes] : data_) data[name] = bytes;
  const size_t peak = peak_rss_bytes();
  return {{"plan_bytes", plan_bytes()},          {"plan", plan},
          {"data_bytes", data_bytes()},          {"data", data},
          {"overhead_bytes", fixed_overhead_bytes()}, {"bound_bytes", bound_bytes()},
          {"peak_rss_bytes", peak},              {"within_bound", double(peak) <= 1.10 * double(bound_bytes())}};
}

}  // namespace onnas::app
