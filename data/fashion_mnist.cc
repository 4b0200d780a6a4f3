#include "data/fashion_mnist.h"

#include <algorithm>

#include "data/idx.h"
#include "runtime/error.h"

namespace onnas::data {

Dataset load_fashion_mnist(const std::string& dir, Split split, int64_t max_images,
                           std::span<const int32_t> only_classes) {
  const std::string prefix = dir + (split == Split::train ? "/train" : "/t10k");
  return load_idx(prefix + "-images-idx3-ubyte.gz", prefix + "-labels-idx1-ubyte.gz", int32_t(kFashionMnistClassNames.size()),
                  max_images, only_classes);
}

ClassSplit fashion_mnist_class_split() { return {{0, 2, 5, 7, 8}, {1, 3, 4, 6, 9}}; }

ClassSplit fashion_mnist_class_split(const std::vector<int32_t>& meta_test) {
  const int32_t n = int32_t(kFashionMnistClassNames.size());
  ClassSplit cs;
  for (int32_t c : meta_test) {
    if (c < 0 || c >= n) fail("meta-test class {} is not a Fashion-MNIST class (0..{})", c, n - 1);
    if (std::count(meta_test.begin(), meta_test.end(), c) > 1) fail("meta-test class {} is listed twice", c);
  }
  for (int32_t c = 0; c < n; ++c)
    (std::find(meta_test.begin(), meta_test.end(), c) == meta_test.end() ? cs.meta_train : cs.meta_test).push_back(c);
  if (cs.meta_test.empty() || cs.meta_train.empty())
    fail("a Fashion-MNIST split needs classes on both sides ({} meta-test classes given)", meta_test.size());
  return cs;
}

}  // namespace onnas::data
