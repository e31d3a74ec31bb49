// Deterministic prompt selection: the same dataset, scenario and seed give the same prompts on
// every machine, so two runs can be compared prompt for prompt.
#include "naap/datasets/dataset.hpp"

namespace naap::datasets {
namespace {

// (x * n) >> 64 without a 128-bit type, exact for n < 2^32: a uniform index in [0, n).
std::size_t scale(std::uint64_t x, std::uint64_t n) {
  const std::uint64_t high = (x >> 32) * n;
  const std::uint64_t low = ((x & 0xffffffffULL) * n) >> 32;
  return static_cast<std::size_t>((high + low) >> 32);
}

}  // namespace

PromptPicker::PromptPicker(std::vector<std::string> prompts, PromptType type, std::uint64_t seed)
    : prompts_(std::move(prompts)), type_(type), state_(seed) {
  if (prompts_.empty()) prompts_.emplace_back();
}

Result<PromptPicker> PromptPicker::for_scenario(const Dataset& dataset, const Scenario& scenario,
                                                std::uint64_t seed) {
  auto set = dataset.prompts(scenario.pipeline);
  if (!set) return fail(set.error());
  const auto& prompts = (*set)->of(scenario.prompt_type);
  if (prompts.empty()) {
    return fail(Error(ErrorCategory::config, "scenario " + scenario.id + ": the " +
                                                 std::string(to_string(scenario.prompt_type)) +
                                                 " prompt set of " + scenario.pipeline +
                                                 " is empty")
                    .with("file", dataset.manifest_path.string()));
  }
  return PromptPicker(prompts, scenario.prompt_type, seed);
}

// splitmix64 (Steele, Lea, Flood 2014): a fixed, portable sequence for a given seed.
std::uint64_t PromptPicker::draw() {
  state_ += 0x9e3779b97f4a7c15ULL;
  std::uint64_t z = state_;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

const std::string& PromptPicker::next() {
  std::size_t pick = 0;
  if (type_ == PromptType::random) {
    pick = scale(draw(), prompts_.size());
    while (prompts_.size() > 1 && pick == last_) pick = scale(draw(), prompts_.size());
  } else {
    pick = index_;
    index_ = (index_ + 1) % prompts_.size();
  }
  last_ = pick;
  return prompts_[pick];
}

}  // namespace naap::datasets
