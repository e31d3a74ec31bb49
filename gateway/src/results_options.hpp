// The results-pipeline flags shared by the subcommands that publish events (bench, once, run):
// --events, --kafka-*, --spool, --flush-timeout (docs/configuration.md).
#pragma once

#include <cxxopts.hpp>

#include "naap/core/error.hpp"
#include "naap/reports/publisher.hpp"

namespace naap::cli {

void add_results_options(cxxopts::Options& options);

// The options as given; a config error names the flag. The Kafka password comes from the
// environment (NAAP_KAFKA_PASSWORD), never from the command line.
Result<reports::ResultsOptions> results_options_from(const cxxopts::ParseResult& args);

}  // namespace naap::cli
