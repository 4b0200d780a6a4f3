// The classifier at the start of a few-shot task (nas/ room; reads and writes a
// ParamStore, nothing else). ONNAS.md section 7 leaves it open; we offer two:
//
//   meta  the classifier the starting supernet holds (Reptile meta-learns it; from a
//         random initialization, random)
//   zero  zero weights and bias: the first step sets each class's row from its own
//         images
//
// A task's labels are a random order of its classes, so a meta-learned classifier
// holds only the average of random orders; with `zero` meta-training keeps the meta
// classifier at zero and the features learn what separates classes, whatever their
// order. When every task holds the same classes in the same order (a split of N
// classes with sorted labels, data::EpisodeShape::sorted_labels), `meta` gives the
// classifier one meaning, and that is what beat a random start on Fashion-MNIST (README,
// "Few-shot"); adaptation to held-out classes then starts from `zero`. (A nearest-prototype start, row c = 2 mu_c and bias -|mu_c|^2 as ProtoMAML
// does, was tried and dropped: its logits are squared distances, and the first steps
// from it diverged.)
#pragma once

#include <string>
#include <string_view>

#include "runtime/param_store.h"

namespace onnas::nas {

enum class HeadInit { meta, zero };

HeadInit parse_head_init(std::string_view name);  // throws onnas::Error naming the choices
const char* head_init_name(HeadInit h);

// Whether a parameter is the classifier's ("classifier.weight", "classifier.bias").
bool is_head_param(const std::string& name);

void zero_head(ParamStore& params);

}  // namespace onnas::nas
