// Graph-engine benchmark: one training step of the small CNN of
// apps/examples/train_cnn.cc, ours side by side with PyTorch.
//
// Network (the example's, rebuilt here through the same C++ API; the example is not
// linked): conv3x3(1->32) BN ReLU maxpool3/2 -> conv3x3(32->64) BN ReLU maxpool3/2 ->
// conv3x3(64->128) BN ReLU -> global average pool -> linear(128->10) -> softmax
// cross-entropy, on 28x28x1 inputs (random normal images, random labels).
//
// One step = zero the gradients + forward + backward (one compiled, planned program)
// + SGD update (momentum 0.9, lr 0.05, no weight decay: exactly what
// bench/compare_pytorch.py's `cnn` subcommand times for torch.optim.SGD).
// Threads: ONNAS_BENCH_THREADS (default 2) is our task-arena width and the
// --threads of the PyTorch run.
//
// Cases (batch 32 and 64):
//   cnn_step/onnas/batch:B       Google Benchmark's own loop over our steps;
//                                counter images_per_s (batch / step time).
//   cnn_step/vs_pytorch/batch:B  one comparison per repetition: our median step
//                                time over 20 steps (after 3 warm-up steps), then
//                                `/usr/bin/python3 bench/compare_pytorch.py cnn
//                                --batch B --threads T --steps 20 --warmup 3` as a
//                                subprocess, whose JSON "step_ms_median" is parsed.
//                                Counters: onnas_ms, torch_ms, onnas_img_s,
//                                torch_img_s, ratio = torch_ms / onnas_ms (> 1: ours
//                                faster). The reported time is our median step.
//                                other_cpus: the average number of cores that
//                                other processes kept busy during the comparison
//                                (/proc/stat busy time minus this process's and its
//                                children's; -1 without /proc/stat). On a shared
//                                machine it tells the quiet repetitions apart:
//                                PyTorch's OpenMP threads slow down far more than
//                                ours when a core is taken. onnas_cpus: the cores
//                                our own steps kept busy (CPU time / wall time).
//                                Skipped with a message when python3 or torch is
//                                missing (the script exits 3 without torch).
// The script is found beside this file's folder (bench/compare_pytorch.py), or at
// $ONNAS_COMPARE_PYTORCH.
//
//   onnas_bench_graph --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include <nlohmann/json.hpp>

#include "graph/autodiff.h"
#include "graph/compile.h"
#include "graph/optimizer.h"
#include "ops/ops.h"
#include "runtime/rng.h"
#include "runtime/threading.h"

namespace {

using namespace onnas;
using graph::Graph;
using graph::ValueId;

constexpr int kSteps = 20, kWarmup = 3;  // same as compare_pytorch.py's defaults
constexpr const char* kPython = "/usr/bin/python3";

int bench_threads() {
  const char* s = std::getenv("ONNAS_BENCH_THREADS");
  int n = s ? std::atoi(s) : 2;
  return n >= 1 ? n : 1;
}

// ---------------------------------------------------------------------------
// The CNN of apps/examples/train_cnn.cc (training mode: batch statistics).

struct Cnn {
  ValueId x, labels, loss;
  std::vector<ValueId> weights;
};

ValueId block(Graph& g, Cnn& net, ValueId x, int64_t in, int64_t out, int index, bool pool) {
  std::string c = "conv" + std::to_string(index), b = "bn" + std::to_string(index);
  ValueId w = g.param(c + ".weight", {Shape{out, in, 3, 3}});
  ValueId gamma = g.param(b + ".weight", {Shape{out}});
  ValueId beta = g.param(b + ".bias", {Shape{out}});
  ValueId mean = g.param(b + ".running_mean", {Shape{out}});
  ValueId var = g.param(b + ".running_var", {Shape{out}});
  net.weights.insert(net.weights.end(), {w, gamma, beta});
  ValueId y = ops::conv2d(g, x, w, {.pad = 1}, c);
  y = ops::batch_norm(g, y, {gamma, beta, mean, var}, {.training = true}, b);
  y = ops::relu(g, y, "relu" + std::to_string(index));
  return pool ? ops::max_pool2d(g, y, {.kernel = 3, .stride = 2, .pad = 1}, "pool" + std::to_string(index)) : y;
}

Cnn build_cnn(Graph& g, int64_t batch) {
  Cnn net;
  net.x = g.input("x", {Shape{batch, 1, 28, 28}});
  net.labels = g.input("labels", {Shape{batch}, DType::i32});
  ValueId y = block(g, net, net.x, 1, 32, 1, true);
  y = block(g, net, y, 32, 64, 2, true);
  y = block(g, net, y, 64, 128, 3, false);
  y = ops::global_avg_pool(g, y, "gap");
  ValueId w = g.param("fc.weight", {Shape{10, 128}});
  ValueId b = g.param("fc.bias", {Shape{10}});
  net.weights.insert(net.weights.end(), {w, b});
  ValueId logits = ops::linear(g, y, w, b, "fc");
  net.loss = ops::softmax_cross_entropy(g, logits, net.labels, "loss");
  return net;
}

// Everything one training step needs, compiled and initialized once.
struct Trainer {
  Graph g;
  Cnn net;
  graph::Program step;
  ParamStore params;
  graph::Sgd sgd{{.lr = 0.05f, .momentum = 0.9f, .weight_decay = 0.0f}};
  std::unique_ptr<Arena> arena;
  Buffer xb, yb;
  Tensor x, y;

