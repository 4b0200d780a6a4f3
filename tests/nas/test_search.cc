// The supernet, the first-order DARTS step and genotypes on tiny configurations.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>

#include "graph/compile.h"
#include "nas/genotype.h"
#include "nas/network.h"
#include "nas/search.h"
#include "runtime/rng.h"

using namespace onnas;
using namespace onnas::nas;

namespace {

SearchSpace tiny_space() {
  SearchSpace s;
  s.channels = 4;
  s.cells = 3;
  s.reductions = {1};
  s.nodes = 2;
  s.height = s.width = 8;
  s.classes = 3;
  return s;
}

// A synthetic task: class c has a bright square in quadrant c.
void fill_task(Rng& rng, int64_t n, int64_t hw, Tensor x, Tensor y) {
  for (int64_t i = 0; i < n; ++i) {
    int32_t c = int32_t(rng.uniform_int(3));
    y.i32()[i] = c;
    float* img = x.f32() + i * hw * hw;
    for (int64_t p = 0; p < hw * hw; ++p) img[p] = 0.1f * rng.normal();
    int64_t oy = c == 1 ? hw / 2 : 0, ox = c == 2 ? hw / 2 : 0;
    for (int64_t r = 0; r < hw / 2; ++r)
      for (int64_t q = 0; q < hw / 2; ++q) img[(oy + r) * hw + ox + q] += 1.0f;
  }
}

}  // namespace

TEST_CASE("search space counts edges and pairs, and refuses impossible shapes") {
  SearchSpace s;
  CHECK(s.num_edges() == 9);
  CHECK(s.first_edge(2) == 5);
  CHECK(s.pairs(2).size() == 6);
  CHECK(s.pairs(1) == std::vector<std::pair<int, int>>{{0, 1}, {0, 2}, {1, 2}});
  CHECK(s.cell_channels(0) == 16);
  CHECK(s.cell_channels(1) == 32);
  CHECK(s.cell_channels(3) == 64);
  s.height = s.width = 6;
  CHECK_THROWS_WITH(s.validate(), Catch::Contains("cannot flow") && Catch::Contains("cell 3"));
  s.height = s.width = 2;
  CHECK_THROWS_WITH(s.validate(), Catch::Contains("cannot flow"));
  CHECK_THROWS_WITH(op_kind_from_name("conv_9x9"), Catch::Contains("unknown op 'conv_9x9'"));
}

TEST_CASE("genotype derivation picks the largest beta pair and the largest non-none alpha") {
  SearchSpace s = tiny_space();
  s.ops = darts_ops();
  ParamStore ps;
  Tensor an = ps.add_weight("alpha.normal", Shape{s.num_edges(), s.num_ops()}, ParamKind::arch);
  Tensor ar = ps.add_weight("alpha.reduce", Shape{s.num_edges(), s.num_ops()}, ParamKind::arch);
  Tensor bn0 = ps.add_weight("beta.normal.0", Shape{1}, ParamKind::arch);
  Tensor bn1 = ps.add_weight("beta.normal.1", Shape{3}, ParamKind::arch);
  ps.add_weight("beta.reduce.0", Shape{1}, ParamKind::arch);
  Tensor br1 = ps.add_weight("beta.reduce.1", Shape{3}, ParamKind::arch);
  const int64_t k = s.num_ops();
  // normal node 0 (edges 0, 1): edge 0 best is sep_conv_5x5 (5); edge 1 best is `none`, then avg_pool (2).
  an.f32()[0 * k + 5] = 1.0f;
  an.f32()[1 * k + 0] = 5.0f;
  an.f32()[1 * k + 2] = 1.0f;
  // normal node 1: pair (1, 2) wins; edge 3 (state 1) -> skip (3); edge 4 (state 2) -> dil_conv_3x3 (6).
  bn1.f32()[2] = 2.0f;
  an.f32()[3 * k + 3] = 1.0f;
  an.f32()[4 * k + 6] = 1.0f;
  br1.f32()[1] = 1.0f;  // pair (0, 2)
  Genotype g = derive_genotype(s, ps);
  REQUIRE(g.normal.size() == 2);
  CHECK(g.normal[0] == std::vector<GenotypeEdge>{{OpKind::sep_conv_5x5, 0}, {OpKind::avg_pool_3x3, 1}});
  CHECK(g.normal[1] == std::vector<GenotypeEdge>{{OpKind::skip_connect, 1}, {OpKind::dil_conv_3x3, 2}});
  CHECK(g.reduce[1][0].input == 0);
  CHECK(g.reduce[1][1].input == 2);
  // JSON round trip, and refusals.
  CHECK(Genotype::from_json(g.to_json(), "test") == g);
  nlohmann::json bad = g.to_json();
  bad["normal"][1][0]["op"] = "conv_9x9";
  CHECK_THROWS_WITH(Genotype::from_json(bad, "g.json"), Catch::Contains("g.json") && Catch::Contains("conv_9x9"));
  bad = g.to_json();
  bad["reduce"][0][1]["input"] = 2;
  CHECK_THROWS_WITH(Genotype::from_json(bad, "g.json"), Catch::Contains("input 2"));
  CHECK(g.str().find("('sep_conv_5x5', 0)") != std::string::npos);
}

