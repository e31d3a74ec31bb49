// The latency histogram: 3 significant figures, never under-reporting, exact extremes, merging
// equal to recording everything in one.
#include "naap/core/histogram.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

namespace naap {
namespace {

std::int64_t exact_percentile(std::vector<std::int64_t> values, double p) {
  std::sort(values.begin(), values.end());
  auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(values.size())));
  rank = std::clamp<std::size_t>(rank, 1, values.size());
  return values[rank - 1];
}

TEST(Histogram, percentiles_are_within_a_tenth_of_a_percent_above_the_exact_value) {
  std::mt19937_64 rng(42);
  std::lognormal_distribution<double> latency(std::log(40'000.0), 0.8);  // ~40 ms, long tail
  Histogram h;
  std::vector<std::int64_t> values;
  for (int i = 0; i < 100'000; ++i) {
    const auto v = static_cast<std::int64_t>(latency(rng));
    values.push_back(v);
    h.record(v);
  }
  for (double p : {0.0, 1.0, 25.0, 50.0, 90.0, 99.0, 99.9, 99.99, 100.0}) {
    const std::int64_t exact = exact_percentile(values, p);
    const std::int64_t got = h.percentile(p);
    EXPECT_GE(got, exact) << "p" << p;
    EXPECT_LE(static_cast<double>(got), static_cast<double>(exact) * (1.0 + 1.0 / 1024) + 1)
        << "p" << p;
  }
  EXPECT_EQ(h.min(), *std::min_element(values.begin(), values.end()));
  EXPECT_EQ(h.max(), *std::max_element(values.begin(), values.end()));
  EXPECT_EQ(h.percentile(100), h.max());
  EXPECT_EQ(h.count(), values.size());
}

TEST(Histogram, small_values_are_exact_and_buckets_cover_every_value_once) {
  Histogram h;
  for (std::int64_t v = 0; v < 2048; ++v)
    EXPECT_EQ(Histogram::highest_equivalent(Histogram::index_of(v)), v);
  // Every value maps into a bucket whose highest equivalent is >= it and within 1/1024.
  std::mt19937_64 rng(7);
  for (int i = 0; i < 100'000; ++i) {
    const auto v = static_cast<std::int64_t>(rng() % 3'600'000'000ULL);
    const auto top = Histogram::highest_equivalent(Histogram::index_of(v));
    ASSERT_GE(top, v);
    ASSERT_LE(top - v, v / 1024 + 1) << v;
    ASSERT_EQ(Histogram::index_of(top), Histogram::index_of(v));
  }
  h.record(5, 3);
  EXPECT_EQ(h.percentile(50), 5);
  EXPECT_DOUBLE_EQ(h.mean(), 5.0);
}

TEST(Histogram, merging_equals_recording_everything_in_one) {
  std::mt19937_64 rng(3);
  Histogram a, b, all;
  for (int i = 0; i < 50'000; ++i) {
    const auto v = static_cast<std::int64_t>(rng() % 2'000'000);
    (i % 3 ? a : b).record(v);
    all.record(v);
  }
  ASSERT_TRUE(a.merge(b));
  for (double p : {50.0, 95.0, 99.0, 99.9}) EXPECT_EQ(a.percentile(p), all.percentile(p));
  EXPECT_EQ(a.count(), all.count());
  EXPECT_EQ(a.min(), all.min());
  EXPECT_EQ(a.max(), all.max());
  EXPECT_NEAR(a.mean(), all.mean(), 1e-6);
  Histogram other_range(1'000'000);
  EXPECT_FALSE(a.merge(other_range));
}

TEST(Histogram, exported_buckets_merge_to_the_percentiles_of_everything_recorded_in_one) {
  // Two sessions' histograms travel as buckets (the run record); a consumer rebuilds and
  // merges them, and reads the same percentiles as one histogram of every frame.
  std::mt19937_64 rng(11);
  std::lognormal_distribution<double> fast(std::log(60'000.0), 0.3), slow(std::log(900'000.0), 0.5);
  Histogram a, b, all;
  for (int i = 0; i < 20'000; ++i) {
    const auto v = static_cast<std::int64_t>(i % 4 ? fast(rng) : slow(rng));
    (i % 2 ? a : b).record(v);
    all.record(v);
  }
  Histogram merged;
  std::uint64_t exported = 0;
  for (const Histogram* h : {&a, &b}) {
    const auto buckets = h->buckets();
    ASSERT_FALSE(buckets.empty());
    for (std::size_t i = 1; i < buckets.size(); ++i)
      EXPECT_LT(buckets[i - 1].first, buckets[i].first) << "in value order, one pair a bucket";
    for (const auto& [value, count] : buckets) {
      EXPECT_GT(count, 0u);
      merged.record(value, count);
      exported += count;
    }
  }
  EXPECT_EQ(exported, all.count());
  EXPECT_EQ(merged.count(), all.count());
  // The rebuilt histogram's extremes are bucket bounds; every percentile below the top bucket
  // is identical, and the top one is the bucket's bound (within 1/1024 of the exact maximum).
  for (double p : {1.0, 50.0, 90.0, 95.0, 99.0, 99.9})
    EXPECT_EQ(merged.percentile(p), all.percentile(p)) << p;
  EXPECT_GE(merged.percentile(100), all.max());
  EXPECT_LE(static_cast<double>(merged.percentile(100)), all.max() * (1.0 + 1.0 / 1024) + 1);
  EXPECT_TRUE(Histogram().buckets().empty());
  Histogram small;
  small.record(7, 3);
  small.record(0);
  EXPECT_EQ(small.buckets(), (std::vector<std::pair<std::int64_t, std::uint64_t>>{{0, 1}, {7, 3}}))
      << "values below 2048 are their own buckets";
}

TEST(Histogram, clamps_and_counts_values_outside_the_range) {
  Histogram h(10'000'000);
  h.record(-5);
  h.record(20'000'000);
  h.record(100);
  EXPECT_EQ(h.negatives(), 1u);
  EXPECT_EQ(h.overflows(), 1u);
  EXPECT_EQ(h.min(), 0);
  EXPECT_EQ(h.max(), 10'000'000);
  EXPECT_EQ(h.count(), 3u);
  Histogram empty;
  EXPECT_EQ(empty.percentile(99), 0);
  EXPECT_EQ(empty.mean(), 0.0);
}

}  // namespace
}  // namespace naap
