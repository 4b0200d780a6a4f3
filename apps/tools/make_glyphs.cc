// make_glyphs: renders the glyph benchmark (data/glyphs.h), an Omniglot-like few-shot
// set made from Debian's fonts, into Omniglot's layout.
//
//   make_glyphs                         # /var/cache/onnas/glyphs, seed 1, all alphabets
//   make_glyphs --out /tmp/g --alphabets Armenian,Tifinagh --instances 5
//   make_glyphs --list                  # the alphabets and characters it would make
//
// scripts/setup.sh --glyphs builds and runs it once (skipped when glyphs.json is there).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "data/glyphs.h"
#include "runtime/error.h"
#include "runtime/threading.h"

int main(int argc, char** argv) try {
  using namespace onnas;
  data::GlyphOptions o;
  std::string out = data::kGlyphsDir, alphabets;
  bool list = false, force = false;
  int threads = 0;
  CLI::App app{"Render the glyph benchmark: an Omniglot-like few-shot set from fonts (rendered glyphs, not handwriting)"};
  app.add_option("-o,--out", out, "Output folder (must not exist unless --force)");
  app.add_option("--seed", o.seed, "Random seed of the distortions");
  app.add_option("--font-dir", o.font_dir, "Font folder (Debian's fonts-noto-core)");
  app.add_option("--side", o.side, "Image side in pixels")->check(CLI::Range(8, 256));
  app.add_option("--instances", o.instances, "Instances per character")->check(CLI::Range(1, 1000));
  app.add_option("--max-characters", o.max_characters, "At most this many characters per alphabet")->check(CLI::Range(1, 10000));
  app.add_option("--min-characters", o.min_characters, "Leave out alphabets with fewer usable characters")->check(CLI::Range(1, 10000));
  app.add_option("--alphabets", alphabets, "Only these alphabets, comma-separated (default: the whole table)");
  app.add_flag("--list", list, "Print the alphabets and characters, write nothing");
  app.add_flag("--force", force, "Replace an existing glyph benchmark (a folder with glyphs.json) at --out");
  app.add_option("--threads", threads, "Threads (default: all cores)")->check(CLI::Range(1, 1024));
  CLI11_PARSE(app, argc, argv);
  if (threads > 0) set_num_threads(threads);
  for (size_t at = 0; at < alphabets.size();) {
    size_t comma = alphabets.find(',', at);
    if (comma == std::string::npos) comma = alphabets.size();
    if (comma > at) o.alphabets.push_back(alphabets.substr(at, comma - at));
    at = comma + 1;
  }
  if (list) {
    data::GlyphRenderer r(o);
    for (const auto& a : r.plan().alphabets) {
      std::printf("%-32s %-10s %3zu characters, %2zu fonts:", a.name.c_str(), a.evaluation ? "evaluation" : "background",
                  a.characters.size(), a.fonts.size());
      for (char32_t cp : a.characters) std::printf(" %04X", unsigned(cp));
      std::printf("\n");
    }
    for (const auto& why : r.plan().left_out) std::printf("left out: %s\n", why.c_str());
    std::printf("%lld background classes, %lld evaluation classes\n", (long long)r.plan().classes(false),
                (long long)r.plan().classes(true));
    return 0;
  }
  if (force && std::filesystem::exists(out)) {
    // Only a folder this tool made: --force must not be a way to delete anything else.
    if (data::read_glyph_manifest(out).empty())
      fail("--force: '{}' holds no glyphs.json, so it is not a glyph benchmark; not removing it", out);
    std::filesystem::remove_all(out);
  }
  data::GlyphSummary s = data::write_glyph_benchmark(o, out);
  std::printf("glyphs: %s\n  background: %d alphabets, %lld characters; evaluation: %d alphabets, %lld characters\n"
              "  %lld images of %dx%d (%d per character), %.1f MiB of PNG, made in %.1f s; images hash %016llx (seed %llu)\n",
              out.c_str(), s.alphabets_background, (long long)s.classes_background, s.alphabets_evaluation,
              (long long)s.classes_evaluation, (long long)s.images, o.side, o.side, o.instances,
              double(s.png_bytes) / 1048576.0, s.seconds, (unsigned long long)s.images_hash, (unsigned long long)o.seed);
  for (const auto& why : s.left_out) std::printf("  left out: %s\n", why.c_str());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "make_glyphs: error: %s\n", e.what());
  return 1;
}
