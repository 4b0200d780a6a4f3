// Broken files, format by format: each must be refused with one onnas::Error whose
// message names the file and the problem — never a crash, a hang, a huge allocation
// or another exception type. Most files are made here from small valid ones (cut at
// every byte, headers that lie); the crashers the fuzzers found (tests/regressions/)
// are replayed through the harnesses' own feed functions; and the built `onnas` tool
// is run on a few of them: non-zero exit, exactly one line on stderr.
//
// The planner layer depends on nothing of ours, so parse_buffer_list refuses with
// std::invalid_argument (same one-sentence rule); the tool prints it as one line.
#include <catch2/catch.hpp>
#include <fcntl.h>
#include <stb/stb_image_write.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "data/cifar.h"
#include "data/idx.h"
#include "data/image_folder.h"
#include "fuzz/feed.h"
#include "memory_planner/dump.h"
#include "nas/genotype.h"
#include "nas/meta_cell.h"
#include "nas/network.h"
#include "runtime/error.h"
#include "runtime/serialize/safetensors.h"

using namespace onnas;
namespace fs = std::filesystem;
using Bytes = std::string;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    static int counter = 0;
    path = fs::temp_directory_path() / ("onnas_broken_files_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

Bytes slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

void spit(const std::string& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

std::span<const uint8_t> span_of(const Bytes& b) { return {reinterpret_cast<const uint8_t*>(b.data()), b.size()}; }

Bytes gz(const Bytes& b) {
  auto z = fuzz::gzip(span_of(b));
  return Bytes(z.begin(), z.end());
}

Bytes be32(uint32_t v) { return {char(v >> 24), char((v >> 16) & 0xff), char((v >> 8) & 0xff), char(v & 0xff)}; }
Bytes le64(uint64_t v) {
  Bytes s(8, '\0');
  for (int i = 0; i < 8; ++i) s[size_t(i)] = char((v >> (8 * i)) & 0xff);
  return s;
}

// Broken files checked per format, printed at exit (for the README and reports). One
// object owns the counts and prints them, so nothing is used after its destruction.
struct Counts {
  std::map<std::string, int> by_format;
  ~Counts() {
    for (const auto& [format, n] : by_format) std::printf("broken files refused: %-12s %d\n", format.c_str(), n);
  }
};
Counts broken_file_counts;
std::map<std::string, int>& counts() { return broken_file_counts.by_format; }

// Runs `load`, which must throw E (and nothing else) whose message contains every
// one of `needles` (the file's name first, then words of the problem).
template <typename E = Error>
void expect_refused(const std::string& format, const std::string& what, const std::function<void()>& load,
                    std::vector<std::string> needles) {
  INFO(format << ": " << what);
  ++counts()[format];
  try {
    load();
    FAIL("accepted");
  } catch (const E& e) {
    const std::string msg = e.what();
    INFO("message: " << msg);
    CHECK(msg.find('\n') == std::string::npos);
    for (const auto& n : needles) CHECK(msg.find(n) != std::string::npos);
  } catch (const std::exception& e) {
    FAIL("refused with the wrong exception type: " << e.what());
  }
}

// ---- valid files to break ----

Bytes valid_safetensors(const TempDir& dir) {
  std::vector<float> w = {1, 2, 3, 4, 5, 6};
  std::vector<int32_t> step = {7};
  std::vector<NamedTensor> ts = {{"conv.weight", Tensor(w.data(), Shape{2, 3})},
                                 {"step", Tensor(step.data(), Shape{1}, DType::i32)}};
  write_safetensors(dir.file("valid.safetensors"), ts, {{"epoch", "3"}});
  return slurp(dir.file("valid.safetensors"));
}

// [[[...]]], `depth` levels: hostile JSON that recursive code would overflow the stack on.
std::string nested(size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }

std::string repeat(const std::string& s, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) out += s;
  return out;
}

Bytes safetensors_with_header(const std::string& header, const Bytes& data) {
  return le64(header.size()) + header + data;
}

const char* kGenotype = R"({"normal": [[{"op": "sep_conv_3x3", "input": 0}, {"op": "skip_connect", "input": 1}],
 [{"op": "max_pool_3x3", "input": 2}, {"op": "dil_conv_3x3", "input": 0}]],
 "reduce": [[{"op": "max_pool_3x3", "input": 0}, {"op": "avg_pool_3x3", "input": 1}],
 [{"op": "skip_connect", "input": 2}, {"op": "sep_conv_5x5", "input": 1}]]})";

Bytes idx_images(uint32_t n, uint32_t rows, uint32_t cols) {
  Bytes s = be32(data::kIdxImagesMagic) + be32(n) + be32(rows) + be32(cols);
  for (uint32_t i = 0; i < n * rows * cols; ++i) s += char(i * 7);
  return s;
}
Bytes idx_labels(const std::vector<uint8_t>& labels) {
  Bytes s = be32(data::kIdxLabelsMagic) + be32(uint32_t(labels.size()));
  for (uint8_t l : labels) s += char(l);
  return s;
}

Bytes cifar_record(uint8_t label) {
  Bytes r(size_t(data::kCifarRecordBytes), '\0');
  r[0] = char(label);
  for (size_t i = 1; i < r.size(); ++i) r[i] = char(i * 13);
  return r;
}

void append_to_string(void* context, void* data, int size) {
  static_cast<Bytes*>(context)->append(static_cast<const char*>(data), size_t(size));
}

// Small valid images: name -> (bytes, offset where the pixel data starts).
std::map<std::string, Bytes> valid_images() {
  const int w = 6, h = 5;
  std::vector<uint8_t> rgb(size_t(w * h * 3));
  for (size_t i = 0; i < rgb.size(); ++i) rgb[i] = uint8_t(i * 11);
  std::map<std::string, Bytes> out;
  stbi_write_png_to_func(append_to_string, &out["png"], w, h, 3, rgb.data(), w * 3);
  stbi_write_jpg_to_func(append_to_string, &out["jpg"], w, h, 3, rgb.data(), 90);
  stbi_write_bmp_to_func(append_to_string, &out["bmp"], w, h, 3, rgb.data());
  out["ppm"] = "P6\n6 5\n255\n" + Bytes(rgb.begin(), rgb.end());
  return out;
}

}  // namespace

