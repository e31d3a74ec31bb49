// Push-based MPEG-TS demuxer: packet alignment with look-ahead confirmation, PAT/PMT with CRC
// checks, PES assembly for the H.264 PID, 33-bit timestamp unwrapping, per-packet arrival times.
#include "naap/media/ts_demuxer.hpp"

#include <algorithm>
#include <cstring>
#include <utility>

namespace naap::media {
namespace {

constexpr std::size_t k_packet_size = 188;
constexpr std::uint8_t k_sync = 0x47;
constexpr int k_null_pid = 0x1FFF;
constexpr std::uint8_t k_stream_type_h264 = 0x1B;
constexpr std::int64_t k_wrap = std::int64_t{1} << 33;  // 33-bit PTS/DTS modulus, 90 kHz ticks

// MPEG-2 CRC-32 (poly 0x04C11DB7, MSB first, no final xor): over a whole section it is 0.
struct CrcTable {
  std::array<std::uint32_t, 256> v{};
  constexpr CrcTable() {
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t c = i << 24;
      for (int k = 0; k < 8; ++k) c = (c & 0x80000000U) ? (c << 1) ^ 0x04C11DB7U : c << 1;
      v[i] = c;
    }
  }
};
constexpr CrcTable k_crc_table;

std::uint32_t crc32_mpeg(std::string_view data) {
  std::uint32_t crc = 0xFFFFFFFFU;
  for (const char ch : data) {
    crc = (crc << 8) ^ k_crc_table.v[((crc >> 24) ^ static_cast<std::uint8_t>(ch)) & 0xFF];
  }
  return crc;
}

std::uint8_t byte_at(std::string_view s, std::size_t i) {
  return static_cast<std::uint8_t>(s[i]);
}

std::int64_t read_timestamp(const std::uint8_t* p) {
  return (static_cast<std::int64_t>((p[0] >> 1) & 0x07) << 30) |
         (static_cast<std::int64_t>(p[1]) << 22) | (static_cast<std::int64_t>(p[2] >> 1) << 15) |
         (static_cast<std::int64_t>(p[3]) << 7) | static_cast<std::int64_t>(p[4] >> 1);
}

// A difference of two 33-bit timestamps as the shortest signed step.
std::int64_t signed_step(std::int64_t delta) {
  delta &= k_wrap - 1;
  return delta >= k_wrap / 2 ? delta - k_wrap : delta;
}

}  // namespace

TsDemuxer::TsDemuxer(FrameCallback on_frame) : on_frame_(std::move(on_frame)) {
  last_cc_.fill(-1);
}

void TsDemuxer::push(std::string_view bytes, TimePoint arrival) {
  while (!bytes.empty()) {
    if (pending_.empty()) {
      push_marks_.assign(1, ArrivalMark{.end = bytes.size(), .arrival = arrival});
      const std::size_t used = parse(bytes, false, push_marks_);
      pending_.assign(bytes.substr(used));
      pending_marks_.clear();
      if (!pending_.empty()) mark_pending(arrival);
      return;
    }
    // Complete the pending packet with a little of the new data, then go back to parsing the
    // caller's buffer in place: large chunks are never copied.
    const std::size_t old = pending_.size();
    const std::size_t take = std::min(bytes.size(), 2 * k_packet_size);
    pending_.append(bytes.substr(0, take));
    mark_pending(arrival);
    const std::size_t used = parse(pending_, false, pending_marks_);
    if (used >= old) {
      pending_.clear();
      pending_marks_.clear();
      bytes.remove_prefix(used - old);
    } else {
      pending_.erase(0, used);
      consume_pending(used);
      bytes.remove_prefix(take);
    }
  }
}

void TsDemuxer::flush() {
  const std::size_t used = parse(pending_, true, pending_marks_);
  if (used < pending_.size()) skip_bytes(pending_.size() - used);
  pending_.clear();
  pending_marks_.clear();
  in_sync_ = true;
  complete_pes();
}

// pending_ just grew to its current size with bytes that arrived at `arrival`.
void TsDemuxer::mark_pending(TimePoint arrival) {
  if (!pending_marks_.empty() && pending_marks_.back().arrival == arrival) {
    pending_marks_.back().end = pending_.size();
  } else {
    pending_marks_.push_back(ArrivalMark{.end = pending_.size(), .arrival = arrival});
  }
}

// The first `used` bytes of pending_ were parsed and erased.
void TsDemuxer::consume_pending(std::size_t used) {
  std::size_t kept = 0;
  for (const ArrivalMark& mark : pending_marks_) {
    if (mark.end > used) pending_marks_[kept++] = {.end = mark.end - used, .arrival = mark.arrival};
  }
  pending_marks_.resize(kept);
}

void TsDemuxer::skip_bytes(std::size_t count) {
  if (in_sync_) ++stats_.sync_losses;
  in_sync_ = false;
  stats_.bytes_skipped += count;
}

