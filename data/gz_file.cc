#include "data/gz_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "runtime/error.h"

namespace onnas::data {

namespace {
constexpr unsigned kGzBufferBytes = 1u << 18;  // zlib's default 8 KB makes Fashion-MNIST ~2x slower
constexpr uint64_t kChunkBytes = 16u << 20;
}  // namespace

GzFile::GzFile(std::string path, std::string kind) : path_(std::move(path)), kind_(std::move(kind)) {
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) fail("cannot open {} file '{}': {}", kind_, path_, std::strerror(errno));
  if (S_ISDIR(st.st_mode)) fail("cannot open {} file '{}': it is a directory", kind_, path_);
  // The size of a device or pipe says nothing about its content (/dev/zero is "0 bytes"
  // and endless), and the size checks below rely on it.
  if (!S_ISREG(st.st_mode)) fail("cannot open {} file '{}': not a regular file", kind_, path_);
  size_ = uint64_t(st.st_size);
  gzFile f = gzopen(path_.c_str(), "rb");
  if (!f) fail("cannot open {} file '{}': {}", kind_, path_, errno ? std::strerror(errno) : "out of memory");
  gzbuffer(f, kGzBufferBytes);
  gz_ = f;
}

GzFile::~GzFile() {
  if (gz_) gzclose(static_cast<gzFile>(gz_));
}

bool GzFile::plain() const { return gzdirect(static_cast<gzFile>(gz_)) != 0; }

int64_t GzFile::read_some(void* out, uint64_t n) {
  auto* f = static_cast<gzFile>(gz_);
  // gzread takes an unsigned int count; larger requests are split.
  unsigned ask = unsigned(std::min<uint64_t>(n, 1u << 30));
  int got = gzread(f, out, ask);
  if (got < 0) {
    int err = errno, code = 0;
    std::string msg = gzerror(f, &code);
    if (code == Z_ERRNO) msg = std::strerror(err);
    // zlib prefixes its messages with the path, which our message already names.
    if (msg.starts_with(path_ + ": ")) msg.erase(0, path_.size() + 2);
    fail("{} file '{}': read failed after {} bytes: {}", kind_, path_, position_, msg);
  }
  // gzread reports a gzip stream cut short (even inside its 8-byte trailer) as a plain
  // end of file; only gzerror tells it apart from a complete one.
  if (got == 0) {
    int code = Z_OK;
    gzerror(f, &code);
    if (code == Z_BUF_ERROR)
      fail("{} file '{}' is truncated: its gzip stream ends early, after {} bytes of content", kind_, path_, position_);
  }
  position_ += uint64_t(got);
  return got;
}

uint64_t GzFile::read_up_to(void* out, uint64_t n) {
  auto* p = static_cast<uint8_t*>(out);
  uint64_t done = 0;
  while (done < n) {
    int64_t got = read_some(p + done, n - done);
    if (got == 0) break;
    done += uint64_t(got);
  }
  return done;
}

void GzFile::read_exact(void* out, uint64_t n, const char* what) {
  auto* p = static_cast<uint8_t*>(out);
  while (n > 0) {
    int64_t got = read_some(p, n);
    if (got == 0)
      fail("{} file '{}' is truncated: it ended after {} bytes while reading {} ({} more bytes expected)", kind_, path_,
           position_, what, n);
    p += got;
    n -= uint64_t(got);
  }
}

std::vector<uint8_t> GzFile::read_payload(uint64_t n, const char* what) {
  std::vector<uint8_t> bytes;
  // A plain file's size is known: refuse a header that disagrees before allocating.
  if (plain() && size_ - position_ != n) {
    const uint64_t have = size_ - position_;
    if (have < n)
      fail("{} file '{}' is truncated: it is {} bytes, but its header promises {} bytes ({} bytes missing from {})", kind_,
           path_, size_, position_ + n, n - have, what);
    fail("{} file '{}' has trailing bytes: it is {} bytes, but its header promises {} bytes ({} bytes too many)", kind_,
         path_, size_, position_ + n, have - n);
  }
  uint64_t done = 0;
  while (done < n) {
    uint64_t step = std::min(n - done, kChunkBytes);
    // Grow geometrically but never past n, so the vector ends exactly n bytes large
    // (a data set keeps it as its pixels: no slack).
    if (done + step > bytes.capacity())
      bytes.reserve(size_t(std::min(n, std::max<uint64_t>(2 * bytes.capacity(), done + step))));
    bytes.resize(size_t(done + step));
    read_exact(bytes.data() + done, step, what);
    done += step;
  }
  return bytes;
}

void GzFile::expect_end() {
  uint8_t probe[256];
  uint64_t at = position_;
  uint64_t extra = 0;
  // Count a little of the excess for the message, without reading a huge file to its end.
  for (int i = 0; i < 16; ++i) {
    int64_t got = read_some(probe, sizeof probe);
    if (got == 0) break;
    extra += uint64_t(got);
  }
  if (extra > 0)
    fail("{} file '{}' has trailing bytes: its content ends at byte {} but {}{} more bytes follow", kind_, path_, at,
         extra >= 16 * sizeof probe ? "at least " : "", extra);
}

}  // namespace onnas::data