TEST_CASE("broken safetensors files are refused, naming the file and the problem") {
  TempDir dir;
  const Bytes valid = valid_safetensors(dir);
  REQUIRE_NOTHROW(read_safetensors(dir.file("valid.safetensors")));
  const std::string path = dir.file("broken.safetensors");

  SECTION("cut at every byte: inside the length field, the header, the data") {
    for (size_t cut = 0; cut < valid.size(); ++cut) {
      spit(path, valid.substr(0, cut));
      expect_refused("safetensors", "cut at byte " + std::to_string(cut), [&] { read_safetensors(path); }, {path});
      const Bytes mem = valid.substr(0, cut);
      expect_refused("safetensors", "in memory, cut at byte " + std::to_string(cut),
                     [&] { parse_safetensors(span_of(mem), "mem.safetensors"); }, {"mem.safetensors"});
    }
  }

  SECTION("headers that lie") {
    const Bytes f6 = Bytes(24, '\1');
    struct Case {
      std::string what;
      Bytes file;
      std::string problem;
    };
    const std::vector<Case> cases = {
        {"header length beyond the file", le64(1000) + "{}", "exceeds"},
        {"header length absurd", le64(uint64_t(1) << 62) + "{}", "absurd"},
        {"header length too small", le64(1) + "{", "cannot hold"},
        {"header not JSON", safetensors_with_header("{\"a\": [1, 2", ""), "not valid JSON"},
        {"header a JSON array", safetensors_with_header("[1, 2, 3]", ""), "does not start with"},
        {"header a JSON string", safetensors_with_header("{\"x\"}   ", ""), "not valid JSON"},
        {"unknown dtype", safetensors_with_header(R"({"w":{"dtype":"F31","shape":[6],"data_offsets":[0,24]}})", f6), "unknown dtype"},
        {"lower-case dtype", safetensors_with_header(R"({"w":{"dtype":"f32","shape":[6],"data_offsets":[0,24]}})", f6), "unknown dtype"},
        {"unsupported dtype", safetensors_with_header(R"({"w":{"dtype":"F16","shape":[12],"data_offsets":[0,24]}})", f6), "not supported"},
        {"dtype not a string", safetensors_with_header(R"({"w":{"dtype":4,"shape":[6],"data_offsets":[0,24]}})", f6), "dtype"},
        {"dims whose product overflows", safetensors_with_header(R"({"w":{"dtype":"F32","shape":[4611686018427387904,8],"data_offsets":[0,24]}})", f6), "more elements"},
        {"dim beyond int64", safetensors_with_header(R"({"w":{"dtype":"F32","shape":[18446744073709551615],"data_offsets":[0,24]}})", f6), "too large"},
        {"negative dim", safetensors_with_header(R"({"w":{"dtype":"F32","shape":[-6],"data_offsets":[0,24]}})", f6), "negative"},
        {"fractional dim", safetensors_with_header(R"({"w":{"dtype":"F32","shape":[6.5],"data_offsets":[0,24]}})", f6), "non-negative integer"},
        {"rank too large", safetensors_with_header(R"({"w":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,6],"data_offsets":[0,24]}})", f6), "rank"},
        {"shape and offsets disagree", safetensors_with_header(R"({"w":{"dtype":"F32","shape":[5],"data_offsets":[0,24]}})", f6), "needs 20 bytes"},
        {"offsets beyond the data", safetensors_with_header(R"({"w":{"dtype":"F32","shape":[6],"data_offsets":[8,32]}})", f6), "beyond"},
        {"offsets huge", safetensors_with_header(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[18446744073709551612,18446744073709551616]}})", f6), "data_offsets"},
        {"offsets reversed", safetensors_with_header(R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[24,0]}})", f6), "begin > end"},
        {"offsets negative", safetensors_with_header(R"({"w":{"dtype":"F32","shape":[6],"data_offsets":[-4,20]}})", f6), "data_offsets"},
        {"offsets not a pair", safetensors_with_header(R"({"w":{"dtype":"F32","shape":[6],"data_offsets":[0]}})", f6), "data_offsets"},
        {"overlapping tensors", safetensors_with_header(R"({"a":{"dtype":"F32","shape":[6],"data_offsets":[0,24]},"b":{"dtype":"F32","shape":[2],"data_offsets":[16,24]}})", f6), "overlap"},
        {"a hole in the data", safetensors_with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[16,24]}})", f6), "belong to no tensor"},
        {"trailing data", safetensors_with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", f6), "after the last tensor"},
        {"duplicate tensor", safetensors_with_header(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},"a":{"dtype":"F32","shape":[3],"data_offsets":[12,24]}})", f6), "twice"},
        {"missing shape", safetensors_with_header(R"({"w":{"dtype":"F32","data_offsets":[0,24]}})", f6), "no \"shape\""},
        {"entry not an object", safetensors_with_header(R"({"w":[1,2]})", ""), "expected an object"},
        {"metadata not an object", safetensors_with_header(R"({"__metadata__":[1]})", ""), "__metadata__"},
        {"metadata value not a string", safetensors_with_header(R"({"__metadata__":{"epoch":3}})", ""), "__metadata__"},
        // A recursive dump of these for the message overflowed the stack.
        {"shape nested 300000 deep", safetensors_with_header(R"({"w":{"dtype":"F32","shape":[)" + nested(300000) + R"(],"data_offsets":[0,0]}})", ""), "nested deeper than 3"},
        {"offsets nested 300000 deep", safetensors_with_header(R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[0,)" + nested(300000) + "]}}", ""), "nested deeper than 3"},
        {"a shape nested one level too deep", safetensors_with_header(R"({"w":{"dtype":"F32","shape":[[6]],"data_offsets":[0,24]}})", f6), "nested deeper than 3"},
        {"a shape of 100 dimensions", safetensors_with_header(R"({"w":{"dtype":"F32","shape":[)" + repeat("1,", 99) + R"(6],"data_offsets":[0,24]}})", f6), "more than 64"},
        {"NUL-terminated header", safetensors_with_header(std::string(R"({"w":{"dtype":"F32","shape":[6],"data_offsets":[0,24]}})") + Bytes(8, '\0'), f6), "NUL byte"},
        {"NUL then garbage in the header", safetensors_with_header(std::string(R"({"w":{"dtype":"F32","shape":[6],"data_offsets":[0,24]}})") + Bytes("\0garbage", 8), f6), "NUL byte"},
        {"a key twice inside an entry", safetensors_with_header(R"({"w":{"dtype":"F32","shape":[6],"dtype":"I32","data_offsets":[0,24]}})", f6), "'dtype' appears twice"},
        {"a metadata key twice", safetensors_with_header(R"({"__metadata__":{"step":"1","step":"99999999999"},"w":{"dtype":"F32","shape":[6],"data_offsets":[0,24]}})", f6), "'step' appears twice"},
    };
    for (const Case& c : cases) {
      spit(path, c.file);
      expect_refused("safetensors", c.what, [&] { read_safetensors(path); }, {path, c.problem});
    }
  }

  SECTION("not a file") {
    expect_refused("safetensors", "missing", [&] { read_safetensors(dir.file("missing")); }, {dir.file("missing")});
    expect_refused("safetensors", "a directory", [&] { read_safetensors(dir.path.string()); }, {dir.path.string(), "directory"});
  }
}

TEST_CASE("broken genotype files are refused, naming the file and the problem") {
  TempDir dir;
  const std::string path = dir.file("genotype.json");
  spit(path, kGenotype);
  const nas::Genotype good = nas::Genotype::load(path);
  nas::SearchSpace space;
  space.nodes = 2;
  REQUIRE_NOTHROW(good.validate(space, path));

  SECTION("cut at every byte") {
    const Bytes valid = kGenotype;
    for (size_t cut = 0; cut < valid.size(); ++cut) {
      spit(path, valid.substr(0, cut));
      expect_refused("genotype", "cut at byte " + std::to_string(cut), [&] { nas::Genotype::load(path); }, {path});
    }
  }

  SECTION("contents that lie") {
    auto with = [](const std::string& from, const std::string& to) {
      std::string s = kGenotype;
      const size_t at = s.find(from);
      REQUIRE(at != std::string::npos);
      return s.replace(at, from.size(), to);
    };
    const std::vector<std::pair<std::string, std::pair<Bytes, std::string>>> cases = {
        {"unknown op", {with("sep_conv_3x3", "sep_conv_9x9"), "sep_conv_9x9"}},
        {"op not a string", {with("\"sep_conv_3x3\"", "3"), "must be"}},
        {"input out of range", {with("\"input\": 2", "\"input\": 3"), "input 3"}},
        {"input negative", {with("\"input\": 0", "\"input\": -1"), "input -1"}},
        {"input 2^32 (would wrap to 0)", {with("\"input\": 0", "\"input\": 4294967296"), "input 4294967296"}},
        {"input huge", {with("\"input\": 0", "\"input\": 18446744073709551615"), "input 18446744073709551615"}},
        {"input fractional", {with("\"input\": 0", "\"input\": 0.5"), "integer"}},
        {"input a string", {with("\"input\": 0", "\"input\": \"0\""), "integer"}},
        {"node with one edge", {with(R"(, {"op": "skip_connect", "input": 1}])", "]"), "two edges"}},
        {"normal and reduce differ in nodes",
         {R"({"normal": [[{"op": "skip_connect", "input": 0}, {"op": "skip_connect", "input": 1}]], "reduce": []})", "nodes"}},
        {"no reduce cell", {with("\"reduce\"", "\"reduced\""), "'reduce'"}},
        {"a JSON list", {"[1, 2, 3]", "genotype"}},
        {"not JSON", {"Genotype(normal=[('sep_conv_3x3', 0)])", "not valid JSON"}},
        {"empty", {"", "not valid JSON"}},
        {"binary", {Bytes("\x89PNG\r\n\x1a\n\0\0", 10), "not valid JSON"}},
        {"nested 300000 deep", {R"({"normal": )" + nested(300000) + R"(, "reduce": []})", "nested deeper than 5"}},
        {"NUL-terminated", {kGenotype + Bytes("\0\0\0", 3), "NUL byte"}},
        {"NUL then garbage", {kGenotype + Bytes("\0{\"normal\": 1}", 14), "NUL byte"}},
        {"a key twice in an edge", {with(R"("op": "sep_conv_3x3")", R"("op": "sep_conv_3x3", "op": "none")"), "'op' appears twice"}},
        {"a node taking the same input twice", {with(R"({"op": "skip_connect", "input": 1})", R"({"op": "skip_connect", "input": 0})"), "input 0 twice"}},
        {"larger than a genotype can be (2 MiB of '[')", {Bytes(2u << 20, '['), "more than the 1048576 bytes"}},
    };
    for (const auto& [what, c] : cases) {
      spit(path, c.first);
      expect_refused("genotype", what, [&] { nas::Genotype::load(path); }, {path, c.second});
    }
    // Valid JSON for a different space: refused when checked against the space in use.
    space.nodes = 3;
    expect_refused("genotype", "node count differs from the space", [&] { good.validate(space, path); }, {path, "nodes"});
  }

  SECTION("not a file") {
    expect_refused("genotype", "missing", [&] { nas::Genotype::load(dir.file("missing.json")); }, {dir.file("missing.json")});
    expect_refused("genotype", "a directory", [&] { nas::Genotype::load(dir.path.string()); }, {dir.path.string(), "directory"});
  }
}

