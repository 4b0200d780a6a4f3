// The standard few-shot benchmarks as three ImageSets (meta-train, meta-validation,
// meta-test) in the layouts users keep them, images decoded from their files when an
// episode reads them (nothing is loaded up front).
//
//   FewShotSets s = open_omniglot({.root = "omniglot", .rotations = true});
//   EpisodeSampler test(*s.sets[FewShotSets::meta_test], {}, {.n_way = 20, .k_shot = 1, .q_query = 5}, seed);
//
// Omniglot (Lake et al.), and the glyph benchmark (data/glyphs.h) in its layout:
//   <root>/images_background/<alphabet>/<character>/*.png    meta-train (964 characters)
//   <root>/images_evaluation/<alphabet>/<character>/*.png    meta-test (659 characters)
// by default meta-validation draws other tasks from the background set. With split_dir,
// its train.txt, val.txt and test.txt (ProtoNets' "vinyals" split files: one
// "<alphabet>/<character>[/rotDDD]" per line; the folders are looked for in both image
// sets) choose the classes instead. `rotations` adds each class turned by 90, 180 and
// 270 degrees as three new classes (Vinyals et al.); a line naming a rotation is that
// class already.
// miniImageNet (Vinyals et al.; Ravi & Larochelle's split):
//   <root>/train.csv, val.csv, test.csv ("filename,label") with the images in
//   <root>/images/ (or <root>/images/<label>/, or <root>/), or else class trees
//   <root>/train/<class>/*, <root>/val/<class>/*, <root>/test/<class>/*.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/image_folder.h"
#include "data/streaming.h"

namespace onnas::data {

struct FewShotSets {
  enum Split { meta_train = 0, meta_val = 1, meta_test = 2 };
  // Each set's classes are the split's classes (all of them are drawn from).
  std::shared_ptr<const ImageSet> sets[3];
  std::string description;  // one line per split: where, classes, images
};

struct OmniglotOptions {
  std::string root;
  bool rotations = false;
  std::string split_dir;   // train.txt / val.txt / test.txt class lists; empty: background / evaluation
  int image_size = 28;     // Omniglot's 105 x 105 images are resized to this (glyphs are made at 28)
  StreamOptions stream;    // the decoded-image cache of each split
};
FewShotSets open_omniglot(const OmniglotOptions& options);

struct MiniImageNetOptions {
  std::string root;
  int image_size = 84;
  int channels = 3;
  StreamOptions stream;
};
FewShotSets open_mini_imagenet(const MiniImageNetOptions& options);

}  // namespace onnas::data
