// The fuzz targets: how each harness of fuzz/ turns its input into a file and hands it
// to the library's parser, shared with tests/reliability/test_broken_files.cc, which
// replays the kept crashers of tests/regressions/<format>/ through the same functions.
//
//   onnas::fuzz::feed_idx(bytes);   // throws onnas::Error if the library refuses the input
//
// Each feed_<format> parses its input as the harness's header comment describes and
// returns normally when the library accepts it; a refusal is the library's exception
// (onnas::Error; std::invalid_argument for the planner layer, which depends on nothing
// of ours). A checked invariant that fails after an accepted input aborts: that is a
// finding, not a refusal. Loaders that read a path get an in-memory file from
// memfd_create, so fuzzing never touches the disk.
#pragma once

#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "data/cifar.h"
#include "data/idx.h"
#include "data/image_folder.h"
#include "memory_planner/dump.h"
#include "memory_planner/planner.h"
#include "nas/genotype.h"
#include "nas/meta_cell.h"
#include "runtime/serialize/safetensors.h"

namespace onnas::fuzz {

[[noreturn]] inline void finding(const char* what) {
  std::fprintf(stderr, "fuzz: invariant broken: %s\n", what);
  std::abort();
}

// An anonymous in-memory file holding `bytes`, reachable by path() until destroyed.
class MemFile {
 public:
  explicit MemFile(std::span<const uint8_t> bytes) {
    fd_ = ::memfd_create("onnas-fuzz", MFD_CLOEXEC);
    if (fd_ < 0) finding("memfd_create failed");
    for (size_t done = 0; done < bytes.size();) {
      ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
      if (n <= 0) finding("write to memfd failed");
      done += size_t(n);
    }
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  ~MemFile() { ::close(fd_); }
  MemFile(const MemFile&) = delete;
  MemFile& operator=(const MemFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  int fd_ = -1;
  std::string path_;
};

// `bytes` as one gzip member (what gzip(1) writes), so the parsers behind zlib also
// see well-formed compressed streams, not only corrupt ones.
inline std::vector<uint8_t> gzip(std::span<const uint8_t> bytes) {
  z_stream s{};
  if (deflateInit2(&s, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) finding("deflateInit2");
  std::vector<uint8_t> out(deflateBound(&s, uLong(bytes.size())) + 32);
  s.next_in = const_cast<Bytef*>(bytes.data());
  s.avail_in = uInt(bytes.size());
  s.next_out = out.data();
  s.avail_out = uInt(out.size());
  if (deflate(&s, Z_FINISH) != Z_STREAM_END) finding("deflate");
  out.resize(s.total_out);
  deflateEnd(&s);
  return out;
}

// A whole safetensors file.
inline void feed_safetensors(std::span<const uint8_t> in) {
  SafetensorsFile f = parse_safetensors(in, "fuzz.safetensors");
  for (const auto& t : f.tensors)  // what the reader returns must be what the header promised
    if (t.data.bytes() != size_t(t.shape.numel()) * dtype_size(t.dtype)) finding("tensor bytes != numel * dtype size");
}

// A checkpoint (`onnas search/train/meta-train --resume`): a safetensors file whose
// counters are read as the tools read them (metadata_integer, within the bounds of a
// long run) and whose tensors must be finite to be loaded.
inline void feed_checkpoint(std::span<const uint8_t> in) {
  SafetensorsFile f = parse_safetensors(in, "fuzz.safetensors");
  constexpr int64_t kMax = 1000000;
  for (const char* key : {"step", "epoch", "meta_epoch"})
    if (f.metadata.count(key)) {
      const int64_t v = metadata_integer(f.metadata, key, f.path, 0, kMax);
      if (v < 0 || v > kMax) finding("a checkpoint counter outside its bounds was accepted");
    }
  for (const auto& t : f.tensors) check_finite(t, f.path);
}

// A meta cell file (`onnas inspect`, `adapt --meta-cell`), loaded as the tools load it:
// its space rebuilt from the metadata, every tensor checked, the meta cell unfolded
// into a fresh supernet, which must then hold every cell's weights.
inline void feed_meta_cell(std::span<const uint8_t> in) {
  MemFile file(in);
  ParamStore params;
  nas::MetaCellFile mc = nas::load_meta_cell(file.path(), params);
  for (const auto& e : mc.cell.entries())
    for (int cell : e.cells)
      if (!params.contains(fmt::format("cells.{}.{}", cell, e.suffix)))
        finding("an accepted meta cell does not unfold into the cells of its space");
}

// The text of a genotype JSON file; an accepted genotype must survive a JSON round
// trip, and validating it against the default space may refuse it too.
inline void feed_genotype(std::span<const uint8_t> in) {
  using nas::Genotype;
  Genotype g = Genotype::parse(std::string_view(reinterpret_cast<const char*>(in.data()), in.size()), "fuzz.json");
  if (Genotype::from_json(g.to_json(), "round trip") != g) finding("genotype JSON round trip differs");
  (void)g.str();
  g.validate(nas::SearchSpace{}, "fuzz.json");
}

// A loaded data set must be consistent; its own check throwing would be a finding.
inline void expect_consistent(const data::Dataset& d) {
  try {
    d.check();
  } catch (const Error&) {
    finding("an accepted data set fails Dataset::check");
  }
}

// An IDX images file and an IDX labels file. Byte 0 = flags (bit 0: gzip the images,
// bit 1: gzip the labels, bits 2-3: num_classes 0 (inferred) / 3 / 10 / 256), bytes
// 1-4 = little-endian length of the images part (modulo what is left), then the images
// part, then the labels part. Unflagged parts are written as they are, so a part may
// itself be raw (possibly corrupt) gzip bytes.
inline void feed_idx(std::span<const uint8_t> in) {
  if (in.size() < 5) return;
  const uint8_t flags = in[0];
  const uint32_t split = uint32_t(in[1]) | uint32_t(in[2]) << 8 | uint32_t(in[3]) << 16 | uint32_t(in[4]) << 24;
  std::span<const uint8_t> rest = in.subspan(5);
  const size_t images_bytes = split % (rest.size() + 1);
  std::span<const uint8_t> images = rest.first(images_bytes), labels = rest.subspan(images_bytes);
  std::vector<uint8_t> gz_images, gz_labels;
  if (flags & 1) images = gz_images = gzip(images);
  if (flags & 2) labels = gz_labels = gzip(labels);
  constexpr int32_t kClasses[] = {0, 3, 10, 256};
  MemFile fi(images), fl(labels);
  expect_consistent(data::load_idx(fi.path(), fl.path(), kClasses[(flags >> 2) & 3]));
}

// A CIFAR-10 binary batch. Byte 0 = flags (bit 0: gzip the rest first), then the file.
inline void feed_cifar(std::span<const uint8_t> in) {
  if (in.empty()) return;
  std::span<const uint8_t> batch = in.subspan(1);
  std::vector<uint8_t> gz;
  if (in[0] & 1) batch = gz = gzip(batch);
  MemFile f(batch);
  const std::string files[] = {f.path()};
  expect_consistent(data::load_cifar10(files));
}

// One image file. Byte 0 = options (bit 0: 1 or 3 channels, bits 1-3: output side
// 4..32), then the file's bytes.
inline void feed_image(std::span<const uint8_t> in) {
  if (in.empty()) return;
  data::ImageLoadOptions options;
  options.channels = (in[0] & 1) ? 3 : 1;
  options.height = options.width = 4 + 4 * ((in[0] >> 1) & 7);
  std::vector<float> out(size_t(options.channels * options.height * options.width));
  data::decode_image(in.subspan(1), "fuzz.img", options, out.data());
}

// A buffer-list JSON file, planned with the default strategy as `onnas plan --buffers`
// does; the plan must be sound.
inline void feed_buffer_list(std::span<const uint8_t> in) {
  using namespace planner;
  auto buffers = parse_buffer_list(std::string_view(reinterpret_cast<const char*>(in.data()), in.size()), "fuzz.json");
  Plan plan = plan_memory(buffers);
  (void)plan_summary(buffers, plan);
  if (find_overlap(buffers, plan)) finding("the planner's plan has overlapping buffers");
}

}  // namespace onnas::fuzz
