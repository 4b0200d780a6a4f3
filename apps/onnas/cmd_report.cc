// `onnas report DIR`: a self-contained HTML page of what a search decided and how it got
// there, from the search's output folder: softmax(alpha) of every op of every edge and
// softmax(beta) of every node's pairs over the steps (search_log.jsonl's "arch" records,
// written every --arch-log-every steps), the loss and accuracy, and the two chosen cells
// drawn as graphs (genotype.json). Inline SVG and CSS only: no script, no file or
// address outside the page, so it opens anywhere and can be archived with the run.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "apps/onnas/common.h"
#include "apps/onnas/output.h"
#include "nas/genotype.h"
#include "nas/search_space.h"
#include "runtime/error.h"
#include "runtime/serialize/atomic_file.h"
#include "runtime/serialize/json.h"

namespace onnas::app {
namespace {

struct ReportArgs {
  std::string dir;
  std::string out;  // default DIR/report.html
  Output report{"report"};
};

// One arch record of the log: softmax values per cell type, edge (alpha) or node (beta).
struct ArchRecord {
  int64_t step = 0;
  std::vector<std::vector<double>> alpha[2], beta[2];  // [normal, reduce][edge or node][op or pair]
};
struct LogPoint {
  int64_t step = 0;
  double loss = 0, accuracy = 0;
};

// The palette of the op lines (colour-blind-friendly first eight of Tableau 10).
constexpr const char* kColors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                   "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
const char* color(size_t i) { return kColors[i % std::size(kColors)]; }

std::string escape(const std::string& s) {
  std::string r;
  for (char c : s) {
    if (c == '<') r += "&lt;";
    else if (c == '>') r += "&gt;";
    else if (c == '&') r += "&amp;";
    else if (c == '"') r += "&quot;";
    else r += c;
  }
  return r;
}

std::vector<std::vector<double>> read_table(const nlohmann::json& j, const std::string& what) {
  if (!j.is_array()) fail("{}: not a list", what);
  std::vector<std::vector<double>> t;
  for (const auto& row : j) {
    if (!row.is_array()) fail("{}: a row is not a list", what);
    std::vector<double> r;
    for (const auto& v : row) {
      if (!v.is_number()) fail("{}: a value is not a number", what);
      r.push_back(v.get<double>());
    }
    t.push_back(std::move(r));
  }
  return t;
}

// The records of search_log.jsonl: loss/accuracy of every logged step, and the arch
// records checked against the space's shape.
void read_log(const std::string& path, const nas::SearchSpace& space, std::vector<ArchRecord>& arch,
              std::vector<LogPoint>& points) {
  std::ifstream in(path);
  if (!in) fail("{}: cannot be read (the search writes it into its --out folder)", path);
  std::string line;
  int64_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty()) continue;
    const std::string where = fmt::format("{} line {}", path, n);
    nlohmann::json j = parse_json(line, where, {.max_depth = 6, .max_array = 1 << 16});
    if (!j.is_object() || !j.contains("step") || !j["step"].is_number_integer())
      fail("{}: not a search log record (no integer \"step\")", where);
    LogPoint p;
    p.step = j["step"].get<int64_t>();
    if (j.contains("loss") && j["loss"].is_number()) p.loss = j["loss"].get<double>();
    if (j.contains("accuracy") && j["accuracy"].is_number()) p.accuracy = j["accuracy"].get<double>();
    points.push_back(p);
    if (!j.contains("arch")) continue;
    ArchRecord r;
    r.step = p.step;
    const nlohmann::json& a = j["arch"];
    for (int red = 0; red < 2; ++red) {
      const char* kind = red ? "reduce" : "normal";
      if (!a.contains("alpha") || !a["alpha"].contains(kind) || !a.contains("beta") || !a["beta"].contains(kind))
        fail("{}: the arch record has no alpha/beta of the {} cell", where, kind);
      r.alpha[red] = read_table(a["alpha"][kind], where + " alpha");
      r.beta[red] = read_table(a["beta"][kind], where + " beta");
      if (int(r.alpha[red].size()) != space.num_edges() || int(r.beta[red].size()) != space.nodes)
        fail("{}: the {} cell has {} edges and {} nodes; the genotype's space has {} and {}", where, kind,
             r.alpha[red].size(), r.beta[red].size(), space.num_edges(), space.nodes);
      for (const auto& e : r.alpha[red])
        if (int64_t(e.size()) != space.num_ops())
          fail("{}: an edge of the {} cell has {} op values, the space has {} ops", where, kind, e.size(),
               space.num_ops());
      for (int j2 = 0; j2 < space.nodes; ++j2)
        if (r.beta[red][size_t(j2)].size() != space.pairs(j2).size())
          fail("{}: node {} of the {} cell has {} pair values, it has {} pairs", where, j2, kind,
               r.beta[red][size_t(j2)].size(), space.pairs(j2).size());
    }
    arch.push_back(std::move(r));
  }
  if (arch.empty())
    fail("{}: no arch records (softmax of alpha and beta); the search writes one every --arch-log-every steps and "
         "at its end",
         path);
}