namespace {

// A small valid meta cell: 3 cells (a reduction at 1), 2 nodes, 8x8 grey images.
nas::SearchSpace tiny_meta_space() {
  nas::SearchSpace s;
  s.channels = 4;
  s.cells = 3;
  s.reductions = {1};
  s.nodes = 2;
  s.height = s.width = 8;
  s.classes = 3;
  return s;
}

void write_tiny_meta_cell(const std::string& path) {
  const nas::SearchSpace space = tiny_meta_space();
  ParamStore params;
  nas::init_search_params(params, space, 7);
  nas::save_meta_cell(path, space, params, nas::MetaCell::from_cells(space, params), {{"data", "none"}});
}

// `file` rewritten: its metadata and tensors passed through the two edits.
void rewrite_safetensors(const std::string& from, const std::string& to,
                         const std::function<void(std::map<std::string, std::string>&)>& edit_metadata,
                         const std::function<void(std::vector<NamedTensor>&)>& edit_tensors = {}) {
  SafetensorsFile f = read_safetensors(from);
  std::vector<NamedTensor> tensors;
  for (const auto& t : f.tensors) tensors.push_back({t.name, t.tensor()});
  std::map<std::string, std::string> metadata = f.metadata;
  edit_metadata(metadata);
  if (edit_tensors) edit_tensors(tensors);
  // Laid out here rather than by write_safetensors, whose fsyncs made a hundred
  // rewrites take half a minute.
  nlohmann::ordered_json header = {{"__metadata__", metadata}};
  Bytes data;
  for (const NamedTensor& t : tensors) {
    header[t.name] = {{"dtype", t.tensor.dtype() == DType::f32 ? "F32" : "I32"},
                      {"shape", t.tensor.shape().dims()},
                      {"data_offsets", {data.size(), data.size() + t.tensor.bytes()}}};
    data.append(static_cast<const char*>(t.tensor.data()), t.tensor.bytes());
  }
  spit(to, safetensors_with_header(header.dump(), data));
}

}  // namespace

TEST_CASE("broken meta cells are refused before the supernet is allocated, naming the file and the problem") {
  TempDir dir;
  const std::string valid_path = dir.file("valid.safetensors"), path = dir.file("meta.safetensors");
  write_tiny_meta_cell(valid_path);
  {
    ParamStore params;
    REQUIRE(nas::load_meta_cell(valid_path, params).space == tiny_meta_space());
  }
  const Bytes valid = slurp(valid_path);
  auto load = [&] {
    ParamStore params;
    nas::load_meta_cell(path, params);
  };

  SECTION("cut: at every byte of the length field and the header, every 97th of the data") {
    const size_t header_end = 8 + size_t(uint8_t(valid[0])) + (size_t(uint8_t(valid[1])) << 8);
    for (size_t cut = 0; cut < valid.size(); cut += cut < header_end + 8 ? 1 : 97) {
      spit(path, valid.substr(0, cut));
      expect_refused("meta_cell", "cut at byte " + std::to_string(cut), load, {path});
    }
  }

  SECTION("a search space that lies, or that cannot be") {
    const nlohmann::json space = tiny_meta_space().to_json();
    struct Case {
      std::string what;
      std::function<void(nlohmann::json&)> edit;
      std::string problem;
    };
    std::vector<Case> cases;
    for (const char* key : {"nodes", "cells", "channels", "stem_multiplier", "in_channels", "height", "width", "classes"}) {
      const std::string k = key;
      cases.push_back({k + " 2^20", [k](nlohmann::json& j) { j[k] = 1 << 20; }, "\"" + k + "\" is 1048576, outside"});
      cases.push_back({k + " 2^32 + 1 (1 if narrowed)", [k](nlohmann::json& j) { j[k] = 4294967297; }, "\"" + k + "\" is 4294967297"});
      cases.push_back({k + " 2^64 - 1", [k](nlohmann::json& j) { j[k] = uint64_t(-1); }, "\"" + k + "\" is 18446744073709551615"});
      cases.push_back({k + " negative", [k](nlohmann::json& j) { j[k] = -3; }, "\"" + k + "\" is -3"});
      cases.push_back({k + " zero", [k](nlohmann::json& j) { j[k] = 0; }, "\"" + k + "\" is 0, outside"});
      cases.push_back({k + " a string", [k](nlohmann::json& j) { j[k] = "4"; }, "\"" + k + "\" is missing or not an integer"});
      cases.push_back({k + " missing", [k](nlohmann::json& j) { j.erase(k); }, "\"" + k + "\" is missing"});
      cases.push_back({k + " fractional", [k](nlohmann::json& j) { j[k] = 2.5; }, "not an integer"});
    }
    cases.push_back({"a reduction of 2^32 + 1 (1 if narrowed)", [](nlohmann::json& j) { j["reductions"] = {4294967297}; }, "reduction 4294967297"});
    cases.push_back({"a reduction beyond the cells", [](nlohmann::json& j) { j["reductions"] = {3}; }, "reduction 3 is not a cell"});
    cases.push_back({"a reduction listed twice", [](nlohmann::json& j) { j["reductions"] = {1, 1}; }, "listed twice"});
    cases.push_back({"no reduction cell", [](nlohmann::json& j) { j["reductions"] = nlohmann::json::array(); }, "reduction cell"});
    cases.push_back({"only reduction cells", [](nlohmann::json& j) { j["reductions"] = {0, 1, 2}; }, "normal cell"});
    cases.push_back({"reductions not a list", [](nlohmann::json& j) { j["reductions"] = 1; }, "reductions"});
    cases.push_back({"an unknown op", [](nlohmann::json& j) { j["ops"][0] = "conv_9x9"; }, "conv_9x9"});
    cases.push_back({"only the op none", [](nlohmann::json& j) { j["ops"] = {"none"}; }, "none"});
    cases.push_back({"an op twice", [](nlohmann::json& j) { j["ops"][1] = j["ops"][0]; }, "twice"});
    cases.push_back({"eleven ops", [](nlohmann::json& j) { j["ops"] = std::vector<std::string>(11, "none"); }, "op kinds"});
    cases.push_back({"an input too small for its reductions", [](nlohmann::json& j) { j["height"] = 1; }, "cannot flow"});
    // Widths that would overflow int: the first cell's channels times 2 per reduction,
    // the stem's multiplier times the channels. Bounded before anything is derived.
    cases.push_back({"channels 2^30", [](nlohmann::json& j) { j["channels"] = 1 << 30; }, "outside 2..1024"});
    cases.push_back({"stem multiplier 2^31 - 1", [](nlohmann::json& j) { j["stem_multiplier"] = 2147483647; }, "outside 1..8"});
    cases.push_back({"widest cell 2^22 channels (1024 doubled 12 times)",
                     [](nlohmann::json& j) {
                       j["channels"] = 1024, j["cells"] = 13, j["height"] = j["width"] = 4096;
                       j["reductions"] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
                     },
                     "the space needs f32"});
    // Within bounds, but not the space of the tensors: refused by shape before the
    // supernet of the claimed space is allocated.
    cases.push_back({"more nodes than the tensors", [](nlohmann::json& j) { j["nodes"] = 8; }, "the space needs f32"});
    cases.push_back({"more cells than the tensors", [](nlohmann::json& j) { j["cells"] = 64; }, "the space needs f32"});
    cases.push_back({"wider than the tensors", [](nlohmann::json& j) { j["channels"] = 1024; }, "the space needs f32"});
    cases.push_back({"more classes than the classifier", [](nlohmann::json& j) { j["classes"] = 100000; }, "classifier.weight"});
    cases.push_back({"another op set", [](nlohmann::json& j) { j["ops"] = {"max_pool_3x3", "sep_conv_5x5"}; }, "has no tensor"});
    for (const Case& c : cases) {
      rewrite_safetensors(valid_path, path, [&](auto& md) {
        nlohmann::json j = space;
        c.edit(j);
        md["search_space"] = j.dump();
      });
      expect_refused("meta_cell", c.what, load, {path, c.problem});
    }
    const std::vector<std::pair<std::string, std::string>> texts = {
        {"not JSON", "C=4 cells=3"},
        {"NUL-terminated", space.dump() + std::string(1, '\0')},
        {"a key twice", "{\"nodes\": 2, " + space.dump().substr(1)},
        {"nested", "{\"nodes\": [[[2]]]}"},
        {"a list", "[1, 2]"},
    };
    for (const auto& [what, text] : texts) {
      rewrite_safetensors(valid_path, path, [&](auto& md) { md["search_space"] = text; });
      expect_refused("meta_cell", "search_space " + what, load, {path, "search_space"});
    }
  }

  SECTION("metadata and tensors that do not match") {
    struct Case {
      std::string what;
      std::function<void(std::map<std::string, std::string>&)> metadata;
      std::function<void(std::vector<NamedTensor>&)> tensors;
      std::string problem;
    };
    std::vector<float> junk(6, 1.0f), nan(256, std::nanf("")), wide(4096, 0.5f);
    std::vector<int32_t> ints(4096, 1);
    auto find = [](std::vector<NamedTensor>& ts, const std::string& name) -> NamedTensor& {
      for (auto& t : ts)
        if (t.name == name) return t;
      FAIL("no tensor " << name);
      return ts[0];
    };
    const std::vector<Case> cases = {
        {"another format", [](auto& md) { md["format"] = "onnas checkpoint"; }, {}, "not a meta cell file"},
        {"no format", [](auto& md) { md.erase("format"); }, {}, "no \"format\""},
        {"version 2", [](auto& md) { md["version"] = "2"; }, {}, "version 2"},
        {"no search space", [](auto& md) { md.erase("search_space"); }, {}, "no \"search_space\""},
        {"an extra tensor", [](auto&) {}, [&](auto& ts) { ts.push_back({"junk", Tensor(junk.data(), Shape{6})}); }, "junk is not part"},
        {"a meta cell tensor missing",
         [](auto&) {},
         [](auto& ts) { std::erase_if(ts, [](const NamedTensor& t) { return t.name == "meta_cell.pre1.conv.weight"; }); },
         "no tensor meta_cell.pre1.conv.weight"},
        {"the stem missing",
         [](auto&) {},
         [](auto& ts) { std::erase_if(ts, [](const NamedTensor& t) { return t.name == "stem.conv.weight"; }); },
         "no tensor stem.conv.weight"},
        {"a meta cell tensor of another shape",
         [](auto&) {},
         [&](auto& ts) { find(ts, "meta_cell.pre1.conv.weight").tensor = Tensor(wide.data(), Shape{64, 64, 1, 1}); },
         "meta_cell.pre1.conv.weight is f32 [64, 64, 1, 1]"},
        {"a tensor of another dtype",
         [](auto&) {},
         [&](auto& ts) {
           NamedTensor& t = find(ts, "classifier.bias");
           t.tensor = Tensor(ints.data(), t.tensor.shape(), DType::i32);
         },
         "classifier.bias is i32"},
        {"a NaN in the meta cell",
         [](auto&) {},
         [&](auto& ts) {
           NamedTensor& t = find(ts, "meta_cell.pre1.conv.weight");
           REQUIRE(t.tensor.numel() <= int64_t(nan.size()));
           t.tensor = Tensor(nan.data(), t.tensor.shape());
         },
         "non-finite"},
    };
    for (const Case& c : cases) {
      rewrite_safetensors(valid_path, path, c.metadata, c.tensors);
      expect_refused("meta_cell", c.what, load, {path, c.problem});
    }
  }
}

