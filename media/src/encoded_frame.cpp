// Annex B scanning shared by the demuxer and the encoder.
#include "naap/media/encoded_frame.hpp"

#include <cstdint>

namespace naap::media {

bool contains_idr(std::string_view annexb) {
  const auto* d = reinterpret_cast<const std::uint8_t*>(annexb.data());
  const std::size_t n = annexb.size();
  std::size_t i = 0;
  while (i + 3 < n) {
    if (d[i + 2] > 1) {  // no start code can end at i+2: skip ahead
      i += 3;
      continue;
    }
    if (d[i] == 0 && d[i + 1] == 0 && d[i + 2] == 1) {
      const int type = d[i + 3] & 0x1F;
      if (type == 5) return true;
      if (type == 1) return false;
      i += 3;
      continue;
    }
    ++i;
  }
  return false;
}

}  // namespace naap::media