  explicit Trainer(int64_t batch) : xb(size_t(batch) * 28 * 28 * 4), yb(size_t(batch) * 4) {
    net = build_cnn(g, batch);
    std::vector<ValueId> grads = graph::backward(g, net.loss, net.weights);
    graph::CompileOptions opts;
    opts.outputs = {net.loss};
    for (size_t i = 0; i < grads.size(); ++i) opts.param_grads.emplace_back(net.weights[i], grads[i]);
    step = graph::compile(g, opts);

    Rng rng(1);
    for (const graph::Value& v : g.values()) {  // PyTorch-like init, as in the example
      if (v.kind != graph::ValueKind::param) continue;
      const std::string& n = v.name;
      bool running = n.find("running") != std::string::npos;
      Tensor t = running ? params.add(n, v.type.shape, ParamKind::buffer) : params.add_weight(n, v.type.shape);
      bool bn = n.rfind("bn", 0) == 0;
      if (bn || running) {
        float fill = n.ends_with("running_var") || (bn && n.ends_with(".weight")) ? 1.0f : 0.0f;
        for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = fill;
      } else {
        int64_t fan_in = n == "fc.bias" ? 128 : v.type.shape.numel() / v.type.shape[0];
        float bound = 1.0f / std::sqrt(float(fan_in));
        for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = (2 * rng.uniform() - 1) * bound;
      }
    }
    sgd.add_params(params, ParamKind::weight);
    arena = std::make_unique<Arena>(step.arena_bytes());

    x = Tensor(xb.data(), Shape{batch, 1, 28, 28});
    y = Tensor(yb.data(), Shape{batch}, DType::i32);
    for (int64_t i = 0; i < x.numel(); ++i) x.f32()[i] = rng.normal();
    for (int64_t i = 0; i < batch; ++i) y.i32()[i] = int32_t(rng.uniform_int(10));
  }

