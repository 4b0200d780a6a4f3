// The few-shot half of the tool (ONNAS.md section 7):
//   onnas meta-train    two-fold meta-learning of a meta cell over N-way K-shot tasks
//   onnas adapt         on-device search from a meta cell on one meta-test task
//   onnas eval-fewshot  the same over many meta-test tasks: mean and 95% interval
//
// Tasks on Fashion-MNIST (the default): the class split of data/fashion_mnist.h;
// meta-training draws from the training file's images of the meta-train classes,
// meta-validation from the test file's images of the same classes (new images), and
// meta-testing from the test file's images of the meta-test classes (new classes and
// images). Images are normalized with the statistics of the meta-train images only.
// Class-per-folder trees (Omniglot, miniImageNet as kept on disk): --meta-train-dir,
// --meta-test-dir and optionally --meta-val-dir, each a tree of class folders. The
// benchmarks in their published layouts and protocols (data/fewshot_sets.h):
// --data-format omniglot / glyphs (Omniglot's layout; --rotations, --split-dir) and
// miniimagenet (train.csv / val.csv / test.csv, or train/ val/ test/ trees).
//
// Under `mpirun -n P` (the -DONNAS_MPI=ON build, distributed.h) meta-train and
// eval-fewshot spread each batch of tasks over the ranks (slot b on rank b % P) and
// combine the results; rank 0 alone prints and writes files. Without MPI, P = 1.
#include <sys/resource.h>

#include <ctime>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <numeric>
#include <sstream>
#include <thread>

#include "apps/onnas/cli.h"
#include "apps/onnas/common.h"
#include "apps/onnas/memory_report.h"
#include "apps/onnas/distributed.h"
#include "apps/onnas/model_file.h"
#include "apps/onnas/output.h"
#include "apps/onnas/run_time.h"
#include "data/episode_sampler.h"
#include "data/fashion_mnist.h"
#include "data/fewshot_sets.h"
#include "data/glyphs.h"
#include "data/image_folder.h"
#include "data/streaming.h"
#include "nas/arch_report.h"
#include "nas/confidence.h"
#include "nas/fewshot.h"
#include "nas/meta_train.h"
#include "nas/space_limits.h"
#include "runtime/error.h"
#include "runtime/serialize/atomic_file.h"
#include "runtime/serialize/json.h"
#include "runtime/serialize/safetensors.h"
#include "runtime/threading.h"

namespace onnas::app {
namespace {

// Where tasks come from.
struct FewShotDataOptions {
  std::string format = "fashion-mnist";  // or folder, omniglot, glyphs, miniimagenet
  std::string path;                       // Fashion-MNIST folder, or the benchmark's root
  std::string train_dir, val_dir, test_dir;
  int class_depth = 1, image_size = 28, image_channels = 1;
  std::vector<int32_t> test_classes;  // fashion-mnist: empty is the default split
  bool rotations = false;             // omniglot / glyphs
  std::string split_dir;              // omniglot / glyphs: train.txt, val.txt, test.txt
  // fashion-mnist under a memory budget: the files are opened streamed (adaptation: the
  // test file; meta-training: both), and FewShotData::hold_in_memory() reads in what the
  // run draws from when that fits beside the step.
  bool stream = false;
  CLI::Option* image_size_given = nullptr;  // miniimagenet defaults to 84 x 84 colour
  CLI::Option* image_channels_given = nullptr;
  CLI::Option* image_channels_alias = nullptr;

  void add(CLI::App& cmd) {
    cmd.add_option("--data-format", format,
                   "fashion-mnist, folder (class-per-folder trees), omniglot (images_background / images_evaluation), "
                   "glyphs (the rendered glyph benchmark, Omniglot's layout) or miniimagenet (CSV splits or class trees)")
        ->check(CLI::IsMember({"fashion-mnist", "folder", "omniglot", "glyphs", "miniimagenet"}));
    cmd.add_option("--data", path,
                   "Fashion-MNIST folder (default: /usr/share/datasets/fashion-mnist), or the root of an omniglot, "
                   "glyphs (default: /var/cache/onnas/glyphs) or miniimagenet layout");
    cmd.add_flag("--rotations", rotations,
                 "omniglot / glyphs: each class turned by 90, 180 and 270 degrees is a new class (Vinyals et al.)");
    cmd.add_option("--split-dir", split_dir,
                   "omniglot / glyphs: a folder of class lists train.txt, val.txt (optional), test.txt "
                   "(\"alphabet/character[/rotDDD]\" per line, ProtoNets' split files) instead of background / evaluation");
    cmd.add_option("--meta-test-classes", test_classes,
                   "fashion-mnist: the held-out classes, comma-separated (default 1,3,4,6,9; the rest are meta-trained; "
                   "adaptation takes the meta cell's)")
        ->delimiter(',');
    cmd.add_option("--meta-train-dir", train_dir, "folder: the meta-train class tree (e.g. omniglot/images_background)");
    cmd.add_option("--meta-val-dir", val_dir, "folder: the meta-validation class tree (default: meta-train tree)");
    cmd.add_option("--meta-test-dir", test_dir, "folder: the meta-test class tree (e.g. omniglot/images_evaluation)");
    cmd.add_option("--class-depth", class_depth, "folder: depth of the class folders (Omniglot's alphabet/character: 2)")
        ->check(CLI::Range(1, 4));
    image_size_given = cmd.add_option("--image-size", image_size,
                                      "folder, omniglot, glyphs, miniimagenet: side images are resized to (default 28; "
                                      "miniimagenet 84)")
                           ->check(CLI::Range(4, 1024));
    image_channels_given =
        cmd.add_option("--in-channels", image_channels,
                       "folder, miniimagenet: 1 (grey) or 3 (colour) (default 1; miniimagenet 3)")
            ->check(CLI::IsMember({1, 3}));
    image_channels_alias = add_renamed(cmd, "--image-channels", "--in-channels", image_channels);
  }
  // Resizing and channels apply to image files, not to Fashion-MNIST's.
  void warn_ignored(const CLI::App& cmd) const {
    if (format == "fashion-mnist")
      app::warn_ignored(cmd, {"--image-size", "--in-channels"}, "--data-format fashion-mnist keeps its 28x28 grey images");
    if (format != "omniglot" && format != "glyphs") app::warn_ignored(cmd, {"--rotations", "--split-dir"}, "omniglot and glyphs only");
    if (format != "fashion-mnist") app::warn_ignored(cmd, {"--meta-test-classes"}, "fashion-mnist only");
  }
};

// The images of `set` whose label is one of `classes` (labels read in one go).
std::vector<int64_t> images_of_classes(const data::ImageSet& set, const std::vector<int32_t>& classes) {
  std::vector<int32_t> labels(size_t(set.N));
  set.read_labels(0, labels);
  std::vector<int64_t> r;
  for (int64_t i = 0; i < set.N; ++i)
    if (std::find(classes.begin(), classes.end(), labels[size_t(i)]) != classes.end()) r.push_back(i);
  return r;
}

// Task sources over one of the three splits. Each task is drawn by a sampler seeded
// from (seed, task index) alone.
struct FewShotData {
  int64_t C = 1, H = 28, W = 28;
  std::string description;
  std::shared_ptr<data::Dataset> train, test;                // fashion-mnist
  std::shared_ptr<data::ImageFolderIndex> trees[3];          // folder: train, val, test
  std::shared_ptr<const data::ImageSet> sets[3];             // omniglot, glyphs, miniimagenet
  std::vector<int32_t> classes[3];
  data::ImageLoadOptions load;
  data::ChannelStats stats;  // Fashion-MNIST: the normalization applied (empty for trees)
  bool fashion = false;      // Fashion-MNIST (in memory, or its test file streamed in sets[])
  // Fashion-MNIST under a memory budget: its files opened streamed (also once read in).
  // `file` is the test file; `train_file` the train file, when meta-training draws from it.
  std::shared_ptr<const data::ImageSet> file, train_file;
  // The images stay in their files (sets[] read from them).
  bool streamed() const { return file && sets[meta_test] == file; }

  // Reading the streamed files in, and the bytes that takes: what the run draws from.
  // Adaptation holds the meta-test classes of the test file (nothing else of it);
  // meta-training the meta-train classes of the train file and the whole test file.
  std::vector<int64_t> meta_train_images() const { return images_of_classes(*train_file, classes[meta_train]); }
  std::vector<int64_t> meta_test_images() const { return images_of_classes(*file, classes[meta_test]); }
  void stream_from_files() {
    for (auto& set : sets) set = file;
    if (train_file) sets[meta_train] = train_file;
  }
  size_t in_memory_bytes() const {
    const size_t images = train_file ? meta_train_images().size() + size_t(file->N) : meta_test_images().size();
    return images * size_t(C * H * W + 4);
  }
  void hold_in_memory() {
    if (!streamed()) return;
    if (!train_file) {
      auto held = std::make_shared<data::Dataset>(data::subset(*file, meta_test_images()));
      for (auto& set : sets) set = held;
      return;
    }
    std::vector<int64_t> all_test(size_t(file->N));
    std::iota(all_test.begin(), all_test.end(), int64_t(0));
    sets[meta_train] = std::make_shared<data::Dataset>(data::subset(*train_file, meta_train_images()));
    sets[meta_val] = sets[meta_test] = std::make_shared<data::Dataset>(data::subset(*file, all_test));
  }

  enum Split { meta_train = 0, meta_val = 1, meta_test = 2 };

  // Bytes the loaded data holds in memory (each set once).
  size_t bytes() const {
    size_t b = 0;
    if (train) b += train->bytes();
    if (test && test != train) b += test->bytes();
    for (int s = 0; s < 3; ++s) {
      bool seen = false;
      for (int t = 0; t < s; ++t) seen = seen || sets[t] == sets[s];
      if (sets[s] && !seen) b += sets[s]->bytes();
    }
    return b;
  }

