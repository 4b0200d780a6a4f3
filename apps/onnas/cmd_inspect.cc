// `onnas inspect FILE`: what a safetensors file (checkpoint, searched supernet, meta
// cell) holds — its metadata and its tensors, with sizes.
#include <cstdio>

#include "apps/onnas/common.h"
#include "nas/meta_cell.h"
#include "runtime/serialize/safetensors.h"

namespace onnas::app {

void add_inspect_command(CLI::App& app) {
  auto path = std::make_shared<std::string>();
  auto all = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand("inspect", "Print the metadata and tensors of a safetensors file");
  cmd->add_option("file", *path, "safetensors file")->required();
  cmd->add_flag("--all", *all, "List every tensor (default: the first 40)");
  cmd->callback([path, all] {
    SafetensorsFile f = read_safetensors(*path);
    std::printf("%s\n", path->c_str());
    for (const auto& [k, v] : f.metadata) std::printf("  %s: %s\n", k.c_str(), v.c_str());
    // A meta cell: check it against its space (as onnas adapt would) and say what it saves.
    auto format = f.metadata.find("format");
    if (format != f.metadata.end() && format->second == nas::kMetaCellFormat) {
      ParamStore unfolded;
      nas::MetaCellFile mc = nas::load_meta_cell(*path, unfolded);
      const size_t cells = nas::MetaCell::cells_bytes(mc.space, unfolded), meta = mc.cell.bytes();
      std::printf("  meta cell of %s\n  %zu tensors in the meta cell, %s; unfolded into %d cells they are %s: the meta "
                  "cell stores %.2fx less\n",
                  mc.space.describe().c_str(), mc.cell.entries().size(), format_bytes(double(meta)).c_str(),
                  mc.space.cells, format_bytes(double(cells)).c_str(), double(cells) / double(meta));
    }
    size_t total = 0;
    for (const auto& t : f.tensors) total += t.data.bytes();
    std::printf("  %zu tensors, %s\n", f.tensors.size(), format_bytes(double(total)).c_str());
    size_t shown = 0;
    for (const auto& t : f.tensors) {
      if (!*all && shown++ >= 40) {
        std::printf("  ... (%zu more; --all lists them)\n", f.tensors.size() - 40);
        break;
      }
      std::printf("  %-60s %s %-18s %s\n", t.name.c_str(), dtype_name(t.dtype), t.shape.str().c_str(),
                  format_bytes(double(t.data.bytes())).c_str());
    }
  });
}

}  // namespace onnas::app
