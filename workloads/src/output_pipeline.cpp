// OutputPipeline (see output_pipeline.hpp).
#include "output_pipeline.hpp"

#include "naap/media/frame_ops.hpp"

namespace naap::workloads {

namespace {

reports::FrameKind kind_of(media::FrameClass c) {
  switch (c) {
    case media::FrameClass::real:
      return reports::FrameKind::real;
    case media::FrameClass::loading:
      return reports::FrameKind::loading;
    case media::FrameClass::black:
      return reports::FrameKind::black;
  }
  return reports::FrameKind::real;
}

}  // namespace

OutputPipeline::OutputPipeline(WorkerPool& pool, bool decode, Deliver deliver)
    : queue_(std::make_shared<SerialQueue>(pool)),
      decode_(decode),
      deliver_(std::move(deliver)),
      demuxer_([this](media::EncodedFrame&& f) { on_packet(std::move(f)); }) {}

Result<std::shared_ptr<OutputPipeline>> OutputPipeline::create(WorkerPool& pool, bool decode,
                                                               const media::DecoderOptions& options,
                                                               Deliver deliver) {
  std::shared_ptr<OutputPipeline> p(new OutputPipeline(pool, decode, std::move(deliver)));
  if (decode) {
    auto decoder = media::H264Decoder::create(options);
    if (!decoder) return std::unexpected(decoder.error());
    p->decoder_ = std::move(*decoder);
    p->backend_ = std::string(p->decoder_->backend());
  }
  return p;
}

void OutputPipeline::push(std::string bytes, Clock::time_point arrival) {
  queue_->post([self = shared_from_this(), bytes = std::move(bytes), arrival] {
    if (self->closed_) return;
    self->segment_bytes_ += bytes.size();
    self->demuxer_.push(bytes, arrival);
    self->flush_batch();
  });
}

void OutputPipeline::end_segment() {
  queue_->post([self = shared_from_this()] {
    if (self->closed_) return;
    // A segment ends with a complete frame: the demuxer holds it until told (PES length 0).
    self->demuxer_.flush();
    const auto& st = self->demuxer_.stats();
    const std::uint64_t errors = st.sync_losses + st.bytes_skipped + st.transport_errors +
                                 st.tables_rejected + st.pes_dropped;
    if (self->segment_bytes_ > 0 &&
        (errors > self->demux_errors_seen_ || self->segment_frames_ == 0))
      ++self->corrupt_segments_;
    self->demux_errors_seen_ = errors;
    self->segment_bytes_ = 0;
    self->segment_frames_ = 0;
    self->flush_batch();
  });
}

void OutputPipeline::close() {
  closed_ = true;
}

std::uint64_t OutputPipeline::decode_errors() const {
  return decode_errors_;
}

void OutputPipeline::on_packet(media::EncodedFrame&& frame) {
  ++segment_frames_;
  if (!decode_) {
    batch_.push_back(DecodedFrame{frame.pts, frame.arrival, std::nullopt, reports::FrameKind::real,
                                  std::nullopt});
    return;
  }
  arrivals_[frame.pts] = frame.arrival;
  auto deliver_picture = [this](AVFrame& picture) {
    const auto now = Clock::now();
    DecodedFrame out;
    out.pts = picture.pts;
    auto it = arrivals_.find(picture.pts);
    out.arrival = it != arrivals_.end() ? it->second : now;
    if (it != arrivals_.end()) arrivals_.erase(arrivals_.begin(), std::next(it));
    out.decoded = now;
    out.kind = kind_of(media::classify_frame(picture));
    if (out.kind == reports::FrameKind::real) out.signature = media::signature_of(picture);
    batch_.push_back(std::move(out));
  };
  auto r = decoder_->decode(frame, deliver_picture);
  if (!r) {
    ++decode_errors_;
    // The PES arrived but gave no picture: it counts, as undecodable, at its arrival.
    batch_.push_back(DecodedFrame{frame.pts, frame.arrival, std::nullopt,
                                  reports::FrameKind::undecodable, std::nullopt});
    arrivals_.erase(frame.pts);
  }
  // The decoder never holds more than a few pictures; anything older is a packet it dropped.
  while (arrivals_.size() > 16) arrivals_.erase(arrivals_.begin());
}

void OutputPipeline::flush_batch() {
  if (batch_.empty() || closed_) return;
  std::vector<DecodedFrame> out;
  out.swap(batch_);
  deliver_(std::move(out));
}

}  // namespace naap::workloads
