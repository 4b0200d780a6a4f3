#include "runtime/serialize/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <charconv>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>
#include <string_view>

#include "runtime/bf16.h"
#include "runtime/error.h"
#include "runtime/serialize/atomic_file.h"
#include "runtime/serialize/json.h"

namespace onnas {

static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian; so is every target we build for");

namespace {

constexpr std::string_view kMetadataKey = "__metadata__";
constexpr std::string_view kKindPrefix = "onnas.kind.";

// What the reader takes back: F32, I32 and BF16 (u8 holds run-time indices, never saved).
const char* safetensors_dtype(DType t) { return t == DType::f32 ? "F32" : t == DType::bf16 ? "BF16" : "I32"; }

// Every dtype the format defines, with its element size, so a valid-but-unsupported
// dtype gets a different message from a misspelled one.
struct KnownDType {
  std::string_view name;
  int bytes;
};
constexpr KnownDType kKnownDTypes[] = {
    {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"I16", 2}, {"U16", 2}, {"F16", 2},  {"BF16", 2},
    {"I32", 4},  {"U32", 4}, {"F32", 4}, {"F64", 8}, {"I64", 8}, {"U64", 8},
};

bool known_dtype(std::string_view name) {
  return std::any_of(std::begin(kKnownDTypes), std::end(kKnownDTypes), [&](const KnownDType& k) { return k.name == name; });
}

// Reads with pread so a short or failing read is an error, never garbage.
class FileReader {
 public:
  explicit FileReader(const std::string& path) : path_(path), file_(path, "safetensors file") {}

  uint64_t size() const { return file_.size(); }

  void read_at(uint64_t offset, void* out, uint64_t bytes) const {
    auto* p = static_cast<char*>(out);
    while (bytes > 0) {
      ssize_t n = ::pread(file_.fd(), p, size_t(std::min<uint64_t>(bytes, 1u << 30)), off_t(offset));
      if (n < 0) {
        if (errno == EINTR) continue;
        fail("cannot read safetensors file '{}': {}", path_, std::strerror(errno));
      }
      if (n == 0) fail("safetensors file '{}' ended early at byte {} (it changed while being read?)", path_, offset);
      p += n;
      offset += uint64_t(n);
      bytes -= uint64_t(n);
    }
  }

 private:
  std::string path_;
  InputFile file_;
};

const char* json_type(const nlohmann::json& j) { return j.type_name(); }

// A header value for a message: scalars as written (long ones cut), containers by
// type only. Never a whole dump: a hostile header may nest a million arrays, and
// dump() recurses once per level (a stack overflow found by feeding such a file).
std::string describe(const nlohmann::json& j) {
  if (j.is_structured()) return fmt::format("a JSON {}", j.type_name());
  std::string s = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return s.size() > 40 ? s.substr(0, 37) + "..." : s;
}

// One header entry, validated but not yet read.
struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin, end;
};

Entry parse_entry(const std::string& path, const std::string& name, const nlohmann::json& j) {
  auto bad = [&](std::string_view what) -> Error {
    return Error(fmt::format("safetensors file '{}': tensor '{}': {}", path, name, what));
  };
  if (!j.is_object()) throw bad(fmt::format("header entry is a JSON {}, expected an object", json_type(j)));
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!j.contains(key)) throw bad(fmt::format("header entry has no \"{}\"", key));

  const auto& jd = j["dtype"];
  if (!jd.is_string()) throw bad(fmt::format("\"dtype\" is a JSON {}, expected a string", json_type(jd)));
  std::string dtype = jd.get<std::string>();
  Entry e{name, DType::f32, Shape{}, 0, 0};
  if (dtype == "F32") {
    e.dtype = DType::f32;
  } else if (dtype == "I32") {
    e.dtype = DType::i32;
  } else if (dtype == "BF16") {
    e.dtype = DType::bf16;
  } else if (known_dtype(dtype)) {
    fail("safetensors file '{}': dtype {} of tensor '{}' is not supported (onnas reads F32, I32 and BF16)", path, dtype, name);
  } else {
    fail("safetensors file '{}': tensor '{}' has unknown dtype '{}'", path, name, dtype);
  }

