#include "apps/onnas/output.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <vector>

#include "apps/onnas/common.h"
#include "apps/onnas/memory_report.h"
#include "runtime/error.h"
#include "runtime/serialize/json.h"

namespace onnas::app {

void Output::add(CLI::App& cmd) {
  cmd.add_flag("--json", json_,
               "Print one JSON document on stdout (results, output paths, memory, timings); human text goes to stderr");
}

void Output::document(nlohmann::json doc) const {
  if (!json_) return;
  doc["command"] = command_;
  if (!doc.contains("memory")) doc["memory"] = {{"peak_rss_bytes", peak_rss_bytes()}};
  std::fflush(stderr);
  std::printf("%s\n", doc.dump().c_str());
  std::fflush(stdout);
}

void OutDir::add(CLI::App& cmd, std::string default_path, const std::string& what) {
  path = std::move(default_path);
  cmd.add_option("-o,--out", path, what);
  cmd.add_flag("--overwrite", overwrite, "Write into an --out that already holds files (replacing ours)");
}

void add_overwrite_flag(CLI::App& cmd, bool& overwrite) {
  cmd.add_flag("--overwrite", overwrite, "Replace an existing output file");
}

void OutDir::create() const { make_out_dir(path); }

void OutDir::check(bool resume, const std::string& checkpoint) const {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (resume) {
    const std::string ckpt = file(checkpoint);
    if (!fs::exists(ckpt, ec))
      fail("--resume: no checkpoint at {} (nothing to continue; run without --resume to start)", ckpt);
  } else if (fs::is_directory(path, ec)) {
    std::vector<std::string> held;
    for (const auto& entry : fs::directory_iterator(path, ec)) {
      const std::string name = entry.path().filename().string();
      if (name != ".onnas.lock") held.push_back(name);
    }
    std::sort(held.begin(), held.end());
    if (!held.empty() && !overwrite)
      fail("--out '{}' already holds {} ({}{}); pass --overwrite to write over it, --resume to continue its run, or "
           "choose another folder",
           path, held.size() == 1 ? "a file" : fmt::format("{} files", held.size()), held[0],
           held.size() > 1 ? ", ..." : "");
  } else if (fs::exists(path, ec)) {
    fail("--out '{}' exists and is not a folder", path);
  } else {
    // It will be created: its nearest existing parent must take new folders.
    fs::path parent = fs::absolute(fs::path(path), ec).parent_path();
    while (!parent.empty() && !fs::exists(parent, ec) && parent != parent.parent_path()) parent = parent.parent_path();
    if (!fs::is_directory(parent, ec)) fail("--out '{}': '{}' is not a folder", path, parent.string());
    if (::access(parent.c_str(), W_OK | X_OK) != 0)
      fail("--out '{}': cannot create it in '{}': {}", path, parent.string(), std::strerror(errno));
  }
}

void check_out_file(const std::string& path, std::string_view flag, bool overwrite) {
  if (path.empty()) return;
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (S_ISLNK(st.st_mode)) {
      struct stat target {};
      if (::stat(path.c_str(), &target) != 0)
        fail("{} '{}' is a symbolic link to nothing; give the path to write", flag, path);
      if (S_ISCHR(target.st_mode) || S_ISFIFO(target.st_mode)) return;  // written through
      fail("{} '{}' is a symbolic link; give its target's path (writing replaces the file, not the link)", flag, path);
    }
    if (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode)) return;  // written in place
    if (S_ISDIR(st.st_mode)) fail("{} '{}' is a folder; give a file name", flag, path);
    if (!S_ISREG(st.st_mode)) fail("{} '{}' is neither a regular file, a character device nor a FIFO", flag, path);
    if (st.st_size > 0 && !overwrite)
      fail("{} '{}' already exists; pass --overwrite to replace it, or choose another name", flag, path);
  } else if (errno != ENOENT) {
    fail("{} '{}': {}", flag, path, std::strerror(errno));
  }
  // The file is written as a temporary beside it, then renamed: its folder must take new files.
  std::string folder = std::filesystem::path(path).parent_path().string();
  if (folder.empty()) folder = ".";
  struct stat dir {};
  if (::stat(folder.c_str(), &dir) != 0 || !S_ISDIR(dir.st_mode))
    fail("{} '{}': the folder '{}' does not exist", flag, path, folder);
  if (::access(folder.c_str(), W_OK | X_OK) != 0)
    fail("{} '{}': cannot write in the folder '{}': {}", flag, path, folder, std::strerror(errno));
}

