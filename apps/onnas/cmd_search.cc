// `onnas search`: the supernet search (first-order DARTS) on a data set; writes the
// genotype, the searched weights and alpha/beta, and a log.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>

#include "apps/onnas/cli.h"
#include "apps/onnas/common.h"
#include "apps/onnas/line_log.h"
#include "apps/onnas/memory_report.h"
#include "apps/onnas/model_file.h"
#include "apps/onnas/output.h"
#include "apps/onnas/run_time.h"
#include "data/batch_sampler.h"
#include "nas/arch_report.h"
#include "nas/genotype.h"
#include "nas/meta_train.h"
#include "nas/search.h"
#include "runtime/error.h"
#include "runtime/heap.h"
#include "runtime/serialize/atomic_file.h"
#include "runtime/serialize/safetensors.h"
#include "runtime/threading.h"

namespace onnas::app {
namespace {

struct SearchArgs {
  DataOptions data;
  SpaceOptions space;
  StepOptions step;
  int64_t batch = 32;
  int epochs = 1;
  int64_t steps = 0;  // per epoch; 0 = a full pass over the training half
  double val_fraction = 0.5;
  uint64_t seed = 1;
  int threads = 0;
  // --optimizer, --lr (0: 3e-3 adam, 0.025 sgd), --arch-lr: 100x DARTS's 3e-4, which with the
  // annealed temperature below ends a search decided (README, "Deciding the search").
  SearchOptimizerOptions opt{.optimizer = "adam", .lr = 0, .arch_lr = 3e-2f};
  float momentum = 0.9f;  // sgd
  OutDir out;
  Output report{"search"};
  std::string init, dump_grads;
  bool profile = false;
  int64_t checkpoint_every = 50;  // steps
  int64_t arch_log_every = 25;    // steps between softmax(alpha)/beta records in the log
  // Softmax temperature of alpha/beta: T, or START END annealed geometrically over the
  // run (nas::Searcher::set_temperature); {1}: off. MetaNAS's 1 -> 0.1 by default: the
  // mixture sharpens toward the genotype the search will keep.
  std::vector<float> temperature{1.0f, 0.1f};
  // "cosine": to 0 by the last step, so the choices settle (README, "Deciding the
  // search"); "constant": DARTS's.
  std::string arch_lr_schedule = "cosine";
  bool resume = false;
};

// Feeds the arch records of a resumed run's log (cut back to its checkpoint) to `history`,
// a line at a time.
void replay_arch_records(const std::string& path, nas::ChoiceHistory& history) {
  std::ifstream in(path);
  if (!in) fail("cannot read {} to resume", path);
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (line.find("\"arch\"") == std::string::npos) continue;
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.contains("step") || !j["step"].is_number_integer() || !j.contains("arch"))
      fail("{} line {} is not a search record", path, n);
    history.observe(j["arch"], j["step"].get<int64_t>());
  }
}

// Copies the gradients of `names` as "<name>@grad" tensors for --dump-grads.
void collect_grads(const ParamStore& params, const std::vector<std::string>& names, std::vector<Buffer>& memory,
                   std::vector<NamedTensor>& out) {
  for (const std::string& n : names) {
    Tensor g = params.grad(n);
    memory.emplace_back(g.bytes());  // zero-filled: a gradient without storage is zero
    if (!g.empty()) std::memcpy(memory.back().data(), g.data(), g.bytes());
    out.push_back({n + "@grad", Tensor(memory.back().data(), g.shape(), g.dtype())});
  }
}

