// The data sets' memory: images kept as stored bytes and converted per batch (the same
// floats as the in-place float pass this replaced, bit for bit), and the streamed
// backends (data/streaming.h): the same batches and episodes as in memory, bit for bit,
// with heap use that does not grow with the number of images.
//
// This executable replaces the global allocation functions to measure the peak of live
// heap bytes (each test file is its own executable).
#include <catch2/catch.hpp>
#include <stb/stb_image_write.h>
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "data/batch_sampler.h"
#include "data/cifar.h"
#include "data/dataset.h"
#include "data/episode_sampler.h"
#include "data/fashion_mnist.h"
#include "data/idx.h"
#include "data/image_folder.h"
#include "data/streaming.h"
#include "runtime/error.h"
#include "runtime/rng.h"

// ---------------------------------------------------------------------------------
// Live heap bytes of operator new (plain forms carry a 16-byte size header; aligned
// forms, which none of the code measured here uses, are passed through uncounted).

namespace heap {
std::atomic<int64_t> live{0}, peak{0};
constexpr size_t kHeader = 16;

[[gnu::noinline]] void* allocate(size_t n) {
  auto* p = static_cast<unsigned char*>(std::malloc(n + kHeader));
  if (!p) return nullptr;
  std::memcpy(p, &n, sizeof n);
  const int64_t now = live.fetch_add(int64_t(n)) + int64_t(n);
  int64_t seen = peak.load();
  while (now > seen && !peak.compare_exchange_weak(seen, now)) {
  }
  return p + kHeader;
}
[[gnu::noinline]] void release(void* q) {
  if (!q) return;
  auto* p = static_cast<unsigned char*>(q) - kHeader;
  size_t n;
  std::memcpy(&n, p, sizeof n);
  live.fetch_sub(int64_t(n));
  std::free(p);
}
void* aligned(size_t n, size_t a) { return std::aligned_alloc(a, (std::max<size_t>(n, 1) + a - 1) / a * a); }

// Peak live bytes above the level at construction.
struct PeakMeter {
  int64_t base = live.load();
  PeakMeter() { peak.store(base); }
  int64_t above() const { return peak.load() - base; }
};
}  // namespace heap

