#include "data/image_folder.h"

#include <stb/stb_image.h>
#include <stb/stb_image_resize.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string_view>

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

// Debian's stb_image (2.27) builds a JPEG Huffman table from a DHT segment without
// checking that its 16 code counts add up to at most 256: a crafted file writes past
// the table (found by fuzz/fuzz_image.cc). This walks the file the way stb_image
// finds markers, conservatively (every FF xx outside a length-skipped segment is a
// possible marker), and reports whether some DHT table declares more than 256 codes,
// reading each table the way stb does (past the segment's end if its length lies).
bool jpeg_has_oversized_huffman_table(std::span<const uint8_t> b) {
  const size_t n = b.size();
  auto at = [&](size_t i) -> unsigned { return i < n ? b[i] : 0u; };  // stb reads 0 past the end
  if (n < 2 || b[0] != 0xFF || b[1] != 0xD8) return false;  // not a JPEG (image_format requires SOI first)
  size_t i = 2;
  while (i < n) {
    if (b[i] != 0xFF) {  // entropy-coded data or garbage: any later FF may start a marker
      ++i;
      continue;
    }
    size_t j = i;
    while (j < n && b[j] == 0xFF) ++j;
    if (j >= n) break;
    const unsigned m = b[j];
    if (m == 0x00 || m == 0x01 || (m >= 0xD0 && m <= 0xD9)) {  // stuffing, TEM, RSTn, SOI, EOI: no length
      i = j + 1;
      continue;
    }
    const long length = long(at(j + 1) << 8 | at(j + 2));
    if (m == 0xC4) {
      long left = length - 2;
      size_t p = j + 3;
      while (left > 0) {
        unsigned codes = 0;
        for (int k = 0; k < 16; ++k) codes += at(p + 1 + size_t(k));
        if (codes > 256) return true;
        p += 17 + codes;
        left -= 17 + long(codes);
      }
    }
    i = length >= 2 ? j + 1 + size_t(length) : j + 1;
  }
  return false;
}