  const auto& js = j["shape"];
  if (!js.is_array()) throw bad(fmt::format("\"shape\" is a JSON {}, expected an array of integers", json_type(js)));
  if (js.size() > size_t(Shape::kMaxRank))
    throw bad(fmt::format("shape has rank {}, onnas tensors have at most {} dimensions", js.size(), Shape::kMaxRank));
  int64_t dims[Shape::kMaxRank] = {};
  // numel * 4 must fit in u64; checked per factor so the product can never wrap.
  uint64_t numel = 1;
  const uint64_t max_numel = UINT64_MAX / dtype_size(e.dtype);
  for (size_t i = 0; i < js.size(); ++i) {
    const auto& d = js[i];
    if (d.is_number_integer() && !d.is_number_unsigned() && d.get<int64_t>() < 0)
      throw bad(fmt::format("shape dimension {} is negative ({})", i, d.get<int64_t>()));
    if (!d.is_number_unsigned()) throw bad(fmt::format("shape dimension {} is {}, expected a non-negative integer", i, describe(d)));
    uint64_t v = d.get<uint64_t>();
    if (v > uint64_t(INT64_MAX)) throw bad(fmt::format("shape dimension {} ({}) is too large", i, v));
    if (v != 0 && numel > max_numel / v)
      throw bad(fmt::format("shape has more elements than fit in memory (the product overflows at dimension {}, {})", i, v));
    numel *= v;
    dims[i] = int64_t(v);
  }
  e.shape = Shape(std::span<const int64_t>(dims, js.size()));

  const auto& jo = j["data_offsets"];
  if (!jo.is_array() || jo.size() != 2 || !jo[0].is_number_unsigned() || !jo[1].is_number_unsigned())
    throw bad(fmt::format("\"data_offsets\" is {}, expected [begin, end] as two non-negative integers",
                          jo.is_array() && jo.size() == 2 ? fmt::format("[{}, {}]", describe(jo[0]), describe(jo[1])) : describe(jo)));
  e.begin = jo[0].get<uint64_t>();
  e.end = jo[1].get<uint64_t>();
  if (e.begin > e.end) throw bad(fmt::format("data_offsets [{}, {}] has begin > end", e.begin, e.end));
  uint64_t expected = numel * dtype_size(e.dtype);
  if (e.end - e.begin != expected)
    throw bad(fmt::format("data_offsets [{}, {}] hold {} bytes, but shape {} of {} needs {} bytes", e.begin, e.end,
                          e.end - e.begin, e.shape.str(), dtype, expected));
  return e;
}

}  // namespace

