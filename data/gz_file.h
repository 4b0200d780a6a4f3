// GzFile: reads a file that may or may not be gzip-compressed (one or more gzip
// members, as gzip(1) writes; anything else is read as it is), for the loaders in this
// folder. Reads are exact: a short read is an error naming the file, and the caller can
// ask whether bytes remain, so both a truncated file and trailing garbage are caught,
// compressed or not — including bytes after the last gzip member, which zlib's gzread
// silently ignores (so this inflates with zlib's stream API itself).
//
//   GzFile f(path, "IDX images");
//   uint8_t magic[4];
//   f.read_exact(magic, 4, "the magic number");
//   std::vector<uint8_t> pixels = f.read_payload(n_bytes, "the pixels");   // grows as data arrives
//   f.expect_end();
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/serialize/atomic_file.h"

namespace onnas::data {

class GzFile {
 public:
  GzFile(std::string path, std::string kind);
  ~GzFile();
  GzFile(const GzFile&) = delete;
  GzFile& operator=(const GzFile&) = delete;

  const std::string& path() const { return path_; }
  // True for a plain (uncompressed) file; then size() is its exact size on disk.
  bool plain() const;
  uint64_t size() const { return size_; }
  uint64_t position() const { return position_; }

  // Reads up to n bytes; fewer only at the end of the file.
  uint64_t read_up_to(void* out, uint64_t n);
  // Reads exactly n bytes or throws "... ended after X bytes while reading <what>".
  void read_exact(void* out, uint64_t n, const char* what);
  // Reads exactly n bytes into a vector that grows with the data actually read, so a
  // header that promises terabytes costs nothing until the bytes really exist. Only the
  // first `keep` bytes are kept: the rest is read through (so a short or long file is
  // still caught) into a small buffer, and memory follows what the caller uses.
  std::vector<uint8_t> read_payload(uint64_t n, const char* what, uint64_t keep = UINT64_MAX);
  // Throws if any byte remains after the expected content.
  void expect_end();

 private:
  int64_t read_some(void* out, uint64_t n);

  // Compressed input for inflate; false when it has nothing left to give.
  bool refill();

  std::string path_, kind_;
  InputFile file_;              // a regular file, or refused
  bool gzip_ = false;
  void* zs_ = nullptr;          // z_stream, kept opaque so zlib.h stays out of this header
  std::vector<uint8_t> in_;     // compressed bytes read ahead of inflate
  bool file_done_ = false;      // every byte of the file is in in_ or consumed
  bool stream_done_ = false;    // the last gzip member ended exactly at the end of the file
  uint64_t size_ = 0;           // on disk
  uint64_t position_ = 0;       // of the content (decompressed)
};

}  // namespace onnas::data
