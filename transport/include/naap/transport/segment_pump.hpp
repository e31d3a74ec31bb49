// Feeds one trickle segment from a byte generator with back-pressure: the writer's buffer never
// holds more than `high_water_bytes`, so a segment of any size streams in bounded memory.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>

#include "naap/transport/trickle_publisher.hpp"

namespace naap::trickle {

struct PumpOptions {
  std::uint64_t total_bytes = 0;           // segment size
  std::size_t chunk_bytes = 64 * 1024;     // bytes generated per write
  std::size_t high_water_bytes = 1 << 20;  // stop generating above this many buffered bytes
};

// fill(offset, out) produces the bytes at [offset, offset + out.size()). done(ok) runs once,
// when every byte has been handed to the network (not merely buffered); ok=false when the
// writer dropped the segment. The writer is finished by the pump.
void pump_segment(std::shared_ptr<SegmentWriter> writer, PumpOptions options,
                  std::function<void(std::uint64_t offset, std::span<char> out)> fill,
                  std::function<void(bool ok)> done);

}  // namespace naap::trickle
