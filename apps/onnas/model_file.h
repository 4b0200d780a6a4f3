// The files a network travels in, made to be used alone. A trained model
// (model.safetensors, `onnas train`) and a searched supernet (supernet.safetensors,
// `onnas search`) carry beside their tensors the space (input shape and class count
// included), the genotype (JSON and the DARTS string) and the input normalization, so
// `onnas eval --model F`, `plan --network infer`, `export` and `train --init` need
// nothing else. genotype.json carries the genotype, its DARTS string and the space it
// was searched in.
//
//   save_params(path, params, kModelKinds, network_metadata("discrete network", info));
//   ModelFile m = read_model_file(path);          // m.info.space, m.info.genotype, ...
//   GenotypeSource g = load_genotype_arg("runs/search/genotype.json");   // or a DARTS string
//   save_genotype_file("out/genotype.json", genotype, space);
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "nas/genotype.h"
#include "nas/search_space.h"

namespace onnas::app {

struct NetworkInfo {
  nas::SearchSpace space;  // in_channels, height, width: the input; classes: the output
  nas::Genotype genotype;
  data::ChannelStats normalization;  // x = (pixel / 255 - mean[c]) / std[c]
};

// The metadata of a model or supernet file: "onnas" = `what`, "search_space" (JSON),
// "description", "genotype" (JSON), "genotype_darts", "normalization" (JSON), "classes".
std::map<std::string, std::string> network_metadata(const std::string& what, const NetworkInfo& info);

struct ModelFile {
  std::string path;
  NetworkInfo info;
  std::map<std::string, std::string> metadata;
};
// Reads what a trained model file says about itself. A supernet is refused (it is not
// a trained network), as is a file without its space or normalization (written before
// 2026-12-01), naming what it lacks.
ModelFile read_model_file(const std::string& path);

// The space a file records as JSON (its "search_space" metadata, every field bounded:
// nas/space_limits.h); nullopt when it records none, or only a description (files of
// before 2026-12-01).
std::optional<nas::SearchSpace> read_space(const std::map<std::string, std::string>& metadata, const std::string& path);

// --init FILE: a file that records a space other than `space` (other widths, depth,
// input or classes; with `ops_matter`, other candidate ops too) is refused, naming each
// setting that differs. A file without a recorded space passes (its tensors decide).
void check_init_space(const std::string& init, const nas::SearchSpace& space, bool ops_matter);

// The normalization a file records (its "normalization" metadata: {"mean": [...],
// "std": [...]}), if it records one. Throws naming the file when it is malformed.
std::optional<data::ChannelStats> read_normalization(const std::map<std::string, std::string>& metadata,
                                                     const std::string& path);

// --genotype ARG: a DARTS genotype string ("Genotype(normal=[...], ...)") or a JSON
// file (a bare genotype, or genotype.json with the space it was searched in).
struct GenotypeSource {
  nas::Genotype genotype;
  std::optional<nas::SearchSpace> space;  // from genotype.json
  std::string name;                       // the file, or "--genotype" for a string
};
GenotypeSource load_genotype_arg(const std::string& arg);
// {"genotype": {...}, "darts": "Genotype(...)", "space": {...}}, atomic.
void save_genotype_file(const std::string& path, const nas::Genotype& genotype, const nas::SearchSpace& space);

// "normal node 1 takes ('sep_conv_3x3', 0) in A, ('skip_connect', 1) in B": the first
// place two genotypes differ ("" when equal).
std::string genotype_difference(const nas::Genotype& a, const nas::Genotype& b, const std::string& a_name,
                                const std::string& b_name);

}  // namespace onnas::app
