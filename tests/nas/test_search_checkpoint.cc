// Search checkpoints (nas/search_checkpoint.h): a checkpoint reads back into the same
// values, and one holding a non-finite value anywhere (a weight, an optimizer moment,
// the sampler's history) is refused naming the file and the tensor, with nothing of
// the search changed.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>

#include "nas/search.h"
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
  std::filesystem::remove_all(dir);
}
