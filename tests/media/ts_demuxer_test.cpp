// Push demuxer: the same frames whatever the chunking, garbage and truncation skipped and
// counted, 33-bit timestamps unwrapped, ffmpeg CLI output read like ffprobe reads it, each frame
// stamped with the arrival of its own start packet.
#include "naap/media/ts_demuxer.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <random>

#include "media_test_support.hpp"
#include "naap/media/ts_muxer.hpp"

namespace naap::media {
namespace {

using test::cached_clip;
using test::concat;
using test::demux;

ClipOptions small_clip() {
  return ClipOptions{.width = 256, .height = 144, .duration_s = 3.0, .gop_seconds = 1.0};
}

void expect_same_frames(const std::vector<EncodedFrame>& got,
                        const std::vector<EncodedFrame>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].pts, want[i].pts) << "frame " << i;
    EXPECT_EQ(got[i].dts, want[i].dts) << "frame " << i;
    EXPECT_EQ(got[i].keyframe, want[i].keyframe) << "frame " << i;
    EXPECT_TRUE(got[i].data == want[i].data) << "frame " << i << " bytes differ";
  }
}

// ffprobe's view of a file's video packets: pts and key flag and size, in order.
struct ProbedPacket {
  std::int64_t pts;  // 90 kHz ticks as in the file (33-bit)
  bool key;          // ffprobe flags contain K
  std::size_t size;  // bytes of the access unit
};
std::vector<ProbedPacket> ffprobe_packets(const std::filesystem::path& file) {
  const std::string out = test::run_command(
      "ffprobe -v error -select_streams v:0 -show_entries packet=pts,flags,size -of json '" +
      file.string() + "'");
  std::vector<ProbedPacket> packets;
  const auto json = nlohmann::json::parse(out, nullptr, false);
  if (json.is_discarded() || !json.contains("packets")) return packets;
  for (const auto& p : json["packets"]) {
    packets.push_back(ProbedPacket{p.value("pts", std::int64_t{-1}),
                                   p.value("flags", std::string()).find('K') != std::string::npos,
                                   std::stoul(p.value("size", std::string("0")))});
  }
  return packets;
}

TEST(MediaTsDemuxer, yields_the_same_frames_for_any_chunk_sizes) {
  const SegmentedClip& clip = cached_clip(small_clip());
  ASSERT_EQ(clip.segments.size(), 3u);
  const std::string bytes = concat(clip);
  const std::vector<EncodedFrame> whole = demux(bytes);
  ASSERT_EQ(whole.size(), 72u);
  for (std::size_t i = 0; i < whole.size(); ++i) {
    EXPECT_EQ(whole[i].pts, clip_frame_pts(small_clip(), static_cast<std::int64_t>(i)));
    EXPECT_EQ(whole[i].keyframe, i % 24 == 0) << "one IDR per 1 s segment, frame " << i;
  }

  std::mt19937 rng(20240601);
  std::uniform_int_distribution<std::size_t> size(1, 4096);
  std::vector<EncodedFrame> chunked;
  TsDemuxer demuxer([&chunked](EncodedFrame&& f) { chunked.push_back(std::move(f)); });
  for (std::size_t pos = 0; pos < bytes.size();) {
    const std::size_t n = std::min(size(rng), bytes.size() - pos);
    demuxer.push(std::string_view(bytes).substr(pos, n));
    pos += n;
  }
  demuxer.flush();
  expect_same_frames(chunked, whole);

  std::vector<EncodedFrame> bytewise;
  TsDemuxer slow([&bytewise](EncodedFrame&& f) { bytewise.push_back(std::move(f)); });
  for (char c : bytes) slow.push(std::string_view(&c, 1));
  slow.flush();
  expect_same_frames(bytewise, whole);
  EXPECT_EQ(slow.stats().sync_losses, 0u);
  EXPECT_EQ(slow.stats().bytes_skipped, 0u);
  EXPECT_EQ(slow.stats().pes_dropped, 0u);
}

