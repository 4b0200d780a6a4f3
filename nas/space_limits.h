// The largest search space onnas builds, field by field: the bounds of the tool's
// flags (-C, --cells, --nodes, --in-channels, --size, --classes) and of every space
// read from a file (a meta cell's "search_space"), so a file can never ask for more
// than a user could. Everything a space implies (cell widths, edges, parameter shapes)
// is computed from fields inside these bounds, and fits in int64 with room to spare.
//
//   if (nodes > kMaxNodes) fail(...);
//   check_supernet_space(space);   // before a supernet of `space` is built
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "nas/search_space.h"

namespace onnas::nas {

inline constexpr int kMaxNodes = 8;             // intermediate nodes per cell (44 edges)
inline constexpr int kMaxCells = 64;
inline constexpr int kMaxChannels = 1024;       // C of the first cell (doubled at each reduction)
inline constexpr int kMaxStemMultiplier = 8;    // the stem has stem_multiplier * C channels (3 by default)
inline constexpr int kMaxInChannels = 64;
inline constexpr int kMaxSide = 4096;           // input height and width
inline constexpr int kMaxClasses = 100000;
inline constexpr int kMaxOps = 10;              // every OpKind once

// What SearchSpace::validate() allows but a supernet cannot be: only the op `none`
// (every edge empty), or no normal or no reduction cell (the search keeps one alpha
// and beta set of each kind, and a genotype has a cell of each). Throws onnas::Error
// beginning "search space: ".
void check_supernet_space(const SearchSpace& space);

// A space read from a file (a meta cell's or a model's metadata, a genotype file): every
// field is read as a 64-bit integer and bounded by the limits above before anything is
// derived from it (a narrowing get<int> would read 4294967297 as 1), the reductions
// must be distinct cells of the space, then SearchSpace::from_json. Errors begin with
// `source` ("m.safetensors: search_space metadata"); `path` is the file's name, which
// from_json's own messages begin with.
SearchSpace bounded_space_from_json(const nlohmann::json& j, const std::string& source, const std::string& path);

}  // namespace onnas::nas