// A line chart of `series` (each a value per x) over xs, values in [lo, hi].
std::string chart(const std::string& title, const std::vector<double>& xs,
                  const std::vector<std::vector<double>>& series, const std::vector<std::string>& names,
                  const std::vector<bool>& bold, double lo, double hi, int width = 260, int height = 150,
                  double uniform = -1) {
  const int left = 34, right = 8, top = 18, bottom = 20;
  const double x0 = xs.front(), x1 = xs.back() > xs.front() ? xs.back() : xs.front() + 1;
  auto px = [&](double x) { return left + (x - x0) / (x1 - x0) * (width - left - right); };
  auto py = [&](double y) { return top + (hi - std::clamp(y, lo, hi)) / (hi - lo) * (height - top - bottom); };
  std::string s = fmt::format(R"(<svg class="chart" width="{}" height="{}" viewBox="0 0 {} {}" role="img">)", width,
                              height, width, height);
  s += fmt::format(R"(<title>{}</title><text x="{}" y="12" class="t">{}</text>)", escape(title), left, escape(title));
  s += fmt::format(R"(<rect x="{}" y="{}" width="{}" height="{}" class="frame"/>)", left, top, width - left - right,
                   height - top - bottom);
  for (double y : {lo, (lo + hi) / 2, hi})
    s += fmt::format(R"(<text x="{}" y="{:.1f}" class="a" text-anchor="end">{:.2g}</text>)", left - 3, py(y) + 3, y);
  s += fmt::format(R"(<text x="{}" y="{}" class="a">{}</text><text x="{}" y="{}" class="a" text-anchor="end">{}</text>)",
                   left, height - 6, int64_t(x0), width - right, height - 6, int64_t(x1));
  if (uniform >= lo && uniform <= hi)
    s += fmt::format(R"(<line x1="{}" y1="{:.1f}" x2="{}" y2="{:.1f}" stroke="#999" stroke-dasharray="3 3"><title>uniform {:.3f}</title></line>)",
                     left, py(uniform), width - right, py(uniform), uniform);
  for (size_t k = 0; k < series.size(); ++k) {
    std::string pts;
    for (size_t i = 0; i < xs.size(); ++i) pts += fmt::format("{:.1f},{:.1f} ", px(xs[i]), py(series[k][i]));
    s += fmt::format(R"(<polyline points="{}" fill="none" stroke="{}" stroke-width="{}"><title>{}</title></polyline>)",
                     pts, color(k), bold.empty() || !bold[k] ? 1.5 : 3.5, escape(names[k]));
  }
  return s + "</svg>";
}