void write_safetensors(const std::string& path, std::span<const NamedTensor> tensors,
                       const std::map<std::string, std::string>& metadata) {
  // ordered_json keeps the tensors in the caller's order, which is also their data order.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) meta[k] = v;
    header[std::string(kMetadataKey)] = std::move(meta);
  }
  std::set<std::string_view> names;
  uint64_t offset = 0;
  for (const NamedTensor& nt : tensors) {
    if (nt.name.empty()) fail("cannot write safetensors file '{}': a tensor has an empty name", path);
    if (nt.name == kMetadataKey) fail("cannot write safetensors file '{}': \"{}\" is reserved, not a tensor name", path, kMetadataKey);
    if (!names.insert(nt.name).second) fail("cannot write safetensors file '{}': tensor '{}' appears twice", path, nt.name);
    if (nt.tensor.dtype() == DType::u8)
      fail("cannot write safetensors file '{}': tensor '{}' is u8 (onnas saves f32, i32 and bf16 tensors)", path, nt.name);
    if (nt.tensor.data() == nullptr && nt.tensor.numel() != 0)
      fail("cannot write safetensors file '{}': tensor '{}' of shape {} has no data", path, nt.name, nt.tensor.shape().str());
    nlohmann::ordered_json shape = nlohmann::ordered_json::array();
    for (int64_t d : nt.tensor.shape().dims()) shape.push_back(d);
    uint64_t bytes = nt.tensor.bytes();
    header[nt.name] = {{"dtype", safetensors_dtype(nt.tensor.dtype())},
                       {"shape", std::move(shape)},
                       {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  // Spaces after the JSON are allowed by the format; they put the data section on an
  // 8-byte boundary so readers can map the file and view the tensors in place.
  text.append((8 - text.size() % 8) % 8, ' ');
  uint64_t n = text.size();
  std::byte len[8];
  for (int i = 0; i < 8; ++i) len[i] = std::byte((n >> (8 * i)) & 0xff);

  AtomicFile file(path);
  file.write(std::span<const std::byte>(len, 8));
  file.write(text);
  for (const NamedTensor& nt : tensors)
    file.write(std::span<const std::byte>(static_cast<const std::byte*>(nt.tensor.data()), nt.tensor.bytes()));
  file.commit();
}

namespace {

// The bytes of a file already in memory, read like a file (the fuzzers feed this).
class MemoryReader {
 public:
  MemoryReader(std::span<const uint8_t> bytes, const std::string& path) : bytes_(bytes), path_(path) {}
  uint64_t size() const { return bytes_.size(); }
  void read_at(uint64_t offset, void* out, uint64_t bytes) const {
    if (offset > bytes_.size() || bytes > bytes_.size() - offset)
      fail("safetensors file '{}' ended early at byte {}", path_, bytes_.size());
    if (bytes != 0) std::memcpy(out, bytes_.data() + offset, size_t(bytes));
  }

 private:
  std::span<const uint8_t> bytes_;
  const std::string& path_;
};

// Parses a whole file from `file` (FileReader or MemoryReader): header, checks, data.
template <typename Reader>
SafetensorsFile parse(const Reader& file, const std::string& path) {
  const uint64_t file_size = file.size();
  if (file_size < 8)
    fail("safetensors file '{}' is {} bytes long, too short to hold the 8-byte header length", path, file_size);
  unsigned char len_bytes[8];
  file.read_at(0, len_bytes, 8);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | len_bytes[i];
  if (header_len > kMaxSafetensorsHeaderBytes)
    fail("safetensors file '{}': header length {} is absurd (the limit is {} bytes); not a safetensors file?", path,
         header_len, kMaxSafetensorsHeaderBytes);
  if (header_len > file_size - 8)
    fail("safetensors file '{}': header length {} exceeds the {} bytes after the length field (file truncated?)", path,
         header_len, file_size - 8);
  if (header_len < 2) fail("safetensors file '{}': header length {} cannot hold a JSON object", path, header_len);

  std::string text(size_t(header_len), '\0');
  file.read_at(8, text.data(), header_len);
  if (text[0] != '{') fail("safetensors file '{}': header does not start with '{{'; not a safetensors file?", path);

  // Strict JSON: a key twice anywhere (a tensor name, or "dtype" inside an entry) is
  // refused, and so is any nesting beyond entry -> shape: a header of "[[[[" must not
  // cost 80 bytes of memory per byte. Arrays hold a shape or two offsets.
  nlohmann::json header = parse_json(text, fmt::format("safetensors file '{}': header", path),
                                     {.max_depth = 3, .max_array = 64});
  if (!header.is_object()) fail("safetensors file '{}': header is a JSON {}, expected an object", path, json_type(header));

  SafetensorsFile out;
  out.path = path;
  std::vector<Entry> entries;
  entries.reserve(header.size());
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == kMetadataKey) {
      if (!it->is_object()) fail("safetensors file '{}': __metadata__ is a JSON {}, expected an object", path, json_type(*it));
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string())
          fail("safetensors file '{}': __metadata__ value of '{}' is a JSON {}, expected a string", path, m.key(), json_type(*m));
        out.metadata[m.key()] = m->get<std::string>();
      }
      continue;
    }
    entries.push_back(parse_entry(path, it.key(), *it));
  }
  header = nullptr;  // the document costs several times the header's text: free it before the data

  // The format requires the tensors to tile the data section exactly: no overlaps
  // (two tensors aliasing one range) and no holes (room for hidden payloads).
  const uint64_t data_start = 8 + header_len;
  const uint64_t data_size = file_size - data_start;
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t covered = 0;
  const Entry* previous = nullptr;
  for (const Entry& e : entries) {
    if (e.end > data_size)
      fail("safetensors file '{}': tensor '{}' has data_offsets [{}, {}] beyond the {}-byte data section (file truncated?)",
           path, e.name, e.begin, e.end, data_size);
    if (e.begin < covered)
      fail("safetensors file '{}': tensor '{}' data_offsets [{}, {}] overlap tensor '{}' [{}, {}]", path, e.name, e.begin,
           e.end, previous->name, previous->begin, previous->end);
    if (e.begin > covered)
      fail("safetensors file '{}': bytes [{}, {}) of the data section belong to no tensor (the format forbids holes)", path,
           covered, e.begin);
    covered = e.end;
    previous = &e;
  }
  if (covered != data_size)
    fail("safetensors file '{}': the data section has {} bytes after the last tensor (trailing garbage?)", path,
         data_size - covered);

  // Only now, with every size proven to lie inside the file, is memory allocated.
  out.tensors.reserve(entries.size());
  for (const Entry& e : entries) {
    SafetensorsTensor t;
    t.name = e.name;
    t.dtype = e.dtype;
    t.shape = e.shape;
    t.data = Buffer(size_t(e.end - e.begin));
    file.read_at(data_start + e.begin, t.data.data(), e.end - e.begin);
    out.tensors.push_back(std::move(t));
  }
  return out;
}

}  // namespace

