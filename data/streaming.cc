#include "data/streaming.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "data/cifar.h"
#include "data/gz_file.h"
#include "data/idx.h"
#include "runtime/error.h"

namespace onnas::data {

namespace {

constexpr size_t kCopyChunkBytes = size_t(256) << 10;  // decompression into the temporary file
constexpr size_t kLabelChunkBytes = 4096;                // labels read at a time when scanning

// An open file and where the bytes of interest start in it: the original file (plain)
// or an unlinked temporary file holding the decompressed payload (gzip).
class Payload {
 public:
  Payload() = default;
  Payload(int fd, uint64_t offset, std::string path, std::string kind, bool decompressed)
      : fd_(fd), offset_(offset), path_(std::move(path)), kind_(std::move(kind)), decompressed_(decompressed) {}
  Payload(Payload&& o) noexcept { *this = std::move(o); }
  Payload& operator=(Payload&& o) noexcept {
    std::swap(fd_, o.fd_);
    offset_ = o.offset_;
    path_ = std::move(o.path_);
    kind_ = std::move(o.kind_);
    decompressed_ = o.decompressed_;
    return *this;
  }
  ~Payload() {
    if (fd_ >= 0) ::close(fd_);
  }

  // Reads n bytes at `at` (relative to the payload's start) or throws naming the file.
  void read(uint64_t at, size_t n, void* out) const {
    auto* p = static_cast<uint8_t*>(out);
    uint64_t pos = offset_ + at;
    while (n > 0) {
      const ssize_t got = ::pread(fd_, p, n, off_t(pos));
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) fail("{} file '{}': read at byte {} failed: {}", kind_, path_, pos, std::strerror(errno));
      if (got == 0) fail("{} file '{}': it ended at byte {} (the file changed after it was opened?)", kind_, path_, pos);
      p += got;
      pos += uint64_t(got);
      n -= size_t(got);
    }
  }
  const std::string& path() const { return path_; }
  bool decompressed() const { return decompressed_; }

 private:
  int fd_ = -1;
  uint64_t offset_ = 0;
  std::string path_, kind_;
  bool decompressed_ = false;
};

int open_read_only(const std::string& path, const std::string& kind) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("cannot open {} file '{}': {}", kind, path, std::strerror(errno));
  return fd;
}

// A temporary file that is already unlinked: it holds data while the descriptor is open
// and leaves nothing behind, however the process ends.
int unlinked_temp_file(const StreamOptions& options, const std::string& for_path) {
  std::string dir = options.temp_dir;
  if (dir.empty()) {
    const char* env = std::getenv("TMPDIR");
    dir = env && *env ? env : "/tmp";
  }
  std::string name = dir + "/onnas-stream-XXXXXX";
  const int fd = ::mkstemp(name.data());
  if (fd < 0)
    fail("cannot stream '{}': cannot create a temporary file in '{}' to decompress it into: {}", for_path, dir,
         std::strerror(errno));
  ::unlink(name.c_str());
  return fd;
}

void write_all(int fd, const uint8_t* p, size_t n, const std::string& for_path) {
  while (n > 0) {
    const ssize_t put = ::write(fd, p, n);
    if (put < 0 && errno == EINTR) continue;
    if (put <= 0)
      fail("cannot stream '{}': writing its decompressed copy failed: {}", for_path,
           put < 0 ? std::strerror(errno) : "no progress");
    p += put;
    n -= size_t(put);
  }
}

// The next n bytes of `f` (whose header has been read) as a Payload: a plain file must
// end exactly after them; a gzip'ed one is decompressed into a temporary file, checked
// for truncation and trailing bytes as it goes.
Payload payload(GzFile& f, uint64_t n, const char* what, const std::string& kind, const StreamOptions& options) {
  if (f.plain()) {
    const uint64_t have = f.size() - f.position();
    if (have < n)
      fail("{} file '{}' is truncated: it is {} bytes, but its header promises {} bytes ({} bytes missing from {})", kind,
           f.path(), f.size(), f.position() + n, n - have, what);
    if (have > n)
      fail("{} file '{}' has trailing bytes: it is {} bytes, but its header promises {} bytes ({} bytes too many)", kind,
           f.path(), f.size(), f.position() + n, have - n);
    return Payload(open_read_only(f.path(), kind), f.position(), f.path(), kind, false);
  }
  const int fd = unlinked_temp_file(options, f.path());
  Payload out(fd, 0, f.path(), kind, true);  // owns fd from here on
  std::vector<uint8_t> chunk(kCopyChunkBytes);
  for (uint64_t done = 0; done < n;) {
    const size_t step = size_t(std::min<uint64_t>(n - done, chunk.size()));
    f.read_exact(chunk.data(), step, what);
    write_all(fd, chunk.data(), step, f.path());
    done += step;
  }
  f.expect_end();
  return out;
}

