// Checkpoints of a search (atomic safetensors files): every weight, alpha/beta and
// optimizer state of the store, the sampler's alpha history, and metadata. Loading
// checks every tensor before it copies any, so a checkpoint of another configuration
// changes nothing.
//
//   save_search_checkpoint(path, params, sampler, {{"step", "120"}});
//   auto metadata = load_search_checkpoint(path, params, sampler);
#pragma once

#include <functional>
#include <map>
#include <string>

#include "nas/sampler.h"
#include "runtime/param_store.h"

namespace onnas::nas {

void save_search_checkpoint(const std::string& path, const ParamStore& params, const ArchSampler& sampler,
                            const std::map<std::string, std::string>& metadata);
// The file's metadata, shown to a caller before any tensor is checked: a run's
// settings, so that a checkpoint of other settings is refused naming the setting rather
// than a tensor it changed (another optimizer's state). Throws to refuse.
using CheckpointMetadataCheck = std::function<void(const std::map<std::string, std::string>&)>;

// Throws onnas::Error naming the file and the tensor that is missing or does not fit.
std::map<std::string, std::string> load_search_checkpoint(const std::string& path, ParamStore& params,
                                                          ArchSampler& sampler,
                                                          const CheckpointMetadataCheck& check_metadata = {});

}  // namespace onnas::nas
