// Splits, normalization, mini-batches and few-shot episodes: determinism (same seed,
// same draws; other seed, other draws), coverage, augmentation and relabeling.
#include <catch2/catch.hpp>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <vector>

#include "data/batch_sampler.h"
#include "data/dataset.h"
#include "data/episode_sampler.h"
#include "data/fashion_mnist.h"
#include "runtime/error.h"

using namespace onnas;
using namespace onnas::data;

namespace {

// n (at most 256) images of c x h x w; image i is filled with the byte i (so a batch
// row tells which image it came from, id_of); label i % classes.
Dataset numbered(int64_t n, int32_t classes, int64_t c = 1, int64_t h = 4, int64_t w = 4) {
  REQUIRE(n <= 256);
  Dataset d;
  d.N = n;
  d.C = c;
  d.H = h;
  d.W = w;
  d.num_classes = classes;
  d.source = "numbered";
  d.pixels.resize(size_t(n * c * h * w));
  for (int64_t i = 0; i < n; ++i) {
    std::fill(d.pixels_of(i), d.pixels_of(i) + c * h * w, uint8_t(i));
    d.labels.push_back(int32_t(i % classes));
  }
  return d;
}

// The byte a converted (unnormalized) pixel came from.
int64_t id_of(float v) { return std::lround(v * 255.0f); }

struct BatchBuffers {
  std::vector<float> xs;
  std::vector<int32_t> ys;
  Tensor x, y;
  BatchBuffers(int64_t b, const Dataset& d) : xs(size_t(b * d.image_elems())), ys(size_t(b)) {
    x = Tensor(xs.data(), Shape{b, d.C, d.H, d.W});
    y = Tensor(ys.data(), Shape{b}, DType::i32);
  }
  int64_t id(int64_t row, int64_t elems) const { return id_of(xs[size_t(row * elems)]); }
};

// The image ids of `batches` batches.
std::vector<int64_t> draw(BatchSampler& s, const Dataset& d, int64_t b, int batches) {
  BatchBuffers buf(b, d);
  std::vector<int64_t> ids;
  for (int i = 0; i < batches; ++i) {
    int64_t rows = s.next(buf.x, buf.y);
    for (int64_t r = 0; r < rows; ++r) ids.push_back(buf.id(r, d.image_elems()));
  }
  return ids;
}

}  // namespace

TEST_CASE("split_train_val: stratified and plain, seeded, disjoint and complete") {
  Dataset d = numbered(103, 4);
  for (SplitMode mode : {SplitMode::stratified, SplitMode::shuffle}) {
    TrainValSplit s = split_train_val(d, 0.2, 7, mode);
    CHECK(s.train.size() + s.val.size() == 103);
    std::set<int64_t> all(s.train.begin(), s.train.end());
    for (int64_t i : s.val) CHECK(all.insert(i).second);
    CHECK(all.size() == 103);
    CHECK(std::is_sorted(s.train.begin(), s.train.end()));
    TrainValSplit again = split_train_val(d, 0.2, 7, mode);
    CHECK(again.val == s.val);
    CHECK(split_train_val(d, 0.2, 8, mode).val != s.val);
  }
  // Stratified: classes of sizes 26, 26, 26, 25 give 5 validation images each.
  TrainValSplit s = split_train_val(d, 0.2, 7, SplitMode::stratified);
  std::vector<int> per_class(4, 0);
  for (int64_t i : s.val) per_class[size_t(d.label(i))] += 1;
  CHECK(per_class == std::vector<int>{5, 5, 5, 5});
  CHECK_THROWS_WITH(split_train_val(d, 1.5, 1), Catch::Contains("outside [0, 1]"));
}