// ---------------------------------------------------------------------------------
// IDX

class IdxStream final : public ImageSet {
 public:
  IdxStream(Payload images, Payload labels) : images_(std::move(images)), labels_(std::move(labels)) {}

  int32_t label(int64_t i) const override {
    uint8_t b = 0;
    labels_.read(uint64_t(i), 1, &b);
    return b;
  }
  const uint8_t* raw_image(int64_t i, uint8_t* scratch) const override {
    images_.read(uint64_t(i) * uint64_t(image_elems()), size_t(image_elems()), scratch);
    return scratch;
  }
  void read_labels(int64_t first, std::span<int32_t> out) const override {
    uint8_t buf[kLabelChunkBytes];
    for (size_t done = 0; done < out.size();) {
      const size_t n = std::min(out.size() - done, sizeof buf);
      labels_.read(uint64_t(first) + done, n, buf);
      for (size_t k = 0; k < n; ++k) out[done + k] = buf[k];
      done += n;
    }
  }
  size_t bytes() const override {
    return sizeof(*this) + source.capacity() + images_.path().capacity() + labels_.path().capacity();
  }
  std::string describe() const override {
    return fmt::format("{}: {} images of {}x{}x{} (uint8) streamed from the file{}, {} in memory", source, N, C, H, W,
                       images_.decompressed() ? " (decompressed once to an unlinked temporary file)" : "",
                       format_data_bytes(double(bytes())));
  }

 private:
  Payload images_, labels_;
};

// ---------------------------------------------------------------------------------
// CIFAR-10

class CifarStream final : public ImageSet {
 public:
  CifarStream(std::vector<Payload> files, std::vector<int64_t> first) : files_(std::move(files)), first_(std::move(first)) {}

  int32_t label(int64_t i) const override {
    auto [f, r] = locate(i);
    uint8_t b = 0;
    files_[f].read(uint64_t(r) * uint64_t(kCifarRecordBytes), 1, &b);
    return b;
  }
  const uint8_t* raw_image(int64_t i, uint8_t* scratch) const override {
    auto [f, r] = locate(i);
    files_[f].read(uint64_t(r) * uint64_t(kCifarRecordBytes) + 1, size_t(kCifarImageBytes), scratch);
    return scratch;
  }
  size_t bytes() const override {
    size_t b = sizeof(*this) + source.capacity() + first_.capacity() * sizeof(int64_t) + files_.capacity() * sizeof(Payload);
    for (const Payload& p : files_) b += p.path().capacity();
    return b;
  }
  std::string describe() const override {
    const bool any_gz = std::any_of(files_.begin(), files_.end(), [](const Payload& p) { return p.decompressed(); });
    return fmt::format("{}: {} images of {}x{}x{} (uint8) streamed from {} batch file(s){}, {} in memory", source, N, C, H,
                       W, files_.size(), any_gz ? " (gzip'ed ones decompressed once to unlinked temporary files)" : "",
                       format_data_bytes(double(bytes())));
  }

 private:
  std::pair<size_t, int64_t> locate(int64_t i) const {
    const size_t f = size_t(std::upper_bound(first_.begin(), first_.end(), i) - first_.begin()) - 1;
    return {f, i - first_[f]};
  }

  std::vector<Payload> files_;
  std::vector<int64_t> first_;  // per file, its first record's index
};

}  // namespace

