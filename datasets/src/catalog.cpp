// Finding datasets: by path, or by id in $NAAP_DATASETS_DIR, the installed share folder and the
// source tree, in that order.
#include <algorithm>
#include <cstdlib>
#include <set>

#include "naap/datasets/dataset.hpp"

namespace naap::datasets {
namespace {

namespace fs = std::filesystem;

constexpr const char* k_manifest_name = "manifest.json";

bool is_dir(const fs::path& path) {
  std::error_code ec;
  return fs::is_directory(path, ec);
}

bool is_file(const fs::path& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec);
}

// Every folder that might hold datasets, existing or not, in lookup order.
std::vector<fs::path> candidate_dirs() {
  std::vector<fs::path> dirs;
  if (const char* env = std::getenv("NAAP_DATASETS_DIR"); env != nullptr && *env != '\0') {
    dirs.emplace_back(env);
  }
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec && !exe.empty()) {
    dirs.push_back(
        (exe.parent_path() / ".." / "share" / "naap-loadtest" / "datasets").lexically_normal());
  }
#ifdef NAAP_SOURCE_DATASETS_DIR
  dirs.emplace_back(NAAP_SOURCE_DATASETS_DIR);
#endif
  return dirs;
}

// An existing path, or something only a path would look like.
bool looks_like_path(std::string_view text) {
  if (text.find('/') != std::string_view::npos || text.ends_with(".json") || text == "." ||
      text == "..") {
    return true;
  }
  std::error_code ec;
  return fs::exists(fs::path(text), ec);
}

std::string describe_dirs(const std::vector<fs::path>& dirs) {
  std::string out;
  for (const auto& dir : dirs) {
    if (!out.empty()) out += ", ";
    out += dir.string();
    if (!is_dir(dir)) out += " (missing)";
  }
  return out.empty() ? "no folders configured" : out;
}

}  // namespace

std::vector<fs::path> dataset_dirs() {
  std::vector<fs::path> out;
  std::set<fs::path> seen;
  for (const auto& dir : candidate_dirs()) {
    if (!is_dir(dir)) continue;
    std::error_code ec;
    fs::path canonical = fs::weakly_canonical(dir, ec);
    if (ec) canonical = dir;
    if (seen.insert(canonical).second) out.push_back(canonical);
  }
  return out;
}

Result<fs::path> find_dataset(std::string_view id_or_path) {
  if (id_or_path.empty()) return fail(ErrorCategory::config, "empty dataset id");
  if (looks_like_path(id_or_path)) {
    fs::path path(id_or_path);
    if (is_dir(path)) path /= k_manifest_name;
    if (!is_file(path)) {
      return fail(Error(ErrorCategory::config, "no dataset manifest at this path")
                      .with("file", path.string()));
    }
    std::error_code ec;
    fs::path absolute = fs::absolute(path, ec);
    return (ec ? path : absolute).lexically_normal();
  }
  for (const auto& dir : dataset_dirs()) {
    const fs::path manifest = dir / std::string(id_or_path) / k_manifest_name;
    if (is_file(manifest)) return manifest;
  }
  return fail(Error(ErrorCategory::config,
                    "no dataset '" + std::string(id_or_path) + "' (looked in " +
                        describe_dirs(candidate_dirs()) +
                        "; set NAAP_DATASETS_DIR or pass the path of a manifest.json)"));
}

std::vector<DatasetSummary> list_datasets() {
  std::vector<DatasetSummary> out;
  std::set<std::string> seen;  // folder names: an earlier folder hides a later one's same id
  for (const auto& dir : dataset_dirs()) {
    std::vector<fs::path> entries;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      if (is_file(entry.path() / k_manifest_name)) entries.push_back(entry.path());
    }
    std::sort(entries.begin(), entries.end());
    for (const auto& folder : entries) {
      const std::string name = folder.filename().string();
      if (!seen.insert(name).second) continue;
      DatasetSummary summary;
      summary.id = name;
      summary.manifest_path = folder / k_manifest_name;
      auto dataset = load_dataset(summary.manifest_path);
      if (!dataset) {
        summary.error = dataset.error().message;
      } else {
        summary.id = dataset->id;
        summary.version = dataset->version;
        summary.description = dataset->description;
        summary.pipelines = dataset->pipelines();
        summary.clips = dataset->clips.size();
        summary.scenarios = dataset->scenarios.size();
      }
      out.push_back(std::move(summary));
    }
  }
  std::sort(out.begin(), out.end(),
            [](const DatasetSummary& a, const DatasetSummary& b) { return a.id < b.id; });
  return out;
}

}  // namespace naap::datasets
