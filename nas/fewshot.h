// On-device adaptation to one few-shot task (ONNAS.md section 7, "On the device"):
// from a starting supernet (a meta cell unfolded, or a random initialization), run the
// on-device search of sections 4-6 on the support set (in the memory mode of
// `options.search.step`), derive the genotype, build its discrete network from the
// searched weights, fine-tune it on the support set and measure the query set.
//
// Batch norm uses the statistics of the batch it sees (the support set while
// adapting, the query set when measuring), as few-shot learners usually do
// (MAML, MetaNAS): the running statistics of a handful of images mean little.
// The query set may be measured in chunks (AdaptOptions::query_chunk): batch norm then
// still normalizes by the whole query set's statistics (nas/chunked_eval.h), so the
// accuracy does not change, and the memory is one chunk's.
//
// Memory: one arena for the whole task, the search step's, reserved before the first
// task for the largest of the search, the query evaluation and the discrete network's
// fine-tuning. The discrete network is compiled per genotype, so its part is an
// estimate (the largest over genotypes of one op everywhere, discrete_estimate_bytes());
// a genotype that needs more grows the arena, and discrete_arena_bytes() shows it.
//
//   FewShotAdapter adapter(space, options, start_params);
//   AdaptResult r = adapter.adapt(task, seed);   // r.accuracy on the query set
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <utility>
#include <string>

#include "graph/compile.h"
#include "nas/chunked_eval.h"
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
  // Query images per chunk of the query evaluation, a divisor of n_way * q_query;
  // 0: the whole query set in one program; kFitQueryChunk: the largest chunk whose
  // evaluation fits the arena the search and the fine-tuning need anyway.
  int64_t query_chunk = 0;
  static constexpr int64_t kFitQueryChunk = -1;
  // Whose statistics batch norm uses when the supernet's query accuracy is measured.
  // query_set: the whole query set's (as above; chunks do not change it). micro_batch:
  // each group of as many query images as a micro-batch of the search holds is
  // normalized by its own statistics, as the supernet was while it adapted (a search
  // in micro-batches of one image normalizes each image by itself; measured with the
  // query set's statistics instead, such a supernet is at chance). auto: micro_batch
  // when the search splits the support set, else query_set. The discrete network is
  // fine-tuned on the whole support set and measured with the query set's statistics
  // either way.
  enum class QueryStats { automatic, query_set, micro_batch };
  QueryStats query_stats = QueryStats::automatic;
};

struct AdaptResult {
  Genotype genotype;
  float supernet_accuracy = 0;  // query, after the search
  float accuracy = 0;           // query, the fine-tuned discrete network (supernet's without fine-tuning)
  double seconds = 0;
};

// The arena the discrete network's fine-tuning on a support set of `episode` needs,
// estimated as FewShotAdapter does (the largest over genotypes of one op everywhere):
// what a memory budget must leave for it beside the search.
size_t estimate_finetune_arena(const SearchSpace& space, const data::EpisodeShape& episode);

class FewShotAdapter {
 public:
  // `start`: the supernet's weights and alpha/beta to start every task from (kept: move
  // it in rather than hold a second copy).
  FewShotAdapter(SearchSpace space, AdaptOptions options, ParamStore start);

  AdaptResult adapt(const Task& task, uint64_t seed);

  // Planned memory of the search on the device: the arena of its passes (values handed
  // between SBS phases included), and the persistent bytes: the supernet, its optimizer
  // state and the gradient block.
  size_t search_arena_bytes() const { return searcher_->arena_bytes(); }
  size_t search_handed_bytes() const { return searcher_->handed_bytes(); }
  size_t search_persistent_bytes() const { return work_.bytes() + searcher_->grad_bytes(); }
  // The one arena of a task (the search step's): as reserved before the first task for
  // the largest need, and as it is now (larger only if a genotype needed more).
  size_t planned_arena_bytes() const { return planned_arena_bytes_; }
  size_t arena_bytes() const { return searcher_->arena_bytes(); }
  // What the search step alone plans.
  size_t search_plan_bytes() const { return search_plan_bytes_; }
  // The query evaluation of the supernet (and its chunk size: query_chunk() == the
  // query set's size when it runs in one program).
  size_t query_arena_bytes() const { return query_chunked_ ? query_chunked_->arena_bytes() : query_.arena_bytes(); }
  int64_t query_chunk() const { return query_chunk_; }
  // True when each chunk of the query set is normalized by its own statistics
  // (AdaptOptions::QueryStats::micro_batch): query_chunk() images per group.
  bool query_per_chunk_stats() const { return query_group_; }
  // The discrete network's fine-tuning and query evaluation: estimated before the first
  // task, and the largest any task has needed so far.
  size_t discrete_estimate_bytes() const { return discrete_estimate_bytes_; }
  size_t discrete_arena_bytes() const { return discrete_arena_bytes_; }
  // The starting supernet's weights and alpha/beta, kept to start every task from.
  size_t start_bytes() const { return start_.bytes(); }
  // Heap bytes of the compiled search step's and query programs' tables, and the query
  // logits.
  size_t table_bytes() const;
  Searcher& searcher() { return *searcher_; }
  // The supernet as the last adapt() left it (after its search).
  const ParamStore& params() const { return work_; }

 private:
  float evaluate_supernet(const Task& task);
  float finetune_discrete(const Genotype& genotype, const Task& task, uint64_t seed);
  void plan_query(int64_t chunk);

  SearchSpace space_;
  AdaptOptions options_;
  ParamStore start_;  // weights and alpha/beta, values only
  std::vector<std::string> names_;
  ParamStore work_;
  std::unique_ptr<Searcher> searcher_;
  int64_t query_chunk_ = 0;
  bool query_group_ = false;  // query_ runs once per chunk, each with its own statistics
  graph::Program query_;  // the whole query set in one program, or
  std::optional<ChunkedEval> query_chunked_;  // in chunks
  SearchNet query_net_;
  Buffer logits_;  // the query set's logits (chunked evaluation)
  size_t search_plan_bytes_ = 0, discrete_estimate_bytes_ = 0, discrete_arena_bytes_ = 0, planned_arena_bytes_ = 0;
};

}  // namespace onnas::nas
