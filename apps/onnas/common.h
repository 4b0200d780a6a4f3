// What the subcommands of the `onnas` tool share: data, search-space and optimizer
// options (one flag scheme: --lr, --arch-lr, --optimizer, --image-size,
// --in-channels), progress output, size parsing and the output folder.
#pragma once

#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "data/dataset.h"
#include "nas/search.h"
#include "nas/search_space.h"

namespace onnas::app {

// --data-format fashion-mnist|idx|cifar10|folder and --data PATH (a folder; for idx
// the folder holds {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]).
struct DataOptions {
  std::string format = "fashion-mnist";
  std::string path;  // default: Debian's Fashion-MNIST folder
  int64_t limit = 0; // use only the first N training images (0 = all)
  int image_size = 28;  // folder trees are resized to this
  int in_channels = 1;  // and converted to this (1 grey, 3 colour)
  bool stream = false;  // --stream: batches read from the files (fashion-mnist, idx, cifar10)
  // `limit_help` says what --limit counts for this subcommand.
  void add(CLI::App& cmd, const std::string& limit_help = "Use only the first N training images (0: all)");
  // --image-size and --in-channels apply to folder trees only: a warning otherwise.
  void warn_ignored(const CLI::App& cmd) const;
};

// The training images alone (a search needs no test set), normalized with their own
// per-channel statistics: in memory, or streamed from the files when `stream` (the
// set then holds no pixels; --limit still reads its first N images into memory).
std::unique_ptr<data::ImageSet> load_train_images(const DataOptions& o, bool stream);
// Bytes a set's images and labels take in memory (N*C*H*W bytes + N labels), whether
// or not it holds them now.
size_t in_memory_bytes(const data::ImageSet& d);

struct LoadedData {
  data::Dataset train, test;
  data::ChannelStats stats;  // the normalization applied to both (the training images')
};
// Loads train and test, normalizes both with the training set's per-channel statistics.
LoadedData load_data(const DataOptions& o, bool with_test = true);
// The test split alone, normalized with `stats` (a model's own): what a device holds.
// For a class-per-folder tree, the whole tree is the test set. --limit keeps its first
// N images.
data::Dataset load_test_data(const DataOptions& o, const data::ChannelStats& stats);

struct SpaceOptions {
  int channels = 16, cells = 4, nodes = 3;
  std::string reductions = "1,3";
  std::string ops = "fewshot";  // fewshot | darts | a comma-separated list
  // `default_from`: where defaults come from before the built-in ones ("the genotype
  // file's space, else "); `hidden`: parsed but not shown (eval: the model holds its space).
  void add(CLI::App& cmd, const std::string& default_from = "", bool hidden = false);
  // The flags given on the command line (for "ignored" warnings).
  static constexpr std::string_view kFlags[] = {"--channels", "--cells", "--nodes", "--reductions", "--ops"};
  // The space for images of this dataset (its channels, size and classes).
  nas::SearchSpace space(const data::ImageSet& d) const;
  nas::SearchSpace space(int64_t in_channels, int64_t height, int64_t width, int classes) const;
  // The same with each flag not given on `cmd` taken from `from` (a genotype file's space).
  nas::SearchSpace space_with(const CLI::App& cmd, const std::optional<nas::SearchSpace>& from, int64_t in_channels,
                              int64_t height, int64_t width, int classes) const;
};

// The memory mode of a search step: --mode, --sbs, --k-grad, --split, and
// --memory-budget (which chooses mode, variant and split itself).
struct StepOptions {
  std::string mode = "full", sbs = "recompute", memory_budget;
  // split 0: the on-device default (adapt, eval-fewshot): K micro-batches for K shots,
  // each one image of every class (1 for 1-shot).
  int k_grad = 2, split = 1;
  void add(CLI::App& cmd);
  // Sets options.step from the flags (and checks it).
  void apply(const nas::SearchSpace& space, nas::SearchOptions& options) const;
  // Warns about the flags the chosen way of running ignores (--sbs without sbs, ...).
  void warn_ignored(const CLI::App& cmd) const;
  bool has_budget() const { return !memory_budget.empty(); }
  size_t budget_bytes() const;
  // With --memory-budget: chooses the step (nas::choose_step_config) for what is left
  // of the budget after `reserved` bytes (the data and what else the run holds), printing the choice
  // and why on stderr. Throws onnas::Error naming the budget, the reserved bytes and
  // the smallest step when nothing fits.
  // `shared_arena` (of `reserved`): an arena the step may run in (nas::choose_step_config).
  // Returns the bytes the chosen step adds beside `reserved`.
  size_t choose(const nas::SearchSpace& space, nas::SearchOptions& options, uint64_t seed, size_t reserved,
                const std::string& reserved_for, size_t shared_arena = 0) const;
};

// --optimizer {adam,sgd} and --momentum M (sgd; 0 keeps no optimizer state at all).
void add_weight_optimizer_options(CLI::App& cmd, std::string& optimizer, float& momentum);

// The optimizers of a search step, the same flags wherever one runs (search,
// meta-train's inner loop, adapt): --optimizer, --lr (weights), --arch-lr (alpha, beta).
// lr 0: the subcommand's default.
// What --optimizer takes, for its help ("Weight optimizer: " + this), and its check.
inline constexpr std::string_view kWeightOptimizerChoices =
    "adam (betas 0, 0.999), adam-bf16 (the same, its second moment kept in bf16: half the state), "
    "adam-factored (its second moment factored into row and column averages as Adafactor's, updates clipped "
    "to RMS 1: a few percent of the state) or sgd";
CLI::Validator weight_optimizer_names();

struct SearchOptimizerOptions {
  std::string optimizer = "adam";
  float lr = 0, arch_lr = 3e-4f;
  // --weight-decay: L2 on the weights, added to their gradient (as PyTorch's Adam and
  // SGD do); negative: not given (the subcommand's default).
  float weight_decay = -1;
  float weight_decay_or(float fallback) const { return weight_decay >= 0 ? weight_decay : fallback; }
  // `lr_help` says what the default is here.
  void add(CLI::App& cmd, const std::string& lr_help, const std::string& optimizer_help,
           const std::string& weight_decay_help = "L2 weight decay of the weights, added to their gradients (default 3e-4)",
           const std::string& arch_lr_help = "Architecture (alpha, beta) learning rate (Adam, betas 0.5, 0.999)");
};

// Bytes from "123", "64KiB", "1.5 MiB", "2GiB", "10MB" (MB = 10^6). Throws onnas::Error.
size_t parse_bytes(const std::string& text);
// Integers from "1,3" (spaces and empty items skipped); an item that is not a whole
// integer throws onnas::Error "WHAT: 'ITEM' is not NOUN".
std::vector<int> parse_int_list(std::string_view text, std::string_view what, std::string_view noun);
std::string format_bytes(double bytes);

// A one-line progress bar on stderr with the rate and the time left, redrawn in place
// on a terminal and printed as one line every 10% otherwise (logs stay readable; a pass
// of less than 2 s prints only its finish line).
// `first`: work already done when the bar starts (a resumed run), left out of the rate.
//   Progress bar("epoch 1/3", 937, "steps");
//   bar.update(s + 1, "loss 0.61");   // "epoch 1/3 [###.....] 120/937 loss 0.61 | 2.4 steps/s, 14s, ETA 5m40s"
class Progress {
 public:
  Progress(std::string label, int64_t total, std::string unit = "steps", int64_t first = 0);
  void update(int64_t done, const std::string& status);
  void finish(const std::string& status);