TEST_CASE("broken IDX files, plain and gzip'ed, are refused, naming the file and the problem") {
  TempDir dir;
  const Bytes images = idx_images(5, 3, 4), labels = idx_labels({0, 2, 1, 2, 0});
  const std::string img = dir.file("images"), lab = dir.file("labels");
  for (bool compressed : {false, true}) {
    auto write = [&](const std::string& p, const Bytes& b) { spit(p, compressed ? gz(b) : b); };
    const std::string kind = compressed ? "gzip" : "plain";
    write(img, images);
    write(lab, labels);
    REQUIRE_NOTHROW(data::load_idx(img, lab));

    // Every cut of the file as stored (for gzip: of the compressed bytes).
    for (int which = 0; which < 2; ++which) {
      const Bytes stored = compressed ? gz(which == 0 ? images : labels) : (which == 0 ? images : labels);
      const std::string& p = which == 0 ? img : lab;
      for (size_t cut = 0; cut < stored.size(); ++cut) {
        spit(p, stored.substr(0, cut));
        expect_refused("idx", kind + (which == 0 ? " images" : " labels") + " cut at byte " + std::to_string(cut),
                       [&] { data::load_idx(img, lab); }, {p});
      }
      spit(p, stored);
    }

    struct Case {
      std::string what;
      Bytes images, labels;
      std::string blamed, problem;
      int32_t classes = 0;
    };
    const std::vector<Case> cases = {
        {"count larger than the file", be32(data::kIdxImagesMagic) + be32(1000) + be32(3) + be32(4) + images.substr(16), labels, img, "disagree"},
        {"count larger than both files", be32(data::kIdxImagesMagic) + be32(1000) + be32(3) + be32(4) + images.substr(16),
         be32(data::kIdxLabelsMagic) + be32(1000) + labels.substr(8), compressed ? lab : lab, "truncated"},
        {"dims whose product is absurd", be32(data::kIdxImagesMagic) + be32(0xffffffffu) + be32(65536) + be32(65536), labels, img, "absurd"},
        {"side beyond the limit", be32(data::kIdxImagesMagic) + be32(5) + be32(100000) + be32(4), labels, img, "absurd"},
        {"a zero dimension", be32(data::kIdxImagesMagic) + be32(5) + be32(0) + be32(4), labels, img, "zero"},
        {"labels magic in the images file", labels, labels, img, "magic"},
        {"images magic in the labels file", images, images, lab, "magic"},
        {"not an IDX file", Bytes("GIF89a...........") + images, labels, img, "magic"},
        {"float IDX data", be32(0x00000d03) + images.substr(4), labels, img, "magic"},
        {"trailing bytes", images + "xyz", labels, img, "trailing"},
        {"label out of range", images, idx_labels({0, 2, 1, 9, 0}), lab, "out of range", 3},
        {"label 255", images, idx_labels({0, 255, 1, 2, 0}), lab, "label 255", 10},
    };
    for (const Case& c : cases) {
      write(img, c.images);
      write(lab, c.labels);
      expect_refused("idx", kind + ": " + c.what, [&] { data::load_idx(img, lab, c.classes); }, {c.blamed, c.problem});
    }
  }
  // Bytes after the last gzip member: zlib's gzread skips them without a word.
  for (const Bytes& garbage : {Bytes("x"), Bytes("garbage after the stream"), Bytes(70000, '\0'), Bytes("\x1f", 1)}) {
    spit(img, gz(images) + garbage);
    spit(lab, gz(labels));
    expect_refused("idx", "gzip with " + std::to_string(garbage.size()) + " bytes after the stream",
                   [&] { data::load_idx(img, lab); }, {img, "trailing bytes", "not another gzip member"});
  }
  // Two gzip members (gzip -c a b > c) are one valid file.
  spit(img, gz(images.substr(0, 20)) + gz(images.substr(20)));
  REQUIRE(data::load_idx(img, lab).N == 5);
  // max_images: the rest is read through and checked, not kept.
  CHECK(data::load_idx(img, lab, 0, 2).N == 2);
  CHECK(data::load_idx(img, lab, 0, 2).pixels.size() == 2 * 3 * 4);
  spit(img, gz(images.substr(0, images.size() - 1)));
  expect_refused("idx", "gzip cut inside the images it does not keep", [&] { data::load_idx(img, lab, 0, 2); },
                 {img, "truncated"});
  spit(img, images + "x");
  spit(lab, labels);
  expect_refused("idx", "plain with trailing bytes after the images it does not keep", [&] { data::load_idx(img, lab, 0, 2); },
                 {img, "trailing"});
  expect_refused("idx", "missing", [&] { data::load_idx(dir.file("nope"), dir.file("labels")); }, {dir.file("nope")});
  expect_refused("idx", "a directory", [&] { data::load_idx(dir.path.string(), dir.file("labels")); }, {dir.path.string(), "directory"});
}

TEST_CASE("broken CIFAR-10 batches, plain and gzip'ed, are refused, naming the file and the problem") {
  TempDir dir;
  const Bytes valid = cifar_record(3) + cifar_record(9);
  const std::string path = dir.file("data_batch_1.bin");
  const std::vector<std::string> files = {path};
  for (bool compressed : {false, true}) {
    const std::string kind = compressed ? "gzip" : "plain";
    const Bytes stored = compressed ? gz(valid) : valid;
    spit(path, stored);
    REQUIRE(data::load_cifar10(files).N == 2);
    // Plain: cut inside the first record's label, pixels, the second record, and at
    // every byte of its last 64; gzip: at every byte of the compressed stream.
    std::vector<size_t> cuts;
    for (size_t cut = 0; cut < stored.size(); ++cut)
      if (compressed || cut < 64 || cut % 509 == 0 || cut + 64 >= stored.size() || cut == size_t(data::kCifarRecordBytes) + 1)
        cuts.push_back(cut);
    for (size_t cut : cuts) {
      if (!compressed && cut == size_t(data::kCifarRecordBytes)) continue;  // one whole record: valid
      spit(path, stored.substr(0, cut));
      expect_refused("cifar", kind + " cut at byte " + std::to_string(cut), [&] { data::load_cifar10(files); }, {path});
    }
    struct Case {
      std::string what;
      Bytes file;
      std::string problem;
    };
    const std::vector<Case> cases = {
        {"label 10", cifar_record(3) + cifar_record(10), "label 10"},
        {"label 255 (a negative byte)", cifar_record(255), "label 255"},
        {"trailing bytes", valid + "abc", compressed ? "ends inside record 2" : "not a multiple"},
        {"empty", "", compressed ? "empty" : "empty"},
    };
    for (const Case& c : cases) {
      spit(path, compressed ? gz(c.file) : c.file);
      expect_refused("cifar", kind + ": " + c.what, [&] { data::load_cifar10(files); }, {path, c.problem});
    }
  }
  spit(path, gz(valid) + "trailing garbage");
  expect_refused("cifar", "gzip with bytes after the stream", [&] { data::load_cifar10(files); },
                 {path, "not another gzip member"});
  expect_refused("cifar", "missing", [&] { data::load_cifar10_dir(dir.file("nope"), data::Split::test); }, {dir.file("nope")});
}

