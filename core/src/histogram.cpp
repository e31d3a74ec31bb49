// Log-linear buckets: exact below 2048, then 1024 sub-buckets per power of two.
#include "naap/core/histogram.hpp"

#include <algorithm>
#include <bit>
#include <cmath>

namespace naap {
namespace {

constexpr std::int64_t k_linear = 2048;  // values below this have their own bucket
constexpr std::int64_t k_sub = 1024;     // sub-buckets per power of two above it

}  // namespace

std::size_t Histogram::index_of(std::int64_t value) {
  if (value < k_linear) return static_cast<std::size_t>(std::max<std::int64_t>(value, 0));
  const int log2 = 63 - std::countl_zero(static_cast<std::uint64_t>(value));
  const int shift = log2 - 10;  // value >> shift is in [1024, 2048)
  const std::int64_t sub = (value >> shift) - k_sub;
  return static_cast<std::size_t>(k_linear + (shift - 1) * k_sub + sub);
}

std::int64_t Histogram::highest_equivalent(std::size_t index) {
  const auto i = static_cast<std::int64_t>(index);
  if (i < k_linear) return i;
  const std::int64_t shift = (i - k_linear) / k_sub + 1;
  const std::int64_t sub = (i - k_linear) % k_sub;
  return ((k_sub + sub + 1) << shift) - 1;
}

Histogram::Histogram(std::int64_t highest)
    : highest_(std::max<std::int64_t>(highest, k_linear)), counts_(index_of(highest_) + 1, 0) {}

void Histogram::record(std::int64_t value, std::uint64_t count) {
  if (count == 0) return;
  if (value < 0) {
    negatives_ += count;
    value = 0;
  }
  if (value > highest_) {
    overflows_ += count;
    value = highest_;
  }
  counts_[index_of(value)] += count;
  if (total_ == 0 || value < min_) min_ = value;
  if (total_ == 0 || value > max_) max_ = value;
  total_ += count;
  sum_ += static_cast<long double>(value) * count;
}

bool Histogram::merge(const Histogram& other) {
  if (other.highest_ != highest_) return false;
  if (other.total_ == 0) return true;
  for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  if (total_ == 0 || other.min_ < min_) min_ = other.min_;
  if (total_ == 0 || other.max_ > max_) max_ = other.max_;
  total_ += other.total_;
  sum_ += other.sum_;
  overflows_ += other.overflows_;
  negatives_ += other.negatives_;
  return true;
}

void Histogram::reset() {
  std::fill(counts_.begin(), counts_.end(), 0);
  total_ = 0;
  min_ = max_ = 0;
  sum_ = 0;
  overflows_ = negatives_ = 0;
}

double Histogram::mean() const {
  return total_ ? static_cast<double>(sum_ / static_cast<long double>(total_)) : 0.0;
}

std::vector<std::pair<std::int64_t, std::uint64_t>> Histogram::buckets() const {
  std::vector<std::pair<std::int64_t, std::uint64_t>> out;
  if (total_ == 0) return out;
  for (std::size_t i = index_of(min_); i <= index_of(max_); ++i)
    if (counts_[i] != 0) out.emplace_back(highest_equivalent(i), counts_[i]);
  return out;
}

std::int64_t Histogram::percentile(double p) const {
  if (total_ == 0) return 0;
  p = std::clamp(p, 0.0, 100.0);
  // Nearest rank: the smallest value with at least ceil(p% of n) values at or below it.
  auto rank = static_cast<std::uint64_t>(std::ceil(p / 100.0 * static_cast<double>(total_)));
  rank = std::clamp<std::uint64_t>(rank, 1, total_);
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= rank) return std::min(highest_equivalent(i), max_);
  }
  return max_;
}

}  // namespace naap
