// The few-shot protocols' loaders (data/fewshot_sets.h, data/rotations.h and the split
// files of data/image_folder.h) on small synthetic trees and CSV files: Omniglot's
// background / evaluation split, rotations as classes, ProtoNets' class lists,
// miniImageNet's CSV splits and class trees; 20-way episodes over rotated classes.
#include <catch2/catch.hpp>
#include <stb/stb_image_write.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "data/episode_sampler.h"
#include "data/fewshot_sets.h"
#include "data/image_folder.h"
#include "data/rotations.h"
#include "runtime/error.h"

using namespace onnas;
using namespace onnas::data;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    static int counter = 0;
    path = fs::temp_directory_path() / ("onnas_test_protocols_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

// A grey S x S PNG whose pixel (y, x) is (seed * 31 + y * S + x) mod 256: every image
// distinct, every orientation distinguishable.
void write_grey(const fs::path& path, int S, int seed) {
  fs::create_directories(path.parent_path());
  std::vector<uint8_t> px(size_t(S * S));
  for (int p = 0; p < S * S; ++p) px[size_t(p)] = uint8_t((seed * 31 + p) & 0xff);
  REQUIRE(stbi_write_png(path.string().c_str(), S, S, 1, px.data(), S) != 0);
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
}

// Omniglot-like: background {Alpha: 3 characters, Beta: 2}, evaluation {Gamma: 2}, 4 drawers each.
void omniglot_tree(const fs::path& root, int S = 6) {
  int seed = 0;
  auto alphabet = [&](const std::string& split, const std::string& name, int characters) {
    for (int c = 1; c <= characters; ++c)
      for (int d = 1; d <= 4; ++d)
        write_grey(root / split / name / ("character0" + std::to_string(c)) / ("0" + std::to_string(d) + ".png"), S, seed++);
  };
  alphabet("images_background", "Alpha", 3);
  alphabet("images_background", "Beta", 2);
  alphabet("images_evaluation", "Gamma", 2);
}

OmniglotOptions omniglot(const fs::path& root, bool rotations = false, const fs::path& split_dir = {}, int size = 6) {
  OmniglotOptions o;
  o.root = root.string();
  o.rotations = rotations;
  o.split_dir = split_dir.string();
  o.image_size = size;
  return o;
}

MiniImageNetOptions mini(const fs::path& root, int size = 84, int channels = 3) {
  MiniImageNetOptions o;
  o.root = root.string();
  o.image_size = size;
  o.channels = channels;
  return o;
}

std::vector<uint8_t> raw(const ImageSet& s, int64_t i) {
  std::vector<uint8_t> scratch(size_t(s.image_elems()));
  const uint8_t* p = s.raw_image(i, scratch.data());
  return std::vector<uint8_t>(p, p + s.image_elems());
}

}  // namespace

TEST_CASE("rotate_quarter_turns: counter-clockwise, as numpy.rot90") {
  for (int S : {1, 2, 3, 4, 5}) {
    std::vector<uint8_t> img(size_t(2 * S * S));
    for (size_t p = 0; p < img.size(); ++p) img[p] = uint8_t(p);
    for (int t = 0; t < 4; ++t) {
      std::vector<uint8_t> r = img;
      rotate_quarter_turns(r.data(), 2, S, t);
      for (int c = 0; c < 2; ++c)
        for (int y = 0; y < S; ++y)
          for (int x = 0; x < S; ++x) {
            // One turn: out[y][x] = in[x][S-1-y]; t turns applied as coordinates.
            int sy = y, sx = x;
            for (int k = 0; k < t; ++k) {
              const int ny = sx, nx = S - 1 - sy;
              sy = ny, sx = nx;
            }
            REQUIRE(r[size_t((c * S + y) * S + x)] == img[size_t((c * S + sy) * S + sx)]);
          }
    }
  }
  // A 2x2 [[0, 1], [2, 3]] turned once is [[1, 3], [0, 2]], as numpy.rot90 gives.
  std::vector<uint8_t> m = {0, 1, 2, 3};
  rotate_quarter_turns(m.data(), 1, 2, 1);
  CHECK(m == std::vector<uint8_t>{1, 3, 0, 2});
}

