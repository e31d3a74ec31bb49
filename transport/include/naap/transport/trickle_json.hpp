// JSON trickle channels: exactly one JSON document per segment (PROTOCOL.md §1.10).
//   ControlWriter  publishes control messages (params updates, {"keep":"alive"}) to <mid>-control
//   EventsReader   reads runner events from <mid>-events, unwrapping {event, queue_event_type}
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "naap/core/error.hpp"
#include "naap/transport/trickle_publisher.hpp"
#include "naap/transport/trickle_subscriber.hpp"

namespace naap::trickle {

// ai-runner parses a control segment from a single read of at most 32 KiB.
inline constexpr std::size_t k_max_control_bytes = 32 * 1024;

class ControlWriter {
 public:
  // Publishes to `channel_url` from seq `start_seq` (0 on a fresh job).
  static Result<std::unique_ptr<ControlWriter>> create(http::Engine& engine,
                                                       std::string channel_url,
                                                       PublisherOptions options,
                                                       PublisherCallbacks callbacks = {});
  void start() { publisher_->start(); }
  // Sends one message as one segment. Fails (nothing sent) if the message is larger than
  // max_bytes or the channel has ended. Returns the segment's seq.
  Result<std::int64_t> send(const nlohmann::json& message,
                            std::size_t max_bytes = k_max_control_bytes);
  // {"keep":"alive"}, go-livepeer's 10 s control keepalive.
  Result<std::int64_t> send_keepalive() { return send(nlohmann::json{{"keep", "alive"}}); }
  void close() { publisher_->close(); }
  TricklePublisher& publisher() { return *publisher_; }

 private:
  std::shared_ptr<TricklePublisher> publisher_;
};

// One event read from the events channel.
struct ChannelEvent {
  std::int64_t seq = 0;                         // segment seq it came in
  nlohmann::json event;                         // the event (unwrapped)
  std::optional<std::string> queue_event_type;  // from the {event, queue_event_type} wrapper
  std::string type;                             // event["type"] when it is a string, else ""
};

struct EventsCallbacks {
  std::function<void(const ChannelEvent&)> on_event;
  // A segment that was not one valid JSON document (or too large): the stream goes on.
  std::function<void(std::int64_t seq, const Error&)> on_bad_segment;
  std::function<void(SubscriberEnd, const std::optional<Error>&)> on_end;
};

class EventsReader {
 public:
  // Reads from options.start_seq (0 on a fresh job, see PROTOCOL.md §1.4).
  static Result<std::unique_ptr<EventsReader>> create(http::Engine& engine, std::string channel_url,
                                                      SubscriberOptions options,
                                                      EventsCallbacks callbacks,
                                                      std::size_t max_event_bytes = 1 << 20);
  void start() { subscriber_->start(); }
  void stop() { subscriber_->stop(); }
  TrickleSubscriber& subscriber() { return *subscriber_; }

  // Splits a segment body into a ChannelEvent; exposed for tests and the emulator.
  static Result<ChannelEvent> parse(std::int64_t seq, std::string_view body);

 private:
  struct State;
  std::shared_ptr<State> state_;
  std::shared_ptr<TrickleSubscriber> subscriber_;
};

}  // namespace naap::trickle