// Alignment rules. While re-acquiring alignment, a 0x47 counts as a packet start only when the
// byte 188 further is 0x47 too. While aligned, a packet is parsed at once, unless the next
// packet does not start where expected: then, if a confirmed packet start lies inside this
// packet, this one was cut short (a truncated segment followed by a fresh one) and is skipped;
// otherwise it is whole and garbage follows it.
std::size_t TsDemuxer::parse(std::string_view data, bool at_end,
                             const std::vector<ArrivalMark>& marks) {
  const auto* p = reinterpret_cast<const std::uint8_t*>(data.data());
  const std::size_t n = data.size();
  std::size_t pos = 0;
  std::size_t mark = 0;  // index of the mark covering the packet being parsed
  while (n - pos >= k_packet_size) {
    if (p[pos] != k_sync) {
      const void* next = std::memchr(p + pos, k_sync, n - pos);
      const std::size_t to =
          next == nullptr ? n
                          : static_cast<std::size_t>(static_cast<const std::uint8_t*>(next) - p);
      skip_bytes(to - pos);
      pos = to;
      continue;
    }
    if (n - pos == k_packet_size) {
      if (!in_sync_ && !at_end) break;  // wait for the byte that confirms it
    } else if (p[pos + k_packet_size] != k_sync) {
      if (!in_sync_) {
        skip_bytes(1);
        ++pos;
        continue;
      }
      if (n - pos <= 2 * k_packet_size && !at_end) break;  // need the whole window to decide
      std::size_t restart = 0;
      for (std::size_t k = 1; k < k_packet_size && pos + k + k_packet_size < n; ++k) {
        if (p[pos + k] == k_sync && p[pos + k + k_packet_size] == k_sync) {
          restart = k;
          break;
        }
      }
      if (restart != 0) {
        skip_bytes(restart);
        pos += restart;
        continue;
      }
    }
    in_sync_ = true;
    // A packet arrived with the push that delivered its last byte.
    while (mark + 1 < marks.size() && marks[mark].end < pos + k_packet_size) ++mark;
    packet_arrival_ = mark < marks.size() ? marks[mark].arrival : TimePoint{};
    parse_packet(p + pos);
    pos += k_packet_size;
  }
  return pos;
}

void TsDemuxer::parse_packet(const std::uint8_t* packet) {
  ++stats_.packets;
  if ((packet[1] & 0x80) != 0) {
    ++stats_.transport_errors;
    return;
  }
  const bool unit_start = (packet[1] & 0x40) != 0;
  const int pid = ((packet[1] & 0x1F) << 8) | packet[2];
  const int adaptation = (packet[3] >> 4) & 0x3;
  const int cc = packet[3] & 0x0F;
  if (pid == k_null_pid || adaptation == 0) return;

  std::size_t offset = 4;
  bool discontinuity = false;
  if ((adaptation & 0x2) != 0) {
    const std::size_t length = packet[4];
    offset = 5 + length;
    if (offset > k_packet_size) return;  // corrupt adaptation field: nothing usable
    discontinuity = length > 0 && (packet[5] & 0x80) != 0;
  }
  if ((adaptation & 0x1) == 0) return;

  // Segments made by separate muxers restart their counters: count, never act on it.
  std::int8_t& last = last_cc_[static_cast<std::size_t>(pid)];
  if (last >= 0 && !discontinuity && cc != ((last + 1) & 0x0F)) ++stats_.continuity_errors;
  last = static_cast<std::int8_t>(cc);

  if (offset >= k_packet_size) return;
  const std::uint8_t* payload = packet + offset;
  const std::size_t size = k_packet_size - offset;
  if (pid == 0) {
    on_psi_payload(pat_, unit_start, payload, size);
  } else if (pid == pmt_pid_) {
    on_psi_payload(pmt_, unit_start, payload, size);
  } else if (pid == video_pid_) {
    on_video_payload(unit_start, payload, size);
  }
}

void TsDemuxer::on_psi_payload(Section& section, bool unit_start, const std::uint8_t* payload,
                               std::size_t size) {
  const char* bytes = reinterpret_cast<const char*>(payload);
  if (!unit_start) {
    if (!section.active) return;
    section.bytes.append(bytes, size);
    drain_sections(section);
    return;
  }
  const std::size_t pointer = payload[0];
  if (1 + pointer > size) {
    ++stats_.tables_rejected;
    section.active = false;
    return;
  }
  if (section.active) {  // the bytes before the pointer end the previous section
    section.bytes.append(bytes + 1, pointer);
    drain_sections(section);
  }
  section.bytes.assign(bytes + 1 + pointer, size - 1 - pointer);
  section.active = true;
  drain_sections(section);
}

