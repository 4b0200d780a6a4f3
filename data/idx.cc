#include "data/idx.h"

#include <algorithm>

#include "data/gz_file.h"
#include "runtime/error.h"

namespace onnas::data {

namespace {

uint32_t big_endian_u32(const uint8_t* b) {
  return (uint32_t(b[0]) << 24) | (uint32_t(b[1]) << 16) | (uint32_t(b[2]) << 8) | uint32_t(b[3]);
}

}  // namespace

// Reads the magic and the dims; refuses anything but u8 data of `ndim` dimensions.
std::vector<uint32_t> read_idx_header(GzFile& f, uint32_t expected_magic, int ndim) {
  uint8_t b[4];
  f.read_exact(b, 4, "the magic number");
  uint32_t magic = big_endian_u32(b);
  if (magic != expected_magic) {
    const char* hint = magic == kIdxLabelsMagic ? " (this is an IDX labels file)"
                       : magic == kIdxImagesMagic ? " (this is an IDX images file)"
                       : (magic >> 16) != 0       ? " (not an IDX file?)"
                                                  : " (an IDX file of another type or rank)";
    fail("IDX file '{}': magic number 0x{:08x}, expected 0x{:08x}{}", f.path(), magic, expected_magic, hint);
  }
  std::vector<uint32_t> dims(static_cast<size_t>(ndim));
  for (int i = 0; i < ndim; ++i) {
    f.read_exact(b, 4, "the dimensions");
    dims[size_t(i)] = big_endian_u32(b);
    if (dims[size_t(i)] == 0) fail("IDX file '{}': dimension {} is zero", f.path(), i);
  }
  return dims;
}

Dataset load_idx(const std::string& images_path, const std::string& labels_path, int32_t num_classes,
                 int64_t max_images, std::span<const int32_t> only_classes) {
  if (num_classes < 0 || num_classes > 256) fail("load_idx: num_classes {} is outside [0, 256]", num_classes);
  GzFile fi(images_path, "IDX images");
  std::vector<uint32_t> idims = read_idx_header(fi, kIdxImagesMagic, 3);
  const uint64_t n = idims[0], rows = idims[1], cols = idims[2];
  if (rows > kIdxMaxSide || cols > kIdxMaxSide)
    fail("IDX file '{}': image size {} x {} is absurd (at most {} per side); corrupt header?", images_path, rows, cols,
         kIdxMaxSide);
  // n < 2^32 and rows * cols <= 2^32, so the product fits in u64; bound it anyway by
  // what a float copy can hold, for a clear message instead of a failed allocation.
  const uint64_t pixels = n * rows * cols;
  if (pixels > (uint64_t(1) << 40))
    fail("IDX file '{}': {} images of {} x {} is absurd; corrupt header?", images_path, n, rows, cols);

  GzFile fl(labels_path, "IDX labels");
  std::vector<uint32_t> ldims = read_idx_header(fl, kIdxLabelsMagic, 1);
  // Compare counts before reading any pixels: a mismatched pair is the common mistake.
  if (ldims[0] != n)
    fail("IDX files disagree: '{}' has {} images but '{}' has {} labels", images_path, n, labels_path, ldims[0]);

  // With max_images, the rest of both files is read through (to check them whole) but
  // not kept: memory follows what is used, not what a header declares.
  const uint64_t kept = max_images > 0 ? std::min(n, uint64_t(max_images)) : n;
  std::vector<uint8_t> raw_labels = fl.read_payload(n, "the labels", kept);
  fl.expect_end();
  std::vector<uint8_t> raw;
  if (only_classes.empty()) {
    raw = fi.read_payload(pixels, "the pixels", kept * rows * cols);
  } else {
    // The kept images are copied out of the stream image by image: memory holds them
    // and one image, and the file is still read (and checked) whole.
    auto wanted = [&](uint8_t label) {
      return std::find(only_classes.begin(), only_classes.end(), int32_t(label)) != only_classes.end();
    };
    const size_t image_bytes = size_t(rows * cols);
    raw.reserve(size_t(std::count_if(raw_labels.begin(), raw_labels.end(), wanted)) * image_bytes);
    std::vector<uint8_t> image(image_bytes);
    std::vector<uint8_t> labels;
    labels.reserve(raw.capacity() / image_bytes);
    for (uint64_t i = 0; i < n; ++i) {
      const bool keep = i < kept && wanted(raw_labels[size_t(i)]);
      fi.read_exact(image.data(), image_bytes, "the pixels");
      if (keep) {
        raw.insert(raw.end(), image.begin(), image.end());
        labels.push_back(raw_labels[size_t(i)]);
      }
    }
    raw_labels = std::move(labels);
    if (raw_labels.empty())
      fail("IDX file '{}': no image has one of the classes {}", labels_path, fmt::format("{}", fmt::join(only_classes, ",")));
  }
  fi.expect_end();

  Dataset d;
  d.N = int64_t(raw_labels.size());
  d.C = 1;
  d.H = int64_t(rows);
  d.W = int64_t(cols);
  d.source = images_path;
  const int max_label = *std::max_element(raw_labels.begin(), raw_labels.end());
  if (num_classes == 0) {
    d.num_classes = max_label + 1;
  } else {
    d.num_classes = num_classes;
    if (max_label >= num_classes) {
      size_t at = size_t(std::find(raw_labels.begin(), raw_labels.end(), uint8_t(max_label)) - raw_labels.begin());
      fail("IDX file '{}': label {} of item {} is out of range (expected < {})", labels_path, max_label, at, num_classes);
    }
  }
  d.labels.assign(raw_labels.begin(), raw_labels.end());
  d.pixels = std::move(raw);  // kept as stored; scaled to [0, 1] when a batch is read
  return d;
}

}  // namespace onnas::data