TEST(MediaTsDemuxer, emits_each_frame_as_soon_as_its_last_byte_arrives) {
  const SegmentedClip& clip = cached_clip(small_clip());
  const ClipSegment& segment = clip.segments.at(0);
  std::size_t emitted = 0;
  TsDemuxer demuxer([&emitted](EncodedFrame&&) { ++emitted; });
  std::size_t sent = 0;
  for (std::size_t i = 0; i < segment.frames.size(); ++i) {
    const std::size_t end = segment.frames[i].end_offset;
    demuxer.push(std::string_view(segment.bytes).substr(sent, end - sent));
    sent = end;
    EXPECT_EQ(emitted, i + 1) << "frame " << i << " waited for later bytes";
  }
}

TEST(MediaTsDemuxer, skips_and_counts_garbage_and_truncated_packets_between_segments) {
  const SegmentedClip& clip = cached_clip(small_clip());
  const std::string& a = clip.segments[0].bytes;
  const std::string& b = clip.segments[1].bytes;
  const std::string& c = clip.segments[2].bytes;
  std::mt19937 rng(7);
  std::string garbage(5000, '\0');
  for (char& g : garbage) g = static_cast<char>(rng() % 256);
  for (std::size_t i = 50; i < garbage.size(); i += 97) garbage[i] = 0x47;  // false sync bytes

  std::string stream = a;
  stream += garbage;
  stream += b.substr(188 * 10, 100);  // a truncated packet from the middle of a frame
  stream += b;
  stream += c.substr(0, 188 * 5 + 77);  // a segment cut off inside its first frame
  stream += c;

  std::vector<EncodedFrame> want = demux(concat(clip));
  for (const std::size_t chunk : {std::size_t{1}, std::size_t{1000}, stream.size()}) {
    std::vector<EncodedFrame> got;
    TsDemuxer demuxer([&got](EncodedFrame&& f) { got.push_back(std::move(f)); });
    for (std::size_t pos = 0; pos < stream.size(); pos += chunk) {
      demuxer.push(std::string_view(stream).substr(pos, chunk));
    }
    demuxer.flush();
    SCOPED_TRACE("chunk " + std::to_string(chunk));
    expect_same_frames(got, want);
    EXPECT_GE(demuxer.stats().bytes_skipped, garbage.size());
    EXPECT_GE(demuxer.stats().sync_losses, 2u);
    EXPECT_EQ(demuxer.stats().pes_dropped, 1u) << "the cut-off first frame of the third segment";
    EXPECT_TRUE(demuxer.has_video_stream());
  }
}

TEST(MediaTsDemuxer, unwraps_33_bit_pts_across_the_wrap) {
  ClipOptions options = small_clip();
  options.start_pts = (std::int64_t{1} << 33) - 90'000;  // one second before the wrap
  const SegmentedClip& clip = cached_clip(options);
  const std::vector<EncodedFrame> frames = test::demux_segments(clip);
  ASSERT_EQ(frames.size(), 72u);
  for (std::size_t i = 0; i < frames.size(); ++i) {
    EXPECT_EQ(frames[i].pts, clip_frame_pts(options, static_cast<std::int64_t>(i))) << i;
    EXPECT_EQ(frames[i].dts, frames[i].pts) << i;
  }
  EXPECT_GT(frames.back().pts, std::int64_t{1} << 33) << "values keep increasing past 2^33";
}

TEST(MediaTsDemuxer, survives_random_bytes_and_corrupted_segments) {
  std::mt19937 rng(99);
  std::string noise(1 << 20, '\0');
  for (char& g : noise) g = static_cast<char>(rng() % 256);
  for (std::size_t i = 0; i < noise.size(); i += 188) noise[i] = 0x47;  // aligned garbage
  TsDemuxerStats stats;
  (void)demux(noise, &stats);
  EXPECT_GT(stats.packets, 0u);

  std::string damaged = concat(cached_clip(small_clip()));
  for (int i = 0; i < 40; ++i) damaged[rng() % damaged.size()] = static_cast<char>(rng() % 256);
  std::size_t decoded = 0;
  auto decoder = test::make_decoder();
  ASSERT_NE(decoder, nullptr);
  for (const EncodedFrame& f : demux(damaged, &stats)) {
    (void)decoder->decode(f, [&decoded](AVFrame&) { ++decoded; });
  }
  EXPECT_GT(stats.pes_emitted, 60u) << "most frames still come out";
  EXPECT_GT(decoded, 60u) << "and decode, damaged or not";
}

