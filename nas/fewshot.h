// On-device adaptation to one few-shot task (ONNAS.md section 7, "On the device"):
// from a starting supernet (a meta cell unfolded, or a random initialization), run the
// on-device search of sections 4-6 on the support set (in the memory mode of
// `options.search.step`), derive the genotype, build its discrete network from the
// searched weights, fine-tune it on the support set and measure the query set.
//
// Batch norm uses the statistics of the batch it sees (the support set while
// adapting, the query set when measuring), as few-shot learners usually do
// (MAML, MetaNAS): the running statistics of a handful of images mean little.
//
//   FewShotAdapter adapter(space, options, start_params);
//   AdaptResult r = adapter.adapt(task, seed);   // r.accuracy on the query set
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "graph/compile.h"
#include "nas/genotype.h"
#include "nas/head.h"
#include "nas/meta_train.h"
#include "nas/search.h"

namespace onnas::nas {

struct AdaptOptions {
  data::EpisodeShape episode;
  int search_steps = 10;  // on-device search steps on the support set
  SearchOptions search = MetaOptions::default_inner();  // batch is set to n_way * k_shot
  int finetune_steps = 40;  // 0: report the supernet's query accuracy only
  float finetune_lr = 0.02f;  // SGD, momentum 0.9, cosine to 0
  float finetune_weight_decay = 3e-4f;
  HeadInit head = HeadInit::meta;  // the classifier at the task's start (head.h); the
                                   // discrete network's restarts the same way
};

struct AdaptResult {
  Genotype genotype;
  float supernet_accuracy = 0;  // query, after the search
  float accuracy = 0;           // query, the fine-tuned discrete network (supernet's without fine-tuning)
  double seconds = 0;
};

class FewShotAdapter {
 public:
  // `start`: the supernet's weights and alpha/beta to start every task from (copied).
  FewShotAdapter(SearchSpace space, AdaptOptions options, const ParamStore& start);

  AdaptResult adapt(const Task& task, uint64_t seed);

  // Planned memory of the search on the device: the arena of its passes (values handed
  // between SBS phases included), and the persistent bytes: the supernet, its optimizer
  // state and the gradient block.
  size_t search_arena_bytes() const { return searcher_->arena_bytes(); }
  size_t search_handed_bytes() const { return searcher_->handed_bytes(); }
  size_t search_persistent_bytes() const { return work_.bytes() + searcher_->grad_bytes(); }
  // The largest arena of a discrete network's fine-tuning or query evaluation so far.
  size_t discrete_arena_bytes() const { return discrete_arena_bytes_; }
  // The query evaluation of the supernet (planned at construction; the discrete
  // network's programs are compiled per genotype and share its arena, grown when they
  // need more: not yet planned before the run).
  size_t query_arena_bytes() const { return query_.arena_bytes(); }
  // The starting supernet's weights and alpha/beta, kept to start every task from.
  size_t start_bytes() const { return start_.bytes(); }
  // Heap bytes of the compiled search step's and query program's tables.
  size_t table_bytes() const { return searcher_->compiled().table_bytes() + query_.table_bytes(); }
  Searcher& searcher() { return *searcher_; }
  // The supernet as the last adapt() left it (after its search).
  const ParamStore& params() const { return work_; }

 private:
  float evaluate_supernet(const Task& task);
  void ensure_arena(size_t bytes);
  float finetune_discrete(const Genotype& genotype, const Task& task, uint64_t seed);

  SearchSpace space_;
  AdaptOptions options_;
  ParamStore start_;  // weights and alpha/beta, values only
  std::vector<std::string> names_;
  ParamStore work_;
  std::unique_ptr<Searcher> searcher_;
  graph::Program query_;
  SearchNet query_net_;
  Arena arena_;  // shared by the query evaluation and the discrete programs
  size_t discrete_arena_bytes_ = 0;
};

}  // namespace onnas::nas