TEST_CASE("channel_stats on the training part, normalization applied when images are read") {
  Dataset d = numbered(4, 2, /*c=*/2, 2, 2);  // channel 0 holds the image index
  for (int64_t i = 0; i < 4; ++i) std::fill(d.pixels_of(i) + 4, d.pixels_of(i) + 8, uint8_t(10 * i));
  std::vector<int64_t> train = {0, 2};
  ChannelStats st = channel_stats(d, train);  // of the pixels scaled to [0, 1]
  CHECK(st.mean[0] == Approx(1.0f / 255));
  CHECK(st.std[0] == Approx(1.0f / 255));
  CHECK(st.mean[1] == Approx(10.0f / 255));
  CHECK(st.std[1] == Approx(10.0f / 255));
  const std::vector<uint8_t> before = d.pixels;
  normalize(d, st);
  CHECK(d.pixels == before);  // nothing is rewritten
  std::vector<float> x(8);
  std::vector<uint8_t> scratch(8);
  d.read_image(3, x.data(), scratch.data());
  CHECK(x[0] == Approx(2.0f));   // (3 - 1) / 1
  CHECK(x[5] == Approx(2.0f));   // (30 - 10) / 10
  d.read_image(0, x.data(), scratch.data());
  CHECK(x[7] == Approx(-1.0f));  // (0 - 10) / 10
  ChannelStats flat{{0.0f, 0.0f}, {1.0f, 0.0f}};
  CHECK_THROWS_WITH(normalize(d, flat), Catch::Contains("channel 1 has standard deviation 0"));
  CHECK_THROWS_WITH(normalize(d, ChannelStats{{0.5f}, {1.0f}}), Catch::Contains("statistics for 1 channels, the images have 2"));
}

TEST_CASE("BatchSampler: deterministic shuffles, full coverage per epoch, partial last batch") {
  Dataset d = numbered(10, 3);
  BatchSampler a(d, {}, {.batch_size = 4}, 42), b(d, {}, {.batch_size = 4}, 42), c(d, {}, {.batch_size = 4}, 43);
  CHECK(a.batches_per_epoch() == 3);
  auto ea = draw(a, d, 4, 6), eb = draw(b, d, 4, 6), ec = draw(c, d, 4, 6);
  CHECK(ea == eb);
  CHECK(ea != ec);
  REQUIRE(ea.size() == 20);
  // Each epoch is a permutation of all images, and the two epochs differ.
  std::vector<int64_t> e0(ea.begin(), ea.begin() + 10), e1(ea.begin() + 10, ea.end());
  CHECK(e0 != e1);
  std::sort(e0.begin(), e0.end());
  std::sort(e1.begin(), e1.end());
  for (int64_t i = 0; i < 10; ++i) CHECK(e0[size_t(i)] == i);
  CHECK(e0 == e1);
  CHECK(a.epoch() == 1);

  SECTION("labels follow the images; the last batch is padded with label -1") {
    BatchSampler s(d, {}, {.batch_size = 4}, 1);
    BatchBuffers buf(4, d);
    CHECK(s.next(buf.x, buf.y) == 4);
    for (int r = 0; r < 4; ++r) CHECK(buf.ys[size_t(r)] == buf.id(r, 16) % 3);
    CHECK(s.next(buf.x, buf.y) == 4);
    CHECK(s.next(buf.x, buf.y) == 2);
    CHECK(buf.ys[2] == -1);
    CHECK(buf.ys[3] == -1);
    CHECK(buf.xs[2 * 16] == 0.0f);
    CHECK(s.next(buf.x, buf.y) == 4);  // next epoch
    CHECK(s.epoch() == 1);
  }
  SECTION("drop_last") {
    BatchSampler s(d, {}, {.batch_size = 4, .drop_last = true}, 1);
    CHECK(s.batches_per_epoch() == 2);
    BatchBuffers buf(4, d);
    for (int i = 0; i < 4; ++i) CHECK(s.next(buf.x, buf.y) == 4);
    CHECK(s.epoch() == 1);
  }
  SECTION("a subset of indices, unshuffled") {
    BatchSampler s(d, {7, 3, 5}, {.batch_size = 2, .shuffle = false}, 1);
    CHECK(draw(s, d, 2, 2) == std::vector<int64_t>{7, 3, 5});
  }
  SECTION("wrong buffers and options") {
    BatchSampler s(d, {}, {.batch_size = 4}, 1);
    BatchBuffers buf(3, d);
    CHECK_THROWS_WITH(s.next(buf.x, buf.y), Catch::Contains("x is f32 [3, 1, 4, 4], expected f32 [4, 1, 4, 4]"));
    CHECK_THROWS_WITH(BatchSampler(d, {}, {.batch_size = 0}, 1), Catch::Contains("batch size 0"));
    CHECK_THROWS_WITH(BatchSampler(d, {10}, {}, 1), Catch::Contains("index 10 outside [0, 10)"));
  }
}

