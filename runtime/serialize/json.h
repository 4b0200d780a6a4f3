// Strict JSON for the files onnas reads (safetensors headers, genotypes, metadata).
// nlohmann's DOM parser, used as is, accepts a NUL byte as the end of the input (so
// "{...}\0garbage" parses), keeps one of two duplicate keys without a word, lets a few
// bytes of "[[[[" nest a million arrays (about 80 bytes of memory per byte of text),
// and its duplicate-detecting callback mode rescans the parent object after every
// nested object (quadratic in the keys). parse_json refuses the first three and stays
// linear: a SAX handler builds the document, checking each key as it is inserted.
//
//   nlohmann::json j = parse_json(text, "genotype file 'g.json'", {.max_depth = 8});
//   // throws onnas::Error: "genotype file 'g.json': not valid JSON (line 1, column 9: ...)"
//   //                      "genotype file 'g.json': key 'op' appears twice in one object"
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace onnas {

struct JsonLimits {
  int max_depth = 16;                 // nesting of arrays and objects (the top level is 1)
  size_t max_array = SIZE_MAX;        // elements of any one array
};

// Throws onnas::Error beginning with `source`: not valid JSON (with line and column),
// a NUL byte, a key twice in one object, nesting or an array beyond `limits`.
nlohmann::json parse_json(std::string_view text, std::string_view source, const JsonLimits& limits = {});

}  // namespace onnas
