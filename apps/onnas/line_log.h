// A log of JSON lines that grows on disk, not in memory (the tool's room: apps/onnas).
// A search writes a record a step; held in memory until its end, and copied into every
// checkpoint's metadata, such a log grew with the run and outside any plan. Here the
// records wait only until the next checkpoint: flush() appends them to the file and
// syncs it, and the checkpoint then records the file's length. A resumed run cuts the
// file back to that length, so whatever a killed run appended after its last
// checkpoint goes, and the finished log is the one an uninterrupted run writes.
//
//   LineLog log(out.file("search_log.jsonl"));
//   log.start();                                   // a new run: the file emptied
//   log.resume(metadata_integer(md, "log_bytes"));  // or: cut back to a checkpoint
//   log.add(record.dump());                         // a line, held
//   md["log_bytes"] = std::to_string(log.flush());  // appended and synced, before the checkpoint
//
// Unlike the tool's other outputs the file is written in place, not atomically: a
// reader sees whole lines of the run so far, and at most the beginning of a line while
// flush() runs. Errors throw onnas::Error naming the path.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace onnas::app {

class LineLog {
 public:
  explicit LineLog(std::string path) : path_(std::move(path)) {}
  // A new run: the file is created empty (an old one is truncated).
  void start();
  // Continues a run whose checkpoint recorded `bytes` of log: the file must hold at
  // least that many, and is cut back to them.
  void resume(uint64_t bytes);
  // Continues a run from a checkpoint that held its log itself (written before
  // 2026-12-03): the file is replaced by `text`.
  void resume_from(std::string_view text);
  // A line (without its newline), held until flush().
  void add(std::string_view line);
  // Appends the held lines, syncs the file and returns its length.
  uint64_t flush();
  const std::string& path() const { return path_; }
  // The bytes held in memory (the lines since the last flush).
  size_t held_bytes() const { return held_.capacity(); }

 private:
  void write_at_end(std::string_view text);

  std::string path_;
  std::string held_;
  uint64_t bytes_ = 0;  // the file's length after the last flush
};

}  // namespace onnas::app
