// Scale-out of the few-shot commands (meta-train, eval-fewshot) over the ranks of an
// MPI job (Open MPI; build with -DONNAS_MPI=ON, run under `mpirun -n P onnas ...`).
// Without MPI the same interface is a job of one rank whose exchanges are no-ops, so
// the commands read the same either way.
//
// Work is split by slot: slot b of a batch (a task of a meta-batch, a meta-validation
// or meta-test task) runs on rank b % P. What a slot computes depends on its task
// index alone, never on the rank or P, so the ranks' results combine to those of one
// process (exactly for gathered values; up to the reassociation of the task fold's
// sums, see allreduce_fold).
//
//   Distributed& dist = Distributed::world();
//   nas::FoldAverage fold(ml.fold_size(), weighting);
//   for (int64_t b = 0; b < meta_batch; ++b)
//     if (dist.owns(b)) dist.run_slot(fmt::format("meta-train task {}", i(b)), [&] { ml.run_task(i(b), tasks, arch, fold); });
//   dist.allreduce_fold(fold);        // every rank now holds the fold of all tasks
//   ml.apply_fold(fold, arch);        // the same update on every rank
//   if (dist.is_root()) save(...);    // rank 0 alone writes files and prints
#pragma once

#include <cstddef>
#include <cstdint>
#include <exception>
#include <span>
#include <string>

#include "nas/fold.h"

namespace onnas::app {

class Distributed {
 public:
  // This process's place in the job. With MPI, the first call initializes it
  // (MPI_Finalize runs at exit); the commands that do not scale out never call it.
  static Distributed& world();
  static bool built_with_mpi();

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool is_root() const { return rank_ == 0; }
  // Ranks of this job on this machine (for the default thread count: cores / local ranks).
  int local_size() const { return local_size_; }
  bool owns(int64_t slot) const { return slot % size_ == rank_; }

  // Combines every rank's task fold, so that afterwards every rank holds the terms of
  // all ranks' tasks, bit for bit the same on every rank (checked: a hash of the result
  // is compared across ranks, and a mismatch aborts). Softmax weighting: allreduce MAX
  // of the per-element running maxima (exact), each rank rescales its sums to the
  // global maximum, then one allreduce SUM of the sums and weighted sums (doubles).
  // Returns the bytes this rank contributed (its payload; 0 on one rank).
  size_t allreduce_fold(nas::FoldAverage& fold);

  // Each rank fills the slots it owns and leaves the others 0; afterwards every rank
  // holds all of them. Exact (an allreduce SUM in which each slot has one non-zero term).
  // Returns the bytes this rank contributed.
  size_t gather_slots(std::span<double> slots);

  // Waits for every rank (to tell waiting for the slowest rank from the exchange itself).
  void barrier();

  // Runs fn for slot work named `what` (e.g. "meta-train task 13"). On one rank an
  // exception passes through unchanged; on several, it ends the whole job: one line on
  // stderr naming this rank and `what`, then MPI_Abort (the other ranks wait in the
  // next collective and would otherwise hang).
  template <typename F>
  void run_slot(const std::string& what, F&& fn) {
    if (size_ == 1) return fn();
    try {
      fn();
    } catch (const std::exception& e) {
      abort(what + ": " + e.what());
    } catch (...) {
      abort(what + ": unknown exception");
    }
  }

  // Prints "onnas: error: rank R of P: message" on stderr and ends the job (exit
  // status 1). Without MPI: the same line, then exit(1).
  [[noreturn]] void abort(const std::string& message);

 private:
  Distributed();
  ~Distributed();
  Distributed(const Distributed&) = delete;
  Distributed& operator=(const Distributed&) = delete;

  int rank_ = 0, size_ = 1, local_size_ = 1;
};

}  // namespace onnas::app
