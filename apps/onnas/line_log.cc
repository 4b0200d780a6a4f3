#include "apps/onnas/line_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "runtime/error.h"

namespace onnas::app {

namespace {

[[noreturn]] void fail_errno(const std::string& what, const std::string& path, int err) {
  fail("log '{}': {}: {}", path, what, std::strerror(err));
}

int open_log(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC, 0644);
  if (fd < 0) fail_errno("cannot open", path, errno);
  return fd;
}

}  // namespace

void LineLog::start() {
  const int fd = open_log(path_, O_WRONLY | O_CREAT | O_TRUNC);
  ::close(fd);
  held_.clear();
  bytes_ = 0;
}

void LineLog::resume(uint64_t bytes) {
  const int fd = open_log(path_, O_WRONLY);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    fail_errno("cannot stat", path_, err);
  }
  if (uint64_t(st.st_size) < bytes) {
    ::close(fd);
    fail("log '{}' holds {} bytes, fewer than the {} its checkpoint recorded (was it cut or replaced?)", path_,
         uint64_t(st.st_size), bytes);
  }
  if (::ftruncate(fd, off_t(bytes)) != 0 || ::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    fail_errno("cannot cut back to the checkpoint's length", path_, err);
  }
  ::close(fd);
  held_.clear();
  bytes_ = bytes;
}

void LineLog::resume_from(std::string_view text) {
  start();
  write_at_end(text);
}

void LineLog::add(std::string_view line) {
  held_.append(line);
  held_.push_back('\n');
}

uint64_t LineLog::flush() {
  write_at_end(held_);
  held_.clear();
  return bytes_;
}

void LineLog::write_at_end(std::string_view text) {
  const int fd = open_log(path_, O_WRONLY);
  // At the recorded end, not O_APPEND's: a write cut short by an error must not leave a
  // later flush behind a partial line.
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::pwrite(fd, text.data() + done, text.size() - done, off_t(bytes_ + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      fail_errno("cannot write", path_, err);
    }
    done += size_t(n);
  }
  if (::ftruncate(fd, off_t(bytes_ + done)) != 0 || ::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    fail_errno("cannot sync", path_, err);
  }
  ::close(fd);
  bytes_ += done;
}

}  // namespace onnas::app
