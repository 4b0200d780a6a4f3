#include "memory_planner/dump.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <iterator>
#include <limits>
#include <stdexcept>

namespace onnas::planner {
namespace {

constexpr size_t kKiB = 1024, kMiB = 1024 * 1024, kGiB = size_t(1024) * 1024 * 1024;

int32_t max_step(std::span<const BufferRequest> buffers) {
  int32_t s = 0;
  for (const BufferRequest& b : buffers) s = std::max(s, b.last_step);
  return s;
}

int32_t min_step(std::span<const BufferRequest> buffers) {
  if (buffers.empty()) return 0;
  int32_t s = std::numeric_limits<int32_t>::max();
  for (const BufferRequest& b : buffers) s = std::min(s, b.first_step);
  return s;
}

std::string html_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

// The kinds the picture colours; everything else is "other".
struct KindStyle {
  const char* kind;
  const char* css_class;
  const char* colour;
};
constexpr KindStyle kKinds[] = {{"activation", "ka", "#4e79a7"}, {"gradient", "kg", "#f28e2b"},
                                {"workspace", "kw", "#59a14f"},  {"saved", "ks", "#b07aa1"},
                                {"other", "ko", "#9d9d9d"}};
size_t kind_index(std::string_view kind) {
  for (size_t k = 0; k + 1 < std::size(kKinds); ++k)
    if (kind == kKinds[k].kind) return k;
  return std::size(kKinds) - 1;
}

// 1, 2 or 5 times a power of ten, near range / target.
double nice_step(double range, int target) {
  double raw = range / std::max(target, 1);
  if (raw <= 0) return 1;
  double power = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * power >= raw) return m * power;
  return 10 * power;
}

}  // namespace

std::string format_bytes(size_t bytes) {
  if (bytes >= kGiB) return fmt::format("{:.2f} GiB", double(bytes) / double(kGiB));
  if (bytes >= kMiB) return fmt::format("{:.2f} MiB", double(bytes) / double(kMiB));
  if (bytes >= kKiB) return fmt::format("{:.1f} KiB", double(bytes) / double(kKiB));
  return fmt::format("{} B", bytes);
}

std::string plan_ascii(std::span<const BufferRequest> buffers, const Plan& plan, int width) {
  static constexpr std::string_view kSymbols = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  std::string out;
  auto it = std::back_inserter(out);
  if (buffers.empty() || plan.arena_bytes == 0 || width <= 0) return "(empty plan)\n";
  const double scale = double(width) / double(plan.arena_bytes);
  for (int32_t step = min_step(buffers); step <= max_step(buffers); ++step) {
    std::string line(size_t(width), '.');
    for (size_t i = 0; i < buffers.size() && i < plan.offsets.size(); ++i) {
      const BufferRequest& b = buffers[i];
      if (b.bytes == 0 || step < b.first_step || step > b.last_step) continue;
      size_t from = std::min(size_t(width) - 1, size_t(double(plan.offsets[i]) * scale));
      size_t to = std::min(size_t(width), std::max(from + 1, size_t(double(plan.offsets[i] + b.bytes) * scale)));
      char symbol = i < kSymbols.size() ? kSymbols[i] : '*';
      for (size_t c = from; c < to; ++c) line[c] = line[c] == '.' ? symbol : '!';
    }
    fmt::format_to(it, "{:>4} |{}|\n", step, line);
  }
  for (size_t i = 0; i < buffers.size() && i < plan.offsets.size(); ++i)
    fmt::format_to(it, "  {}: {} ({}, {} at {}, steps {}..{})\n", i < kSymbols.size() ? kSymbols[i] : '*',
                   buffers[i].name, buffers[i].op.empty() ? "-" : buffers[i].op, format_bytes(buffers[i].bytes),
                   plan.offsets[i], buffers[i].first_step, buffers[i].last_step);
  return out;
}