 private:
  std::string label_, unit_;
  int64_t total_, first_;
  bool tty_;
  int last_decile_ = -1;
  std::chrono::steady_clock::time_point start_;
};
// "45s", "5m40s", "2h05m".
std::string format_duration(double seconds);

// --check-numerics: every program run checks its values and names the first op that
// produced a NaN or an infinity (graph::set_check_numerics).
void add_check_numerics_flag(CLI::App& cmd);

// Creates the folder (and parents); throws onnas::Error naming it on failure.
void make_dir(const std::string& path);
// make_dir, then locks the folder for this process (flock on OUT/.onnas.lock, held
// until exit): a second run on the same --out is refused naming the first one's pid,
// instead of two runs interleaving their checkpoints.
void make_out_dir(const std::string& path);

// Test hooks for tests/cli/kill_resume.sh, read from the environment by main():
// ONNAS_TEST_KILL_AT_STEP=k makes the process SIGKILL itself when a run reaches step k
// (search and train steps, meta steps; counted from 0 over the whole run), and
// ONNAS_TEST_KILL_BEFORE_RENAME=n at its n-th atomic write (from 1), after the
// temporary is written and synced, before the rename. A kill at a moment the test
// chooses, mid-run by construction, instead of one at a random time that may land
// after the run has ended.
void install_test_kill_points();
void test_kill_point(int64_t step);

// The subcommands.
void add_search_command(CLI::App& app);
void add_train_command(CLI::App& app);
void add_plan_command(CLI::App& app);
void add_inspect_command(CLI::App& app);
void add_meta_commands(CLI::App& app);  // meta-train, adapt, eval-fewshot
void add_export_command(CLI::App& app);
void add_report_command(CLI::App& app);

}  // namespace onnas::app