TEST_CASE("broken image files are refused, naming the file and the problem") {
  TempDir dir;
  data::ImageLoadOptions options{.channels = 3, .height = 8, .width = 8};
  std::vector<float> out(3 * 8 * 8);
  const std::string path = dir.file("image");
  for (const auto& [format, valid] : valid_images()) {
    spit(path, valid);
    REQUIRE_NOTHROW(data::load_image(path, options, out.data()));
    // Cut at every byte: every cut is refused. stb itself pads some truncated pixel
    // data (a short JPEG or BMP decodes with grey or black rows), leaves a PNM's
    // missing pixels uninitialised and trusts a PNG chunk's length, so the loader checks
    // each format's length before stb sees it.
    for (size_t cut = 0; cut < valid.size(); ++cut) {
      spit(path, valid.substr(0, cut));
      expect_refused("image", format + " cut at byte " + std::to_string(cut), [&] { data::load_image(path, options, out.data()); },
                     {path, "cannot decode image"});
    }
  }
  auto u32le = [](uint32_t v) { return Bytes{char(v & 0xff), char((v >> 8) & 0xff), char((v >> 16) & 0xff), char(v >> 24)}; };
  const Bytes png = valid_images()["png"];
  const Bytes jpg = valid_images()["jpg"], bmp = valid_images()["bmp"];
  const size_t sos = jpg.find("\xff\xda"), sof = jpg.find("\xff\xc0");
  REQUIRE(sos != Bytes::npos);
  REQUIRE(sof != Bytes::npos);
  auto be16 = [](uint16_t v) { return Bytes{char(v >> 8), char(v & 0xff)}; };
  struct Case {
    std::string what;
    Bytes file;
    std::string problem;
  };
  const std::vector<Case> cases = {
      {"PNM header claiming 100000 x 100000", "P6\n100000 100000\n255\n" + Bytes(30, 'x'), "more than"},
      {"PNG header claiming 16000 x 16000", png.substr(0, 16) + be32(16000) + be32(16000) + png.substr(24), "more than"},
      {"PNG header claiming 60000 x 60000", png.substr(0, 16) + be32(60000) + be32(60000) + png.substr(24), "cannot decode image"},
      {"BMP header claiming 30000 x 30000", valid_images()["bmp"].substr(0, 18) + u32le(30000) + u32le(30000) + valid_images()["bmp"].substr(26), "more than"},
      {"PNG whose IDAT claims 1.2 GB", png.substr(0, 33) + be32(0x4c9c1814) + "IDAT" + png.substr(41), "claims 1285298196 bytes"},
      {"PNG without IEND", png.substr(0, png.size() - 12), "no IEND"},
      {"JPEG without scan data (SOI, tables, EOI)", jpg.substr(0, sos) + "\xff\xd9", "without scan data"},
      {"JPEG without scan data or EOI", jpg.substr(0, sos), "ends before its scan data"},
      {"JPEG cut inside its scan data", jpg.substr(0, jpg.size() - 2), "no end-of-image marker"},
      // A few hundred bytes claiming 33 megapixels: stb padded the scan and decoded it.
      {"JPEG frame of 5792 x 5792 in a short file", jpg.substr(0, sof + 5) + be16(5792) + be16(5792) + jpg.substr(sof + 9),
       "cannot hold the scan data of its 5792 x 5792 pixels"},
      {"BMP missing its last pixel row", bmp.substr(0, bmp.size() - 20), "truncated BMP"},
      {"BMP whose header claims more rows", bmp.substr(0, 22) + u32le(50) + bmp.substr(26), "truncated BMP"},
      {"PNM with zero width", "P6\n0 5\n255\n" + Bytes(90, 'x'), "cannot decode image"},
      {"PNM with a 12-digit width", "P5\n123456789012 2\n255\n" + Bytes(30, 'x'), "9 digits"},
      {"PNM cut inside the pixels", "P5\n6 5\n255\n" + Bytes(29, 'x'), "truncated PNM"},
      {"16-bit PNM cut inside the pixels", "P5\n6 5\n65535\n" + Bytes(31, 'x'), "truncated PNM"},
      // stb drops the last digit of a number that ends the file: it read 1 x 9992999 pixels from 12 bytes.
      {"PNM whose header ends the file", "P5 1\n99929999", "ends inside its header (at its height)"},
      {"PNM without a maximum value", "P5 6 5\n\n" + Bytes(30, 'x'), "without its maximum value"},
      {"PNM with maximum value 0", "P5 6 5 0\n" + Bytes(30, 'x'), "maximum value 0 is outside 1..65535"},
      {"PNM magic run into its width", "P56 5\n255\n" + Bytes(30, 'x'), "no whitespace after its magic"},
      {"a TGA (not a format the loader takes)", Bytes("\0\0\2\0\0\0\0\0\0\0\0\0\2\0\2\0\x18\0", 18) + Bytes(12, 'x'), "not a PNG"},
      {"a GIF", "GIF89a" + Bytes(30, '\0'), "not a PNG"},
      {"not an image", "hello, world: certainly not an image file", "not a PNG"},
      {"empty", "", "cannot decode image"},
  };
  for (const Case& c : cases) {
    spit(path, c.file);
    expect_refused("image", c.what, [&] { data::load_image(path, options, out.data()); }, {path, c.problem});
  }
  // A top-down BMP (negative height: rows stored first to last) is valid and decodes to
  // the bottom-up file's pixels (it was refused as "-5 x 6 pixels").
  {
    const int w = 6, h = 5;
    const size_t row = (w * 3 + 3) / 4 * 4, offset = 54;
    REQUIRE(bmp.size() == offset + row * h);
    Bytes top = bmp.substr(0, 22) + u32le(uint32_t(-h)) + bmp.substr(26, offset - 26);
    for (int y = h - 1; y >= 0; --y) top += bmp.substr(offset + size_t(y) * row, row);
    std::vector<float> a(out.size()), b(out.size());
    spit(path, bmp);
    data::load_image(path, options, a.data());
    spit(path, top);
    REQUIRE_NOTHROW(data::load_image(path, options, b.data()));
    CHECK(a == b);
  }
  expect_refused("image", "missing", [&] { data::load_image(dir.file("nope.png"), options, out.data()); }, {dir.file("nope.png")});
  expect_refused("image", "a directory", [&] { data::load_image(dir.path.string(), options, out.data()); }, {dir.path.string()});
}

TEST_CASE("broken buffer lists are refused with one sentence naming the source and the problem") {
  const std::string valid = R"([{"name": "a", "bytes": 64, "first": 0, "last": 1}, {"name": "b", "bytes": 32, "first": 1, "last": 2, "may_share_with": 0}])";
  REQUIRE(planner::parse_buffer_list(valid, "list.json").size() == 2);
  for (size_t cut = 0; cut < valid.size(); ++cut)
    expect_refused<std::invalid_argument>("buffer_list", "cut at byte " + std::to_string(cut),
                                          [&] { planner::parse_buffer_list(valid.substr(0, cut), "list.json"); }, {"list.json"});
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"([{"name": "a", "bytes": -1, "first": 0, "last": 1}])", "at least 0"},
      {R"([{"name": "a", "bytes": 9223372036854775807, "first": 0, "last": 1}])", "larger than"},
      {R"([{"name": "a", "bytes": 18446744073709551615, "first": 0, "last": 1}])", "larger than"},
      {R"([{"name": "a", "bytes": 1e30, "first": 0, "last": 1}])", "integer"},
      {R"([{"name": "a", "bytes": 8, "first": 3, "last": 1}])", "before"},
      {R"([{"name": "a", "bytes": 8, "first": -1, "last": 1}])", "at least 0"},
      {R"([{"name": "a", "bytes": 8, "first": 0, "last": 4294967296}])", "larger than"},
      {R"([{"name": "a", "bytes": 8, "first": 0, "last": 1, "alignment": 3}])", "power of two"},
      {R"([{"name": "a", "bytes": 8, "first": 0, "last": 1, "may_share_with": 5}])", "may_share_with"},
      {R"([{"bytes": 8, "first": 0, "last": 1}])", "missing \"name\""},
      {R"([{"name": 7, "bytes": 8, "first": 0, "last": 1}])", "string"},
      {R"({"name": "a", "bytes": 8, "first": 0, "last": 1})", "list"},
      {R"([[1, 2]])", "not an object"},
      {"bytes,first,last\n8,0,1\n", "not valid JSON"},
      {R"([{"name": "a", "bytes": )" + nested(300000) + R"(, "first": 0, "last": 1}])", "nested deeper"},
      {nested(300000), "nested deeper"},
      {R"([{"name": "a", "bytes": [1], "first": 0, "last": 1}])", "nested deeper"},
  };
  for (const auto& [text, problem] : cases)
    expect_refused<std::invalid_argument>("buffer_list", text, [&] { planner::parse_buffer_list(text, "list.json"); },
                                          {"list.json", problem});

  // Each size within its bound, their sum not: nine buffers of 2^61 - 1 bytes live at
  // once (the 621-byte list that made the planner loop forever). Refused by validate().
  std::string huge = "[";
  for (int i = 0; i < 9; ++i)
    huge += fmt::format(R"({}{{"name": "b{}", "bytes": 2305843009213693951, "first": 0, "last": 1}})", i ? ", " : "", i);
  huge += "]";
  const auto buffers = planner::parse_buffer_list(huge, "huge.json");
  REQUIRE(buffers.size() == 9);
  expect_refused<std::invalid_argument>("buffer_list", "sizes whose sum overflows", [&] { planner::plan_memory(buffers); },
                                        {"add up to more than", "too large to plan"});
}