// Offsets of the TS packets that start a PES on `pid` (payload_unit_start set), in order.
std::vector<std::size_t> pes_start_packets(std::string_view bytes, int pid) {
  std::vector<std::size_t> starts;
  for (std::size_t pos = 0; pos + 188 <= bytes.size(); pos += 188) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(bytes.data() + pos);
    if (p[0] == 0x47 && (p[1] & 0x40) != 0 && (((p[1] & 0x1F) << 8) | p[2]) == pid) {
      starts.push_back(pos);
    }
  }
  return starts;
}

using Clock = std::chrono::steady_clock;
// Distinct, recognisable receive times: chunk k arrived k + 1 ms after an arbitrary epoch.
Clock::time_point chunk_time(std::size_t k) {
  return Clock::time_point{} + std::chrono::hours(1) + std::chrono::milliseconds(k + 1);
}

TEST(MediaTsDemuxer, stamps_each_frame_with_the_push_that_completed_its_start_packet) {
  const SegmentedClip& clip = cached_clip(small_clip());
  const std::string bytes = concat(clip);
  constexpr std::size_t chunk = 100;  // not a divisor of 188: start packets straddle pushes
  std::vector<EncodedFrame> frames;
  TsDemuxer demuxer([&frames](EncodedFrame&& f) { frames.push_back(std::move(f)); });
  for (std::size_t pos = 0; pos < bytes.size(); pos += chunk) {
    demuxer.push(std::string_view(bytes).substr(pos, chunk), chunk_time(pos / chunk));
  }
  demuxer.flush();
  const std::vector<std::size_t> starts = pes_start_packets(bytes, demuxer.video_pid());
  ASSERT_EQ(frames.size(), 72u);
  ASSERT_EQ(starts.size(), frames.size());
  std::size_t straddling = 0;
  for (std::size_t i = 0; i < frames.size(); ++i) {
    // A start packet split across two pushes arrived with the later one.
    const std::size_t completing_chunk = (starts[i] + 187) / chunk;
    if (completing_chunk != starts[i] / chunk) ++straddling;
    EXPECT_EQ(frames[i].arrival, chunk_time(completing_chunk)) << "frame " << i;
  }
  EXPECT_GT(straddling, 10u) << "the split-packet rule was exercised";
}

// The runner's muxer writes PES_packet_length 0: frame n is complete, so emitted, only when the
// packet starting frame n+1 arrives, yet its latency counts from its own start packet.
TEST(MediaTsDemuxer, stamps_a_frame_from_its_own_start_when_pes_length_is_zero) {
  const ClipOptions options = small_clip();
  const std::vector<EncodedFrame> source = demux(cached_clip(options).segments.at(0).bytes);
  ASSERT_EQ(source.size(), 24u);
  std::string stream;
  std::vector<std::size_t> ends;  // bytes: end of each frame's data in `stream`
  auto muxer = TsSegmentMuxer::create(
      MuxerOptions{.width = options.width, .height = options.height, .write_pes_length = false},
      [&stream](std::string_view b) { stream.append(b); });
  ASSERT_TRUE(muxer.has_value());
  ASSERT_TRUE((*muxer)->begin_segment().has_value());
  for (const EncodedFrame& f : source) {
    ASSERT_TRUE((*muxer)->write(f).has_value());
    ends.push_back(stream.size());
  }
  ASSERT_TRUE((*muxer)->end_segment().has_value());

  const std::vector<std::size_t> starts = pes_start_packets(stream, 0x100);
  ASSERT_EQ(starts.size(), source.size());
  for (const std::size_t start : starts) {
    const std::size_t header =
        start + 4 +
        ((stream[start + 3] & 0x20) != 0 ? 1 + static_cast<std::uint8_t>(stream[start + 4]) : 0);
    ASSERT_EQ(stream.substr(header, 3), std::string("\0\0\1", 3));
    ASSERT_EQ(stream[header + 4], 0);
    ASSERT_EQ(stream[header + 5], 0) << "PES_packet_length must be 0 at offset " << start;
  }

  std::vector<EncodedFrame> frames;
  TsDemuxer demuxer([&frames](EncodedFrame&& f) { frames.push_back(std::move(f)); });
  std::size_t sent = 0;
  for (std::size_t i = 0; i < ends.size(); ++i) {
    demuxer.push(std::string_view(stream).substr(sent, ends[i] - sent), chunk_time(i));
    sent = ends[i];
    EXPECT_EQ(frames.size(), i) << "frame " << i - 1 << " comes out with frame " << i << "'s start";
  }
  demuxer.push(std::string_view(stream).substr(sent), chunk_time(ends.size()));  // trailer
  demuxer.flush();
  ASSERT_EQ(frames.size(), source.size());
  for (std::size_t i = 0; i < frames.size(); ++i) {
    EXPECT_EQ(frames[i].pts, source[i].pts) << "frame " << i;
    EXPECT_TRUE(frames[i].data == source[i].data) << "frame " << i << " bytes differ";
    EXPECT_EQ(frames[i].arrival, chunk_time(i)) << "frame " << i << " took a later push's time";
  }
}

