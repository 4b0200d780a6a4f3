// `onnas train`: trains the discrete network of a genotype from scratch (or from
// searched weights) with SGD, momentum and a cosine schedule, and reports test
// accuracy with running statistics; the model file it writes carries the space, the
// genotype and the input normalization (model_file.h). `onnas eval`: evaluates such a
// model file alone on a test set.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>

#include "apps/onnas/cli.h"
#include "apps/onnas/common.h"
#include "apps/onnas/memory_report.h"
#include "apps/onnas/model_file.h"
#include "apps/onnas/output.h"
#include "apps/onnas/run_time.h"
#include "data/batch_sampler.h"
#include "graph/autodiff.h"
#include "graph/compile.h"
#include "graph/optimizer.h"
#include "nas/genotype.h"
#include "nas/network.h"
#include "nas/search.h"
#include "runtime/error.h"
#include "runtime/heap.h"
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
  std::string init;
  OutDir out;
  Output report{"train"};
};

struct EvalArgs {
  DataOptions data;
  SpaceOptions space;  // hidden: the model holds its space
  std::string model, genotype, predictions;
  bool overwrite = false;
  int64_t batch = 100;
  int threads = 0;
  Output report{"eval"};
};

struct Evaluation {
  double accuracy = 0;
  int64_t correct = 0, images = 0;
  double seconds = 0;
};

// Test accuracy of the discrete network (running statistics), compiled once: its
// program and batch buffers are part of the run's plan, and it runs in whatever arena
// of at least arena_bytes() the caller hands it (training shares its own).
class TestEvaluator {
 public:
  TestEvaluator(const nas::SearchSpace& space, const nas::Genotype& genotype, int64_t batch)
      : batch_(batch),
        xs_{batch, space.in_channels, space.height, space.width},
        xb_(size_t(xs_.numel()) * 4),
        yb_(size_t(batch) * 4) {
    graph::Graph g;
    net_ = nas::emit_discrete_net(g, space, genotype, batch, /*training=*/false);
    program_ = graph::compile(g, {.outputs = {net_.logits}});
  }
  size_t arena_bytes() const { return program_.arena_bytes(); }
  size_t table_bytes() const { return program_.table_bytes(); }
  size_t batch_bytes() const { return xb_.bytes() + yb_.bytes(); }

  // With a progress bar. With `predictions`, one JSON line per image: index, label,
  // predicted class, logits.
  Evaluation run(Arena& arena, const ParamStore& params, const data::Dataset& test,
                 std::string* predictions = nullptr) {
    const auto t0 = std::chrono::steady_clock::now();
    Tensor x(xb_.data(), xs_), y(yb_.data(), Shape{batch_}, DType::i32);
    data::BatchSampler batches(test, {}, {.batch_size = batch_, .shuffle = false}, 0);
    Progress bar("test", test.N, "images");
    Evaluation r;
    for (int64_t b = 0; b < batches.batches_per_epoch(); ++b) {
      int64_t rows = batches.next(x, y);
      program_.run(arena, params, {{net_.x, x}});
      const Tensor logits = program_.output(arena, net_.logits);
      float acc = nas::accuracy(logits, y);  // rows with label -1 are skipped
      r.correct += int64_t(std::lround(double(acc) * double(rows)));
      if (predictions) {
        const int64_t k = logits.shape()[1];
        for (int64_t i = 0; i < rows; ++i) {
          const float* row = logits.f32() + i * k;
          const int64_t predicted = std::max_element(row, row + k) - row;
          *predictions += nlohmann::json{{"index", r.images + i},
                                         {"label", y.i32()[i]},
                                         {"predicted", predicted},
                                         {"logits", std::vector<float>(row, row + k)}}
                              .dump() +
                          "\n";
        }
      }
      r.images += rows;
      bar.update(r.images, fmt::format("accuracy {:.4f}", double(r.correct) / double(std::max<int64_t>(1, r.images))));
    }
    r.accuracy = r.images ? double(r.correct) / double(r.images) : 0.0;
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    bar.finish(fmt::format("accuracy {:.4f} on {} images", r.accuracy, r.images));
    return r;
  }

 private:
  int64_t batch_;
  Shape xs_;
  Buffer xb_, yb_;
  nas::SearchNet net_;
  graph::Program program_;
};