SafetensorsFile read_safetensors(const std::string& path) { return parse(FileReader(path), path); }

SafetensorsFile parse_safetensors(std::span<const uint8_t> bytes, const std::string& source) {
  return parse(MemoryReader(bytes, source), source);
}

const SafetensorsTensor* SafetensorsFile::find(const std::string& name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

const SafetensorsTensor& SafetensorsFile::get(const std::string& name) const {
  const SafetensorsTensor* t = find(name);
  if (!t) fail("safetensors file '{}' has no tensor '{}'", path, name);
  return *t;
}

int64_t metadata_integer(const std::map<std::string, std::string>& metadata, const std::string& key,
                         const std::string& path, int64_t low, int64_t high) {
  auto it = metadata.find(key);
  if (it == metadata.end()) fail("'{}': its metadata has no \"{}\"", path, key);
  const std::string& text = it->second;
  const std::string shown = text.size() > 40 ? text.substr(0, 37) + "..." : text;
  int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec == std::errc::invalid_argument || end != text.data() + text.size())
    fail("'{}': metadata \"{}\" is '{}', not a whole number", path, key, shown);
  if (ec == std::errc::result_out_of_range || value < low || value > high)
    fail("'{}': metadata \"{}\" is {}, outside {}..{}", path, key, shown, low, high);
  return value;
}

double metadata_number(const std::map<std::string, std::string>& metadata, const std::string& key,
                       const std::string& path, double low, double high) {
  auto it = metadata.find(key);
  if (it == metadata.end()) fail("'{}': its metadata has no \"{}\"", path, key);
  const std::string& text = it->second;
  const std::string shown = text.size() > 40 ? text.substr(0, 37) + "..." : text;
  double value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec == std::errc::invalid_argument || end != text.data() + text.size() || !std::isfinite(value))
    fail("'{}': metadata \"{}\" is '{}', not a finite decimal number", path, key, shown);
  if (ec == std::errc::result_out_of_range || value < low || value > high)
    fail("'{}': metadata \"{}\" is {}, outside {}..{}", path, key, shown, low, high);
  return value;
}

