// Fashion-MNIST, the project's default data (Debian package dataset-fashion-mnist):
// 60,000 train + 10,000 test grey 28x28 images of 10 clothing classes, as IDX files.
//
//   Dataset train = load_fashion_mnist(kFashionMnistDir, Split::train);
//   ClassSplit cs = fashion_mnist_class_split();   // meta-train / meta-test classes
//   EpisodeSampler episodes(train, cs.meta_train, {5, 1, 15}, seed);
#pragma once

#include <array>
#include <span>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace onnas::data {

inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";
inline constexpr std::array<const char*, 10> kFashionMnistClassNames = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};

enum class Split { train, test };

// Reads {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz from `dir`; num_classes is 10.
// max_images > 0: only the first max_images are kept; only_classes non-empty: only
// the images of those classes (load_idx).
Dataset load_fashion_mnist(const std::string& dir = kFashionMnistDir, Split split = Split::train,
                           int64_t max_images = 0, std::span<const int32_t> only_classes = {});

// Disjoint classes for few-shot meta-learning: meta-train episodes draw from one set,
// meta-test episodes (unseen classes) from the other.
struct ClassSplit {
  std::vector<int32_t> meta_train;
  std::vector<int32_t> meta_test;
};

// Fashion-MNIST has only 10 classes, so 5-way meta-test needs all 5 held-out classes.
// Two families of look-alikes make the hard distinctions: tops (T-shirt, pullover,
// dress, coat, shirt) and footwear (sandal, sneaker, ankle boot). What meta-training
// can teach is telling look-alikes of a family apart, so meta-train holds a look-alike
// pair of each family and meta-test asks the same kind of question:
//   meta-train {0 T-shirt/top, 2 Pullover, 5 Sandal, 7 Sneaker, 8 Bag}
//   meta-test  {1 Trouser, 3 Dress, 4 Coat, 6 Shirt, 9 Ankle boot}
// (dress/coat/shirt are the hard part of meta-test). An earlier split held out
// {3, 4, 6, 7, 9}: meta-train then had a single shoe, never learned to tell footwear
// apart, and its meta cell adapted worse than a random start (README, "Few-shot").
// Any other split: fashion_mnist_class_split(meta_test), `--meta-test-classes`.
ClassSplit fashion_mnist_class_split();

// The split with `meta_test` held out and every other class meta-trained (for a user's
// own choice of split, `--meta-test-classes`); throws onnas::Error naming a class out of
// 0..9, a repeated class, or a side left empty.
ClassSplit fashion_mnist_class_split(const std::vector<int32_t>& meta_test);

}  // namespace onnas::data
