// Class-per-folder image trees (root/<class>/<image files>), the way users keep
// Omniglot and miniImageNet: PNG, JPEG, BMP, PGM/PPM decoded with stb_image, converted
// to the caller's channel count (1 grey or 3 colour), resized to H x W, kept as bytes.
//
//   ImageLoadOptions opt{.channels = 1, .height = 28, .width = 28};
//   Dataset d = load_image_folder("omniglot/images_background", opt);   // everything
//
//   ImageFolderIndex idx = list_image_folder("mini-imagenet/train");    // names only, fast
//   Dataset few = load_image_folder(idx, opt, std::vector<int32_t>{3, 17});  // two classes
//
// Classes are the sub-folders sorted by name (class id = position); files within a
// class are sorted too, so ids and orders are the same on every machine. Omniglot's
// root/<alphabet>/<character>/ layout is class_depth = 2 (class "alphabet/character").
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace onnas::data {

struct ImageFolderIndex {
  std::string root;
  std::vector<std::string> class_names;         // sorted; class id = position
  std::vector<std::vector<std::string>> files;  // per class, full paths, sorted

  int32_t num_classes() const { return int32_t(class_names.size()); }
  int64_t num_images() const;
};

// Lists the tree without decoding anything. Files are recognised by extension (.png
// .jpg .jpeg .bmp .pgm .ppm, any case); hidden entries and other files are ignored. A
// tree without classes, or a class folder without images, is an error naming it.
ImageFolderIndex list_image_folder(const std::string& root, int class_depth = 1);

struct ImageLoadOptions {
  int channels = 1;       // 1 (grey) or 3 (RGB), whatever the file holds
  int64_t height = 28;
  int64_t width = 28;
  bool skip_undecodable = false;  // false: a file that fails to decode is an error naming it
};

// Bounds on what one image may be, checked before anything is allocated for it: a
// corrupt header cannot make the loader reserve gigabytes.
constexpr int64_t kMaxImagePixels = int64_t(1) << 25;      // 32 megapixels (a 6000 x 5000 photo fits)
constexpr uint64_t kMaxImageFileBytes = uint64_t(1) << 28;  // 256 MiB

// Decodes one image into out[C * H * W] (CHW, bytes as a Dataset stores them). An
// image already H x W keeps its bytes; a resized one is resized in float and rounded
// back to bytes. Throws naming the file.
void load_image(const std::string& path, const ImageLoadOptions& options, uint8_t* out);
// The same for an image file's bytes already in memory; `source` names it in messages.
void decode_image(std::span<const uint8_t> bytes, const std::string& source, const ImageLoadOptions& options,
                  uint8_t* out);
// The same as floats in [0, 1] (kByteToUnit of those bytes).
void load_image(const std::string& path, const ImageLoadOptions& options, float* out);
void decode_image(std::span<const uint8_t> bytes, const std::string& source, const ImageLoadOptions& options,
                  float* out);

// Loads every image of the tree (or of `classes` only; labels stay the tree's class
// ids and num_classes the tree's count). Skipped files are appended to `skipped`.
Dataset load_image_folder(const ImageFolderIndex& index, const ImageLoadOptions& options,
                          std::span<const int32_t> classes = {}, std::vector<std::string>* skipped = nullptr);
Dataset load_image_folder(const std::string& root, const ImageLoadOptions& options);

// ---------------------------------------------------------------------------------
// Few-shot split files: which images form which class, as an ImageFolderIndex.

// miniImageNet's split files (Ravi & Larochelle): a CSV with the header
// "filename,label" and one "<file name>,<class label>" line per image. Each file is
// looked for as <dir>/<file name>, then <dir>/<label>/<file name>, in each of
// `image_dirs` in turn (e.g. {"mini-imagenet/images", "mini-imagenet"}); one found in
// none is an error naming the line. Classes are the labels sorted by name, files sorted
// within a class, as list_image_folder orders a tree.
ImageFolderIndex list_csv_split(const std::string& csv_path, const std::vector<std::string>& image_dirs);

// A class list (ProtoNets' Omniglot split files, e.g. "Greek/character01/rot090"): one
// class folder per line, relative to a root, optionally followed by "/rotDDD" (DDD one
// of 000 090 180 270: the class is that rotation of the folder's images). Empty lines
// and lines starting with '#' are skipped.
struct ListedClass {
  std::string folder;  // e.g. "Greek/character01"
  int quarter_turns = -1;  // 0..3 counter-clockwise, or -1 when the line names no rotation
};
std::vector<ListedClass> read_class_list(const std::string& path);
// The distinct folders of `classes` (in the list's order), each looked for under each of
// `roots` in turn (Omniglot keeps them in images_background or images_evaluation), as an
// index whose class i is the i-th distinct folder. A folder found under no root, or
// holding no images, is an error naming it.
ImageFolderIndex list_listed_classes(const std::vector<ListedClass>& classes, const std::vector<std::string>& roots,
                                     const std::string& list_path);

}  // namespace onnas::data
