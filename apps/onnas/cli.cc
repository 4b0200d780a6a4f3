#include "apps/onnas/cli.h"

#include <algorithm>
#include <cstdio>
#include <new>
#include <vector>

#include "runtime/cpu.h"
#include "runtime/threading.h"

#ifndef ONNAS_VERSION
#define ONNAS_VERSION "unknown"
#endif
#ifndef ONNAS_BUILD_TYPE
#define ONNAS_BUILD_TYPE "unknown"
#endif

namespace onnas::app {

namespace detail {

std::string alias_description(const std::string& new_name) { return "renamed " + new_name; }

void warn_renamed(const std::string& old_name, const std::string& new_name) {
  warn(fmt::format("{} is now {}; the old name will be removed in a later release", old_name, new_name));
}

void copy_checks(const CLI::Option& from, CLI::Option& to) {
  // Option::get_validator is not const; it only looks.
  auto& source = const_cast<CLI::Option&>(from);
  for (int i = 0;; ++i) {
    try {
      to.check(*source.get_validator(i));
    } catch (const CLI::OptionNotFound&) {
      return;
    }
  }
}

}  // namespace detail

namespace {

// --help: each default after its option's description, the option column without
// CLI11's "=default" and "{false}" decorations.
class Help : public CLI::Formatter {
 public:
  std::string make_option_name(const CLI::Option* opt, bool positional) const override {
    std::string name = CLI::Formatter::make_option_name(opt, positional);
    for (size_t open; (open = name.find('{')) != std::string::npos;) {
      const size_t close = name.find('}', open);
      if (close == std::string::npos) break;
      name.erase(open, close - open + 1);
    }
    return name;
  }
  std::string make_option_opts(const CLI::Option* opt) const override {
    if (opt->get_type_size() == 0) return "";
    std::string out;
    if (!opt->get_type_name().empty()) out += " " + opt->get_type_name();
    if (opt->get_expected_max() == CLI::detail::expected_max_vector_size) out += " ...";
    if (opt->get_required()) out += " REQUIRED";
    return out;
  }
  std::string make_option_desc(const CLI::Option* opt) const override {
    std::string desc = opt->get_description();
    if (desc.find("(default") != std::string::npos) return desc;
    if (opt->get_type_size() == 0) return desc;  // flags (add_switch says its default)
    const std::string d = opt->get_default_str();
    if (!d.empty() && !opt->get_required()) desc += " (default " + d + ")";
    return desc;
  }
};

// Levenshtein distance, for "did you mean".
size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

// The candidate closest to `word` if it is close enough to be a typo, else "".
std::string closest(std::string_view word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_distance = std::max<size_t>(2, word.size() / 3) + 1;
  for (const std::string& c : candidates) {
    const size_t d = c.starts_with(word) && word.size() >= 3 ? 1 : edit_distance(word, c);
    if (d < best_distance) best_distance = d, best = c;
  }
  return best;
}

CLI::App* find_subcommand(CLI::App& app, const std::string& name) {
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; }))
    if (sub->check_name(name)) return sub;
  return nullptr;
}

std::vector<std::string> subcommand_names(const CLI::App& app) {
  std::vector<std::string> names;
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) names.push_back(sub->get_name());
  return names;
}

// Visible long option names of a subcommand (hidden aliases are not suggested).
std::vector<std::string> option_names(const CLI::App& cmd) {
  std::vector<std::string> names;
  for (const CLI::Option* opt : cmd.get_options()) {
    if (opt->get_group().empty()) continue;
    for (const std::string& n : opt->get_lnames()) names.push_back("--" + n);
    for (const std::string& n : opt->get_fnames())
      if (n.starts_with("--")) names.push_back(n);
  }
  return names;
}

// A boolean that once took a value ("--flip false") is now a --x / --no-x flag pair;
// the old form is rewritten to "--flip=false" (which the flag reads) with a warning.
void rewrite_old_boolean_values(std::vector<std::string>& args) {
  static constexpr std::string_view kOldBooleanOptions[] = {"--flip", "--cell-fold"};
  static constexpr std::string_view kWords[] = {"true", "false", "on", "off", "yes", "no", "1", "0"};
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    if (std::find(std::begin(kOldBooleanOptions), std::end(kOldBooleanOptions), args[i]) == std::end(kOldBooleanOptions))
      continue;
    if (std::find(std::begin(kWords), std::end(kWords), args[i + 1]) == std::end(kWords)) continue;
    const bool on = args[i + 1] == "true" || args[i + 1] == "on" || args[i + 1] == "yes" || args[i + 1] == "1";
    warn(fmt::format("'{} {}' is now '{}'; the old form will be removed in a later release", args[i], args[i + 1],
                     on ? args[i] : "--no-" + args[i].substr(2)));
    args[i] += "=" + args[i + 1];
    args.erase(args.begin() + std::ptrdiff_t(i) + 1);
  }
}