TEST_CASE("BatchSampler: augmentation crops with zero padding and flips, reproducibly") {
  // One 1x3x5 image with distinct pixel values 1..15.
  Dataset d;
  d.N = 1, d.C = 1, d.H = 3, d.W = 5, d.num_classes = 1, d.source = "one";
  for (int p = 0; p < 15; ++p) d.pixels.push_back(uint8_t(p + 1));
  d.labels = {0};
  auto at = [&](int y, int x) { return (y < 0 || y >= 3 || x < 0 || x >= 5) ? 0.0f : kByteToUnit[d.pixels[size_t(y * 5 + x)]]; };

  SECTION("flip only: each draw is the image or its mirror, both occur") {
    BatchSampler s(d, {}, {.batch_size = 1, .augment = {.horizontal_flip = true}}, 3);
    BatchBuffers buf(1, d);
    int flipped = 0, plain = 0;
    for (int i = 0; i < 64; ++i) {
      s.next(buf.x, buf.y);
      bool is_plain = true, is_flip = true;
      for (int y = 0; y < 3; ++y)
        for (int x = 0; x < 5; ++x) {
          is_plain &= buf.xs[size_t(y * 5 + x)] == at(y, x);
          is_flip &= buf.xs[size_t(y * 5 + x)] == at(y, 4 - x);
        }
      REQUIRE((is_plain || is_flip));
      (is_plain ? plain : flipped) += 1;
    }
    CHECK(plain > 10);
    CHECK(flipped > 10);
  }
  SECTION("crop: each draw is a shifted window with zeros outside, shifts within the padding") {
    const int pad = 2;
    BatchSampler s(d, {}, {.batch_size = 1, .augment = {.crop_padding = pad}}, 5);
    BatchBuffers buf(1, d);
    std::set<std::pair<int, int>> shifts;
    for (int i = 0; i < 200; ++i) {
      s.next(buf.x, buf.y);
      int found = 0;
      for (int dy = -pad; dy <= pad; ++dy)
        for (int dx = -pad; dx <= pad; ++dx) {
          bool match = true;
          for (int y = 0; y < 3; ++y)
            for (int x = 0; x < 5; ++x) match &= buf.xs[size_t(y * 5 + x)] == at(y + dy, x + dx);
          if (match) {
            shifts.insert({dy, dx});
            ++found;
          }
        }
      REQUIRE(found == 1);
    }
    CHECK(shifts.size() == 25);  // every offset in [-2, 2]^2 drawn at least once in 200 tries
  }
  SECTION("same seed, same augmented batches") {
    Dataset many = numbered(20, 2, 1, 6, 6);
    BatchOptions o{.batch_size = 5, .augment = {.crop_padding = 2, .horizontal_flip = true}};
    BatchSampler a(many, {}, o, 9), b(many, {}, o, 9);
    BatchBuffers ba(5, many), bb(5, many);
    for (int i = 0; i < 8; ++i) {
      a.next(ba.x, ba.y);
      b.next(bb.x, bb.y);
      REQUIRE(ba.xs == bb.xs);
    }
  }
}

namespace {

struct EpisodeBuffers {
  std::vector<float> sx, qx;
  std::vector<int32_t> sy, qy;
  Tensor support_x, support_y, query_x, query_y;
  EpisodeBuffers(EpisodeShape e, Shape img) {
    int64_t elems = img.numel();
    sx.resize(size_t(e.n_way * e.k_shot * elems));
    qx.resize(size_t(e.n_way * e.q_query * elems));
    sy.resize(size_t(e.n_way * e.k_shot));
    qy.resize(size_t(e.n_way * e.q_query));
    support_x = Tensor(sx.data(), Shape{e.n_way * e.k_shot, img[0], img[1], img[2]});
    query_x = Tensor(qx.data(), Shape{e.n_way * e.q_query, img[0], img[1], img[2]});
    support_y = Tensor(sy.data(), Shape{e.n_way * e.k_shot}, DType::i32);
    query_y = Tensor(qy.data(), Shape{e.n_way * e.q_query}, DType::i32);
  }
};

}  // namespace

