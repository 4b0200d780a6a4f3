// Search checkpoints (nas/search_checkpoint.h): a checkpoint reads back into the same
// values, and one holding a non-finite value anywhere (a weight, an optimizer moment,
// the sampler's history) is refused naming the file and the tensor, with nothing of
// the search changed. With --optimizer adam-bf16 the second moment is kept as BF16, with
// adam-factored as row and column averages, and a resumed search goes on bit for bit.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>

#include "nas/search.h"
#include "runtime/error.h"
#include "runtime/serialize/safetensors.h"

using namespace onnas;
using namespace onnas::nas;

namespace {

SearchSpace tiny_space() {
  SearchSpace s;
  s.channels = 4;
  s.cells = 2;
  s.reductions = {1};
  s.nodes = 2;
  s.height = s.width = 8;
  s.classes = 3;
  return s;
}

// A copy of `from` with element 0 of tensor `name` set to NaN.
void write_with_nan(const std::string& from, const std::string& to, const std::string& name) {
  SafetensorsFile f = read_safetensors(from);
  std::vector<NamedTensor> ts;
  for (SafetensorsTensor& t : f.tensors) {
    if (t.name == name) static_cast<float*>(t.data.data())[0] = std::numeric_limits<float>::quiet_NaN();
    ts.push_back({t.name, t.tensor()});
  }
  write_safetensors(to, ts, f.metadata);
}

}  // namespace

TEST_CASE("a search checkpoint with a non-finite value is refused, nothing restored") {
  const auto dir = std::filesystem::temp_directory_path() / "onnas_test_search_checkpoint";
  std::filesystem::create_directories(dir);
  const std::string good = (dir / "good.safetensors").string(), bad = (dir / "bad.safetensors").string();
  SearchOptions options;
  options.batch = 4;
  options.step = {.mode = Mode::ops_pairs, .k_grad = 2};
  ParamStore params;
  Searcher searcher(tiny_space(), options, params, 3);
  searcher.save_checkpoint(good, {{"step", "0"}});
  CHECK(searcher.load_checkpoint(good).at("step") == "0");

  std::string weight, state;
  for (const auto& e : params.entries()) {
    if (e->kind == ParamKind::weight && weight.empty()) weight = e->name;
    if (e->kind == ParamKind::state && state.empty()) state = e->name;
  }
  REQUIRE(!weight.empty());
  REQUIRE(!state.empty());
  const float before = params.get(weight).f32()[0];
  for (const std::string& name : {weight, state, std::string("sampler.deltas.normal")}) {
    INFO(name);
    write_with_nan(good, bad, name);
    CHECK_THROWS_WITH(searcher.load_checkpoint(bad),
                      Catch::Contains(bad) && Catch::Contains(name) && Catch::Contains("non-finite"));
    CHECK(params.get(weight).f32()[0] == before);
  }
  // The caller sees the metadata before any tensor, and may refuse the file.
  params.get(weight).f32()[0] = before + 1.0f;
  CHECK_THROWS_WITH(searcher.load_checkpoint(good,
                                             [](const std::map<std::string, std::string>& m) {
                                               if (m.at("step") == "0") fail("other settings");
                                             }),
                    Catch::Contains("other settings"));
  CHECK(params.get(weight).f32()[0] == before + 1.0f);
  std::filesystem::remove_all(dir);
}

namespace {

// Runs 6 steps of a search with `optimizer`, checkpointed after 3, and 3 more steps
// from that checkpoint in a new Searcher: every weight, alpha, beta and optimizer state
// must come out bit for bit the same. Returns the checkpoint's tensors and the first
// run's store.
// With `annealed`, alpha's temperature goes from 1 to 0.1 over the six steps.
SafetensorsFile resumes_bit_for_bit(WeightOptimizer optimizer, ParamStore& a, bool annealed = false) {
  // A folder per case: CTest runs the test cases side by side.
  const auto dir = std::filesystem::temp_directory_path() /
                   ("onnas_test_search_checkpoint_resume_" + std::to_string(int(optimizer)) + (annealed ? "_t" : ""));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "ckpt.safetensors").string();
  SearchOptions options;
  options.batch = 4;
  options.w_optimizer = optimizer;
  options.step = {.mode = Mode::ops_pairs_sbs, .k_grad = 2, .split = 2};
  const int64_t B = options.batch;
  Buffer xb(B * 64 * 4), yb(B * 4), vxb(B * 64 * 4), vyb(B * 4);
  Tensor x(xb.data(), Shape{B, 1, 8, 8}), y(yb.data(), Shape{B}, DType::i32);
  Tensor vx(vxb.data(), Shape{B, 1, 8, 8}), vy(vyb.data(), Shape{B}, DType::i32);
  auto step = [&](Searcher& s, int t) {
    Rng rng(100 + uint64_t(t));
    for (Tensor im : {x, vx})
      for (int64_t i = 0; i < im.numel(); ++i) im.f32()[i] = rng.normal();
    for (Tensor l : {y, vy})
      for (int64_t i = 0; i < B; ++i) l.i32()[i] = int32_t(rng.uniform_int(3));
    s.set_progress(t, 6);
    if (annealed) s.set_temperature(float(std::pow(0.1, t / 5.0)));
    s.step(x, y, vx, vy);
  };
  Searcher sa(tiny_space(), options, a, 3);
  for (int t = 0; t < 3; ++t) step(sa, t);
  sa.save_checkpoint(path, {});
  for (int t = 3; t < 6; ++t) step(sa, t);