void check_finite(const SafetensorsTensor& t, const std::string& path) {
  if (t.dtype == DType::bf16) {
    const auto* v = static_cast<const uint16_t*>(t.data.data());
    const size_t n = t.data.bytes() / sizeof(uint16_t);
    for (size_t i = 0; i < n; ++i)
      if ((v[i] & 0x7f80u) == 0x7f80u) [[unlikely]]
        fail("safetensors file '{}': tensor '{}' holds a non-finite value ({} at element {})", path, t.name,
             bf16_to_f32(v[i]), i);
    return;
  }
  if (t.dtype != DType::f32) return;
  const auto* v = static_cast<const float*>(t.data.data());
  const size_t n = t.data.bytes() / sizeof(float);
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(v[i])) [[unlikely]]
      fail("safetensors file '{}': tensor '{}' holds a non-finite value ({} at element {})", path, t.name, v[i], i);
}

std::string ParamKindSet::str() const {
  std::string s;
  for (ParamKind k : {ParamKind::weight, ParamKind::grad, ParamKind::state, ParamKind::buffer, ParamKind::arch})
    if (contains(k)) {
      if (!s.empty()) s += '/';
      s += param_kind_name(k);
    }
  return s.empty() ? "(none)" : s;
}

void save_params(const std::string& path, const ParamStore& store, ParamKindSet kinds,
                 const std::map<std::string, std::string>& metadata) {
  std::map<std::string, std::string> meta = metadata;
  std::vector<NamedTensor> tensors;
  for (const auto& e : store.entries()) {
    if (!kinds.contains(e->kind)) continue;
    tensors.push_back({e->name, e->tensor});
    std::string key = std::string(kKindPrefix) + e->name;
    if (meta.count(key)) fail("cannot write '{}': metadata key '{}' is reserved for the tensor's kind", path, key);
    meta[key] = param_kind_name(e->kind);
  }
  write_safetensors(path, tensors, meta);
}

LoadParamsReport load_params(const std::string& path, ParamStore& store, const LoadParamsOptions& options) {
  SafetensorsFile file = read_safetensors(path);
  LoadParamsReport report;
  std::vector<std::pair<const SafetensorsTensor*, Tensor>> copies;
  std::set<std::string> used;
  for (const auto& e : store.entries()) {
    if (!options.kinds.contains(e->kind)) continue;
    const SafetensorsTensor* t = file.find(e->name);
    if (!t) {
      if (options.strict)
        fail("safetensors file '{}' has no tensor '{}' ({} of shape {}), and loading is strict", path, e->name,
             param_kind_name(e->kind), e->tensor.shape().str());
      report.missing.push_back(e->name);
      continue;
    }
    if (t->shape != e->tensor.shape())
      fail("safetensors file '{}': tensor '{}' has shape {} in the file but {} in the model", path, e->name, t->shape.str(),
           e->tensor.shape().str());
    if (t->dtype != e->tensor.dtype())
      fail("safetensors file '{}': tensor '{}' is {} in the file but {} in the model", path, e->name, dtype_name(t->dtype),
           dtype_name(e->tensor.dtype()));
    check_finite(*t, path);
    copies.emplace_back(t, e->tensor);
    used.insert(e->name);
  }
  for (const auto& t : file.tensors) {
    if (used.count(t.name)) continue;
    if (!options.allow_extra)
      fail("safetensors file '{}' has tensor '{}' that is not a {} tensor of the model (a file of another network?)", path,
           t.name, options.kinds.str());
    report.extra.push_back(t.name);
  }
  for (auto& [src, dst] : copies) {
    if (dst.bytes() != 0) std::memcpy(dst.data(), src->data.data(), dst.bytes());
    report.loaded.push_back(src->name);
  }
  for (auto& [k, v] : file.metadata)
    if (!k.starts_with(kKindPrefix)) report.metadata[k] = v;
  return report;
}

}  // namespace onnas
