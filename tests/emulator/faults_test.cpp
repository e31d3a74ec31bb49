// Fault profiles: flag and JSON parsing, layering, and the errors an operator sees.
#include "naap/emulator/faults.hpp"

#include <gtest/gtest.h>

#include <fstream>

namespace naap::emulator {
namespace {

TEST(EmulatorFaults, parses_every_latency_form_and_samples_within_range) {
  FaultProfile p;
  ASSERT_TRUE(p.set("latency_ms", "200"));
  std::mt19937_64 rng(1);
  EXPECT_DOUBLE_EQ(p.latency->sample_ms(rng), 200.0);
  ASSERT_TRUE(p.set("latency_ms", "uniform:100:300"));
  for (int i = 0; i < 1000; ++i) {
    const double v = p.latency->sample_ms(rng);
    EXPECT_GE(v, 100.0);
    EXPECT_LE(v, 300.0);
  }
  ASSERT_TRUE(p.set("latency_ms", "normal:50:500"));
  for (int i = 0; i < 1000; ++i) EXPECT_GE(p.latency->sample_ms(rng), 0.0);  // never negative
  EXPECT_TRUE(p.set("latency_ms", "lognormal:200:0.3"));
}

TEST(EmulatorFaults, rejects_bad_values_naming_the_key) {
  FaultProfile p;
  auto bad = p.set("latency_ms", "gamma:1:2");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("unknown distribution 'gamma'"), std::string::npos);
  auto unknown = p.set("stall_afer_s", "3");
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message.find("unknown fault"), std::string::npos);
  EXPECT_NE(unknown.error().message.find("stall_after_s"), std::string::npos);  // lists the known
  EXPECT_FALSE(p.set("start_status", "404"));
  EXPECT_FALSE(p.set("drop_every_n", "1"));
  EXPECT_FALSE(p.set("fps_cap", "ten"));
  EXPECT_FALSE(p.set("no_events", "maybe"));
  EXPECT_FALSE(p.start_status.has_value());
}

TEST(EmulatorFaults, layers_stream_over_model_over_default) {
  auto plan = FaultPlan::from_json(
      nlohmann::json::parse(R"({"default": {"latency_ms": 50, "no_events": false},
                                "models": {"comfyui": {"latency_ms": 300, "fps_cap": 12}},
                                "streams": {"s1": {"latency_ms": {"dist": "uniform", "min": 1, "max": 2}}}})"),
      "plan.json");
  ASSERT_TRUE(plan) << plan.error().describe();
  const FaultProfile noop = plan->for_stream("noop", "x");
  EXPECT_DOUBLE_EQ(noop.latency->a_ms, 50.0);
  EXPECT_FALSE(noop.fps_cap);
  const FaultProfile comfy = plan->for_stream("comfyui", "x");
  EXPECT_DOUBLE_EQ(comfy.latency->a_ms, 300.0);
  EXPECT_DOUBLE_EQ(*comfy.fps_cap, 12.0);
  const FaultProfile s1 = plan->for_stream("comfyui", "s1");
  EXPECT_EQ(s1.latency->kind, LatencySpec::Kind::uniform);
  EXPECT_DOUBLE_EQ(*s1.fps_cap, 12.0);
  EXPECT_EQ(s1.no_events, false);
}

TEST(EmulatorFaults, plan_errors_name_the_file_and_the_place) {
  auto wrong_type = FaultPlan::from_json(
      nlohmann::json::parse(R"({"models": {"noop": {"fps_cap": "fast"}}})"), "plan.json");
  ASSERT_FALSE(wrong_type);
  EXPECT_NE(wrong_type.error().describe().find("plan.json:models.noop"), std::string::npos)
      << wrong_type.error().describe();
  auto unknown = FaultPlan::from_json(nlohmann::json::parse(R"({"defaults": {}})"), "p.json");
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message.find("unknown key 'defaults'"), std::string::npos);
  auto missing = FaultPlan::load("/nonexistent/faults.json");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().describe().find("/nonexistent/faults.json"), std::string::npos);
  const std::string path = ::testing::TempDir() + "/bad_faults.json";
  std::ofstream(path) << "{not json";
  auto garbage = FaultPlan::load(path);
  ASSERT_FALSE(garbage);
  EXPECT_NE(garbage.error().message.find("not valid JSON"), std::string::npos);
}

}  // namespace
}  // namespace naap::emulator
