// What a subcommand writes and where: its results (with --json, one JSON document on
// stdout and every human line on stderr; without, the result lines on stdout), its
// output paths (checked before any work: an existing non-empty --out is refused unless
// --resume or --overwrite), and the check that a --resume continues the same run.
//
//   Output out{"search"};
//   out.add(*cmd);                                  // --json
//   out.result("{}", genotype.str());               // stdout, or stderr under --json
//   out.document({{"genotype", ...}, {"memory", memory.to_json()}});  // stdout under --json
//
//   OutDir dir;                                     // --out FOLDER, --overwrite
//   dir.add(*cmd, "runs/search", "Output folder (genotype.json, ...)");
//   dir.check(resume, "checkpoint.safetensors");    // first thing in the run
//   ...                                             // read the inputs
//   dir.create();                                   // and lock it, before the work
#pragma once

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

namespace onnas::app {

class Output {
 public:
  explicit Output(std::string command) : command_(std::move(command)) {}
  // --json.
  void add(CLI::App& cmd);
  bool json() const { return json_; }
  // Where human text goes: stdout, or stderr under --json.
  FILE* human() const { return json_ ? stderr : stdout; }
  // A result line on human().
  template <typename... Args>
  void result(fmt::format_string<Args...> format, Args&&... args) const {
    std::fprintf(human(), "%s\n", fmt::format(format, std::forward<Args>(args)...).c_str());
  }
  // Under --json, prints `doc` as the run's one JSON document on stdout, with
  // "command" and, unless the run set it, "memory": {"peak_rss_bytes": ...}. Nothing
  // without --json.
  void document(nlohmann::json doc) const;
  // For a subcommand that registers --json itself (plan: --json FILE is also the old
  // form of --out FILE).
  void set_json(bool on) { json_ = on; }

 private:
  std::string command_;
  bool json_ = false;
};

// --out FOLDER and --overwrite: a run's output folder.
struct OutDir {
  std::string path;
  bool overwrite = false;
  void add(CLI::App& cmd, std::string default_path, const std::string& what);
  // Before any work, without touching the disk: with `resume`, `checkpoint` (a file
  // name in the folder) must exist; otherwise the folder must be absent or empty unless
  // --overwrite, and creatable (its nearest existing parent a writable folder). Throws
  // onnas::Error.
  void check(bool resume = false, const std::string& checkpoint = "") const;
  // Creates the folder and locks it for this process (make_out_dir): once the inputs
  // are read, before the first step.
  void create() const;
  std::string file(const std::string& name) const { return path + "/" + name; }
};

// --overwrite alone, for subcommands whose outputs are files.
void add_overwrite_flag(CLI::App& cmd, bool& overwrite);

// Before any work: a file output (`flag` names it in messages) can be written — its
// folder exists and is writable, it is not a folder, not a link to a regular file —
// and, unless `overwrite`, it is not an existing non-empty regular file. Devices and
// FIFOs are written in place (runtime/serialize/atomic_file.h). Empty path: nothing.
void check_out_file(const std::string& path, std::string_view flag, bool overwrite);

// The settings that differ between `there` and `here` (objects of settings, nested
// objects compared key by key), one phrase each naming the flag and both values:
// "batch (--batch) is 32 there, 64 now". Keys in `extendable` may grow.
std::vector<std::string> settings_differences(const nlohmann::json& there, const nlohmann::json& here,
                                              std::initializer_list<std::string_view> extendable = {});

// --resume: the settings a checkpoint was written with (`stored`, its JSON text)
// against this run's. Keys in `extendable` (integers such as "epochs", "steps") may
// grow; any other difference is refused, naming each setting with both values.
// Returns the stored settings.
nlohmann::json check_resume_settings(const std::string& checkpoint, const std::string& stored,
                                     const nlohmann::json& current,
                                     std::initializer_list<std::string_view> extendable = {});

}  // namespace onnas::app
