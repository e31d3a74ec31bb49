// Error taxonomy: what an operator reads in logs and records must locate the failure.
#include "naap/core/error.hpp"

#include <gtest/gtest.h>

#include <set>

namespace naap {
namespace {

Result<int> parse_positive(int v) {
  if (v <= 0) {
    return fail(Error(ErrorCategory::config, "must be positive").with("key", "segments"));
  }
  return v;
}

TEST(CoreError, describe_names_category_message_and_context) {
  Error e(ErrorCategory::protocol, "unexpected status 500", true);
  e.with("url", "http://127.0.0.1:1/ai/trickle/x").with("seq", "4");
  EXPECT_EQ(e.describe(),
            "protocol: unexpected status 500 (url=http://127.0.0.1:1/ai/trickle/x seq=4) "
            "[retriable]");
  EXPECT_EQ(e.get("seq"), "4");
  EXPECT_EQ(e.get("missing"), "");
}

TEST(CoreError, result_carries_value_or_error) {
  auto ok = parse_positive(3);
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(*ok, 3);
  auto bad = parse_positive(0);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().category, ErrorCategory::config);
  EXPECT_EQ(bad.error().get("key"), "segments");
  EXPECT_FALSE(bad.error().retriable);
}

TEST(CoreError, every_category_has_a_distinct_name) {
  std::set<std::string_view> names;
  for (auto c :
       {ErrorCategory::config, ErrorCategory::network, ErrorCategory::tls, ErrorCategory::protocol,
        ErrorCategory::orchestrator, ErrorCategory::runner, ErrorCategory::payment,
        ErrorCategory::media, ErrorCategory::sink, ErrorCategory::internal}) {
    names.insert(to_string(c));
  }
  EXPECT_EQ(names.size(), 10u);
  EXPECT_TRUE(names.contains("orchestrator"));
}

}  // namespace
}  // namespace naap