void run_train(const TrainArgs& a, const CLI::App& cmd) {
  a.out.check(a.resume, "checkpoint.safetensors");
  a.data.warn_ignored(cmd);
  const auto started = std::chrono::steady_clock::now();
  if (a.threads > 0) set_num_threads(a.threads);
  measure_fixed_overhead();
  const GenotypeSource gs = load_genotype_arg(a.genotype);
  const nas::Genotype& genotype = gs.genotype;
  LoadedData d = load_data(a.data);
  // The space: the flags given, the rest from the genotype file's own space (so a
  // genotype.json of `onnas search` trains the network it was searched in).
  nas::SearchSpace space = a.space.space_with(cmd, gs.space, d.train.C, d.train.H, d.train.W, d.train.num_classes);
  genotype.validate(space, gs.name);
  if (!a.init.empty()) check_init_space(a.init, space, /*ops_matter=*/false);
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
  g = graph::Graph();  // the program holds what running needs; the graph is not kept
  graph::Sgd sgd({.lr = a.lr, .momentum = 0.9f, .weight_decay = a.weight_decay, .nesterov = true});
  for (const auto& n : weight_names) sgd.add_param(params, n);

  // The test evaluation (batch 100, after every epoch) is compiled once and runs in
  // the training step's arena: one arena, the larger of the two.
  TestEvaluator evaluator(space, genotype, 100);
  Arena arena(std::max(step.arena_bytes(), evaluator.arena_bytes()));
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
  MemoryReport memory("train");
  memory.plan(fmt::format("arena (the larger of: training step {}, test evaluation {})",
                          format_bytes(double(step.arena_bytes())), format_bytes(double(evaluator.arena_bytes()))),
              arena.bytes());
  memory.plan_params(params);
  memory.plan("program tables", step.table_bytes() + evaluator.table_bytes());
  memory.data("images", d.train.bytes() + d.test.bytes());
  memory.data("indices and batches", train.bytes() + xb.bytes() + yb.bytes() + evaluator.batch_bytes());
  release_free_heap();  // what compiling freed
  memory.add_bookkeeping();
  memory.print_plan();
  a.out.create();
  // Everything the arithmetic of the run depends on: a checkpoint resumes only a run
  // with the same values (--epochs and --steps may grow).
  const nlohmann::json signature{{"genotype", genotype.to_json()}, {"space", space.to_json()}, {"data", a.data.format},
                                 {"data_path", a.data.path}, {"limit", a.data.limit}, {"batch", a.batch},
                                 {"epochs", a.epochs}, {"steps", per_epoch}, {"lr", a.lr},
                                 {"weight_decay", a.weight_decay}, {"grad_clip", a.grad_clip},
                                 {"crop_padding", a.crop_padding}, {"flip", a.flip}, {"seed", a.seed},
                                 {"init", a.init}};
  const std::string ckpt = a.out.file("checkpoint.safetensors");
  constexpr ParamKindSet kCheckpointKinds{ParamKind::weight, ParamKind::buffer, ParamKind::state};
  RunTime time;  // the training's epochs, the earlier processes' too when resumed
  int64_t t = 0;
  int first_epoch = 0;
  std::string log;
  if (a.resume) {
    LoadParamsOptions lo;
    lo.kinds = kCheckpointKinds;
    LoadParamsReport rep = load_params(ckpt, params, lo);
    const nlohmann::json stored = check_resume_settings(ckpt, rep.metadata["run"], signature, {"epochs", "steps"});
    first_epoch = int(metadata_integer(rep.metadata, "epoch", ckpt, 0, a.epochs));
    log = rep.metadata["log"];
    time.resume(rep.metadata, ckpt);
    // Replay the batches already trained on (epochs of the checkpoint's length): the
    // sampler's draws (order, crops, flips) continue exactly where the run stopped.
    const int64_t done = int64_t(first_epoch) * stored["steps"].get<int64_t>();
    for (; t < done; ++t) train.next(x, y);
    std::fprintf(stderr, "resuming from %s after epoch %d\n", ckpt.c_str(), first_epoch);
  }
  const NetworkInfo info{.space = space, .genotype = genotype, .normalization = d.stats};
  const nlohmann::json outputs{{"model", a.out.file("model.safetensors")},
                               {"genotype", a.out.file("genotype.json")},
                               {"log", a.out.file("train_log.jsonl")},
                               {"checkpoint", ckpt}};
  double train_loss = 0, train_accuracy = 0;
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
    train_loss = loss_sum / double(per_epoch), train_accuracy = acc_sum / double(per_epoch);
    bar.finish(fmt::format("loss {:.4f} acc {:.4f}", train_loss, train_accuracy));
    const Evaluation test = evaluator.run(arena, params, d.test);
    log += nlohmann::json{{"epoch", e + 1}, {"loss", train_loss},
                          {"train_accuracy", train_accuracy}, {"test_accuracy", test.accuracy}}
               .dump() +
           "\n";
    std::map<std::string, std::string> md = network_metadata("discrete network", info);
    md["epoch"] = std::to_string(e + 1);
    save_params(outputs["model"], params, kModelKinds, md);
    std::map<std::string, std::string> ckpt_md{
        {"onnas", "training checkpoint"}, {"run", signature.dump()}, {"epoch", std::to_string(e + 1)}, {"log", log}};
    time.add_to(ckpt_md);
    save_params(ckpt, params, kCheckpointKinds, ckpt_md);
  }
  const nlohmann::json train_time = time.to_json();
  const std::string train_time_text = time.describe();
  const Evaluation test = evaluator.run(arena, params, d.test);
  memory.print_peak();
  save_genotype_file(outputs["genotype"], genotype, space);
  write_file_atomic(outputs["log"], log);
  a.report.result("test accuracy: {:.4f} ({} images; training took {})", test.accuracy, d.test.N, train_time_text);
  a.report.document({{"test_accuracy", test.accuracy},
                     {"test_images", test.images},
                     {"train_loss", train_loss},
                     {"train_accuracy", train_accuracy},
                     {"train_time", train_time},
                     {"seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count()},
                     {"epochs", a.epochs},
                     {"steps", total},
                     {"genotype_darts", genotype.str()},
                     {"space", space.to_json()},
                     {"arena_bytes", arena.bytes()},
                     {"persistent_bytes", params.bytes()},
                     {"memory", memory.to_json()},
                     {"outputs", outputs}});
}

