// Atomic file writes: every file our tools write (checkpoints, meta cells, plans) goes
// through here, so a crash or a full disk never leaves a half-written file under the
// real name — readers see the old file or the complete new one, nothing in between.
//
//   write_file_atomic("ckpt/model.safetensors", bytes);      // all at once
//
//   AtomicFile f("ckpt/model.safetensors");                  // or streamed, without
//   f.write(header);                                          // building one big buffer
//   for (...) f.write(tensor_bytes);
//   f.commit();            // fsync, rename over the real name, fsync the directory
//   // destroyed without commit(): the temporary is removed, the real name untouched
//
// The temporary lives in the destination's directory (rename is atomic only within one
// filesystem) and is named "<name>.tmp.<pid>.<n>", so concurrent writers never collide.
// Errors throw onnas::Error naming the path and the errno text.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace onnas {

class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  ~AtomicFile();  // removes the temporary unless commit() succeeded
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(std::span<const std::byte> bytes);
  void write(std::string_view text);
  // Makes the written bytes durable under the real name. Call once.
  void commit();

  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return temp_path_; }

 private:
  [[noreturn]] void fail_and_discard(const std::string& what, int err);
  void discard() noexcept;

  std::string path_;
  std::string temp_path_;
  int fd_ = -1;
  bool committed_ = false;
};

void write_file_atomic(const std::string& path, std::span<const std::byte> bytes);
void write_file_atomic(const std::string& path, std::string_view text);

// Reads a whole file; throws onnas::Error naming the path and the errno text.
std::vector<std::byte> read_file_bytes(const std::string& path);

}  // namespace onnas
