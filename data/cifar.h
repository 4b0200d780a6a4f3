// CIFAR-10 binary batches into one Dataset of 3x32x32 colour images in [0, 1].
//
//   Dataset train = load_cifar10({"cifar-10-batches-bin/data_batch_1.bin", ...});
//   Dataset train = load_cifar10_dir("cifar-10-batches-bin", Split::train);  // batches 1-5
//
// Each record is 1 label byte (0..9) then 3072 pixel bytes: the red plane, then green,
// then blue, each 32x32 row-major — already the CHW order we keep. A file whose size
// is not a multiple of 3073 or with a label >= 10 is refused, naming the file (and record).
#pragma once

#include <span>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/fashion_mnist.h"

namespace onnas::data {

constexpr int64_t kCifarSide = 32;
constexpr int64_t kCifarImageBytes = 3 * kCifarSide * kCifarSide;
constexpr int64_t kCifarRecordBytes = 1 + kCifarImageBytes;
constexpr int32_t kCifar10Classes = 10;

Dataset load_cifar10(std::span<const std::string> batch_files);
// data_batch_1.bin .. data_batch_5.bin (train) or test_batch.bin (test) in `dir`.
Dataset load_cifar10_dir(const std::string& dir, Split split);

}  // namespace onnas::data
