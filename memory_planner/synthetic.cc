#include "memory_planner/synthetic.h"

#include <fmt/format.h>

#include <algorithm>

namespace onnas::planner {
namespace {

// splitmix64: tiny, and the same stream on every platform.
class Stream {
 public:
  explicit Stream(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  int32_t below(int32_t n) { return int32_t(next() % uint64_t(n)); }  // bias is irrelevant here

 private:
  uint64_t state_;
};

enum class OpType { conv, batch_norm, relu, add, avg_pool };

struct ForwardOp {
  OpType type;
  int32_t stage;
  int32_t channel_factor;
  int32_t skip_input;  // an earlier activation an add also reads, or -1
  size_t workspace_factor_x2;
};

const char* op_name(OpType t) {
  switch (t) {
    case OpType::conv: return "conv2d";
    case OpType::batch_norm: return "batch_norm";
    case OpType::relu: return "relu";
    case OpType::add: return "add";
    case OpType::avg_pool: return "avg_pool";
  }
  return "op";
}

// Which forward ops keep what for backward (as real kernels do).
bool saves_input(OpType t) { return t == OpType::conv || t == OpType::batch_norm; }
bool saves_output(OpType t) { return t == OpType::relu; }

}  // namespace

std::vector<BufferRequest> synthetic_training_step(const SyntheticOptions& options) {
  Stream rng(options.seed);
  constexpr int32_t kStages = 3;
  constexpr int32_t kSpatial[kStages] = {28, 14, 7};

  // Pass 1: the forward ops, until the buffers they imply reach the target.
  std::vector<ForwardOp> ops;
  size_t count = 0;
  while (count < std::max<size_t>(options.target_buffers, 2)) {
    ForwardOp op{};
    int32_t i = int32_t(ops.size());
    int32_t roll = rng.below(100);
    // A ReLU needs something before it; the first op is the stem convolution.
    if (i == 0 || roll < 35) op.type = OpType::conv;
    else if (roll < 60) op.type = OpType::batch_norm;
    else if (roll < 80) op.type = ops.back().type == OpType::relu ? OpType::conv : OpType::relu;
    else if (roll < 90) op.type = OpType::add;
    else op.type = OpType::avg_pool;
    op.stage = int32_t(std::min<size_t>(kStages - 1, count * kStages / std::max<size_t>(options.target_buffers, 1)));
    op.channel_factor = rng.below(4) == 0 ? 3 : 1;  // the cells' 1x1 preprocessing takes 3C
    op.skip_input = (op.type == OpType::add && i >= 2) ? i - 2 - rng.below(std::min(i - 1, 8)) : -1;
    op.workspace_factor_x2 = op.type == OpType::conv ? size_t(1) << rng.below(4) : 0;  // 0.5x .. 4x the input
    ops.push_back(op);
    count += 2 + (op.type == OpType::conv ? 2 : 0) + (op.type == OpType::batch_norm ? 1 : 0);
  }

  const int32_t K = int32_t(ops.size());
  auto backward_step = [&](int32_t op) { return 2 * K - op; };
  auto act_bytes = [&](int32_t i) {
    const ForwardOp& op = ops[size_t(i)];
    int32_t hw = kSpatial[op.stage];
    return size_t(options.batch) * size_t(options.channels << op.stage) * size_t(op.channel_factor) * size_t(hw) *
           size_t(hw) * sizeof(float);
  };
  // Each activation's last forward reader and its last use overall.
  std::vector<int32_t> last_reader(size_t(K), -1), last_use(size_t(K), 0);
  for (int32_t i = 0; i < K; ++i) {
    last_use[size_t(i)] = i;
    if (saves_output(ops[size_t(i)].type)) last_use[size_t(i)] = backward_step(i);
  }
  auto read = [&](int32_t value, int32_t reader) {
    last_reader[size_t(value)] = std::max(last_reader[size_t(value)], reader);
    int32_t use = saves_input(ops[size_t(reader)].type) ? backward_step(reader) : reader;
    last_use[size_t(value)] = std::max(last_use[size_t(value)], use);
  };
  for (int32_t i = 1; i < K; ++i) {
    read(i - 1, i);
    if (ops[size_t(i)].skip_input >= 0) read(ops[size_t(i)].skip_input, i);
  }
  // The last activation feeds the loss at step K.
  last_use[size_t(K - 1)] = std::max(last_use[size_t(K - 1)], K);
  last_reader[size_t(K - 1)] = K;

  std::vector<BufferRequest> buffers;
  std::vector<int32_t> activation_buffer(size_t(K), -1);
  const int32_t ops_per_cell = std::max(K / 8, 1);
  auto value_name = [&](int32_t i) {
    return fmt::format("cell{}/edge{}/{}{}", i / ops_per_cell, (i % ops_per_cell) / 4, op_name(ops[size_t(i)].type),
                       i % 4);
  };
  for (int32_t i = 0; i < K; ++i) {
    const ForwardOp& op = ops[size_t(i)];
    BufferRequest out;
    out.name = value_name(i) + ".out";
    out.op = op_name(op.type);
    out.kind = "activation";
    out.bytes = act_bytes(i);
    out.first_step = i;
    out.last_step = last_use[size_t(i)];
    // In-place ReLU: takes over its input's storage when nothing needs the input later.
    if (op.type == OpType::relu && last_use[size_t(i - 1)] == i && activation_buffer[size_t(i - 1)] >= 0 &&
        act_bytes(i - 1) >= out.bytes)
      out.may_share_with = activation_buffer[size_t(i - 1)];
    activation_buffer[size_t(i)] = int32_t(buffers.size());
    buffers.push_back(std::move(out));
    if (op.type == OpType::conv) {
      size_t input = i > 0 ? act_bytes(i - 1) : size_t(options.batch) * 28 * 28 * sizeof(float);
      size_t ws = std::max<size_t>(input * op.workspace_factor_x2 / 2, 64);
      buffers.push_back({value_name(i) + ".workspace", ws, i, i, 64, -1, "conv2d", "workspace"});
      buffers.push_back(
          {value_name(i) + ".grad_workspace", ws, backward_step(i), backward_step(i), 64, -1, "conv2d", "workspace"});
    }
    if (op.type == OpType::batch_norm) {
      size_t c = size_t(options.channels << op.stage) * size_t(op.channel_factor);
      buffers.push_back(
          {value_name(i) + ".mean_rstd", 2 * c * sizeof(float), i, backward_step(i), 64, -1, "batch_norm", "saved"});
    }
  }
  // Gradients: d(activation i) is summed by the backward of its readers and consumed by
  // op i's own backward.
  for (int32_t i = K - 1; i >= 0; --i) {
    BufferRequest grad;
    grad.name = value_name(i) + ".grad";
    grad.op = std::string(op_name(ops[size_t(i)].type)) + "_backward";
    grad.kind = "gradient";
    grad.bytes = act_bytes(i);
    grad.first_step = backward_step(last_reader[size_t(i)]);
    grad.last_step = backward_step(i);
    buffers.push_back(std::move(grad));
  }
  return buffers;
}

}  // namespace onnas::planner