std::unique_ptr<ImageSet> open_idx_stream(const std::string& images_path, const std::string& labels_path,
                                          int32_t num_classes, const StreamOptions& options) {
  if (num_classes < 0 || num_classes > 256) fail("open_idx_stream: num_classes {} is outside [0, 256]", num_classes);
  GzFile fi(images_path, "IDX images");
  std::vector<uint32_t> idims = read_idx_header(fi, kIdxImagesMagic, 3);
  const uint64_t n = idims[0], rows = idims[1], cols = idims[2];
  if (rows > kIdxMaxSide || cols > kIdxMaxSide)
    fail("IDX file '{}': image size {} x {} is absurd (at most {} per side); corrupt header?", images_path, rows, cols,
         kIdxMaxSide);
  const uint64_t pixels = n * rows * cols;
  if (pixels > (uint64_t(1) << 40))
    fail("IDX file '{}': {} images of {} x {} is absurd; corrupt header?", images_path, n, rows, cols);
  GzFile fl(labels_path, "IDX labels");
  std::vector<uint32_t> ldims = read_idx_header(fl, kIdxLabelsMagic, 1);
  if (ldims[0] != n)
    fail("IDX files disagree: '{}' has {} images but '{}' has {} labels", images_path, n, labels_path, ldims[0]);

  Payload labels = payload(fl, n, "the labels", "IDX labels", options);
  // One pass over the labels: their range, as load_idx checks it.
  int max_label = 0;
  uint64_t max_at = 0;
  uint8_t buf[kLabelChunkBytes];
  for (uint64_t done = 0; done < n;) {
    const size_t step = size_t(std::min<uint64_t>(n - done, sizeof buf));
    labels.read(done, step, buf);
    for (size_t k = 0; k < step; ++k)
      if (buf[k] > max_label) max_label = buf[k], max_at = done + k;
    done += step;
  }
  if (num_classes != 0 && max_label >= num_classes)
    fail("IDX file '{}': label {} of item {} is out of range (expected < {})", labels_path, max_label, max_at, num_classes);
  Payload images = payload(fi, pixels, "the pixels", "IDX images", options);

  auto s = std::make_unique<IdxStream>(std::move(images), std::move(labels));
  s->N = int64_t(n);
  s->C = 1;
  s->H = int64_t(rows);
  s->W = int64_t(cols);
  s->num_classes = num_classes == 0 ? max_label + 1 : num_classes;
  s->source = images_path;
  return s;
}

std::unique_ptr<ImageSet> open_fashion_mnist_stream(const std::string& dir, Split split, const StreamOptions& options) {
  const std::string prefix = dir + (split == Split::train ? "/train" : "/t10k");
  return open_idx_stream(prefix + "-images-idx3-ubyte.gz", prefix + "-labels-idx1-ubyte.gz",
                         int32_t(kFashionMnistClassNames.size()), options);
}

std::unique_ptr<ImageSet> open_cifar10_stream(std::span<const std::string> batch_files, const StreamOptions& options) {
  if (batch_files.empty()) fail("open_cifar10_stream: no batch files given");
  std::vector<Payload> files;
  std::vector<int64_t> first;
  int64_t total = 0;
  std::vector<uint8_t> chunk(size_t(kCifarRecordBytes) * 64);
  for (const std::string& path : batch_files) {
    GzFile f(path, "CIFAR-10 batch");
    Payload p;
    int64_t records = 0;
    if (f.plain()) {
      if (f.size() % uint64_t(kCifarRecordBytes) != 0)
        fail("CIFAR-10 batch file '{}' is {} bytes, not a multiple of the {}-byte record (1 label + {} pixels): truncated "
             "or not a CIFAR-10 batch",
             path, f.size(), kCifarRecordBytes, kCifarImageBytes);
      records = int64_t(f.size() / uint64_t(kCifarRecordBytes));
      p = Payload(open_read_only(path, "CIFAR-10 batch"), 0, path, "CIFAR-10 batch", false);
      for (int64_t r = 0; r < records;) {  // every label in range, as load_cifar10 checks
        const int64_t step = std::min<int64_t>(records - r, 64);
        p.read(uint64_t(r) * uint64_t(kCifarRecordBytes), size_t(step * kCifarRecordBytes), chunk.data());
        for (int64_t k = 0; k < step; ++k)
          if (chunk[size_t(k * kCifarRecordBytes)] >= kCifar10Classes)
            fail("CIFAR-10 batch file '{}': record {} has label {}, expected 0..9", path, r + k,
                 int(chunk[size_t(k * kCifarRecordBytes)]));
        r += step;
      }
    } else {
      const int fd = unlinked_temp_file(options, path);
      p = Payload(fd, 0, path, "CIFAR-10 batch", true);
      std::vector<uint8_t> record(static_cast<size_t>(kCifarRecordBytes));
      for (;;) {
        const uint64_t got = f.read_up_to(record.data(), record.size());
        if (got == 0) break;
        if (got != record.size())
          fail("CIFAR-10 batch file '{}' ends inside record {} ({} of {} bytes): truncated or not a CIFAR-10 batch", path,
               records, got, kCifarRecordBytes);
        if (record[0] >= kCifar10Classes)
          fail("CIFAR-10 batch file '{}': record {} has label {}, expected 0..9", path, records, int(record[0]));
        write_all(fd, record.data(), record.size(), path);
        ++records;
      }
    }
    if (records == 0) fail("CIFAR-10 batch file '{}' is empty", path);
    files.push_back(std::move(p));
    first.push_back(total);
    total += records;
  }
  auto s = std::make_unique<CifarStream>(std::move(files), std::move(first));
  s->N = total;
  s->C = 3;
  s->H = kCifarSide;
  s->W = kCifarSide;
  s->num_classes = kCifar10Classes;
  s->source = batch_files[0];
  return s;
}

