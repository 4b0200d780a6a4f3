// The `onnas` command-line tool: search, train, eval, plan, inspect, meta-train, adapt,
// eval-fewshot, export, report. Parsing, usage errors (exit 2) and runtime errors (exit 1, one
// line on stderr) are cli.h's.
#include "apps/onnas/cli.h"
#include "apps/onnas/common.h"
#include "runtime/heap.h"

int main(int argc, char** argv) {
  onnas::return_large_blocks_to_system();
  CLI::App app{"onnas: on-device neural architecture search with planned memory", "onnas"};
  onnas::app::configure_app(app);
  onnas::app::add_search_command(app);
  onnas::app::add_train_command(app);
  onnas::app::add_plan_command(app);
  onnas::app::add_inspect_command(app);
  onnas::app::add_meta_commands(app);
  onnas::app::add_export_command(app);
  onnas::app::add_report_command(app);
  try {
    onnas::app::install_test_kill_points();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "onnas: error: %s\n", e.what());
    return onnas::app::kExitUsageError;
  }
  return onnas::app::run_app(app, argc, argv);
}