TEST_CASE("EpisodeSampler: N-way K-shot episodes over a class split") {
  Dataset d = numbered(200, 10);  // 20 images per class
  const std::vector<int32_t> split = {0, 1, 2, 5, 8};
  const EpisodeShape shape{.n_way = 3, .k_shot = 2, .q_query = 4};
  EpisodeSampler a(d, split, shape, 11), b(d, split, shape, 11), c(d, split, shape, 12);
  EpisodeBuffers buf(shape, d.image_shape());
  bool differs = false;
  for (int ep = 0; ep < 50; ++ep) {
    const Episode& e = a.next(buf.support_x, buf.support_y, buf.query_x, buf.query_y);
    const Episode& eb = b.next();
    const Episode& ec = c.next();
    REQUIRE(e.classes == eb.classes);
    REQUIRE(e.support == eb.support);
    REQUIRE(e.query == eb.query);
    differs |= e.support != ec.support || e.classes != ec.classes;

    std::set<int32_t> classes(e.classes.begin(), e.classes.end());
    REQUIRE(classes.size() == 3);
    for (int32_t cls : classes) REQUIRE(std::count(split.begin(), split.end(), cls) == 1);
    std::set<int64_t> items;
    for (size_t r = 0; r < 6; ++r) {
      int64_t id = id_of(buf.sx[r * 16]);
      REQUIRE(id == e.support[r]);
      REQUIRE(buf.sy[r] == int32_t(r / 2));                       // relabelled, class-major
      REQUIRE(d.label(id) == e.classes[size_t(buf.sy[r])]);       // episode label j is class j
      REQUIRE(items.insert(id).second);
    }
    for (size_t r = 0; r < 12; ++r) {
      int64_t id = id_of(buf.qx[r * 16]);
      REQUIRE(id == e.query[r]);
      REQUIRE(buf.qy[r] == int32_t(r / 4));
      REQUIRE(d.label(id) == e.classes[size_t(buf.qy[r])]);
      REQUIRE(items.insert(id).second);  // no image in both support and query
    }
  }
  CHECK(differs);

  CHECK_THROWS_WITH(EpisodeSampler(d, {0, 1}, shape, 1), Catch::Contains("3-way episodes need 3 classes, the class split has 2"));
  CHECK_THROWS_WITH(EpisodeSampler(d, {0, 1, 1}, shape, 1), Catch::Contains("class 1 is listed twice"));
  CHECK_THROWS_WITH(EpisodeSampler(d, {0, 1, 10}, shape, 1), Catch::Contains("class 10 is outside [0, 10)"));
  CHECK_THROWS_WITH(EpisodeSampler(d, split, {.n_way = 3, .k_shot = 5, .q_query = 16}, 1),
                    Catch::Contains("has 20 images, fewer than the 5 support + 16 query"));
  EpisodeBuffers wrong({.n_way = 3, .k_shot = 1, .q_query = 4}, d.image_shape());
  CHECK_THROWS_WITH(a.next(wrong.support_x, wrong.support_y, wrong.query_x, wrong.query_y),
                    Catch::Contains("support_x is f32 [3, 1, 4, 4], expected f32 [6, 1, 4, 4]"));
}

TEST_CASE("EpisodeSampler: given the class pools, the same episodes as listing them itself") {
  Dataset d = numbered(200, 10);
  const std::vector<int32_t> split = {0, 1, 2, 5, 8};
  const EpisodeShape shape{.n_way = 3, .k_shot = 2, .q_query = 4};
  const std::vector<std::vector<int64_t>> pools = d.indices_by_class();
  for (uint64_t seed : {1, 2, 3}) {
    EpisodeSampler a(d, split, shape, seed), b(d, pools, split, shape, seed);
    for (int ep = 0; ep < 20; ++ep) {
      const Episode& e = a.next();
      const Episode& eb = b.next();
      REQUIRE(e.classes == eb.classes);
      REQUIRE(e.support == eb.support);
      REQUIRE(e.query == eb.query);
    }
    // It holds the split's pools only.
    CHECK(b.bytes() <= a.bytes());
  }
  CHECK(pools == d.indices_by_class());  // copied, not drawn from in place
  CHECK_THROWS_WITH(EpisodeSampler(d, std::vector<std::vector<int64_t>>(3), split, shape, 1),
                    Catch::Contains("3 class pools for a set of 10 classes"));
}

