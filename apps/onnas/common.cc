#include "apps/onnas/common.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include <fmt/ranges.h>

#include "apps/onnas/cli.h"
#include "data/cifar.h"
#include "data/fashion_mnist.h"
#include "data/idx.h"
#include "data/image_folder.h"
#include "data/streaming.h"
#include "graph/compile.h"
#include "nas/memory_budget.h"
#include "nas/space_limits.h"
#include "runtime/error.h"
#include "runtime/serialize/atomic_file.h"

namespace onnas::app {

void StepOptions::add(CLI::App& cmd) {
  cmd.add_option("--mode", mode, "Memory mode: full, ops, ops+pairs, ops+pairs+sbs (ONNAS.md sections 4-6)")
      ->check(CLI::IsMember({"full", "ops", "ops+pairs", "ops+pairs+sbs"}));
  cmd.add_option("--sbs", sbs, "Step-by-step back-propagation variant: recompute or checkpoint")
      ->check(CLI::IsMember({"recompute", "checkpoint"}));
  cmd.add_option("--k-grad", k_grad, "Gradient ops per edge in the sampled modes")->check(CLI::Range(1, 64));
  CLI::Option* o = cmd.add_option("--split", split, "Micro-batches per batch (gradients accumulated)")
                       ->check(CLI::Range(1, 4096));
  if (split == 0) o->default_str("the shots K: micro-batches of one image per class (1 for 1-shot)");
  cmd.add_option("--memory-budget", memory_budget,
                 "A bound on what the run holds, its plan and its data (e.g. 64MiB): chooses the fastest mode that fits, "
                 "streams the images when they do not fit beside it, and refuses what cannot fit; the process's "
                 "fixed overhead (code, libraries, thread stacks: measured, printed) comes on top. Overrides --mode, "
                 "--sbs, --split");
}

namespace {

void warn_single_image_micro_batches(const nas::SearchOptions& options) {
  if (options.step.one_image_micro_batches(options.batch))
    std::fprintf(stderr,
                 "onnas: warning: split %d of a batch of %lld: micro-batches of one image, which batch norm normalizes "
                 "by themselves (after the global pooling every image looks alike); choose a split that leaves at "
                 "least 2 images per micro-batch\n",
                 options.step.split, (long long)options.batch);
}

}  // namespace

void StepOptions::apply(const nas::SearchSpace& space, nas::SearchOptions& options) const {
  // The on-device default: micro-batches of one image of every class (the support set
  // is laid out shot-major when split, nas::search_on_support), so K of them for K shots;
  // one batch for 1-shot (micro-batches of one image would defeat batch norm).
  const int64_t per_class = space.classes > 0 && options.batch % space.classes == 0 ? options.batch / space.classes : 1;
  const int chunks = split > 0 ? split : int(std::max<int64_t>(1, per_class));
  options.step = {.mode = nas::mode_from_name(mode), .sbs = nas::sbs_variant_from_name(sbs), .k_grad = k_grad,
                  .split = chunks};
  nas::check_supernet_space(space);
  options.step.validate(space, options.batch);
  if (has_budget()) budget_bytes();  // a budget that is not a size is refused before any work
  warn_single_image_micro_batches(options);
}

size_t StepOptions::budget_bytes() const { return memory_budget.empty() ? 0 : parse_bytes(memory_budget); }

size_t StepOptions::choose(const nas::SearchSpace& space, nas::SearchOptions& options, uint64_t seed, size_t reserved,
                           const std::string& reserved_for, size_t shared_arena) const {
  const size_t budget = budget_bytes();
  if (reserved >= budget)
    fail("--memory-budget {}: {} already take {}, nothing is left for the search step", format_bytes(double(budget)),
         reserved_for, format_bytes(double(reserved)));
  nas::BudgetChoice c;
  try {
    c = nas::choose_step_config(space, options, budget - reserved, seed, shared_arena);
  } catch (const Error& e) {
    fail("--memory-budget {} leaves {} for the search step after {} ({}); {}", format_bytes(double(budget)),
         format_bytes(double(budget - reserved)), reserved_for, format_bytes(double(reserved)), e.what());
  }
  options.step = c.chosen.config;
  std::fprintf(stderr, "memory budget %s, of which %s for %s: chose %s\n  %s\n", format_bytes(double(budget)).c_str(),
               format_bytes(double(reserved)).c_str(), reserved_for.c_str(), options.step.describe().c_str(),
               c.why.c_str());
  warn_single_image_micro_batches(options);
  return c.chosen.bytes_beside(shared_arena);
}


void StepOptions::warn_ignored(const CLI::App& cmd) const {
  if (!memory_budget.empty()) {
    app::warn_ignored(cmd, {"--mode", "--sbs", "--split"}, "--memory-budget chooses the mode, variant and split");
    return;
  }
  if (mode != "ops+pairs+sbs") app::warn_ignored(cmd, {"--sbs"}, fmt::format("--mode {} runs no step-by-step back-propagation", mode));
  if (mode == "full") app::warn_ignored(cmd, {"--k-grad"}, "--mode full gives every op gradients");
}

CLI::Validator weight_optimizer_names() {
  return CLI::IsMember(std::vector<std::string>(std::begin(nas::kWeightOptimizerNames), std::end(nas::kWeightOptimizerNames)));
}

void add_weight_optimizer_options(CLI::App& cmd, std::string& optimizer, float& momentum) {
  cmd.add_option("--optimizer", optimizer, fmt::format("Weight optimizer: {}", kWeightOptimizerChoices))
      ->check(weight_optimizer_names());
  cmd.add_option("--momentum", momentum, "SGD momentum (0: no optimizer state is kept)")->check(CLI::Range(0.0, 0.999));
}

void SearchOptimizerOptions::add(CLI::App& cmd, const std::string& lr_help, const std::string& optimizer_help,
                                 const std::string& weight_decay_help, const std::string& arch_lr_help) {
  cmd.add_option("--optimizer", optimizer, optimizer_help)->check(weight_optimizer_names());
  cmd.add_option("--lr", lr, lr_help)->check(non_negative());
  cmd.add_option("--weight-decay", weight_decay, weight_decay_help)->check(CLI::Range(0.0, 1.0));
  cmd.add_option("--arch-lr", arch_lr, arch_lr_help)->check(positive());
}

void DataOptions::add(CLI::App& cmd, const std::string& limit_help) {
  cmd.add_option("--data-format", format, "fashion-mnist, idx (MNIST-style folder), cifar10 or folder (class-per-folder tree)")
      ->check(CLI::IsMember({"fashion-mnist", "idx", "cifar10", "folder"}));
  cmd.add_option("--data", path, "Data folder (default: /usr/share/datasets/fashion-mnist)");
  cmd.add_option("--limit", limit, limit_help)->check(non_negative());
  cmd.add_option("--image-size", image_size, "folder: side images are resized to")->check(CLI::Range(4, 1024));
  cmd.add_option("--in-channels", in_channels, "folder: 1 (grey) or 3 (colour)")->check(CLI::IsMember({1, 3}));
  cmd.add_flag("--stream", stream,
               "Read each batch from the data files instead of holding the images in memory (fashion-mnist, idx, "
               "cifar10; chosen by --memory-budget when the images do not fit)");
}

void DataOptions::warn_ignored(const CLI::App& cmd) const {
  if (format != "folder")
    app::warn_ignored(cmd, {"--image-size", "--in-channels"},
                      fmt::format("--data-format {} keeps the images as stored (only folder trees are resized)", format));
}

std::unique_ptr<data::ImageSet> load_train_images(const DataOptions& o, bool stream) {
  const std::string dir = o.path.empty() ? data::kFashionMnistDir : o.path;
  std::unique_ptr<data::ImageSet> d;
  if (!stream) {
    d = std::make_unique<data::Dataset>(std::move(load_data(o, /*with_test=*/false).train));
    return d;
  }
  if (o.format == "fashion-mnist" || o.format == "idx") d = data::open_fashion_mnist_stream(dir, data::Split::train);
  else if (o.format == "cifar10") d = data::open_cifar10_dir_stream(dir, data::Split::train);
  else fail("--stream reads fashion-mnist, idx and cifar10 files; a '{}' data set is loaded into memory", o.format);
  if (o.limit > 0 && o.limit < d->N) {
    std::vector<int64_t> first(size_t(o.limit));
    for (int64_t i = 0; i < o.limit; ++i) first[size_t(i)] = i;
    d = std::make_unique<data::Dataset>(data::subset(*d, first));
  }
  data::normalize(*d, data::channel_stats(*d));
  return d;
}

size_t in_memory_bytes(const data::ImageSet& d) { return size_t(d.N) * size_t(d.image_elems() + 4); }

LoadedData load_data(const DataOptions& o, bool with_test) {
  LoadedData d;
  const std::string dir = o.path.empty() ? data::kFashionMnistDir : o.path;
  if (o.format == "fashion-mnist" || o.format == "idx") {
    d.train = data::load_fashion_mnist(dir, data::Split::train, o.limit);  // --limit: only those images are kept
    if (with_test) d.test = data::load_fashion_mnist(dir, data::Split::test);
  } else if (o.format == "cifar10") {
    d.train = data::load_cifar10_dir(dir, data::Split::train);
    if (with_test) d.test = data::load_cifar10_dir(dir, data::Split::test);
  } else {
    // A class-per-folder tree has no test split of its own: hold out 20% per class.
    data::ImageLoadOptions lo;
    lo.height = lo.width = o.image_size;
    lo.channels = o.in_channels;
    data::Dataset all = data::load_image_folder(dir, lo);
    auto split = data::split_train_val(all, 0.2, 12345);
    d.train = data::subset(all, split.train);
    d.test = data::subset(all, split.val);
  }
  // The network is built for the training images; a test split of another size would
  // only be found after an epoch of training.
  if (with_test && (d.test.C != d.train.C || d.test.H != d.train.H || d.test.W != d.train.W))
    fail("the test split '{}' has {}x{}x{} images, the training split '{}' {}x{}x{}", d.test.source, d.test.C,
         d.test.H, d.test.W, d.train.source, d.train.C, d.train.H, d.train.W);
  if (o.limit > 0 && o.limit < d.train.N) {
    std::vector<int64_t> first(size_t(o.limit));
    for (int64_t i = 0; i < o.limit; ++i) first[size_t(i)] = i;
    d.train = data::subset(d.train, first);
  }
  d.stats = data::channel_stats(d.train);
  data::normalize(d.train, d.stats);
  if (with_test) data::normalize(d.test, d.stats);
  return d;
}

data::Dataset load_test_data(const DataOptions& o, const data::ChannelStats& stats) {
  const std::string dir = o.path.empty() ? data::kFashionMnistDir : o.path;
  data::Dataset test;
  if (o.format == "fashion-mnist" || o.format == "idx") {
    test = data::load_fashion_mnist(dir, data::Split::test, o.limit);
  } else if (o.format == "cifar10") {
    test = data::load_cifar10_dir(dir, data::Split::test);
  } else {
    data::ImageLoadOptions lo;
    lo.height = lo.width = o.image_size;
    lo.channels = o.in_channels;
    test = data::load_image_folder(dir, lo);
  }
  if (o.limit > 0 && o.limit < test.N) {
    std::vector<int64_t> first(size_t(o.limit));
    for (int64_t i = 0; i < o.limit; ++i) first[size_t(i)] = i;
    test = data::subset(test, first);
  }
  data::normalize(test, stats);
  return test;
}

void SpaceOptions::add(CLI::App& cmd, const std::string& default_from, bool hidden) {
  // "(default: the genotype file's space, else 16)" where another source comes first.
  auto d = [&](const auto& value) {
    return default_from.empty() ? std::string() : fmt::format(" (default: {}{})", default_from, value);
  };
  const std::string group = hidden ? "" : "Options";
  cmd.add_option("-C,--channels", channels, "Channels of the first cell (doubled at each reduction)" + d(channels))
      ->check(CLI::Range(2, nas::kMaxChannels))->group(group);
  cmd.add_option("--cells", cells, "Number of cells" + d(cells))->check(CLI::Range(1, nas::kMaxCells))->group(group);
  cmd.add_option("--nodes", nodes, "Intermediate nodes per cell" + d(nodes))->check(CLI::Range(1, nas::kMaxNodes))->group(group);
  cmd.add_option("--reductions", reductions, "Comma-separated indices of the reduction cells" + d(reductions))->group(group);
  cmd.add_option("--ops", ops, "Candidate ops: fewshot (7), darts (8), or a comma-separated list" + d(ops))->group(group);
}

nas::SearchSpace SpaceOptions::space_with(const CLI::App& cmd, const std::optional<nas::SearchSpace>& from,
                                          int64_t in_channels, int64_t height, int64_t width, int classes) const {
  SpaceOptions o = *this;
  if (from) {
    if (!given(cmd, "--channels")) o.channels = from->channels;
    if (!given(cmd, "--cells")) o.cells = from->cells;
    if (!given(cmd, "--nodes")) o.nodes = from->nodes;
    if (!given(cmd, "--reductions")) o.reductions = fmt::format("{}", fmt::join(from->reductions, ","));
    if (!given(cmd, "--ops")) {
      std::vector<std::string> names;
      for (nas::OpKind k : from->ops) names.push_back(nas::op_kind_name(k));
      o.ops = fmt::format("{}", fmt::join(names, ","));
    }
  }
  return o.space(in_channels, height, width, classes);
}

std::vector<int> parse_int_list(std::string_view text, std::string_view what, std::string_view noun) {
  std::vector<int> out;
  std::string item;
  for (size_t i = 0; i <= text.size(); ++i) {
    if (i == text.size() || text[i] == ',') {
      if (!item.empty()) {
        int v = 0;
        const auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
        if (ec != std::errc() || end != item.data() + item.size()) fail("{}: '{}' is not {}", what, item, noun);
        out.push_back(v);
      }
      item.clear();
    } else if (text[i] != ' ') {
      item += text[i];
    }
  }
  return out;
}

nas::SearchSpace SpaceOptions::space(const data::ImageSet& d) const {
  return space(d.C, d.H, d.W, d.num_classes);
}

nas::SearchSpace SpaceOptions::space(int64_t in_channels, int64_t height, int64_t width, int classes) const {
  nas::SearchSpace s;
  s.channels = channels;
  s.cells = cells;
  s.nodes = nodes;
  s.reductions = parse_int_list(reductions, "--reductions", "a cell index");
  if (ops == "fewshot") {
    s.ops = nas::few_shot_ops();
  } else if (ops == "darts") {
    s.ops = nas::darts_ops();
  } else {
    s.ops.clear();
    std::string name;
    for (size_t i = 0; i <= ops.size(); ++i) {
      if (i == ops.size() || ops[i] == ',') {
        if (!name.empty()) s.ops.push_back(nas::op_kind_from_name(name));
        name.clear();
      } else {
        name += ops[i];
      }
    }
  }
  s.in_channels = int(in_channels);
  s.height = int(height);
  s.width = int(width);
  s.classes = classes;
  s.validate();
  return s;
}

size_t parse_bytes(const std::string& text) {
  size_t pos = 0;
  double value = 0;
  try {
    value = std::stod(text, &pos);
  } catch (const std::exception&) {
    fail("'{}' is not a size (examples: 300000, 512KiB, 1.5MiB, 2GiB)", text);
  }
  std::string unit = text.substr(pos);
  unit.erase(0, unit.find_first_not_of(' '));
  double scale = 1;
  if (unit.empty() || unit == "B") scale = 1;
  else if (unit == "KiB" || unit == "K" || unit == "k") scale = 1024.0;
  else if (unit == "MiB" || unit == "M") scale = 1048576.0;
  else if (unit == "GiB" || unit == "G") scale = 1073741824.0;
  else if (unit == "KB" || unit == "kB") scale = 1e3;
  else if (unit == "MB") scale = 1e6;
  else if (unit == "GB") scale = 1e9;
  else fail("'{}': unknown unit '{}' (use B, KiB, MiB, GiB, KB, MB or GB)", text, unit);
  if (!(value >= 0) || !std::isfinite(value)) fail("'{}' is not a non-negative size", text);
  // size_t(x) of a double beyond 2^64 is undefined (it wrapped 1e30GiB to 0 bytes).
  if (value * scale >= 0x1p63) fail("'{}' is larger than any memory (at most 8 EiB)", text);
  return size_t(value * scale);
}

std::string format_bytes(double b) {
  if (b >= 1073741824.0) return fmt::format("{:.2f} GiB", b / 1073741824.0);
  if (b >= 1048576.0) return fmt::format("{:.2f} MiB", b / 1048576.0);
  if (b >= 1024.0) return fmt::format("{:.1f} KiB", b / 1024.0);
  return fmt::format("{:.0f} B", b);
}

Progress::Progress(std::string label, int64_t total, std::string unit, int64_t first)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), first_(first), tty_(isatty(STDERR_FILENO)),
      start_(std::chrono::steady_clock::now()) {}

