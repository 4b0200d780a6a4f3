// Ways to look at a memory plan, and to read buffer lists from JSON.
//
//   Plan plan = plan_memory(buffers);
//   std::string text = plan_summary(buffers, plan);        // numbers + peak-step table
//   nlohmann::json j = plan_to_json(buffers, plan);       // for scripts
//   std::string page = plan_to_html(buffers, plan, "search step, cell 3");  // one file
//   auto again = parse_buffer_list(j["buffers"].dump(), "plan.json");
//
// - plan_summary: arena, lower bound, their ratio, the strategy, the peak step and the
//   ten largest buffers live there; for small plans (<= 62 buffers, <= 64 steps) also
//   plan_ascii's picture.
// - plan_ascii: TensorFlow Lite Micro's PrintMemoryPlan idea: one line per step, the
//   arena scaled to `width` columns, each buffer drawn with its own character
//   (0-9, a-z, A-Z), '.' for free bytes, '!' where two live buffers collide.
// - plan_to_json: {arena_bytes, lower_bound_bytes, strategy, peak_step, buffers: [{name,
//   op, kind, bytes, first, last, offset}]}.
// - plan_to_html: one self-contained page (no network): an SVG timeline, step on x,
//   address on y, one rectangle per buffer coloured by kind, the peak step marked, a
//   <title> tooltip per rectangle plus a small inline script for a nicer one.
// - parse_buffer_list: a JSON list [{"name", "bytes", "first", "last"} + optional "op",
//   "kind", "alignment", "may_share_with"]; plan_to_json's "buffers" is such a list.
//   A malformed list throws std::invalid_argument with one sentence naming the source,
//   the entry and the problem.
#pragma once

#include <nlohmann/json.hpp>

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "memory_planner/planner.h"

namespace onnas::planner {

std::string plan_summary(std::span<const BufferRequest> buffers, const Plan& plan);
std::string plan_ascii(std::span<const BufferRequest> buffers, const Plan& plan, int width = 64);
nlohmann::json plan_to_json(std::span<const BufferRequest> buffers, const Plan& plan);
std::string plan_to_html(std::span<const BufferRequest> buffers, const Plan& plan, std::string_view title);

std::vector<BufferRequest> parse_buffer_list(std::string_view json_text, std::string_view source_name);

// "1.50 MiB", "12.0 KiB", "512 B".
std::string format_bytes(size_t bytes);

}  // namespace onnas::planner