TEST_CASE("the fuzzers' crashers (tests/regressions/) are refused or read cleanly") {
  const std::map<std::string, std::function<void(std::span<const uint8_t>)>> feeds = {
      {"safetensors", fuzz::feed_safetensors}, {"genotype", fuzz::feed_genotype}, {"idx", fuzz::feed_idx},
      {"cifar", fuzz::feed_cifar},             {"image", fuzz::feed_image},       {"buffer_list", fuzz::feed_buffer_list},
      {"checkpoint", fuzz::feed_checkpoint},   {"meta_cell", fuzz::feed_meta_cell}};
  const fs::path root = fs::path(ONNAS_SOURCE_DIR) / "tests" / "regressions";
  int replayed = 0;
  for (const auto& [format, feed] : feeds) {
    if (!fs::is_directory(root / format)) continue;
    for (const auto& entry : fs::directory_iterator(root / format)) {
      INFO(entry.path().string());
      const Bytes bytes = slurp(entry.path().string());
      ++replayed;
      try {
        feed(span_of(bytes));
      } catch (const Error& e) {
        CHECK(std::string(e.what()).find("fuzz") != std::string::npos);  // names the harness's file
      } catch (const std::invalid_argument& e) {
        CHECK(format == "buffer_list");
        CHECK(std::string(e.what()).find("fuzz.json") != std::string::npos);
      }
    }
  }
  std::printf("regression files replayed: %d\n", replayed);
  CHECK(replayed > 0);
}

#ifdef ONNAS_TOOL
namespace {

struct ToolRun {
  int status = -1;
  std::vector<std::string> stderr_lines;
  std::string stderr_text;
  int64_t max_rss_kb = 0;  // the tool's peak resident memory
};

// Runs the tool (the shell execs it, so wait4 reports the tool's own peak RSS).
ToolRun run_tool(const TempDir& dir, const std::string& args) {
  const std::string err = dir.file("stderr.txt");
  const std::string cmd = std::string("exec '") + ONNAS_TOOL + "' " + args + " >/dev/null 2>'" + err + "' </dev/null";
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  int raw = 0;
  rusage usage{};
  REQUIRE(pid > 0);
  REQUIRE(::wait4(pid, &raw, 0, &usage) == pid);
  ToolRun r;
  r.max_rss_kb = usage.ru_maxrss;
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
  r.stderr_text = slurp(err);
  std::string line;
  for (char c : r.stderr_text) {
    if (c == '\n') {
      r.stderr_lines.push_back(line);
      line.clear();
    } else {
      line += c;
    }
  }
  if (!line.empty()) r.stderr_lines.push_back(line);
  return r;
}

// The refusal is one line; with `after_progress`, lines the tool printed before it
// (what it set out to do) may precede it. Returns the run, for its memory.
ToolRun expect_one_line_refusal(const TempDir& dir, const std::string& args, const std::string& needle,
                                bool after_progress = false) {
  INFO("onnas " << args);
  ToolRun r = run_tool(dir, args);
  INFO("stderr: " << r.stderr_text);
  CHECK(r.status != 0);
  CHECK(r.status < 128);  // not killed by a signal
  REQUIRE(!r.stderr_lines.empty());
  if (!after_progress) REQUIRE(r.stderr_lines.size() == 1);
  const std::string& last = r.stderr_lines.back();
  CHECK(last.starts_with("onnas: error: "));
  CHECK(last.find(needle) != std::string::npos);
  CHECK(std::count_if(r.stderr_lines.begin(), r.stderr_lines.end(),
                      [](const std::string& l) { return l.find("error") != std::string::npos; }) == 1);
  for (const char* bad : {"terminate", "Sanitizer", "Aborted", "what()", "json.exception", "stoi", "map::at", "bad_alloc"})
    CHECK(r.stderr_text.find(bad) == std::string::npos);
  return r;
}

}  // namespace

TEST_CASE("the onnas tool refuses broken files with one line on stderr and a non-zero exit") {
  TempDir dir;
  spit(dir.file("bad_genotype.json"), R"({"normal": [[{"op": "conv_9x9", "input": 0}, {"op": "skip_connect", "input": 1}]], "reduce": [[{"op": "skip_connect", "input": 0}, {"op": "skip_connect", "input": 1}]]})");
  spit(dir.file("not_json.json"), "normal: sep_conv_3x3\n");
  spit(dir.file("bad.safetensors"), le64(1000) + "{}");
  spit(dir.file("cut.safetensors"), valid_safetensors(dir).substr(0, 30));
  spit(dir.file("bad_buffers.json"), R"([{"name": "a", "bytes": 8, "first": 5, "last": 1}])");
  spit(dir.file("genotype.json"), kGenotype);
  fs::create_directories(dir.path / "idx");
  spit(dir.file("idx/train-images-idx3-ubyte"), be32(data::kIdxImagesMagic) + be32(60000) + be32(28) + be32(28) + "short");
  spit(dir.file("idx/train-labels-idx1-ubyte"), idx_labels(std::vector<uint8_t>(60000, 1)));
  fs::create_directories(dir.path / "cifar");
  spit(dir.file("cifar/data_batch_1.bin"), cifar_record(3) + cifar_record(12));
  fs::create_directories(dir.path / "images/cat");
  spit(dir.file("images/cat/a.png"), "P6\n100000 100000\n255\n");

  expect_one_line_refusal(dir, "train --genotype '" + dir.file("bad_genotype.json") + "'", "conv_9x9");
  expect_one_line_refusal(dir, "train --genotype '" + dir.file("not_json.json") + "'", "not valid JSON");
  expect_one_line_refusal(dir, "plan --network train --genotype '" + dir.file("bad_genotype.json") + "'", "bad_genotype.json");
  expect_one_line_refusal(dir, "inspect '" + dir.file("bad.safetensors") + "'", "exceeds");
  expect_one_line_refusal(dir, "inspect '" + dir.file("cut.safetensors") + "'", "cut.safetensors");
  expect_one_line_refusal(dir, "inspect '" + dir.file("missing.safetensors") + "'", "missing.safetensors");
  expect_one_line_refusal(dir, "plan --buffers '" + dir.file("bad_buffers.json") + "'", "before");
  expect_one_line_refusal(dir, "plan --buffers '" + dir.file("missing.json") + "'", "missing.json");
  // Nine buffers of 2^61 - 1 bytes live at once: the planner looped forever.
  std::string huge = "[";
  for (int i = 0; i < 9; ++i)
    huge += fmt::format(R"({}{{"name": "b{}", "bytes": 2305843009213693951, "first": 0, "last": 1}})", i ? ", " : "", i);
  spit(dir.file("huge_sum.json"), huge + "]");
  expect_one_line_refusal(dir, "plan --buffers '" + dir.file("huge_sum.json") + "'", "huge_sum.json: the buffers' sizes add up");
  const std::string g = " --genotype '" + dir.file("genotype.json") + "' --threads 1";
  expect_one_line_refusal(dir, "train --data-format idx --data '" + dir.file("idx") + "'" + g, "train-images-idx3-ubyte");
  expect_one_line_refusal(dir, "train --data-format cifar10 --data '" + dir.file("cifar") + "'" + g, "label 12");
  expect_one_line_refusal(dir, "train --data-format folder --data '" + dir.file("images") + "'" + g, "a.png");
}

namespace {

// A tiny MNIST-style folder: 64 training and 16 test images of 8x8, labels 0..3
// (`--data-format idx`), for runs of a few steps.
void write_tiny_idx(const std::string& dir, int64_t test_side = 8) {
  fs::create_directories(dir);
  auto images = [](uint32_t n, uint32_t side) {
    Bytes s = be32(data::kIdxImagesMagic) + be32(n) + be32(side) + be32(side);
    for (uint32_t i = 0; i < n * side * side; ++i) s += char((i * 37 + i / 64 * 11) % 251);
    return s;
  };
  auto labels = [](uint32_t n) {
    std::vector<uint8_t> l;
    for (uint32_t i = 0; i < n; ++i) l.push_back(uint8_t(i % 4));
    return idx_labels(l);
  };
  spit(dir + "/train-images-idx3-ubyte.gz", gz(images(64, 8)));
  spit(dir + "/train-labels-idx1-ubyte.gz", gz(labels(64)));
  spit(dir + "/t10k-images-idx3-ubyte.gz", gz(images(16, uint32_t(test_side))));
  spit(dir + "/t10k-labels-idx1-ubyte.gz", gz(labels(16)));
}

// One node per cell: the genotype of the tiny runs.
const char* kTinyGenotype = R"({"normal": [[{"op": "skip_connect", "input": 0}, {"op": "conv_3x3", "input": 1}]],
 "reduce": [[{"op": "max_pool_3x3", "input": 0}, {"op": "skip_connect", "input": 1}]]})";
const char* kTinySpace = " -C 2 --cells 2 --reductions 1 --nodes 1 --threads 1";

