#include "data/gz_file.h"

#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "runtime/error.h"
#include "runtime/serialize/atomic_file.h"

namespace onnas::data {

namespace {
constexpr size_t kInputBytes = size_t(1) << 18;  // compressed bytes per read (zlib's default 8 KB is ~2x slower)
constexpr uint64_t kChunkBytes = 16u << 20;
constexpr size_t kSkipBytes = size_t(1) << 16;
constexpr uint64_t kDeflateMaxRatio = 1032;

z_stream& stream_of(void* p) { return *static_cast<z_stream*>(p); }
bool gzip_magic(const uint8_t* p) { return p[0] == 0x1f && p[1] == 0x8b; }
}  // namespace

GzFile::GzFile(std::string path, std::string kind)
    : path_(std::move(path)), kind_(std::move(kind)), file_(path_, kind_ + " file") {
  size_ = file_.size();
  uint8_t magic[2] = {0, 0};
  gzip_ = ::pread(file_.fd(), magic, 2, 0) == 2 && gzip_magic(magic);
  if (!gzip_) return;
  auto* z = new z_stream{};
  if (inflateInit2(z, 16 + MAX_WBITS) != Z_OK) {  // 16: gzip members only
    delete z;
    fail("cannot open {} file '{}': zlib could not start (out of memory?)", kind_, path_);
  }
  zs_ = z;
}

GzFile::~GzFile() {
  if (zs_) {
    inflateEnd(&stream_of(zs_));
    delete &stream_of(zs_);
  }
}

bool GzFile::plain() const { return !gzip_; }

bool GzFile::refill() {
  z_stream& z = stream_of(zs_);
  size_t have = z.avail_in;
  in_.resize(kInputBytes);
  if (have > 0 && z.next_in != in_.data()) std::memmove(in_.data(), z.next_in, have);
  while (!file_done_ && have < in_.size()) {
    const ssize_t n = ::read(file_.fd(), in_.data() + have, in_.size() - have);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("{} file '{}': read failed after {} bytes: {}", kind_, path_, position_, std::strerror(errno));
    }
    if (n == 0) file_done_ = true;
    have += size_t(n);
    break;
  }
  z.next_in = in_.data();
  z.avail_in = uInt(have);
  return have > 0;
}

int64_t GzFile::read_some(void* out, uint64_t n) {
  const unsigned ask = unsigned(std::min<uint64_t>(n, 1u << 30));
  if (!gzip_) {
    for (;;) {
      const ssize_t got = ::read(file_.fd(), out, ask);
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) fail("{} file '{}': read failed after {} bytes: {}", kind_, path_, position_, std::strerror(errno));
      position_ += uint64_t(got);
      return got;
    }
  }
  if (stream_done_ || ask == 0) return 0;
  z_stream& z = stream_of(zs_);
  z.next_out = static_cast<Bytef*>(out);
  z.avail_out = ask;
  while (z.avail_out == ask && !stream_done_) {
    if (z.avail_in == 0 && !refill())
      fail("{} file '{}' is truncated: its gzip stream ends early, after {} bytes of content", kind_, path_, position_);
    const int rc = inflate(&z, Z_NO_FLUSH);
    if (rc == Z_STREAM_END) {
      // Another gzip member, the end of the file, or bytes that are neither.
      if (z.avail_in < 2 && !file_done_) refill();
      if (z.avail_in == 0) {
        stream_done_ = true;
      } else if (z.avail_in >= 2 && gzip_magic(z.next_in)) {
        inflateReset(&z);
      } else {
        const uint64_t at = uint64_t(::lseek(file_.fd(), 0, SEEK_CUR)) - z.avail_in;
        fail("{} file '{}' has trailing bytes: its gzip stream ends at byte {} of {}, and what follows is not another "
             "gzip member",
             kind_, path_, at, size_);
      }
    } else if (rc != Z_OK && !(rc == Z_BUF_ERROR && z.avail_in == 0)) {
      fail("{} file '{}': read failed after {} bytes: {}", kind_, path_, position_,
           z.msg ? z.msg : rc == Z_MEM_ERROR ? "out of memory" : "corrupt gzip data");
    }
  }
  const unsigned got = ask - z.avail_out;
  position_ += got;
  return int64_t(got);
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

std::vector<uint8_t> GzFile::read_payload(uint64_t n, const char* what, uint64_t keep) {
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
  const uint64_t kept = std::min(n, keep);
  // Reserved once, exactly, when the file can hold it: a plain file's size is proven
  // above, and deflate expands at most 1032:1, so a gzip'ed file of S bytes holds at
  // most 1032 S. (Growing by doubling instead held the old and the new block at once:
  // Fashion-MNIST's 47 MB of training images peaked at 79 MB while loading.)
  bytes.reserve(size_t(std::min(kept, plain() ? n : size_ * kDeflateMaxRatio + kChunkBytes)));
  uint64_t done = 0;
  while (done < kept) {
    uint64_t step = std::min(kept - done, kChunkBytes);
    // Grow geometrically but never past what is kept, so the vector ends exactly that
    // large (a data set keeps it as its pixels: no slack).
    if (done + step > bytes.capacity())
      bytes.reserve(size_t(std::min(kept, std::max<uint64_t>(2 * bytes.capacity(), done + step))));
    bytes.resize(size_t(done + step));
    read_exact(bytes.data() + done, step, what);
    done += step;
  }
  if (plain()) {  // its size is already proven: jump over the rest
    if (::lseek(file_.fd(), off_t(n - kept), SEEK_CUR) < 0)
      fail("{} file '{}': seek failed after {} bytes: {}", kind_, path_, position_, std::strerror(errno));
    position_ += n - kept;
    return bytes;
  }
  std::vector<uint8_t> scratch(std::min<uint64_t>(n - kept, kSkipBytes));
  for (uint64_t left = n - kept; left > 0;) {
    const uint64_t step = std::min<uint64_t>(left, scratch.size());
    read_exact(scratch.data(), step, what);
    left -= step;
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