  nas::TaskSource tasks(Split split, data::EpisodeShape shape, uint64_t seed) const {
    if (int64_t(classes[split].size()) < shape.n_way)
      fail("{}-way tasks need {} classes; the {} split has {}", shape.n_way, shape.n_way, split_name(split),
           classes[split].size());
    // The split's images by class are listed once, not per task (a task copies the pools
    // of its split's classes, exactly sized): drawing a task does not read every label.
    auto from_set = [&](std::shared_ptr<const data::ImageSet> set) -> nas::TaskSource {
      std::vector<int32_t> cls = classes[split];
      auto pools = std::make_shared<std::vector<std::vector<int64_t>>>(set->indices_by_class());
      for (size_t c = 0; c < pools->size(); ++c)
        if (std::find(cls.begin(), cls.end(), int32_t(c)) == cls.end()) std::vector<int64_t>().swap((*pools)[c]);
      return [set, pools, cls, shape, seed](uint64_t index, const nas::Task& t) {
        data::EpisodeSampler es(*set, *pools, cls, shape, nas::task_seed(seed, index));
        es.next(t.support_x, t.support_y, t.query_x, t.query_y);
      };
    };
    if (sets[split]) return from_set(sets[split]);
    if (train) return from_set(split == meta_train ? train : test);
    std::shared_ptr<data::ImageFolderIndex> tree = trees[split];
    std::vector<int32_t> cls = classes[split];
    data::ImageLoadOptions lo = load;
    return [tree, lo, cls, shape, seed](uint64_t index, const nas::Task& t) {
      data::EpisodeSampler es(*tree, lo, cls, shape, nas::task_seed(seed, index));
      es.next(t.support_x, t.support_y, t.query_x, t.query_y);
    };
  }
  // " (classes 1,3,...)" for Fashion-MNIST's meta-test split; empty for class trees.
  std::string test_classes_text() const {
    return fashion ? fmt::format(" (classes {})", fmt::join(classes[meta_test], ",")) : std::string();
  }
  static const char* split_name(Split s) { return s == meta_train ? "meta-train" : s == meta_val ? "meta-val" : "meta-test"; }
};

// A benchmark in its published layout: the three splits and all their classes.
// Images are decoded when a task reads them, not normalized (as class trees).
FewShotData load_benchmark(const FewShotDataOptions& o, bool adaptation_only) {
  FewShotData d;
  data::FewShotSets sets;
  if (o.format == "miniimagenet") {
    if (o.path.empty()) fail("--data-format miniimagenet needs --data (the folder of train.csv, val.csv, test.csv)");
    const bool size_given = o.image_size_given && o.image_size_given->count() > 0;
    const bool channels_given = (o.image_channels_given && o.image_channels_given->count() > 0) ||
                                (o.image_channels_alias && o.image_channels_alias->count() > 0);
    sets = data::open_mini_imagenet(
        {.root = o.path, .image_size = size_given ? o.image_size : 84, .channels = channels_given ? o.image_channels : 3,
         .stream = {}});
  } else {
    std::string root = o.path;
    if (o.format == "glyphs" && root.empty()) root = data::kGlyphsDir;
    if (o.format == "glyphs" && data::read_glyph_manifest(root).empty())
      fail("the glyph benchmark is not built in '{}' (no glyphs.json): run scripts/setup.sh --glyphs, or "
           "build/apps/make_glyphs --out DIR and pass --data DIR",
           root);
    if (root.empty()) fail("--data-format omniglot needs --data (the folder of images_background and images_evaluation)");
    sets = data::open_omniglot(
        {.root = root, .rotations = o.rotations, .split_dir = o.split_dir, .image_size = o.image_size, .stream = {}});
  }
  for (int s = 0; s < 3; ++s) {
    d.sets[s] = sets.sets[s];
    for (int32_t c = 0; c < sets.sets[s]->num_classes; ++c) d.classes[s].push_back(c);
  }
  d.C = d.sets[0]->C, d.H = d.sets[0]->H, d.W = d.sets[0]->W;
  d.description = o.format + ": " + sets.description;
  // Adaptation draws meta-test tasks only: the meta-train and meta-val sets (their
  // file lists and decoded-image caches) are let go.
  if (adaptation_only)
    for (int s : {int(FewShotData::meta_train), int(FewShotData::meta_val)})
      if (d.sets[s] != d.sets[FewShotData::meta_test]) d.sets[s].reset();
  return d;
}

// Meta-training reads both files and normalizes with the statistics of the
// meta-train images; it records them in the meta cell ("normalization"). Adaptation
// draws meta-test tasks only: given those statistics (from the meta cell) it reads
// the test file alone, as a device would hold only its own data.
// adaptation_only: meta-train tasks are never drawn (adapt, eval-fewshot).
FewShotData load_fewshot(const FewShotDataOptions& o, const data::ChannelStats* given = nullptr,
                         bool adaptation_only = false) {
  if (o.format == "omniglot" || o.format == "glyphs" || o.format == "miniimagenet")
    return load_benchmark(o, adaptation_only);
  FewShotData d;
  if (o.format == "fashion-mnist") {
    const std::string dir = o.path.empty() ? data::kFashionMnistDir : o.path;
    d.fashion = true;
    data::ClassSplit cs =
        o.test_classes.empty() ? data::fashion_mnist_class_split() : data::fashion_mnist_class_split(o.test_classes);
    d.classes[FewShotData::meta_train] = cs.meta_train;
    d.classes[FewShotData::meta_val] = cs.meta_train;
    d.classes[FewShotData::meta_test] = cs.meta_test;
    if (o.stream && (given || adaptation_only)) {
      // Adaptation draws meta-test tasks only, from the test file, here left in it.
      std::shared_ptr<data::ImageSet> test = data::open_fashion_mnist_stream(dir, data::Split::test);
      if (given) {
        d.stats = *given;
      } else {
        std::unique_ptr<data::ImageSet> train = data::open_fashion_mnist_stream(dir, data::Split::train);
        d.stats = data::channel_stats(*train, images_of_classes(*train, cs.meta_train));
      }
      data::normalize(*test, d.stats);
      d.file = test;
      d.stream_from_files();
      d.C = test->C, d.H = test->H, d.W = test->W;
      d.description = fmt::format("fashion-mnist ({}): meta-test classes {} (test file)", dir, fmt::join(cs.meta_test, ","));
      return d;
    }
    const std::string meta_training_description =
        fmt::format("fashion-mnist ({}): meta-train classes {} (train file), meta-val the same classes (test file), "
                    "meta-test classes {} (test file)",
                    dir, fmt::join(cs.meta_train, ","), fmt::join(cs.meta_test, ","));
    if (o.stream && !given && !adaptation_only) {
      // Meta-training under a budget: streamed until the step is chosen.
      std::shared_ptr<data::ImageSet> train = data::open_fashion_mnist_stream(dir, data::Split::train);
      std::shared_ptr<data::ImageSet> test = data::open_fashion_mnist_stream(dir, data::Split::test);
      d.stats = data::channel_stats(*train, images_of_classes(*train, cs.meta_train));
      data::normalize(*train, d.stats);
      data::normalize(*test, d.stats);
      d.train_file = train, d.file = test;
      d.stream_from_files();
      d.C = test->C, d.H = test->H, d.W = test->W;
      d.description = meta_training_description;
      return d;
    }
    d.test = std::make_shared<data::Dataset>(data::load_fashion_mnist(dir, data::Split::test));
    if (given) {
      d.stats = *given;
      d.train = d.test;  // meta-train tasks are never drawn
    } else if (adaptation_only) {
      // Adaptation from a random start draws meta-test tasks only: of the train file it
      // needs the normalization, measured in one streamed pass (never held in memory).
      std::unique_ptr<data::ImageSet> train = data::open_fashion_mnist_stream(dir, data::Split::train);
      d.stats = data::channel_stats(*train, images_of_classes(*train, cs.meta_train));
      d.train = d.test;
    } else {
      // Of the train file only the meta-train classes' images are held (half the file).
      d.train = std::make_shared<data::Dataset>(data::load_fashion_mnist(dir, data::Split::train, 0, cs.meta_train));
      d.stats = data::channel_stats(*d.train);
      data::normalize(*d.train, d.stats);
    }
    data::normalize(*d.test, d.stats);
    d.C = d.test->C, d.H = d.test->H, d.W = d.test->W;
    d.description = meta_training_description;
    return d;
  }
  if (o.train_dir.empty() || o.test_dir.empty())
    fail("--data-format folder needs --meta-train-dir and --meta-test-dir (class-per-folder trees)");
  d.load.channels = o.image_channels;
  d.load.height = d.load.width = o.image_size;
  const std::string dirs[3] = {o.train_dir, o.val_dir.empty() ? o.train_dir : o.val_dir, o.test_dir};
  for (int s = 0; s < 3; ++s) {
    d.trees[s] = std::make_shared<data::ImageFolderIndex>(data::list_image_folder(dirs[s], o.class_depth));
    for (int32_t c = 0; c < d.trees[s]->num_classes(); ++c) d.classes[s].push_back(c);
  }
  d.C = o.image_channels, d.H = d.W = o.image_size;
  d.description = fmt::format("class trees: meta-train {} ({} classes), meta-val {}, meta-test {} ({} classes)",
                              dirs[0], d.classes[0].size(), dirs[1], dirs[2], d.classes[2].size());
  return d;
}

// The held-out classes a meta cell was trained for (its "meta_test_classes" metadata).
// Fashion-MNIST cells written before it existed all held out 3,4,6,7,9, the split of
// that time.
std::vector<int32_t> meta_cell_test_classes(const SafetensorsFile& f) {
  auto it = f.metadata.find("meta_test_classes");
  if (it != f.metadata.end()) {
    std::vector<int32_t> classes =
        parse_int_list(it->second, fmt::format("{}: meta_test_classes metadata", f.path), "a class number");
    try {
      data::fashion_mnist_class_split(classes);
    } catch (const Error& e) {
      fail("{}: meta_test_classes metadata: {}", f.path, e.what());
    }
    return classes;
  }
  auto data = f.metadata.find("data");
  if (data != f.metadata.end() && data->second.starts_with("fashion-mnist")) return {3, 4, 6, 7, 9};
  return {};
}

// Adaptation's data: with a meta cell that records its normalization, the test file
// only; the meta-test classes are the meta cell's unless --meta-test-classes says.
// `stream` (a memory budget): the test file is opened streamed, and read in only if
// it fits beside the step (choose_inner_step).
FewShotData load_adaptation_data(FewShotDataOptions o, const std::string& meta_cell, bool stream) {
  o.stream = stream;
  if (o.format != "fashion-mnist" || meta_cell.empty()) return load_fewshot(o, nullptr, /*adaptation_only=*/true);
  const SafetensorsFile f = read_safetensors(meta_cell);
  if (o.test_classes.empty()) o.test_classes = meta_cell_test_classes(f);
  std::optional<data::ChannelStats> stats = read_normalization(f.metadata, f.path);
  return stats ? load_fewshot(o, &*stats) : load_fewshot(o);
}

struct EpisodeOptions {
  int way = 5, shot = 1, query = 15;
  void add(CLI::App& cmd) {
    cmd.add_option("--way", way, "N: classes per task")->check(CLI::Range(2, 1000));
    cmd.add_option("--shot", shot, "K: support images per class")->check(CLI::Range(1, 1000));
    cmd.add_option("--query", query, "Q: query images per class")->check(CLI::Range(1, 1000));
  }
  data::EpisodeShape shape() const { return {.n_way = way, .k_shot = shot, .q_query = query}; }
};

struct Interval {
  double mean = 0, half = 0;  // mean +- half: the 95% confidence interval (0 with fewer than 2 values)
};
// Student's t with n - 1 degrees of freedom (nas/confidence.h), not the normal 1.96.
Interval confidence95(const std::vector<double>& xs) {
  const nas::MeanInterval r = nas::mean_interval(xs);
  return {r.mean, r.half_width};
}

// ---------------------------------------------------------------------------------
// onnas meta-train

struct MetaTrainArgs {
  FewShotDataOptions data;
  SpaceOptions space;
  EpisodeOptions episode;
  StepOptions step;
  int64_t meta_batch = 10;
  int inner_steps = 5;
  int64_t inner_batch = 0;
  int meta_epochs = 20, steps_per_epoch = 10, warmup_epochs = 2;
  float meta_lr = 1.0f, meta_arch_lr = 0.6f;
  // Softmax temperature of alpha/beta: from temperature[0] to temperature[1] over
  // anneal_epochs meta-epochs after the warm-up (-1: the rest of the run). By default
  // annealed 1 -> 0.1 with the inner architecture step at 3e-2 (100x DARTS's), the
  // setting that decided alpha on the glyph benchmark (README, few-shot).
  std::vector<float> temperature{1.0f, 0.1f};
  int anneal_epochs = -1;
  SearchOptimizerOptions inner{.optimizer = "adam", .lr = 3e-3f, .arch_lr = 3e-2f};  // --optimizer, --lr, --arch-lr of the inner loop
  std::string task_weighting = "softmax";
  bool cell_fold = true;
  std::string head = "zero";
  std::string labels = "random";
  int val_every = 5, val_tasks = 20, checkpoint_every = 1;
  bool resume = false;
  uint64_t seed = 1;
  int threads = 0;
  OutDir out;
  Output report{"meta-train"};
};

// What a checkpoint must agree on to be resumed.
nlohmann::json run_signature(const MetaTrainArgs& a, const nas::SearchSpace& space, const nas::MetaOptions& o) {
  nlohmann::json j{{"space", space.to_json()},
                        {"way", a.episode.way},
                        {"shot", a.episode.shot},
                        {"query", a.episode.query},
                        {"meta_batch", o.meta_batch},
                        {"inner_steps", o.inner_steps},
                        {"inner_lr", o.inner.w_lr},
                        {"inner_optimizer", a.inner.optimizer},
                        {"mode", o.inner.step.describe()},
                        {"lr_weights", o.lr_weights},
                        {"lr_arch", o.lr_arch},
                        {"task_weighting", nas::fold_weighting_name(o.task_weighting)},
                        {"cell_fold", o.cell_fold},
                        {"head", nas::head_init_name(o.head)},
                        {"labels", a.labels},
                        {"warmup_steps", o.warmup_steps},
                        {"steps_per_epoch", a.steps_per_epoch},
                        {"seed", a.seed}};
  if (!a.data.test_classes.empty()) j["meta_test_classes"] = a.data.test_classes;
  if (o.inner_batch > 0) j["inner_batch"] = o.inner_batch;  // recorded when given: older checkpoints resume
  // Only a non-default inner arch learning rate is recorded, so checkpoints from before
  // --arch-lr resume.
  if (o.inner.a_lr != nas::SearchOptions{}.a_lr) j["inner_arch_lr"] = o.inner.a_lr;
  // And the inner weight decay (adapt and eval-fewshot take it from the meta cell).
  if (o.inner.w_weight_decay != nas::SearchOptions{}.w_weight_decay) j["inner_weight_decay"] = o.inner.w_weight_decay;
  // Likewise only an annealed temperature.
  if (o.temperature.annealed())
    j["temperature"] = {{"start", o.temperature.start}, {"end", o.temperature.end}, {"steps", o.temperature.steps}};
  return j;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// --threads, or by default all cores shared among this machine's ranks.
void set_threads(int threads, const Distributed& dist) {
  if (threads > 0)
    set_num_threads(threads);
  else if (dist.local_size() > 1)
    set_num_threads(std::max(1, int(std::thread::hardware_concurrency()) / dist.local_size()));
  measure_fixed_overhead();
}

// --memory-budget for the inner search step: what is left after the data (the step
// chooser prints its choice). The budget bounds plan + data; the fixed overhead of the
// process comes on top.
// `more` bytes (what else the command holds through the step) with what they are.
// Fashion-MNIST files opened streamed are read in (what the run draws from:
// FewShotData::hold_in_memory) when that fits beside the step; else they stay in their
// files.
// `shared_arena` (of `more`): an arena reserved anyway that the step may run in.
// Returns the bytes the choice counted: the data, `more` and the step.
size_t choose_inner_step(const StepOptions& step, const nas::SearchSpace& space, nas::SearchOptions& options,
                         uint64_t seed, FewShotData& d, size_t more = 0, const std::string& more_for = "",
                         size_t shared_arena = 0) {
  if (!step.has_budget()) return 0;
  const std::string rest = more ? ", " + more_for : std::string();
  if (d.file) {
    const size_t in_memory = d.in_memory_bytes();
    d.stream_from_files();  // (a second choice: what the first read in is let go)
    try {
      const char* what = d.train_file ? "the data in memory" : "the meta-test images in memory";
      const size_t s = step.choose(space, options, seed, in_memory + more, what + rest, shared_arena);
      d.hold_in_memory();
      return in_memory + more + s;
    } catch (const Error& e) {
      std::fprintf(stderr, "%s\n  so the images (%s) stay in their file%s and each task reads its own\n", e.what(),
                   format_bytes(double(in_memory)).c_str(), d.train_file ? "s" : "");
    }
  }
  return d.bytes() + more +
         step.choose(space, options, seed, d.bytes() + more, (d.streamed() ? "the streamed data" : "the data") + rest,
                     shared_arena);
}

// After set-up (the bookkeeping measured): the plan and the data within the budget, or
// the run is refused before its first step, naming what the chosen step did not fit
// beside. The budget bounds plan + data (the fixed overhead on top).
void check_budget(const StepOptions& step, const MemoryReport& m, const std::string& beside) {
  if (!step.has_budget() || m.plan_bytes() + m.data_bytes() <= step.budget_bytes()) return;
  fail("--memory-budget {}: set up, the run holds {} (plan {} + data {}); the step chosen does not fit beside {}",
       format_bytes(double(step.budget_bytes())), format_bytes(double(m.plan_bytes() + m.data_bytes())),
       format_bytes(double(m.plan_bytes())), format_bytes(double(m.data_bytes())), beside);
}

// Where the time and bytes of the scale-out go (this rank's view).
struct ScaleOutStats {
  int64_t meta_steps = 0, tasks = 0;
  double step_seconds = 0;      // whole meta steps
  double task_seconds = 0;      // this rank's inner loops
  double wait_seconds = 0;      // waiting for the slowest rank before the exchange
  double exchange_seconds = 0;  // the task fold's allreduce and the results' gather
  double update_seconds = 0;    // the meta update and the cell fold (every rank, the same)
  double task_cpu_seconds = 0, exchange_cpu_seconds = 0;  // CPU time of the same two phases
  size_t exchange_bytes = 0;    // this rank's payload over all meta steps
};

// One meta step, its tasks spread over the ranks: MetaLearner::step's arithmetic with
// the task fold combined across ranks (the query figures are gathered per slot and
// summed in slot order, as step() sums them).
nas::MetaStepResult distributed_meta_step(nas::MetaLearner& ml, int64_t step, const nas::TaskSource& tasks,
                                          Distributed& dist, ScaleOutStats& st) {
  const auto t0 = std::chrono::steady_clock::now();
  const double c0 = cpu_seconds();
  ml.anneal_to(step);
  const bool arch = !ml.in_warmup(step);
  const int64_t batch = ml.options().meta_batch;
  nas::FoldAverage& fold = ml.fold();
  std::vector<double> results(size_t(2 * batch), 0.0);  // per slot: query loss, query accuracy
  for (int64_t b = 0; b < batch; ++b) {
    if (!dist.owns(b)) continue;
    const uint64_t index = uint64_t(step * batch + b);
    dist.run_slot(fmt::format("meta-train task {} (meta step {}, slot {})", index, step, b), [&] {
      nas::TaskResult r = ml.run_task(index, tasks, arch, fold);
      results[size_t(2 * b)] = r.query_loss;
      results[size_t(2 * b + 1)] = r.query_accuracy;
    });
    ++st.tasks;
  }
  const auto t1 = std::chrono::steady_clock::now();
  const double c1 = cpu_seconds();
  dist.barrier();
  const auto t2 = std::chrono::steady_clock::now();
  const double c2 = cpu_seconds();
  st.exchange_bytes += dist.allreduce_fold(fold);
  st.exchange_bytes += dist.gather_slots(results);
  const auto t3 = std::chrono::steady_clock::now();
  st.task_cpu_seconds += c1 - c0;
  st.exchange_cpu_seconds += cpu_seconds() - c2;
  ml.apply_fold(fold, arch);
  nas::MetaStepResult out;
  for (int64_t b = 0; b < batch; ++b) {
    out.query_loss += float(results[size_t(2 * b)]) / float(batch);
    out.query_accuracy += float(results[size_t(2 * b + 1)]) / float(batch);
  }
  st.task_seconds += std::chrono::duration<double>(t1 - t0).count();
  st.wait_seconds += std::chrono::duration<double>(t2 - t1).count();
  st.exchange_seconds += std::chrono::duration<double>(t3 - t2).count();
  st.update_seconds += seconds_since(t3);
  st.step_seconds += seconds_since(t0);
  ++st.meta_steps;
  return out;
}

// Mean query accuracy after adaptation over meta-validation tasks 0 .. n-1, spread
// over the ranks and summed in task order.
double distributed_validation(nas::MetaLearner& ml, const nas::TaskSource& tasks, int n, Distributed& dist) {
  std::vector<double> acc(size_t(n), 0.0);
  for (int t = 0; t < n; ++t)
    if (dist.owns(t))
      dist.run_slot(fmt::format("meta-validation task {}", t),
                    [&] { acc[size_t(t)] = ml.evaluate_task(uint64_t(t), tasks).query_accuracy; });
  dist.gather_slots(acc);
  double v = 0;
  for (double x : acc) v += x;
  return v / n;
}

void run_meta_train(const MetaTrainArgs& a, const CLI::App& cmd, Distributed& dist) {
  const bool root = dist.is_root();  // prints and writes; every rank computes
  if (root) a.out.check(a.resume, "checkpoint.safetensors");
  a.step.warn_ignored(cmd);
  a.data.warn_ignored(cmd);
  const auto started = std::chrono::steady_clock::now();
  set_threads(a.threads, dist);
  FewShotDataOptions data_options = a.data;
  data_options.stream = a.step.has_budget();  // Fashion-MNIST: read in only if it fits beside the step
  FewShotData d = load_fewshot(data_options);
  nas::SearchSpace space = a.space.space(d.C, d.H, d.W, a.episode.way);
  nas::MetaOptions o;
  o.episode = a.episode.shape();
  o.meta_batch = a.meta_batch;
  o.inner_steps = a.inner_steps;
  o.inner_batch = a.inner_batch;
  if (a.inner_batch > int64_t(a.episode.way) * a.episode.shot)
    fail("--inner-batch {}: the support set holds {} images ({}-way {}-shot); raise --shot or lower --inner-batch",
         a.inner_batch, int64_t(a.episode.way) * a.episode.shot, a.episode.way, a.episode.shot);
  o.inner.w_lr = o.inner.w_lr_min = a.inner.lr;
  o.inner.a_lr = a.inner.arch_lr;
  o.inner.w_weight_decay = a.inner.weight_decay_or(o.inner.w_weight_decay);
  o.inner.w_optimizer = nas::parse_weight_optimizer(a.inner.optimizer);
  o.inner.batch = a.inner_batch > 0 ? a.inner_batch : a.episode.way * a.episode.shot;
  a.step.apply(space, o.inner);
  if (a.step.has_budget()) {
    // The query evaluation runs in the inner step's arena: the step may use its share.
    const size_t query = nas::query_eval_arena_bytes(space, a.episode.way * a.episode.query);
    // Beside the inner step (whose working supernet the choice counts): the meta
    // supernet, the meta cell and one tensor's differences (each at most as large), and
    // the task fold's sums.
    size_t supernet = 0;
    {
      ParamStore probe;
      probe.store_weight_gradients(false);
      nas::init_search_params(probe, space, a.seed);
      supernet = probe.bytes(ParamKind::weight) + probe.bytes(ParamKind::arch);
    }
    const size_t learner =
        3 * supernet + nas::FoldAverage::bytes_for(supernet / sizeof(float), a.task_weighting == "mean"
                                                                                  ? nas::FoldWeighting::mean
                                                                                  : nas::FoldWeighting::softmax);
    choose_inner_step(a.step, space, o.inner, a.seed, d, kSetUpReserveBytes + kMetaStepHeapBytes + query + learner,
                      fmt::format("what a set-up holds beyond the choice (bookkeeping) and a meta step's small heap blocks, the meta supernet, meta cell "
                                  "and task fold ({}) and the query evaluation ({})",
                                  format_bytes(double(learner)), format_bytes(double(query))),
                      query);
  }
  o.lr_weights = a.meta_lr;
  o.lr_arch = a.meta_arch_lr;
  o.task_weighting = a.task_weighting == "mean" ? nas::FoldWeighting::mean : nas::FoldWeighting::softmax;
  o.cell_fold = a.cell_fold;
  o.head = nas::parse_head_init(a.head);
  o.episode.sorted_labels = a.labels == "sorted";
  o.warmup_steps = int64_t(a.warmup_epochs) * a.steps_per_epoch;
  o.temperature.start = a.temperature[0];
  o.temperature.end = a.temperature.size() > 1 ? a.temperature[1] : a.temperature[0];
  const int anneal_epochs = a.anneal_epochs >= 0 ? a.anneal_epochs : std::max(0, a.meta_epochs - a.warmup_epochs);
  o.temperature.steps = int64_t(anneal_epochs) * a.steps_per_epoch;

  nas::MetaLearner ml(space, o, a.seed);
  const nlohmann::json signature_json = run_signature(a, space, o);
  const std::string signature = signature_json.dump();
  const std::string ckpt = a.out.file("checkpoint.safetensors"), log_path = a.out.file("meta_log.jsonl");
  if (root) a.out.create();
  int first_epoch = 0;
  std::string log;
  RunTime time;  // the meta-epochs, the earlier processes' too when resumed (this rank's CPU)
  if (a.resume) {
    if (!std::filesystem::exists(ckpt)) fail("--resume: no checkpoint at {}", ckpt);  // the other ranks' check
    auto md = ml.load(ckpt);
    check_resume_settings(ckpt, md["run"], signature_json);  // --meta-epochs may grow: it is not a setting
    first_epoch = int(metadata_integer(md, "meta_epoch", ckpt, 0, a.meta_epochs));
    time.resume(md, ckpt);
    // Keep the log up to the checkpoint.
    std::ifstream in(root ? log_path : std::string());
    std::string line;
    while (std::getline(in, line)) {
      // A line that is not a log entry (cut by a kill, or not ours) is dropped.
      nlohmann::json j;
      try {
        j = parse_json(line, log_path, {.max_depth = 1});
      } catch (const Error&) {
        continue;
      }
      if (j.is_object() && j.contains("epoch") && j["epoch"].is_number_integer() &&
          j["epoch"].get<int64_t>() <= first_epoch)
        log += line + "\n";
    }
    if (root) std::fprintf(stderr, "resuming from %s at meta-epoch %d\n", ckpt.c_str(), first_epoch);
  }
  const nas::TaskSource train_tasks = d.tasks(FewShotData::meta_train, o.episode, a.seed);
  const nas::TaskSource val_tasks = d.tasks(FewShotData::meta_val, o.episode, a.seed ^ 0x9e3779b97f4a7c15ull);
  const size_t meta_cell_bytes = ml.meta_cell().bytes(), cells_bytes = nas::MetaCell::cells_bytes(space, ml.params());
  if (root) std::fprintf(stderr,
               "meta-train: %s\n  %s\n  %d-way %d-shot, %d queries; meta-batch %lld tasks x %d inner steps of %lld images (%s); "
               "%d meta-epochs x %d meta-steps, warm-up %d epochs; task fold %s, cell fold %s\n"
               "  meta cell %s stands for %s of cell weights (%.2fx less); working supernet %s, arena %s; %d threads\n",
               d.description.c_str(), space.describe().c_str(), a.episode.way, a.episode.shot, a.episode.query,
               (long long)o.meta_batch, o.inner_steps, (long long)o.inner.batch, o.inner.step.describe().c_str(), a.meta_epochs,
               a.steps_per_epoch, a.warmup_epochs, nas::fold_weighting_name(o.task_weighting),
               o.cell_fold ? "on" : "off", format_bytes(double(meta_cell_bytes)).c_str(),
               format_bytes(double(cells_bytes)).c_str(), double(cells_bytes) / double(meta_cell_bytes),
               format_bytes(double(ml.work_bytes())).c_str(), format_bytes(double(ml.arena_bytes())).c_str(),
               num_threads());
  if (root && o.temperature.annealed() && a.warmup_epochs < a.meta_epochs)  // else: the warning below
    std::fprintf(stderr, "  alpha/beta at temperature %g, then %g over %d meta-epochs after the warm-up (files keep alpha / T)\n",
                 double(o.temperature.start), double(o.temperature.end), anneal_epochs);
  if (root && a.warmup_epochs >= a.meta_epochs)
    std::fprintf(stderr,
                 "onnas: warning: the warm-up (%d meta-epochs) covers the whole run of %d meta-epochs: alpha and beta "
                 "are never trained (lower --warmup-epochs or raise --meta-epochs)\n",
                 a.warmup_epochs, a.meta_epochs);
  // One shot per class and the same support set at every inner step: nothing in a task
  // says which differences between images matter, and Reptile's update learns nothing
  // that transfers (README, "Meta-training on the glyph benchmark"). Sorted labels make
  // meta-training one fixed problem instead, where it does not apply.
  if (root && a.episode.shot == 1 && a.inner_batch == 0 && a.labels == "random")
    std::fprintf(stderr,
                 "onnas: warning: 1-shot meta-training tasks, each inner step on the whole support set: Reptile then "
                 "sees only images that differ and learns little that transfers; meta-train with more shots than you "
                 "test and inner minibatches (e.g. --shot 5 --query 5 --inner-batch 10)\n");
  MemoryReport memory("meta-train");
  memory.plan("arena", ml.arena_bytes());
  memory.plan("working supernet, gradients and optimizer state", ml.work_bytes());
  memory.plan("meta supernet and its optimizer state", ml.params().bytes());
  memory.plan("meta cell", meta_cell_bytes);
  memory.plan("step tables", ml.table_bytes());
  memory.plan("task fold", ml.fold_bytes());
  memory.data("images", d.bytes());
  memory.add_bookkeeping();
  memory.plan("a meta step's small heap blocks (allowance)", kMetaStepHeapBytes);
  if (root) memory.print_plan();
  check_budget(a.step, memory, "the meta-learner's supernets and tables");
  if (root && Distributed::built_with_mpi())
    std::fprintf(stderr, "  scale-out: %d ranks (%d on this machine) x %d threads; slot b of a meta-batch on rank b %% %d\n",
                 dist.size(), dist.local_size(), num_threads(), dist.size());

  auto metadata = [&](int epoch) {
    std::map<std::string, std::string> md{{"run", signature},
                                              {"meta_epoch", std::to_string(epoch)},
                                              {"data", d.description},
                                              {"normalization", nlohmann::json{{"mean", d.stats.mean},
                                                                               {"std", d.stats.std}}.dump()},
                                              {"tasks", fmt::format("{}-way {}-shot", a.episode.way, a.episode.shot)}};
    if (d.fashion) md["meta_test_classes"] = fmt::format("{}", fmt::join(d.classes[FewShotData::meta_test], ","));
    return md;
  };
  double last_val = -1;
  ScaleOutStats stats;
  for (int e = first_epoch; e < a.meta_epochs; ++e) {
    std::optional<Progress> bar;
    if (root) bar.emplace(fmt::format("meta-epoch {}/{}", e + 1, a.meta_epochs), a.steps_per_epoch);
    double loss = 0, acc = 0;
    auto t0 = std::chrono::steady_clock::now();
    for (int s = 0; s < a.steps_per_epoch; ++s) {
      const int64_t step = int64_t(e) * a.steps_per_epoch + s;
      test_kill_point(step);
      nas::MetaStepResult r = distributed_meta_step(ml, step, train_tasks, dist, stats);
      loss += r.query_loss;
      acc += r.query_accuracy;
      if (bar)
        bar->update(s + 1, fmt::format("query loss {:.3f} acc {:.3f}{}", loss / (s + 1), acc / (s + 1),
                                       ml.in_warmup(step) ? " (warm-up)" : ""));
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    nlohmann::json entry{{"epoch", e + 1},
                         {"query_loss", loss / a.steps_per_epoch},
                         {"query_accuracy", acc / a.steps_per_epoch},
                         {"seconds", secs}};
    if (o.temperature.annealed()) entry["temperature"] = ml.temperature();
    std::string val;
    if (a.val_every > 0 && ((e + 1) % a.val_every == 0 || e + 1 == a.meta_epochs)) {
      last_val = distributed_validation(ml, val_tasks, a.val_tasks, dist);
      entry["val_accuracy"] = last_val;
      val = fmt::format(" meta-val acc {:.3f}", last_val);
    }
    if (!root) continue;
    bar->finish(fmt::format("query loss {:.3f} acc {:.3f}{}", loss / a.steps_per_epoch, acc / a.steps_per_epoch, val));
    log += entry.dump() + "\n";
    if (a.checkpoint_every > 0 && ((e + 1) % a.checkpoint_every == 0 || e + 1 == a.meta_epochs)) {
      std::map<std::string, std::string> md = metadata(e + 1);
      time.add_to(md);  // the checkpoint's alone: the meta cell's bytes are the run's result
      ml.save(ckpt, md);
      write_file_atomic(log_path, log);
    }
  }
  if (!root) return;
  std::fprintf(stderr, "what meta-training decided (softmax of alpha per kept edge, of beta per node):\n%s",
               nas::decision_table(space, ml.params()).c_str());
  if (const std::string w = nas::undecided_warning(
          space, ml.params(),
          "meta-train longer (--meta-epochs), anneal alpha's temperature further (--temperature 1 0.1 is the default) "
          "or step it faster in the inner loop (--arch-lr, default 3e-2)");
      !w.empty())
    std::fprintf(stderr, "onnas: warning: %s\n", w.c_str());
  const std::string cell_path = a.out.file("meta_cell.safetensors");
  ml.save(cell_path, metadata(a.meta_epochs));
  write_file_atomic(log_path, log);
  const auto file_bytes = std::filesystem::file_size(cell_path);
  std::fprintf(stderr,
               "wrote %s (%s on disk: stem, classifier, alpha/beta and the meta cell %s; the %d cells would take %s, "
               "%.2fx the meta cell), %s\n",
               cell_path.c_str(), format_bytes(double(file_bytes)).c_str(), format_bytes(double(meta_cell_bytes)).c_str(),
               space.cells, format_bytes(double(cells_bytes)).c_str(), double(cells_bytes) / double(meta_cell_bytes),
               log_path.c_str());
  nlohmann::json scale_out;
  if (Distributed::built_with_mpi() && stats.meta_steps > 0) {
    const double steps = double(stats.meta_steps);
    const size_t supernet_bytes = ml.fold_size() * sizeof(float);
    scale_out = {{"ranks", dist.size()},
                 {"threads_per_rank", num_threads()},
                 {"meta_steps", stats.meta_steps},
                 {"meta_steps_per_minute", 60.0 * steps / stats.step_seconds},
                 {"rank0_tasks", stats.tasks},
                 {"rank0_seconds_per_task", stats.tasks ? stats.task_seconds / double(stats.tasks) : 0.0},
                 {"rank0_cpu_seconds_per_task", stats.tasks ? stats.task_cpu_seconds / double(stats.tasks) : 0.0},
                 {"exchange_cpu_seconds_per_step", stats.exchange_cpu_seconds / steps},
                 {"wait_seconds_per_step", stats.wait_seconds / steps},
                 {"exchange_seconds_per_step", stats.exchange_seconds / steps},
                 {"update_seconds_per_step", stats.update_seconds / steps},
                 {"exchange_bytes_per_step", double(stats.exchange_bytes) / steps},
                 {"meta_supernet_bytes", supernet_bytes}};
    std::fprintf(stderr,
                 "scale-out: %d ranks x %d threads: %lld meta steps in %.1f s (%.2f meta steps per minute); rank 0: "
                 "%.3f s per task (%.3f s of CPU); per meta step: %.3f s waiting for the slowest rank, %.2f ms "
                 "(%.2f ms of CPU) exchanging %s (the meta supernet: %s), %.2f ms meta update\n",
                 dist.size(), num_threads(), (long long)stats.meta_steps, stats.step_seconds,
                 60.0 * steps / stats.step_seconds, stats.tasks ? stats.task_seconds / double(stats.tasks) : 0.0,
                 stats.tasks ? stats.task_cpu_seconds / double(stats.tasks) : 0.0, stats.wait_seconds / steps,
                 1e3 * stats.exchange_seconds / steps, 1e3 * stats.exchange_cpu_seconds / steps,
                 format_bytes(double(stats.exchange_bytes) / steps).c_str(), format_bytes(double(supernet_bytes)).c_str(),
                 1e3 * stats.update_seconds / steps);
  }
  if (root) memory.print_peak();
  a.report.result("meta cell: {} ({} meta-epochs{}; took {})", cell_path, a.meta_epochs,
                  last_val >= 0 ? fmt::format(", meta-validation accuracy {:.4f}", last_val) : "", time.describe());
  nlohmann::json summary{{"meta_cell", cell_path},
                         {"memory", memory.to_json()},
                         {"meta_cell_bytes", meta_cell_bytes},
                         {"cells_bytes", cells_bytes},
                         {"file_bytes", file_bytes},
                         {"val_accuracy", last_val >= 0 ? nlohmann::json(last_val) : nlohmann::json()},
                         {"meta_epochs", a.meta_epochs},
                         {"space", space.to_json()},
                         {"meta_train_time", time.to_json()},
                         {"seconds", seconds_since(started)},
                         {"outputs", {{"meta_cell", cell_path}, {"log", log_path}, {"checkpoint", ckpt}}}};
  if (!scale_out.is_null()) summary["scale_out"] = scale_out;
  a.report.document(summary);
}

// ---------------------------------------------------------------------------------
// onnas adapt / eval-fewshot

struct AdaptArgs {
  FewShotDataOptions data;
  SpaceOptions space;  // with --random-init
  EpisodeOptions episode;
  // The paper's on-device configuration: every memory technique, micro-batches where
  // they divide the support set.
  StepOptions step{.mode = "ops+pairs+sbs", .sbs = "recompute", .memory_budget = {}, .k_grad = 2, .split = 0};
  std::string meta_cell;
  bool random_init = false;
  // Held-out classes are new to any classifier a meta cell holds (its rows belong to
  // the meta-train classes, or to the average of random label orders): zero by default.
  std::string head = "zero";
  int search_steps = 10, finetune_steps = 40;
  float finetune_lr = 0.02f;
  int64_t query_chunk = 0;  // 0: the whole query set (with --memory-budget: the largest chunk that fits)
  std::string query_stats = "auto";  // nas::AdaptOptions::QueryStats
  // Unset (empty / 0): the meta cell's inner optimizer and learning rates, so that the
  // device adapts as meta-training taught the cell to; adam 3e-3 (arch 3e-4) from a
  // random start.
  SearchOptimizerOptions search{.optimizer = "", .lr = 0, .arch_lr = 0};
  uint64_t task = 0;
  int tasks = 600;  // the published protocols' number of meta-test tasks
  uint64_t seed = 1;
  int threads = 0;
  OutDir out;  // optional: adapt writes genotype.json and result.json, eval-fewshot tasks.jsonl and summary.json
  Output report;
  explicit AdaptArgs(std::string command) : report(std::move(command)) {}
};

// Before any work: the start is given once, the output folder is usable, and the
// flags the start makes moot are named.
void check_adapt_args(const AdaptArgs& a, const CLI::App& cmd, const Distributed& dist) {
  if (a.meta_cell.empty() == !a.random_init)
    usage_fail("give either --meta-cell FILE (adapt from a meta cell) or --random-init (the baseline)");
  if (!a.out.path.empty() && dist.is_root()) a.out.check();
  if (!a.meta_cell.empty()) warn_ignored(cmd, SpaceOptions::kFlags, "the meta cell holds its space");
  a.step.warn_ignored(cmd);
  a.data.warn_ignored(cmd);
}

struct Adaptation {
  nas::SearchSpace space;
  std::unique_ptr<nas::FewShotAdapter> adapter;
  nas::TaskSource tasks;
  std::string start;  // what the supernet starts from
  std::string procedure;  // the search and fine-tuning every task gets
  size_t counted = 0;  // --memory-budget: the bytes the step's choice counted (data, task, ..., the step)
};

// The search's weight optimizer, learning rate and weight decay, and its architecture
// step's rate: from a random start the search step's, from a meta cell its inner loop's.
struct InnerOptimizer {
  std::string optimizer = "adam";
  float lr = 3e-3f;
  float weight_decay = nas::SearchOptions{}.w_weight_decay;
  float arch_lr = nas::SearchOptions{}.a_lr;  // of alpha at T = 1
};

// The inner loop's weight optimizer, learning rate and weight decay, and its
// architecture rate, a meta cell was trained with (its "run" metadata); the default for
// what it does not say (meta-train records the architecture rate only when it is not
// the default).
InnerOptimizer meta_cell_inner_optimizer(const std::map<std::string, std::string>& metadata, const std::string& path) {
  InnerOptimizer r;
  auto it = metadata.find("run");
  if (it == metadata.end()) return r;
  // The run's settings nest three levels ({"space": {"ops": [...]}}).
  const auto j = parse_json(it->second, path + ": run metadata", {.max_depth = 3, .max_array = nas::kMaxCells});
  if (j.is_object() && j.contains("inner_optimizer") && j["inner_optimizer"].is_string() &&
      std::ranges::count(nas::kWeightOptimizerNames, j["inner_optimizer"].get<std::string>()) > 0)
    r.optimizer = j["inner_optimizer"].get<std::string>();
  if (j.is_object() && j.contains("inner_lr") && j["inner_lr"].is_number() && j["inner_lr"].get<double>() > 0 &&
      j["inner_lr"].get<double>() < 1e6)
    r.lr = j["inner_lr"].get<float>();
  if (j.is_object() && j.contains("inner_weight_decay") && j["inner_weight_decay"].is_number() &&
      j["inner_weight_decay"].get<double>() >= 0 && j["inner_weight_decay"].get<double>() <= 1)
    r.weight_decay = j["inner_weight_decay"].get<float>();
  if (j.is_object() && j.contains("inner_arch_lr") && j["inner_arch_lr"].is_number() &&
      j["inner_arch_lr"].get<double>() > 0 && j["inner_arch_lr"].get<double>() < 1e6)
    r.arch_lr = j["inner_arch_lr"].get<float>();
  return r;
}

struct TaskBuffers {
  Buffer sx, sy, qx, qy;
  nas::Task task;
  // What the four buffers take: images as f32, labels as i32.
  static size_t bytes(const nas::SearchSpace& s, data::EpisodeShape e) {
    const int64_t img = int64_t(s.in_channels) * s.height * s.width;
    return size_t(e.n_way * (e.k_shot + e.q_query) * (img + 1)) * 4;
  }
  TaskBuffers(const nas::SearchSpace& s, data::EpisodeShape e) {
    const int64_t ns = e.n_way * e.k_shot, nq = e.n_way * e.q_query, img = int64_t(s.in_channels) * s.height * s.width;
    sx = Buffer(size_t(ns * img) * 4), sy = Buffer(size_t(ns) * 4);
    qx = Buffer(size_t(nq * img) * 4), qy = Buffer(size_t(nq) * 4);
    task = {Tensor(sx.data(), Shape{ns, s.in_channels, s.height, s.width}), Tensor(sy.data(), Shape{ns}, DType::i32),
            Tensor(qx.data(), Shape{nq, s.in_channels, s.height, s.width}), Tensor(qy.data(), Shape{nq}, DType::i32)};
  }
};

// `unreserved`: bytes a first set-up held beyond what the choice reserved (its
// bookkeeping, the query evaluation's tables), reserved this time beside the rest.
Adaptation prepare_adaptation(const AdaptArgs& a, FewShotData& d, size_t unreserved = 0) {
  Adaptation r;
  ParamStore start;
  InnerOptimizer inner;
  float temperature = 1.0f;  // the meta cell's logits are alpha / T (nas/meta_train.h)
  if (a.random_init) {
    r.space = a.space.space(d.C, d.H, d.W, a.episode.way);
    nas::init_search_params(start, r.space, a.seed);
    r.start = fmt::format("random initialization (seed {})", a.seed);
  } else {
    nas::MetaCellFile f = nas::load_meta_cell(a.meta_cell, start);
    r.space = f.space;
    if (r.space.classes != a.episode.way)
      fail("{}: the meta cell's classifier has {} classes; use --way {}", a.meta_cell, r.space.classes,
           r.space.classes);
    if (r.space.in_channels != d.C || r.space.height != d.H || r.space.width != d.W)
      fail("{}: the meta cell takes {}x{}x{} images, the data has {}x{}x{}", a.meta_cell, r.space.in_channels,
           r.space.height, r.space.width, d.C, d.H, d.W);
    r.start = fmt::format("meta cell {} ({} meta-epochs)", a.meta_cell,
                          f.metadata.count("meta_epoch") ? f.metadata.at("meta_epoch") : "?");
    inner = meta_cell_inner_optimizer(f.metadata, a.meta_cell);
    temperature = nas::meta_cell_temperature(f.metadata, a.meta_cell);
  }
  const std::string optimizer = a.search.optimizer.empty() ? inner.optimizer : a.search.optimizer;
  const float lr = a.search.lr > 0 ? a.search.lr : inner.lr;
  nas::AdaptOptions o;
  o.episode = a.episode.shape();
  o.search_steps = a.search_steps;
  o.finetune_steps = a.finetune_steps;
  o.finetune_lr = a.finetune_lr;
  o.head = nas::parse_head_init(a.head);
  o.search.w_lr = o.search.w_lr_min = lr;
  o.search.w_optimizer = nas::parse_weight_optimizer(optimizer);
  const float arch_lr = a.search.arch_lr > 0 ? a.search.arch_lr : inner.arch_lr;
  o.search.a_lr = arch_lr / temperature;  // --arch-lr is the rate of alpha (T = 1)
  o.search.w_weight_decay = a.search.weight_decay_or(inner.weight_decay);
  o.search.batch = a.episode.way * a.episode.shot;
  o.query_chunk = a.query_chunk;
  o.query_stats = a.query_stats == "query-set"     ? nas::AdaptOptions::QueryStats::query_set
                  : a.query_stats == "micro-batch" ? nas::AdaptOptions::QueryStats::micro_batch
                                                   : nas::AdaptOptions::QueryStats::automatic;
  a.step.apply(r.space, o.search);
  if (a.step.has_budget()) {
    // The task's buffers and the starting supernet live through the search; the query
    // evaluation runs in chunks that fit the arena the rest needs (unless --query-chunk).
    const size_t task_bytes = TaskBuffers::bytes(r.space, o.episode);
    // The discrete network's fine-tuning runs in the search's arena: the arena is the
    // larger of the two, so the search step may use the fine-tuning's share for free.
    const size_t finetune = nas::estimate_finetune_arena(r.space, o.episode);
    r.counted = choose_inner_step(a.step, r.space, o.search, a.seed, d, task_bytes + start.bytes() + finetune + unreserved,
                      fmt::format("the task, the starting supernet{} and the discrete network's fine-tuning ({})",
                                  unreserved ? fmt::format(", what a set-up holds beyond the choice (bookkeeping and "
                                                           "the query evaluation's tables: {})",
                                                           format_bytes(double(unreserved)))
                                             : std::string(),
                                  format_bytes(double(finetune))),
                      finetune);
    if (a.query_chunk == 0) o.query_chunk = nas::AdaptOptions::kFitQueryChunk;
  }
  r.adapter = std::make_unique<nas::FewShotAdapter>(r.space, o, std::move(start));
  r.procedure = fmt::format("search {} steps ({}; {} lr {}{}{}{}), fine-tune {} steps", a.search_steps,
                            o.search.step.describe(), optimizer, lr,
                            o.search.w_weight_decay != nas::SearchOptions{}.w_weight_decay
                                ? fmt::format(" weight decay {:g}", o.search.w_weight_decay)
                                : std::string(),
                            temperature != 1.0f ? fmt::format("; alpha at temperature {:g}, arch lr {:g}", temperature,
                                                              o.search.a_lr)
                            : arch_lr != nas::SearchOptions{}.a_lr ? fmt::format("; arch lr {:g}", arch_lr)
                                                                   : std::string(),
                            a.head == "meta" ? "" : "; classifier from " + a.head, a.finetune_steps);
  r.tasks = d.tasks(FewShotData::meta_test, o.episode, a.seed);
  return r;
}

void add_adaptation_plan(MemoryReport& m, const nas::FewShotAdapter& ada, const FewShotData& d, const TaskBuffers& tb) {
  const int64_t nq = tb.task.query_x.shape()[0];
  m.plan(fmt::format("arena of a task, the largest of: search {}{}, query evaluation {} ({}), discrete network {} "
                     "(estimated)",
                     format_bytes(double(ada.search_plan_bytes())),
                     ada.search_handed_bytes() ? fmt::format(" (of which handed between SBS phases {})",
                                                             format_bytes(double(ada.search_handed_bytes())))
                                               : std::string(),
                     format_bytes(double(ada.query_arena_bytes())),
                     ada.query_per_chunk_stats()
                         ? fmt::format("groups of {} of {} images, each by its own statistics", ada.query_chunk(), nq)
                     : ada.query_chunk() < nq ? fmt::format("chunks of {} of {} images", ada.query_chunk(), nq)
                                            : fmt::format("{} images at once", nq),
                     format_bytes(double(ada.discrete_estimate_bytes()))),
         ada.planned_arena_bytes());
  m.plan("supernet, gradients and optimizer state", ada.search_persistent_bytes());
  m.plan("starting supernet", ada.start_bytes());
  m.plan("program tables", ada.table_bytes());
  m.data("images", d.bytes());
  m.data("task", tb.sx.bytes() + tb.sy.bytes() + tb.qx.bytes() + tb.qy.bytes());
}

// An adaptation set up: the adapter, the task's buffers and the memory report (with
// the bookkeeping measured).
struct PreparedAdaptation {
  Adaptation ad;
  std::unique_ptr<TaskBuffers> tb;
  MemoryReport memory;
};

// Sets the adaptation up. Under --memory-budget the bookkeeping is known only once set
// up: when plan + data with it exceed the budget, the set-up is made again with the
// search step chosen for what the measured bookkeeping leaves.
//
// The first choice already reserves what a set-up holds beyond it
// (kSetUpReserveBytes): choosing again after a set-up that did not fit comes too late
// for the peak.
std::unique_ptr<PreparedAdaptation> prepare_within_budget(const AdaptArgs& a, FewShotData& d, const std::string& what) {
  size_t unreserved = a.step.has_budget() ? kSetUpReserveBytes : 0;
  for (int attempt = 0;; ++attempt) {
    auto p = std::make_unique<PreparedAdaptation>(
        PreparedAdaptation{prepare_adaptation(a, d, unreserved), nullptr, MemoryReport(what)});
    p->tb = std::make_unique<TaskBuffers>(p->ad.space, a.episode.shape());
    add_adaptation_plan(p->memory, *p->ad.adapter, d, *p->tb);
    const size_t measured = p->memory.add_bookkeeping();
    const size_t held = p->memory.plan_bytes() + p->memory.data_bytes();
    if (!a.step.has_budget() || held <= a.step.budget_bytes() || attempt == 2) return p;
    // What the choice did not see (the bookkeeping, the query evaluation's tables,
    // beyond the reserve) is taken from the search step's share.
    unreserved += held > p->ad.counted ? held - p->ad.counted : 0;
    std::fprintf(stderr,
                 "set up, the task holds %s, %s over the budget (the bookkeeping, %s, and the query evaluation's tables "
                 "took more than was reserved for them): choosing again\n",
                 format_bytes(double(held)).c_str(), format_bytes(double(held - a.step.budget_bytes())).c_str(),
                 format_bytes(double(measured)).c_str());
  }
}

// After the tasks: a genotype whose discrete network needed more than the estimate grew
// the arena (warned, and counted), then the peak RSS against the plan.
void report_discrete_arena(const nas::FewShotAdapter& ada, MemoryReport& m) {
  if (ada.arena_bytes() > ada.planned_arena_bytes()) {
    std::fprintf(stderr,
                 "onnas: warning: a discrete network needed an arena of %s, more than the %s planned from the estimate "
                 "(one op on every edge, each op in turn): the arena grew\n",
                 format_bytes(double(ada.discrete_arena_bytes())).c_str(),
                 format_bytes(double(ada.planned_arena_bytes())).c_str());
    m.plan("arena growth for a discrete network beyond the estimate", ada.arena_bytes() - ada.planned_arena_bytes());
  }
  m.print_peak();
}

// One task: rank 0 alone runs it.
void run_adapt(const AdaptArgs& a, const CLI::App& cmd, Distributed& dist) {
  if (!dist.is_root()) return;
  check_adapt_args(a, cmd, dist);
  set_threads(a.threads, dist);
  FewShotData d = load_adaptation_data(a.data, a.meta_cell, a.step.has_budget());
  std::unique_ptr<PreparedAdaptation> prepared = prepare_within_budget(a, d, "adapt");
  Adaptation& ad = prepared->ad;
  TaskBuffers& tb = *prepared->tb;
  MemoryReport& memory = prepared->memory;
  memory.print_plan();
  check_budget(a.step, memory, "the query evaluation and the discrete network's fine-tuning");
  ad.tasks(a.task, tb.task);
  nas::AdaptResult r = ad.adapter->adapt(tb.task, nas::task_seed(a.seed, a.task));
  nas::FewShotAdapter& ada = *ad.adapter;
  report_discrete_arena(ada, memory);
  std::fprintf(stderr,
               "adapt: %s\n  from %s\n  meta-test task %llu%s, %d-way %d-shot, %d queries; %s\n  search memory (planned): arena %s (of which handed between SBS phases %s) + persistent %s = %s; "
               "discrete arena %s; peak RSS %s\n",
               ad.space.describe().c_str(), ad.start.c_str(), (unsigned long long)a.task, d.test_classes_text().c_str(),
               a.episode.way, a.episode.shot,
               a.episode.query, ad.procedure.c_str(), format_bytes(double(ada.search_arena_bytes())).c_str(),
               format_bytes(double(ada.search_handed_bytes())).c_str(),
               format_bytes(double(ada.search_persistent_bytes())).c_str(),
               format_bytes(double(ada.search_arena_bytes() + ada.search_persistent_bytes()))
                   .c_str(),
               format_bytes(double(ada.discrete_arena_bytes())).c_str(), format_bytes(double(peak_rss_bytes())).c_str());
  a.report.result("{}\nquery accuracy {:.4f} (supernet after search {:.4f}), {:.2f} s", r.genotype.str(), r.accuracy,
                  r.supernet_accuracy, r.seconds);
  nlohmann::json doc{{"genotype", r.genotype.to_json()},
                     {"genotype_darts", r.genotype.str()},
                     {"task", a.task},
                     {"accuracy", r.accuracy},
                     {"supernet_accuracy", r.supernet_accuracy},
                     {"search_arena_bytes", ada.search_arena_bytes()},
                     {"search_handed_bytes", ada.search_handed_bytes()},
                     {"search_persistent_bytes", ada.search_persistent_bytes()},
                     {"discrete_arena_bytes", ada.discrete_arena_bytes()},
                     {"seconds", r.seconds},
                     {"memory", memory.to_json()},
                     {"outputs", nlohmann::json::object()}};
  if (!a.out.path.empty()) {
    a.out.create();
    doc["outputs"] = {{"genotype", a.out.file("genotype.json")}, {"result", a.out.file("result.json")}};
    save_genotype_file(a.out.file("genotype.json"), r.genotype, ad.space);
    write_file_atomic(a.out.file("result.json"), doc.dump(2) + "\n");
  }
  a.report.document(doc);
}

void run_eval_fewshot(const AdaptArgs& a, const CLI::App& cmd, Distributed& dist) {
  check_adapt_args(a, cmd, dist);
  const auto started = std::chrono::steady_clock::now();
  set_threads(a.threads, dist);
  if (a.tasks < 1) usage_fail("--tasks must be at least 1");
  FewShotData d = load_adaptation_data(a.data, a.meta_cell, a.step.has_budget());
  std::unique_ptr<PreparedAdaptation> prepared = prepare_within_budget(a, d, "eval-fewshot");
  Adaptation& ad = prepared->ad;
  TaskBuffers& tb = *prepared->tb;
  MemoryReport& memory = prepared->memory;
  const bool root = dist.is_root();
  if (root) {
    std::fprintf(stderr, "eval-fewshot: %s\n  from %s\n  %d meta-test tasks%s, %d-way %d-shot, %d queries; %s\n",
                 ad.space.describe().c_str(), ad.start.c_str(), a.tasks, d.test_classes_text().c_str(), a.episode.way,
                 a.episode.shot, a.episode.query, ad.procedure.c_str());
    memory.print_plan();
  }
  check_budget(a.step, memory, "the query evaluation and the discrete network's fine-tuning");
  // Per task: accuracy after fine-tuning, then of the supernet after search; task t on
  // rank t % P, gathered in task order (so the interval is one process's).
  std::vector<double> results(size_t(2 * a.tasks), 0.0);
  int64_t mine = 0;
  for (int t = 0; t < a.tasks; ++t) mine += dist.owns(t);
  std::optional<Progress> bar;
  if (root)
    bar.emplace(dist.size() == 1 ? std::string("tasks") : fmt::format("rank 0's tasks of {}", a.tasks), mine, "tasks");
  std::vector<double> acc, sup;  // this rank's, for the bar
  for (int t = 0; t < a.tasks; ++t) {
    if (!dist.owns(t)) continue;
    dist.run_slot(fmt::format("meta-test task {}", t), [&] {
      ad.tasks(uint64_t(t), tb.task);
      nas::AdaptResult r = ad.adapter->adapt(tb.task, nas::task_seed(a.seed, uint64_t(t)));
      results[size_t(2 * t)] = r.accuracy;
      results[size_t(2 * t + 1)] = r.supernet_accuracy;
      acc.push_back(r.accuracy);
    });
    Interval ci = confidence95(acc);
    if (bar) bar->update(int64_t(acc.size()), fmt::format("accuracy {:.4f} +- {:.4f}", ci.mean, ci.half));
  }
  dist.gather_slots(results);
  acc.clear();
  for (int t = 0; t < a.tasks; ++t) {
    acc.push_back(results[size_t(2 * t)]);
    sup.push_back(results[size_t(2 * t + 1)]);
  }
  Interval ci = confidence95(acc), si = confidence95(sup);
  if (!root) return;
  bar->finish(fmt::format("accuracy {:.4f} +- {:.4f}", ci.mean, ci.half));
  report_discrete_arena(*ad.adapter, memory);
  if (a.tasks < 2)
    a.report.result("{}-way {}-shot over 1 meta-test task: accuracy {:.2f}% (no interval from one task); supernet after "
                    "search {:.2f}%",
                    a.episode.way, a.episode.shot, 100 * ci.mean, 100 * si.mean);
  else
    a.report.result("{}-way {}-shot over {} meta-test tasks: accuracy {:.2f}% +- {:.2f}% (95% Student-t interval); "
                    "supernet after search {:.2f}% +- {:.2f}%",
                    a.episode.way, a.episode.shot, a.tasks, 100 * ci.mean, 100 * ci.half, 100 * si.mean, 100 * si.half);
  nlohmann::json doc{{"accuracy", ci.mean},
                     {"interval95", ci.half},
                     {"supernet_accuracy", si.mean},
                     {"supernet_interval95", si.half},
                     {"tasks", a.tasks},
                     {"start", ad.start},
                     {"procedure", ad.procedure},
                     {"seconds", seconds_since(started)},
                     {"memory", memory.to_json()},
                     {"outputs", nlohmann::json::object()}};
  if (!a.out.path.empty()) {
    std::string lines;
    for (int t = 0; t < a.tasks; ++t)
      lines += nlohmann::json{{"task", t}, {"accuracy", acc[size_t(t)]}, {"supernet_accuracy", sup[size_t(t)]}}.dump() + "\n";
    a.out.create();
    doc["outputs"] = {{"tasks", a.out.file("tasks.jsonl")}, {"summary", a.out.file("summary.json")}};
    write_file_atomic(a.out.file("tasks.jsonl"), lines);
    write_file_atomic(a.out.file("summary.json"), doc.dump(2) + "\n");
  }
  a.report.document(doc);
}

void add_adapt_options(CLI::App* cmd, AdaptArgs& a) {
  a.data.add(*cmd);
  a.space.add(*cmd);
  a.episode.add(*cmd);
  a.step.add(*cmd);
  cmd->add_option("--meta-cell", a.meta_cell, "Meta cell file (from onnas meta-train)");
  cmd->add_flag("--random-init", a.random_init, "Start from a random supernet instead (the baseline; space options apply)");
  cmd->add_option("--head", a.head,
                  "Classifier at each task's start, and the discrete network's: zero (default; held-out classes are "
                  "new to any classifier) or meta (the starting supernet's)")
      ->check(CLI::IsMember({"meta", "zero"}));
  cmd->add_option("--search-steps", a.search_steps, "On-device search steps on the support set")->check(CLI::Range(0, 100000));
  a.search.add(*cmd,
               "Weight learning rate of the search (default: the meta cell's inner learning rate; 3e-3 from a random "
               "start)",
               fmt::format("Weight optimizer of the search: {} (momentum 0.9) (default: the meta cell's inner "
                           "optimizer; adam from a random start)",
                           kWeightOptimizerChoices),
               "L2 weight decay of the search's weights, added to their gradients (default: the meta cell's inner "
               "weight decay; 3e-4 from a random start)",
               "Architecture (alpha, beta) learning rate of the search, Adam with betas 0.5, 0.999 (default: the "
               "meta cell's inner one; 3e-4 from a random start)");
  add_renamed(*cmd, "--search-lr", "--lr", a.search.lr);
  add_renamed(*cmd, "--search-optimizer", "--optimizer", a.search.optimizer);
  cmd->add_option("--finetune-steps", a.finetune_steps, "Fine-tuning steps of the discrete network (0: report the supernet)")
      ->check(CLI::Range(0, 100000));
  cmd->add_option("--query-chunk", a.query_chunk,
                  "Query images evaluated at once, a divisor of way x query; batch norm still uses the whole query "
                  "set's statistics, so accuracy does not change (default: all at once; with --memory-budget the "
                  "largest chunk that fits)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--query-stats", a.query_stats,
                  "Whose statistics batch norm uses when the searched supernet is measured on the query set: "
                  "query-set (all of it; --query-chunk does not change them), micro-batch (each group of as many "
                  "query images as a micro-batch of the search, one of every class, by its own statistics, as the "
                  "supernet was while it adapted; --query-chunk is then ignored) or auto (micro-batch when the search "
                  "splits the support set). The discrete network is measured with the query set's")
      ->check(CLI::IsMember({"auto", "query-set", "micro-batch"}));
  cmd->add_option("--finetune-lr", a.finetune_lr, "Fine-tuning SGD learning rate (Nesterov 0.9, cosine)");
  cmd->add_option("--seed", a.seed, "Random seed (tasks and adaptation)");
  cmd->add_option("--threads", a.threads, "Threads (default: all cores)")->check(CLI::Range(1, 1024));
  a.report.add(*cmd);
}

}  // namespace

void add_meta_commands(CLI::App& app) {
  auto m = std::make_shared<MetaTrainArgs>();
  CLI::App* cmd = app.add_subcommand("meta-train", "Meta-learn a meta cell over few-shot tasks (two-fold Reptile)");
  m->data.add(*cmd);
  m->space.add(*cmd);
  m->episode.add(*cmd);
  m->step.add(*cmd);
  cmd->add_option("--meta-batch", m->meta_batch, "Tasks per meta step")->check(CLI::Range(1, 100000));
  cmd->add_option("--inner-steps", m->inner_steps, "First-order DARTS steps per task")->check(CLI::Range(1, 100000));
  cmd->add_option("--inner-batch", m->inner_batch,
                  "Images per inner step, drawn from the task's support set and reshuffled after each pass "
                  "(Reptile's minibatches; 0: the whole support set every step). Meta-train with more shots than "
                  "you test, e.g. --shot 5 --inner-batch 10 for 1-shot tasks")
      ->check(CLI::Range(int64_t(0), int64_t(100000)));
  m->inner.add(*cmd, "Weight learning rate of the inner loop (each task's search steps)",
               fmt::format("Weight optimizer of the inner loop: {} (momentum 0.9)", kWeightOptimizerChoices),
               "L2 weight decay of the inner loop's weights, added to their gradients (default 3e-4; recorded in the "
               "meta cell for adapt and eval-fewshot). With Adam, a decay that outweighs the gradient moves every "
               "weight by the learning rate toward 0 at each step",
               "Architecture (alpha, beta) learning rate of the inner loop at temperature 1 (Adam, betas 0.5, 0.999; "
               "default 3e-2, recorded in the meta cell for adapt and eval-fewshot)");
  add_renamed(*cmd, "--inner-lr", "--lr", m->inner.lr);
  add_renamed(*cmd, "--inner-optimizer", "--optimizer", m->inner.optimizer);
  cmd->add_option("--meta-epochs", m->meta_epochs, "Meta-epochs")->check(CLI::Range(1, 1000000));
  cmd->add_option("--steps-per-epoch", m->steps_per_epoch, "Meta steps per meta-epoch")->check(CLI::Range(1, 1000000));
  cmd->add_option("--warmup-epochs", m->warmup_epochs, "Meta-epochs that learn weights only")->check(CLI::Range(0, 1000000));
  cmd->add_option("--meta-lr", m->meta_lr, "Meta learning rate of the weights (SGD on the task fold)");
  cmd->add_option("--meta-arch-lr", m->meta_arch_lr, "Meta learning rate of alpha/beta (SGD on the task fold)");
  add_renamed(*cmd, "--lr-weights", "--meta-lr", m->meta_lr);
  add_renamed(*cmd, "--lr-arch", "--meta-arch-lr", m->meta_arch_lr);
  cmd->add_option("--temperature", m->temperature,
                  "Softmax temperature of alpha/beta: T, or START END to anneal geometrically after the warm-up "
                  "(default 1 0.1, as MetaNAS; 1 keeps it still); files keep alpha / T")
      ->expected(1, 2)
      ->check(CLI::PositiveNumber);
  cmd->add_option("--anneal-epochs", m->anneal_epochs,
                  "Meta-epochs over which --temperature goes from START to END (default: the run after the warm-up)")
      ->check(non_negative());
  cmd->add_option("--task-weighting", m->task_weighting, "Task fold: softmax (exponential coefficients) or mean")
      ->check(CLI::IsMember({"softmax", "mean"}));
  cmd->add_option("--head", m->head,
                  "Classifier at each task's start: zero (the meta classifier stays zero) or meta (Reptile learns it too)")
      ->check(CLI::IsMember({"zero", "meta"}));
  cmd->add_option("--labels", m->labels,
                  "Labels of the meta-train tasks: random (class order as drawn) or sorted (by class id: with a split "
                  "of N classes, each keeps its label in every task)")
      ->check(CLI::IsMember({"random", "sorted"}));
  add_switch(*cmd, "--cell-fold", m->cell_fold, "Fold the cells into one meta cell after each meta step");
  cmd->add_option("--val-every", m->val_every, "Meta-validate every N meta-epochs (0: never)")->check(non_negative());
  cmd->add_option("--val-tasks", m->val_tasks, "Tasks per meta-validation")->check(CLI::Range(1, 100000));
  cmd->add_option("--checkpoint-every", m->checkpoint_every, "Checkpoint every N meta-epochs (0: only at the end)")
      ->check(non_negative());
  cmd->add_flag("--resume", m->resume,
                "Continue from OUT/checkpoint.safetensors (same settings and seed; --meta-epochs may grow)");
  cmd->add_option("--seed", m->seed, "Random seed");
  cmd->add_option("--threads", m->threads, "Threads (default: all cores)")->check(CLI::Range(1, 1024));
  m->out.add(*cmd, "runs/meta", "Output folder: meta_cell.safetensors, checkpoint.safetensors, meta_log.jsonl");
  m->report.add(*cmd);
  add_check_numerics_flag(*cmd);
  // Every command that may run under mpirun: on several ranks an error ends the job
  // with one line naming the rank (distributed.h).
  cmd->callback([m, cmd] {
    Distributed& dist = Distributed::world();
    dist.run_slot("meta-train", [&] { run_meta_train(*m, *cmd, dist); });
  });

  auto a = std::make_shared<AdaptArgs>("adapt");
  CLI::App* acmd = app.add_subcommand("adapt", "On-device search from a meta cell on one meta-test task");
  add_adapt_options(acmd, *a);
  acmd->add_option("--task", a->task, "Which meta-test task (an index; tasks are a function of --seed and it)");
  a->out.add(*acmd, "", "Output folder for genotype.json and result.json (default: none written)");
  add_check_numerics_flag(*acmd);
  acmd->callback([a, acmd] {
    Distributed& dist = Distributed::world();
    dist.run_slot("adapt", [&] { run_adapt(*a, *acmd, dist); });
  });

  auto e = std::make_shared<AdaptArgs>("eval-fewshot");
  CLI::App* ecmd = app.add_subcommand("eval-fewshot", "Adapt to many meta-test tasks: mean accuracy and 95% interval");
  add_adapt_options(ecmd, *e);
  ecmd->add_option("--tasks", e->tasks,
                   "Meta-test tasks (default 600, the published protocols' number; mean and 95% Student-t interval)")
      ->check(CLI::Range(1, 1000000));
  e->out.add(*ecmd, "", "Output folder for tasks.jsonl (each task's accuracy) and summary.json (default: none written)");
  ecmd->callback([e, ecmd] {
    Distributed& dist = Distributed::world();
    dist.run_slot("eval-fewshot", [&] { run_eval_fewshot(*e, *ecmd, dist); });
  });
}

}  // namespace onnas::app
