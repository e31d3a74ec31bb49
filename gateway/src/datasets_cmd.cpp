// `naap-loadtest datasets list|show|verify`: what datasets exist, what is in one, and whether
// its clips, prompt sets, presets and scenarios check out.
#include <cstdio>
#include <cxxopts.hpp>
#include <fstream>
#include <iostream>
#include <sstream>

#include "commands.hpp"
#include "naap/datasets/dataset.hpp"

namespace naap::cli {
namespace {

namespace ds = datasets;

constexpr const char* k_datasets_usage =
    "usage: naap-loadtest datasets list\n"
    "       naap-loadtest datasets show ID|PATH [--json]\n"
    "       naap-loadtest datasets verify [ID|PATH]\n"
    "Datasets are looked up in $NAAP_DATASETS_DIR, <prefix>/share/naap-loadtest/datasets and\n"
    "the source tree's datasets/data; a path to a manifest.json or its folder also works.\n";

std::string join(const std::vector<std::string>& items, const char* separator) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += separator;
    out += item;
  }
  return out;
}

// "12.5" → "12.5", "24.0" → "24": numbers as a person writes them.
std::string num(double value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

// A prompt on one line: control characters escaped, long ones cut.
std::string printable(const std::string& prompt, std::size_t max_chars = 60) {
  std::string out;
  for (unsigned char c : prompt) {
    if (c == '\n') {
      out += "\\n";
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  if (out.size() > max_chars) {
    // Cut on a UTF-8 character boundary.
    std::size_t cut = max_chars;
    while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xc0) == 0x80) --cut;
    out = out.substr(0, cut) + "… (" + std::to_string(prompt.size()) + " bytes)";
  }
  return "\"" + out + "\"";
}

// Parses `datasets <sub> [ID] [options]`; nullopt means exit with `code`.
std::optional<cxxopts::ParseResult> parse_sub(cxxopts::Options& options, int argc, char** argv,
                                              int& code, bool with_id) {
  if (with_id) {
    options.add_options()("dataset", "dataset id or manifest path", cxxopts::value<std::string>());
    options.parse_positional({"dataset"});
    options.positional_help("ID|PATH");
  }
  auto args = parse_args(options, argc, argv, code);
  if (args && !args->unmatched().empty()) {
    std::fprintf(stderr, "%s: unexpected argument '%s'\n\n%s", options.program().c_str(),
                 args->unmatched().front().c_str(), options.help().c_str());
    code = k_exit_usage;
    return std::nullopt;
  }
  return args;
}

int list(int argc, char** argv) {
  cxxopts::Options options("naap-loadtest datasets list", "List the datasets found.");
  int code = k_exit_ok;
  auto args = parse_sub(options, argc, argv, code, false);
  if (!args) return code;
  const auto summaries = ds::list_datasets();
  if (summaries.empty()) {
    std::fputs(
        "no datasets found: set NAAP_DATASETS_DIR or install the data "
        "(share/naap-loadtest/datasets)\n",
        stderr);
    return k_exit_ok;
  }
  std::printf("%-20s %-9s %-52s %5s %9s\n", "ID", "VERSION", "PIPELINES", "CLIPS", "SCENARIOS");
  for (const auto& s : summaries) {
    if (!s.error.empty()) {
      std::printf("%-20s %-9s invalid: %s (%s)\n", s.id.c_str(), "-", s.error.c_str(),
                  s.manifest_path.string().c_str());
      continue;
    }
    std::printf("%-20s %-9s %-52s %5zu %9zu\n", s.id.c_str(), s.version.c_str(),
                join(s.pipelines, ",").c_str(), s.clips, s.scenarios);
  }
  return k_exit_ok;
}

// Loads a dataset named on the command line; prints why not and returns nullopt on failure.
std::optional<ds::Dataset> open_dataset(const std::string& id_or_path, const char* command) {
  auto manifest = ds::find_dataset(id_or_path);
  if (!manifest) {
    std::fprintf(stderr, "naap-loadtest datasets %s: %s\n", command,
                 manifest.error().describe().c_str());
    return std::nullopt;
  }
  auto dataset = ds::load_dataset(*manifest);
  if (!dataset) {
    std::fprintf(stderr, "naap-loadtest datasets %s: invalid manifest: %s\n", command,
                 dataset.error().describe().c_str());
    return std::nullopt;
  }
  return std::move(*dataset);
}

void print_summary(const ds::Dataset& d) {
  std::printf("%s %s\n  %s\n  manifest %s\n", d.id.c_str(), d.version.c_str(),
              d.description.c_str(), d.manifest_path.string().c_str());
  std::printf(
      "\npresets (target fps; thresholds: startup, e2e p95, jitter cv, min fps, "
      "prompt→frame)\n");
  for (const auto& [pipeline, p] : d.presets) {
    const auto& t = p.thresholds;
    std::printf("  %-22s model_id=%s  %s fps;  ≤%s ms, ≤%s ms, ≤%s, ≥%s fps, ≤%s ms;  %zu params\n",
                pipeline.c_str(), p.model_id.c_str(), num(p.target_fps).c_str(),
                num(t.max_startup_ms).c_str(), num(t.max_e2e_p95_ms).c_str(),
                num(t.max_jitter_fps_cv).c_str(), num(t.min_output_fps).c_str(),
                num(t.max_prompt_to_first_frame_ms).c_str(), p.params.size());
  }
  std::printf("\nprompt sets\n");
  for (const auto& [pipeline, set] : d.prompt_sets) {
    std::printf("  %-22s good %zu, random %zu, bad %zu; first good %s\n", pipeline.c_str(),
                set.good.size(), set.random.size(), set.bad.size(),
                set.good.empty() ? "-" : printable(set.good.front(), 40).c_str());
  }
  std::printf("\nclips\n");
  for (const auto& c : d.clips) {
    const std::string what = c.synthetic() ? "synthetic pattern " + c.synthetic_pattern : c.file;
    std::printf("  %-22s %dx%d %s fps %s s  %s  %s\n", c.id.c_str(), c.width, c.height,
                num(c.fps).c_str(), num(c.duration_s).c_str(), c.licence.c_str(), what.c_str());
    if (!c.synthetic()) std::printf("  %-22s sha256 %s\n", "", c.sha256.c_str());
  }
  std::printf("\nscenarios\n");
  for (const auto& s : d.scenarios) {
    const std::string changes =
        s.prompt_interval_s > 0 ? std::string(ds::to_string(s.prompt_type)) + " prompt every " +
                                      num(s.prompt_interval_s) + " s"
                                : "one " + std::string(ds::to_string(s.prompt_type)) + " prompt";
    std::printf("  %-22s %s, clip %s, %s s, %s\n  %-22s %s\n", s.id.c_str(), s.pipeline.c_str(),
                s.clip.c_str(), num(s.duration_s).c_str(), changes.c_str(), "",
                s.description.c_str());
  }
}

int show(int argc, char** argv) {
  cxxopts::Options options("naap-loadtest datasets show",
                           "Show a dataset: presets, prompt sets, clips and scenarios.");
  options.add_options()("json", "print the manifest itself (after validating it)");
  int code = k_exit_ok;
  auto args = parse_sub(options, argc, argv, code, true);
  if (!args) return code;
  if (!args->count("dataset")) {
    std::fputs(k_datasets_usage, stderr);
    return k_exit_usage;
  }
  auto dataset = open_dataset((*args)["dataset"].as<std::string>(), "show");
  if (!dataset) return k_exit_usage;
  if (args->count("json")) {
    std::ifstream in(dataset->manifest_path, std::ios::binary);
    std::cout << in.rdbuf();
    return in ? k_exit_ok : k_exit_failed;
  }
  print_summary(*dataset);
  return k_exit_ok;
}

// Prints one dataset's checks; returns whether all passed.
bool print_verify(const ds::Dataset& dataset) {
  const auto report = ds::verify(dataset);
  std::printf("%s %s (%s)\n", dataset.id.c_str(), dataset.version.c_str(),
              dataset.manifest_path.string().c_str());
  std::printf("  ok    manifest valid (schema %d)\n", dataset.schema_version);
  for (const auto& check : report.checks) {
    std::printf("  %-5s %s: %s\n", check.ok ? "ok" : "FAIL", check.name.c_str(),
                check.detail.c_str());
  }
  std::printf("  %zu checks, %zu failed\n", report.checks.size() + 1, report.failures());
  return report.ok();
}

int verify(int argc, char** argv) {
  cxxopts::Options options("naap-loadtest datasets verify",
                           "Verify clip SHA-256s, prompt sets, presets and scenarios of one "
                           "dataset, or of every dataset found.");
  int code = k_exit_ok;
  auto args = parse_sub(options, argc, argv, code, true);
  if (!args) return code;
  if (args->count("dataset")) {
    const std::string id = (*args)["dataset"].as<std::string>();
    auto manifest = ds::find_dataset(id);
    if (!manifest) {
      std::fprintf(stderr, "naap-loadtest datasets verify: %s\n",
                   manifest.error().describe().c_str());
      return k_exit_usage;
    }
    auto dataset = ds::load_dataset(*manifest);
    if (!dataset) {
      // The dataset exists but its manifest is wrong: a failed check, not a usage error.
      std::printf("%s (%s)\n  FAIL  manifest valid: %s\n", id.c_str(), manifest->string().c_str(),
                  dataset.error().describe().c_str());
      return k_exit_failed;
    }
    return print_verify(*dataset) ? k_exit_ok : k_exit_failed;
  }
  const auto summaries = ds::list_datasets();
  if (summaries.empty()) {
    std::fputs("naap-loadtest datasets verify: no datasets found (set NAAP_DATASETS_DIR)\n",
               stderr);
    return k_exit_usage;
  }
  bool all_ok = true;
  for (const auto& s : summaries) {
    auto dataset = ds::load_dataset(s.manifest_path);
    if (!dataset) {
      std::printf("%s (%s)\n  FAIL  manifest valid: %s\n", s.id.c_str(),
                  s.manifest_path.string().c_str(), dataset.error().describe().c_str());
      all_ok = false;
      continue;
    }
    all_ok = print_verify(*dataset) && all_ok;
  }
  return all_ok ? k_exit_ok : k_exit_failed;
}

}  // namespace

int run_datasets(int argc, char** argv) {
  if (argc < 2) {
    std::fputs(k_datasets_usage, stderr);
    return k_exit_usage;
  }
  const std::string_view sub = argv[1];
  if (sub == "-h" || sub == "--help" || sub == "help") {
    std::fputs(k_datasets_usage, stdout);
    return k_exit_ok;
  }
  if (sub == "list") return list(argc - 1, argv + 1);
  if (sub == "show") return show(argc - 1, argv + 1);
  if (sub == "verify") return verify(argc - 1, argv + 1);
  std::fprintf(stderr, "naap-loadtest datasets: unknown subcommand '%s'\n%s", argv[1],
               k_datasets_usage);
  return k_exit_usage;
}

}  // namespace naap::cli