TEST(MediaTsDemuxer, leaves_arrival_unset_when_the_caller_gives_no_time) {
  const std::vector<EncodedFrame> frames = demux(cached_clip(small_clip()).segments.at(0).bytes);
  ASSERT_FALSE(frames.empty());
  for (const EncodedFrame& f : frames) EXPECT_EQ(f.arrival, Clock::time_point{});
}

// Streams from the ffmpeg command line: PES length 0 (the frame ends at the next one), the CLI's
// 1.4 s mux delay, another PID layout. A later PMT moving the video PID must be followed.
class MediaTsDemuxerCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    h264_ = std::make_unique<test::TempFile>("-h264.ts");
    mpeg2_ = std::make_unique<test::TempFile>("-mpeg2.ts");
    const std::string source = "ffmpeg -v error -y -f lavfi -i testsrc2=size=320x240:rate=25 -t 2 ";
    test::run_command(source +
                      "-c:v libx264 -preset ultrafast -bf 0 -g 25 -mpegts_start_pid 0x300 "
                      "-mpegts_pmt_start_pid 0x1100 -f mpegts '" +
                      h264_->path().string() + "'");
    test::run_command(source + "-c:v mpeg2video -f mpegts '" + mpeg2_->path().string() + "'");
  }
  static void TearDownTestSuite() {
    h264_.reset();
    mpeg2_.reset();
  }
  static inline std::unique_ptr<test::TempFile> h264_;
  static inline std::unique_ptr<test::TempFile> mpeg2_;
};

TEST_F(MediaTsDemuxerCli, reads_the_same_packets_as_ffprobe) {
  const std::vector<ProbedPacket> probed = ffprobe_packets(h264_->path());
  ASSERT_EQ(probed.size(), 50u);
  TsDemuxerStats stats;
  const std::vector<EncodedFrame> frames = demux(h264_->read(), &stats);
  ASSERT_EQ(frames.size(), probed.size());
  for (std::size_t i = 0; i < frames.size(); ++i) {
    EXPECT_EQ(frames[i].pts, probed[i].pts) << i;
    EXPECT_EQ(frames[i].keyframe, probed[i].key) << i;
    EXPECT_EQ(frames[i].data.size(), probed[i].size) << i;
  }
  EXPECT_EQ(stats.pes_dropped, 0u);
  EXPECT_EQ(stats.sync_losses, 0u);
}

TEST_F(MediaTsDemuxerCli, follows_the_video_pid_when_a_later_pmt_moves_it) {
  const SegmentedClip& clip = cached_clip(small_clip());
  std::vector<EncodedFrame> frames;
  TsDemuxer demuxer([&frames](EncodedFrame&& f) { frames.push_back(std::move(f)); });
  demuxer.push(clip.segments[0].bytes);
  demuxer.flush();
  EXPECT_EQ(demuxer.video_pid(), 0x100);
  demuxer.push(h264_->read());
  demuxer.flush();
  EXPECT_EQ(demuxer.video_pid(), 0x300);
  EXPECT_EQ(frames.size(), clip.segments[0].frames.size() + 50);
}

TEST_F(MediaTsDemuxerCli, ignores_a_stream_that_is_not_h264) {
  TsDemuxerStats stats;
  std::vector<EncodedFrame> frames;
  TsDemuxer demuxer([&frames](EncodedFrame&& f) { frames.push_back(std::move(f)); });
  demuxer.push(mpeg2_->read());
  demuxer.flush();
  EXPECT_FALSE(demuxer.has_video_stream());
  EXPECT_TRUE(frames.empty());
  EXPECT_GT(demuxer.stats().packets, 0u);
}

}  // namespace
}  // namespace naap::media