void run_eval(const EvalArgs& a, const CLI::App& cmd) {
  check_out_file(a.predictions, "--out", a.overwrite);
  warn_ignored(cmd, SpaceOptions::kFlags, "the model file holds its space");
  if (a.threads > 0) set_num_threads(a.threads);
  measure_fixed_overhead();
  const ModelFile m = read_model_file(a.model);
  const nas::SearchSpace& space = m.info.space;
  if (!a.genotype.empty()) {
    const GenotypeSource gs = load_genotype_arg(a.genotype);
    const std::string differ = genotype_difference(m.info.genotype, gs.genotype, a.model, gs.name);
    if (!differ.empty()) fail("{} holds the network of another genotype: {}", a.model, differ);
  }
  // The test images alone, normalized as the model's training images were.
  a.data.warn_ignored(cmd);
  const data::Dataset test = load_test_data(a.data, m.info.normalization);
  if (test.C != space.in_channels || test.H != space.height || test.W != space.width)
    fail("{} takes {}x{}x{} images; the test data '{}' has {}x{}x{}", a.model, space.in_channels, space.height,
         space.width, test.source, test.C, test.H, test.W);
  if (test.num_classes > space.classes)
    fail("{} tells {} classes apart; the test data '{}' has {}", a.model, space.classes, test.source, test.num_classes);
  graph::Graph g;
  nas::emit_discrete_net(g, space, m.info.genotype, a.batch, false);
  ParamStore params;
  params.store_weight_gradients(false);  // evaluation only: no gradients
  Rng rng(0);
  nas::init_params(params, g, rng);
  load_params(a.model, params);  // strict: every tensor of the network must be in the file
  g = graph::Graph();
  TestEvaluator evaluator(space, m.info.genotype, a.batch);
  Arena arena(evaluator.arena_bytes());
  MemoryReport memory("eval");
  memory.plan("arena", arena.bytes());
  memory.plan_params(params);
  memory.plan("program tables", evaluator.table_bytes());
  memory.data("images", test.bytes());
  memory.data("batches", evaluator.batch_bytes());
  release_free_heap();  // what compiling freed
  memory.add_bookkeeping();
  memory.print_plan();
  std::string predictions;
  const Evaluation r = evaluator.run(arena, params, test, a.predictions.empty() ? nullptr : &predictions);
  memory.print_peak();
  if (!a.predictions.empty()) {
    write_file_atomic(a.predictions, predictions);
    std::fprintf(stderr, "wrote %s (one JSON line per image: index, label, predicted, logits)\n", a.predictions.c_str());
  }
  a.report.result("test accuracy: {:.4f} ({} images)", r.accuracy, r.images);
  a.report.document({{"accuracy", r.accuracy},
                     {"correct", r.correct},
                     {"images", r.images},
                     {"seconds", r.seconds},
                     {"model", a.model},
                     {"genotype_darts", m.info.genotype.str()},
                     {"space", space.to_json()},
                     {"memory", memory.to_json()},
                     {"outputs", {{"predictions", a.predictions.empty() ? nlohmann::json() : nlohmann::json(a.predictions)}}}});
}

}  // namespace