void run_search(const SearchArgs& a, const CLI::App& cmd) {
  // Every output path is checked before any work.
  a.out.check(a.resume, "checkpoint.safetensors");
  check_out_file(a.dump_grads, "--dump-grads", a.out.overwrite);
  a.step.warn_ignored(cmd);
  a.data.warn_ignored(cmd);
  if (a.opt.optimizer != "sgd")
    warn_ignored(cmd, {"--momentum"}, fmt::format("--optimizer {} keeps no momentum", a.opt.optimizer));
  const auto started = std::chrono::steady_clock::now();
  if (a.threads > 0) set_num_threads(a.threads);
  measure_fixed_overhead();
  // With a budget, the images are opened streamed first: their header says what they
  // would take in memory, and they are read in only if that fits beside the step.
  const bool budget = a.step.has_budget();
  std::unique_ptr<data::ImageSet> images = load_train_images(a.data, a.data.stream || budget);
  const data::ImageSet* train_set = images.get();
  nas::SearchSpace space = a.space.space(*train_set);
  data::TrainValSplit split = data::split_train_val(*train_set, a.val_fraction, a.seed);
  if (int64_t(split.train.size()) < a.batch || int64_t(split.val.size()) < a.batch)
    fail("search needs at least one batch of {} in each half of the training set (have {} and {} images)", a.batch,
         split.train.size(), split.val.size());

  nas::SearchOptions so;
  so.batch = a.batch;
  so.w_optimizer = nas::parse_weight_optimizer(a.opt.optimizer);
  so.w_lr = a.opt.lr > 0 ? a.opt.lr : (a.opt.optimizer == "sgd" ? 0.025f : 3e-3f);
  so.w_momentum = a.momentum;
  so.w_weight_decay = a.opt.weight_decay_or(so.w_weight_decay);
  so.a_lr = a.opt.arch_lr;
  so.a_lr_cosine = a.arch_lr_schedule == "cosine";
  a.step.apply(space, so);
  if (!a.init.empty()) check_init_space(a.init, space, /*ops_matter=*/true);
  if (budget) {
    // The budget bounds what the run holds (plan + data); the fixed overhead of the
    // process (code, libraries, thread stacks) comes on top, measured and printed.
    // Indices of both halves, held by the split and by each sampler; four batches.
    // And what a set-up holds beyond the step's plan (bookkeeping), measured once set up.
    const size_t batches = 2 * (split.train.size() + split.val.size()) * sizeof(int64_t) +
                           size_t(4 * a.batch) * size_t(train_set->image_elems() + 1) * 4 + kSetUpReserveBytes;
    const size_t in_memory = images->bytes() + (a.data.stream ? 0 : in_memory_bytes(*images));
    bool fits_in_memory = !a.data.stream;
    if (fits_in_memory) {
      try {
        a.step.choose(space, so, a.seed, batches + in_memory, "the images in memory, batches and the bookkeeping's reserve");
      } catch (const Error& e) {
        std::fprintf(stderr, "%s\n  so the images (%s) stay in their file and batches are read from it\n", e.what(),
                     format_bytes(double(in_memory_bytes(*images))).c_str());
        fits_in_memory = false;
      }
    }
    if (!fits_in_memory)
      a.step.choose(space, so, a.seed, batches + images->bytes(), "the streamed images, batches and the bookkeeping's reserve");
    if (fits_in_memory && !a.data.stream) {
      std::vector<int64_t> all(size_t(images->N));
      for (int64_t i = 0; i < images->N; ++i) all[size_t(i)] = i;
      images = std::make_unique<data::Dataset>(data::subset(*images, all));
      train_set = images.get();
    }
    release_free_heap();  // what choosing compiled is gone
  }
  ParamStore params;
  nas::Searcher searcher(space, so, params, a.seed);
  if (!a.init.empty()) load_params(a.init, params);  // strict: every weight, alpha and beta
  a.out.create();

  std::vector<Buffer> dump_memory;
  std::vector<NamedTensor> dumped;
  int dumped_steps = 0;
  if (!a.dump_grads.empty()) {
    searcher.set_gradient_hook([&](const ParamStore& ps, bool arch) {
      if (dumped_steps >= 2) return;
      collect_grads(ps, arch ? searcher.arch_names() : searcher.weight_names(), dump_memory, dumped);
      if (++dumped_steps == 2) {
        write_safetensors(a.dump_grads, dumped, {{"what", "gradients of the first search step: arch step (alpha, beta) "
                                                            "on the validation batch, weight step on the training batch"}});
        std::fprintf(stderr, "wrote the first step's gradients to %s\n", a.dump_grads.c_str());
      }
    });
  }

  data::BatchSampler train(*train_set, split.train, {.batch_size = a.batch, .drop_last = true}, a.seed * 2 + 1);
  data::BatchSampler val(*train_set, split.val, {.batch_size = a.batch, .drop_last = true}, a.seed * 2 + 2);
  const Shape xs{a.batch, space.in_channels, space.height, space.width};
  Buffer xb(size_t(xs.numel()) * 4), yb(size_t(a.batch) * 4), vxb(size_t(xs.numel()) * 4), vyb(size_t(a.batch) * 4);
  Tensor x(xb.data(), xs), y(yb.data(), Shape{a.batch}, DType::i32);
  Tensor vx(vxb.data(), xs), vy(vyb.data(), Shape{a.batch}, DType::i32);

  const int64_t per_epoch = a.steps > 0 ? std::min(a.steps, train.batches_per_epoch()) : train.batches_per_epoch();
  const int64_t total = per_epoch * a.epochs;
  graph::Profile profile;
  if (a.profile) searcher.set_profile(&profile);
  searcher.set_progress(0, total);
  const nas::TemperatureSchedule temperature{.start = a.temperature[0],
                                             .end = a.temperature.size() > 1 ? a.temperature[1] : a.temperature[0],
                                             .steps = std::max<int64_t>(1, total - 1)};
  std::fprintf(stderr, "search: %s, batch %lld, %lld steps, mode %s, %d threads\n", space.describe().c_str(),
               (long long)a.batch, (long long)total, so.step.describe().c_str(), num_threads());
  if (temperature.annealed())
    std::fprintf(stderr, "  alpha/beta at temperature %g, then %g by the last step, geometrically (files keep alpha / T)\n",
                 double(temperature.start), double(temperature.end));
  if (so.a_lr_cosine)
    std::fprintf(stderr, "  architecture step at %g, cosine to 0 by the last step\n", double(so.a_lr));
  MemoryReport memory("search");
  memory.plan(searcher.handed_bytes() ? fmt::format("arena (of which handed between SBS phases {})",
                                                    format_bytes(double(searcher.handed_bytes())))
                                      : std::string("arena"),
              searcher.arena_bytes());
  memory.plan_params(params);
  if (searcher.grad_bytes()) memory.plan("gradient block", searcher.grad_bytes());
  memory.plan("program tables", searcher.compiled().table_bytes());
  memory.data(train_set->N > 0 && train_set->bytes() < in_memory_bytes(*train_set) ? "images (streamed)" : "images",
              train_set->bytes());
  memory.data("indices", (split.train.capacity() + split.val.capacity()) * sizeof(int64_t) + train.bytes() + val.bytes());
  memory.data("batches", xb.bytes() + yb.bytes() + vxb.bytes() + vyb.bytes());
  const size_t bookkeeping = memory.add_bookkeeping();
  memory.print_plan();
  if (budget && memory.plan_bytes() + memory.data_bytes() > a.step.budget_bytes())
    std::fprintf(stderr,
                 "onnas: warning: with the bookkeeping measured once set up (%s), the run holds %s, more than "
                 "--memory-budget %s: the step was chosen without it\n",
                 format_bytes(double(bookkeeping)).c_str(),
                 format_bytes(double(memory.plan_bytes() + memory.data_bytes())).c_str(),
                 format_bytes(double(a.step.budget_bytes())).c_str());
  // Everything the arithmetic of the run depends on: a checkpoint resumes only a run
  // with the same values.
  nlohmann::json signature_json =
      nlohmann::json{{"space", space.to_json()}, {"data", a.data.format}, {"data_path", a.data.path},
                     {"limit", a.data.limit}, {"batch", a.batch}, {"epochs", a.epochs}, {"steps", per_epoch},
                     {"val_fraction", a.val_fraction}, {"seed", a.seed}, {"optimizer", a.opt.optimizer},
                     {"w_lr", so.w_lr}, {"a_lr", so.a_lr}, {"mode", so.step.describe()}, {"init", a.init}};
  // Only a non-default momentum is recorded, so checkpoints from before --momentum resume.
  if (a.opt.optimizer == "sgd" && a.momentum != 0.9f) signature_json["momentum"] = a.momentum;
  // Likewise a non-default weight decay.
  if (so.w_weight_decay != nas::SearchOptions{}.w_weight_decay) signature_json["w_weight_decay"] = so.w_weight_decay;
  // And an annealed temperature.
  if (temperature.annealed()) signature_json["temperature"] = {temperature.start, temperature.end};
  if (so.a_lr_cosine) signature_json["a_lr_schedule"] = a.arch_lr_schedule;  // recorded when not DARTS's constant
  const std::string signature = signature_json.dump();
  const std::string ckpt = a.out.file("checkpoint.safetensors");
  LineLog log(a.out.file("search_log.jsonl"));  // on disk as it goes, cut back on --resume
  nas::ChoiceHistory history(space);             // when each edge's argmax last changed
  int64_t step = 0;
  RunTime time;  // the steps, the earlier processes' too when resumed
  if (!a.resume) log.start();
  if (a.resume) {
    // A run may be extended: more --epochs or --steps continue it (the learning-rate
    // schedule then follows the new length). The settings are compared before the
    // tensors, so a changed one is named rather than the tensor it changes (another
    // --optimizer).
    auto md = searcher.load_checkpoint(ckpt, [&](const std::map<std::string, std::string>& metadata) {
      const auto run = metadata.find("run");
      check_resume_settings(ckpt, run == metadata.end() ? std::string() : run->second, signature_json,
                            {"epochs", "steps"});
    });
    const int64_t done = metadata_integer(md, "step", ckpt, 0, total);
    if (md.count("log_bytes"))
      log.resume(uint64_t(metadata_integer(md, "log_bytes", ckpt, 0, INT64_MAX)));
    else
      log.resume_from(md["log"]);  // a checkpoint from before 2026-12-03 held the log itself
    replay_arch_records(log.path(), history);
    time.resume(md, ckpt);
    // Replay the batches already used, so the samplers continue where they stopped.
    for (; step < done; ++step) {
      train.next(x, y);
      val.next(vx, vy);
    }
    std::fprintf(stderr, "resuming from %s after step %lld\n", ckpt.c_str(), (long long)done);
  }
  double last_loss = 0, last_accuracy = 0;
  for (int e = int(step / per_epoch); e < a.epochs; ++e) {
    const int64_t first = step - int64_t(e) * per_epoch;
    Progress bar(fmt::format("epoch {}/{}", e + 1, a.epochs), per_epoch, "steps", first);
    double loss_sum = 0, acc_sum = 0, ms_sum = 0;
    for (int64_t s = first; s < per_epoch; ++s, ++step) {
      test_kill_point(step);
      train.next(x, y);
      val.next(vx, vy);
      searcher.set_progress(step, total);
      if (temperature.annealed()) searcher.set_temperature(temperature.at(step, 0));
      auto t0 = std::chrono::steady_clock::now();
      nas::StepResult r = searcher.step(x, y, vx, vy);
      double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      if (!std::isfinite(r.weight_loss) || !std::isfinite(r.arch_loss))
        fail("search step {} (epoch {}) produced a non-finite loss (weight {}, arch {}); stopping", step, e + 1,
             r.weight_loss, r.arch_loss);
      loss_sum += r.weight_loss;
      acc_sum += r.weight_accuracy;
      ms_sum += ms;
      nlohmann::json record{{"step", step}, {"epoch", e}, {"loss", r.weight_loss}, {"arch_loss", r.arch_loss},
                            {"accuracy", r.weight_accuracy}, {"ms", ms}};
      if (a.arch_log_every > 0 && ((step + 1) % a.arch_log_every == 0 || step + 1 == total))
        history.observe(record["arch"] = nas::arch_snapshot(space, params), step);
      log.add(record.dump());
      const double n = double(s + 1 - first);
      bar.update(s + 1, fmt::format("loss {:.3f} acc {:.3f} {:.0f} ms/step arena {}", loss_sum / n, acc_sum / n,
                                    ms_sum / n, format_bytes(double(searcher.arena_bytes()))));
      if ((a.checkpoint_every > 0 && (step + 1) % a.checkpoint_every == 0) || s + 1 == per_epoch) {
        std::map<std::string, std::string> md{{"onnas", "search checkpoint"},
                                              {"run", signature},
                                              {"step", std::to_string(step + 1)},
                                              {"log_bytes", std::to_string(log.flush())}};
        time.add_to(md);
        searcher.save_checkpoint(ckpt, md);
      }
    }
    const double n = double(std::max<int64_t>(1, per_epoch - first));
    last_loss = loss_sum / n, last_accuracy = acc_sum / n;
    bar.finish(fmt::format("loss {:.3f} acc {:.3f} {:.0f} ms/step", loss_sum / n, acc_sum / n, ms_sum / n));
    std::fprintf(stderr, "genotype after epoch %d: %s\n", e + 1, nas::derive_genotype(space, params).str().c_str());
  }

  if (a.profile)
    std::fprintf(stderr, "time per op over %lld steps (both passes):\n%s", (long long)total, profile.table().c_str());
  nas::Genotype g = nas::derive_genotype(space, params);
  const nlohmann::json search_time = time.to_json();
  std::fprintf(stderr, "%lld steps took %s\n", (long long)total, time.describe().c_str());
  std::fprintf(stderr, "what the search decided (softmax of alpha per kept edge, of beta per node):\n%s",
               nas::decision_table(space, params).c_str());
  const std::string undecided = nas::undecided_warning(
      space, params,
      temperature.annealed() ? "search longer (--steps) or raise --arch-lr"
                             : "search longer (--steps), raise --arch-lr, or anneal alpha (--temperature 1 0.1)");
  if (!undecided.empty()) std::fprintf(stderr, "onnas: warning: %s\n", undecided.c_str());
  // How settled the choices are: the kept edges whose op became their argmax in the
  // last quarter of the run (said when records before it exist). A peaked softmax whose
  // argmax still moves gets its own warning (an undecided one moves anyway).
  nlohmann::json settled;
  if (const int64_t late_from = total - total / 4; history.first_step() >= 0 && history.first_step() < late_from) {
    const nas::Settling st = nas::settling(space, params, history, late_from);
    settled = {{"kept_edges", st.kept}, {"changed_from_step", late_from}, {"changed_late", st.changed_late}};
    std::fprintf(stderr,
                 "%d of %d kept edges have had their op since before step %lld (the last quarter), %d got it later\n",
                 st.kept - st.changed_late, st.kept, (long long)late_from, st.changed_late);
    if (undecided.empty() && double(st.changed_late) >= nas::kUnsettledFrom * double(st.kept))
      std::fprintf(stderr,
                   "onnas: warning: alpha is unsettled: the op of %d of the %d kept edges changed in the last quarter "
                   "of the run, so it is the noise of the last batches as much as a decision; lower --arch-lr "
                   "(now %g) or search longer (--steps)\n",
                   st.changed_late, st.kept, double(a.opt.arch_lr));
  } else if (undecided.empty()) {
    // A decided softmax of unknown history: say that it is not counted, and why.
    std::fprintf(stderr,
                 "how settled the choices are is not counted: no arch record before step %lld (the last quarter); "
                 "--arch-log-every N writes one every N steps\n",
                 (long long)late_from);
  }
  const nlohmann::json outputs{{"genotype", a.out.file("genotype.json")},
                               {"supernet", a.out.file("supernet.safetensors")},
                               {"log", a.out.file("search_log.jsonl")},
                               {"checkpoint", ckpt}};
  save_genotype_file(outputs["genotype"], g, space);
  auto supernet_metadata =
      network_metadata("search supernet", {.space = space, .genotype = g, .normalization = train_set->normalization()});
  if (searcher.temperature() != 1.0f)
    supernet_metadata["alpha_temperature"] = fmt::format("{}", searcher.temperature());  // its logits are alpha / T
  save_params(outputs["supernet"], params, kModelKinds, supernet_metadata);
  log.flush();
  a.report.result("{}", g.str());
  std::fprintf(stderr, "wrote %s, %s, %s\n", outputs["genotype"].get<std::string>().c_str(),
               outputs["supernet"].get<std::string>().c_str(), outputs["log"].get<std::string>().c_str());
  memory.print_peak();
  a.report.document({{"genotype", g.to_json()},
                     {"genotype_darts", g.str()},
                     {"space", space.to_json()},
                     {"memory", memory.to_json()},
                     {"arena_bytes", searcher.arena_bytes()},
                     {"handed_bytes", searcher.handed_bytes()},
                     {"persistent_bytes", params.bytes()},
                     {"mode", so.step.describe()},
                     {"steps", total},
                     {"temperature", searcher.temperature()},
                     {"settled", settled},
                     {"final", {{"loss", last_loss}, {"accuracy", last_accuracy}}},
                     {"search_time", search_time},
                     {"seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count()},
                     {"outputs", outputs}});
}

}  // namespace

