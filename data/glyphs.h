// An Omniglot-like few-shot benchmark rendered from fonts: one class per character of
// many writing systems, 20 instances per class, each drawn from one of the script's fonts
// (regular, bold, sans, serif, ...) with its own random distortion: an affine transform,
// a stroke thickness and an elastic warp. Rendered glyphs, not handwriting: the
// instances of a class vary as the distortions and the fonts make them vary, not as 20
// people's hands do (README, "The glyph benchmark").
//
//   GlyphOptions o;                                 // Debian's Noto fonts, seed 1
//   GlyphRenderer r(o);                             // reads the fonts, picks the characters
//   r.plan().alphabets[3].characters.size();
//   std::vector<uint8_t> img = r.render(3, 0, 7);   // alphabet 3, character 0, instance 7
//   GlyphSummary s = write_glyph_benchmark(o, "/var/cache/onnas/glyphs");
//
// Written in Omniglot's layout, split by alphabet as Omniglot is:
//   <out>/images_background/<Alphabet>/characterNN/MM.png   (about 60% of the alphabets)
//   <out>/images_evaluation/<Alphabet>/characterNN/MM.png
//   <out>/glyphs.json   what was made: options, fonts (sizes, hashes), characters, counts,
//                       and a hash of every image's bytes in order
// Images are side x side grey, ink dark on white (Omniglot's convention). Everything
// random comes from Rng(seed) forked by (alphabet name, character, instance), so the same
// seed and font files give the same bytes, whatever alphabets are chosen and however
// many threads render them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace onnas::data {

// Where `scripts/setup.sh --glyphs` builds the benchmark and where `onnas meta-train
// --data-format glyphs` looks for it (--data overrides).
inline constexpr const char* kGlyphsDir = "/var/cache/onnas/glyphs";
// Debian's fonts-noto-core.
inline constexpr const char* kNotoFontDir = "/usr/share/fonts/truetype/noto";
// Bumped whenever the rendering changes what a seed produces.
inline constexpr int kGlyphGeneratorVersion = 1;

// One writing system of the table: which fonts and which code points.
struct GlyphAlphabet {
  std::string name;                    // the folder name, as Omniglot names its alphabets
  std::vector<std::string> families;   // font files <family>-*.ttf in the font folder
  std::vector<std::pair<char32_t, char32_t>> ranges;  // inclusive code point ranges
  int stride = 1;                      // every stride-th code point (a syllabary's base forms)
  bool evaluation = false;             // images_evaluation (else images_background)
};
// The table the benchmark is made from.
const std::vector<GlyphAlphabet>& glyph_alphabets();

struct GlyphOptions {
  std::string font_dir = kNotoFontDir;
  int side = 28;              // output images are side x side
  int instances = 20;         // per character (Omniglot: 20 drawers)
  int max_characters = 40;    // per alphabet; more candidates are thinned evenly
  int min_characters = 14;    // an alphabet with fewer usable characters is left out (Omniglot's smallest has 14)
  uint64_t seed = 1;
  std::vector<std::string> alphabets;  // only these (by name); empty: the whole table
};

struct GlyphAlphabetPlan {
  std::string name;
  bool evaluation = false;
  std::vector<std::string> fonts;       // paths, sorted
  std::vector<char32_t> characters;     // chosen code points, ascending
};

struct GlyphPlan {
  std::vector<GlyphAlphabetPlan> alphabets;  // in table order
  std::vector<std::string> left_out;         // "Name: why", for alphabets not made
  int64_t classes(bool evaluation) const;
};

// Reads the fonts and chooses each alphabet's characters: code points that every font of
// the alphabet draws (a glyph with an outline and an advance), with enough ink at the
// output size to be a character rather than a mark, and drawn unlike the characters
// already chosen; then at most max_characters of them, evenly spread. Throws naming a
// missing font folder or an unknown alphabet.
class GlyphRenderer {
 public:
  struct Font;  // a font file as stb_truetype reads it (defined in glyphs.cc)

  explicit GlyphRenderer(GlyphOptions options);
  ~GlyphRenderer();
  GlyphRenderer(const GlyphRenderer&) = delete;
  GlyphRenderer& operator=(const GlyphRenderer&) = delete;

  const GlyphOptions& options() const { return options_; }
  const GlyphPlan& plan() const { return plan_; }
  // Instance `instance` of character `character` of plan().alphabets[alphabet]: side *
  // side bytes, row-major, 255 background. Thread-safe.
  std::vector<uint8_t> render(size_t alphabet, size_t character, int instance) const;

 private:
  GlyphOptions options_;
  GlyphPlan plan_;
  std::vector<std::vector<std::shared_ptr<const Font>>> fonts_;  // per planned alphabet
};

struct GlyphSummary {
  int alphabets_background = 0, alphabets_evaluation = 0;
  int64_t classes_background = 0, classes_evaluation = 0, images = 0;
  uint64_t png_bytes = 0;     // the images' file sizes, summed
  uint64_t images_hash = 0;   // FNV-1a over every image's bytes, in path order
  double seconds = 0;
  std::vector<std::string> left_out;
};

// Renders the whole benchmark into `out_dir` (which must not exist): into a temporary
// folder beside it first, renamed at the end, so a killed run leaves no half-made set
// under the real name.
GlyphSummary write_glyph_benchmark(const GlyphOptions& options, const std::string& out_dir);

// The glyphs.json of a finished benchmark; "" when there is none.
std::string read_glyph_manifest(const std::string& dir);

}  // namespace onnas::data
