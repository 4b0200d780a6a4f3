#include "apps/onnas/run_time.h"

#include <time.h>

#include <fmt/format.h>

#include "apps/onnas/common.h"
#include "runtime/serialize/safetensors.h"

namespace onnas::app {

double cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

RunTime::RunTime() : wall0_(std::chrono::steady_clock::now()), cpu0_(cpu_seconds()) {}

void RunTime::resume(const std::map<std::string, std::string>& metadata, const std::string& path) {
  constexpr double kYear = 365.0 * 86400.0;  // beyond any run: a larger value is a corrupt file
  if (metadata.count("seconds") && metadata.count("cpu_seconds") && metadata.count("processes")) {
    wall_before_ = metadata_number(metadata, "seconds", path, 0, kYear);
    cpu_before_ = metadata_number(metadata, "cpu_seconds", path, 0, 1024 * kYear);
    processes_ = int(metadata_integer(metadata, "processes", path, 1, 1000000)) + 1;
  } else {
    known_ = false;
    processes_ = 2;  // at least
  }
}

double RunTime::seconds() const {
  return wall_before_ + std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0_).count();
}

double RunTime::cpu() const { return cpu_before_ + (cpu_seconds() - cpu0_); }

void RunTime::add_to(std::map<std::string, std::string>& metadata) const {
  if (!known_) return;
  metadata["seconds"] = fmt::format("{:.3f}", seconds());
  metadata["cpu_seconds"] = fmt::format("{:.3f}", cpu());
  metadata["processes"] = std::to_string(processes_);
}

nlohmann::json RunTime::to_json() const {
  return {{"seconds", seconds()}, {"cpu_seconds", cpu()}, {"processes", processes_}, {"whole_run", known_}};
}

std::string RunTime::describe() const {
  std::string s = fmt::format("{}, {} of CPU", format_duration(seconds()), format_duration(cpu()));
  if (!known_) return s + " (this process; the earlier ones' were not recorded)";
  if (processes_ > 1) s += fmt::format(", over {} processes", processes_);
  return s;
}

}  // namespace onnas::app