void add_search_command(CLI::App& app) {
  auto args = std::make_shared<SearchArgs>();
  CLI::App* cmd = app.add_subcommand("search", "Search an architecture (first-order DARTS supernet)");
  args->data.add(*cmd);
  args->space.add(*cmd);
  args->step.add(*cmd);
  cmd->add_option("-b,--batch", args->batch, "Batch size")->check(CLI::Range(1, 4096));
  cmd->add_option("--epochs", args->epochs, "Epochs over the training half")->check(CLI::Range(1, 100000));
  cmd->add_option("--steps", args->steps,
                  "Steps per epoch (default 0: a full pass over the training half, 937 steps of batch 32 on "
                  "Fashion-MNIST)")
      ->check(non_negative());
  cmd->add_option("--val-fraction", args->val_fraction, "Part of the training set used for the architecture step")
      ->check(CLI::Range(0.01, 0.99));
  cmd->add_option("--seed", args->seed, "Random seed");
  cmd->add_option("--threads", args->threads, "Threads (default: all cores)")->check(CLI::Range(1, 1024));
  args->opt.add(*cmd, "Weight learning rate, cosine schedule (default: 3e-3 adam, 0.025 sgd)",
                fmt::format("Weight optimizer: {}", kWeightOptimizerChoices),
                "L2 weight decay of the weights, added to their gradients (default 3e-4)",
                "Architecture (alpha, beta) learning rate (Adam, betas 0.5, 0.999; default 3e-2, DARTS's is 3e-4)");
  cmd->add_option("--momentum", args->momentum, "SGD momentum (0: no optimizer state is kept)")->check(CLI::Range(0.0, 0.999));
  cmd->add_option("--temperature", args->temperature,
                  "Softmax temperature of alpha/beta: T, or START END annealed geometrically over the run (default "
                  "MetaNAS's 1 0.1: the mixture sharpens toward the genotype as the search ends; 1: off); files keep "
                  "alpha / T")
      ->expected(1, 2)
      ->check(CLI::PositiveNumber);
  cmd->add_option("--arch-lr-schedule", args->arch_lr_schedule,
                  "The architecture step's rate over the run: cosine (default: to 0 by the last step, so that the "
                  "choices settle) or constant (DARTS)")
      ->check(CLI::IsMember({"constant", "cosine"}));
  add_renamed(*cmd, "--w-lr", "--lr", args->opt.lr);
  add_renamed(*cmd, "--a-lr", "--arch-lr", args->opt.arch_lr);
  args->out.add(*cmd, "runs/search", "Output folder: genotype.json, supernet.safetensors, search_log.jsonl, checkpoint");
  cmd->add_option("--init", args->init, "Load parameters (weights, alpha, beta) from a safetensors file");
  cmd->add_option("--dump-grads", args->dump_grads, "Write the first step's gradients to a safetensors file");
  args->report.add(*cmd);
  cmd->add_flag("--profile", args->profile, "Time every op and print the ops by time at the end");
  add_check_numerics_flag(*cmd);
  cmd->add_option("--checkpoint-every", args->checkpoint_every,
                  "Write OUT/checkpoint.safetensors every N steps and at each epoch's end (0: epochs only)")
      ->check(non_negative());
  cmd->add_option("--arch-log-every", args->arch_log_every,
                  "Record softmax(alpha) and softmax(beta) in search_log.jsonl every N steps (0: never)")
      ->check(non_negative());
  cmd->add_flag("--resume", args->resume,
                "Continue from OUT/checkpoint.safetensors (same settings and seed; --epochs and --steps may grow)");
  cmd->callback([args, cmd] { run_search(*args, *cmd); });
}

}  // namespace onnas::app
