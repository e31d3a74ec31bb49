// Latency histogram in the HdrHistogram style: integer values (microseconds by convention),
// log-linear buckets with 3 significant figures, exact min/max/mean, mergeable. Percentiles are
// read from the merged counts, never averaged (METRICS.md).
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace naap {

class Histogram {
 public:
  // Values above `highest` are recorded as `highest` and counted in overflows().
  explicit Histogram(std::int64_t highest = 3'600'000'000);  // default: one hour in µs

  void record(std::int64_t value, std::uint64_t count = 1);
  // Adds another histogram's counts. Both must have the same `highest`; returns false if not.
  bool merge(const Histogram& other);
  void reset();

  std::uint64_t count() const { return total_; }
  std::int64_t min() const { return total_ ? min_ : 0; }
  std::int64_t max() const { return total_ ? max_ : 0; }
  double mean() const;
  // The smallest recorded value v such that `percentile` % of values are <= v, reported as the
  // highest value equivalent to it at 3 significant figures (never below the true value).
  // percentile in [0, 100]; 0 with no values.
  std::int64_t percentile(double percentile) const;
  std::uint64_t overflows() const { return overflows_; }  // values clamped to `highest`
  std::uint64_t negatives() const { return negatives_; }  // values clamped to 0
  std::int64_t highest() const { return highest_; }

  // The non-empty buckets in value order, each as (its highest equivalent value, count): the
  // wire form of a histogram. Recording every pair into an empty Histogram gives the same
  // counts, so consumers (a report, ClickHouse's quantileExactWeighted) can merge sessions and
  // read exact merged percentiles; the exact min, max and mean travel beside it.
  std::vector<std::pair<std::int64_t, std::uint64_t>> buckets() const;

  // Bucket arithmetic, exposed for tests: values below 2048 are exact; above, a bucket spans
  // at most 1/1024 of its value.
  static std::size_t index_of(std::int64_t value);
  static std::int64_t highest_equivalent(std::size_t index);

 private:
  std::int64_t highest_;               // largest value kept exactly (clamp above)
  std::vector<std::uint64_t> counts_;  // per bucket
  std::uint64_t total_ = 0;            // values recorded
  std::int64_t min_ = 0;               // exact minimum
  std::int64_t max_ = 0;               // exact maximum
  long double sum_ = 0;                // for the exact mean
  std::uint64_t overflows_ = 0;        // clamped to highest_
  std::uint64_t negatives_ = 0;        // clamped to 0
};

}  // namespace naap
