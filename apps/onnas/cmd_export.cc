// `onnas export --model F --out net.onnx`: the trained discrete network of a model file
// as an ONNX model (opset 13) that any ONNX runtime can run: batch norms folded into
// the convolutions before them, the input normalization inside the model (it reads
// pixels in [0, 1], NCHW, any batch size), the logits as output. Written with our own
// protobuf writer (runtime/serialize/onnx.h), so no protobuf library is needed.
#include <cstdio>
#include <filesystem>

#include "apps/onnas/cli.h"
#include "apps/onnas/common.h"
#include "apps/onnas/model_file.h"
#include "apps/onnas/output.h"
#include "nas/network.h"
#include "ops/onnx_export.h"
#include "runtime/serialize/safetensors.h"

namespace onnas::app {
namespace {

struct ExportArgs {
  std::string model, out;
  bool overwrite = false, normalization = true, fold = true;
  Output report{"export"};
};

void run_export(const ExportArgs& a) {
  check_out_file(a.out, "--out", a.overwrite);
  const ModelFile m = read_model_file(a.model);
  const nas::SearchSpace& space = m.info.space;
  graph::Graph g;
  // Batch 1 here; the exported model leaves the batch open ("N").
  nas::SearchNet net = nas::emit_discrete_net(g, space, m.info.genotype, 1, /*training=*/false);
  ParamStore params;
  Rng rng(0);
  nas::init_params(params, g, rng);
  load_params(a.model, params);  // strict: every tensor of the network
  ops::OnnxExportOptions o;
  o.inputs = {net.x};
  o.outputs = {net.logits};
  o.fold_batch_norms = a.fold;
  if (a.normalization) o.input_mean = m.info.normalization.mean, o.input_std = m.info.normalization.std;
  ops::OnnxExportReport r;
  onnx::Model model = ops::export_onnx(g, params, o, &r);
  model.producer_version = version_number();
  model.graph.name = "onnas";
  model.doc = fmt::format("onnas discrete network: {}; {}", space.describe(), m.info.genotype.str());
  const std::string input = a.normalization ? o.input_name : g.name(net.x);
  model.metadata = {{"genotype", m.info.genotype.str()},
                    {"search_space", space.to_json().dump()},
                    {"classes", std::to_string(space.classes)},
                    {"input", a.normalization
                                  ? fmt::format("{}: float32 [N, {}, {}, {}], pixel values in [0, 1]", input,
                                                space.in_channels, space.height, space.width)
                                  : fmt::format("{}: float32 [N, {}, {}, {}], normalized as 'normalization' says", input,
                                                space.in_channels, space.height, space.width)},
                    {"output", fmt::format("{}: float32 [N, {}], logits", g.name(net.logits), space.classes)},
                    {"normalization", m.metadata.at("normalization")},
                    {"source", a.model}};
  onnx::write(a.out, model);
  const auto bytes = std::filesystem::file_size(a.out);
  a.report.result("wrote {}: {} nodes ({} batch norms folded into convolutions, {} left after pools), {} initializers, {}",
                  a.out, r.nodes, r.folded_batch_norms, r.batch_norms_left, r.initializers, format_bytes(double(bytes)));
  a.report.document({{"onnx", a.out},
                     {"bytes", bytes},
                     {"ir_version", model.ir_version},
                     {"opset", model.opset},
                     {"nodes", r.nodes},
                     {"initializers", r.initializers},
                     {"folded_batch_norms", r.folded_batch_norms},
                     {"batch_norms_left", r.batch_norms_left},
                     {"input", {{"name", input},
                                {"shape", {"N", space.in_channels, space.height, space.width}},
                                {"normalized_inside", a.normalization}}},
                     {"output", {{"name", g.name(net.logits)}, {"shape", {"N", space.classes}}}},
                     {"genotype_darts", m.info.genotype.str()},
                     {"outputs", {{"onnx", a.out}}}});
}

}  // namespace

void add_export_command(CLI::App& app) {
  auto args = std::make_shared<ExportArgs>();
  CLI::App* cmd = app.add_subcommand("export", "Write a model file's network as ONNX (batch norms folded)");
  cmd->add_option("--model", args->model, "Model safetensors (from onnas train)")->required();
  cmd->add_option("-o,--out", args->out, "The ONNX file to write (e.g. net.onnx)")->required();
  add_overwrite_flag(*cmd, args->overwrite);
  add_switch(*cmd, "--normalization", args->normalization,
             "Normalize inside the model, so it reads pixels in [0, 1] (off: it reads normalized images)");
  add_switch(*cmd, "--fold-batch-norms", args->fold, "Fold each batch norm that follows a convolution into it");
  args->report.add(*cmd);
  cmd->callback([args] { run_export(*args); });
}

}  // namespace onnas::app