TEST_CASE("EpisodeSampler: sorted labels follow the class id, random ones take every order") {
  Dataset d = numbered(200, 10);
  const std::vector<int32_t> split = {8, 2, 5};
  EpisodeShape shape{.n_way = 3, .k_shot = 1, .q_query = 2};
  EpisodeSampler random(d, split, shape, 3);
  shape.sorted_labels = true;
  EpisodeSampler sorted(d, split, shape, 3);
  EpisodeBuffers buf(shape, d.image_shape());
  std::set<std::vector<int32_t>> orders;
  for (int ep = 0; ep < 40; ++ep) {
    orders.insert(random.next().classes);
    const Episode& e = sorted.next(buf.support_x, buf.support_y, buf.query_x, buf.query_y);
    REQUIRE(e.classes == std::vector<int32_t>{2, 5, 8});
    for (size_t r = 0; r < 3; ++r) REQUIRE(d.label(id_of(buf.sx[r * 16])) == std::vector<int32_t>{2, 5, 8}[r]);
  }
  CHECK(orders.size() == 6);  // all 3! orders of the same three classes
}

TEST_CASE("EpisodeSampler: decodes episodes from an image tree on demand") {
  namespace fs = std::filesystem;
  fs::path root = fs::temp_directory_path() / ("onnas_test_episodes_" + std::to_string(::getpid()));
  fs::remove_all(root);
  // 4 classes x 3 images; image value encodes (class, item): 10 * class + item.
  for (int c = 0; c < 4; ++c) {
    fs::create_directories(root / ("class" + std::to_string(c)));
    for (int i = 0; i < 3; ++i) {
      std::ofstream out(root / ("class" + std::to_string(c)) / (std::to_string(i) + ".pgm"), std::ios::binary);
      out << "P5\n2 2\n255\n" << std::string(4, char(10 * c + i));
    }
  }
  ImageFolderIndex tree = list_image_folder(root.string());
  ImageLoadOptions opt{.channels = 1, .height = 2, .width = 2};
  EpisodeShape shape{.n_way = 2, .k_shot = 1, .q_query = 2};
  EpisodeSampler s(tree, opt, {1, 2, 3}, shape, 4);
  EpisodeBuffers buf(shape, Shape{1, 2, 2});
  for (int ep = 0; ep < 10; ++ep) {
    const Episode& e = s.next(buf.support_x, buf.support_y, buf.query_x, buf.query_y);
    for (size_t r = 0; r < 2; ++r) {
      int v = int(std::lround(buf.sx[r * 4] * 255));
      CHECK(v == 10 * e.classes[r] + int(e.support[r]) - 3 * e.classes[r]);  // items number the tree class by class
      CHECK(buf.sy[r] == int32_t(r));
    }
    for (size_t r = 0; r < 4; ++r) {
      int v = int(std::lround(buf.qx[r * 4] * 255));
      CHECK(v / 10 == e.classes[r / 2]);
      CHECK(v % 10 != int(e.support[r / 2]) - 3 * e.classes[r / 2]);
    }
  }
  fs::remove_all(root);
}

TEST_CASE("Fashion-MNIST class split: disjoint, complete") {
  ClassSplit cs = fashion_mnist_class_split();
  std::set<int32_t> all(cs.meta_train.begin(), cs.meta_train.end());
  for (int32_t c : cs.meta_test) CHECK(all.insert(c).second);
  CHECK(all.size() == 10);
  CHECK(cs.meta_test.size() == 5);
}

TEST_CASE("Fashion-MNIST class split from a list of held-out classes") {
  ClassSplit cs = fashion_mnist_class_split({9, 1, 3});
  CHECK(cs.meta_test == std::vector<int32_t>{1, 3, 9});
  CHECK(cs.meta_train == std::vector<int32_t>{0, 2, 4, 5, 6, 7, 8});
  CHECK_THROWS_WITH(fashion_mnist_class_split({1, 10}), Catch::Contains("class 10 is not a Fashion-MNIST class"));
  CHECK_THROWS_WITH(fashion_mnist_class_split({-1}), Catch::Contains("class -1 is not"));
  CHECK_THROWS_WITH(fashion_mnist_class_split({2, 2}), Catch::Contains("listed twice"));
  CHECK_THROWS_WITH(fashion_mnist_class_split({}), Catch::Contains("classes on both sides"));
  CHECK_THROWS_WITH(fashion_mnist_class_split({0, 1, 2, 3, 4, 5, 6, 7, 8, 9}), Catch::Contains("both sides"));
}