TEST_CASE("DARTS genotype strings: printed as DARTS prints them, read back, refused where onnas differs") {
  Genotype g;
  g.normal = {{{OpKind::sep_conv_3x3, 0}, {OpKind::skip_connect, 1}}, {{OpKind::dil_conv_5x5, 2}, {OpKind::sep_conv_3x3, 0}}};
  g.reduce = {{{OpKind::max_pool_3x3, 0}, {OpKind::max_pool_3x3, 1}}, {{OpKind::skip_connect, 2}, {OpKind::avg_pool_3x3, 1}}};
  CHECK(g.str() ==
        "Genotype(normal=[('sep_conv_3x3', 0), ('skip_connect', 1), ('dil_conv_5x5', 2), ('sep_conv_3x3', 0)], "
        "normal_concat=range(2, 4), reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), "
        "('avg_pool_3x3', 1)], reduce_concat=range(2, 4))");
  CHECK(Genotype::parse_darts(g.str(), "s") == g);
  // As other code prints it: double quotes, a list for the concat, fields in another order, line breaks.
  CHECK(Genotype::parse_darts("Genotype(\n  reduce=[(\"max_pool_3x3\", 0), (\"max_pool_3x3\", 1), (\"skip_connect\", 2), "
                              "(\"avg_pool_3x3\", 1)], reduce_concat=[2, 3],\n  normal=[('sep_conv_3x3', 0), "
                              "('skip_connect', 1), ('dil_conv_5x5', 2), ('sep_conv_3x3', 0)], normal_concat=[2, 3])",
                              "s") == g);
  const std::string text = g.str();
  auto with = [&](const std::string& from, const std::string& to) {
    std::string t = text;
    return t.replace(t.find(from), from.size(), to);
  };
  CHECK_THROWS_WITH(Genotype::parse_darts(with("normal_concat=range(2, 4)", "normal_concat=range(3, 4)"), "--genotype"),
                    Catch::Contains("normal_concat is [3]; onnas concatenates every intermediate node, range(2, 4)"));
  CHECK_THROWS_WITH(Genotype::parse_darts(with("('skip_connect', 1), ", ""), "--genotype"),
                    Catch::Contains("normal lists 3 edges; a DARTS genotype has two per node"));
  CHECK_THROWS_WITH(Genotype::parse_darts(with("'sep_conv_3x3', 0)", "'sep_conv_9x9', 0)"), "--genotype"),
                    Catch::Contains("--genotype") && Catch::Contains("sep_conv_9x9"));
  CHECK_THROWS_WITH(Genotype::parse_darts(with("reduce_concat", "reduced_concat"), "--genotype"),
                    Catch::Contains("not 'reduced_concat'"));
  CHECK_THROWS_WITH(Genotype::parse_darts(text + " x", "--genotype"), Catch::Contains("expected the end of the text at column"));
  CHECK_THROWS_WITH(Genotype::parse_darts("Genotype(normal=[('sep_conv_3x3' 0)])", "g"),
                    Catch::Contains("expected ',' at column 34"));
  CHECK_THROWS_WITH(Genotype::parse_darts(std::string(1 << 17, ' '), "g"), Catch::Contains("at most 65536"));
}

