#include "apps/onnas/model_file.h"

#include <fmt/ranges.h>

#include <cmath>

#include "apps/onnas/output.h"
#include "nas/space_limits.h"
#include "runtime/error.h"
#include "runtime/serialize/atomic_file.h"
#include "runtime/serialize/json.h"
#include "runtime/serialize/safetensors.h"

namespace onnas::app {

std::map<std::string, std::string> network_metadata(const std::string& what, const NetworkInfo& info) {
  return {{"onnas", what},
          {"search_space", info.space.to_json().dump()},
          {"description", info.space.describe()},
          {"genotype", info.genotype.to_json().dump()},
          {"genotype_darts", info.genotype.str()},
          {"normalization",
           nlohmann::json{{"mean", info.normalization.mean}, {"std", info.normalization.std}}.dump()},
          {"classes", std::to_string(info.space.classes)}};
}

std::optional<data::ChannelStats> read_normalization(const std::map<std::string, std::string>& metadata,
                                                     const std::string& path) {
  auto it = metadata.find("normalization");
  if (it == metadata.end()) return std::nullopt;
  const auto j = parse_json(it->second, path + ": normalization metadata", {.max_depth = 2, .max_array = nas::kMaxInChannels});
  if (!j.is_object() || !j.contains("mean") || !j.contains("std") || !j["mean"].is_array() || !j["std"].is_array() ||
      j["mean"].size() != j["std"].size())
    fail("{}: the normalization metadata is not {{\"mean\": [...], \"std\": [...]}}", path);
  // Read as doubles and range-checked: a double beyond float's range cast to float is
  // undefined behaviour.
  auto finite_float = [](const nlohmann::json& v) {
    return v.is_number() && std::isfinite(v.get<double>()) && std::abs(v.get<double>()) <= 1e30;
  };
  data::ChannelStats s;
  for (const auto& v : j["mean"]) {
    if (!finite_float(v)) fail("{}: a normalization mean is not a finite number", path);
    s.mean.push_back(v.get<float>());
  }
  for (const auto& v : j["std"]) {
    if (!finite_float(v) || !(v.get<double>() > 1e-30)) fail("{}: a normalization std is not a positive number", path);
    s.std.push_back(v.get<float>());
  }
  return s;
}

std::optional<nas::SearchSpace> read_space(const std::map<std::string, std::string>& metadata, const std::string& path) {
  auto it = metadata.find("search_space");
  if (it == metadata.end() || it->second.find('{') == std::string::npos) return std::nullopt;
  const std::string source = path + ": search_space metadata";
  return nas::bounded_space_from_json(parse_json(it->second, source, {.max_depth = 2, .max_array = nas::kMaxCells}),
                                      source, path);
}

void check_init_space(const std::string& init, const nas::SearchSpace& space, bool ops_matter) {
  const std::optional<nas::SearchSpace> space_there = read_space(read_safetensors(init).metadata, init);
  if (!space_there) return;
  nlohmann::json there = space_there->to_json(), here = space.to_json();
  if (!ops_matter) there.erase("ops"), here.erase("ops");
  const std::vector<std::string> differ = settings_differences(there, here);
  if (!differ.empty()) fail("--init {} holds a network of another shape: {}", init, fmt::join(differ, "; "));
}

namespace {

// A genotype kept in metadata or a file: JSON, or the DARTS string (supernets written
// before 2026-12-01 kept that).
nas::Genotype parse_genotype_text(const std::string& text, const std::string& source) {
  const size_t start = text.find_first_not_of(" \t\r\n");
  if (start != std::string::npos && text.compare(start, 8, "Genotype") == 0) return nas::Genotype::parse_darts(text, source);
  return nas::Genotype::parse(text, source);
}

}  // namespace

ModelFile read_model_file(const std::string& path) {
  ModelFile m;
  m.path = path;
  m.metadata = read_safetensors(path).metadata;
  auto need = [&](const char* key, const char* what) -> const std::string& {
    auto it = m.metadata.find(key);
    if (it == m.metadata.end())
      fail("{}: no {} in its metadata (\"{}\"): not a model or supernet of onnas train / search, or one written before "
           "model files carried what it takes to use them alone (2026-12-01); train it again",
           path, what, key);
    return it->second;
  };
  auto what = m.metadata.find("onnas");
  if (what != m.metadata.end() && what->second == "search supernet")
    fail("{} is a searched supernet, not a trained network: train its genotype first (onnas train --genotype "
         "genotype.json --init {}), then use the model.safetensors it writes",
         path, path);
  const std::string& space_text = need("search_space", "search space");
  std::optional<nas::SearchSpace> space = read_space(m.metadata, path);
  if (!space)
    fail("{}: its search_space metadata is a description ('{}'), not the space itself: written before model files "
         "carried their space (2026-12-01); train it again",
         path, space_text.substr(0, 120));
  m.info.space = *space;
  m.info.genotype = parse_genotype_text(need("genotype", "genotype"), path + ": genotype metadata");
  m.info.genotype.validate(m.info.space, path + ": genotype metadata");
  std::optional<data::ChannelStats> stats = read_normalization(m.metadata, path);
  if (!stats) need("normalization", "input normalization");
  if (int(stats->mean.size()) != m.info.space.in_channels)
    fail("{}: the normalization has {} channels, the space's input {}", path, stats->mean.size(),
         m.info.space.in_channels);
  m.info.normalization = *stats;
  return m;
}

GenotypeSource load_genotype_arg(const std::string& arg) {
  GenotypeSource g;
  const size_t start = arg.find_first_not_of(" \t\r\n");
  if (start != std::string::npos && arg.compare(start, 9, "Genotype(") == 0) {
    g.name = "--genotype";
    g.genotype = nas::Genotype::parse_darts(arg, g.name);
    return g;
  }
  g.name = arg;
  constexpr size_t kMaxGenotypeBytes = 1u << 20;  // real ones are under a kilobyte or two
  // {"genotype": {"normal": [[{"op": ..., "input": ...}, ...]]}, "space": {"ops": [...]}}: five levels.
  const nlohmann::json j =
      parse_json(read_text_file(arg, "genotype file", kMaxGenotypeBytes), arg, {.max_depth = 5, .max_array = 64});
  g.genotype = nas::Genotype::from_json(j.is_object() && j.contains("genotype") ? j["genotype"] : j, arg);
  if (j.is_object() && j.contains("space")) g.space = nas::bounded_space_from_json(j["space"], arg + ": space", arg);
  return g;
}

void save_genotype_file(const std::string& path, const nas::Genotype& genotype, const nas::SearchSpace& space) {
  const nlohmann::json j{{"genotype", genotype.to_json()}, {"darts", genotype.str()}, {"space", space.to_json()}};
  write_file_atomic(path, j.dump(2) + "\n");
}

std::string genotype_difference(const nas::Genotype& a, const nas::Genotype& b, const std::string& a_name,
                                const std::string& b_name) {
  if (a.normal.size() != b.normal.size())
    return fmt::format("{} nodes per cell in {}, {} in {}", a.normal.size(), a_name, b.normal.size(), b_name);
  auto edge = [](const nas::GenotypeEdge& e) { return fmt::format("('{}', {})", nas::op_kind_name(e.op), e.input); };
  for (bool reduce : {false, true})
    for (size_t n = 0; n < a.of(reduce).size(); ++n)
      for (size_t k = 0; k < 2; ++k)
        if (!(a.of(reduce)[n][k] == b.of(reduce)[n][k]))
          return fmt::format("{} node {} edge {} is {} in {}, {} in {}", reduce ? "reduce" : "normal", n, k,
                             edge(a.of(reduce)[n][k]), a_name, edge(b.of(reduce)[n][k]), b_name);
  return "";
}

}  // namespace onnas::app