std::string format_duration(double seconds) {
  const int64_t s = int64_t(std::llround(std::max(0.0, seconds)));
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}h{:02}m", s / 3600, s % 3600 / 60);
}

void Progress::update(int64_t done, const std::string& status) {
  const double frac = total_ > 0 ? double(done) / double(total_) : 1.0;
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  // The rate of this bar's own work (a resumed run's first steps were done before it).
  const double rate = secs > 0 && done > first_ ? double(done - first_) / secs : 0.0;
  const std::string timing =
      rate > 0 ? fmt::format("{:.{}f} {}/s, {}, ETA {}", rate, rate < 10 ? 2 : 1, unit_, format_duration(secs),
                             format_duration(double(total_ - done) / rate))
               : format_duration(secs);
  if (tty_) {
    const int width = 24;
    int filled = int(frac * width);
    std::string bar(size_t(filled), '#');
    bar += std::string(size_t(width - filled), '.');
    std::fprintf(stderr, "\r\033[K%s [%s] %lld/%lld %s | %s", label_.c_str(), bar.c_str(), (long long)done,
                 (long long)total_, status.c_str(), timing.c_str());
    std::fflush(stderr);
  } else {
    // A pass shorter than this prints only its finish line (a test pass after each of 20
    // epochs would otherwise add 200 lines).
    constexpr double kQuietSeconds = 2.0;
    int decile = int(frac * 10);
    if (decile > last_decile_ && secs >= kQuietSeconds) {
      last_decile_ = decile;
      std::fprintf(stderr, "%s %3d%% %lld/%lld %s | %s\n", label_.c_str(), decile * 10, (long long)done,
                   (long long)total_, status.c_str(), timing.c_str());
    }
  }
}