void add_train_command(CLI::App& app) {
  auto args = std::make_shared<TrainArgs>();
  CLI::App* cmd = app.add_subcommand("train", "Train the discrete network of a genotype and report test accuracy");
  args->data.add(*cmd);
  args->space.add(*cmd, "the genotype file's space, else ");
  cmd->add_option("--genotype", args->genotype,
                  "Genotype: a JSON file (genotype.json of onnas search: its space is the default) or a DARTS string "
                  "\"Genotype(normal=[...], ...)\"")
      ->required();
  cmd->add_option("-b,--batch", args->batch, "Batch size")->check(CLI::Range(1, 4096));
  cmd->add_option("--epochs", args->epochs, "Epochs")->check(CLI::Range(1, 100000));
  cmd->add_option("--steps", args->steps, "Steps per epoch (default 0: a full pass, 937 steps of batch 64 on Fashion-MNIST)")
      ->check(non_negative());
  cmd->add_option("--lr", args->lr, "SGD learning rate (Nesterov momentum 0.9, cosine to 0)");
  cmd->add_option("--weight-decay", args->weight_decay, "Weight decay");
  cmd->add_option("--crop-padding", args->crop_padding, "Random-crop padding (0 = none)")->check(CLI::Range(0, 64));
  add_switch(*cmd, "--flip", args->flip, "Random horizontal flips");
  cmd->add_option("--seed", args->seed, "Random seed");
  cmd->add_option("--threads", args->threads, "Threads (default: all cores)")->check(CLI::Range(1, 1024));
  cmd->add_option("--init", args->init, "Initialize from a safetensors file (e.g. searched weights)");
  cmd->add_flag("--resume", args->resume,
                "Continue from OUT/checkpoint.safetensors (written after every epoch; same settings and seed; --epochs "
                "and --steps may grow)");
  args->out.add(*cmd, "runs/train", "Output folder: model.safetensors, genotype.json, train_log.jsonl, checkpoint");
  args->report.add(*cmd);
  add_check_numerics_flag(*cmd);
  cmd->callback([args, cmd] { run_train(*args, *cmd); });

  auto eargs = std::make_shared<EvalArgs>();
  CLI::App* ecmd = app.add_subcommand("eval", "Evaluate a model file (from onnas train) on a test set, alone");
  ecmd->add_option("--model", eargs->model,
                   "Model safetensors (from onnas train): holds its space, genotype and input normalization")
      ->required();
  eargs->data.add(*ecmd, "Evaluate only the first N test images (0: all)");
  eargs->space.add(*ecmd, "", /*hidden=*/true);
  ecmd->add_option("--genotype", eargs->genotype, "Refuse the model unless it is this genotype's network (a file or a DARTS string)");
  ecmd->add_option("-b,--batch", eargs->batch, "Batch size")->check(CLI::Range(1, 4096));
  ecmd->add_option("--threads", eargs->threads, "Threads (default: all cores)")->check(CLI::Range(1, 1024));
  ecmd->add_option("-o,--out", eargs->predictions, "Write the predictions: one JSON line per image (index, label, predicted, logits)");
  add_overwrite_flag(*ecmd, eargs->overwrite);
  eargs->report.add(*ecmd);
  ecmd->callback([eargs, ecmd] { run_eval(*eargs, *ecmd); });
}

}  // namespace onnas::app
