// What a run of the tool has cost, over all its processes: a resumed run carries the
// earlier processes' totals in its checkpoint, so `train` and `search` report the
// whole run, not only its last process. Two clocks: wall seconds (what a user waits,
// a stopped or frozen process's pause included) and CPU seconds of all threads (the
// work itself, whatever share of the cores other processes leave it).
//   RunTime time;                             // counts from now
//   if (resume) time.resume(metadata, ckpt);  // adds the checkpoint's totals
//   time.add_to(metadata);                    // before writing a checkpoint
//   doc["time"] = time.to_json();             // {"seconds", "cpu_seconds", "processes"}
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <map>
#include <string>

namespace onnas::app {

// CPU seconds of this process so far (all its threads).
double cpu_seconds();

class RunTime {
 public:
  RunTime();
  // Adds a checkpoint's "seconds", "cpu_seconds" and "processes". A checkpoint written
  // before they were kept (2026-12-03) leaves the totals unknown: only this process's
  // own are then reported, and said to be so.
  void resume(const std::map<std::string, std::string>& metadata, const std::string& path);
  // The totals so far into a checkpoint's metadata (nothing when unknown).
  void add_to(std::map<std::string, std::string>& metadata) const;
  bool known() const { return known_; }
  double seconds() const;      // wall seconds of the run (of this process when !known())
  double cpu() const;          // CPU seconds, likewise
  int processes() const { return processes_; }
  // {"seconds", "cpu_seconds", "processes", "whole_run"}.
  nlohmann::json to_json() const;
  // "5m40s, 5m31s of CPU" / "..., over 3 processes" / "... (this process; the earlier
  // ones' were not recorded)".
  std::string describe() const;

 private:
  std::chrono::steady_clock::time_point wall0_;
  double cpu0_;
  double wall_before_ = 0, cpu_before_ = 0;
  int processes_ = 1;
  bool known_ = true;
};

}  // namespace onnas::app
