// Fashion-MNIST, the project's default data (Debian package dataset-fashion-mnist):
// 60,000 train + 10,000 test grey 28x28 images of 10 clothing classes, as IDX files.
//
//   Dataset train = load_fashion_mnist(kFashionMnistDir, Split::train);
//   ClassSplit cs = fashion_mnist_class_split();   // meta-train / meta-test classes
//   EpisodeSampler episodes(train, cs.meta_train, {5, 1, 15}, seed);
#pragma once

#include <array>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace onnas::data {

inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";
inline constexpr std::array<const char*, 10> kFashionMnistClassNames = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};

enum class Split { train, test };

// Reads {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz from `dir`; num_classes is 10.
Dataset load_fashion_mnist(const std::string& dir = kFashionMnistDir, Split split = Split::train);

// Disjoint classes for few-shot meta-learning: meta-train episodes draw from one set,
// meta-test episodes (unseen classes) from the other.
struct ClassSplit {
  std::vector<int32_t> meta_train;
  std::vector<int32_t> meta_test;
};

// Fashion-MNIST has only 10 classes, so 5-way meta-test needs all 5 held-out classes.
// The naive {0..4} / {5..9} split puts every footwear class (sandal, sneaker, ankle
// boot) and the bag in meta-test and none in meta-train: meta-test would measure
// transfer to a new domain, not to new classes of a known one. We split each family:
//   meta-train {0 T-shirt/top, 1 Trouser, 2 Pullover, 5 Sandal, 8 Bag}
//   meta-test  {3 Dress, 4 Coat, 6 Shirt, 7 Sneaker, 9 Ankle boot}
// Both sides hold tops and footwear, and both hold a hard pair of look-alikes
// (T-shirt/pullover in meta-train; coat/shirt and sneaker/ankle boot in meta-test), so
// what meta-train teaches (telling similar garments apart from few shots) is what
// meta-test asks for.
ClassSplit fashion_mnist_class_split();

// The split with `meta_test` held out and every other class meta-trained (for a user's
// own choice of split, `--meta-test-classes`); throws onnas::Error naming a class out of
// 0..9, a repeated class, or a side left empty.
ClassSplit fashion_mnist_class_split(const std::vector<int32_t>& meta_test);

}  // namespace onnas::data
