#include "runtime/serialize/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "runtime/error.h"

namespace onnas {

namespace {

std::string errno_text(int err) { return std::strerror(err); }

std::string directory_of(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Distinguishes temporaries of several AtomicFiles alive in one process.
std::atomic<uint64_t> g_temp_counter{0};

}  // namespace

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  if (path_.empty()) fail("cannot write a file with an empty path");
  if (path_.back() == '/') fail("cannot write '{}': the path names a directory", path_);
  temp_path_ = fmt::format("{}.tmp.{}.{}", path_, ::getpid(), g_temp_counter.fetch_add(1));
  // 0666 so the process umask decides the permissions, as for any ordinary file.
  fd_ = ::open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd_ < 0) {
    int err = errno;
    fail("cannot write '{}': creating the temporary '{}' failed: {}", path_, temp_path_, errno_text(err));
  }
}

AtomicFile::~AtomicFile() {
  if (!committed_) discard();
}

void AtomicFile::discard() noexcept {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  if (!temp_path_.empty() && !committed_) ::unlink(temp_path_.c_str());
}

void AtomicFile::fail_and_discard(const std::string& what, int err) {
  discard();
  committed_ = true;  // nothing left to clean up in the destructor
  fail("cannot write '{}': {}: {}", path_, what, errno_text(err));
}

void AtomicFile::write(std::span<const std::byte> bytes) {
  if (fd_ < 0) fail("cannot write '{}': the file was already committed or discarded", path_);
  const std::byte* p = bytes.data();
  size_t left = bytes.size();
  while (left > 0) {
    ssize_t n = ::write(fd_, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail_and_discard("write failed", errno);
    }
    p += n;
    left -= size_t(n);
  }
}

void AtomicFile::write(std::string_view text) { write(std::as_bytes(std::span<const char>(text.data(), text.size()))); }

void AtomicFile::commit() {
  if (fd_ < 0) fail("cannot write '{}': the file was already committed or discarded", path_);
  // The data must be on disk before the rename makes it visible, or a crash could
  // leave the real name pointing at an empty or partial file.
  if (::fsync(fd_) != 0) fail_and_discard("fsync failed", errno);
  int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) fail_and_discard("close failed", errno);
  if (::rename(temp_path_.c_str(), path_.c_str()) != 0) fail_and_discard("rename of the temporary failed", errno);
  committed_ = true;
  // The rename itself lives in the directory; fsync it so the new name survives a crash.
  std::string dir = directory_of(path_);
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) fail("cannot write '{}': opening its directory '{}' to fsync failed: {}", path_, dir, errno_text(errno));
  int rc = ::fsync(dfd);
  int err = errno;
  ::close(dfd);
  // Some filesystems (and FUSE mounts) cannot fsync a directory; the file is already in place.
  if (rc != 0 && err != EINVAL && err != ENOTSUP)
    fail("cannot write '{}': fsync of its directory '{}' failed: {}", path_, dir, errno_text(err));
}

void write_file_atomic(const std::string& path, std::span<const std::byte> bytes) {
  AtomicFile f(path);
  f.write(bytes);
  f.commit();
}

void write_file_atomic(const std::string& path, std::string_view text) {
  AtomicFile f(path);
  f.write(text);
  f.commit();
}

std::vector<std::byte> read_file_bytes(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("cannot read '{}': {}", path, errno_text(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    fail("cannot read '{}': {}", path, errno_text(err));
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    fail("cannot read '{}': it is a directory", path);
  }
  std::vector<std::byte> bytes;
  bytes.reserve(size_t(st.st_size));
  std::byte chunk[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      fail("cannot read '{}': {}", path, errno_text(err));
    }
    if (n == 0) break;
    bytes.insert(bytes.end(), chunk, chunk + n);
  }
  ::close(fd);
  return bytes;
}

}  // namespace onnas