std::string plan_summary(std::span<const BufferRequest> buffers, const Plan& plan) {
  std::string out;
  auto it = std::back_inserter(out);
  double ratio = plan.lower_bound_bytes ? double(plan.arena_bytes) / double(plan.lower_bound_bytes) : 1.0;
  fmt::format_to(it, "memory plan: {} buffers, steps {}..{}\n", buffers.size(), min_step(buffers), max_step(buffers));
  fmt::format_to(it, "  arena        {} ({} bytes)\n", format_bytes(plan.arena_bytes), plan.arena_bytes);
  fmt::format_to(it, "  lower bound  {} ({} bytes)\n", format_bytes(plan.lower_bound_bytes), plan.lower_bound_bytes);
  fmt::format_to(it, "  ratio        {:.3f}\n", ratio);
  fmt::format_to(it, "  strategy     {}\n", strategy_name(plan.strategy));
  std::vector<size_t> live;
  for (size_t i = 0; i < buffers.size(); ++i)
    if (buffers[i].first_step <= plan.peak_step && plan.peak_step <= buffers[i].last_step) live.push_back(i);
  std::stable_sort(live.begin(), live.end(), [&](size_t a, size_t b) { return buffers[a].bytes > buffers[b].bytes; });
  fmt::format_to(it, "  peak step    {} ({} buffers live{})\n", plan.peak_step, live.size(),
                 live.size() > 10 ? ", the 10 largest:" : ":");
  for (size_t k = 0; k < live.size() && k < 10; ++k) {
    const BufferRequest& b = buffers[live[k]];
    fmt::format_to(it, "    {:>12}  {:<40} {}\n", format_bytes(b.bytes), b.name, b.op.empty() ? "-" : b.op);
  }
  if (buffers.size() <= 62 && max_step(buffers) - min_step(buffers) < 64) out += plan_ascii(buffers, plan);
  return out;
}

nlohmann::json plan_to_json(std::span<const BufferRequest> buffers, const Plan& plan) {
  nlohmann::json list = nlohmann::json::array();
  for (size_t i = 0; i < buffers.size(); ++i) {
    const BufferRequest& b = buffers[i];
    nlohmann::json entry = {{"name", b.name},          {"op", b.op},          {"kind", b.kind},
                            {"bytes", b.bytes},        {"first", b.first_step}, {"last", b.last_step},
                            {"offset", i < plan.offsets.size() ? plan.offsets[i] : 0}};
    if (b.alignment != 64) entry["alignment"] = b.alignment;
    if (b.may_share_with >= 0) entry["may_share_with"] = b.may_share_with;
    list.push_back(std::move(entry));
  }
  return {{"arena_bytes", plan.arena_bytes},
          {"lower_bound_bytes", plan.lower_bound_bytes},
          {"strategy", std::string(strategy_name(plan.strategy))},
          {"peak_step", plan.peak_step},
          {"buffers", std::move(list)}};
}