void Progress::finish(const std::string& status) {
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  if (tty_) std::fprintf(stderr, "\r\033[K");
  const double rate = secs > 0 ? double(total_ - first_) / secs : 0.0;
  std::fprintf(stderr, "%s done %s | %.1fs, %.*f %s/s\n", label_.c_str(), status.c_str(), secs, rate < 10 ? 2 : 1, rate,
               unit_.c_str());
}

void add_check_numerics_flag(CLI::App& cmd) {
  cmd.add_flag_function(
      "--check-numerics", [](int64_t) { graph::set_check_numerics(true); },
      "Check every op's outputs; stop at the first op that produces a NaN or an infinity, naming it (slower)");
}

namespace {
int64_t g_kill_at_step = -1;
int64_t g_kill_before_rename = -1;

int64_t env_count(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return -1;
  int64_t n = -1;
  const auto [end, ec] = std::from_chars(v, v + std::strlen(v), n);
  if (ec != std::errc() || *end != '\0' || n < 0) fail("{}='{}' is not a non-negative whole number", name, v);
  return n;
}

void kill_before_rename(const std::string&) {
  static int64_t renames = 0;
  if (++renames == g_kill_before_rename) ::raise(SIGKILL);
}
}  // namespace

void install_test_kill_points() {
  g_kill_at_step = env_count("ONNAS_TEST_KILL_AT_STEP");
  g_kill_before_rename = env_count("ONNAS_TEST_KILL_BEFORE_RENAME");
  if (g_kill_before_rename > 0) set_before_rename_hook(kill_before_rename);
}

void test_kill_point(int64_t step) {
  if (step == g_kill_at_step) ::raise(SIGKILL);
}

void make_dir(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) fail("cannot create folder '{}': {}", path, ec.message());
}

void make_out_dir(const std::string& path) {
  make_dir(path);
  const std::string lock = path + "/.onnas.lock";
  // Held until the process ends (the kernel drops it then, even after SIGKILL).
  const int fd = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
  if (fd < 0) fail("--out '{}': cannot create the lock file '{}': {}", path, lock, std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    char pid[32] = {};
    const ssize_t n = ::pread(fd, pid, sizeof pid - 1, 0);
    ::close(fd);
    if (err != EWOULDBLOCK) fail("--out '{}': cannot lock '{}': {}", path, lock, std::strerror(err));
    fail("--out '{}' is in use by another onnas run{} (lock file '{}'); wait for it to end or choose another folder",
         path, n > 0 ? fmt::format(" (process {})", std::string_view(pid, size_t(n))) : "", lock);
  }
  const std::string me = std::to_string(::getpid());
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, me.data(), me.size(), 0) != ssize_t(me.size()))
    fail("--out '{}': cannot write the lock file '{}': {}", path, lock, std::strerror(errno));
}

}  // namespace onnas::app
