// The glyph benchmark generator (data/glyphs.h): the same seed and fonts give the same
// bytes; the counts and the layout are Omniglot's; a glyph has ink, its instances differ,
// and an instance looks more like its own character than like the others. Needs Debian's
// fonts-noto-core (scripts/setup.sh installs it).
#include <catch2/catch.hpp>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "data/fewshot_sets.h"
#include "data/glyphs.h"
#include "data/image_folder.h"
#include "runtime/error.h"

using namespace onnas;
using namespace onnas::data;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    static int counter = 0;
    path = fs::temp_directory_path() / ("onnas_test_glyphs_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

void require_fonts() {
  if (!fs::is_directory(kNotoFontDir))
    FAIL("the glyph tests need Debian's fonts-noto-core in " << kNotoFontDir << " (scripts/setup.sh installs it)");
}

// Every file under `dir`, relative path -> bytes.
std::vector<std::pair<std::string, std::string>> read_tree(const fs::path& dir) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) {
      std::ifstream in(e.path(), std::ios::binary);
      out.emplace_back(fs::relative(e.path(), dir).string(), std::string(std::istreambuf_iterator<char>(in), {}));
    }
  std::sort(out.begin(), out.end());
  return out;
}

double distance(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d += double((int(a[i]) - int(b[i])) * (int(a[i]) - int(b[i])));
  return d;
}

}  // namespace

TEST_CASE("glyphs: the same seed and fonts give the same bytes, another seed other bytes") {
  require_fonts();
  GlyphOptions o;
  o.alphabets = {"Armenian", "Tifinagh", "Gothic"};
  o.instances = 3;
  o.max_characters = 4;
  TempDir a, b, c;
  GlyphSummary sa = write_glyph_benchmark(o, a.path.string());
  GlyphSummary sb = write_glyph_benchmark(o, b.path.string());
  o.seed = 2;
  GlyphSummary sc = write_glyph_benchmark(o, c.path.string());
  const auto ta = read_tree(a.path), tb = read_tree(b.path), tc = read_tree(c.path);
  REQUIRE(ta.size() == 3 * 4 * 3 + 1);  // the images and glyphs.json
  CHECK(ta == tb);
  CHECK(sa.images_hash == sb.images_hash);
  CHECK(sa.images_hash != sc.images_hash);
  int differ = 0;
  for (size_t i = 0; i < ta.size(); ++i) differ += ta[i].second != tc[i].second;
  CHECK(differ >= int(ta.size()) - 2);  // every image (all but glyphs.json's unchanged parts)
  // An alphabet renders the same whatever else is made with it.
  GlyphOptions alone;
  alone.alphabets = {"Tifinagh"};
  alone.instances = 3;
  alone.max_characters = 4;
  GlyphOptions three = alone;
  three.alphabets = o.alphabets;
  GlyphRenderer r(alone), all(three);
  const size_t tif = size_t(std::find_if(all.plan().alphabets.begin(), all.plan().alphabets.end(),
                                         [](const GlyphAlphabetPlan& p) { return p.name == "Tifinagh"; }) -
                            all.plan().alphabets.begin());
  CHECK(r.render(0, 2, 1) == all.render(tif, 2, 1));
}

