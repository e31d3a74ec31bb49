// JSON channel helpers: one document per segment, in both directions.
#include "naap/transport/trickle_json.hpp"

namespace naap::trickle {

Result<std::unique_ptr<ControlWriter>> ControlWriter::create(http::Engine& engine,
                                                             std::string channel_url,
                                                             PublisherOptions options,
                                                             PublisherCallbacks callbacks) {
  options.content_type = "application/json";
  auto pub = TricklePublisher::create(engine, std::move(channel_url), std::move(options),
                                      std::move(callbacks));
  if (!pub) return fail(pub.error());
  auto writer = std::unique_ptr<ControlWriter>(new ControlWriter());
  writer->publisher_ = std::move(*pub);
  return writer;
}

Result<std::int64_t> ControlWriter::send(const nlohmann::json& message, std::size_t max_bytes) {
  std::string body = message.dump();
  if (body.size() > max_bytes) {
    return fail(Error(ErrorCategory::config, "control message too large for the runner")
                    .with("url", publisher_->channel_url())
                    .with("bytes", std::to_string(body.size()))
                    .with("max_bytes", std::to_string(max_bytes)));
  }
  auto segment = publisher_->next_segment();
  if (!segment) {
    return fail(Error(ErrorCategory::protocol,
                      "control channel is not writable (not ready, "
                      "closing or ended)")
                    .with("url", publisher_->channel_url()));
  }
  segment->write(body);
  segment->finish();
  return segment->seq();
}

struct EventsReader::State {
  EventsCallbacks callbacks;
  std::size_t max_bytes = 0;  // per-segment cap
  std::string body;           // current segment's bytes
  bool oversized = false;     // the current segment passed max_bytes
};

Result<ChannelEvent> EventsReader::parse(std::int64_t seq, std::string_view body) {
  nlohmann::json doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    return fail(Error(ErrorCategory::runner, "events segment is not valid JSON")
                    .with("seq", std::to_string(seq))
                    .with("bytes", std::to_string(body.size())));
  }
  if (!doc.is_object()) {
    return fail(Error(ErrorCategory::runner, "events segment is not a JSON object")
                    .with("seq", std::to_string(seq)));
  }
  ChannelEvent ev;
  ev.seq = seq;
  auto wrapped = doc.find("event");
  if (wrapped != doc.end() && wrapped->is_object()) {
    ev.event = std::move(*wrapped);
    auto q = doc.find("queue_event_type");
    if (q != doc.end() && q->is_string()) ev.queue_event_type = q->get<std::string>();
  } else {
    ev.event = std::move(doc);
  }
  auto t = ev.event.find("type");
  if (t != ev.event.end() && t->is_string()) ev.type = t->get<std::string>();
  return ev;
}

Result<std::unique_ptr<EventsReader>> EventsReader::create(http::Engine& engine,
                                                           std::string channel_url,
                                                           SubscriberOptions options,
                                                           EventsCallbacks callbacks,
                                                           std::size_t max_event_bytes) {
  auto state = std::make_shared<State>();
  state->callbacks = std::move(callbacks);
  state->max_bytes = max_event_bytes;
  SubscriberCallbacks sc;
  sc.on_segment_start = [state](const SegmentHead&) {
    state->body.clear();
    state->oversized = false;
  };
  sc.on_data = [state](std::int64_t, std::string_view bytes) {
    if (state->oversized) return;
    if (state->body.size() + bytes.size() > state->max_bytes) {
      state->oversized = true;
      state->body.clear();
      return;
    }
    state->body.append(bytes);
  };
  sc.on_segment_end = [state](const SegmentEnd& end) {
    std::string body = std::move(state->body);
    state->body.clear();
    if (!end.complete) {
      if (state->callbacks.on_bad_segment && end.error) {
        state->callbacks.on_bad_segment(end.seq, *end.error);
      }
      return;
    }
    if (state->oversized) {
      if (state->callbacks.on_bad_segment) {
        state->callbacks.on_bad_segment(
            end.seq, Error(ErrorCategory::runner, "events segment larger than the limit")
                         .with("seq", std::to_string(end.seq))
                         .with("max_bytes", std::to_string(state->max_bytes)));
      }
      return;
    }
    if (body.empty()) return;  // empty segment: nothing to parse
    auto ev = parse(end.seq, body);
    if (!ev) {
      if (state->callbacks.on_bad_segment) state->callbacks.on_bad_segment(end.seq, ev.error());
      return;
    }
    if (state->callbacks.on_event) state->callbacks.on_event(*ev);
  };
  sc.on_end = [state](SubscriberEnd how, const std::optional<Error>& e) {
    if (state->callbacks.on_end) state->callbacks.on_end(how, e);
  };
  auto sub =
      TrickleSubscriber::create(engine, std::move(channel_url), std::move(options), std::move(sc));
  if (!sub) return fail(sub.error());
  auto reader = std::unique_ptr<EventsReader>(new EventsReader());
  reader->state_ = std::move(state);
  reader->subscriber_ = std::move(*sub);
  return reader;
}

}  // namespace naap::trickle
