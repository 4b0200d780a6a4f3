#include "runtime/serialize/json.h"

#include <string>
#include <utility>
#include <vector>

#include "runtime/error.h"

namespace onnas {

namespace {

using json = nlohmann::json;

// The SAX events of nlohmann's parser, turned into a document: each value is added to
// the innermost open container, a key is checked as it is inserted.
class StrictBuilder {
 public:
  StrictBuilder(json& root, std::string_view source, const JsonLimits& limits)
      : root_(root), source_(source), limits_(limits) {}

  bool null() { return add(json(nullptr)), true; }
  bool boolean(bool v) { return add(json(v)), true; }
  bool number_integer(json::number_integer_t v) { return add(json(v)), true; }
  bool number_unsigned(json::number_unsigned_t v) { return add(json(v)), true; }
  bool number_float(json::number_float_t v, const json::string_t&) { return add(json(v)), true; }
  bool string(json::string_t& v) { return add(json(std::move(v))), true; }
  bool binary(json::binary_t& v) { return add(json::binary(std::move(v))), true; }
  bool start_object(std::size_t) { return open(json::object()); }
  bool start_array(std::size_t) { return open(json::array()); }
  bool key(json::string_t& k) {
    key_ = std::move(k);
    return true;
  }
  bool end_object() { return open_.pop_back(), true; }
  bool end_array() { return open_.pop_back(), true; }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& ex) {
    // "[json.exception.parse_error.101] parse error at line 1, column 5: syntax error ..."
    // -> "line 1, column 5: syntax error ..." (the token it quotes is cut: it may be huge).
    std::string what = ex.what();
    if (size_t at = what.find("parse error at "); at != std::string::npos) what.erase(0, at + 15);
    if (what.size() > 200) what = what.substr(0, 197) + "...";
    fail("{}: not valid JSON ({})", source_, what);
  }

 private:
  json* add(json&& v) {
    if (open_.empty()) {
      root_ = std::move(v);
      return &root_;
    }
    json& top = *open_.back();
    if (top.is_array()) {
      if (top.size() >= limits_.max_array)
        fail("{}: a JSON array holds more than {} values, more than this file may have", source_, limits_.max_array);
      top.push_back(std::move(v));
      return &top.back();  // nothing else enters this array while the new value is open
    }
    auto [it, inserted] = top.get_ref<json::object_t&>().emplace(std::move(key_), std::move(v));
    if (!inserted) {
      std::string k = it->first.size() > 60 ? it->first.substr(0, 57) + "..." : it->first;
      fail("{}: key '{}' appears twice in one JSON object", source_, k);
    }
    return &it->second;
  }

  bool open(json&& container) {
    if (int(open_.size()) >= limits_.max_depth)
      fail("{}: JSON nested deeper than {} levels, more than this file may have", source_, limits_.max_depth);
    open_.push_back(add(std::move(container)));
    return true;
  }

  json& root_;
  std::string_view source_;
  const JsonLimits& limits_;
  std::vector<json*> open_;  // the open containers, innermost last
  std::string key_;          // the key of the next value of the innermost object
};

}  // namespace

json parse_json(std::string_view text, std::string_view source, const JsonLimits& limits) {
  // nlohmann's lexer takes a NUL byte for the end of the input; valid JSON has none
  // (control characters inside strings must be escaped).
  if (size_t nul = text.find('\0'); nul != std::string_view::npos)
    fail("{}: not valid JSON (a NUL byte at byte {})", source, nul);
  json root;
  StrictBuilder builder(root, source, limits);
  json::sax_parse(text.begin(), text.end(), &builder, json::input_format_t::json, /*strict=*/true);
  return root;
}

}  // namespace onnas