TEST_CASE("Omniglot layout: background / evaluation, and rotations as classes") {
  TempDir dir;
  omniglot_tree(dir.path);
  FewShotSets plain = open_omniglot(omniglot(dir.path));
  const ImageSet& train = *plain.sets[FewShotSets::meta_train];
  CHECK(train.num_classes == 5);
  CHECK(train.N == 20);
  CHECK(plain.sets[FewShotSets::meta_val] == plain.sets[FewShotSets::meta_train]);
  CHECK(plain.sets[FewShotSets::meta_test]->num_classes == 2);
  CHECK(plain.description.find("images_evaluation") != std::string::npos);

  FewShotSets rot = open_omniglot(omniglot(dir.path, true));
  const ImageSet& r = *rot.sets[FewShotSets::meta_train];
  CHECK(r.num_classes == 20);
  CHECK(r.N == 80);
  CHECK(rot.sets[FewShotSets::meta_test]->num_classes == 8);
  // The rotated view's bytes hold what it reads through: the image set (its cache) too.
  // (The plain meta-train set is the same tree with the same cache as the one viewed.)
  CHECK(r.bytes() == dynamic_cast<const RotatedClasses&>(r).view_bytes() + train.bytes());
  // Class 4c + t holds class c's images turned t times.
  const std::vector<std::vector<int64_t>> by_class = r.indices_by_class(), base = train.indices_by_class();
  for (int32_t c = 0; c < 5; ++c)
    for (int t = 0; t < 4; ++t) {
      REQUIRE(by_class[size_t(4 * c + t)].size() == 4);
      for (int k = 0; k < 4; ++k) {
        std::vector<uint8_t> want = raw(train, base[size_t(c)][size_t(k)]);
        rotate_quarter_turns(want.data(), 1, 6, t);
        REQUIRE(raw(r, by_class[size_t(4 * c + t)][size_t(k)]) == want);
        REQUIRE(r.label(by_class[size_t(4 * c + t)][size_t(k)]) == 4 * c + t);
      }
    }
  // 20-way 1-shot episodes over the rotated meta-train classes.
  EpisodeSampler episodes(r, {}, {.n_way = 20, .k_shot = 1, .q_query = 3}, 5);
  std::set<int32_t> seen;
  for (int e = 0; e < 3; ++e) {
    const Episode& ep = episodes.next();
    seen.insert(ep.classes.begin(), ep.classes.end());
  }
  CHECK(seen.size() == 20);
  CHECK_THROWS_WITH(EpisodeSampler(r, {}, {.n_way = 20, .k_shot = 2, .q_query = 3}, 5),
                    Catch::Contains("fewer than the 2 support + 3 query"));
  CHECK_THROWS_WITH(open_omniglot(omniglot(dir.path / "images_background")),
                    Catch::Contains("expected <root>/images_background and <root>/images_evaluation"));
}

TEST_CASE("Omniglot class lists (ProtoNets' split files), with and without rotations") {
  TempDir dir;
  omniglot_tree(dir.path);
  const fs::path splits = dir.path / "splits";
  fs::create_directories(splits);
  // Classes from both image sets; explicit rotations in train, none in test.
  write_text(splits / "train.txt", "Alpha/character01/rot000\nAlpha/character01/rot180\n# a comment\n\nGamma/character02/rot090\n");
  write_text(splits / "test.txt", "Beta/character02\nAlpha/character03\r\n");
  FewShotSets s = open_omniglot(omniglot(dir.path, false, splits));
  const ImageSet& train = *s.sets[FewShotSets::meta_train];
  CHECK(train.num_classes == 3);
  CHECK(train.N == 12);
  CHECK(s.sets[FewShotSets::meta_val] == s.sets[FewShotSets::meta_train]);  // no val.txt
  const ImageSet& test = *s.sets[FewShotSets::meta_test];
  CHECK(test.num_classes == 2);
  // Without rotations named, test's classes are the folders as they are, in the list's order.
  FewShotSets bg = open_omniglot(omniglot(dir.path));
  const ImageFolderIndex bg_tree = list_image_folder((dir.path / "images_background").string(), 2);
  auto find = [&](const std::string& name) {
    return int32_t(std::find(bg_tree.class_names.begin(), bg_tree.class_names.end(), name) - bg_tree.class_names.begin());
  };
  CHECK(raw(test, 0) == raw(*bg.sets[0], bg.sets[0]->indices_by_class()[size_t(find("Beta/character02"))][0]));
  // Class 1 of train is Alpha/character01 turned twice.
  std::vector<uint8_t> want = raw(*bg.sets[0], bg.sets[0]->indices_by_class()[size_t(find("Alpha/character01"))][2]);
  rotate_quarter_turns(want.data(), 1, 6, 2);
  CHECK(raw(train, train.indices_by_class()[1][2]) == want);
  // --rotations: every listed class without a rotation in all four turns.
  FewShotSets all = open_omniglot(omniglot(dir.path, true, splits));
  CHECK(all.sets[FewShotSets::meta_test]->num_classes == 8);
  CHECK(all.sets[FewShotSets::meta_train]->num_classes == 3);

  write_text(splits / "val.txt", "Alpha/character09\n");
  CHECK_THROWS_WITH(open_omniglot(omniglot(dir.path, false, splits)),
                    Catch::Contains("class folder 'Alpha/character09' is under none of"));
  write_text(splits / "val.txt", "Alpha/character01/rot045\n");
  CHECK_THROWS_WITH(open_omniglot(omniglot(dir.path, false, splits)),
                    Catch::Contains("line 1: rotation 'rot045'"));
}

