#include "data/glyphs.h"

#include <stb/stb_image_write.h>
#include <stb/stb_truetype.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "runtime/error.h"
#include "runtime/rng.h"
#include "runtime/threading.h"

namespace onnas::data {

namespace fs = std::filesystem;

const std::vector<GlyphAlphabet>& glyph_alphabets() {
  // Letter ranges only (no digits, punctuation or combining marks where the block
  // separates them); the character filter drops what is left of marks. About 60% of
  // the alphabets are background, as Omniglot's 30 of 50.
  static const std::vector<GlyphAlphabet> table = {
      // background
      {"Latin", {"NotoSans", "NotoSerif", "NotoSansDisplay", "NotoSerifDisplay"}, {{0x41, 0x5A}}},
      {"Greek", {"NotoSans", "NotoSerif", "NotoSansDisplay", "NotoSerifDisplay"}, {{0x391, 0x3A9}}},
      {"Cyrillic", {"NotoSans", "NotoSerif", "NotoSansDisplay", "NotoSerifDisplay"}, {{0x410, 0x42F}}},
      {"Armenian", {"NotoSansArmenian", "NotoSerifArmenian"}, {{0x531, 0x556}}},
      {"Hebrew", {"NotoSansHebrew", "NotoSerifHebrew", "NotoRashiHebrew"}, {{0x5D0, 0x5EA}}},
      {"Arabic", {"NotoSansArabic", "NotoNaskhArabic", "NotoKufiArabic"}, {{0x621, 0x64A}}},
      {"Syriac", {"NotoSansSyriac"}, {{0x710, 0x72F}}},
      {"Devanagari", {"NotoSansDevanagari", "NotoSerifDevanagari"}, {{0x904, 0x939}}},
      {"Bengali", {"NotoSansBengali", "NotoSerifBengali"}, {{0x985, 0x9B9}}},
      {"Gujarati", {"NotoSansGujarati", "NotoSerifGujarati"}, {{0xA85, 0xAB9}}},
      {"Tamil", {"NotoSansTamil", "NotoSerifTamil"}, {{0xB85, 0xBB9}}},
      {"Telugu", {"NotoSansTelugu", "NotoSerifTelugu"}, {{0xC05, 0xC39}}},
      {"Malayalam", {"NotoSansMalayalam", "NotoSerifMalayalam"}, {{0xD05, 0xD3A}}},
      {"Thai", {"NotoSansThai", "NotoSerifThai", "NotoLoopedThai"}, {{0xE01, 0xE2E}}},
      {"Georgian", {"NotoSansGeorgian", "NotoSerifGeorgian"}, {{0x10D0, 0x10FA}}},
      {"Ethiopic", {"NotoSansEthiopic", "NotoSerifEthiopic"}, {{0x1200, 0x1357}}, 8},
      {"Cherokee", {"NotoSansCherokee"}, {{0x13A0, 0x13F4}}},
      {"Canadian_Aboriginal_Syllabics", {"NotoSansCanadianAboriginal"}, {{0x1401, 0x166C}}},
      {"Runic", {"NotoSansRunic"}, {{0x16A0, 0x16EA}}},
      {"Khmer", {"NotoSansKhmer", "NotoSerifKhmer"}, {{0x1780, 0x17A2}}},
      {"Mongolian", {"NotoSansMongolian"}, {{0x1820, 0x1842}}},
      {"Tifinagh",
       {"NotoSansTifinagh", "NotoSansTifinaghAPT", "NotoSansTifinaghAdrar", "NotoSansTifinaghAgrawImazighen",
        "NotoSansTifinaghAhaggar", "NotoSansTifinaghAir", "NotoSansTifinaghAzawagh", "NotoSansTifinaghGhat",
        "NotoSansTifinaghHawad", "NotoSansTifinaghRhissaIxa", "NotoSansTifinaghSIL", "NotoSansTifinaghTawellemmet"},
       {{0x2D30, 0x2D67}}},
      {"Vai", {"NotoSansVai"}, {{0xA500, 0xA60B}}},
      {"Javanese", {"NotoSansJavanese"}, {{0xA984, 0xA9B2}}},
      {"Balinese", {"NotoSansBalinese", "NotoSerifBalinese"}, {{0x1B05, 0x1B33}}},
      {"Glagolitic", {"NotoSansGlagolitic"}, {{0x2C00, 0x2C2E}}},
      {"Coptic", {"NotoSansCoptic"}, {{0x2C80, 0x2CE3}}, 2},
      {"Gothic", {"NotoSansGothic"}, {{0x10330, 0x1034A}}},
      {"Deseret", {"NotoSansDeseret"}, {{0x10400, 0x10427}}},
      {"Old_Italic", {"NotoSansOldItalic"}, {{0x10300, 0x1031F}}},
      // evaluation
      {"Gurmukhi", {"NotoSansGurmukhi", "NotoSerifGurmukhi"}, {{0xA05, 0xA39}}, 1, true},
      {"Kannada", {"NotoSansKannada", "NotoSerifKannada"}, {{0xC85, 0xCB9}}, 1, true},
      {"Oriya", {"NotoSansOriya"}, {{0xB05, 0xB39}}, 1, true},
      {"Sinhala", {"NotoSansSinhala", "NotoSerifSinhala"}, {{0xD85, 0xDC6}}, 1, true},
      {"Lao", {"NotoSansLao", "NotoSerifLao", "NotoLoopedLao"}, {{0xE81, 0xEAE}}, 1, true},
      {"Myanmar", {"NotoSansMyanmar", "NotoSerifMyanmar"}, {{0x1000, 0x102A}}, 1, true},
      {"Tibetan", {"NotoSerifTibetan"}, {{0xF40, 0xF6C}}, 1, true},
      {"N_Ko", {"NotoSansNKo"}, {{0x7CA, 0x7EA}}, 1, true},
      {"Thaana", {"NotoSansThaana"}, {{0x780, 0x7A5}}, 1, true},
      {"Samaritan", {"NotoSansSamaritan"}, {{0x800, 0x815}}, 1, true},
      {"Ol_Chiki", {"NotoSansOlChiki"}, {{0x1C5A, 0x1C7D}}, 1, true},
      {"Bamum", {"NotoSansBamum"}, {{0xA6A0, 0xA6EF}}, 1, true},
      {"Lisu", {"NotoSansLisu"}, {{0xA4D0, 0xA4F7}}, 1, true},
      {"Adlam", {"NotoSansAdlam", "NotoSansAdlamUnjoined"}, {{0x1E900, 0x1E921}}, 1, true},
      {"Osage", {"NotoSansOsage"}, {{0x104B0, 0x104D3}}, 1, true},
      {"Old_Turkic", {"NotoSansOldTurkic"}, {{0x10C00, 0x10C48}}, 1, true},
      {"Old_Hungarian", {"NotoSansOldHungarian"}, {{0x10C80, 0x10CB2}}, 1, true},
      {"Linear_B", {"NotoSansLinearB"}, {{0x10000, 0x1005D}}, 1, true},
      {"Cham", {"NotoSansCham"}, {{0xAA00, 0xAA28}}, 1, true},
      {"Kayah_Li", {"NotoSansKayahLi"}, {{0xA90A, 0xA925}}, 1, true},
  };
  return table;
}

int64_t GlyphPlan::classes(bool evaluation) const {
  int64_t n = 0;
  for (const auto& a : alphabets)
    if (a.evaluation == evaluation) n += int64_t(a.characters.size());
  return n;
}

// ---------------------------------------------------------------------------------
// Fonts and the rendering of one instance.

struct GlyphRenderer::Font {
  std::string path;
  std::vector<unsigned char> bytes;
  stbtt_fontinfo info{};
};

namespace {

// Sizes relative to the output side: a glyph is drawn on a canvas kCanvasScale times
// finer, sampled at kSuperSample times the output and averaged down.
constexpr int kCanvasScale = 4;
constexpr int kSuperSample = 2;
constexpr float kGlyphFill = 0.68f;  // the glyph's longer side, as a part of the canvas

// The distortion of one instance (output pixels, degrees).
constexpr float kMaxRotationDeg = 12.0f;
constexpr float kMaxShear = 0.25f;
constexpr float kMinScale = 0.85f, kMaxScale = 1.1f;
constexpr float kMaxShift = 1.5f;
constexpr float kMaxElastic = 1.3f;   // std of the control points' displacement
constexpr int kElasticCells = 4;      // control grid of (cells + 1)^2 points
// Strokes are thickened by a disk of radius up to this (output pixels); never thinned,
// since thinning erases the hairlines of serif and contrast fonts.
constexpr float kMaxThickening = 0.75f;

// What a glyph must have to be a character at the output size.
constexpr int kMinInkPixels = 10;      // of side * side, ink > half
constexpr float kSameGlyph = 0.02f;    // mean absolute difference below which two are one

std::shared_ptr<GlyphRenderer::Font> load_font(const std::string& path) {
  auto f = std::make_shared<GlyphRenderer::Font>();
  f->path = path;
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("glyphs: cannot read font '{}'", path);
  f->bytes.assign(std::istreambuf_iterator<char>(in), {});
  const int offset = stbtt_GetFontOffsetForIndex(f->bytes.data(), 0);
  if (offset < 0 || !stbtt_InitFont(&f->info, f->bytes.data(), offset)) fail("glyphs: '{}' is not a font stb_truetype reads", path);
  return f;
}

// The glyph of `cp` drawn centered on a canvas of side S (coverage in [0, 1]), its
// longer side kGlyphFill * S; empty when the font has no outline for it.
std::vector<float> draw_canvas(const GlyphRenderer::Font& font, char32_t cp, int S) {
  const int g = stbtt_FindGlyphIndex(&font.info, int(cp));
  if (g == 0 || stbtt_IsGlyphEmpty(&font.info, g)) return {};
  int advance = 0, lsb = 0;
  stbtt_GetGlyphHMetrics(&font.info, g, &advance, &lsb);
  int x0, y0, x1, y1;
  if (advance <= 0 || !stbtt_GetGlyphBox(&font.info, g, &x0, &y0, &x1, &y1) || x1 <= x0 || y1 <= y0) return {};
  const float scale = kGlyphFill * float(S) / float(std::max(x1 - x0, y1 - y0));
  int bx0, by0, bx1, by1;
  stbtt_GetGlyphBitmapBox(&font.info, g, scale, scale, &bx0, &by0, &bx1, &by1);
  const int w = bx1 - bx0, h = by1 - by0;
  if (w <= 0 || h <= 0 || w > S || h > S) return {};
  std::vector<unsigned char> bitmap(size_t(w) * size_t(h));
  stbtt_MakeGlyphBitmap(&font.info, bitmap.data(), w, h, w, scale, scale, g);
  std::vector<float> canvas(size_t(S) * size_t(S), 0.0f);
  const int ox = (S - w) / 2, oy = (S - h) / 2;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) canvas[size_t(oy + y) * size_t(S) + size_t(ox + x)] = float(bitmap[size_t(y * w + x)]) / 255.0f;
  return canvas;
}

float bilinear(const std::vector<float>& img, int S, float x, float y) {
  const float fx = std::floor(x), fy = std::floor(y);
  const int ix = int(fx), iy = int(fy);
  const float ax = x - fx, ay = y - fy;
  auto at = [&](int xx, int yy) { return xx < 0 || yy < 0 || xx >= S || yy >= S ? 0.0f : img[size_t(yy * S + xx)]; };
  return (1 - ay) * ((1 - ax) * at(ix, iy) + ax * at(ix + 1, iy)) + ay * ((1 - ax) * at(ix, iy + 1) + ax * at(ix + 1, iy + 1));
}

// Samples the canvas through an affine map and an elastic field onto side x side bytes
// (255 background, 0 ink). `rng` null: the undistorted glyph.
std::vector<uint8_t> sample(const std::vector<float>& canvas, int side, Rng* rng) {
  const int S = side * kCanvasScale, O = side * kSuperSample;
  float a = 1, b = 0, c = 0, d = 1, tx = 0, ty = 0, elastic = 0;  // output -> canvas, in output pixels
  std::vector<float> grid_x((kElasticCells + 1) * (kElasticCells + 1), 0.0f), grid_y(grid_x.size(), 0.0f);
  if (rng) {
    const float theta = (rng->uniform() * 2 - 1) * kMaxRotationDeg * 3.14159265f / 180.0f;
    const float shear = (rng->uniform() * 2 - 1) * kMaxShear;
    const float sx = kMinScale + rng->uniform() * (kMaxScale - kMinScale);
    const float sy = kMinScale + rng->uniform() * (kMaxScale - kMinScale);
    tx = (rng->uniform() * 2 - 1) * kMaxShift;
    ty = (rng->uniform() * 2 - 1) * kMaxShift;
    // Forward map F = R(theta) * Shear * diag(sx, sy); we need its inverse.
    const float ct = std::cos(theta), st = std::sin(theta);
    const float f00 = ct * sx, f01 = (ct * shear - st) * sy, f10 = st * sx, f11 = (st * shear + ct) * sy;
    const float det = f00 * f11 - f01 * f10;
    a = f11 / det, b = -f01 / det, c = -f10 / det, d = f00 / det;
    elastic = rng->uniform() * kMaxElastic;
    for (size_t i = 0; i < grid_x.size(); ++i) {
      grid_x[i] = rng->normal() * elastic;
      grid_y[i] = rng->normal() * elastic;
    }
  }
  const float to_canvas = float(S) / float(side);  // output pixels -> canvas pixels
  std::vector<float> fine(size_t(O) * size_t(O));
  for (int v = 0; v < O; ++v)
    for (int u = 0; u < O; ++u) {
      // In output pixels, relative to the centre.
      float px = (float(u) + 0.5f) / kSuperSample - side * 0.5f;
      float py = (float(v) + 0.5f) / kSuperSample - side * 0.5f;
      if (elastic > 0) {
        const float gx = (float(u) + 0.5f) / float(O) * kElasticCells, gy = (float(v) + 0.5f) / float(O) * kElasticCells;
        const int ix = std::min(int(gx), kElasticCells - 1), iy = std::min(int(gy), kElasticCells - 1);
        const float fx = gx - float(ix), fy = gy - float(iy);
        auto lerp2 = [&](const std::vector<float>& g) {
          auto at = [&](int x, int y) { return g[size_t(y * (kElasticCells + 1) + x)]; };
          return (1 - fy) * ((1 - fx) * at(ix, iy) + fx * at(ix + 1, iy)) + fy * ((1 - fx) * at(ix, iy + 1) + fx * at(ix + 1, iy + 1));
        };
        px += lerp2(grid_x);
        py += lerp2(grid_y);
      }
      const float qx = a * (px - tx) + b * (py - ty), qy = c * (px - tx) + d * (py - ty);
      fine[size_t(v * O + u)] = bilinear(canvas, S, qx * to_canvas + float(S) * 0.5f - 0.5f, qy * to_canvas + float(S) * 0.5f - 0.5f);
    }
  std::vector<uint8_t> out(size_t(side) * size_t(side));
  for (int y = 0; y < side; ++y)
    for (int x = 0; x < side; ++x) {
      float ink = 0;
      for (int j = 0; j < kSuperSample; ++j)
        for (int i = 0; i < kSuperSample; ++i) ink += fine[size_t((y * kSuperSample + j) * O + x * kSuperSample + i)];
      ink = std::clamp(ink / float(kSuperSample * kSuperSample), 0.0f, 1.0f);
      out[size_t(y * side + x)] = uint8_t(std::lround(255.0f * (1.0f - ink)));
    }
  return out;
}

// Thickens the strokes: the maximum of the coverage over a disk of radius r (canvas
// pixels), a grey-level dilation.
void thicken(std::vector<float>& canvas, int S, float r) {
  const int R = int(std::floor(r));
  if (R < 1) return;
  std::vector<std::pair<int, int>> disk;
  for (int dy = -R; dy <= R; ++dy)
    for (int dx = -R; dx <= R; ++dx)
      if (float(dx * dx + dy * dy) <= r * r) disk.emplace_back(dx, dy);
  std::vector<float> out(canvas.size(), 0.0f);
  for (int y = 0; y < S; ++y)
    for (int x = 0; x < S; ++x) {
      float m = 0;
      for (const auto& [dx, dy] : disk) {
        const int xx = x + dx, yy = y + dy;
        if (xx >= 0 && yy >= 0 && xx < S && yy < S) m = std::max(m, canvas[size_t(yy * S + xx)]);
      }
      out[size_t(y * S + x)] = m;
    }
  canvas.swap(out);
}

std::vector<std::string> font_files(const std::string& dir, const std::string& family) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    // <family>-<Style>.ttf exactly: NotoSans- must not take NotoSansArmenian-.
    if (name.starts_with(family + "-") && (name.ends_with(".ttf") || name.ends_with(".otf"))) out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

GlyphRenderer::GlyphRenderer(GlyphOptions options) : options_(std::move(options)) {
  const GlyphOptions& o = options_;
  if (o.side < 8 || o.side > 256) fail("glyphs: side {} is outside [8, 256]", o.side);
  if (o.instances < 1 || o.instances > 1000) fail("glyphs: {} instances per character is outside [1, 1000]", o.instances);
  if (o.max_characters < 1 || o.min_characters < 1)
    fail("glyphs: characters per alphabet (at least {}, at most {}) must be positive", o.min_characters, o.max_characters);
  std::error_code ec;
  if (!fs::is_directory(o.font_dir, ec))
    fail("glyphs: font folder '{}' does not exist (Debian: apt-get install fonts-noto-core, or scripts/setup.sh --glyphs)",
         o.font_dir);
  for (const std::string& want : o.alphabets)
    if (std::none_of(glyph_alphabets().begin(), glyph_alphabets().end(), [&](const GlyphAlphabet& a) { return a.name == want; }))
      fail("glyphs: no alphabet named '{}' in the table", want);
  const int canonical_side = o.side * kCanvasScale;
  for (const GlyphAlphabet& spec : glyph_alphabets()) {
    if (!o.alphabets.empty() && std::find(o.alphabets.begin(), o.alphabets.end(), spec.name) == o.alphabets.end()) continue;
    std::vector<std::shared_ptr<const Font>> fonts;
    for (const std::string& family : spec.families)
      for (const std::string& path : font_files(o.font_dir, family)) fonts.push_back(load_font(path));
    if (fonts.empty()) {
      plan_.left_out.push_back(spec.name + ": no font files in " + o.font_dir);
      continue;
    }
    // Candidates: drawn by every font, with enough ink, unlike those already kept
    // (compared at the output size, undistorted, in the first font).
    std::vector<char32_t> kept;
    std::vector<std::vector<uint8_t>> looks;
    for (const auto& [lo, hi] : spec.ranges)
      for (char32_t cp = lo; cp <= hi; cp += char32_t(spec.stride)) {
        bool drawn = true;
        std::vector<uint8_t> look;
        for (const auto& f : fonts) {
          std::vector<float> canvas = draw_canvas(*f, cp, canonical_side);
          if (canvas.empty()) {
            drawn = false;
            break;
          }
          if (look.empty()) look = sample(canvas, o.side, nullptr);
        }
        if (!drawn) continue;
        if (std::count_if(look.begin(), look.end(), [](uint8_t v) { return v < 128; }) < kMinInkPixels) continue;
        const bool duplicate = std::any_of(looks.begin(), looks.end(), [&](const std::vector<uint8_t>& other) {
          double diff = 0;
          for (size_t p = 0; p < look.size(); ++p) diff += std::abs(int(look[p]) - int(other[p]));
          return diff / (255.0 * double(look.size())) < kSameGlyph;
        });
        if (duplicate) continue;
        kept.push_back(cp);
        looks.push_back(std::move(look));
      }
    if (int(kept.size()) < o.min_characters) {
      plan_.left_out.push_back(fmt::format("{}: {} usable characters, fewer than {}", spec.name, kept.size(), o.min_characters));
      continue;
    }
    GlyphAlphabetPlan p;
    p.name = spec.name;
    p.evaluation = spec.evaluation;
    for (const auto& f : fonts) p.fonts.push_back(f->path);
    const size_t m = kept.size(), take = std::min(m, size_t(o.max_characters));
    for (size_t k = 0; k < take; ++k) p.characters.push_back(kept[k * m / take]);  // evenly spread
    plan_.alphabets.push_back(std::move(p));
    fonts_.push_back(std::move(fonts));
  }
  if (plan_.alphabets.empty()) fail("glyphs: no alphabet could be made from the fonts in '{}'", o.font_dir);
}

GlyphRenderer::~GlyphRenderer() = default;

std::vector<uint8_t> GlyphRenderer::render(size_t alphabet, size_t character, int instance) const {
  const GlyphAlphabetPlan& a = plan_.alphabets.at(alphabet);
  const char32_t cp = a.characters.at(character);
  // A stream per (alphabet name, character's code point, instance): the same bytes
  // whichever other alphabets or characters are made.
  Rng rng = Rng(options_.seed).fork(fnv1a(a.name.data(), a.name.size())).fork(uint64_t(cp) * 1000003u + uint64_t(instance));
  const auto& fonts = fonts_[alphabet];
  // Fonts in turn from a random start, so every font draws its share of the instances.
  const size_t first = size_t(Rng(options_.seed).fork(fnv1a(a.name.data(), a.name.size())).fork(cp).uniform_int(int64_t(fonts.size())));
  const Font& font = *fonts[(first + size_t(instance)) % fonts.size()];
  const int S = options_.side * kCanvasScale;
  std::vector<float> canvas = draw_canvas(font, cp, S);
  ONNAS_CHECK(!canvas.empty(), "glyph U+{:04X} vanished from '{}'", uint32_t(cp), font.path);
  thicken(canvas, S, rng.uniform() * kMaxThickening * float(kCanvasScale));
  return sample(canvas, options_.side, &rng);
}

// ---------------------------------------------------------------------------------
// Writing the benchmark.

namespace {

void append_png(void* context, void* data, int size) {
  auto* out = static_cast<std::vector<uint8_t>*>(context);
  const auto* p = static_cast<const uint8_t*>(data);
  out->insert(out->end(), p, p + size);
}

void write_file(const fs::path& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  if (!out) fail("glyphs: cannot write '{}'", path.string());
}

std::string two_digits(size_t i) { return fmt::format("{:02d}", i); }

}  // namespace

GlyphSummary write_glyph_benchmark(const GlyphOptions& options, const std::string& out_dir) {
  const auto t0 = std::chrono::steady_clock::now();
  std::error_code ec;
  if (fs::exists(out_dir, ec)) fail("glyphs: '{}' already exists (remove it to make the benchmark again)", out_dir);
  GlyphRenderer r(options);
  const GlyphPlan& plan = r.plan();
  const fs::path final_dir = fs::path(out_dir);
  const fs::path tmp = final_dir.parent_path() / (final_dir.filename().string() + ".tmp-" + std::to_string(::getpid()));
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp, ec);
  if (ec) fail("glyphs: cannot create '{}': {}", tmp.string(), ec.message());