// The tool is built like this test: under AddressSanitizer its memory is a few times
// larger (shadow, quarantine), and so are the bounds below.
#if defined(__SANITIZE_ADDRESS__)
constexpr int64_t kMemoryFactor = 4;
#else
constexpr int64_t kMemoryFactor = 1;
#endif

// Peak memory allowed to a refused run: the tool's own baseline, far below the
// gigabytes the attacks cost.
constexpr int64_t kRefusalRssKb = kMemoryFactor * 300 * 1024;

}  // namespace

TEST_CASE("the onnas tool refuses hostile meta cells in one line, in bounded memory and time") {
  TempDir dir;
  // Meta-test tasks from a tiny class tree: 3 classes of 2 grey 8x8 images.
  for (int c = 0; c < 3; ++c) {
    fs::create_directories(dir.path / "tree" / fmt::format("c{}", c));
    for (const char* name : {"a.pgm", "b.pgm"})
      spit((dir.path / "tree" / fmt::format("c{}", c) / name).string(), "P5\n8 8\n255\n" + Bytes(64, char(40 * c + 7)));
  }
  const std::string tasks = " --data-format folder --meta-train-dir '" + dir.file("tree") + "' --meta-test-dir '" +
                            dir.file("tree") + "' --image-size 8 --way 3 --shot 1 --query 1 --threads 1";
  const std::string valid = dir.file("valid.safetensors");
  write_tiny_meta_cell(valid);
  const nlohmann::json space = tiny_meta_space().to_json();
  struct Attack {
    const char* key;
    int64_t value;
    const char* problem;
  };
  // The attack's sizes: nodes 2^20 segfaulted inspect and adapt (a 392-byte file),
  // cells 10^6 and nodes 1000 hung, channels 256 and stem_multiplier 2^20 took 2-5 GB,
  // in_channels 2^20 3.5 GB before its refusal.
  const Attack attacks[] = {{"nodes", 1 << 20, "outside 1..8"},    {"cells", 1000000, "outside 1..64"},
                            {"nodes", 1000, "outside 1..8"},       {"channels", 256, "the space needs f32"},
                            {"stem_multiplier", 1 << 20, "outside 1..8"}, {"in_channels", 1 << 20, "outside 1..64"}};
  for (const Attack& a : attacks) {
    nlohmann::json j = space;
    j[a.key] = a.value;
    for (bool with_tensors : {false, true}) {
      const std::string path = dir.file(fmt::format("{}_{}_{}.safetensors", a.key, a.value, with_tensors));
      rewrite_safetensors(valid, path, [&](auto& md) { md["search_space"] = j.dump(); },
                          [&](auto& ts) {
                            if (!with_tensors) ts.clear();
                          });
      const std::string problem = with_tensors || std::string(a.problem) != "the space needs f32" ? a.problem : "has no tensor";
      ToolRun r = expect_one_line_refusal(dir, "inspect '" + path + "'", problem);
      CHECK(r.max_rss_kb < kRefusalRssKb);
      r = expect_one_line_refusal(dir, "adapt" + tasks + " --meta-cell '" + path + "'", problem);
      CHECK(r.max_rss_kb < kRefusalRssKb);
    }
  }
  // Metadata the tool parses beside the space: 8 MB of '[' cost about 80 bytes of
  // memory per byte in a plain JSON document.
  const std::string deep = dir.file("deep_run.safetensors");
  rewrite_safetensors(valid, deep, [](auto& md) { md["run"] = std::string(8u << 20, '['); });
  ToolRun r = expect_one_line_refusal(dir, "adapt" + tasks + " --meta-cell '" + deep + "'", "run metadata: JSON nested deeper");
  CHECK(r.max_rss_kb < kRefusalRssKb);
  rewrite_safetensors(valid, deep, [](auto& md) { md["run"] = R"({"inner_lr": 1e300, "inner_optimizer": "sgd"})"; });
  r = run_tool(dir, "adapt" + tasks + " --search-steps 1 --finetune-steps 1 --meta-cell '" + deep + "'");
  CHECK(r.status == 0);  // an absurd recorded learning rate is ignored (the default), not cast to float
}

TEST_CASE("the onnas tool writes devices and FIFOs in place, refuses to replace links, and cleans up dead temporaries") {
  TempDir dir;
  const std::string list = dir.file("list.json");
  spit(list, R"([{"name": "a", "bytes": 64, "first": 0, "last": 1}])");
  const std::string plan = "plan --buffers '" + list + "' --out ";

  // A character device of our own (root can make one; /dev/null itself is never risked).
  const std::string null_device = dir.file("null");
  if (::mknod(null_device.c_str(), S_IFCHR | 0666, makedev(1, 3)) == 0) {
    ToolRun r = run_tool(dir, plan + "'" + null_device + "'");
    CHECK(r.status == 0);
    struct stat st {};
    REQUIRE(::lstat(null_device.c_str(), &st) == 0);
    CHECK(S_ISCHR(st.st_mode));  // was replaced by a regular file
    fs::create_symlink(null_device, dir.file("null_link"));
    CHECK(run_tool(dir, plan + "'" + dir.file("null_link") + "'").status == 0);
    REQUIRE(::lstat(null_device.c_str(), &st) == 0);
    CHECK(S_ISCHR(st.st_mode));
    CHECK(fs::is_symlink(dir.file("null_link")));
  } else {
    WARN("mknod is not permitted here: the character-device case is not checked");
  }

  // A FIFO: written in place, read by a reader the shell starts first.
  const std::string fifo = dir.file("fifo");
  REQUIRE(::mkfifo(fifo.c_str(), 0666) == 0);
  const std::string got = dir.file("from_fifo.json");
  const std::string cmd = "cat '" + fifo + "' > '" + got + "' & '" + ONNAS_TOOL + "' " + plan + "'" + fifo +
                          "' >/dev/null 2>&1; status=$?; wait; exit $status";
  CHECK(std::system(cmd.c_str()) == 0);
  CHECK(slurp(got).find("\"arena_bytes\"") != std::string::npos);
  struct stat st {};
  REQUIRE(::lstat(fifo.c_str(), &st) == 0);
  CHECK(S_ISFIFO(st.st_mode));

  // A symbolic link to a regular file: refused; the link and its target stay as they were.
  spit(dir.file("target.json"), "precious");
  fs::create_symlink(dir.file("target.json"), dir.file("link.json"));
  expect_one_line_refusal(dir, plan + "'" + dir.file("link.json") + "'", "symbolic link");
  CHECK(fs::is_symlink(dir.file("link.json")));
  CHECK(slurp(dir.file("target.json")) == "precious");
  fs::create_symlink(dir.file("nowhere.json"), dir.file("dangling.json"));
  expect_one_line_refusal(dir, plan + "'" + dir.file("dangling.json") + "'", "symbolic link to nothing");
  fs::create_directories(dir.path / "a_dir");
  expect_one_line_refusal(dir, plan + "'" + dir.file("a_dir") + "'", "a_dir");

  // Temporaries of killed writers are removed when the same name is written again;
  // another live process's temporary is left alone.
  pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  REQUIRE(::waitpid(dead, nullptr, 0) == dead);
  const std::string stale = dir.file(fmt::format(".out.json.tmp.{}.0", dead));
  const std::string live = dir.file(fmt::format(".out.json.tmp.{}.3", ::getpid()));
  const std::string other = dir.file(fmt::format(".other.json.tmp.{}.0", dead));
  for (const std::string& f : {stale, live, other}) spit(f, "half a file");
  CHECK(run_tool(dir, plan + "'" + dir.file("out.json") + "'").status == 0);
  CHECK(!fs::exists(stale));
  CHECK(fs::exists(live));
  CHECK(fs::exists(other));  // the temporary of another name
  CHECK(slurp(dir.file("out.json")).find("\"arena_bytes\"") != std::string::npos);
}

TEST_CASE("the onnas tool refuses FIFOs and devices as input without blocking") {
  TempDir dir;
  const std::string fifo = dir.file("fifo");
  REQUIRE(::mkfifo(fifo.c_str(), 0666) == 0);
  // Each would wait for a writer forever if it opened the FIFO to read.
  expect_one_line_refusal(dir, "inspect '" + fifo + "'", "a FIFO");
  expect_one_line_refusal(dir, "train --genotype '" + fifo + "'", "a FIFO");
  expect_one_line_refusal(dir, "plan --buffers '" + fifo + "'", "a FIFO");
  expect_one_line_refusal(dir, "plan --buffers /dev/zero", "a character device");
  write_tiny_idx(dir.file("idx"));
  fs::remove(dir.file("idx/train-labels-idx1-ubyte.gz"));
  REQUIRE(::mkfifo(dir.file("idx/train-labels-idx1-ubyte.gz").c_str(), 0666) == 0);
  spit(dir.file("g.json"), kTinyGenotype);
  expect_one_line_refusal(dir, "train --data-format idx --data '" + dir.file("idx") + "' --genotype '" + dir.file("g.json") +
                                   "'" + kTinySpace,
                          "it is a FIFO");
}

