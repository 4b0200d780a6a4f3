#include "data/image_folder.h"

#include <stb/stb_image.h>
#include <stb/stb_image_resize.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <memory>

#include "runtime/error.h"

namespace onnas::data {

namespace fs = std::filesystem;

namespace {

constexpr int64_t kMaxSide = 1 << 14;  // a requested output size beyond this is a typo

bool is_image_file(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp" || ext == ".pgm" || ext == ".ppm";
}

bool hidden(const fs::path& p) { return p.filename().string().starts_with("."); }

// Sub-directories of `dir`, sorted, as names relative to the tree root.
std::vector<std::string> sorted_subdirs(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_directory() && !hidden(e.path())) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

void check_options(const ImageLoadOptions& o) {
  if (o.channels != 1 && o.channels != 3) fail("image loading: channels must be 1 or 3, not {}", o.channels);
  if (o.height < 1 || o.width < 1 || o.height > kMaxSide || o.width > kMaxSide)
    fail("image loading: output size {} x {} is outside [1, {}]", o.height, o.width, kMaxSide);
}

}  // namespace

int64_t ImageFolderIndex::num_images() const {
  int64_t n = 0;
  for (const auto& f : files) n += int64_t(f.size());
  return n;
}

ImageFolderIndex list_image_folder(const std::string& root, int class_depth) {
  if (class_depth < 1 || class_depth > 2) fail("image folder '{}': class_depth must be 1 or 2, not {}", root, class_depth);
  std::error_code ec;
  if (!fs::is_directory(root, ec)) fail("image folder '{}' is not a directory", root);
  ImageFolderIndex index;
  index.root = root;
  try {
    std::vector<std::string> classes;
    for (const std::string& top : sorted_subdirs(root)) {
      if (class_depth == 1) {
        classes.push_back(top);
      } else {
        for (const std::string& sub : sorted_subdirs(fs::path(root) / top)) classes.push_back(top + "/" + sub);
      }
    }
    if (classes.empty()) fail("image folder '{}' has no class sub-folders", root);
    for (const std::string& name : classes) {
      std::vector<std::string> files;
      for (const auto& e : fs::directory_iterator(fs::path(root) / name))
        if (e.is_regular_file() && !hidden(e.path()) && is_image_file(e.path())) files.push_back(e.path().string());
      if (files.empty()) fail("image folder '{}': class folder '{}' holds no image files", root, name);
      std::sort(files.begin(), files.end());
      index.class_names.push_back(name);
      index.files.push_back(std::move(files));
    }
  } catch (const fs::filesystem_error& ex) {
    fail("image folder '{}': cannot list it: {}", root, ex.what());
  }
  return index;
}

void load_image(const std::string& path, const ImageLoadOptions& options, float* out) {
  check_options(options);
  int w = 0, h = 0, in_file = 0;
  // stb converts any file to the requested channel count (grey <-> RGB) for us.
  std::unique_ptr<stbi_uc, void (*)(void*)> pixels(stbi_load(path.c_str(), &w, &h, &in_file, options.channels), stbi_image_free);
  if (!pixels) fail("cannot decode image '{}': {}", path, stbi_failure_reason() ? stbi_failure_reason() : "unknown error");
  const int c = options.channels;
  const int oh = int(options.height), ow = int(options.width);
  std::vector<float> hwc(size_t(w) * size_t(h) * size_t(c));
  for (size_t i = 0; i < hwc.size(); ++i) hwc[i] = float(pixels.get()[i]) * (1.0f / 255.0f);
  std::vector<float> resized;
  const float* src = hwc.data();
  if (w != ow || h != oh) {
    resized.resize(size_t(ow) * size_t(oh) * size_t(c));
    if (!stbir_resize_float(hwc.data(), w, h, 0, resized.data(), ow, oh, 0, c))
      fail("cannot resize image '{}' from {} x {} to {} x {}", path, h, w, oh, ow);
    src = resized.data();
  }
  // Interleaved HWC -> planar CHW; the resize filters may overshoot [0, 1] at edges.
  const size_t plane = size_t(oh) * size_t(ow);
  for (size_t p = 0; p < plane; ++p)
    for (int ch = 0; ch < c; ++ch) out[size_t(ch) * plane + p] = std::clamp(src[p * size_t(c) + size_t(ch)], 0.0f, 1.0f);
}

Dataset load_image_folder(const ImageFolderIndex& index, const ImageLoadOptions& options, std::span<const int32_t> classes,
                          std::vector<std::string>* skipped) {
  check_options(options);
  std::vector<int32_t> chosen(classes.begin(), classes.end());
  if (chosen.empty())
    for (int32_t c = 0; c < index.num_classes(); ++c) chosen.push_back(c);
  Dataset d;
  d.C = options.channels;
  d.H = options.height;
  d.W = options.width;
  d.num_classes = index.num_classes();
  d.source = index.root;
  int64_t total = 0;
  for (int32_t c : chosen) {
    if (c < 0 || c >= index.num_classes())
      fail("image folder '{}': class id {} is outside [0, {})", index.root, c, index.num_classes());
    total += int64_t(index.files[size_t(c)].size());
  }
  d.images.resize(size_t(total * d.image_elems()));
  d.labels.reserve(size_t(total));
  for (int32_t c : chosen) {
    for (const std::string& path : index.files[size_t(c)]) {
      try {
        load_image(path, options, d.image(d.N));
      } catch (const Error&) {
        if (!options.skip_undecodable) throw;
        if (skipped) skipped->push_back(path);
        continue;
      }
      d.labels.push_back(c);
      ++d.N;
    }
  }
  if (d.N == 0) fail("image folder '{}': no image could be decoded", index.root);
  d.images.resize(size_t(d.N * d.image_elems()));
  return d;
}

Dataset load_image_folder(const std::string& root, const ImageLoadOptions& options) {
  check_options(options);  // before listing a tree that may be large
  return load_image_folder(list_image_folder(root), options);
}

}  // namespace onnas::data