TEST_CASE("a short search on a tiny synthetic task lowers the loss") {
  SearchSpace s = tiny_space();
  const int64_t B = 12;
  ParamStore ps;
  SearchOptions o;
  o.batch = B;
  o.w_lr = 1e-2f;
  Searcher searcher(s, o, ps, 7);
  Buffer xb(B * 64 * 4), yb(B * 4), vxb(B * 64 * 4), vyb(B * 4);
  Tensor x(xb.data(), Shape{B, 1, 8, 8}), y(yb.data(), Shape{B}, DType::i32);
  Tensor vx(vxb.data(), Shape{B, 1, 8, 8}), vy(vyb.data(), Shape{B}, DType::i32);
  Rng rng(3);
  double first = 0, last = 0;
  const int steps = 30;
  for (int t = 0; t < steps; ++t) {
    fill_task(rng, B, 8, x, y);
    fill_task(rng, B, 8, vx, vy);
    StepResult r = searcher.step(x, y, vx, vy);
    REQUIRE(std::isfinite(r.weight_loss));
    if (t < 5) first += r.weight_loss / 5;
    if (t >= steps - 5) last += r.weight_loss / 5;
  }
  CHECK(last < 0.6 * first);
  // Alpha moved away from its initialization.
  Tensor a = ps.get("alpha.normal");
  double norm = 0;
  for (int64_t i = 0; i < a.numel(); ++i) norm += double(a.f32()[i]) * a.f32()[i];
  CHECK(std::sqrt(norm) > 0.01);
  CHECK(searcher.arena_bytes() > 0);
}

namespace {

// Runs `steps` search steps of `mode` from seed 7 and returns the store.
void run_steps(ParamStore& ps, SearchOptions o, int steps, size_t* grad_bytes) {
  SearchSpace s = tiny_space();
  const int64_t B = o.batch;
  Searcher searcher(s, o, ps, 7);
  Buffer xb(B * 64 * 4), yb(B * 4), vxb(B * 64 * 4), vyb(B * 4);
  Tensor x(xb.data(), Shape{B, 1, 8, 8}), y(yb.data(), Shape{B}, DType::i32);
  Tensor vx(vxb.data(), Shape{B, 1, 8, 8}), vy(vyb.data(), Shape{B}, DType::i32);
  Rng rng(3);
  for (int t = 0; t < steps; ++t) {
    fill_task(rng, B, 8, x, y);
    fill_task(rng, B, 8, vx, vy);
    searcher.set_progress(t, steps);
    searcher.step(x, y, vx, vy);
  }
  *grad_bytes = searcher.grad_bytes();
}

}  // namespace

TEST_CASE("sparse weight gradients: only the sampled weights have storage, and the search is unchanged") {
  for (WeightOptimizer opt :
       {WeightOptimizer::adam, WeightOptimizer::sgd, WeightOptimizer::adam_bf16, WeightOptimizer::adam_factored}) {
    for (Mode mode : {Mode::ops_pairs_sbs, Mode::ops, Mode::full}) {
      CAPTURE(int(opt), mode_name(mode));
      SearchOptions o;
      o.batch = 6;
      o.w_optimizer = opt;
      o.w_weight_decay = 3e-3f;  // trained weights decay, untrained ones are left alone
      o.step = {.mode = mode, .k_grad = 2, .split = mode == Mode::full ? 1 : 2};
      ParamStore dense, sparse;
      size_t dense_block = 1, sparse_block = 0;
      o.sparse_weight_grads = false;
      run_steps(dense, o, 6, &dense_block);
      o.sparse_weight_grads = true;
      run_steps(sparse, o, 6, &sparse_block);
      CHECK(dense_block == 0);
      const size_t weights = dense.bytes(ParamKind::weight);
      CHECK(dense.bytes(ParamKind::grad) == weights + dense.bytes(ParamKind::arch));
      CHECK(sparse.bytes(ParamKind::grad) == sparse.bytes(ParamKind::arch));  // no weight gradient in the store
      if (mode == Mode::full)
        CHECK(sparse_block >= weights);  // every weight trains
      else
        CHECK(sparse_block < weights);   // the worst sample's weights: k_grad largest ops per edge
      // Same weights, alpha/beta and optimizer state, bit for bit.
      for (const auto& e : dense.entries()) {
        if (e->kind == ParamKind::grad) continue;
        const Tensor t = sparse.get(e->name);
        REQUIRE(t.bytes() == e->tensor.bytes());
        CHECK(std::memcmp(t.data(), e->tensor.data(), t.bytes()) == 0);
      }
    }
  }
}
