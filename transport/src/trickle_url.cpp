// Trickle URL validation and strict seq parsing.
#include "naap/transport/trickle_url.hpp"

#include <curl/curl.h>

#include <charconv>

namespace naap::trickle {

Result<std::string> validate_channel_url(std::string_view url) {
  std::string s(url);
  CURLU* h = curl_url();
  CURLUcode rc = curl_url_set(h, CURLUPART_URL, s.c_str(), 0);
  std::string scheme, path, query, fragment;
  auto get = [&](CURLUPart part, std::string& out) {
    char* v = nullptr;
    if (curl_url_get(h, part, &v, 0) == CURLUE_OK && v != nullptr) {
      out = v;
      curl_free(v);
    }
  };
  if (rc == CURLUE_OK) {
    get(CURLUPART_SCHEME, scheme);
    get(CURLUPART_PATH, path);
    get(CURLUPART_QUERY, query);
    get(CURLUPART_FRAGMENT, fragment);
  }
  curl_url_cleanup(h);
  if (rc != CURLUE_OK) {
    return fail(Error(ErrorCategory::config,
                      std::string("malformed trickle channel URL: ") + curl_url_strerror(rc))
                    .with("url", s));
  }
  if (scheme != "http" && scheme != "https") {
    return fail(
        Error(ErrorCategory::config, "trickle channel URL must be http or https").with("url", s));
  }
  if (path.size() <= 1 || path.back() == '/') {
    return fail(Error(ErrorCategory::config,
                      "trickle channel URL must end with the channel name, without a trailing '/'")
                    .with("url", s));
  }
  if (!query.empty() || !fragment.empty()) {
    return fail(
        Error(ErrorCategory::config, "trickle channel URL must not have a query or fragment")
            .with("url", s));
  }
  return s;
}

std::string segment_url(std::string_view channel, std::int64_t seq) {
  std::string out(channel);
  out += '/';
  out += std::to_string(seq);
  return out;
}

Result<std::int64_t> parse_seq(std::string_view text) {
  std::int64_t value = 0;
  const char* begin = text.data();
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(begin, end, value);
  if (text.empty() || ec != std::errc{} || ptr != end) {
    return fail(Error(ErrorCategory::protocol, "not an integer sequence number")
                    .with("value", std::string(text.substr(0, 64))));
  }
  return value;
}

}  // namespace naap::trickle
