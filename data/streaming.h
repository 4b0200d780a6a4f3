// Streamed image sets: an ImageSet whose images stay in their file and are read when a
// batch or an episode asks for them, for devices that cannot hold the training set.
// Memory does not grow with the number of images (labels are read from the file too),
// except for an image tree's list of file names.
//
//   std::unique_ptr<ImageSet> train = open_idx_stream(dir + "/train-images-idx3-ubyte.gz",
//                                                     dir + "/train-labels-idx1-ubyte.gz", 10);
//   normalize(*train, channel_stats(*train));   // one pass over the file
//   BatchSampler batches(*train, {}, {.batch_size = 64}, seed);   // the same batches as in memory
//
// Backends:
//   - IDX (plain): pread of image i at its offset. A gzip'ed IDX file cannot be read at
//     an offset, so it is decompressed once, when opened, into an unlinked temporary
//     file in StreamOptions::temp_dir (disk, not memory, unless that folder is a tmpfs;
//     the file disappears when the set is closed or the process dies).
//   - CIFAR-10 binary batches: pread of record i (gzip'ed batches as for IDX).
//   - image trees (FolderImages): the file decoded per image, with a bounded cache of
//     decoded images (StreamOptions::cache_bytes).
// Every file is checked when opened as the in-memory loaders check it (magic, sizes,
// labels in range), so a batch never meets a broken header; an image tree's files are
// decoded only when read, and one that cannot be decoded is an error then.
// Reads are thread-safe (pread; the tree's cache is locked).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/fashion_mnist.h"
#include "data/image_folder.h"

namespace onnas::data {

struct StreamOptions {
  // Where a gzip'ed file is decompressed once (empty: $TMPDIR, else /tmp).
  std::string temp_dir;
  // Decoded images an image tree keeps, at most this many bytes (0: none).
  size_t cache_bytes = size_t(4) << 20;
};

// An IDX images file and its labels file (plain or gzip'ed); num_classes as load_idx.
std::unique_ptr<ImageSet> open_idx_stream(const std::string& images_path, const std::string& labels_path,
                                          int32_t num_classes = 0, const StreamOptions& options = {});
// Fashion-MNIST's {train,t10k} files in `dir`, streamed.
std::unique_ptr<ImageSet> open_fashion_mnist_stream(const std::string& dir = kFashionMnistDir, Split split = Split::train,
                                                    const StreamOptions& options = {});
// CIFAR-10 binary batch files, streamed (records in file order, as load_cifar10).
std::unique_ptr<ImageSet> open_cifar10_stream(std::span<const std::string> batch_files, const StreamOptions& options = {});
std::unique_ptr<ImageSet> open_cifar10_dir_stream(const std::string& dir, Split split, const StreamOptions& options = {});

// An image tree as an ImageSet: image i is the tree's i-th file counting class by class
// (files in their sorted order), labelled with its class id; decoded with `load` when
// read. `skip_undecodable` cannot apply (the images are numbered before any is
// decoded): an undecodable file is an error naming it.
class FolderImages final : public ImageSet {
 public:
  // Keeps a reference: `tree` must outlive the set.
  FolderImages(const ImageFolderIndex& tree, const ImageLoadOptions& load, const StreamOptions& options = {});
  // Owns the tree.
  FolderImages(std::shared_ptr<const ImageFolderIndex> tree, const ImageLoadOptions& load,
               const StreamOptions& options = {});

  int32_t label(int64_t i) const override;
  const uint8_t* raw_image(int64_t i, uint8_t* scratch) const override;
  size_t bytes() const override;
  std::string describe() const override;
  void read_labels(int64_t first, std::span<int32_t> out) const override;

  const ImageFolderIndex& tree() const { return *tree_; }
  // The class and the position in its file list of image i.
  std::pair<int32_t, int64_t> locate(int64_t i) const;

 private:
  void init(const ImageLoadOptions& load, const StreamOptions& options);

  std::shared_ptr<const ImageFolderIndex> tree_;
  ImageLoadOptions load_;
  std::vector<int64_t> class_start_;  // per class, its first image; then N

  // A direct-mapped cache: image i lives in slot i % slots, tagged with i.
  mutable std::mutex mutex_;
  mutable std::vector<int64_t> tags_;
  mutable std::vector<uint8_t> cached_;
};

}  // namespace onnas::data
