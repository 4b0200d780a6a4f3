#include "runtime/serialize/atomic_file.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <climits>
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

std::string file_name_of(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// Distinguishes temporaries of several AtomicFiles alive in one process.
std::atomic<uint64_t> g_temp_counter{0};
std::atomic<void (*)(const std::string&)> g_before_rename_hook{nullptr};

// ".<name>.tmp." : every temporary of `name` starts so, followed by "<pid>.<n>".
std::string temp_prefix(const std::string& name) { return "." + name + ".tmp."; }

// Removes the temporaries of `path` that a process killed while writing left behind
// (".<name>.tmp.<pid>.<n>" whose pid no longer exists). Best effort: a temporary of a
// live process, or one that cannot be removed, stays.
void remove_stale_temporaries(const std::string& path) {
  const std::string dir = directory_of(path), prefix = temp_prefix(file_name_of(path));
  DIR* d = ::opendir(dir.c_str());
  if (!d) return;
  while (const dirent* e = ::readdir(d)) {
    std::string_view name = e->d_name;
    if (!name.starts_with(prefix)) continue;
    std::string_view rest = name.substr(prefix.size());  // "<pid>.<n>"
    long pid = 0;
    auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), pid);
    if (ec != std::errc() || pid <= 0 || pid > INT_MAX || end == rest.data() + rest.size() || *end != '.') continue;
    std::string_view n = rest.substr(size_t(end - rest.data()) + 1);
    if (n.empty() || n.find_first_not_of("0123456789") != std::string_view::npos) continue;
    if (pid_t(pid) == ::getpid() || ::kill(pid_t(pid), 0) == 0 || errno != ESRCH) continue;
    ::unlinkat(::dirfd(d), e->d_name, 0);
  }
  ::closedir(d);
}

const char* file_type_name(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISFIFO(mode)) return "a FIFO";
  return "not a regular file";
}

}  // namespace

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  if (path_.empty()) fail("cannot write a file with an empty path");
  if (path_.back() == '/') fail("cannot write '{}': the path names a directory", path_);
  struct stat st {};
  if (::lstat(path_.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    // Not a regular file: renaming a new file over it would destroy it (a device node,
    // a FIFO, a symbolic link and its meaning). Devices and FIFOs, reached directly or
    // through a link, are written in place; anything else is refused.
    const bool link = S_ISLNK(st.st_mode);
    struct stat target {};
    const bool target_exists = !link || ::stat(path_.c_str(), &target) == 0;
    const mode_t mode = link ? target.st_mode : st.st_mode;
    if (target_exists && (S_ISCHR(mode) || S_ISFIFO(mode))) {
      fd_ = ::open(path_.c_str(), O_WRONLY | O_CLOEXEC | O_NOCTTY);
      if (fd_ < 0) fail("cannot write '{}': {}", path_, errno_text(errno));
      return;
    }
    if (link)
      fail("cannot write '{}': it is a symbolic link{}; onnas replaces a file by renaming a new one over it, which "
           "would replace the link rather than its target (give the target's path)",
           path_, target_exists ? "" : " to nothing");
    fail("cannot write '{}': it is {}, not a regular file", path_, file_type_name(st.st_mode));
  }
  remove_stale_temporaries(path_);
  const size_t slash = path_.rfind('/');
  temp_path_ = path_.substr(0, slash == std::string::npos ? 0 : slash + 1) +
               fmt::format("{}{}.{}", temp_prefix(file_name_of(path_)), ::getpid(), g_temp_counter.fetch_add(1));
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
  int fd = fd_;
  fd_ = -1;
  if (temp_path_.empty()) {  // a device or FIFO, written in place: nothing to sync or rename
    committed_ = true;
    if (::close(fd) != 0) fail("cannot write '{}': close failed: {}", path_, errno_text(errno));
    return;
  }
  // The data must be on disk before the rename makes it visible, or a crash could
  // leave the real name pointing at an empty or partial file.
  if (::fsync(fd) != 0) {
    fd_ = fd;
    fail_and_discard("fsync failed", errno);
  }
  if (::close(fd) != 0) fail_and_discard("close failed", errno);
  if (auto hook = g_before_rename_hook.load()) hook(path_);
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

void set_before_rename_hook(void (*hook)(const std::string& path)) { g_before_rename_hook = hook; }

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

InputFile::InputFile(const std::string& path, std::string_view what) {
  // O_NONBLOCK: opening a FIFO to read blocks until a writer appears, perhaps forever.
  // Only a regular file is read, so the flag never matters after the check.
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd_ < 0) fail("cannot read {} '{}': {}", what, path, errno_text(errno));
  struct stat st {};
  if (::fstat(fd_, &st) != 0) {
    const int err = errno;
    ::close(fd_);
    fail("cannot read {} '{}': {}", what, path, errno_text(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd_);
    // A pipe or device says nothing true about its size, and may never end or block.
    fail("cannot read {} '{}': it is {}{}", what, path, file_type_name(st.st_mode),
         S_ISDIR(st.st_mode) ? "" : " (onnas reads regular files only)");
  }
  ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) & ~O_NONBLOCK);
  size_ = uint64_t(st.st_size);
}

InputFile::~InputFile() {
  if (fd_ >= 0) ::close(fd_);
}

std::string read_text_file(const std::string& path, std::string_view what, size_t max_bytes) {
  InputFile f(path, what);
  if (f.size() > max_bytes)
    fail("{} '{}' is {} bytes, more than the {} bytes such a file may have", what, path, f.size(), max_bytes);
  std::string text;
  text.resize(size_t(f.size()));
  size_t done = 0;
  // Read to the end (at most one byte past the limit): the file may grow while read.
  for (;;) {
    if (done == text.size()) {
      if (text.size() > max_bytes)
        fail("{} '{}' grew to more than the {} bytes such a file may have", what, path, max_bytes);
      text.resize(text.size() + 4096);
    }
    ssize_t n = ::read(f.fd(), text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("cannot read {} '{}': {}", what, path, errno_text(errno));
    }
    if (n == 0) break;
    done += size_t(n);
  }
  text.resize(done);
  return text;
}

std::vector<std::byte> read_file_bytes(const std::string& path) {
  std::string text = read_text_file(path, "file", SIZE_MAX / 2);
  const auto* p = reinterpret_cast<const std::byte*>(text.data());
  return std::vector<std::byte>(p, p + text.size());
}

}  // namespace onnas
