// `onnas inspect FILE`: what a safetensors file (checkpoint, searched supernet, model,
// meta cell) holds — its metadata and its tensors, with sizes.
#include <cstdio>
#include <cstring>

#include "apps/onnas/common.h"
#include "apps/onnas/model_file.h"
#include "apps/onnas/output.h"
#include "nas/arch_report.h"
#include "nas/meta_cell.h"
#include "runtime/serialize/safetensors.h"

namespace onnas::app {
namespace {

struct InspectArgs {
  std::string path;
  bool all = false;
  Output report{"inspect"};
};

// The table of what alpha and beta decided (nas/arch_report.h), and the softmax values
// in the JSON document.
void print_decisions(FILE* out, const nas::SearchSpace& space, const ParamStore& params, nlohmann::json& doc) {
  std::fprintf(out, "  what alpha and beta decided (softmax per kept edge and per node):\n");
  const std::string table = nas::decision_table(space, params);
  size_t at = 0;
  while (at < table.size()) {
    const size_t end = table.find('\n', at);
    std::fprintf(out, "    %s\n", table.substr(at, end - at).c_str());
    at = end == std::string::npos ? table.size() : end + 1;
  }
  doc["decisions"] = nas::arch_snapshot(space, params);
}

void run_inspect(const InspectArgs& a) {
  SafetensorsFile f = read_safetensors(a.path);
  FILE* out = a.report.human();
  nlohmann::json doc{{"file", a.path}, {"metadata", f.metadata}};
  std::fprintf(out, "%s\n", a.path.c_str());
  for (const auto& [k, v] : f.metadata) std::fprintf(out, "  %s: %s\n", k.c_str(), v.c_str());
  // A meta cell: check it against its space (as onnas adapt would) and say what it saves.
  auto format = f.metadata.find("format");
  if (format != f.metadata.end() && format->second == nas::kMetaCellFormat) {
    ParamStore unfolded;
    nas::MetaCellFile mc = nas::load_meta_cell(a.path, unfolded);
    const size_t cells = nas::MetaCell::cells_bytes(mc.space, unfolded), meta = mc.cell.bytes();
    std::fprintf(out,
                 "  meta cell of %s\n  %zu tensors in the meta cell, %s; unfolded into %d cells they are %s: the meta "
                 "cell stores %.2fx less\n",
                 mc.space.describe().c_str(), mc.cell.entries().size(), format_bytes(double(meta)).c_str(),
                 mc.space.cells, format_bytes(double(cells)).c_str(), double(cells) / double(meta));
    doc["meta_cell"] = {{"space", mc.space.to_json()},
                        {"tensors", mc.cell.entries().size()},
                        {"meta_cell_bytes", meta},
                        {"cells_bytes", cells}};
    print_decisions(out, mc.space, unfolded, doc);
  } else if (f.find("alpha.normal") && f.find("alpha.reduce")) {
    // A searched supernet or a search checkpoint whose space is recorded: what alpha and beta decided.
    if (std::optional<nas::SearchSpace> space = read_space(f.metadata, a.path)) {
      ParamStore arch;
      for (const auto& t : f.tensors)
        if (t.name.rfind("alpha.", 0) == 0 || t.name.rfind("beta.", 0) == 0) {
          Tensor dst = arch.add(t.name, t.shape, ParamKind::arch);
          std::memcpy(dst.data(), t.data.data(), dst.bytes());
        }
      print_decisions(out, *space, arch, doc);
    }
  }
  size_t total = 0;
  for (const auto& t : f.tensors) total += t.data.bytes();
  std::fprintf(out, "  %zu tensors, %s\n", f.tensors.size(), format_bytes(double(total)).c_str());
  size_t shown = 0;
  nlohmann::json tensors = nlohmann::json::array();
  for (const auto& t : f.tensors) {
    if (a.report.json())
      tensors.push_back({{"name", t.name},
                         {"dtype", dtype_name(t.dtype)},
                         {"shape", std::vector<int64_t>(t.shape.dims().begin(), t.shape.dims().end())},
                         {"bytes", t.data.bytes()}});
    if (!a.all && shown >= 40) {
      if (shown++ == 40) std::fprintf(out, "  ... (%zu more; --all lists them)\n", f.tensors.size() - 40);
      continue;
    }
    ++shown;
    std::fprintf(out, "  %-60s %s %-18s %s\n", t.name.c_str(), dtype_name(t.dtype), t.shape.str().c_str(),
                 format_bytes(double(t.data.bytes())).c_str());
  }
  doc["tensor_bytes"] = total;
  doc["tensors"] = tensors;
  a.report.document(doc);
}

}  // namespace

void add_inspect_command(CLI::App& app) {
  auto args = std::make_shared<InspectArgs>();
  CLI::App* cmd = app.add_subcommand("inspect", "Print the metadata and tensors of a safetensors file");
  cmd->add_option("file", args->path, "safetensors file")->required();
  cmd->add_flag("--all", args->all, "List every tensor (default: the first 40; --json lists all)");
  args->report.add(*cmd);
  cmd->callback([args] { run_inspect(*args); });
}

}  // namespace onnas::app