// The cell of `genotype` as a graph: inputs c_{k-2}, c_{k-1} on the left, the nodes in a
// column, their concatenation c_{k} on the right; each edge labelled with its op.
std::string cell_graph(const nas::SearchSpace& space, const std::vector<std::vector<nas::GenotypeEdge>>& cell,
                       const std::string& title) {
  const int m = space.nodes, width = 560, row = 70, height = 40 + row * std::max(2, m);
  auto state_pos = [&](int s) -> std::pair<double, double> {
    if (s < 2) return {50, 40 + row * (s + 0.5) * std::max(2, m) / 2.0};
    return {200 + 110 * (s - 2), 40 + row * (s - 2 + 0.5)};
  };
  const std::pair<double, double> out{width - 50, 40 + row * std::max(2, m) / 2.0};
  std::string s = fmt::format(R"(<svg class="cell" width="{}" height="{}" viewBox="0 0 {} {}" role="img">)", width,
                              height, width, height);
  s += fmt::format(R"(<title>{}</title><text x="10" y="16" class="t">{}</text>)", escape(title), escape(title));
  for (int j = 0; j < m; ++j)
    for (const nas::GenotypeEdge& e : cell[size_t(j)]) {
      auto [x0, y0] = state_pos(e.input);
      auto [x1, y1] = state_pos(j + 2);
      const size_t op = size_t(std::find(space.ops.begin(), space.ops.end(), e.op) - space.ops.begin());
      // Nodes lie on a diagonal, so an edge that skips a node bends away from it (a
      // quadratic curve, its control point pushed off the line by the skip's length).
      const int skip = e.input >= 2 ? j + 2 - e.input - 1 : 0;
      const double len = std::hypot(x1 - x0, y1 - y0), bend = 40.0 * skip;
      const double cx = (x0 + x1) / 2 + bend * (y1 - y0) / len, cy = (y0 + y1) / 2 - bend * (x1 - x0) / len;
      s += fmt::format(R"(<path d="M {:.0f} {:.0f} Q {:.0f} {:.0f} {:.0f} {:.0f}" fill="none" stroke="{}" stroke-width="3"/>)",
                       x0, y0, cx, cy, x1, y1, color(op));
      // The label at the curve's point t = 0.35.
      const double t = 0.35, lx = (1 - t) * (1 - t) * x0 + 2 * t * (1 - t) * cx + t * t * x1,
                   ly = (1 - t) * (1 - t) * y0 + 2 * t * (1 - t) * cy + t * t * y1;
      s += fmt::format(R"(<text x="{:.0f}" y="{:.0f}" class="e">{}</text>)", lx + 4, ly - 5, nas::op_kind_name(e.op));
    }
  for (int j = 0; j < m; ++j) {
    auto [x, y] = state_pos(j + 2);
    s += fmt::format(R"(<line x1="{:.0f}" y1="{:.0f}" x2="{:.0f}" y2="{:.0f}" stroke="#bbb" stroke-dasharray="4 3"/>)", x,
                     y, out.first, out.second);
  }
  auto node = [&](double x, double y, const std::string& label, const char* fill) {
    s += fmt::format(R"(<ellipse cx="{:.0f}" cy="{:.0f}" rx="30" ry="16" fill="{}" stroke="#333"/>)", x, y, fill);
    s += fmt::format(R"(<text x="{:.0f}" y="{:.0f}" class="n" text-anchor="middle">{}</text>)", x, y + 4, label);
  };
  node(state_pos(0).first, state_pos(0).second, "c_{k-2}", "#e8f0fb");
  node(state_pos(1).first, state_pos(1).second, "c_{k-1}", "#e8f0fb");
  for (int j = 0; j < m; ++j) node(state_pos(j + 2).first, state_pos(j + 2).second, std::to_string(j), "#fdf3d8");
  node(out.first, out.second, "c_{k}", "#e3f4e1");
  return s + "</svg>";
}

void run_report(const ReportArgs& a) {
  const std::string genotype_path = a.dir + "/genotype.json", log_path = a.dir + "/search_log.jsonl";
  std::ifstream gin(genotype_path);
  if (!gin) fail("{}: cannot be read ({} should be an `onnas search --out` folder)", genotype_path, a.dir);
  const std::string text((std::istreambuf_iterator<char>(gin)), std::istreambuf_iterator<char>());
  const nlohmann::json gj = parse_json(text, genotype_path, {.max_depth = 8, .max_array = 4096});
  if (!gj.is_object() || !gj.contains("space"))
    fail("{}: no \"space\" (written by `onnas search`; a genotype alone does not say the ops)", genotype_path);
  const nas::SearchSpace space = nas::SearchSpace::from_json(gj["space"], genotype_path);
  const nas::Genotype genotype = nas::Genotype::from_json(gj.contains("genotype") ? gj["genotype"] : gj, genotype_path);

  std::vector<ArchRecord> arch;
  std::vector<LogPoint> points;
  read_log(log_path, space, arch, points);

  std::vector<std::string> op_names;
  for (nas::OpKind k : space.ops) op_names.push_back(nas::op_kind_name(k));
  std::vector<double> xs;
  for (const ArchRecord& r : arch) xs.push_back(double(r.step));
  if (xs.size() == 1) xs.push_back(xs[0] + 1), arch.push_back(arch[0]);  // a flat line for one record

  std::string body;
  body += fmt::format("<h1>onnas search report</h1><p>{}<br>{} steps logged, {} arch records (steps {} to {}); "
                      "genotype <code>{}</code></p>",
                      escape(space.describe()), points.size(), arch.size(), arch.front().step, arch.back().step,
                      escape(genotype.str()));
  {  // loss and accuracy
    std::vector<double> px, loss, acc;
    for (const LogPoint& p : points) px.push_back(double(p.step)), loss.push_back(p.loss), acc.push_back(p.accuracy);
    if (px.size() == 1) px.push_back(px[0] + 1), loss.push_back(loss[0]), acc.push_back(acc[0]);
    const double max_loss = std::max(1e-6, *std::max_element(loss.begin(), loss.end()));
    body += "<h2>Training</h2><div class=\"row\">";
    body += chart("weight loss", px, {loss}, {"loss"}, {}, 0, max_loss, 360, 170);
    body += chart("batch accuracy", px, {acc}, {"accuracy"}, {}, 0, 1, 360, 170);
    body += "</div>";
  }
  body += "<div class=\"legend\">";
  for (size_t k = 0; k < op_names.size(); ++k)
    body += fmt::format(R"(<span><svg width="22" height="10"><rect width="22" height="10" fill="{}"/></svg> {}</span>)",
                        color(k), escape(op_names[k]));
  body += "</div>";
  for (int red = 0; red < 2; ++red) {
    const char* kind = red ? "reduce" : "normal";
    const auto& cell = genotype.of(red);
    body += fmt::format("<h2>{} cell</h2>", kind);
    body += cell_graph(space, cell, fmt::format("the chosen {} cell", kind));
    int edge = 0;
    for (int j = 0; j < space.nodes; ++j) {
      body += fmt::format("<h3>node {}</h3><div class=\"row\">", j);
      for (int i = 0; i < j + 2; ++i, ++edge) {
        std::vector<std::vector<double>> series(op_names.size());
        for (const ArchRecord& r : arch)
          for (size_t k = 0; k < op_names.size(); ++k) series[k].push_back(r.alpha[red][size_t(edge)][k]);
        std::vector<bool> bold(op_names.size(), false);
        bool kept = false;
        for (const nas::GenotypeEdge& e : cell[size_t(j)])
          if (e.input == i) {
            kept = true;
            bold[size_t(std::find(space.ops.begin(), space.ops.end(), e.op) - space.ops.begin())] = true;
          }
        body += fmt::format("<div class=\"{}\">", kept ? "kept" : "dropped");
        // Near-uniform values (an undecided edge) would be a flat line on [0, 1]: the
        // axis ends a little above the largest value (at least at twice uniform).
        double top = 2.0 / double(op_names.size());
        for (const auto& v : series) top = std::max(top, 1.15 * *std::max_element(v.begin(), v.end()));
        body += chart(fmt::format("edge {} -> {}: softmax(alpha){}", i, j, kept ? " (kept)" : ""), xs, series, op_names,
                      bold, 0, std::min(1.0, top), 260, 150, 1.0 / double(op_names.size()));
        body += "</div>";
      }
      const auto pairs = space.pairs(j);
      std::vector<std::vector<double>> series(pairs.size());
      std::vector<std::string> names;
      for (const auto& [p, q] : pairs) names.push_back(fmt::format("({}, {})", p, q));
      for (const ArchRecord& r : arch)
        for (size_t k = 0; k < pairs.size(); ++k) series[k].push_back(r.beta[red][size_t(j)][k]);
      body += chart(fmt::format("node {}: softmax(beta) of its pairs", j), xs, series, names, {}, 0, 1, 260, 150,
                    1.0 / double(pairs.size()));
      body += "</div>";
    }
  }
  const std::string html = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>onnas search report</title>"
                           "<style>body{font:13px sans-serif;margin:16px;background:#fff;color:#222}"
                           "h1{font-size:20px}h2{font-size:16px;margin-top:24px}h3{font-size:13px;margin:8px 0 2px}"
                           ".row{display:flex;flex-wrap:wrap;gap:6px}.legend span{margin-right:12px;white-space:nowrap}"
                           ".kept{outline:2px solid #333}.t{font-size:11px;font-weight:bold}.a{font-size:9px;fill:#555}"
                           ".e{font-size:10px}.n{font-size:11px}.frame{fill:none;stroke:#ccc}</style></head><body>\n" +
                           body + "\n</body></html>\n";
  const std::string out = a.out.empty() ? a.dir + "/report.html" : a.out;
  write_file_atomic(out, html);
  a.report.result("wrote {} ({} arch records, {} charts)", out, arch.size(),
                  2 + 2 * (space.num_edges() + space.nodes));
  a.report.document({{"report", out}, {"arch_records", arch.size()}, {"steps_logged", points.size()}});
}

}  // namespace

void add_report_command(CLI::App& app) {
  auto args = std::make_shared<ReportArgs>();
  CLI::App* cmd = app.add_subcommand(
      "report", "Write a self-contained HTML page of a search: alpha and beta over the steps, the chosen cells");
  cmd->add_option("dir", args->dir, "The search's --out folder (genotype.json, search_log.jsonl)")->required();
  cmd->add_option("-o,--out", args->out, "The HTML file (default: DIR/report.html)");
  args->report.add(*cmd);
  cmd->callback([args] { run_report(*args); });
}

}  // namespace onnas::app