  GlyphSummary s;
  s.left_out = plan.left_out;
  s.images_hash = fnv1a(nullptr, 0);
  nlohmann::json alphabets = nlohmann::json::array();
  for (size_t ai = 0; ai < plan.alphabets.size(); ++ai) {
    const GlyphAlphabetPlan& a = plan.alphabets[ai];
    const fs::path dir = tmp / (a.evaluation ? "images_evaluation" : "images_background") / a.name;
    const int64_t nc = int64_t(a.characters.size()), ni = options.instances;
    for (int64_t c = 0; c < nc; ++c) fs::create_directories(dir / ("character" + two_digits(size_t(c + 1))));
    // Rendered and written in parallel; hashed in order afterwards.
    std::vector<uint64_t> hashes(size_t(nc * ni));
    std::vector<uint64_t> sizes(size_t(nc * ni));
    parallel_for(0, nc * ni, 8, [&](int64_t lo, int64_t hi) {
      for (int64_t k = lo; k < hi; ++k) {
        const int64_t c = k / ni, i = k % ni;
        std::vector<uint8_t> img = r.render(ai, size_t(c), int(i));
        std::vector<uint8_t> png;
        if (!stbi_write_png_to_func(append_png, &png, options.side, options.side, 1, img.data(), options.side))
          fail("glyphs: PNG encoding failed");
        write_file(dir / ("character" + two_digits(size_t(c + 1))) / (two_digits(size_t(i + 1)) + ".png"), png);
        hashes[size_t(k)] = fnv1a(png.data(), png.size());
        sizes[size_t(k)] = png.size();
      }
    });
    for (size_t k = 0; k < hashes.size(); ++k) {
      s.images_hash = fnv1a(&hashes[k], sizeof hashes[k], s.images_hash);
      s.png_bytes += sizes[k];
    }
    s.images += nc * ni;
    (a.evaluation ? s.alphabets_evaluation : s.alphabets_background) += 1;
    (a.evaluation ? s.classes_evaluation : s.classes_background) += nc;
    nlohmann::json chars = nlohmann::json::array();
    for (char32_t cp : a.characters) chars.push_back(fmt::format("U+{:04X}", uint32_t(cp)));
    nlohmann::json fonts = nlohmann::json::array();
    for (const std::string& f : a.fonts) fonts.push_back(fs::path(f).filename().string());
    alphabets.push_back({{"name", a.name}, {"split", a.evaluation ? "evaluation" : "background"}, {"fonts", fonts},
                         {"characters", chars}});
  }
  // The fonts by name, size and hash: the same seed and fonts give the same images.
  nlohmann::json font_list = nlohmann::json::object();
  for (const auto& a : plan.alphabets)
    for (const std::string& f : a.fonts) {
      std::ifstream in(f, std::ios::binary);
      std::vector<char> bytes((std::istreambuf_iterator<char>(in)), {});
      font_list[fs::path(f).filename().string()] = {{"bytes", bytes.size()},
                                                    {"fnv1a64", fmt::format("{:016x}", fnv1a(bytes.data(), bytes.size()))}};
    }
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  nlohmann::json manifest = {
      {"what", "rendered glyphs of Debian's fonts in Omniglot's layout (not handwriting): one class per character, "
               "instances from the alphabet's fonts with random affine, stroke-thickness and elastic distortion"},
      {"generator_version", kGlyphGeneratorVersion},
      {"seed", options.seed},
      {"side", options.side},
      {"instances", options.instances},
      {"max_characters", options.max_characters},
      {"min_characters", options.min_characters},
      {"font_dir", options.font_dir},
      {"alphabets_background", s.alphabets_background},
      {"alphabets_evaluation", s.alphabets_evaluation},
      {"classes_background", s.classes_background},
      {"classes_evaluation", s.classes_evaluation},
      {"images", s.images},
      {"png_bytes", s.png_bytes},
      {"images_fnv1a64", fmt::format("{:016x}", s.images_hash)},
      {"left_out", s.left_out},
      {"alphabet_list", alphabets},
      {"fonts", font_list}};
  const std::string text = manifest.dump(1) + "\n";
  write_file(tmp / "glyphs.json", std::vector<uint8_t>(text.begin(), text.end()));
  fs::rename(tmp, final_dir, ec);
  if (ec) fail("glyphs: cannot rename '{}' to '{}': {}", tmp.string(), out_dir, ec.message());
  return s;
}

std::string read_glyph_manifest(const std::string& dir) {
  std::ifstream in(fs::path(dir) / "glyphs.json");
  if (!in) return "";
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace onnas::data
