// A small On-NAS search through the C++ API (not the tool): a supernet of the paper's
// few-shot space searched on Fashion-MNIST in the most frugal memory mode
// (expectation-based op sampling + edge pairs + step-by-step back-propagation, split
// into micro-batches), its memory planned before the first step, the genotype derived
// at the end.
//
//   build/apps/example_search_tiny [steps=20] [images=1024] [threads=all]
//
// The same in the tool: onnas search -C 8 --cells 3 --reductions 1 --mode ops+pairs+sbs --split 2 ...
#include <cstdio>
#include <cstdlib>

#include "data/batch_sampler.h"
#include "data/fashion_mnist.h"
#include "nas/genotype.h"
#include "nas/search.h"
#include "runtime/threading.h"

using namespace onnas;

int main(int argc, char** argv) try {
  const int64_t steps = argc > 1 ? std::atoll(argv[1]) : 20;
  const int64_t images = argc > 2 ? std::atoll(argv[2]) : 1024;
  if (argc > 3) set_num_threads(std::atoi(argv[3]));

  // The data: the first `images` training images, half for the weight step and half
  // for the architecture step, normalized with their own statistics.
  data::Dataset d = data::load_fashion_mnist(data::kFashionMnistDir, data::Split::train, images);
  data::normalize(d, data::channel_stats(d));
  const data::TrainValSplit halves = data::split_train_val(d, 0.5, /*seed=*/1);

  // The search space (ONNAS.md section 2), narrowed to run in seconds.
  nas::SearchSpace space = nas::SearchSpace::few_shot();
  space.channels = 8;
  space.cells = 3;
  space.reductions = {1};
  space.in_channels = int(d.C), space.height = int(d.H), space.width = int(d.W);
  space.classes = d.num_classes;
  space.validate();

  // The memory mode of sections 4-6: 2 gradient ops per edge, one pair per node, one
  // cell's backward at a time, each batch in 2 micro-batches.
  nas::SearchOptions options;
  options.batch = 32;
  options.step = {.mode = nas::Mode::ops_pairs_sbs, .sbs = nas::SbsVariant::recompute, .k_grad = 2, .split = 2};
  options.step.validate(space, options.batch);

  ParamStore params;
  nas::Searcher searcher(space, options, params, /*seed=*/1);  // creates alpha, beta, weights; plans; allocates
  std::printf("search: %s\n  %s: arena %.2f MiB (of which handed between SBS phases %.2f MiB), parameters %.2f MiB\n",
              space.describe().c_str(), options.step.describe().c_str(), searcher.arena_bytes() / 1048576.0,
              searcher.handed_bytes() / 1048576.0, params.bytes() / 1048576.0);

  data::BatchSampler train(d, halves.train, {.batch_size = options.batch, .drop_last = true}, 3);
  data::BatchSampler val(d, halves.val, {.batch_size = options.batch, .drop_last = true}, 4);
  const Shape xs{options.batch, d.C, d.H, d.W};
  Buffer xb(size_t(xs.numel()) * 4), yb(size_t(options.batch) * 4), vxb(size_t(xs.numel()) * 4),
      vyb(size_t(options.batch) * 4);
  Tensor x(xb.data(), xs), y(yb.data(), Shape{options.batch}, DType::i32);
  Tensor vx(vxb.data(), xs), vy(vyb.data(), Shape{options.batch}, DType::i32);
  searcher.set_progress(0, steps);
  for (int64_t s = 0; s < steps; ++s) {
    train.next(x, y);
    val.next(vx, vy);
    const nas::StepResult r = searcher.step(x, y, vx, vy);  // the architecture step, then the weight step
    if ((s + 1) % 5 == 0 || s + 1 == steps)
      std::printf("step %lld: weight loss %.3f, arch loss %.3f\n", (long long)(s + 1), r.weight_loss, r.arch_loss);
  }
  std::printf("genotype: %s\n", nas::derive_genotype(space, params).str().c_str());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "error: %s\n", e.what());
  return 1;
}