  ParamStore b;
  Searcher sb(tiny_space(), options, b, 3);
  sb.load_checkpoint(path);
  CHECK(sb.temperature() == (annealed ? float(std::pow(0.1, 2 / 5.0)) : 1.0f));  // the logits' unit at the save
  for (int t = 3; t < 6; ++t) step(sb, t);
  CHECK(sb.temperature() == sa.temperature());
  for (const auto& e : a.entries()) {
    if (e->kind == ParamKind::grad) continue;
    CAPTURE(e->name);
    const Tensor t = b.get(e->name);
    REQUIRE(t.bytes() == e->tensor.bytes());
    CHECK(std::memcmp(t.data(), e->tensor.data(), t.bytes()) == 0);
  }
  SafetensorsFile f = read_safetensors(path);
  std::filesystem::remove_all(dir);
  return f;
}

}  // namespace

TEST_CASE("adam-bf16: the checkpoint keeps the second moment as BF16, and a resumed search goes on bit for bit") {
  ParamStore a;
  const SafetensorsFile f = resumes_bit_for_bit(WeightOptimizer::adam_bf16, a);
  int bf16 = 0;
  for (const SafetensorsTensor& t : f.tensors) bf16 += t.dtype == DType::bf16;
  CHECK(bf16 > 0);
  for (const auto& e : a.entries())
    if (e->name.starts_with("weight_adam.v/")) CHECK(e->tensor.dtype() == DType::bf16);
}

TEST_CASE("adam-factored: the checkpoint keeps each weight's row and column averages, and a resumed search goes on bit for bit") {
  ParamStore a;
  const SafetensorsFile f = resumes_bit_for_bit(WeightOptimizer::adam_factored, a);
  int rows = 0, cols = 0;
  for (const SafetensorsTensor& t : f.tensors) {
    rows += t.name.starts_with("weight_adam.v_rows/");
    cols += t.name.starts_with("weight_adam.v_cols/");
  }
  CHECK(rows > 0);
  CHECK(rows == cols);
  // Every weight of two or more dimensions is factored; the others keep a whole v.
  for (const auto& e : a.entries()) {
    if (e->kind != ParamKind::weight) continue;
    CAPTURE(e->name);
    const bool factored = e->tensor.shape().rank() >= 2;
    CHECK(a.contains("weight_adam.v_rows/" + e->name) == factored);
    CHECK(a.contains("weight_adam.v/" + e->name) == !factored);
  }
}

TEST_CASE("an annealed temperature: alpha/beta rescaled by T_old / T_new, the checkpoint keeps T, a resumed search goes on bit for bit") {
  {
    ParamStore ps;
    SearchOptions options;
    options.batch = 4;
    Searcher s(tiny_space(), options, ps, 3);
    std::vector<std::vector<float>> before;
    for (const std::string& n : s.arch_names()) {
      const Tensor t = ps.get(n);
      before.emplace_back(t.f32(), t.f32() + t.numel());
    }
    REQUIRE(!before.empty());
    s.set_temperature(0.5f);  // the logits double (exactly: a power of two)
    s.set_temperature(0.5f);  // the same temperature again: nothing moves
    CHECK(s.temperature() == 0.5f);
    for (size_t i = 0; i < before.size(); ++i) {
      const Tensor t = ps.get(s.arch_names()[i]);
      for (int64_t j = 0; j < t.numel(); ++j) CHECK(t.f32()[j] == 2.0f * before[i][size_t(j)]);
    }
    CHECK_THROWS_WITH(s.set_temperature(0.0f), Catch::Contains("must be positive"));
  }
  ParamStore a;
  const SafetensorsFile f = resumes_bit_for_bit(WeightOptimizer::adam, a, /*annealed=*/true);
  REQUIRE(f.metadata.count("alpha_temperature"));
  CHECK(std::stof(f.metadata.at("alpha_temperature")) == float(std::pow(0.1, 2 / 5.0)));
}

TEST_CASE("a cosine architecture rate: the first step as the constant rate's, the last moves alpha and beta not at all") {
  SearchOptions options;
  options.batch = 4;
  options.step = {.mode = Mode::full};
  const int64_t B = options.batch, total = 4;
  Buffer xb(B * 64 * 4), yb(B * 4);
  Tensor x(xb.data(), Shape{B, 1, 8, 8}), y(yb.data(), Shape{B}, DType::i32);
  auto step = [&](Searcher& s, int t) {
    Rng rng(200 + uint64_t(t));
    for (int64_t i = 0; i < x.numel(); ++i) x.f32()[i] = rng.normal();
    for (int64_t i = 0; i < B; ++i) y.i32()[i] = int32_t(rng.uniform_int(3));
    s.set_progress(t, total);
    s.step(x, y, x, y);
  };
  auto arch = [](const Searcher& s, const ParamStore& ps) {
    std::vector<float> v;
    for (const std::string& n : s.arch_names()) {
      const Tensor t = ps.get(n);
      v.insert(v.end(), t.f32(), t.f32() + t.numel());
    }
    return v;
  };
  ParamStore pc, pk;
  Searcher constant(tiny_space(), options, pc, 3);
  options.a_lr_cosine = true;
  Searcher cosine(tiny_space(), options, pk, 3);
  const std::vector<float> start = arch(cosine, pk);
  step(constant, 0);
  step(cosine, 0);
  CHECK(arch(constant, pc) == arch(cosine, pk));  // cos(0) = 1: the full rate
  CHECK(arch(cosine, pk) != start);
  for (int t = 1; t < total - 1; ++t) step(cosine, t);
  const std::vector<float> before_last = arch(cosine, pk);
  step(cosine, int(total) - 1);
  CHECK(arch(cosine, pk) == before_last);  // the rate is 0 at the last step
}