void* operator new(std::size_t n) {
  if (void* p = heap::allocate(n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
  if (void* p = heap::allocate(n)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return heap::allocate(n); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return heap::allocate(n); }
void operator delete(void* p) noexcept { heap::release(p); }
void operator delete[](void* p) noexcept { heap::release(p); }
void operator delete(void* p, std::size_t) noexcept { heap::release(p); }
void operator delete[](void* p, std::size_t) noexcept { heap::release(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { heap::release(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { heap::release(p); }
void* operator new(std::size_t n, std::align_val_t a) {
  if (void* p = heap::aligned(n, std::size_t(a))) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n, std::align_val_t a) {
  if (void* p = heap::aligned(n, std::size_t(a))) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept { return heap::aligned(n, std::size_t(a)); }
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept { return heap::aligned(n, std::size_t(a)); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }

using namespace onnas;
using namespace onnas::data;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    static int counter = 0;
    path = fs::temp_directory_path() / ("onnas_test_streaming_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

void write_plain(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

void write_gz(const std::string& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb1");
  REQUIRE(f != nullptr);
  REQUIRE(gzwrite(f, bytes.data(), unsigned(bytes.size())) == int(bytes.size()));
  gzclose(f);
}

std::string read_gz(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  REQUIRE(f != nullptr);
  std::string out;
  char buf[1 << 16];
  for (int got; (got = gzread(f, buf, sizeof buf)) > 0;) out.append(buf, size_t(got));
  gzclose(f);
  return out;
}

std::string be32(uint32_t v) { return {char(v >> 24), char((v >> 16) & 0xff), char((v >> 8) & 0xff), char(v & 0xff)}; }

// n random images of rows x cols and labels in [0, classes), seeded.
struct IdxFiles {
  std::string images, labels;
};
IdxFiles idx_files(uint32_t n, uint32_t rows, uint32_t cols, uint32_t classes, uint64_t seed) {
  Rng rng(seed);
  IdxFiles f;
  f.images = be32(kIdxImagesMagic) + be32(n) + be32(rows) + be32(cols);
  f.labels = be32(kIdxLabelsMagic) + be32(n);
  f.images.reserve(f.images.size() + size_t(n) * rows * cols);
  for (uint32_t i = 0; i < n; ++i) {
    // Mostly dark with bright strokes, like the real thing, and every byte value somewhere.
    for (uint32_t p = 0; p < rows * cols; ++p) f.images += char(rng.uniform() < 0.7f ? 0 : rng.uniform_int(256));
    f.labels += char(rng.uniform_int(classes));
  }
  return f;
}

// CIFAR-10 records with random pixels, labels given.
std::string cifar_records(const std::vector<uint8_t>& labels, uint64_t seed) {
  Rng rng(seed);
  std::string s;
  for (uint8_t l : labels) {
    s += char(l);
    for (int64_t p = 0; p < kCifarImageBytes; ++p) s += char(rng.uniform_int(256));
  }
  return s;
}

// Every batch of `epochs` epochs (rows and labels) from both sets, compared bit for bit.
void same_batches(const ImageSet& a, const ImageSet& b, BatchOptions options, int epochs, uint64_t seed) {
  BatchSampler sa(a, {}, options, seed), sb(b, {}, options, seed);
  REQUIRE(sa.batches_per_epoch() == sb.batches_per_epoch());
  const int64_t B = options.batch_size, elems = a.image_elems();
  std::vector<float> xa(size_t(B * elems)), xb(size_t(B * elems));
  std::vector<int32_t> ya(static_cast<size_t>(B)), yb(static_cast<size_t>(B));
  Tensor ta(xa.data(), Shape{B, a.C, a.H, a.W}), tb(xb.data(), Shape{B, b.C, b.H, b.W});
  Tensor la(ya.data(), Shape{B}, DType::i32), lb(yb.data(), Shape{B}, DType::i32);
  for (int64_t s = 0; s < sa.batches_per_epoch() * epochs; ++s) {
    REQUIRE(sa.next(ta, la) == sb.next(tb, lb));
    REQUIRE(std::memcmp(xa.data(), xb.data(), xa.size() * sizeof(float)) == 0);
    REQUIRE(ya == yb);
  }
}

// `episodes` episodes from both sets, compared bit for bit.
void same_episodes(const ImageSet& a, const ImageSet& b, EpisodeShape shape, int episodes, uint64_t seed) {
  EpisodeSampler ea(a, {}, shape, seed), eb(b, {}, shape, seed);
  const int64_t elems = a.image_elems(), ns = shape.n_way * shape.k_shot, nq = shape.n_way * shape.q_query;
  struct Buffers {
    std::vector<float> sx, qx;
    std::vector<int32_t> sy, qy;
    Tensor tsx, tsy, tqx, tqy;
  } ba, bb;
  for (Buffers* p : {&ba, &bb}) {
    p->sx.resize(size_t(ns * elems));
    p->qx.resize(size_t(nq * elems));
    p->sy.resize(size_t(ns));
    p->qy.resize(size_t(nq));
    p->tsx = Tensor(p->sx.data(), Shape{ns, a.C, a.H, a.W});
    p->tqx = Tensor(p->qx.data(), Shape{nq, a.C, a.H, a.W});
    p->tsy = Tensor(p->sy.data(), Shape{ns}, DType::i32);
    p->tqy = Tensor(p->qy.data(), Shape{nq}, DType::i32);
  }
  for (int e = 0; e < episodes; ++e) {
    const Episode& pa = ea.next(ba.tsx, ba.tsy, ba.tqx, ba.tqy);
    const Episode& pb = eb.next(bb.tsx, bb.tsy, bb.tqx, bb.tqy);
    REQUIRE(pa.classes == pb.classes);
    REQUIRE(pa.support == pb.support);
    REQUIRE(std::memcmp(ba.sx.data(), bb.sx.data(), ba.sx.size() * sizeof(float)) == 0);
    REQUIRE(std::memcmp(ba.qx.data(), bb.qx.data(), ba.qx.size() * sizeof(float)) == 0);
    REQUIRE(ba.sy == bb.sy);
    REQUIRE(ba.qy == bb.qy);
  }
}

void same_stats(const ChannelStats& a, const ChannelStats& b) {
  REQUIRE(a.mean.size() == b.mean.size());
  for (size_t c = 0; c < a.mean.size(); ++c) {
    CHECK(a.mean[c] == b.mean[c]);
    CHECK(a.std[c] == b.std[c]);
  }
}

// What the loaders and normalize() computed before images were kept as bytes: every
// byte to float (p * (1 / 255)) at load, statistics over those floats in double, then
// an in-place pass x = (x - mean) * (1 / std). Written out here, independently.
struct OldPath {
  std::vector<float> images;  // N*C*H*W
  ChannelStats stats;
  OldPath(const std::string& bytes, int64_t C, int64_t HW, std::span<const int64_t> stat_indices) {
    volatile float scale = 1.0f / 255.0f;  // computed at run time, as the loaders did
    images.resize(bytes.size());
    for (size_t p = 0; p < bytes.size(); ++p) images[p] = float(uint8_t(bytes[p])) * scale;
    std::vector<double> sum(size_t(C), 0.0), sum_sq(size_t(C), 0.0);
    for (int64_t i : stat_indices)
      for (int64_t c = 0; c < C; ++c) {
        double s = 0, s2 = 0;
        for (int64_t p = 0; p < HW; ++p) {
          double v = images[size_t((i * C + c) * HW + p)];
          s += v;
          s2 += v * v;
        }
        sum[size_t(c)] += s;
        sum_sq[size_t(c)] += s2;
      }
    const double n = double(stat_indices.size()) * double(HW);
    for (int64_t c = 0; c < C; ++c) {
      double mean = sum[size_t(c)] / n;
      stats.mean.push_back(float(mean));
      stats.std.push_back(float(std::sqrt(std::max(0.0, sum_sq[size_t(c)] / n - mean * mean))));
    }
    const int64_t N = int64_t(bytes.size()) / (C * HW);
    for (int64_t i = 0; i < N; ++i)
      for (int64_t c = 0; c < C; ++c) {
        const float mean = stats.mean[size_t(c)], inv = 1.0f / stats.std[size_t(c)];
        float* x = images.data() + (i * C + c) * HW;
        for (int64_t p = 0; p < HW; ++p) x[p] = (x[p] - mean) * inv;
      }
  }
};

// Batches of the sampler against the old path's images, bit for bit.
void batches_match_old_path(const ImageSet& d, const OldPath& old, int64_t B, int batches) {
  BatchSampler s(d, {}, {.batch_size = B}, 7);
  const int64_t elems = d.image_elems();
  std::vector<float> x(size_t(B * elems));
  std::vector<int32_t> y(static_cast<size_t>(B));
  Tensor tx(x.data(), Shape{B, d.C, d.H, d.W}), ty(y.data(), Shape{B}, DType::i32);
  for (int b = 0; b < batches; ++b) {
    REQUIRE(s.next(tx, ty) == B);
    for (int64_t r = 0; r < B; ++r) {
      // Find the source row: the label and the old float image must both match one row.
      bool found = false;
      for (int64_t i = 0; i < d.N && !found; ++i)
        found = d.label(i) == y[size_t(r)] &&
                std::memcmp(x.data() + r * elems, old.images.data() + i * elems, size_t(elems) * sizeof(float)) == 0;
      REQUIRE(found);
    }
  }
}

}  // namespace

TEST_CASE("bytes converted per batch give the old in-place float pass's numbers, bit for bit") {
  // 3 channels, random bytes; statistics over half the images.
  const int64_t N = 60, C = 3, H = 5, W = 6;
  Rng rng(3);
  std::string bytes;
  for (int64_t p = 0; p < N * C * H * W; ++p) bytes += char(rng.uniform_int(256));
  Dataset d;
  d.N = N, d.C = C, d.H = H, d.W = W, d.num_classes = 4, d.source = "random";
  d.pixels.assign(bytes.begin(), bytes.end());
  for (int64_t i = 0; i < N; ++i) d.labels.push_back(int32_t(i % 4));
  std::vector<int64_t> half;
  for (int64_t i = 0; i < N; i += 2) half.push_back(i);
  OldPath old(bytes, C, H * W, half);
  ChannelStats st = channel_stats(d, half);
  same_stats(st, old.stats);
  normalize(d, st);
  std::vector<float> x(size_t(C * H * W));
  std::vector<uint8_t> scratch(size_t(C * H * W));
  for (int64_t i = 0; i < N; ++i) {
    d.read_image(i, x.data(), scratch.data());
    REQUIRE(std::memcmp(x.data(), old.images.data() + i * C * H * W, x.size() * sizeof(float)) == 0);
  }
  batches_match_old_path(d, old, 8, 7);
  // A copy of a part keeps the normalization.
  Dataset part = subset(d, std::vector<int64_t>{5, 2});
  part.read_image(1, x.data(), scratch.data());
  CHECK(std::memcmp(x.data(), old.images.data() + 2 * C * H * W, x.size() * sizeof(float)) == 0);
  CHECK(part.label(0) == 1);
}

TEST_CASE("Fashion-MNIST: batches equal the old float path, in memory and streamed, and the bytes held") {
  const std::string images = std::string(kFashionMnistDir) + "/train-images-idx3-ubyte.gz";
  if (!fs::exists(images)) {
    WARN("skipped: Fashion-MNIST is not installed under " << kFashionMnistDir << " (Debian package dataset-fashion-mnist)");
    return;
  }
  const std::string raw = read_gz(std::string(kFashionMnistDir) + "/t10k-images-idx3-ubyte.gz").substr(16);
  Dataset test = load_fashion_mnist(kFashionMnistDir, Split::test);
  std::vector<int64_t> first(2000);
  for (int64_t i = 0; i < 2000; ++i) first[size_t(i)] = i;
  OldPath old(raw, 1, 784, first);
  ChannelStats st = channel_stats(test, first);
  same_stats(st, old.stats);
  normalize(test, st);
  // The old set held 4 bytes per pixel: 31.4 MB for the test file, 188.2 MB for the training file.
  CHECK(test.bytes() == 10000 * 784 + 10000 * 4);
  std::vector<float> x(784);
  std::vector<uint8_t> scratch(784);
  for (int64_t i = 0; i < test.N; ++i) {
    test.read_image(i, x.data(), scratch.data());
    REQUIRE(std::memcmp(x.data(), old.images.data() + i * 784, sizeof(float) * 784) == 0);
  }
  // The first batches in file order against the old floats of those rows.
  BatchSampler batches(test, {}, {.batch_size = 64, .shuffle = false}, 0);
  std::vector<float> bx(64 * 784);
  std::vector<int32_t> by(64);
  Tensor tx(bx.data(), Shape{64, 1, 28, 28}), ty(by.data(), Shape{64}, DType::i32);
  for (int b = 0; b < 5; ++b) {
    REQUIRE(batches.next(tx, ty) == 64);
    REQUIRE(std::memcmp(bx.data(), old.images.data() + b * 64 * 784, bx.size() * sizeof(float)) == 0);
  }
  std::unique_ptr<ImageSet> streamed = open_fashion_mnist_stream(kFashionMnistDir, Split::test);
  normalize(*streamed, channel_stats(*streamed, first));
  same_batches(test, *streamed, {.batch_size = 64, .augment = {.crop_padding = 2, .horizontal_flip = true}}, 1, 5);
  CHECK(streamed->bytes() < 4096);
  WARN(test.describe() << "\n" << streamed->describe());
}

TEST_CASE("IDX streamed (plain and gzip'ed): the same batches, episodes and statistics as in memory") {
  TempDir dir;
  IdxFiles f = idx_files(300, 7, 5, 10, 11);
  write_plain(dir.file("img"), f.images);
  write_plain(dir.file("lab"), f.labels);
  write_gz(dir.file("img.gz"), f.images);
  write_gz(dir.file("lab.gz"), f.labels);
  Dataset mem = load_idx(dir.file("img"), dir.file("lab"));
  std::unique_ptr<ImageSet> plain = open_idx_stream(dir.file("img"), dir.file("lab"));
  std::unique_ptr<ImageSet> gz = open_idx_stream(dir.file("img.gz"), dir.file("lab.gz"), 0, {.temp_dir = dir.path.string()});
  // The decompressed copy is already unlinked: nothing is left in the folder.
  CHECK(std::distance(fs::directory_iterator(dir.path), fs::directory_iterator()) == 4);
  for (const ImageSet* s : {plain.get(), gz.get()}) {
    CHECK(s->N == 300);
    CHECK(s->H == 7);
    CHECK(s->W == 5);
    CHECK(s->num_classes == mem.num_classes);
    CHECK(s->class_counts() == mem.class_counts());
    CHECK(s->indices_by_class() == mem.indices_by_class());
    same_stats(channel_stats(*s), channel_stats(mem));
  }
  std::vector<int64_t> some = {3, 4, 250};
  const ChannelStats st = channel_stats(mem, some);
  normalize(mem, st);
  normalize(*plain, st);
  normalize(*gz, st);
  const BatchOptions o{.batch_size = 16, .augment = {.crop_padding = 2, .horizontal_flip = true}};
  same_batches(mem, *plain, o, 2, 9);
  same_batches(mem, *gz, o, 2, 9);
  same_batches(mem, *gz, {.batch_size = 7, .shuffle = false}, 1, 1);
  same_episodes(mem, *plain, {.n_way = 5, .k_shot = 2, .q_query = 3}, 20, 4);
  same_episodes(mem, *gz, {.n_way = 5, .k_shot = 2, .q_query = 3}, 20, 4);
  // A stream can be split and copied into memory like a Dataset.
  TrainValSplit a = split_train_val(mem, 0.2, 3), b = split_train_val(*plain, 0.2, 3);
  CHECK(a.val == b.val);
  Dataset part = subset(*gz, a.val);
  CHECK(part.pixels == subset(mem, a.val).pixels);
  CHECK(plain->describe().find("streamed") != std::string::npos);
  CHECK(gz->describe().find("decompressed") != std::string::npos);
}

TEST_CASE("IDX streamed: broken files are refused when opened, as load_idx refuses them") {
  TempDir dir;
  IdxFiles f = idx_files(20, 3, 4, 3, 2);
  const std::string img = dir.file("img"), lab = dir.file("lab");
  write_plain(lab, f.labels);
  SECTION("truncated images") {
    write_plain(img, f.images.substr(0, f.images.size() - 5));
    CHECK_THROWS_WITH(open_idx_stream(img, lab), Catch::Contains("truncated") && Catch::Contains(img));
  }
  SECTION("trailing bytes") {
    write_plain(img, f.images + "xx");
    CHECK_THROWS_WITH(open_idx_stream(img, lab), Catch::Contains("trailing bytes"));
  }
  SECTION("gzip'ed and truncated") {
    write_gz(img, f.images.substr(0, f.images.size() - 5));
    CHECK_THROWS_WITH(open_idx_stream(img, lab, 0, {.temp_dir = dir.path.string()}), Catch::Contains("truncated"));
  }
  SECTION("gzip'ed with trailing bytes") {
    write_gz(img, f.images + "xx");
    CHECK_THROWS_WITH(open_idx_stream(img, lab, 0, {.temp_dir = dir.path.string()}), Catch::Contains("trailing bytes"));
  }
  SECTION("a label out of range") {
    write_plain(img, f.images);
    CHECK_THROWS_WITH(open_idx_stream(img, lab, 2), Catch::Contains("label 2") && Catch::Contains("out of range"));
  }
  SECTION("counts that disagree") {
    write_plain(img, f.images);
    write_plain(lab, be32(kIdxLabelsMagic) + be32(19) + f.labels.substr(8, 19));
    CHECK_THROWS_WITH(open_idx_stream(img, lab), Catch::Contains("disagree"));
  }
  SECTION("files swapped") {
    write_plain(img, f.images);
    CHECK_THROWS_WITH(open_idx_stream(lab, img), Catch::Contains("this is an IDX labels file"));
  }
  SECTION("no temporary folder") {
    write_gz(img, f.images);
    CHECK_THROWS_WITH(open_idx_stream(img, lab, 0, {.temp_dir = dir.file("nope")}),
                      Catch::Contains("cannot create a temporary file") && Catch::Contains("nope"));
  }
}

TEST_CASE("CIFAR-10 streamed (plain and gzip'ed batches): the same batches as in memory") {
  TempDir dir;
  write_plain(dir.file("b1.bin"), cifar_records({3, 9, 0, 4, 4, 1, 2}, 1));
  write_gz(dir.file("b2.bin.gz"), cifar_records({7, 1, 5, 6, 8}, 2));
  write_plain(dir.file("b3.bin"), cifar_records({0, 2}, 3));
  const std::vector<std::string> files = {dir.file("b1.bin"), dir.file("b2.bin.gz"), dir.file("b3.bin")};
  Dataset mem = load_cifar10(files);
  std::unique_ptr<ImageSet> s = open_cifar10_stream(files, {.temp_dir = dir.path.string()});
  CHECK(s->N == 14);
  std::vector<int32_t> labels(14);
  s->read_labels(0, labels);
  CHECK(labels == mem.labels);
  normalize(mem, channel_stats(mem));
  normalize(*s, channel_stats(*s));
  same_stats(s->normalization(), mem.normalization());
  same_batches(mem, *s, {.batch_size = 4, .augment = {.crop_padding = 4, .horizontal_flip = true}}, 3, 2);
  write_plain(dir.file("bad.bin"), cifar_records({1, 10}, 4));
  const std::vector<std::string> bad = {dir.file("bad.bin")};
  CHECK_THROWS_WITH(open_cifar10_stream(bad), Catch::Contains("record 1 has label 10, expected 0..9"));
  write_plain(dir.file("cut.bin"), cifar_records({1, 2}, 4).substr(0, 3073 + 100));
  const std::vector<std::string> cut = {dir.file("cut.bin")};
  CHECK_THROWS_WITH(open_cifar10_stream(cut), Catch::Contains("not a multiple of the 3073-byte record"));
}

TEST_CASE("image trees streamed (FolderImages): the same images as loaded, with and without the cache") {
  TempDir dir;
  // 3 classes; images of mixed sizes (some resized) and formats, grey and colour.
  Rng rng(5);
  for (int c = 0; c < 3; ++c) {
    fs::create_directories(dir.path / ("class" + std::to_string(c)));
    for (int i = 0; i < 4 + c; ++i) {
      const int side = i % 2 ? 9 : 6;
      std::vector<uint8_t> px(size_t(side * side * 3));
      for (auto& v : px) v = uint8_t(rng.uniform_int(256));
      const std::string path = dir.file("class" + std::to_string(c) + "/" + std::to_string(i) + ".png");
      REQUIRE(stbi_write_png(path.c_str(), side, side, i % 3 == 0 ? 1 : 3, px.data(), side * (i % 3 == 0 ? 1 : 3)) != 0);
    }
  }
  ImageFolderIndex tree = list_image_folder(dir.path.string());
  for (int channels : {1, 3}) {
    const ImageLoadOptions load{.channels = channels, .height = 6, .width = 6};
    Dataset mem = load_image_folder(tree, load);
    FolderImages cached(tree, load, {.temp_dir = {}, .cache_bytes = 4 * 6 * 6 * 3}), uncached(tree, load, {.temp_dir = {}, .cache_bytes = 0});
    CHECK(cached.N == 15);
    CHECK(cached.class_counts() == std::vector<int64_t>{4, 5, 6});
    CHECK(cached.locate(5) == std::pair<int32_t, int64_t>{1, 1});
    same_stats(channel_stats(cached), channel_stats(mem));
    normalize(mem, channel_stats(mem));
    normalize(cached, mem.normalization());
    normalize(uncached, mem.normalization());
    same_batches(mem, cached, {.batch_size = 4, .augment = {.crop_padding = 1, .horizontal_flip = true}}, 3, 1);
    same_batches(mem, uncached, {.batch_size = 5}, 2, 2);
    same_episodes(mem, cached, {.n_way = 3, .k_shot = 1, .q_query = 3}, 10, 3);
    // The tree constructor of EpisodeSampler streams the same way (no normalization).
    Dataset plain = load_image_folder(tree, load);
    EpisodeSampler from_tree(tree, load, {}, {.n_way = 2, .k_shot = 2, .q_query = 1}, 8);
    EpisodeSampler from_set(plain, {}, {.n_way = 2, .k_shot = 2, .q_query = 1}, 8);
    for (int e = 0; e < 5; ++e) CHECK(from_tree.next().support == from_set.next().support);
  }
  write_plain(dir.file("class1/zz.png"), "\x89PNG not really");
  ImageFolderIndex broken = list_image_folder(dir.path.string());
  FolderImages s(broken, {.channels = 1, .height = 6, .width = 6});
  std::vector<uint8_t> scratch(36);
  const int64_t zz = int64_t(broken.files[0].size() + broken.files[1].size()) - 1;  // last of class 1
  REQUIRE(broken.files[1].back().ends_with("zz.png"));
  CHECK_NOTHROW(s.raw_image(zz - 1, scratch.data()));
  CHECK_THROWS_WITH(s.raw_image(zz, scratch.data()), Catch::Contains("zz.png"));
}

TEST_CASE("streamed sets: heap use does not grow with the number of images") {
  TempDir small_dir, big_dir;
  const IdxFiles small = idx_files(100, 28, 28, 10, 1), big = idx_files(20000, 28, 28, 10, 2);
  for (auto [dir, f] : {std::pair{&small_dir, &small}, std::pair{&big_dir, &big}}) {
    write_plain(dir->file("img"), f->images);
    write_plain(dir->file("lab"), f->labels);
    write_gz(dir->file("img.gz"), f->images);
    write_gz(dir->file("lab.gz"), f->labels);
  }
  // Peak live heap bytes while opening the set, measuring it and reading every image and label.
  auto peak = [](const TempDir& dir, bool gz) {
    heap::PeakMeter meter;
    {
      std::unique_ptr<ImageSet> s = gz ? open_idx_stream(dir.file("img.gz"), dir.file("lab.gz"), 0, {.temp_dir = dir.path.string()})
                                       : open_idx_stream(dir.file("img"), dir.file("lab"));
      normalize(*s, channel_stats(*s));
      std::vector<float> x(784);
      std::vector<uint8_t> scratch(784);
      int64_t sum = 0;
      for (int64_t i = 0; i < s->N; ++i) {
        s->read_image(i, x.data(), scratch.data());
        sum += s->label(i);
      }
      CHECK(sum > 0);
    }
    return meter.above();
  };
  for (bool gz : {false, true}) {
    const int64_t p_small = peak(small_dir, gz), p_big = peak(big_dir, gz);
    WARN("gzip " << gz << ": peak heap " << p_small << " bytes for 100 images, " << p_big << " for 20,000 ("
                 << 20000 * 784 << " bytes of pixels)");
    CHECK(std::abs(p_big - p_small) < 1024);  // only the temporary folders' names differ in length
    CHECK(p_big < (int64_t(1) << 20));        // the decompression chunk is the largest piece
  }
  // What the sets say they hold: the same for both sizes (equal path lengths).
  std::unique_ptr<ImageSet> a = open_idx_stream(small_dir.file("img"), small_dir.file("lab"));
  std::unique_ptr<ImageSet> b = open_idx_stream(big_dir.file("img"), big_dir.file("lab"));
  CHECK(a->bytes() == b->bytes());
  CHECK(load_idx(big_dir.file("img"), big_dir.file("lab")).bytes() == 20000 * 784 + 20000 * 4);
}