std::unique_ptr<ImageSet> open_cifar10_dir_stream(const std::string& dir, Split split, const StreamOptions& options) {
  std::vector<std::string> files;
  if (split == Split::train) {
    for (int i = 1; i <= 5; ++i) files.push_back(dir + "/data_batch_" + std::to_string(i) + ".bin");
  } else {
    files.push_back(dir + "/test_batch.bin");
  }
  return open_cifar10_stream(files, options);
}

// ---------------------------------------------------------------------------------
// Image trees

FolderImages::FolderImages(const ImageFolderIndex& tree, const ImageLoadOptions& load, const StreamOptions& options)
    : tree_(std::shared_ptr<const ImageFolderIndex>(), &tree) {  // aliasing, owns nothing
  init(load, options);
}

FolderImages::FolderImages(std::shared_ptr<const ImageFolderIndex> tree, const ImageLoadOptions& load,
                           const StreamOptions& options)
    : tree_(std::move(tree)) {
  init(load, options);
}

void FolderImages::init(const ImageLoadOptions& load, const StreamOptions& options) {
  if (load.channels != 1 && load.channels != 3) fail("image loading: channels must be 1 or 3, not {}", load.channels);
  load_ = load;
  load_.skip_undecodable = false;
  C = load.channels;
  H = load.height;
  W = load.width;
  num_classes = tree_->num_classes();
  source = tree_->root;
  class_start_.reserve(size_t(num_classes) + 1);
  int64_t n = 0;
  for (const auto& files : tree_->files) {
    class_start_.push_back(n);
    n += int64_t(files.size());
  }
  class_start_.push_back(n);
  N = n;
  const size_t slots = image_elems() > 0 ? options.cache_bytes / size_t(image_elems()) : 0;
  tags_.assign(slots, -1);
  cached_.resize(slots * size_t(image_elems()));
}

std::pair<int32_t, int64_t> FolderImages::locate(int64_t i) const {
  if (i < 0 || i >= N) fail("image tree '{}': image {} outside [0, {})", source, i, N);
  const auto c = std::upper_bound(class_start_.begin(), class_start_.end(), i) - class_start_.begin() - 1;
  return {int32_t(c), i - class_start_[size_t(c)]};
}

int32_t FolderImages::label(int64_t i) const { return locate(i).first; }

void FolderImages::read_labels(int64_t first, std::span<int32_t> out) const {
  if (out.empty()) return;
  int32_t c = locate(first).first;
  for (size_t k = 0; k < out.size(); ++k) {
    while (first + int64_t(k) >= class_start_[size_t(c) + 1]) ++c;
    out[k] = c;
  }
}

const uint8_t* FolderImages::raw_image(int64_t i, uint8_t* scratch) const {
  const auto [c, k] = locate(i);
  const size_t elems = size_t(image_elems());
  if (!tags_.empty()) {
    std::lock_guard<std::mutex> lock(mutex_);
    const size_t slot = size_t(i) % tags_.size();
    if (tags_[slot] == i) {
      std::memcpy(scratch, cached_.data() + slot * elems, elems);
      return scratch;
    }
  }
  load_image(tree_->files[size_t(c)][size_t(k)], load_, scratch);
  if (!tags_.empty()) {
    std::lock_guard<std::mutex> lock(mutex_);
    const size_t slot = size_t(i) % tags_.size();
    std::memcpy(cached_.data() + slot * elems, scratch, elems);
    tags_[slot] = i;
  }
  return scratch;
}

size_t FolderImages::bytes() const {
  size_t b = sizeof(*this) + class_start_.capacity() * sizeof(int64_t) + tags_.capacity() * sizeof(int64_t) +
             cached_.capacity();
  // The tree's file list scales with N: count it whether or not the set owns it.
  b += tree_->class_names.capacity() * sizeof(std::string) + tree_->files.capacity() * sizeof(tree_->files[0]);
  for (const auto& name : tree_->class_names) b += name.capacity();
  for (const auto& files : tree_->files) {
    b += files.capacity() * sizeof(std::string);
    for (const auto& f : files) b += f.capacity() > 15 ? f.capacity() : 0;  // beyond the inline buffer
  }
  return b;
}

std::string FolderImages::describe() const {
  return fmt::format("{}: {} images of {}x{}x{} in {} classes, decoded from their files when read (cache of {} images), "
                     "{} in memory (mostly the file names)",
                     source, N, C, H, W, num_classes, tags_.size(), format_data_bytes(double(bytes())));
}

}  // namespace onnas::data
