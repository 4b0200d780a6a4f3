#include "data/fashion_mnist.h"

#include "data/idx.h"

namespace onnas::data {

Dataset load_fashion_mnist(const std::string& dir, Split split) {
  const std::string prefix = dir + (split == Split::train ? "/train" : "/t10k");
  return load_idx(prefix + "-images-idx3-ubyte.gz", prefix + "-labels-idx1-ubyte.gz", int32_t(kFashionMnistClassNames.size()));
}

ClassSplit fashion_mnist_class_split() { return {{0, 1, 2, 5, 8}, {3, 4, 6, 7, 9}}; }

}  // namespace onnas::data
