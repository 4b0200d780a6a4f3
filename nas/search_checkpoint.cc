#include "nas/search_checkpoint.h"

#include <cstring>
#include <vector>

#include "runtime/error.h"
#include "runtime/serialize/safetensors.h"

namespace onnas::nas {
namespace {

bool checkpointed(ParamKind k) { return k == ParamKind::weight || k == ParamKind::arch || k == ParamKind::state; }
const char* cell_kind(bool reduction) { return reduction ? "reduce" : "normal"; }

}  // namespace

void save_search_checkpoint(const std::string& path, const ParamStore& params, const ArchSampler& sampler,
                            const std::map<std::string, std::string>& metadata) {
  std::vector<NamedTensor> tensors;
  for (const auto& e : params.entries())
    if (checkpointed(e->kind)) tensors.push_back({e->name, e->tensor});
  std::vector<float> rows[2], counts[2];
  for (int r = 0; r < 2; ++r) {
    rows[r] = sampler.history_rows(r == 1);
    counts[r] = sampler.history_counts(r == 1);
    const int64_t entries = int64_t(counts[r].size());
    tensors.push_back({fmt::format("sampler.deltas.{}", cell_kind(r == 1)),
                       Tensor(rows[r].data(), Shape{int64_t(rows[r].size()) / std::max<int64_t>(entries, 1), entries})});
    tensors.push_back({fmt::format("sampler.delta_counts.{}", cell_kind(r == 1)),
                       Tensor(counts[r].data(), Shape{entries})});
  }
  write_safetensors(path, tensors, metadata);
}

std::map<std::string, std::string> load_search_checkpoint(const std::string& path, ParamStore& params,
                                                          ArchSampler& sampler,
                                                          const CheckpointMetadataCheck& check_metadata) {
  SafetensorsFile f = read_safetensors(path);
  if (check_metadata) check_metadata(f.metadata);
  std::vector<std::pair<Tensor, const SafetensorsTensor*>> copies;
  for (const auto& e : params.entries()) {
    if (!checkpointed(e->kind)) continue;
    const SafetensorsTensor* t = f.find(e->name);
    if (!t) fail("{}: checkpoint has no {} (a checkpoint of another search configuration or version?)", path, e->name);
    if (t->dtype != e->tensor.dtype() || t->shape != e->tensor.shape())
      fail("{}: {} is {} {}, this search needs {} {}", path, e->name, dtype_name(t->dtype), t->shape.str(),
           dtype_name(e->tensor.dtype()), e->tensor.shape().str());
    check_finite(*t, path);  // a NaN restored would poison the run silently
    copies.emplace_back(e->tensor, t);
  }
  ArchSampler restored = sampler;
  for (bool r : {false, true}) {
    const SafetensorsTensor* rows = f.find(fmt::format("sampler.deltas.{}", cell_kind(r)));
    const SafetensorsTensor* counts = f.find(fmt::format("sampler.delta_counts.{}", cell_kind(r)));
    if (!rows || !counts) fail("{}: checkpoint has no sampler history for the {} cell", path, cell_kind(r));
    if (rows->dtype != DType::f32 || counts->dtype != DType::f32)
      fail("{}: the sampler history of the {} cell is not f32", path, cell_kind(r));
    check_finite(*rows, path);
    check_finite(*counts, path);
    const float* rp = static_cast<const float*>(rows->data.data());
    const float* cp = static_cast<const float*>(counts->data.data());
    restored.set_history(r, std::span<const float>(rp, size_t(rows->shape.numel())),
                         std::span<const float>(cp, size_t(counts->shape.numel())));  // throws before anything changed
  }
  for (auto& [dst, src] : copies) std::memcpy(dst.data(), src->data.data(), dst.bytes());
  sampler = std::move(restored);
  return f.metadata;
}

}  // namespace onnas::nas
