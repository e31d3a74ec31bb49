// Structured log lines: one line per event, key=value, values quoted when they must be.
#include "naap/core/log.hpp"

#include <gtest/gtest.h>

#include <algorithm>

namespace naap::log {
namespace {

TEST(CoreLog, line_has_timestamp_level_event_and_fields) {
  std::string line =
      format_line(Level::warn, "segment_failed", {{"url", "http://h/ai/trickle/a"}, {"seq", 7}});
  EXPECT_TRUE(line.starts_with("ts=")) << line;
  EXPECT_NE(line.find(" level=warn event=segment_failed url=http://h/ai/trickle/a seq=7\n"),
            std::string::npos)
      << line;
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(std::count(line.begin(), line.end(), '\n'), 1);
}

TEST(CoreLog, values_with_spaces_quotes_or_newlines_are_quoted_and_escaped) {
  std::string line =
      format_line(Level::info, "e", {{"msg", "two words"}, {"q", "say \"hi\"\nnext"}});
  EXPECT_NE(line.find("msg=\"two words\""), std::string::npos) << line;
  EXPECT_NE(line.find("q=\"say \\\"hi\\\"\\nnext\""), std::string::npos) << line;
  EXPECT_EQ(std::count(line.begin(), line.end(), '\n'), 1);
}

TEST(CoreLog, level_filter_and_parsing) {
  Level l;
  ASSERT_TRUE(parse_level("error", l));
  EXPECT_EQ(l, Level::error);
  EXPECT_FALSE(parse_level("verbose", l));
  Level before = level();
  set_level(Level::warn);
  EXPECT_FALSE(enabled(Level::info));
  EXPECT_TRUE(enabled(Level::error));
  set_level(before);
}

}  // namespace
}  // namespace naap::log