  void train_step() {
    params.zero_grads();
    step.run(*arena, params, {{net.x, x}, {net.labels, y}});
    sgd.step(params);
  }
};

void bm_onnas(benchmark::State& state) {
  set_num_threads(bench_threads());
  const int64_t batch = state.range(0);
  Trainer t(batch);
  for (int i = 0; i < kWarmup; ++i) t.train_step();
  for (auto _ : state) t.train_step();
  state.counters["images_per_s"] = benchmark::Counter(double(batch), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["arena_MiB"] = double(t.step.arena_bytes()) / 1048576.0;
}

// ---------------------------------------------------------------------------
// The PyTorch side.

std::string script_path() {
  if (const char* s = std::getenv("ONNAS_COMPARE_PYTORCH")) return s;
  std::filesystem::path here(__FILE__);  // .../bench/graph/bench_graph.cc
  std::filesystem::path p = here.parent_path().parent_path() / "compare_pytorch.py";
  if (std::filesystem::exists(p)) return p.string();
  return "bench/compare_pytorch.py";
}

// Runs the script; returns the parsed JSON, or sets `error` and returns null.
nlohmann::json run_pytorch(int64_t batch, int threads, std::string& error) {
  if (!std::filesystem::exists(kPython)) {
    error = std::string(kPython) + " not found: PyTorch comparison skipped";
    return nullptr;
  }
  std::string script = script_path();
  if (!std::filesystem::exists(script)) {
    error = "compare_pytorch.py not found (set ONNAS_COMPARE_PYTORCH): PyTorch comparison skipped";
    return nullptr;
  }
  std::string cmd = std::string(kPython) + " '" + script + "' cnn --batch " + std::to_string(batch) +
                    " --threads " + std::to_string(threads) + " --steps " + std::to_string(kSteps) +
                    " --warmup " + std::to_string(kWarmup) + " 2>/dev/null";
  FILE* pipe = popen(cmd.c_str(), "r");
  if (!pipe) {
    error = "cannot start " + cmd;
    return nullptr;
  }
  std::string out;
  std::array<char, 4096> buf;
  while (size_t n = std::fread(buf.data(), 1, buf.size(), pipe)) out.append(buf.data(), n);
  int status = pclose(pipe);
  int rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (rc == 3) {
    error = "PyTorch (torch, numpy) not importable by /usr/bin/python3: comparison skipped";
    return nullptr;
  }
  if (rc != 0) {
    error = "compare_pytorch.py cnn exited with status " + std::to_string(rc);
    return nullptr;
  }
  nlohmann::json j = nlohmann::json::parse(out, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.contains("step_ms_median")) {
    error = "compare_pytorch.py cnn: no step_ms_median in its output";
    return nullptr;
  }
  return j;
}

// Machine-wide busy CPU seconds (/proc/stat) and this process's own CPU seconds
// (itself plus its waited-for children), to estimate what other processes used.
struct CpuSample {
  double busy = -1, own = 0;
  std::chrono::steady_clock::time_point wall;
};

CpuSample cpu_sample() {
  CpuSample s;
  s.wall = std::chrono::steady_clock::now();
  if (FILE* f = std::fopen("/proc/stat", "r")) {
    unsigned long long user, nice, system, idle, iowait, irq, softirq, steal;
    if (std::fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &user, &nice, &system, &idle, &iowait, &irq,
                    &softirq, &steal) == 8)
      s.busy = double(user + nice + system + irq + softirq + steal) / double(sysconf(_SC_CLK_TCK));
    std::fclose(f);
  }
  for (int who : {RUSAGE_SELF, RUSAGE_CHILDREN}) {
    rusage r{};
    getrusage(who, &r);
    s.own += double(r.ru_utime.tv_sec + r.ru_stime.tv_sec) + 1e-6 * double(r.ru_utime.tv_usec + r.ru_stime.tv_usec);
  }
  return s;
}

double other_cpus(const CpuSample& a, const CpuSample& b) {
  if (a.busy < 0 || b.busy < 0) return -1;
  double wall = std::chrono::duration<double>(b.wall - a.wall).count();
  return std::max(0.0, ((b.busy - a.busy) - (b.own - a.own)) / wall);
}

void bm_vs_pytorch(benchmark::State& state) {
  const int threads = bench_threads();
  set_num_threads(threads);
  const int64_t batch = state.range(0);
  Trainer t(batch);
  for (auto _ : state) {
    CpuSample before = cpu_sample();
    // Ours: the median of kSteps timed steps, as the script does for PyTorch.
    std::vector<double> ms;
    for (int i = 0; i < kWarmup + kSteps; ++i) {
      auto t0 = std::chrono::steady_clock::now();
      t.train_step();
      double dt = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      if (i >= kWarmup) ms.push_back(dt);
    }
    CpuSample after_ours = cpu_sample();
    std::sort(ms.begin(), ms.end());
    double ours = (ms[kSteps / 2 - 1] + ms[kSteps / 2]) / 2;  // kSteps is even: statistics.median
    state.SetIterationTime(ours * 1e-3);

    std::string error;
    nlohmann::json j = run_pytorch(batch, threads, error);
    if (j.is_null()) {
      state.SkipWithError(error.c_str());
      break;
    }
    double torch_ms = j["step_ms_median"].get<double>();
    state.counters["other_cpus"] = other_cpus(before, cpu_sample());
    state.counters["onnas_cpus"] =
        (after_ours.own - before.own) / std::chrono::duration<double>(after_ours.wall - before.wall).count();
    state.counters["onnas_ms"] = ours;
    state.counters["torch_ms"] = torch_ms;
    state.counters["onnas_img_s"] = double(batch) * 1e3 / ours;
    state.counters["torch_img_s"] = double(batch) * 1e3 / torch_ms;
    state.counters["ratio"] = torch_ms / ours;
  }
}

const bool registered = [] {
  for (int64_t b : {32, 64}) {
    benchmark::RegisterBenchmark("cnn_step/onnas", bm_onnas)->Arg(b)->ArgName("batch")->UseRealTime()->Unit(
        benchmark::kMillisecond);
    benchmark::RegisterBenchmark("cnn_step/vs_pytorch", bm_vs_pytorch)
        ->Arg(b)
        ->ArgName("batch")
        ->Iterations(1)
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
  }
  return true;
}();

}  // namespace

BENCHMARK_MAIN();