void TsDemuxer::drain_sections(Section& section) {
  while (section.active && section.bytes.size() >= 3) {
    if (byte_at(section.bytes, 0) == 0xFF) {  // stuffing: no more sections in this packet
      section.active = false;
      section.bytes.clear();
      return;
    }
    const std::size_t length = (static_cast<std::size_t>(byte_at(section.bytes, 1) & 0x0F) << 8) |
                               byte_at(section.bytes, 2);
    if (length > 1021) {
      ++stats_.tables_rejected;
      section.active = false;
      return;
    }
    const std::size_t total = 3 + length;
    if (section.bytes.size() < total) return;  // more packets to come
    const std::string_view whole(section.bytes.data(), total);
    if (length < 9 || crc32_mpeg(whole) != 0) {
      ++stats_.tables_rejected;
    } else if (section.is_pmt) {
      on_pmt(whole);
    } else {
      on_pat(whole);
    }
    section.bytes.erase(0, total);
  }
}

void TsDemuxer::on_pat(std::string_view s) {
  if (byte_at(s, 0) != 0x00 || (byte_at(s, 5) & 0x01) == 0) return;  // not a current PAT
  for (std::size_t i = 8; i + 4 <= s.size() - 4; i += 4) {
    const int program = (byte_at(s, i) << 8) | byte_at(s, i + 1);
    const int pid = ((byte_at(s, i + 2) & 0x1F) << 8) | byte_at(s, i + 3);
    if (program == 0) continue;  // network PID
    if (pid != pmt_pid_) {
      pmt_pid_ = pid;
      pmt_ = Section{.is_pmt = true};
    }
    return;
  }
}

void TsDemuxer::on_pmt(std::string_view s) {
  if (byte_at(s, 0) != 0x02 || (byte_at(s, 5) & 0x01) == 0 || s.size() < 16) return;
  const std::size_t end = s.size() - 4;  // CRC
  const std::size_t info = ((byte_at(s, 10) & 0x0F) << 8) | byte_at(s, 11);
  int found = -1;
  for (std::size_t i = 12 + info; i + 5 <= end;) {
    const std::uint8_t type = byte_at(s, i);
    const int pid = ((byte_at(s, i + 1) & 0x1F) << 8) | byte_at(s, i + 2);
    const std::size_t es_info = ((byte_at(s, i + 3) & 0x0F) << 8) | byte_at(s, i + 4);
    if (type == k_stream_type_h264) {
      found = pid;
      break;
    }
    i += 5 + es_info;
  }
  if (found != video_pid_) {
    complete_pes();
    video_pid_ = found;
  }
}

void TsDemuxer::on_video_payload(bool unit_start, const std::uint8_t* payload, std::size_t size) {
  const char* bytes = reinterpret_cast<const char*>(payload);
  if (unit_start) {
    complete_pes();
    pes_.assign(bytes, size);
    pes_arrival_ = packet_arrival_;
    pes_active_ = true;
    pes_expected_ = 0;
    pes_length_read_ = false;
  } else {
    if (!pes_active_) return;  // joined in the middle of a PES: no header to attach it to
    pes_.append(bytes, size);
  }
  if (!pes_length_read_ && pes_.size() >= 6) {
    pes_length_read_ = true;
    const std::size_t length = (static_cast<std::size_t>(byte_at(pes_, 4)) << 8) | byte_at(pes_, 5);
    if (length != 0) pes_expected_ = 6 + length;
  }
  if (pes_expected_ != 0 && pes_.size() >= pes_expected_) complete_pes();
}

void TsDemuxer::complete_pes() {
  if (!pes_active_) return;
  pes_active_ = false;
  const auto* b = reinterpret_cast<const std::uint8_t*>(pes_.data());
  std::size_t end = pes_.size();
  const bool header_ok = end >= 9 && b[0] == 0 && b[1] == 0 && b[2] == 1 && (b[6] & 0xC0) == 0x80;
  const int flags = header_ok ? b[7] >> 6 : 0;
  const std::size_t header_length = header_ok ? b[8] : 0;
  const std::size_t start = 9 + header_length;
  if (pes_expected_ != 0) {
    if (end < pes_expected_) end = 0;  // truncated: its length says more was coming
    end = std::min(end, pes_expected_);
  }
  if (!header_ok || (flags & 0x2) == 0 || header_length < (flags == 3 ? 10U : 5U) || start >= end) {
    ++stats_.pes_dropped;
    return;
  }
  const std::int64_t pts_raw = read_timestamp(b + 9);
  const std::int64_t dts_raw = flags == 3 ? read_timestamp(b + 14) : pts_raw;
  EncodedFrame frame;
  frame.pts = unwrap_pts(pts_raw);
  frame.dts = frame.pts + signed_step(dts_raw - pts_raw);
  frame.data.assign(pes_.data() + start, end - start);
  frame.keyframe = contains_idr(frame.data);
  frame.arrival = pes_arrival_;
  ++stats_.pes_emitted;
  if (on_frame_) on_frame_(std::move(frame));
}

std::int64_t TsDemuxer::unwrap_pts(std::int64_t raw33) {
  if (!pts_seen_) {
    pts_seen_ = true;
    last_pts_raw_ = raw33;
    last_pts_ = raw33;
    return raw33;
  }
  last_pts_ += signed_step(raw33 - last_pts_raw_);
  last_pts_raw_ = raw33;
  return last_pts_;
}

}  // namespace naap::media
