// Buffer sets shaped like one training step of a DARTS-like network, for the planner's
// benchmarks, property tests and example pictures, until graph/ produces real ones.
//
//   auto buffers = synthetic_training_step({.target_buffers = 1000, .seed = 7});
//   Plan plan = plan_memory(buffers);
//
// The shape of a step (K forward ops; op i runs at step i, the loss at step K, and op
// i's backward at step 2K - i):
//   - each forward op writes an activation of its stage's size (the stages shrink
//     spatially and grow in channels, as DARTS cells do at reductions);
//   - most activations are saved for backward: they live until the backward of the op
//     that reads them; the rest die at their reader (in-place ops like ReLU take over
//     their input's storage through may_share_with);
//   - some ops read an earlier activation too (the cell's skip inputs);
//   - convolutions need a one-step workspace (im2col) forward and backward;
//   - batch norms save small mean / rstd tensors for backward;
//   - each activation's gradient is written by the backward of its reader and consumed
//     by its own op's backward one step later.
// Everything is drawn from the seed with a splitmix64 stream, so a seed gives the same
// buffers everywhere.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "memory_planner/planner.h"

namespace onnas::planner {

struct SyntheticOptions {
  size_t target_buffers = 1000;  // stops adding forward ops once this many buffers exist
  uint64_t seed = 0;
  int32_t batch = 32;
  int32_t channels = 16;  // C of the first stage; 28x28 input, reductions at 1/3 and 2/3
};

std::vector<BufferRequest> synthetic_training_step(const SyntheticOptions& options);

}  // namespace onnas::planner