void print_error(const std::string& text) { std::fprintf(stderr, "onnas: error: %s\n", text.c_str()); }

// One line for a parser error, naming the subcommand, with "did you mean" for a
// mistyped option.
std::string describe_parse_error(CLI::App& app, const std::vector<std::string>& args, const CLI::ParseError& e) {
  CLI::App* cmd = !args.empty() ? find_subcommand(app, args[0]) : nullptr;
  const std::string where = cmd ? cmd->get_name() + ": " : "";
  const std::string help = cmd ? fmt::format("onnas {} --help", cmd->get_name()) : "onnas --help";
  if (dynamic_cast<const CLI::ExtrasError*>(&e)) {
    const CLI::App& scope = cmd ? *cmd : app;
    for (size_t i = cmd ? 1 : 0; i < args.size(); ++i) {
      const std::string& a = args[i];
      if (a == "--") break;
      if (!a.starts_with("-") || a.size() < 2) continue;
      std::string name = a.substr(0, a.find('='));
      if (!name.starts_with("--")) name = name.substr(0, 2);  // -b32
      if (scope.get_option_no_throw(name) || app.get_option_no_throw(name)) continue;
      const std::string guess = closest(name, option_names(scope));
      return fmt::format("{}unknown option '{}'{} ({})", where, name,
                         guess.empty() ? "" : fmt::format("; did you mean '{}'?", guess), help);
    }
  }
  std::string what = e.what();
  std::replace(what.begin(), what.end(), '\n', ' ');
  return fmt::format("{}{} ({})", where, what, help);
}

std::string join(const std::vector<std::string>& items) {
  std::string s;
  for (const std::string& i : items) s += (s.empty() ? "" : ", ") + i;
  return s;
}

}  // namespace

namespace {

CLI::Validator number_check(bool zero_allowed) {
  return CLI::Validator(
      [zero_allowed](std::string& text) -> std::string {
        double v = 0;
        try {
          size_t used = 0;
          v = std::stod(text, &used);
          if (used != text.size()) return fmt::format("'{}' is not a number", text);
        } catch (const std::exception&) {
          return fmt::format("'{}' is not a number", text);
        }
        if (zero_allowed ? !(v >= 0) : !(v > 0))
          return fmt::format("must be {}, not {}", zero_allowed ? "0 or more" : "more than 0", text);
        return "";
      },
      zero_allowed ? "NONNEGATIVE" : "POSITIVE");
}

}  // namespace

CLI::Validator non_negative() { return number_check(true); }

CLI::Option* add_switch(CLI::App& cmd, const std::string& name, bool& variable, const std::string& description) {
  return cmd.add_flag(fmt::format("{},!--no-{}", name, name.substr(2)), variable,
                      fmt::format("{} (default: {})", description, variable ? "on" : "off"));
}
CLI::Validator positive() { return number_check(false); }

void warn(std::string_view text) { std::fprintf(stderr, "onnas: warning: %.*s\n", int(text.size()), text.data()); }

bool given(const CLI::App& cmd, std::string_view flag) {
  const std::string name(flag);
  if (const CLI::Option* o = cmd.get_option_no_throw(name); o && o->count() > 0) return true;
  const std::string alias = detail::alias_description(name);
  for (const CLI::Option* o : cmd.get_options())
    if (o->get_description() == alias && o->count() > 0) return true;
  return false;
}

void warn_ignored(const CLI::App& cmd, std::span<const std::string_view> flags, std::string_view why) {
  for (std::string_view f : flags)
    if (given(cmd, f)) warn(fmt::format("{} is ignored: {}", f, why));
}

void configure_app(CLI::App& app) {
  app.formatter(std::make_shared<Help>());
  app.option_defaults()->always_capture_default();
  app.require_subcommand(1);
  app.set_version_flag("--version", version_text, "Print the version, the build type and the kernels of this CPU");
  app.add_option_function<std::string>(
         "--completion",
         [&app](const std::string&) {
           std::fputs(bash_completion(app).c_str(), stdout);
           throw CLI::Success();
         },
         "Print a completion script for the shell: bash (source it, or install it as "
         "share/bash-completion/completions/onnas)")
      ->check(CLI::IsMember({"bash"}));
}

