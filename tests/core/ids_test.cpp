// Event ids: NaaP dedupes by id, so ids must be well-formed v4 UUIDs and never repeat.
#include "naap/core/ids.hpp"

#include <gtest/gtest.h>

#include <regex>
#include <set>

namespace naap {
namespace {

TEST(CoreIds, uuid_v4_is_well_formed_and_unique) {
  const std::regex shape("^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
  std::set<std::string> seen;
  for (int i = 0; i < 10'000; ++i) {
    std::string id = uuid_v4();
    ASSERT_TRUE(std::regex_match(id, shape)) << id;
    ASSERT_TRUE(seen.insert(id).second) << "repeated id " << id;
  }
}

}  // namespace
}  // namespace naap
