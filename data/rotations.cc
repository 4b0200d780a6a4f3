#include "data/rotations.h"

#include <algorithm>
#include <cstring>

#include "runtime/error.h"

namespace onnas::data {

void rotate_quarter_turns(uint8_t* image, int64_t C, int64_t S, int quarter_turns) {
  const int t = ((quarter_turns % 4) + 4) % 4;
  for (int64_t c = 0; c < C; ++c) {
    uint8_t* m = image + c * S * S;
    auto at = [&](int64_t y, int64_t x) -> uint8_t& { return m[y * S + x]; };
    for (int k = 0; k < t; ++k)
      // One counter-clockwise quarter turn, out[y][x] = in[x][S-1-y], by 4-cycles.
      for (int64_t y = 0; y < S / 2; ++y)
        for (int64_t x = y; x < S - 1 - y; ++x) {
          const uint8_t tmp = at(y, x);
          at(y, x) = at(x, S - 1 - y);
          at(x, S - 1 - y) = at(S - 1 - y, S - 1 - x);
          at(S - 1 - y, S - 1 - x) = at(S - 1 - x, y);
          at(S - 1 - x, y) = tmp;
        }
  }
}

std::vector<std::pair<int32_t, int>> RotatedClasses::all_turns(int32_t num_classes) {
  std::vector<std::pair<int32_t, int>> out;
  for (int32_t c = 0; c < num_classes; ++c)
    for (int r = 0; r < 4; ++r) out.emplace_back(c, r);
  return out;
}

RotatedClasses::RotatedClasses(const ImageSet& base, std::vector<std::pair<int32_t, int>> classes)
    : base_(base), classes_(std::move(classes)) {
  if (base.H != base.W) fail("rotated classes of '{}': images of {} x {} are not square", base.source, base.H, base.W);
  C = base.C;
  H = base.H;
  W = base.W;
  num_classes = int32_t(classes_.size());
  source = base.source + " (rotated classes)";
  std::vector<bool> used(size_t(base.num_classes), false);
  for (const auto& [c, r] : classes_) {
    if (c < 0 || c >= base.num_classes)
      fail("rotated classes of '{}': class {} is outside [0, {})", base.source, c, base.num_classes);
    if (r < 0 || r > 3) fail("rotated classes of '{}': {} quarter turns is outside 0..3", base.source, r);
    used[size_t(c)] = true;
  }
  base_items_ = base.indices_by_class();
  for (size_t c = 0; c < base_items_.size(); ++c)
    if (!used[c]) std::vector<int64_t>().swap(base_items_[c]);
  int64_t n = 0;
  for (const auto& [c, r] : classes_) {
    class_start_.push_back(n);
    n += int64_t(base_items_[size_t(c)].size());
  }
  class_start_.push_back(n);
  N = n;
  set_normalization(base.normalization());
}

int32_t RotatedClasses::label(int64_t i) const {
  if (i < 0 || i >= N) fail("rotated classes of '{}': image {} outside [0, {})", base_.source, i, N);
  return int32_t(std::upper_bound(class_start_.begin(), class_start_.end(), i) - class_start_.begin() - 1);
}

void RotatedClasses::read_labels(int64_t first, std::span<int32_t> out) const {
  if (out.empty()) return;
  int32_t k = label(first);
  for (size_t j = 0; j < out.size(); ++j) {
    while (first + int64_t(j) >= class_start_[size_t(k) + 1]) ++k;
    out[j] = k;
  }
}

const uint8_t* RotatedClasses::raw_image(int64_t i, uint8_t* scratch) const {
  const int32_t k = label(i);
  const auto [c, r] = classes_[size_t(k)];
  const int64_t item = base_items_[size_t(c)][size_t(i - class_start_[size_t(k)])];
  const uint8_t* px = base_.raw_image(item, scratch);
  if (r == 0) return px;
  if (px != scratch) std::memcpy(scratch, px, size_t(image_elems()));
  rotate_quarter_turns(scratch, C, H, r);
  return scratch;
}

size_t RotatedClasses::view_bytes() const {
  size_t b = sizeof(*this) + classes_.capacity() * sizeof(classes_[0]) + class_start_.capacity() * sizeof(int64_t) +
             base_items_.capacity() * sizeof(base_items_[0]);
  for (const auto& v : base_items_) b += v.capacity() * sizeof(int64_t);
  return b;
}

size_t RotatedClasses::bytes() const { return view_bytes() + base_.bytes(); }

std::string RotatedClasses::describe() const {
  return fmt::format("{} classes (rotations of {} classes) over {}; {} in memory for the view", num_classes,
                     base_.num_classes, base_.describe(), format_data_bytes(double(view_bytes())));
}

}  // namespace onnas::data
