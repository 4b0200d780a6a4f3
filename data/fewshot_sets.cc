#include "data/fewshot_sets.h"

#include <algorithm>
#include <filesystem>

#include "data/rotations.h"
#include "runtime/error.h"

namespace onnas::data {

namespace fs = std::filesystem;

namespace {

// A set that owns what it views: the tree, the decoded-image set over it, and the
// rotated classes over that.
struct OwnedSet {
  std::shared_ptr<const ImageFolderIndex> tree;
  std::shared_ptr<FolderImages> images;
  std::shared_ptr<RotatedClasses> rotated;
};

std::shared_ptr<const ImageSet> make_set(ImageFolderIndex tree, const ImageLoadOptions& load, const StreamOptions& stream,
                                         const std::vector<std::pair<int32_t, int>>* turns) {
  auto owned = std::make_shared<OwnedSet>();
  owned->tree = std::make_shared<const ImageFolderIndex>(std::move(tree));
  owned->images = std::make_shared<FolderImages>(owned->tree, load, stream);
  if (turns) owned->rotated = std::make_shared<RotatedClasses>(*owned->images, *turns);
  // The aliasing constructor: the returned pointer keeps all three alive.
  const ImageSet* set = owned->rotated ? static_cast<const ImageSet*>(owned->rotated.get()) : owned->images.get();
  return std::shared_ptr<const ImageSet>(owned, set);
}

std::string summary(const char* split, const ImageSet& s, const std::string& from) {
  return fmt::format("{}: {} classes, {} images ({})", split, s.num_classes, s.N, from);
}

}  // namespace

FewShotSets open_omniglot(const OmniglotOptions& o) {
  const ImageLoadOptions load{.channels = 1, .height = o.image_size, .width = o.image_size};
  const std::string background = (fs::path(o.root) / "images_background").string();
  const std::string evaluation = (fs::path(o.root) / "images_evaluation").string();
  std::error_code ec;
  FewShotSets s;
  const char* names[3] = {"meta-train", "meta-val", "meta-test"};
  std::vector<std::string> lines;
  if (o.split_dir.empty()) {
    for (const std::string& d : {background, evaluation})
      if (!fs::is_directory(d, ec))
        fail("Omniglot layout: '{}' is not a folder (expected <root>/images_background and <root>/images_evaluation)", d);
    const ImageFolderIndex bg = list_image_folder(background, 2), ev = list_image_folder(evaluation, 2);
    std::vector<std::pair<int32_t, int>> bg_turns = RotatedClasses::all_turns(bg.num_classes());
    std::vector<std::pair<int32_t, int>> ev_turns = RotatedClasses::all_turns(ev.num_classes());
    s.sets[FewShotSets::meta_train] = make_set(bg, load, o.stream, o.rotations ? &bg_turns : nullptr);
    s.sets[FewShotSets::meta_val] = s.sets[FewShotSets::meta_train];  // other tasks of the same classes
    s.sets[FewShotSets::meta_test] = make_set(ev, load, o.stream, o.rotations ? &ev_turns : nullptr);
    const std::string rot = o.rotations ? ", with rotations" : "";
    lines = {summary(names[0], *s.sets[0], background + rot), summary(names[1], *s.sets[1], "other tasks of meta-train"),
             summary(names[2], *s.sets[2], evaluation + rot)};
  } else {
    std::vector<std::string> roots;
    for (const std::string& d : {background, evaluation, o.root})
      if (fs::is_directory(d, ec)) roots.push_back(d);
    const char* files[3] = {"train.txt", "val.txt", "test.txt"};
    for (int k = 0; k < 3; ++k) {
      const std::string list = (fs::path(o.split_dir) / files[k]).string();
      if (k == FewShotSets::meta_val && !fs::exists(list, ec)) {
        s.sets[k] = s.sets[FewShotSets::meta_train];
        lines.push_back(summary(names[k], *s.sets[k], "no val.txt: other tasks of meta-train"));
        continue;
      }
      const std::vector<ListedClass> listed = read_class_list(list);
      ImageFolderIndex tree = list_listed_classes(listed, roots, list);
      // (folder's class id, turns) per listed line; lines without a rotation are the
      // folder as it is, or all four turns with `rotations`.
      std::vector<std::pair<int32_t, int>> turns;
      bool any_rotation = o.rotations;
      for (const ListedClass& c : listed) {
        const int32_t id =
            int32_t(std::find(tree.class_names.begin(), tree.class_names.end(), c.folder) - tree.class_names.begin());
        if (c.quarter_turns >= 0) {
          any_rotation = true;
          turns.emplace_back(id, c.quarter_turns);
        } else if (o.rotations) {
          for (int r = 0; r < 4; ++r) turns.emplace_back(id, r);
        } else {
          turns.emplace_back(id, 0);
        }
      }
      std::sort(turns.begin(), turns.end());
      turns.erase(std::unique(turns.begin(), turns.end()), turns.end());
      s.sets[k] = make_set(std::move(tree), load, o.stream, any_rotation ? &turns : nullptr);
      lines.push_back(summary(names[k], *s.sets[k], list + (any_rotation ? ", rotations as classes" : "")));
    }
  }
  s.description = fmt::format("Omniglot layout {}\n  {}\n  {}\n  {}", o.root, lines[0], lines[1], lines[2]);
  return s;
}

FewShotSets open_mini_imagenet(const MiniImageNetOptions& o) {
  const ImageLoadOptions load{.channels = o.channels, .height = o.image_size, .width = o.image_size};
  const char* splits[3] = {"train", "val", "test"};
  const char* names[3] = {"meta-train", "meta-val", "meta-test"};
  std::error_code ec;
  FewShotSets s;
  std::vector<std::string> lines;
  const bool csv = fs::exists(fs::path(o.root) / "train.csv", ec);
  const std::vector<std::string> image_dirs = {(fs::path(o.root) / "images").string(), o.root};
  for (int k = 0; k < 3; ++k) {
    ImageFolderIndex tree;
    std::string from;
    if (csv) {
      from = (fs::path(o.root) / (std::string(splits[k]) + ".csv")).string();
      tree = list_csv_split(from, image_dirs);
    } else {
      from = (fs::path(o.root) / splits[k]).string();
      if (!fs::is_directory(from, ec))
        fail("miniImageNet layout: neither '{}' nor '{}' exists (expected train.csv, val.csv, test.csv or train/, val/, "
             "test/ class folders)",
             (fs::path(o.root) / (std::string(splits[k]) + ".csv")).string(), from);
      tree = list_image_folder(from, 1);
    }
    s.sets[k] = make_set(std::move(tree), load, o.stream, nullptr);
    lines.push_back(summary(names[k], *s.sets[k], from));
  }
  s.description = fmt::format("miniImageNet layout {}\n  {}\n  {}\n  {}", o.root, lines[0], lines[1], lines[2]);
  return s;
}

}  // namespace onnas::data
