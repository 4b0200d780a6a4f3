// safetensors read/write, ParamStore save/load, atomic writes, and the broken files a
// reader must refuse with one clear message.
#include <catch2/catch.hpp>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "runtime/bf16.h"
#include "runtime/param_store.h"
#include "runtime/rng.h"
#include "runtime/serialize/atomic_file.h"
#include "runtime/serialize/safetensors.h"

using namespace onnas;
namespace fs = std::filesystem;

namespace {

// A fresh directory per test case, removed afterwards.
struct TempDir {
  fs::path path;
  TempDir() {
    static int counter = 0;
    path = fs::temp_directory_path() / ("onnas_test_safetensors_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void spit(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

std::string u64le(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = char((n >> (8 * i)) & 0xff);
  return s;
}

// A file built by hand: length field, header text, data bytes.
std::string hand_file(const std::string& header, const std::string& data) { return u64le(header.size()) + header + data; }

std::string floats(std::initializer_list<float> v) {
  std::string s(v.size() * 4, '\0');
  std::memcpy(s.data(), v.begin(), s.size());
  return s;
}

}  // namespace

TEST_CASE("safetensors: round trip of F32/I32 tensors, an empty tensor, a scalar and metadata") {
  TempDir dir;
  std::vector<float> w = {1.5f, -2.0f, 3.25f, 0.0f, 1e-30f, -7.0f};
  std::vector<int32_t> steps = {7, -1, 2147483647};
  float scalar = 42.0f;
  std::vector<NamedTensor> ts = {
      {"conv.weight", Tensor(w.data(), Shape{2, 3})},
      {"steps", Tensor(steps.data(), Shape{3}, DType::i32)},
      {"empty", Tensor(nullptr, Shape{0, 4})},
      {"scalar", Tensor(&scalar, Shape{})},
  };
  std::string path = dir.file("a.safetensors");
  write_safetensors(path, ts, {{"epoch", "3"}, {"note", "hello \"world\""}});

  SafetensorsFile f = read_safetensors(path);
  CHECK(f.metadata.size() == 2);
  CHECK(f.metadata.at("epoch") == "3");
  CHECK(f.metadata.at("note") == "hello \"world\"");
  REQUIRE(f.tensors.size() == 4);
  // Offset order is the written order.
  CHECK(f.tensors[0].name == "conv.weight");
  CHECK(f.tensors[1].name == "steps");

  const auto& cw = f.get("conv.weight");
  CHECK(cw.dtype == DType::f32);
  CHECK(cw.shape == Shape{2, 3});
  for (int i = 0; i < 6; ++i) CHECK(cw.tensor().f32()[i] == w[i]);
  const auto& st = f.get("steps");
  CHECK(st.dtype == DType::i32);
  for (int i = 0; i < 3; ++i) CHECK(st.tensor().i32()[i] == steps[i]);
  CHECK(f.get("empty").shape == Shape{0, 4});
  CHECK(f.get("empty").tensor().numel() == 0);
  CHECK(f.get("scalar").shape.rank() == 0);
  CHECK(f.get("scalar").tensor().f32()[0] == 42.0f);
  CHECK_THROWS_WITH(f.get("nope"), Catch::Contains("has no tensor 'nope'"));
}

TEST_CASE("safetensors: BF16 tensors (optimizer state) round trip bit for bit, a non-finite one is refused") {
  TempDir dir;
  // 1.0, -2.5, the smallest normal, the largest finite bf16
  std::vector<uint16_t> v = {0x3f80, 0xc020, 0x0080, 0x7f7f};
  std::string path = dir.file("b.safetensors");
  const std::vector<NamedTensor> ts = {{"adam.v/w", Tensor(v.data(), Shape{2, 2}, DType::bf16)}};
  write_safetensors(path, ts);
  SafetensorsFile f = read_safetensors(path);
  const auto& t = f.get("adam.v/w");
  CHECK(t.dtype == DType::bf16);
  CHECK(t.tensor().bytes() == 8);
  CHECK(std::memcmp(t.tensor().data(), v.data(), 8) == 0);
  CHECK(bf16_to_f32(t.tensor().bf16()[1]) == -2.5f);
  // The header says BF16, as other tools (safetensors, PyTorch) spell it.
  CHECK(slurp(path).find(R"("dtype":"BF16")") != std::string::npos);

  v[2] = 0x7fc0;  // NaN
  write_safetensors(path, ts);
  CHECK_THROWS_WITH(check_finite(read_safetensors(path).get("adam.v/w"), path),
                    Catch::Contains("tensor 'adam.v/w' holds a non-finite value") && Catch::Contains("element 2"));
}

TEST_CASE("safetensors: the writer's byte layout follows the spec") {
  TempDir dir;
  std::vector<float> a = {1, 2, 3};
  std::vector<int32_t> b = {5, 6};
  std::vector<NamedTensor> ts = {{"a", Tensor(a.data(), Shape{3})}, {"b", Tensor(b.data(), Shape{1, 2}, DType::i32)}};
  std::string path = dir.file("layout.safetensors");
  write_safetensors(path, ts, {{"k", "v"}});
  std::string bytes = slurp(path);

  REQUIRE(bytes.size() >= 8);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | uint8_t(bytes[i]);
  CHECK(n % 8 == 0);  // data section 8-byte aligned
  REQUIRE(bytes.size() == 8 + n + 12 + 8);
  std::string header = bytes.substr(8, n);
  CHECK(header.front() == '{');
  // Padding is spaces only, after the JSON.
  size_t close = header.rfind('}');
  CHECK(header.find_first_not_of(' ', close + 1) == std::string::npos);

  auto j = nlohmann::json::parse(header);
  CHECK(j["__metadata__"] == nlohmann::json({{"k", "v"}}));
  CHECK(j["a"] == nlohmann::json::parse(R"({"dtype":"F32","shape":[3],"data_offsets":[0,12]})"));
  CHECK(j["b"] == nlohmann::json::parse(R"({"dtype":"I32","shape":[1,2],"data_offsets":[12,20]})"));
  CHECK(bytes.substr(8 + n, 12) == floats({1, 2, 3}));
  int32_t bi[2];
  std::memcpy(bi, bytes.data() + 8 + n + 12, 8);
  CHECK(bi[0] == 5);
  CHECK(bi[1] == 6);
}

TEST_CASE("safetensors: a hand-built file from another writer reads back") {
  TempDir dir;
  // Keys out of offset order, no padding, no metadata: all legal.
  std::string header = R"({"y":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  std::string path = dir.file("other.safetensors");
  spit(path, hand_file(header, floats({1, 2, 3})));
  auto f = read_safetensors(path);
  REQUIRE(f.tensors.size() == 2);
  CHECK(f.tensors[0].name == "x");
  CHECK(f.tensors[1].name == "y");
  CHECK(f.get("y").tensor().f32()[0] == 3.0f);
}

TEST_CASE("safetensors: the writer refuses bad tensor lists") {
  TempDir dir;
  float v = 1;
  std::string path = dir.file("w.safetensors");
  std::vector<NamedTensor> dup = {{"a", Tensor(&v, Shape{1})}, {"a", Tensor(&v, Shape{1})}};
  CHECK_THROWS_WITH(write_safetensors(path, dup), Catch::Contains("'a' appears twice"));
  std::vector<NamedTensor> reserved = {{"__metadata__", Tensor(&v, Shape{1})}};
  CHECK_THROWS_WITH(write_safetensors(path, reserved), Catch::Contains("reserved"));
  std::vector<NamedTensor> nodata = {{"a", Tensor(nullptr, Shape{2})}};
  CHECK_THROWS_WITH(write_safetensors(path, nodata), Catch::Contains("has no data"));
  uint8_t b = 1;  // run-time indices (a max pool's argmax) are never saved: the reader takes f32 and i32
  std::vector<NamedTensor> bytes = {{"a", Tensor(&b, Shape{1}, DType::u8)}};
  CHECK_THROWS_WITH(write_safetensors(path, bytes), Catch::Contains("tensor 'a' is u8"));
  CHECK_FALSE(fs::exists(path));
}

TEST_CASE("safetensors: broken files are refused with a message naming the file and the problem") {
  TempDir dir;
  std::string path = dir.file("bad.safetensors");
  std::string good_header = R"({"t":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})";
  std::string good = hand_file(good_header, floats({1, 2, 3, 4}));
  spit(path, good);
  REQUIRE_NOTHROW(read_safetensors(path));

  auto refuses = [&](const std::string& bytes, const std::string& message) {
    spit(path, bytes);
    INFO("expecting: " << message);
    CHECK_THROWS_WITH(read_safetensors(path), Catch::Contains(message) && Catch::Contains(path));
  };

  SECTION("missing file") { CHECK_THROWS_WITH(read_safetensors(dir.file("none")), Catch::Contains("No such file")); }
  SECTION("truncated at 4 bytes") { refuses(good.substr(0, 4), "too short"); }
  SECTION("truncated mid-header") { refuses(good.substr(0, 20), "exceeds the"); }
  SECTION("truncated mid-data") { refuses(good.substr(0, good.size() - 5), "beyond the 11-byte data section"); }
  SECTION("header length larger than the file") { refuses(u64le(1000) + good.substr(8), "header length 1000 exceeds"); }
  SECTION("absurd header length") { refuses(u64le(uint64_t(1) << 62) + good.substr(8), "absurd"); }
  SECTION("non-JSON header") { refuses(hand_file("{not json at all}", ""), "not valid JSON"); }
  SECTION("header not starting with {") { refuses(hand_file("[1, 2, 3]", ""), "does not start with '{'"); }
  SECTION("entry not an object") { refuses(hand_file(R"({"t": 5})", ""), "tensor 't': header entry is a JSON number"); }
  SECTION("entry without dtype") {
    refuses(hand_file(R"({"t":{"shape":[1],"data_offsets":[0,4]}})", floats({1})), "tensor 't': header entry has no \"dtype\"");
  }
  SECTION("entry without data_offsets") {
    refuses(hand_file(R"({"t":{"dtype":"F32","shape":[1]}})", floats({1})), "no \"data_offsets\"");
  }
  SECTION("shape of the wrong JSON type") {
    refuses(hand_file(R"({"t":{"dtype":"F32","shape":"2x2","data_offsets":[0,16]}})", floats({1, 2, 3, 4})),
            "\"shape\" is a JSON string");
  }
  SECTION("negative dimension") {
    refuses(hand_file(R"({"t":{"dtype":"F32","shape":[-2,2],"data_offsets":[0,16]}})", floats({1, 2, 3, 4})), "negative");
  }
  SECTION("non-integer dimension") {
    refuses(hand_file(R"({"t":{"dtype":"F32","shape":[2.5,2],"data_offsets":[0,16]}})", floats({1, 2, 3, 4})),
            "expected a non-negative integer");
  }
  SECTION("shape whose element count overflows") {
    refuses(hand_file(R"({"t":{"dtype":"F32","shape":[4294967296,4294967296,4],"data_offsets":[0,16]}})", floats({1, 2, 3, 4})),
            "more elements than fit");
  }
  SECTION("rank beyond onnas's maximum") {
    refuses(hand_file(R"({"t":{"dtype":"F32","shape":[1,1,1,1,1,1,1],"data_offsets":[0,4]}})", floats({1})), "rank 7");
  }
  SECTION("offsets out of range") {
    refuses(hand_file(R"({"t":{"dtype":"F32","shape":[2,2],"data_offsets":[4,20]}})", floats({1, 2, 3, 4})),
            "tensor 't' has data_offsets [4, 20] beyond the 16-byte data section");
  }
  SECTION("offsets begin > end") {
    refuses(hand_file(R"({"t":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}})", floats({1, 2})), "begin > end");
  }
  SECTION("overlapping offsets") {
    refuses(hand_file(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
                      floats({1, 2, 3, 4})),
            "tensor 'b' data_offsets [8, 16] overlap tensor 'a' [0, 12]");
  }
  SECTION("a hole in the data section") {
    refuses(hand_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", floats({1, 2})), "belong to no tensor");
  }
  SECTION("trailing bytes") { refuses(good + "xx", "2 bytes after the last tensor"); }
  SECTION("shape / size mismatch") {
    refuses(hand_file(R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})", floats({1, 2, 3, 4})),
            "tensor 't': data_offsets [0, 16] hold 16 bytes, but shape [3] of F32 needs 12 bytes");
  }
  SECTION("unknown dtype") {
    refuses(hand_file(R"({"t":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}})", floats({1})),
            "tensor 't' has unknown dtype 'F33'");
  }
  SECTION("valid but unsupported dtype") {
    refuses(hand_file(R"({"x":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})", floats({1})),
            "dtype F16 of tensor 'x' is not supported (onnas reads F32, I32 and BF16)");
  }
  SECTION("metadata value not a string") {
    refuses(hand_file(R"({"__metadata__":{"epoch":3}})", ""), "__metadata__ value of 'epoch' is a JSON number");
  }
  SECTION("duplicate tensor name") {
    refuses(hand_file(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                      floats({1})),
            "key 't' appears twice");
  }
}

TEST_CASE("safetensors: random corruptions are read or refused, never crash") {
  TempDir dir;
  std::string path = dir.file("fuzz.safetensors");
  std::string header = R"({"__metadata__":{"a":"b"},"t":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"u":{"dtype":"I32","shape":[1],"data_offsets":[16,20]}})";
  const std::string good = hand_file(header, floats({1, 2, 3, 4, 5}));
  Rng rng(2024);
  int refused = 0;
  for (int trial = 0; trial < 1500; ++trial) {
    std::string bytes = good;
    int edits = 1 + int(rng.uniform_int(3));
    for (int e = 0; e < edits; ++e) {
      size_t at = size_t(rng.uniform_int(int64_t(bytes.size())));
      switch (rng.uniform_int(3)) {
        case 0: bytes[at] = char(rng.uniform_int(256)); break;               // flip a byte
        case 1: bytes[at] = "0123456789[]{},:\"-e."[rng.uniform_int(17)]; break;  // JSON-ish byte
        default: bytes.resize(at); break;                                    // truncate
      }
      if (bytes.empty()) break;
    }
    spit(path, bytes);
    try {
      read_safetensors(path);
    } catch (const Error&) {
      ++refused;
    }
  }
  CHECK(refused > 1000);
}

TEST_CASE("safetensors: reading is linear in the tensor count") {
  // n one-element tensors, built in memory.
  auto file_of = [](int n) {
    std::string header = "{";
    for (int i = 0; i < n; ++i)
      header += fmt::format("{}\"t{}\":{{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[{},{}]}}", i ? "," : "", i,
                            4 * i, 4 * i + 4);
    header += "}";
    std::string bytes(8, '\0');
    for (int b = 0; b < 8; ++b) bytes[size_t(b)] = char((uint64_t(header.size()) >> (8 * b)) & 0xff);
    return bytes + header + std::string(size_t(4 * n), '\0');
  };
  auto seconds = [&](const std::string& bytes, int n) {
    double best = 1e9;
    for (int rep = 0; rep < 3; ++rep) {
      auto t0 = std::chrono::steady_clock::now();
      SafetensorsFile f = parse_safetensors({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()}, "many");
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      REQUIRE(f.tensors.size() == size_t(n));
    }
    return best;
  };
  // The duplicate-key callback made nlohmann rescan the whole header object after each
  // entry: 40,000 tensors took 13.9 s, 200,000 more than 300 s. Linear: 8x the tensors
  // take about 8x the time; quadratic would take 64x.
  const std::string small = file_of(5000), large = file_of(40000);
  const double t_small = seconds(small, 5000), t_large = seconds(large, 40000);
  INFO("5,000 tensors " << t_small << " s, 40,000 tensors " << t_large << " s");
  CHECK(t_large < 24 * t_small + 0.05);
}

TEST_CASE("safetensors: save_params / load_params") {
  TempDir dir;
  std::string path = dir.file("model.safetensors");
  ParamStore src;
  Tensor w = src.add_weight("conv.w", Shape{2, 3});
  Tensor a = src.add_weight("alpha", Shape{4}, ParamKind::arch);
  Tensor m = src.add("bn.running_mean", Shape{2}, ParamKind::buffer);
  Tensor s = src.add("adam.m", Shape{2, 3}, ParamKind::state);
  for (int i = 0; i < 6; ++i) w.f32()[i] = float(i) + 0.5f;
  for (int i = 0; i < 4; ++i) a.f32()[i] = -float(i);
  m.f32()[1] = 9.0f;
  s.f32()[0] = 1.0f;
  src.grad("conv.w").f32()[0] = 123.0f;
  save_params(path, src, kModelKinds, {{"epoch", "5"}});

  auto f = read_safetensors(path);
  CHECK(f.tensors.size() == 3);  // no grads, no optimizer state
  CHECK(f.find("adam.m") == nullptr);
  CHECK(f.find("conv.w@grad") == nullptr);
  CHECK(f.metadata.at("onnas.kind.alpha") == "arch");

  auto fresh = [] {
    auto ps = std::make_unique<ParamStore>();
    ps->add_weight("conv.w", Shape{2, 3});
    ps->add_weight("alpha", Shape{4}, ParamKind::arch);
    ps->add("bn.running_mean", Shape{2}, ParamKind::buffer);
    return ps;
  };

  SECTION("loads everything back") {
    auto dst = fresh();
    auto report = load_params(path, *dst);
    CHECK(report.loaded.size() == 3);
    CHECK(report.metadata.at("epoch") == "5");
    CHECK(report.metadata.count("onnas.kind.alpha") == 0);
    for (int i = 0; i < 6; ++i) CHECK(dst->get("conv.w").f32()[i] == w.f32()[i]);
    CHECK(dst->get("alpha").f32()[3] == -3.0f);
    CHECK(dst->get("bn.running_mean").f32()[1] == 9.0f);
  }
  SECTION("shape mismatch names the tensor, both shapes and the file; the store is untouched") {
    ParamStore dst;
    dst.add_weight("alpha", Shape{4}, ParamKind::arch);
    dst.add_weight("conv.w", Shape{3, 2});
    dst.add("bn.running_mean", Shape{2}, ParamKind::buffer);
    CHECK_THROWS_WITH(load_params(path, dst), Catch::Contains("tensor 'conv.w' has shape [2, 3] in the file but [3, 2] in the model") &&
                                                  Catch::Contains(path));
    CHECK(dst.get("alpha").f32()[3] == 0.0f);  // all-or-nothing
  }
  SECTION("strict: a missing tensor is an error; non-strict reports it") {
    auto dst = fresh();
    dst->add_weight("head.w", Shape{5});
    CHECK_THROWS_WITH(load_params(path, *dst), Catch::Contains("has no tensor 'head.w'"));
    auto report = load_params(path, *dst, {kModelKinds, /*strict=*/false, false});
    CHECK(report.missing == std::vector<std::string>{"head.w"});
    CHECK(report.loaded.size() == 3);
  }
  SECTION("extra tensors are an error unless allowed") {
    ParamStore dst;
    dst.add_weight("conv.w", Shape{2, 3});
    CHECK_THROWS_WITH(load_params(path, dst), Catch::Contains("has tensor 'alpha' that is not a weight/buffer/arch tensor"));
    auto report = load_params(path, dst, {kModelKinds, true, /*allow_extra=*/true});
    CHECK(report.extra.size() == 2);
    CHECK(dst.get("conv.w").f32()[5] == 5.5f);
  }
  SECTION("only the chosen kinds") {
    ParamStore dst;
    dst.add_weight("conv.w", Shape{2, 3});
    auto report = load_params(path, dst, {{ParamKind::weight}, true, true});
    CHECK(report.loaded == std::vector<std::string>{"conv.w"});
  }
}

TEST_CASE("atomic writes: replace the file whole and leave no temporaries") {
  TempDir dir;
  std::string path = dir.file("out.txt");
  write_file_atomic(path, std::string_view("first version"));
  CHECK(slurp(path) == "first version");
  write_file_atomic(path, std::string_view("second"));
  CHECK(slurp(path) == "second");
  {
    AtomicFile f(path);
    f.write(std::string_view("never committed"));
    CHECK(fs::exists(f.temp_path()));
  }
  CHECK(slurp(path) == "second");
  int files = 0;
  for (auto& e : fs::directory_iterator(dir.path)) files += 1 + 0 * int(e.path().empty());
  CHECK(files == 1);

  CHECK_THROWS_WITH(write_file_atomic(dir.file("no/such/dir/x"), std::string_view("x")),
                    Catch::Contains("no/such/dir/x") && Catch::Contains("No such file or directory"));
  auto bytes = read_file_bytes(path);
  CHECK(bytes.size() == 6);
  CHECK_THROWS_WITH(read_file_bytes(dir.file("missing")), Catch::Contains("missing") && Catch::Contains("No such file"));
}