int run_app(CLI::App& app, int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  rewrite_old_boolean_values(args);
  const std::vector<std::string> names = subcommand_names(app);
  if (args.empty()) {
    print_error(fmt::format("no subcommand given; one of: {} (onnas --help)", join(names)));
    return kExitUsageError;
  }
  if (!args[0].starts_with("-") && !find_subcommand(app, args[0])) {
    const std::string guess = closest(args[0], names);
    print_error(fmt::format("unknown subcommand '{}'{}; the subcommands are {} (onnas --help)", args[0],
                            guess.empty() ? "" : fmt::format(" (did you mean '{}'?)", guess), join(names)));
    return kExitUsageError;
  }
  try {
    std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 takes them last first
    app.parse(reversed);
  } catch (const CLI::Success& e) {  // --help, --version, --completion
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    print_error(describe_parse_error(app, args, e));
    return kExitUsageError;
  } catch (const UsageError& e) {
    print_error(e.what());
    return kExitUsageError;
  } catch (const std::bad_alloc&) {
    print_error("out of memory");
    return kExitRuntimeError;
  } catch (const std::exception& e) {
    print_error(e.what());
    return kExitRuntimeError;
  }
  return 0;
}

std::string version_number() { return ONNAS_VERSION; }

std::string version_text() {
#if defined(__x86_64__)
  const char* arch = "x86-64";
#elif defined(__aarch64__)
  const char* arch = "aarch64";
#else
  const char* arch = "portable";
#endif
  std::vector<std::string> available;
  for (Isa isa : kAllIsas)
    if (isa_available(isa)) available.push_back(isa_name(isa));
  return fmt::format(
      "onnas {} ({} build, {}, compiler {})\n"
      "kernels: {} on this CPU (available here: {}; ONNAS_ISA=<name> forces one)\n"
      "threads: {} by default (oneTBB; --threads N)",
      ONNAS_VERSION, ONNAS_BUILD_TYPE, arch, __VERSION__, isa_name(active_isa()), join(available), num_threads());
}

std::string bash_completion(const CLI::App& app) {
  // Per subcommand: its options, then a case over the option before the cursor for the
  // ones that take a value (choices from the checks, file names for text).
  std::string subs, cases;
  for (const CLI::App* cmd : app.get_subcommands([](const CLI::App*) { return true; })) {
    subs += " " + cmd->get_name();
    std::string words, value_cases, file_options, other_options;
    bool positional_file = false;
    for (const CLI::Option* opt : cmd->get_options()) {
      if (opt->get_group().empty()) continue;  // hidden aliases
      if (opt->get_lnames().empty() && opt->get_snames().empty() && opt->get_fnames().empty()) {
        positional_file = true;  // inspect FILE
        continue;
      }
      std::vector<std::string> names;
      for (const std::string& n : opt->get_snames()) names.push_back("-" + n);
      for (const std::string& n : opt->get_lnames()) names.push_back("--" + n);
      for (const std::string& n : opt->get_fnames())
        if (n.starts_with("--") && std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
      for (const std::string& n : names) words += " " + n;
      if (opt->get_type_size() == 0) continue;  // a flag
      std::string pattern;
      for (const std::string& n : names) pattern += (pattern.empty() ? "" : "|") + n;
      // A check's description lists the choices: "TEXT:{full,ops,ops+pairs}".
      const std::string type = opt->get_type_name();
      const size_t open = type.find('{'), close = type.rfind('}');
      if (open != std::string::npos && close != std::string::npos && close > open) {
        std::string choices = type.substr(open + 1, close - open - 1);
        std::replace(choices.begin(), choices.end(), ',', ' ');
        value_cases += fmt::format("        {}) COMPREPLY=($(compgen -W '{}' -- \"$cur\")); return ;;\n", pattern, choices);
      } else if (type.starts_with("TEXT")) {
        file_options += (file_options.empty() ? "" : "|") + pattern;
      } else {
        other_options += (other_options.empty() ? "" : "|") + pattern;
      }
    }
    if (!file_options.empty())
      value_cases += fmt::format("        {}) COMPREPLY=($(compgen -f -- \"$cur\")); compopt -o filenames; return ;;\n",
                                 file_options);
    if (!other_options.empty()) value_cases += fmt::format("        {}) return ;;\n", other_options);
    cases += fmt::format("    {})\n      case $prev in\n{}      esac\n", cmd->get_name(), value_cases);
    if (positional_file)
      cases += "      if [[ $cur != -* ]]; then COMPREPLY=($(compgen -f -- \"$cur\")); compopt -o filenames; return; fi\n";
    cases += fmt::format("      COMPREPLY=($(compgen -W '{}' -- \"$cur\")) ;;\n", words.substr(1));
  }
  return fmt::format(R"(# bash completion for onnas {}, generated from its parser by `onnas --completion bash`.
# Source it, or install it as share/bash-completion/completions/onnas (cmake --install does).
_onnas() {{
  local cur=${{COMP_WORDS[COMP_CWORD]}} prev=${{COMP_WORDS[COMP_CWORD-1]}}
  if (( COMP_CWORD == 1 )); then
    COMPREPLY=($(compgen -W '{} --help --version --completion' -- "$cur"))
    return
  fi
  case ${{COMP_WORDS[1]}} in
{}  esac
}}
complete -F _onnas onnas
)",
                     ONNAS_VERSION, subs.substr(1), cases);
}

}  // namespace onnas::app
