// Small search spaces shared by the nas/ tests: quick to compile and run, yet with a
// reduction cell, three nodes (pairs to choose) and every candidate op.
#pragma once

#include "nas/search_space.h"

namespace onnas::nas::test_spaces {

// 3 cells (a reduction at 1), C = 4, 3 nodes, 8x8 grey images, 3 classes.
inline SearchSpace small_space() {
  SearchSpace s;
  s.channels = 4;
  s.cells = 3;
  s.reductions = {1};
  s.nodes = 3;
  s.height = s.width = 8;
  s.classes = 3;
  return s;
}

}  // namespace onnas::nas::test_spaces
