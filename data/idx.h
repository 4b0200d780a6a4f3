// IDX files (the MNIST family: MNIST, Fashion-MNIST, KMNIST, EMNIST), plain or
// gzip-compressed, into a Dataset of grey images with values in [0, 1].
//
//   Dataset d = load_idx("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz");
//   d.N == 60000; d.C == 1; d.H == d.W == 28;
//
// Format: big-endian. Images: magic 0x00000803 (u8, 3 dims), N, rows, cols, then
// N*rows*cols bytes. Labels: magic 0x00000801 (u8, 1 dim), N, then N bytes. Everything
// is checked: magic, non-zero and sane dims, equal counts, exact file sizes (for gzip,
// by reading through), labels below num_classes.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace onnas::data {

class GzFile;

constexpr uint32_t kIdxImagesMagic = 0x00000803;
constexpr uint32_t kIdxLabelsMagic = 0x00000801;
// Rows and columns beyond this are a corrupt header, not an image.
constexpr uint32_t kIdxMaxSide = 1u << 16;

// num_classes = 0 infers it as max label + 1; otherwise every label must be below it.
// The pixels are kept as stored (uint8), Dataset::pixels. max_images > 0 keeps only the
// first max_images images (both files are still read and checked whole; labels are
// checked for the images kept). `only_classes` non-empty keeps only the images whose
// label is one of them, in file order, with their labels unchanged (meta-training holds
// its meta-train classes, not the whole file); memory is what is kept, never the file.
Dataset load_idx(const std::string& images_path, const std::string& labels_path, int32_t num_classes = 0,
                 int64_t max_images = 0, std::span<const int32_t> only_classes = {});

// Reads an IDX header (magic, then `ndim` dimensions) from the start of `f`; refuses
// another magic and zero dimensions, naming the file (shared with the streamed reader,
// data/streaming.h).
std::vector<uint32_t> read_idx_header(GzFile& f, uint32_t expected_magic, int ndim);

}  // namespace onnas::data
