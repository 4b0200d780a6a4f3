// Readable forms of a compiled program: Graphviz (one box per node in execution
// order, one edge per value labelled with its shape and size) and the planner's
// buffers for the memory dumps (memory_planner/dump.h draws them).
//
//   std::ofstream("step.dot") << program_to_dot(program);   // dot -Tsvg step.dot
#pragma once

#include <string>

#include "graph/compile.h"

namespace onnas::graph {

std::string program_to_dot(const Program& program);

}  // namespace onnas::graph