TEST_CASE("miniImageNet: CSV split files beside the images, or class trees") {
  TempDir dir;
  const fs::path images = dir.path / "images";
  // 3 classes per split, 2 images each; file names as Ravi & Larochelle's (n<wnid><index>.jpg, PNG content).
  std::string csv[3];
  const char* splits[3] = {"train", "val", "test"};
  int seed = 0;
  for (int k = 0; k < 3; ++k) {
    csv[k] = "filename,label\n";
    for (int c = 0; c < 3; ++c)
      for (int i = 0; i < 2; ++i) {
        const std::string wnid = "n0" + std::to_string(k) + std::to_string(c);
        const std::string name = wnid + "0000000" + std::to_string(i) + ".jpg";
        write_grey(images / name, 8, seed++);
        csv[k] += name + "," + wnid + "\n";
      }
    write_text(dir.path / (std::string(splits[k]) + ".csv"), csv[k]);
  }
  FewShotSets s = open_mini_imagenet(mini(dir.path, 8));
  for (int k = 0; k < 3; ++k) {
    CHECK(s.sets[k]->num_classes == 3);
    CHECK(s.sets[k]->N == 6);
    CHECK(s.sets[k]->C == 3);
  }
  // Image 3 of val is class 1's second file: seed 6 + 3; grey widened to RGB.
  std::vector<uint8_t> px = raw(*s.sets[FewShotSets::meta_val], 3);
  CHECK(px[0] == uint8_t((9 * 31) & 0xff));
  CHECK(px[64] == px[0]);
  CHECK(s.sets[FewShotSets::meta_val]->label(3) == 1);

  SECTION("the CSV's errors name the line") {
    write_text(dir.path / "val.csv", "filename,label\nmissing.jpg,n099\n");
    CHECK_THROWS_WITH(open_mini_imagenet(mini(dir.path)),
                      Catch::Contains("val.csv' line 2: image 'missing.jpg' is in none of the folders"));
    write_text(dir.path / "val.csv", "filename,label\nx.jpg\n");
    CHECK_THROWS_WITH(open_mini_imagenet(mini(dir.path)), Catch::Contains("line 2: 'x.jpg' is not 'filename,label'"));
  }
  SECTION("class trees train/, val/, test/ when there are no CSV files") {
    TempDir trees;
    for (int k = 0; k < 3; ++k)
      for (int c = 0; c < 4; ++c)
        for (int i = 0; i < 2; ++i) write_grey(trees.path / splits[k] / ("class" + std::to_string(c)) / (std::to_string(i) + ".png"), 8, i);
    FewShotSets t = open_mini_imagenet(mini(trees.path, 8, 1));
    CHECK(t.sets[FewShotSets::meta_test]->num_classes == 4);
    CHECK(t.sets[FewShotSets::meta_test]->C == 1);
    CHECK_THROWS_WITH(open_mini_imagenet(mini(trees.path / "train")), Catch::Contains("expected train.csv"));
  }
}
