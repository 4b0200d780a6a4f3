// `onnas train`: trains the discrete network of a genotype from scratch (or from
// searched weights) with SGD, momentum and a cosine schedule, and reports test
// accuracy with running statistics. `onnas eval`: evaluates a saved model.
#include <chrono>
#include <cmath>
#include <cstdio>

#include "apps/onnas/common.h"
#include "data/batch_sampler.h"
#include "graph/autodiff.h"
#include "graph/compile.h"
#include "graph/optimizer.h"
#include "nas/genotype.h"
#include "nas/network.h"
#include "nas/search.h"
#include "runtime/error.h"
#include "runtime/serialize/atomic_file.h"
#include "runtime/serialize/safetensors.h"
#include "runtime/threading.h"

namespace onnas::app {
namespace {

struct TrainArgs {
  DataOptions data;
  SpaceOptions space;
  std::string genotype;
  int64_t batch = 64;
  int epochs = 10;
  int64_t steps = 0;
  float lr = 0.05f, weight_decay = 3e-4f, grad_clip = 5.0f;
  int crop_padding = 2;
  bool flip = true;
  bool resume = false;
  uint64_t seed = 1;
  int threads = 0;
  std::string init, out = "runs/train", model;
  bool json = false;
};

// Test accuracy of the discrete network in `params` (running statistics).
double evaluate(const nas::SearchSpace& space, const nas::Genotype& genotype, const data::Dataset& test,
                int64_t batch, const ParamStore& params) {
  graph::Graph g;
  nas::SearchNet net = nas::emit_discrete_net(g, space, genotype, batch, /*training=*/false);
  graph::Program p = graph::compile(g, {.outputs = {net.logits}});
  Arena arena(p.arena_bytes());
  const Shape xs{batch, space.in_channels, space.height, space.width};
  Buffer xb(size_t(xs.numel()) * 4), yb(size_t(batch) * 4);
  Tensor x(xb.data(), xs), y(yb.data(), Shape{batch}, DType::i32);
  data::BatchSampler batches(test, {}, {.batch_size = batch, .shuffle = false}, 0);
  int64_t correct = 0, seen = 0;
  for (int64_t b = 0; b < batches.batches_per_epoch(); ++b) {
    int64_t rows = batches.next(x, y);
    p.run(arena, params, {{net.x, x}});
    float acc = nas::accuracy(p.output(arena, net.logits), y);  // rows with label -1 are skipped
    correct += int64_t(std::lround(double(acc) * double(rows)));
    seen += rows;
  }
  return seen ? double(correct) / double(seen) : 0.0;
}

void run_train(const TrainArgs& a) {
  if (a.threads > 0) set_num_threads(a.threads);
  nas::Genotype genotype = nas::Genotype::load(a.genotype);
  LoadedData d = load_data(a.data);
  nas::SearchSpace space = a.space.space(d.train);
  genotype.validate(space, a.genotype);
  // Before anything is planned or allocated for a batch of this size.
  if (d.train.N < a.batch)
    fail("--batch {} needs at least {} training images; the data has {}{}", a.batch, a.batch, d.train.N,
         a.data.limit > 0 ? fmt::format(" (--limit {})", a.data.limit) : "");

  graph::Graph g;
  nas::SearchNet net = nas::emit_discrete_net(g, space, genotype, a.batch, /*training=*/true);
  ParamStore params;
  Rng rng(a.seed);
  nas::init_params(params, g, rng);
  if (!a.init.empty()) {
    LoadParamsOptions lo;
    lo.strict = false;
    lo.allow_extra = true;
    const LoadParamsReport r = load_params(a.init, params, lo);
    if (r.loaded.empty())
      fail("--init {}: none of its {} tensors is a parameter of this network (names as in docs/PARAMS.md; a file of "
           "another network?)",
           a.init, r.extra.size());
    std::fprintf(stderr, "init: %zu of the network's %zu tensors loaded from %s (%zu tensors of the file unused)\n",
                 r.loaded.size(), r.loaded.size() + r.missing.size(), a.init.c_str(), r.extra.size());
  }
  const std::vector<graph::ValueId> weights = nas::params_of_kind(g, params, ParamKind::weight);
  std::vector<std::string> weight_names;
  for (graph::ValueId w : weights) weight_names.push_back(g.name(w));
  std::vector<graph::ValueId> grads = graph::backward(g, net.loss, weights);
  graph::CompileOptions co{.outputs = {net.loss, net.logits}};
  for (size_t i = 0; i < weights.size(); ++i) co.param_grads.emplace_back(weights[i], grads[i]);
  graph::Program step = graph::compile(g, co);
  graph::Sgd sgd({.lr = a.lr, .momentum = 0.9f, .weight_decay = a.weight_decay, .nesterov = true});
  for (const auto& n : weight_names) sgd.add_param(params, n);

  Arena arena(step.arena_bytes());
  const Shape xs{a.batch, space.in_channels, space.height, space.width};
  Buffer xb(size_t(xs.numel()) * 4), yb(size_t(a.batch) * 4);
  Tensor x(xb.data(), xs), y(yb.data(), Shape{a.batch}, DType::i32);
  data::BatchSampler train(d.train, {},
                           {.batch_size = a.batch,
                            .drop_last = true,
                            .augment = {.crop_padding = a.crop_padding, .horizontal_flip = a.flip}},
                           a.seed);
  const int64_t per_epoch = a.steps > 0 ? std::min(a.steps, train.batches_per_epoch()) : train.batches_per_epoch();
  const int64_t total = per_epoch * a.epochs;
  std::fprintf(stderr, "train: %s\n  genotype %s\n  batch %lld, %lld steps; planned arena %s (lower bound %s), "
                       "parameters %s, %d threads\n",
               space.describe().c_str(), genotype.str().c_str(), (long long)a.batch, (long long)total,
               format_bytes(double(step.arena_bytes())).c_str(), format_bytes(double(step.lower_bound_bytes())).c_str(),
               format_bytes(double(params.bytes())).c_str(), num_threads());
  make_out_dir(a.out);
  // Everything the arithmetic of the run depends on: a checkpoint resumes only a run
  // with the same values.
  const std::string signature =
      nlohmann::json{{"genotype", genotype.to_json()}, {"space", space.to_json()}, {"data", a.data.format},
                     {"data_path", a.data.path}, {"limit", a.data.limit}, {"batch", a.batch}, {"epochs", a.epochs},
                     {"steps", per_epoch}, {"lr", a.lr}, {"weight_decay", a.weight_decay},
                     {"grad_clip", a.grad_clip}, {"crop_padding", a.crop_padding}, {"flip", a.flip},
                     {"seed", a.seed}, {"init", a.init}}
          .dump();
  const std::string ckpt = a.out + "/checkpoint.safetensors";
  constexpr ParamKindSet kCheckpointKinds{ParamKind::weight, ParamKind::buffer, ParamKind::state};
  auto start = std::chrono::steady_clock::now();
  int64_t t = 0;
  int first_epoch = 0;
  std::string log;
  if (a.resume) {
    LoadParamsOptions lo;
    lo.kinds = kCheckpointKinds;
    LoadParamsReport rep = load_params(ckpt, params, lo);
    if (rep.metadata["run"] != signature)
      fail("--resume: {} was written by a run with other settings (its settings: {}; this run: {})", ckpt,
           rep.metadata["run"], signature);
    first_epoch = int(metadata_integer(rep.metadata, "epoch", ckpt, 0, a.epochs));
    log = rep.metadata["log"];
    // Replay the batches already trained on: the sampler's draws (order, crops,
    // flips) continue exactly where the interrupted run stopped.
    for (; t < int64_t(first_epoch) * per_epoch; ++t) train.next(x, y);
    std::fprintf(stderr, "resuming from %s after epoch %d\n", ckpt.c_str(), first_epoch);
  }
  for (int e = first_epoch; e < a.epochs; ++e) {
    Progress bar(fmt::format("epoch {}/{}", e + 1, a.epochs), per_epoch);
    double loss_sum = 0, acc_sum = 0;
    for (int64_t s = 0; s < per_epoch; ++s, ++t) {
      test_kill_point(t);
      train.next(x, y);
      sgd.set_lr(graph::cosine_lr(a.lr, 0.0f, t, total));
      params.zero_grads();
      step.run(arena, params, {{net.x, x}, {net.labels, y}});
      float loss = step.output(arena, net.loss).f32()[0];
      if (!std::isfinite(loss)) fail("training step {} (epoch {}) produced a non-finite loss ({}); stopping", t, e + 1, loss);
      if (a.grad_clip > 0) graph::clip_grad_norm(params, weight_names, a.grad_clip);
      sgd.step(params);
      loss_sum += loss;
      acc_sum += nas::accuracy(step.output(arena, net.logits), y);
      bar.update(s + 1, fmt::format("loss {:.4f} acc {:.4f}", loss_sum / double(s + 1), acc_sum / double(s + 1)));
    }
    double test_acc = evaluate(space, genotype, d.test, 100, params);
    bar.finish(fmt::format("loss {:.4f} acc {:.4f} test {:.4f}", loss_sum / double(per_epoch),
                           acc_sum / double(per_epoch), test_acc));
    log += nlohmann::json{{"epoch", e + 1}, {"loss", loss_sum / double(per_epoch)},
                          {"train_accuracy", acc_sum / double(per_epoch)}, {"test_accuracy", test_acc}}
               .dump() +
           "\n";
    save_params(a.out + "/model.safetensors", params, kModelKinds,
                {{"onnas", "discrete network"}, {"search_space", space.describe()},
                 {"genotype", genotype.to_json().dump()}, {"epoch", std::to_string(e + 1)}});
    save_params(ckpt, params, kCheckpointKinds,
                {{"onnas", "training checkpoint"}, {"run", signature}, {"epoch", std::to_string(e + 1)}, {"log", log}});
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  double test_acc = evaluate(space, genotype, d.test, 100, params);
  genotype.save(a.out + "/genotype.json");
  write_file_atomic(a.out + "/train_log.jsonl", log);
  std::printf("test accuracy: %.4f (%lld images, %.0f s of training)\n", test_acc, (long long)d.test.N, secs);
  if (a.json)
    std::printf("%s\n", nlohmann::json{{"test_accuracy", test_acc}, {"train_seconds", secs}, {"epochs", a.epochs},
                                       {"arena_bytes", step.arena_bytes()}}
                            .dump()
                            .c_str());
}

void run_eval(const TrainArgs& a) {
  if (a.threads > 0) set_num_threads(a.threads);
  nas::Genotype genotype = nas::Genotype::load(a.genotype);
  LoadedData d = load_data(a.data);
  nas::SearchSpace space = a.space.space(d.test);
  genotype.validate(space, a.genotype);
  graph::Graph g;
  nas::emit_discrete_net(g, space, genotype, a.batch, false);
  ParamStore params;
  Rng rng(0);
  nas::init_params(params, g, rng);
  load_params(a.model, params);  // strict: every tensor of the network must be in the file
  double acc = evaluate(space, genotype, d.test, a.batch, params);
  std::printf("test accuracy: %.4f (%lld images)\n", acc, (long long)d.test.N);
}

}  // namespace

void add_train_command(CLI::App& app) {
  auto args = std::make_shared<TrainArgs>();
  CLI::App* cmd = app.add_subcommand("train", "Train the discrete network of a genotype and report test accuracy");
  args->data.add(*cmd);
  args->space.add(*cmd);
  cmd->add_option("--genotype", args->genotype, "Genotype JSON (from onnas search)")->required();
  cmd->add_option("-b,--batch", args->batch, "Batch size")->check(CLI::Range(1, 4096));
  cmd->add_option("--epochs", args->epochs, "Epochs")->check(CLI::Range(1, 100000));
  cmd->add_option("--steps", args->steps, "Steps per epoch (0 = a full pass)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--lr", args->lr, "SGD learning rate (Nesterov momentum 0.9, cosine to 0)");
  cmd->add_option("--weight-decay", args->weight_decay, "Weight decay");
  cmd->add_option("--crop-padding", args->crop_padding, "Random-crop padding (0 = none)")->check(CLI::Range(0, 64));
  cmd->add_option("--flip", args->flip, "Random horizontal flips (true/false)");
  cmd->add_option("--seed", args->seed, "Random seed");
  cmd->add_option("--threads", args->threads, "Threads (default: all cores)")->check(CLI::Range(1, 1024));
  cmd->add_option("--init", args->init, "Initialize from a safetensors file (e.g. searched weights)");
  cmd->add_flag("--resume", args->resume,
                "Continue from OUT/checkpoint.safetensors (written after every epoch; same settings and seed)");
  cmd->add_option("-o,--out", args->out, "Output folder");
  cmd->add_flag("--json", args->json, "Print a JSON summary on stdout");
  add_check_numerics_flag(*cmd);
  cmd->callback([args] { run_train(*args); });

  auto eargs = std::make_shared<TrainArgs>();
  CLI::App* ecmd = app.add_subcommand("eval", "Evaluate a trained discrete network on the test set");
  eargs->data.add(*ecmd);
  eargs->space.add(*ecmd);
  ecmd->add_option("--genotype", eargs->genotype, "Genotype JSON")->required();
  ecmd->add_option("--model", eargs->model, "Model safetensors (from onnas train)")->required();
  ecmd->add_option("-b,--batch", eargs->batch, "Batch size")->check(CLI::Range(1, 4096));
  ecmd->add_option("--threads", eargs->threads, "Threads (default: all cores)")->check(CLI::Range(1, 1024));
  ecmd->callback([eargs] { run_eval(*eargs); });
}

}  // namespace onnas::app
