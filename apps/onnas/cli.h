// How the `onnas` tool reads its command line: one flag scheme across subcommands,
// the help that shows every default, usage errors against runtime errors, renamed
// flags kept as hidden aliases, warnings for flags a run ignores, "did you mean", the
// version line and the bash completion, all from the one parser.
//
//   CLI::App app{"onnas: ..."};
//   configure_app(app);                      // formatter, --version, --completion
//   add_search_command(app); ...
//   return run_app(app, argc, argv);         // 0, 1 (runtime error) or 2 (usage error)
//
// In a subcommand:
//   cmd->add_option("--lr", a.lr, "Weight learning rate");
//   add_renamed(*cmd, "--w-lr", "--lr", a.lr);        // parses, hidden, warns once
//   warn_ignored(*cmd, {"--sbs"}, "--mode full runs no step-by-step back-propagation");
//   if (...) usage_fail("give either --meta-cell FILE or --random-init");   // exit 2
#pragma once

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <initializer_list>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>

namespace onnas::app {

inline constexpr int kExitRuntimeError = 1;  // the run could not be done (a file, the data, memory)
inline constexpr int kExitUsageError = 2;    // the command line asks for something the tool cannot run

// A request the tool cannot run as given (conflicting or missing flags): one
// "onnas: error:" line and exit 2, like a parser error.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
template <typename... Args>
[[noreturn]] void usage_fail(fmt::format_string<Args...> format, Args&&... args) {
  throw UsageError(fmt::format(format, std::forward<Args>(args)...));
}

// The top level: a help formatter that shows each option's default after its
// description, defaults captured from the variables, --version, --completion bash.
void configure_app(CLI::App& app);

// Parses and runs the chosen subcommand. Help and --version print on stdout and return
// 0; a parser or usage error prints one "onnas: error:" line on stderr ("did you mean"
// for a mistyped subcommand or option) and returns 2; any other error one line, 1.
int run_app(CLI::App& app, int argc, char** argv);

// `old_name` parses into `variable` like `new_name` (the same checks), hidden from
// --help and completion, and warns on stderr that the flag was renamed. For one
// release after a rename.
template <typename T>
CLI::Option* add_renamed(CLI::App& cmd, const std::string& old_name, const std::string& new_name, T& variable);

// Checks for numbers with a message a reader can act on ("--steps: must be 0 or more,
// not -1"; CLI11's own NonNegativeNumber prints the range up to 1.8e308 in full).
CLI::Validator non_negative();
CLI::Validator positive();

// A boolean as a flag pair, --name and --no-name, its default said in --help.
CLI::Option* add_switch(CLI::App& cmd, const std::string& name, bool& variable, const std::string& description);

// Whether `flag` (or a renamed alias of it) was given on the command line.
bool given(const CLI::App& cmd, std::string_view flag);
// "onnas: warning: --sbs is ignored: <why>" on stderr for each of `flags` given.
void warn_ignored(const CLI::App& cmd, std::span<const std::string_view> flags, std::string_view why);
inline void warn_ignored(const CLI::App& cmd, std::initializer_list<std::string_view> flags, std::string_view why) {
  warn_ignored(cmd, std::span<const std::string_view>(flags.begin(), flags.size()), why);
}
// A warning line on stderr: "onnas: warning: <text>".
void warn(std::string_view text);

// "onnas 0.1.0 (Release build) ..." with the kernels chosen on this CPU.
std::string version_text();
// "0.1.0".
std::string version_number();
// A bash completion script for `app`: subcommands, their visible options, the values of
// options with a fixed set of choices, file names for the rest.
std::string bash_completion(const CLI::App& app);

// ------------------------------------------------------------------------------------

namespace detail {
// The description that marks a hidden alias (given() and the completion read it).
std::string alias_description(const std::string& new_name);
void warn_renamed(const std::string& old_name, const std::string& new_name);
void copy_checks(const CLI::Option& from, CLI::Option& to);
}  // namespace detail

template <typename T>
CLI::Option* add_renamed(CLI::App& cmd, const std::string& old_name, const std::string& new_name, T& variable) {
  CLI::Option* alias = cmd.add_option(old_name, variable, detail::alias_description(new_name))->group("");
  if (const CLI::Option* current = cmd.get_option_no_throw(new_name)) detail::copy_checks(*current, *alias);
  alias->each([old_name, new_name](const std::string&) { detail::warn_renamed(old_name, new_name); });
  return alias;
}

}  // namespace onnas::app
