// What one test runs, from a dataset: the preset's full parameters, the scenario's duration,
// prompt cadence and prompt set, the SLA thresholds, and the clip encoded once (ClipCache) —
// turned into a SessionConfig, the RunContext tags of its record, and the input to replay.
// Shared by `bench` and the scheduler.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "naap/core/error.hpp"
#include "naap/media/ingest.hpp"
#include "naap/workloads/live_session.hpp"
#include "naap/workloads/run_record.hpp"

namespace naap::workloads {

struct PlanRequest {
  std::string dataset = "naap-default";     // dataset id or manifest path
  std::string pipeline = "noop";            // preset name
  std::string scenario;                     // empty: the dataset's first for the pipeline
  std::optional<double> duration_s;         // override of the scenario's
  std::optional<double> prompt_interval_s;  // override of the scenario's (0 = no switches)
  std::uint64_t seed = 1;                   // prompt picker seed
  std::string decoder = "auto";             // auto | software | nvdec | none
};

struct SessionPlan {
  SessionConfig config;  // everything but orchestrators, ids, signer and pin
  RunContext context;    // dataset, scenario, pipeline and clip tags (not run id, gateway, region)
  std::shared_ptr<const media::EncodedClip> input;  // the clip, encoded once per configuration
};

// A `config` error names what is wrong (unknown dataset, preset, scenario, bad override); an
// input encode failure is an `internal` error.
Result<SessionPlan> plan_session(const PlanRequest& request, media::ClipCache& cache);

}  // namespace naap::workloads