// The formats the folder loader promises (image_folder.h). stb_image tries more
// (GIF, PSD, PIC, HDR, TGA — the last has no magic at all), and each is one more
// decoder for a hostile file to reach, so anything else is refused by its magic.
const char* image_format(std::span<const uint8_t> b) {
  auto starts = [&](std::initializer_list<uint8_t> magic) {
    return b.size() >= magic.size() && std::equal(magic.begin(), magic.end(), b.begin());
  };
  if (starts({0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'})) return "PNG";
  if (starts({0xFF, 0xD8})) return "JPEG";
  if (starts({'B', 'M'})) return "BMP";
  if (starts({'P', '5'}) || starts({'P', '6'})) return "PNM";
  return nullptr;
}

// stb_image 2.27 reads a PNM's pixels without checking that they are all there (a
// short file decodes to uninitialised memory) and parses its numbers without an
// overflow check, and a number that ends the file loses its last digit ("P5 1
// 99929999" read as 1 x 9992999 pixels, from 12 bytes: found by fuzz/fuzz_image.cc).
// This reads the header strictly (whitespace after the magic, three numbers, each
// followed by a byte, the maximum value in 1..65535), so stb reads the same numbers,
// and names what is wrong, the size and the pixels' length included.
std::optional<std::string> pnm_problem(std::span<const uint8_t> b) {
  const size_t n = b.size();
  if (n < 3 || !std::isspace(b[2])) return "truncated PNM: no whitespace after its magic number";
  size_t i = 2;
  auto skip_space_and_comments = [&] {
    for (;;) {
      while (i < n && std::isspace(b[i])) ++i;
      if (i >= n || b[i] != '#') return;
      while (i < n && b[i] != '\n' && b[i] != '\r') ++i;
    }
  };
  constexpr size_t kMaxDigits = 9;  // stb parses into an int
  constexpr const char* kWhat[3] = {"width", "height", "maximum value"};
  uint64_t values[3] = {};
  for (int k = 0; k < 3; ++k) {
    skip_space_and_comments();
    const size_t start = i;
    while (i < n && std::isdigit(b[i])) {
      if (i - start == kMaxDigits) return "a header number has more than 9 digits";
      values[k] = values[k] * 10 + uint64_t(b[i++] - '0');
    }
    if (i >= n) return fmt::format("truncated PNM: it ends inside its header (at its {})", kWhat[k]);
    if (i == start) return fmt::format("a PNM header without its {}", kWhat[k]);
  }
  if (!std::isspace(b[i])) return fmt::format("a PNM header whose maximum value is followed by byte {}", b[i]);
  const auto [width, height, max_value] = values;
  if (width == 0 || height == 0) return fmt::format("the header says {} x {} pixels", height, width);
  if (max_value == 0 || max_value > 65535) return fmt::format("the header's maximum value {} is outside 1..65535", max_value);
  if (width * height > uint64_t(kMaxImagePixels))
    return fmt::format("its header says {} x {} pixels, more than the {} pixels an image may have", height, width,
                       kMaxImagePixels);
  const uint64_t need = width * height * (b[1] == '6' ? 3 : 1) * (max_value > 255 ? 2 : 1);
  const size_t data_start = i + 1;  // one whitespace byte ends the header
  if (n - data_start < need)
    return fmt::format("truncated PNM: {} bytes of pixels for {} x {}, expected {}", n - data_start, height, width, need);
  return std::nullopt;
}

// stb_image 2.27 grows its buffer to an IDAT chunk's declared length before checking
// that the bytes are there: 78 bytes claiming a 1.2 GB chunk made it allocate 1.2 GB
// (found by fuzz/fuzz_image.cc). Every chunk up to IEND must fit in the file.
std::optional<std::string> png_problem(std::span<const uint8_t> b) {
  auto be32 = [&](size_t i) { return uint32_t(b[i]) << 24 | uint32_t(b[i + 1]) << 16 | uint32_t(b[i + 2]) << 8 | b[i + 3]; };
  for (size_t i = 8;;) {
    if (b.size() - i < 8) return "truncated PNG: it ends inside a chunk header (no IEND chunk)";
    const uint32_t length = be32(i);
    std::string type(reinterpret_cast<const char*>(b.data() + i + 4), 4);
    if (!std::all_of(type.begin(), type.end(), [](char c) { return std::isalpha(static_cast<unsigned char>(c)); }))
      type = "?";
    const size_t remain = b.size() - i - 8;  // after the length and the type
    if (uint64_t(length) + 4 > remain)
      return fmt::format("truncated PNG: chunk '{}' at byte {} claims {} bytes, {} remain", type, i, length,
                         remain < 4 ? 0 : remain - 4);
    if (type == "IEND") return std::nullopt;
    i += 12 + size_t(length);
  }
}

// stb_image 2.27 pads a JPEG whose scan data is missing or cut short (grey rows, or a
// whole grey image for a file with no scan at all) instead of failing. A JPEG must have
// a start-of-scan segment and, after it, its end-of-image marker (entropy-coded data
// escapes every FF byte, so the first FF D9 after the scan is the end), and enough
// bytes for its frame: every 8 x 8 block of the first component costs at least one bit
// (a DC code of the first scan that holds it, baseline or progressive). Without that
// bound 700 bytes claiming 5792 x 5792 pixels decoded as a 33-megapixel grey picture
// (600 MB and 8 s under the fuzzer's sanitizers; found by fuzz/fuzz_image.cc).
std::optional<std::string> jpeg_problem(std::span<const uint8_t> b) {
  const size_t n = b.size();
  uint64_t frame_h = 0, frame_w = 0;
  size_t i = 2;  // after SOI
  while (i + 1 < n) {
    if (b[i] != 0xFF) return std::nullopt;  // not a marker: stb names the corruption
    size_t j = i;
    while (j < n && b[j] == 0xFF) ++j;  // fill bytes
    if (j >= n) break;
    const unsigned m = b[j];
    if (m == 0xD9) return "a JPEG without scan data (end of image before any start of scan)";
    // Start of frame (SOF0-SOF15 but DHT C4, JPG C8, DAC CC): length, precision, height, width.
    if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC && j + 7 < n) {
      frame_h = uint64_t(b[j + 4]) << 8 | b[j + 5];
      frame_w = uint64_t(b[j + 6]) << 8 | b[j + 7];
    }
    if (m == 0xDA) {
      const uint64_t blocks = (frame_h + 7) / 8 * ((frame_w + 7) / 8);
      if (blocks > 8 * uint64_t(n))
        return fmt::format("truncated JPEG: {} bytes cannot hold the scan data of its {} x {} pixels ({} blocks of 8 x 8)",
                           n, frame_h, frame_w, blocks);
      for (size_t k = j + 1; k + 1 < n; ++k)
        if (b[k] == 0xFF && b[k + 1] == 0xD9) return std::nullopt;
      return "truncated JPEG: no end-of-image marker after its scan data";
    }
    if (m == 0x01 || (m >= 0xD0 && m <= 0xD7)) {  // TEM, RSTn: no length
      i = j + 1;
      continue;
    }
    if (j + 2 >= n) break;
    i = j + 1 + (size_t(b[j + 1]) << 8 | b[j + 2]);
  }
  return "truncated JPEG: it ends before its scan data";
}

// stb_image 2.27 decodes a BMP whose pixel rows are cut short with the missing rows
// black. For the uncompressed layouts (BI_RGB, BITFIELDS) the file's length follows
// from the header: the pixel offset plus |height| rows of 4-byte-aligned width * bpp bits.
std::optional<std::string> bmp_problem(std::span<const uint8_t> b) {
  auto u16 = [&](size_t i) { return uint32_t(b[i]) | uint32_t(b[i + 1]) << 8; };
  auto u32 = [&](size_t i) { return u16(i) | u16(i + 2) << 16; };
  if (b.size() < 30) return "truncated BMP: it ends inside its header";
  const uint32_t offset = u32(10), dib = u32(14);
  int64_t width = 0, height = 0;
  uint32_t bpp = 0, compression = 0;
  if (dib == 12) {  // OS/2 BITMAPCOREHEADER
    width = u16(18), height = u16(20), bpp = u16(24);
  } else {
    if (b.size() < 34) return "truncated BMP: it ends inside its header";
    width = int32_t(u32(18)), height = int32_t(u32(22)), bpp = u16(28), compression = u32(30);
  }
  height = height < 0 ? -height : height;  // negative: rows stored top-down
  if (compression != 0 && compression != 3 && compression != 6) return std::nullopt;  // RLE: no fixed length
  if (width < 1 || height < 1 || bpp < 1 || bpp > 32 || width * height > kMaxImagePixels) return std::nullopt;
  const uint64_t row = (uint64_t(width) * bpp + 31) / 32 * 4;
  const uint64_t need = uint64_t(offset) + row * uint64_t(height);
  if (b.size() < need)
    return fmt::format("truncated BMP: {} bytes, but its header's {} x {} pixels at {} bits end at byte {}", b.size(),
                       height, width, bpp, need);
  return std::nullopt;
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

void decode_image(std::span<const uint8_t> bytes, const std::string& source, const ImageLoadOptions& options,
                  uint8_t* out) {
  check_options(options);
  if (bytes.size() > size_t(std::numeric_limits<int>::max()))
    fail("cannot decode image '{}': {} bytes is too large for the decoder", source, bytes.size());
  const auto* data = reinterpret_cast<const stbi_uc*>(bytes.data());
  const int len = int(bytes.size());
  const char* format = image_format(bytes);
  if (!format) fail("cannot decode image '{}': not a PNG, JPEG, BMP or PGM/PPM file", source);
  std::optional<std::string> problem;
  if (std::string_view(format) == "PNM") problem = pnm_problem(bytes);
  if (std::string_view(format) == "PNG") problem = png_problem(bytes);
  if (std::string_view(format) == "JPEG") problem = jpeg_problem(bytes);
  if (std::string_view(format) == "BMP") problem = bmp_problem(bytes);
  if (problem) fail("cannot decode image '{}': {}", source, *problem);
  if (jpeg_has_oversized_huffman_table(bytes))
    fail("cannot decode image '{}': corrupt JPEG (a Huffman table declares more than 256 codes)", source);
  int w = 0, h = 0, in_file = 0;
  // The header's size is checked before stb allocates for it: a lying header of a
  // few bytes must not cost gigabytes.
  if (!stbi_info_from_memory(data, len, &w, &h, &in_file))
    fail("cannot decode image '{}': {}", source, stbi_failure_reason() ? stbi_failure_reason() : "unknown format");
  if (std::string_view(format) == "BMP" && h < 0 && h > INT_MIN) h = -h;  // top-down rows: stb's info keeps the sign
  if (w < 1 || h < 1 || int64_t(w) * int64_t(h) > kMaxImagePixels)
    fail("cannot decode image '{}': its header says {} x {} pixels, more than the {} pixels an image may have", source,
         h, w, kMaxImagePixels);
  // Decoded with the file's own channels (1 grey, 2 grey+alpha, 3 RGB, 4 RGBA) and
  // converted here: stb 2.27's own conversion mis-sizes 16-bit PNM images (a heap
  // overflow found by fuzz/fuzz_image.cc), and one conversion for every format is
  // simpler to trust. Grey from colour uses stb's weights; alpha is dropped.
  std::unique_ptr<stbi_uc, void (*)(void*)> pixels(stbi_load_from_memory(data, len, &w, &h, &in_file, 0),
                                                   stbi_image_free);
  if (!pixels) fail("cannot decode image '{}': {}", source, stbi_failure_reason() ? stbi_failure_reason() : "unknown error");
  if (w < 1 || h < 1 || int64_t(w) * int64_t(h) > kMaxImagePixels || in_file < 1 || in_file > 4)
    fail("cannot decode image '{}': it decoded to {} x {} pixels of {} channels", source, h, w, in_file);
  const int c = options.channels;
  const int oh = int(options.height), ow = int(options.width);
  const size_t plane = size_t(oh) * size_t(ow);
  // Planar CHW in the caller's channels from interleaved pixels of the file's channels
  // (same size as the output): grey from colour with stb's weights, grey copied to
  // every colour channel, alpha dropped.
  const bool colour = in_file >= 3;
  auto store = [&](const stbi_uc* hwc) {
    for (size_t i = 0; i < plane; ++i) {
      const stbi_uc* p = hwc + i * size_t(in_file);
      if (c == 1) {
        out[i] = colour ? uint8_t((p[0] * 77 + p[1] * 150 + p[2] * 29) >> 8) : p[0];
      } else {
        for (int ch = 0; ch < c; ++ch) out[size_t(ch) * plane + i] = p[colour ? ch : 0];
      }
    }
  };
  if (w == ow && h == oh) {  // the bytes as stored
    store(pixels.get());
    return;
  }
  // Resized in 8 bits in the file's own channels (stb filters each channel alone,
  // through float rows), then converted: a large image costs its decoded bytes once
  // (a 33-megapixel RGB file took 400 MB more as floats).
  std::vector<uint8_t> resized(plane * size_t(in_file));
  if (!stbir_resize_uint8(pixels.get(), w, h, 0, resized.data(), ow, oh, 0, in_file))
    fail("cannot resize image '{}' from {} x {} to {} x {}", source, h, w, oh, ow);
  pixels.reset();
  store(resized.data());
}

void decode_image(std::span<const uint8_t> bytes, const std::string& source, const ImageLoadOptions& options,
                  float* out) {
  check_options(options);
  std::vector<uint8_t> stored(size_t(options.channels * options.height * options.width));
  decode_image(bytes, source, options, stored.data());
  for (size_t p = 0; p < stored.size(); ++p) out[p] = kByteToUnit[stored[p]];
}

void load_image(const std::string& path, const ImageLoadOptions& options, float* out) {
  check_options(options);
  std::vector<uint8_t> stored(size_t(options.channels * options.height * options.width));
  load_image(path, options, stored.data());
  for (size_t p = 0; p < stored.size(); ++p) out[p] = kByteToUnit[stored[p]];
}

void load_image(const std::string& path, const ImageLoadOptions& options, uint8_t* out) {
  check_options(options);
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (ec) fail("cannot read image '{}': {}", path, ec.message());
  if (!fs::is_regular_file(status)) fail("cannot read image '{}': not a regular file", path);
  const uintmax_t size = fs::file_size(path, ec);
  if (ec) fail("cannot read image '{}': {}", path, ec.message());
  if (size > kMaxImageFileBytes)
    fail("cannot read image '{}': it is {} bytes, more than the {} bytes an image file may have", path, size,
         kMaxImageFileBytes);
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  std::ifstream in(path, std::ios::binary);
  if (!in || !in.read(reinterpret_cast<char*>(bytes.data()), std::streamsize(bytes.size())))
    fail("cannot read image '{}': the read failed or ended early", path);
  decode_image(bytes, path, options, out);
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
  d.pixels.resize(size_t(total * d.image_elems()));
  d.labels.reserve(size_t(total));
  for (int32_t c : chosen) {
    for (const std::string& path : index.files[size_t(c)]) {
      try {
        load_image(path, options, d.pixels_of(d.N));
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
  d.pixels.resize(size_t(d.N * d.image_elems()));
  if (d.N < total) d.pixels.shrink_to_fit();  // skipped files left slack
  return d;
}

Dataset load_image_folder(const std::string& root, const ImageLoadOptions& options) {
  check_options(options);  // before listing a tree that may be large
  return load_image_folder(list_image_folder(root), options);
}

}  // namespace onnas::data

namespace onnas::data {

namespace {

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\r' || s.back() == '\n' || s.back() == ' ' || s.back() == '\t')) s.pop_back();
  size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
  return s.substr(i);
}

bool is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

}  // namespace

ImageFolderIndex list_csv_split(const std::string& csv_path, const std::vector<std::string>& image_dirs) {
  std::ifstream in(csv_path);
  if (!in) fail("split file '{}' cannot be read", csv_path);
  std::map<std::string, std::vector<std::string>> by_label;
  std::string line;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    line = trim(line);
    if (line.empty()) continue;
    const size_t comma = line.find(',');
    if (comma == std::string::npos || line.find(',', comma + 1) != std::string::npos)
      fail("split file '{}' line {}: '{}' is not 'filename,label'", csv_path, line_no, line);
    const std::string name = trim(line.substr(0, comma)), label = trim(line.substr(comma + 1));
    if (line_no == 1 && name == "filename") continue;  // the header
    if (name.empty() || label.empty()) fail("split file '{}' line {}: an empty file name or label", csv_path, line_no);
    std::string found;
    for (const std::string& dir : image_dirs) {
      for (const fs::path& p : {fs::path(dir) / name, fs::path(dir) / label / name})
        if (is_file(p)) {
          found = p.string();
          break;
        }
      if (!found.empty()) break;
    }
    if (found.empty())
      fail("split file '{}' line {}: image '{}' is in none of the folders {} (nor in a sub-folder named after its label)",
           csv_path, line_no, name, fmt::join(image_dirs, ", "));
    by_label[label].push_back(found);
  }
  if (by_label.empty()) fail("split file '{}' lists no images", csv_path);
  ImageFolderIndex index;
  index.root = csv_path;
  for (auto& [label, files] : by_label) {  // std::map: labels sorted
    std::sort(files.begin(), files.end());
    index.class_names.push_back(label);
    index.files.push_back(std::move(files));
  }
  return index;
}

std::vector<ListedClass> read_class_list(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail("class list '{}' cannot be read", path);
  std::vector<ListedClass> out;
  std::string line;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    line = trim(line);
    if (line.empty() || line[0] == '#') continue;
    ListedClass c;
    const size_t slash = line.rfind('/');
    if (slash != std::string::npos && line.compare(slash + 1, 3, "rot") == 0) {
      const std::string angle = line.substr(slash + 4);
      static const char* kAngles[] = {"000", "090", "180", "270"};
      for (int t = 0; t < 4; ++t)
        if (angle == kAngles[t]) c.quarter_turns = t;
      if (c.quarter_turns < 0)
        fail("class list '{}' line {}: rotation 'rot{}' is not one of rot000, rot090, rot180, rot270", path, line_no, angle);
      line = line.substr(0, slash);
    }
    while (!line.empty() && line.back() == '/') line.pop_back();
    if (line.empty()) fail("class list '{}' line {}: no class folder", path, line_no);
    c.folder = line;
    out.push_back(c);
  }
  if (out.empty()) fail("class list '{}' lists no classes", path);
  return out;
}

ImageFolderIndex list_listed_classes(const std::vector<ListedClass>& classes, const std::vector<std::string>& roots,
                                     const std::string& list_path) {
  ImageFolderIndex index;
  index.root = list_path;
  for (const ListedClass& c : classes) {
    if (std::find(index.class_names.begin(), index.class_names.end(), c.folder) != index.class_names.end()) continue;
    fs::path dir;
    std::error_code ec;
    for (const std::string& root : roots)
      if (fs::is_directory(fs::path(root) / c.folder, ec)) {
        dir = fs::path(root) / c.folder;
        break;
      }
    if (dir.empty())
      fail("class list '{}': class folder '{}' is under none of {}", list_path, c.folder, fmt::join(roots, ", "));
    std::vector<std::string> files;
    for (const auto& e : fs::directory_iterator(dir, ec))
      if (e.is_regular_file() && !hidden(e.path()) && is_image_file(e.path())) files.push_back(e.path().string());
    if (ec) fail("class list '{}': cannot list '{}': {}", list_path, dir.string(), ec.message());
    if (files.empty()) fail("class list '{}': class folder '{}' holds no image files", list_path, dir.string());
    std::sort(files.begin(), files.end());
    index.class_names.push_back(c.folder);
    index.files.push_back(std::move(files));
  }
  return index;
}

}  // namespace onnas::data
