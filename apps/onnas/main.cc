// The `onnas` command-line tool: search, train, eval, plan, inspect, meta-train, adapt,
// eval-fewshot. Errors from the
// library arrive as onnas::Error and are printed as one line on stderr.
#include <cstdio>
#include <new>
#include <stdexcept>

#include "apps/onnas/common.h"
#include "runtime/heap.h"

int main(int argc, char** argv) {
  onnas::return_large_blocks_to_system();
  CLI::App app{"onnas: on-device neural architecture search with planned memory"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "onnas 0.1");
  onnas::app::add_search_command(app);
  onnas::app::add_train_command(app);
  onnas::app::add_plan_command(app);
  onnas::app::add_inspect_command(app);
  onnas::app::add_meta_commands(app);
  try {
    onnas::app::install_test_kill_points();
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "onnas: error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "onnas: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
