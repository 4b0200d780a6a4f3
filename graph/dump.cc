#include "graph/dump.h"

#include "graph/op.h"

namespace onnas::graph {
namespace {

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

std::string size_text(size_t bytes) {
  if (bytes >= 1048576) return fmt::format("{:.2f} MiB", double(bytes) / 1048576.0);
  if (bytes >= 1024) return fmt::format("{:.1f} KiB", double(bytes) / 1024.0);
  return fmt::format("{} B", bytes);
}

}  // namespace

std::string program_to_dot(const Program& program) {
  const Graph& g = program.graph();
  std::string out = "digraph program {\n  rankdir=TB;\n  node [shape=box, fontsize=9];\n";
  for (size_t s = 0; s < program.order().size(); ++s) {
    const Node& n = g.node(program.order()[s]);
    out += fmt::format("  n{} [label=\"{}: {}\\n{}\"{}];\n", program.order()[s], s, n.op->name, escape(n.name),
                       n.backward ? ", style=filled, fillcolor=\"#fde2e2\"" : "");
  }
  std::vector<bool> declared(g.num_values(), false);
  for (NodeId n : program.order()) {
    for (ValueId in : g.node(n).inputs) {
      const Value& val = g.value(in);
      std::string from = val.producer >= 0 ? fmt::format("n{}", val.producer) : fmt::format("v{}", in);
      if (val.producer < 0 && !declared[size_t(in)]) {
        declared[size_t(in)] = true;
        out += fmt::format("  v{} [shape=ellipse, label=\"{}\\n{} {}\"];\n", in, escape(val.name),
                           val.type.shape.str(), size_text(val.type.bytes()));
      }
      out += fmt::format("  {} -> n{} [label=\"{} {}\", fontsize=8];\n", from, n, val.type.shape.str(),
                         size_text(val.type.bytes()));
    }
  }
  return out + "}\n";
}

}  // namespace onnas::graph