std::string plan_to_html(std::span<const BufferRequest> buffers, const Plan& plan, std::string_view title) {
  // Plot geometry, in SVG user units.
  constexpr double kLeft = 90, kTop = 20, kWidth = 1160, kHeight = 560, kBottom = 50, kRight = 20;
  const int32_t s0 = min_step(buffers), s1 = max_step(buffers) + 1;
  const double steps = std::max(1, s1 - s0);
  const double arena = double(std::max<size_t>(plan.arena_bytes, 1));
  auto x_of = [&](double step) { return kLeft + (step - s0) / steps * kWidth; };
  auto y_of = [&](double address) { return kTop + kHeight - address / arena * kHeight; };
  const double ratio = plan.lower_bound_bytes ? double(plan.arena_bytes) / double(plan.lower_bound_bytes) : 1.0;

  std::string out;
  out.reserve(4096 + buffers.size() * 160);
  auto it = std::back_inserter(out);
  fmt::format_to(it,
                 "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>{0}</title>\n<style>\n"
                 "body{{font-family:system-ui,sans-serif;margin:16px;color:#222}}\n"
                 "h1{{font-size:18px;margin:0 0 6px}}\n.nums span{{margin-right:18px}}\n"
                 ".legend span{{margin-right:14px}}\n.legend i{{display:inline-block;width:12px;height:12px;"
                 "margin-right:4px;vertical-align:-1px}}\n"
                 "svg{{width:100%;max-width:1270px;height:auto;display:block}}\n"
                 "rect.b{{shape-rendering:crispEdges}}\nrect.b:hover{{stroke:#000;stroke-width:1.5}}\n"
                 ".axis{{font-size:12px;fill:#444}}\n"
                 "#tip{{position:fixed;pointer-events:none;background:#fff;border:1px solid #888;padding:4px 6px;"
                 "font-size:12px;display:none;white-space:pre;box-shadow:1px 1px 4px #0003}}\n",
                 html_escape(title));
  for (const KindStyle& k : kKinds) fmt::format_to(it, ".{0}{{fill:{1};background:{1}}}\n", k.css_class, k.colour);
  // Outlines separate neighbouring buffers; with thousands they would hide the small ones.
  if (buffers.size() <= 3000) out += "rect.b{stroke:#fff;stroke-width:0.5}\n";
  out += "</style></head><body>\n";
  fmt::format_to(it, "<h1>{}</h1>\n<div class=\"nums\">", html_escape(title));
  fmt::format_to(it,
                 "<span><b>arena</b> {} ({} bytes)</span><span><b>lower bound</b> {}</span><span><b>ratio</b> "
                 "{:.3f}</span><span><b>strategy</b> {}</span><span><b>buffers</b> {}</span><span><b>peak "
                 "step</b> {}</span></div>\n",
                 format_bytes(plan.arena_bytes), plan.arena_bytes, format_bytes(plan.lower_bound_bytes), ratio,
                 strategy_name(plan.strategy), buffers.size(), plan.peak_step);
  std::vector<size_t> kind_count(std::size(kKinds), 0);
  for (const BufferRequest& b : buffers) ++kind_count[kind_index(b.kind)];
  out += "<div class=\"legend\">";
  for (size_t k = 0; k < std::size(kKinds); ++k)
    fmt::format_to(it, "<span><i class=\"{}\"></i>{} ({})</span>", kKinds[k].css_class, kKinds[k].kind,
                   kind_count[k]);
  out += "<span><i style=\"background:#d62728\"></i>peak step</span></div>\n";

  fmt::format_to(it, "<svg id=\"plan\" viewBox=\"0 0 {} {}\">\n",
                 kLeft + kWidth + kRight, kTop + kHeight + kBottom);
  fmt::format_to(it, "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"#f7f7f7\" stroke=\"#bbb\"/>\n", kLeft,
                 kTop, kWidth, kHeight);

  // Address axis: ticks in B, KiB or MiB, whichever reads best for the arena.
  const size_t unit = plan.arena_bytes >= 4 * kMiB ? kMiB : plan.arena_bytes >= 4 * kKiB ? kKiB : 1;
  const char* unit_name = unit == kMiB ? "MiB" : unit == kKiB ? "KiB" : "B";
  const double y_step = nice_step(arena / double(unit), 8);
  for (double v = 0; v * double(unit) <= arena + 0.5; v += y_step) {
    double y = y_of(v * double(unit));
    fmt::format_to(it,
                   "<line x1=\"{0}\" x2=\"{1}\" y1=\"{2:.1f}\" y2=\"{2:.1f}\" stroke=\"#e2e2e2\"/>"
                   "<text class=\"axis\" x=\"{3}\" y=\"{4:.1f}\" text-anchor=\"end\">{5:g} {6}</text>\n",
                   kLeft, kLeft + kWidth, y, kLeft - 6, y + 4, v, unit_name);
  }
  const double x_step = std::max(1.0, nice_step(steps, 12));
  for (double s = std::ceil(s0 / x_step) * x_step; s <= s1; s += x_step) {
    double x = x_of(s);
    fmt::format_to(it,
                   "<line x1=\"{0:.1f}\" x2=\"{0:.1f}\" y1=\"{1}\" y2=\"{2}\" stroke=\"#e2e2e2\"/>"
                   "<text class=\"axis\" x=\"{0:.1f}\" y=\"{3}\" text-anchor=\"middle\">{4:g}</text>\n",
                   x, kTop, kTop + kHeight, kTop + kHeight + 16, s);
  }
  fmt::format_to(it, "<text class=\"axis\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">step</text>\n",
                 kLeft + kWidth / 2, kTop + kHeight + 38);
  fmt::format_to(it,
                 "<text class=\"axis\" transform=\"translate(16 {}) rotate(-90)\" text-anchor=\"middle\">address "
                 "({})</text>\n",
                 kTop + kHeight / 2, unit_name);

  // One rectangle per buffer; its <title> is the tooltip.
  out += "<g id=\"buffers\">\n";
  for (size_t i = 0; i < buffers.size() && i < plan.offsets.size(); ++i) {
    const BufferRequest& b = buffers[i];
    double x = x_of(b.first_step), w = std::max(0.3, x_of(b.last_step + 1) - x);
    double y = y_of(double(plan.offsets[i] + b.bytes)), h = double(b.bytes) / arena * kHeight;
    fmt::format_to(it,
                   "<rect class=\"b {}\" x=\"{:.2f}\" y=\"{:.2f}\" width=\"{:.2f}\" height=\"{:.2f}\"><title>{}\n"
                   "op: {}\nkind: {}\nsize: {} ({} bytes)\nsteps: {}..{}\noffset: {}</title></rect>\n",
                   kKinds[kind_index(b.kind)].css_class, x, y, w, std::max(h, 0.3), html_escape(b.name),
                   html_escape(b.op.empty() ? "-" : b.op), html_escape(b.kind.empty() ? "-" : b.kind),
                   format_bytes(b.bytes), b.bytes, b.first_step, b.last_step, plan.offsets[i]);
  }
  out += "</g>\n";
  double peak_x = x_of(plan.peak_step + 0.5);
  fmt::format_to(it,
                 "<line x1=\"{0:.2f}\" x2=\"{0:.2f}\" y1=\"{1}\" y2=\"{2}\" stroke=\"#d62728\" stroke-width=\"1.5\" "
                 "stroke-dasharray=\"5 3\"/><text class=\"axis\" x=\"{3:.2f}\" y=\"{4}\" fill=\"#d62728\" "
                 "style=\"fill:#d62728\">peak step {5}</text>\n",
                 peak_x, kTop, kTop + kHeight, peak_x + 4, kTop + 12, plan.peak_step);
  double lb_y = y_of(double(plan.lower_bound_bytes));
  fmt::format_to(it,
                 "<line x1=\"{0}\" x2=\"{1}\" y1=\"{2:.2f}\" y2=\"{2:.2f}\" stroke=\"#555\" stroke-dasharray=\"2 3\"/>"
                 "<text class=\"axis\" x=\"{1}\" y=\"{3:.2f}\" text-anchor=\"end\">lower bound</text>\n",
                 kLeft, kLeft + kWidth, lb_y, lb_y + 13);
  out += "</svg>\n<div id=\"tip\"></div>\n";
  // A nicer tooltip than the browser's: the <title> text follows the mouse at once.
  out +=
      "<script>\n(function(){var tip=document.getElementById('tip');var g=document.getElementById('buffers');\n"
      "g.addEventListener('mousemove',function(e){var r=e.target;if(r.tagName!=='rect')return;\n"
      "var t=r.querySelector('title');if(t){r.dataset.tip=t.textContent;t.remove();}\n"
      "tip.textContent=r.dataset.tip||'';tip.style.display='block';\n"
      "tip.style.left=(e.clientX+14)+'px';tip.style.top=(e.clientY+14)+'px';});\n"
      "g.addEventListener('mouseleave',function(){tip.style.display='none';});})();\n</script>\n"
      "</body></html>\n";
  return out;
}

