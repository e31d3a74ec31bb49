// Back-pressured segment generation on top of SegmentWriter's drain notifications.
#include "naap/transport/segment_pump.hpp"

#include <string>

namespace naap::trickle {
namespace {

struct Pump : std::enable_shared_from_this<Pump> {
  std::shared_ptr<SegmentWriter> writer;
  PumpOptions options;
  std::function<void(std::uint64_t, std::span<char>)> fill;
  std::function<void(bool)> done;
  std::uint64_t offset = 0;  // bytes generated so far

  void run() {
    while (offset < options.total_bytes) {
      if (writer->dropped()) return finish(false);
      if (writer->buffered_bytes() >= options.high_water_bytes) {
        // Wait for the network: resume when the buffer drains to half the high-water mark.
        writer->set_on_drain([self = shared_from_this()] { self->run(); },
                             options.high_water_bytes / 2);
        return;
      }
      std::size_t n = static_cast<std::size_t>(
          std::min<std::uint64_t>(options.chunk_bytes, options.total_bytes - offset));
      std::string chunk(n, '\0');
      fill(offset, std::span<char>(chunk.data(), chunk.size()));
      offset += n;
      if (!writer->write(chunk)) return finish(false);
    }
    writer->finish();
    if (writer->buffered_bytes() > 0 && !writer->dropped()) {
      // Done means handed to the network, as go-livepeer's synchronous pipe does: a producer
      // that starts segment N+1 earlier could have N+5 reuse N's slot while N still uploads.
      writer->set_on_drain([self = shared_from_this()] { self->finish(!self->writer->dropped()); },
                           0);
      return;
    }
    finish(!writer->dropped());
  }

  void finish(bool ok) {
    if (!done) return;
    auto cb = std::move(done);
    done = nullptr;
    writer->set_on_drain(nullptr, 0);
    cb(ok);
  }
};

}  // namespace

void pump_segment(std::shared_ptr<SegmentWriter> writer, PumpOptions options,
                  std::function<void(std::uint64_t, std::span<char>)> fill,
                  std::function<void(bool)> done) {
  auto pump = std::make_shared<Pump>();
  pump->writer = std::move(writer);
  pump->options = options;
  pump->fill = std::move(fill);
  pump->done = std::move(done);
  pump->run();
}

}  // namespace naap::trickle
