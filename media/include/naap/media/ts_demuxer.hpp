// Push-based MPEG-TS demuxer for the first H.264 stream of a program: accepts bytes as they
// arrive from the network, in chunks of any size, and emits one EncodedFrame per PES packet.
// No libavformat and no blocking I/O, so a slow or broken peer only costs buffered bytes. Each
// frame carries the arrival time of the packet that started it (METRICS.md, "Frame timing").
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "naap/media/encoded_frame.hpp"

namespace naap::media {

struct TsDemuxerStats {
  std::uint64_t packets = 0;            // 188-byte TS packets parsed
  std::uint64_t sync_losses = 0;        // times the 0x47 packet alignment was lost
  std::uint64_t bytes_skipped = 0;      // bytes discarded while searching for alignment
  std::uint64_t continuity_errors = 0;  // continuity-counter jumps (expected at segment starts)
  std::uint64_t transport_errors = 0;   // packets flagged with transport_error_indicator
  std::uint64_t tables_rejected = 0;    // PAT/PMT sections with a bad CRC or layout
  std::uint64_t pes_emitted = 0;        // frames handed to the callback
  std::uint64_t pes_dropped = 0;        // malformed PES packets (bad header, no PTS, truncated)
};

class TsDemuxer {
 public:
  using FrameCallback = std::function<void(EncodedFrame&&)>;
  using TimePoint = std::chrono::steady_clock::time_point;

  explicit TsDemuxer(FrameCallback on_frame);

  // Parses whatever complete packets the bytes finish; keeps a partial packet for later.
  // Frames are emitted from inside this call. `arrival` is when these bytes were received: a
  // frame's EncodedFrame::arrival is the arrival of the push that completed the TS packet
  // starting its PES, even when the frame itself is only emitted by a later push (PES length 0:
  // a frame ends when the next one starts).
  void push(std::string_view bytes, TimePoint arrival = {});

  // End of a segment: parses any last whole packet, discards a partial one (counted as
  // skipped) and completes the pending PES. Program tables and timestamp unwrapping persist.
  void flush();

  // True once a PMT announced an H.264 stream (stream_type 0x1B).
  bool has_video_stream() const { return video_pid_ >= 0; }
  // PID of the H.264 stream, or -1.
  int video_pid() const { return video_pid_; }
  const TsDemuxerStats& stats() const { return stats_; }

 private:
  struct Section {
    std::string bytes;    // PSI section assembled so far
    bool active = false;  // a section start was seen and more bytes are expected
    bool is_pmt = false;  // which table this PID carries: PAT (false) or PMT
  };

  // Bytes [previous mark's end, end) of a parse buffer arrived at `arrival`.
  struct ArrivalMark {
    std::size_t end = 0;  // bytes, offset in the buffer just after this run of bytes
    TimePoint arrival;    // steady-clock time the run was pushed
  };

  std::size_t parse(std::string_view data, bool at_end, const std::vector<ArrivalMark>& marks);
  void mark_pending(TimePoint arrival);
  void consume_pending(std::size_t used);
  void skip_bytes(std::size_t count);
  void parse_packet(const std::uint8_t* packet);
  void on_psi_payload(Section& section, bool unit_start, const std::uint8_t* payload,
                      std::size_t size);
  void drain_sections(Section& section);
  void on_pat(std::string_view section);
  void on_pmt(std::string_view section);
  void on_video_payload(bool unit_start, const std::uint8_t* payload, std::size_t size);
  void complete_pes();
  std::int64_t unwrap_pts(std::int64_t raw33);

  FrameCallback on_frame_;                 // receives every completed frame
  TsDemuxerStats stats_;                   // counters, see TsDemuxerStats
  std::string pending_;                    // unparsed bytes, fewer than 3 packets
  bool in_sync_ = true;                    // false while skipping bytes after a sync loss
  int pmt_pid_ = -1;                       // PID of the PMT named by the PAT, -1 before the PAT
  int video_pid_ = -1;                     // PID of the H.264 elementary stream, -1 when none
  std::array<std::int8_t, 8192> last_cc_;  // per PID: last continuity counter, -1 = unseen
  Section pat_{.is_pmt = false};           // PAT being assembled (PID 0)
  Section pmt_{.is_pmt = true};            // PMT being assembled (pmt_pid_)
  std::string pes_;                        // PES packet being assembled (header + payload), bytes
  bool pes_active_ = false;                // pes_ holds the start of a PES
  std::size_t pes_expected_ = 0;   // total PES size in bytes from PES_packet_length; 0 = open
  bool pes_length_read_ = false;   // PES_packet_length of the current PES was read
  bool pts_seen_ = false;          // a PTS was unwrapped before
  std::int64_t last_pts_raw_ = 0;  // last PTS as read, 90 kHz ticks modulo 2^33
  std::int64_t last_pts_ = 0;      // last PTS unwrapped, 90 kHz ticks

  // Arrival times (METRICS.md "Frame timing").
  std::vector<ArrivalMark> pending_marks_;  // when pending_'s bytes arrived, in order
  std::vector<ArrivalMark> push_marks_;     // one mark covering the caller's buffer
  TimePoint packet_arrival_;                // arrival of the packet being parsed
  TimePoint pes_arrival_;                   // arrival of the packet that started pes_
};

}  // namespace naap::media