TEST_CASE("the onnas tool: lying checkpoints, non-finite weights, locked folders and impossible requests") {
  TempDir dir;
  const std::string data = dir.file("idx");
  write_tiny_idx(data);
  spit(dir.file("g.json"), kTinyGenotype);
  const std::string d = " --data-format idx --data '" + data + "'" + kTinySpace;
  const std::string search = "search" + d + " --batch 4 --steps 3 --checkpoint-every 1 --out '" + dir.file("s") + "'";
  const std::string train = "train" + d + " --genotype '" + dir.file("g.json") + "' --batch 8 --steps 2 --epochs 2 --out '" +
                            dir.file("t") + "'";
  REQUIRE(run_tool(dir, search).status == 0);
  REQUIRE(run_tool(dir, train).status == 0);

  SECTION("a meta-train checkpoint's counter is checked too") {
    for (int c = 0; c < 3; ++c) {
      fs::create_directories(dir.path / "tree" / fmt::format("c{}", c));
      for (const char* name : {"a.pgm", "b.pgm", "c.pgm"})
        spit((dir.path / "tree" / fmt::format("c{}", c) / name).string(), "P5\n8 8\n255\n" + Bytes(64, char(40 * c + 7)));
    }
    const std::string meta = "meta-train --data-format folder --meta-train-dir '" + dir.file("tree") + "' --meta-test-dir '" +
                             dir.file("tree") + "' --image-size 8 --way 3 --shot 1 --query 1 --meta-batch 1 " +
                             "--inner-steps 1 --meta-epochs 2 --steps-per-epoch 1 --warmup-epochs 0 --val-every 0" +
                             kTinySpace + " --out '" + dir.file("m") + "'";
    REQUIRE(run_tool(dir, meta).status == 0);
    const std::string ckpt = dir.file("m/checkpoint.safetensors"), saved = ckpt + ".saved";
    fs::copy_file(ckpt, saved);
    for (const char* value : {"abc", "-1", "99999999999", "3"}) {
      rewrite_safetensors(saved, ckpt, [&](auto& md) { md["meta_epoch"] = value; });
      expect_one_line_refusal(dir, meta + " --resume", "\"meta_epoch\"", true);
    }
    rewrite_safetensors(saved, ckpt, [&](auto& md) { md.erase("meta_epoch"); });
    expect_one_line_refusal(dir, meta + " --resume", "no \"meta_epoch\"", true);
    // The log kept up to the checkpoint: a line that is not an entry is dropped, not
    // a bare JSON exception.
    fs::copy_file(saved, ckpt, fs::copy_options::overwrite_existing);
    spit(dir.file("m/meta_log.jsonl"), "{\"epoch\": \"one\"}\n" + std::string(100000, '[') + "\n{\"epoch\": 1}\n");
    CHECK(run_tool(dir, meta + " --resume").status == 0);
  }

  SECTION("checkpoint counters are checked, not trusted") {
    const std::pair<const char*, std::string> runs[] = {{"step", search}, {"epoch", train}};
    for (const auto& [key, command] : runs) {
      const std::string ckpt = dir.file(std::string(key) == "step" ? "s/checkpoint.safetensors" : "t/checkpoint.safetensors");
      const std::string saved = ckpt + ".saved";
      fs::copy_file(ckpt, saved, fs::copy_options::overwrite_existing);
      // "abc" and a missing key were a bare stoi / map::at, -1 re-trained silently,
      // 99999999999 replayed batches for hours.
      for (const char* value : {"abc", "", "-1", "99999999999", "3.5", "1e3", " 1", "999999999999999999999"}) {
        rewrite_safetensors(saved, ckpt, [&](auto& md) { md[key] = value; });
        expect_one_line_refusal(dir, command + " --resume", fmt::format("\"{}\"", key), /*after_progress=*/true);
      }
      rewrite_safetensors(saved, ckpt, [&](auto& md) { md.erase(key); });
      expect_one_line_refusal(dir, command + " --resume", fmt::format("no \"{}\"", key), true);
      fs::copy_file(saved, ckpt, fs::copy_options::overwrite_existing);
      CHECK(run_tool(dir, command + " --resume").status == 0);
    }
  }

  SECTION("non-finite weights are refused when loaded") {
    SafetensorsFile model = read_safetensors(dir.file("t/model.safetensors"));
    REQUIRE(model.find("stem.bn.weight"));
    rewrite_safetensors(dir.file("t/model.safetensors"), dir.file("nan_model.safetensors"), [](auto&) {},
                        [](auto& ts) {
                          for (auto& t : ts)
                            if (t.name == "stem.bn.weight") static_cast<float*>(t.tensor.data())[0] = std::nanf("");
                        });
    // It trained to "success" from such a file, and evaluated an all-NaN model at 10%.
    const std::string nan = dir.file("nan_model.safetensors");
    expect_one_line_refusal(dir, "eval --data-format idx --data '" + data + "' --threads 1 --genotype '" + dir.file("g.json") +
                                     "' --model '" + nan + "'",
                            "'stem.bn.weight' holds a non-finite value (nan at element 0)");
    expect_one_line_refusal(dir, train + "_nan --init '" + nan + "'", "non-finite", true);
    // An --init file none of whose tensors belongs to the network loaded nothing, silently.
    std::vector<float> junk(4, 1.0f);
    std::vector<NamedTensor> other = {{"something.else", Tensor(junk.data(), Shape{4})}};
    write_safetensors(dir.file("other.safetensors"), other);
    expect_one_line_refusal(dir, train + "_other --init '" + dir.file("other.safetensors") + "'", "none of its 1 tensors",
                            true);
  }

  SECTION("a second run on a locked --out is refused") {
    const int fd = ::open(dir.file("t/.onnas.lock").c_str(), O_RDWR);
    REQUIRE(fd >= 0);
    REQUIRE(::flock(fd, LOCK_EX | LOCK_NB) == 0);
    // --overwrite: the folder holds the first run's files.
    expect_one_line_refusal(dir, train + " --overwrite", "is in use by another onnas run", true);
    ::close(fd);
    CHECK(run_tool(dir, train + " --overwrite").status == 0);
  }

  SECTION("--limit keeps the memory of what it keeps") {
    // 100,000 images of 28x28 (78 MB, a few hundred KB gzip'ed): kept whole they cost
    // 78 MB of bytes plus 314 MB of floats; --limit 500 keeps 500 of them (the rest
    // is read through and checked).
    const uint32_t n = 100000;
    Bytes images = be32(data::kIdxImagesMagic) + be32(n) + be32(28) + be32(28);
    images.resize(images.size() + size_t(n) * 784);
    for (size_t i = 16; i < images.size(); ++i) images[i] = char(i % 251);
    std::vector<uint8_t> labels(n);
    for (uint32_t i = 0; i < n; ++i) labels[i] = uint8_t(i % 10);
    const std::string big = dir.file("big");
    fs::create_directories(big);
    spit(big + "/train-images-idx3-ubyte.gz", gz(images));
    spit(big + "/train-labels-idx1-ubyte.gz", gz(idx_labels(labels)));
    images.resize(16 + 100 * 784);
    images.replace(4, 4, be32(100));
    spit(big + "/t10k-images-idx3-ubyte.gz", gz(images));
    spit(big + "/t10k-labels-idx1-ubyte.gz", gz(idx_labels(std::vector<uint8_t>(labels.begin(), labels.begin() + 100))));
    ToolRun r = run_tool(dir, "train --data-format idx --data '" + big + "'" + kTinySpace + " --genotype '" +
                                  dir.file("g.json") + "' --limit 500 --batch 32 --steps 1 --epochs 1 --out '" +
                                  dir.file("big_out") + "'");
    INFO(r.stderr_text);
    CHECK(r.status == 0);
    CHECK(r.max_rss_kb < kMemoryFactor * 200 * 1024);
    WARN("train --limit 500 of 100,000 gzip'ed images: peak RSS " << r.max_rss_kb / 1024 << " MiB");
  }

  SECTION("impossible requests are refused before any work, in bounded memory") {
    expect_one_line_refusal(dir, "plan --memory-budget 1e30GiB", "larger than any memory", true);
    expect_one_line_refusal(dir, "plan --ops none --mode ops --k-grad 1", "the only candidate op is 'none'");
    expect_one_line_refusal(dir, "plan --reductions ''", "no reduction cell");
    expect_one_line_refusal(dir, "plan --cells 2 --reductions 0,1", "every cell is a reduction cell");
    // --batch 1024 on 64 images allocated 3.7 GB (on 600 images) before its refusal.
    ToolRun r = expect_one_line_refusal(dir, "train" + d + " --genotype '" + dir.file("g.json") + "' --batch 1024 --out '" +
                                                 dir.file("t2") + "'",
                                        "--batch 1024 needs at least 1024 training images; the data has 64");
    CHECK(r.max_rss_kb < kRefusalRssKb);
    // A test split of another image size was found after an epoch of training.
    write_tiny_idx(dir.file("idx6"), 6);
    expect_one_line_refusal(dir, "train --data-format idx --data '" + dir.file("idx6") + "'" + kTinySpace + " --genotype '" +
                                     dir.file("g.json") + "' --out '" + dir.file("t3") + "'",
                            "has 1x6x6 images, the training split");
  }
}
#endif