TEST_CASE("glyphs: Omniglot's layout and counts, split by alphabet, readable as an Omniglot tree") {
  require_fonts();
  GlyphOptions o;
  o.alphabets = {"Greek", "Armenian", "Gurmukhi"};  // two background, one evaluation
  o.instances = 4;
  o.max_characters = 6;
  TempDir dir;
  GlyphSummary s = write_glyph_benchmark(o, dir.path.string());
  CHECK(s.alphabets_background == 2);
  CHECK(s.alphabets_evaluation == 1);
  CHECK(s.classes_background == 12);
  CHECK(s.classes_evaluation == 6);
  CHECK(s.images == 18 * 4);
  CHECK(fs::exists(dir.path / "images_background/Greek/character01/01.png"));
  CHECK(fs::exists(dir.path / "images_background/Armenian/character06/04.png"));
  CHECK(fs::exists(dir.path / "images_evaluation/Gurmukhi/character03/02.png"));
  CHECK_FALSE(fs::exists(dir.path / "images_background/Greek/character07"));
  const auto manifest = nlohmann::json::parse(read_glyph_manifest(dir.path.string()));
  CHECK(manifest["classes_background"] == 12);
  CHECK(manifest["seed"] == 1);
  CHECK(manifest["alphabet_list"].size() == 3);
  CHECK(std::string(manifest["what"]).find("not handwriting") != std::string::npos);
  // The few-shot loader reads it as Omniglot.
  OmniglotOptions omniglot;
  omniglot.root = dir.path.string();
  FewShotSets sets = open_omniglot(omniglot);
  CHECK(sets.sets[FewShotSets::meta_train]->num_classes == 12);
  CHECK(sets.sets[FewShotSets::meta_test]->num_classes == 6);
  CHECK(sets.sets[FewShotSets::meta_test]->N == 24);
  CHECK_THROWS_WITH(write_glyph_benchmark(o, dir.path.string()), Catch::Contains("already exists"));
  GlyphOptions klingon, no_fonts;
  klingon.alphabets = {"Klingon"};
  no_fonts.font_dir = "/nonexistent";
  CHECK_THROWS_WITH(GlyphRenderer(klingon), Catch::Contains("no alphabet named 'Klingon'"));
  CHECK_THROWS_WITH(GlyphRenderer(no_fonts), Catch::Contains("fonts-noto-core"));
}

TEST_CASE("glyphs: a glyph has ink, its instances differ, and it looks like its own character") {
  require_fonts();
  GlyphOptions o;
  o.alphabets = {"Georgian", "Cherokee"};
  o.max_characters = 8;
  GlyphRenderer r(o);
  REQUIRE(r.plan().alphabets.size() == 2);
  const int kInstances = 6;
  std::vector<std::vector<uint8_t>> images;
  std::vector<int> labels;
  for (size_t a = 0; a < 2; ++a)
    for (size_t c = 0; c < r.plan().alphabets[a].characters.size(); ++c)
      for (int i = 0; i < kInstances; ++i) {
        std::vector<uint8_t> img = r.render(a, c, i);
        REQUIRE(img.size() == 28 * 28);
        const auto ink = std::count_if(img.begin(), img.end(), [](uint8_t v) { return v < 128; });
        INFO(r.plan().alphabets[a].name << " character " << c << " instance " << i << ": " << ink << " ink pixels");
        CHECK(ink >= 10);          // not blank
        CHECK(ink <= 28 * 28 / 2);  // dark strokes on a white page, not the reverse
        CHECK(img[0] == 255);       // a white margin
        images.push_back(std::move(img));
        labels.push_back(int(labels.size()) / kInstances);
      }
  // Instances differ from each other (distortion), and each one's nearest other image
  // is mostly an instance of its own character (chance: 1 in 16).
  std::set<std::vector<uint8_t>> distinct(images.begin(), images.end());
  CHECK(distinct.size() == images.size());
  int same = 0;
  for (size_t i = 0; i < images.size(); ++i) {
    size_t best = i == 0 ? 1 : 0;
    for (size_t j = 0; j < images.size(); ++j)
      if (j != i && distance(images[i], images[j]) < distance(images[i], images[best])) best = j;
    same += labels[best] == labels[i];
  }
  WARN("glyphs: nearest neighbour of the same character for " << same << " of " << images.size() << " instances");
  CHECK(same >= int(images.size()) * 6 / 10);
}

TEST_CASE("glyphs: the whole table makes an Omniglot-sized benchmark") {
  require_fonts();
  GlyphRenderer r(GlyphOptions{});
  const GlyphPlan& p = r.plan();
  for (const auto& why : p.left_out) WARN("left out: " << why);
  int bg = 0, ev = 0;
  for (const auto& a : p.alphabets) {
    (a.evaluation ? ev : bg) += 1;
    CHECK(int(a.characters.size()) >= GlyphOptions{}.min_characters);
    CHECK(int(a.characters.size()) <= GlyphOptions{}.max_characters);
    CHECK(std::is_sorted(a.characters.begin(), a.characters.end()));
  }
  WARN("glyph table: " << bg << " background alphabets, " << p.classes(false) << " characters; " << ev
                       << " evaluation alphabets, " << p.classes(true) << " characters");
  CHECK(bg >= 20);
  CHECK(ev >= 12);
  CHECK(p.classes(false) + p.classes(true) >= 600);
  CHECK(p.classes(true) >= 20);  // 20-way meta-test tasks
}