namespace {

// The flag that sets a settings key, for messages ("w_lr" -> "--lr").
std::string flag_of(const std::string& key) {
  static const std::map<std::string, std::string> kFlags = {
      {"w_lr", "--lr"},           {"a_lr", "--arch-lr"},          {"inner_lr", "--lr"},
      {"a_lr_schedule", "--arch-lr-schedule"},
      {"w_weight_decay", "--weight-decay"}, {"inner_weight_decay", "--weight-decay"},
      {"inner_optimizer", "--optimizer"}, {"lr_weights", "--meta-lr"}, {"lr_arch", "--meta-arch-lr"},
      {"data", "--data-format"},  {"data_path", "--data"},        {"mode", "--mode, --sbs, --k-grad, --split"},
      {"warmup_steps", "--warmup-epochs"}, {"space.channels", "-C"}, {"space.in_channels", "the data's channels"},
      {"space.height", "the data's image size"}, {"space.width", "the data's image size"},
      {"space.classes", "the data's classes"}, {"space.stem_multiplier", "the stem multiplier"}};
  auto it = kFlags.find(key);
  if (it != kFlags.end()) return it->second;
  std::string flag = key.substr(key.rfind('.') + 1);
  std::replace(flag.begin(), flag.end(), '_', '-');
  return "--" + flag;
}

std::string short_value(const nlohmann::json& v) {
  if (v.is_null()) return "(absent)";
  std::string s = v.dump();
  return s.size() > 80 ? s.substr(0, 77) + "..." : s;
}

void diff_settings(const nlohmann::json& stored, const nlohmann::json& current, const std::string& prefix,
                   std::initializer_list<std::string_view> extendable, std::vector<std::string>& out) {
  std::vector<std::string> keys;
  for (const auto& [k, v] : stored.items()) keys.push_back(k);
  for (const auto& [k, v] : current.items())
    if (!stored.contains(k)) keys.push_back(k);
  for (const std::string& k : keys) {
    const nlohmann::json a = stored.contains(k) ? stored[k] : nlohmann::json();
    const nlohmann::json b = current.contains(k) ? current[k] : nlohmann::json();
    if (a == b) continue;
    const std::string key = prefix + k;
    if (a.is_object() && b.is_object()) {
      diff_settings(a, b, key + ".", {}, out);
      continue;
    }
    const bool may_grow = std::find(extendable.begin(), extendable.end(), key) != extendable.end();
    if (may_grow && a.is_number_integer() && b.is_number_integer() && b.get<int64_t>() >= a.get<int64_t>()) continue;
    out.push_back(fmt::format("{} ({}) is {} there, {} now{}", key, flag_of(key), short_value(a), short_value(b),
                              may_grow ? " (it may only grow)" : ""));
  }
}

}  // namespace

std::vector<std::string> settings_differences(const nlohmann::json& there, const nlohmann::json& here,
                                              std::initializer_list<std::string_view> extendable) {
  std::vector<std::string> out;
  diff_settings(there, here, "", extendable, out);
  return out;
}

nlohmann::json check_resume_settings(const std::string& checkpoint, const std::string& stored,
                                     const nlohmann::json& current,
                                     std::initializer_list<std::string_view> extendable) {
  // {"genotype": {"normal": [[{"op": ..., "input": ...}]]}}: five levels, one to spare.
  const nlohmann::json s = parse_json(stored, checkpoint + ": the run's settings", {.max_depth = 6, .max_array = 4096});
  if (!s.is_object()) fail("--resume: {}: the run's settings are not a JSON object", checkpoint);
  const std::vector<std::string> differ = settings_differences(s, current, extendable);
  if (!differ.empty()) {
    std::string list;
    for (const std::string& d : differ) list += (list.empty() ? "" : "; ") + d;
    fail("--resume: {} was written by a run with other settings: {}", checkpoint, list);
  }
  return s;
}

}  // namespace onnas::app
