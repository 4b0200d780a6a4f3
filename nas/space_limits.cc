#include "nas/space_limits.h"

#include <algorithm>

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

}  // namespace onnas::nas
