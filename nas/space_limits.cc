#include "nas/space_limits.h"

#include <algorithm>
#include <vector>

#include "runtime/error.h"

namespace onnas::nas {

void check_supernet_space(const SearchSpace& space) {
  if (std::all_of(space.ops.begin(), space.ops.end(), [](OpKind k) { return k == OpKind::none; }))
    fail("search space: the only candidate op is 'none', so every edge would be empty (give at least one other op)");
  int reductions = 0;
  for (int i = 0; i < space.cells; ++i) reductions += space.is_reduction(i);
  if (reductions == 0)
    fail("search space: no reduction cell (a supernet has a normal and a reduction cell type; e.g. --reductions {})",
         space.cells / 2);
  if (reductions == space.cells)
    fail("search space: every cell is a reduction cell; a supernet needs a normal cell too (fewer --reductions or "
         "more --cells)");
}

SearchSpace bounded_space_from_json(const nlohmann::json& j, const std::string& source, const std::string& path) {
  if (!j.is_object()) fail("{}: expected a JSON object", source);
  auto bounded = [&](const char* key, int64_t low, int64_t high) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_number_integer()) fail("{}: \"{}\" is missing or not an integer", source, key);
    // Compared in the type it was read as: an unsigned value may exceed int64.
    const bool outside = it->is_number_unsigned()
                             ? it->get<uint64_t>() > uint64_t(high) || it->get<uint64_t>() < uint64_t(low)
                             : it->get<int64_t>() > high || it->get<int64_t>() < low;
    if (outside) fail("{}: \"{}\" is {}, outside {}..{}", source, key, it->dump(), low, high);
  };
  bounded("nodes", 1, kMaxNodes);
  bounded("cells", 1, kMaxCells);
  bounded("channels", 2, kMaxChannels);
  bounded("stem_multiplier", 1, kMaxStemMultiplier);
  bounded("in_channels", 1, kMaxInChannels);
  bounded("height", 1, kMaxSide);
  bounded("width", 1, kMaxSide);
  bounded("classes", 2, kMaxClasses);
  auto ops = j.find("ops");
  if (ops != j.end() && ops->is_array() && ops->size() > size_t(kMaxOps))
    fail("{}: \"ops\" lists {} ops; there are {} op kinds", source, ops->size(), kMaxOps);
  auto reductions = j.find("reductions");
  if (reductions != j.end() && reductions->is_array()) {
    const int64_t cells = j["cells"].get<int64_t>();
    std::vector<bool> seen(size_t(cells), false);
    for (const auto& r : *reductions) {
      if (!r.is_number_integer() || (r.is_number_unsigned() ? r.get<uint64_t>() >= uint64_t(cells)
                                                            : r.get<int64_t>() < 0 || r.get<int64_t>() >= cells))
        fail("{}: reduction {} is not a cell of 0..{}", source, r.is_structured() ? r.type_name() : r.dump(),
             cells - 1);
      if (seen[r.get<size_t>()]) fail("{}: reduction cell {} is listed twice", source, r.dump());
      seen[r.get<size_t>()] = true;
    }
  }
  try {
    return SearchSpace::from_json(j, path);
  } catch (const Error& e) {
    const std::string what = e.what();
    if (what.starts_with(path)) throw;
    fail("{}: {}", source, what);  // e.g. an unknown op, named without the file
  }
}

}  // namespace onnas::nas
