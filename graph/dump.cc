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
  std::string out = "digraph program {\n  rankdir=TB;\n  node [shape=box, fontsize=9];\n";
  for (size_t s = 0; s < program.num_steps(); ++s)
    out += fmt::format("  n{} [label=\"{}: {}\\n{}\"{}];\n", s, s, program.step_op(s),
                       escape(std::string(program.step_name(s))),
                       program.step_backward(s) ? ", style=filled, fillcolor=\"#fde2e2\"" : "");
  std::vector<bool> declared(program.num_values(), false);
  for (size_t s = 0; s < program.num_steps(); ++s) {
    for (ValueId in : program.step_inputs(s)) {
      const TensorType& type = program.type(in);
      const int32_t producer = program.producer_step(in);
      std::string from = producer >= 0 ? fmt::format("n{}", producer) : fmt::format("v{}", in);
      if (producer < 0 && !declared[size_t(in)]) {
        declared[size_t(in)] = true;
        out += fmt::format("  v{} [shape=ellipse, label=\"{}\\n{} {}\"];\n", in, escape(std::string(program.name(in))),
                           type.shape.str(), size_text(type.bytes()));
      }
      out += fmt::format("  {} -> n{} [label=\"{} {}\", fontsize=8];\n", from, s, type.shape.str(),
                         size_text(type.bytes()));
    }
  }
  return out + "}\n";
}

}  // namespace onnas::graph