std::vector<BufferRequest> parse_buffer_list(std::string_view json_text, std::string_view source_name) {
  // A list of flat objects nests two levels. Deeper nesting is refused before the parser
  // builds it: each level of "[[[[" costs it about 80 bytes of memory per byte of text.
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < json_text.size(); ++i) {
    const char c = json_text[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > 2)
        throw std::invalid_argument(fmt::format(
            "{}: JSON nested deeper than a list of buffer objects (at byte {}); not a buffer list?", source_name, i));
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  nlohmann::json doc = nlohmann::json::parse(json_text.begin(), json_text.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded())
    throw std::invalid_argument(fmt::format("{}: not valid JSON (expected a list of buffers)", source_name));
  if (!doc.is_array())
    throw std::invalid_argument(
        fmt::format("{}: expected a JSON list of buffers, found {}", source_name, doc.type_name()));
  std::vector<BufferRequest> buffers;
  buffers.reserve(doc.size());
  for (size_t i = 0; i < doc.size(); ++i) {
    const nlohmann::json& entry = doc[i];
    std::string where = fmt::format("{}: buffer entry {}", source_name, i);
    if (!entry.is_object())
      throw std::invalid_argument(fmt::format("{} is {}, not an object", where, entry.type_name()));
    if (entry.contains("name") && entry["name"].is_string())
      where += fmt::format(" ('{}')", entry["name"].get<std::string>());
    auto fail = [&](std::string_view problem) { throw std::invalid_argument(fmt::format("{}: {}", where, problem)); };
    auto text = [&](const char* key, bool required) -> std::string {
      if (!entry.contains(key)) {
        if (required) fail(fmt::format("missing \"{}\"", key));
        return {};
      }
      if (!entry[key].is_string()) fail(fmt::format("\"{}\" must be a string, found {}", key, entry[key].type_name()));
      return entry[key].get<std::string>();
    };
    auto integer = [&](const char* key, bool required, int64_t fallback, int64_t low, int64_t high) -> int64_t {
      if (!entry.contains(key)) {
        if (required) fail(fmt::format("missing \"{}\"", key));
        return fallback;
      }
      const nlohmann::json& v = entry[key];
      // Scalars as written, containers by type: dump() recurses once per nesting level,
      // and a hostile list may nest a million arrays.
      if (!v.is_number_integer())
        fail(fmt::format("\"{}\" must be an integer, found {}", key,
                         v.is_structured() ? fmt::format("a JSON {}", v.type_name())
                                           : v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)));
      if (v.is_number_unsigned() ? v.get<uint64_t>() > uint64_t(high) : v.get<int64_t>() > high)
        fail(fmt::format("\"{}\" is {}, larger than {}", key, v.dump(), high));
      int64_t value = v.get<int64_t>();
      if (value < low) fail(fmt::format("\"{}\" is {}, it must be at least {}", key, value, low));
      return value;
    };
    constexpr int64_t kStepMax = std::numeric_limits<int32_t>::max();
    BufferRequest b;
    b.name = text("name", true);
    b.bytes = size_t(integer("bytes", true, 0, 0, std::numeric_limits<int64_t>::max() / 4));
    b.first_step = int32_t(integer("first", true, 0, 0, kStepMax));
    b.last_step = int32_t(integer("last", true, 0, 0, kStepMax));
    if (b.last_step < b.first_step)
      fail(fmt::format("\"last\" ({}) is before \"first\" ({})", b.last_step, b.first_step));
    b.op = text("op", false);
    b.kind = text("kind", false);
    b.alignment = size_t(integer("alignment", false, 64, 1, int64_t(1) << 30));
    if (!std::has_single_bit(b.alignment)) fail(fmt::format("\"alignment\" {} is not a power of two", b.alignment));
    b.may_share_with = int32_t(integer("may_share_with", false, -1, -1, int64_t(doc.size()) - 1));
    buffers.push_back(std::move(b));
  }
  return buffers;
}

}  // namespace onnas::planner
