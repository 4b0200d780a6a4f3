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
// filesystem) and is named ".<name>.tmp.<pid>.<n>", so concurrent writers never collide
// and a temporary left by a killed process is recognised: writing the same name again
// removes those whose process no longer exists.
//
// What the destination already is decides how it is written:
//   absent or a regular file    a temporary, fsync, rename over it (the rule above)
//   a character device or FIFO  written in place, as a shell redirection would
//                                (/dev/null, /dev/stdout on a terminal or a pipe)
//   a symbolic link              to a device or FIFO: written through; to anything else
//                                refused (the rename would replace the link, not its
//                                target: give the target's path)
//   a directory, block device,   refused
//   socket
// Errors throw onnas::Error naming the path and the errno text.
#pragma once

#include <cstddef>
#include <cstdint>
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
  const std::string& temp_path() const { return temp_path_; }  // empty when written in place

 private:
  [[noreturn]] void fail_and_discard(const std::string& what, int err);
  void discard() noexcept;

  std::string path_;
  std::string temp_path_;  // empty when written in place (a device or FIFO)
  int fd_ = -1;
  bool committed_ = false;
};

// Test hook, for killing a writer at the worst moment (tests/cli/kill_resume.sh, through
// the tool's ONNAS_TEST_KILL_BEFORE_RENAME): called by every commit() of a regular file
// after its temporary is synced, just before the rename. nullptr removes it.
void set_before_rename_hook(void (*hook)(const std::string& path));

void write_file_atomic(const std::string& path, std::span<const std::byte> bytes);
void write_file_atomic(const std::string& path, std::string_view text);

// A regular file opened to read. Anything else is refused, naming `what` and the
// path, without blocking: a FIFO would wait for a writer forever, a device never ends,
// and neither has a size to check a header against.
//
//   InputFile f(path, "genotype file");   // f.fd(), f.size()
class InputFile {
 public:
  InputFile(const std::string& path, std::string_view what);
  ~InputFile();
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;
  int fd() const { return fd_; }
  uint64_t size() const { return size_; }

 private:
  int fd_ = -1;
  uint64_t size_ = 0;
};

// The whole text of a regular file of at most max_bytes (e.g. "genotype file").
// Throws onnas::Error naming `what`, the path and the problem.
std::string read_text_file(const std::string& path, std::string_view what, size_t max_bytes);
// Reads a whole regular file; throws onnas::Error naming the path and the errno text.
std::vector<std::byte> read_file_bytes(const std::string& path);

}  // namespace onnas
