// Discovery sources: go-livepeer's webhook list parsed strictly (an HTML error page, a JSON
// object or a bad address is a clear error naming the source, never an empty success),
// addresses normalised to HOST:PORT, and the webhook fetched over real HTTP on loopback.
#include "naap/transport/discovery.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include "test_support.hpp"

namespace naap::orch {
namespace {

TEST(Discovery, addresses_are_normalised_to_host_port) {
  EXPECT_EQ(*normalize_orchestrator_address("https://orch.example:8935/"), "orch.example:8935");
  EXPECT_EQ(*normalize_orchestrator_address("https://orch.example"), "orch.example:8935")
      << "go-livepeer's default service port";
  EXPECT_EQ(*normalize_orchestrator_address("10.0.0.5:9000"), "10.0.0.5:9000");
  EXPECT_EQ(*normalize_orchestrator_address("[2001:db8::5]:8935"), "[2001:db8::5]:8935");
  auto bad = normalize_orchestrator_address("not an address");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().describe().find("not an address"), std::string::npos);
}

TEST(Discovery, a_list_is_parsed_with_scores_and_repeats_dropped) {
  auto list = parse_discovery_list(
      R"([{"address":"https://a.example:8935","score":0.9},{"address":"b.example:8935"},
          {"address":"https://a.example:8935/","score":0.1}])",
      "application/json", "webhook");
  ASSERT_TRUE(list) << list.error().describe();
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].address, "a.example:8935");
  EXPECT_DOUBLE_EQ(*(*list)[0].score, 0.9);
  EXPECT_FALSE((*list)[1].score);
  EXPECT_EQ((*list)[1].source, "webhook");
  EXPECT_TRUE(parse_discovery_list("[]", "application/json", "webhook")->empty());
}

TEST(Discovery, bad_bodies_are_errors_naming_the_source_and_what_came_back) {
  struct Case {
    std::string body;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"<html><body>502 Bad Gateway</body></html>", "got HTML"},
      {R"({"orchestrators": []})", "got a JSON object"},
      {R"([{"url": "https://a:8935"}])", "entry 0 has no string 'address'"},
      {R"([{"address": "https://a:8935", "score": "high"}])", "'score' is not a number"},
      {R"([{"address": "a:99999"}])", "entry 0"},
      {"plain text", "not JSON"},
  };
  for (const auto& c : cases) {
    auto r = parse_discovery_list(c.body, "text/html", "discovery webhook https://d.example");
    ASSERT_FALSE(r) << c.body;
    const std::string text = r.error().describe();
    EXPECT_NE(text.find(c.expected), std::string::npos) << text;
    EXPECT_NE(text.find("discovery webhook https://d.example"), std::string::npos) << text;
    EXPECT_EQ(r.error().category, ErrorCategory::protocol);
  }
}

TEST(Discovery, the_webhook_is_fetched_over_http_and_html_or_errors_are_reported) {
  trickle::ServerOptions options;
  options.app_handler = [](const trickle::AppRequest& r) {
    trickle::AppResponse out;
    if (r.path() == "/list") {
      out.content_type = "application/json";
      out.body = R"([{"address":"https://o1.example:8935","score":1},{"address":"o2.example:9"}])";
    } else if (r.path() == "/html") {
      out.content_type = "text/html";
      out.body = "<!doctype html><title>Login</title>";
    } else {
      out.status = 500;
      out.body = "database down";
    }
    return out;
  };
  test::ServerThread server(options);
  const std::string base = server.channel_url("");
  const std::string root = base.substr(0, base.find("/ai/trickle/"));
  boost::asio::io_context io;
  http::Engine engine(io);
  auto fetch = [&](const std::string& path) {
    std::optional<Result<std::vector<DiscoveredAddress>>> got;
    fetch_webhook(engine, root + path, std::chrono::seconds(5),
                  [&](Result<std::vector<DiscoveredAddress>> r) { got = std::move(r); });
    EXPECT_TRUE(test::run_until(io, [&] { return got.has_value(); }));
    return std::move(*got);
  };
  auto list = fetch("/list");
  ASSERT_TRUE(list) << list.error().describe();
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[1].address, "o2.example:9");
  auto html = fetch("/html");
  ASSERT_FALSE(html);
  EXPECT_NE(html.error().describe().find("got HTML"), std::string::npos);
  EXPECT_NE(html.error().describe().find("text/html"), std::string::npos);
  auto failing = fetch("/broken");
  ASSERT_FALSE(failing);
  EXPECT_NE(failing.error().describe().find("HTTP 500"), std::string::npos);
  EXPECT_NE(failing.error().describe().find("database down"), std::string::npos);
  // Nobody listening: a network error naming the URL.
  std::optional<Result<std::vector<DiscoveredAddress>>> closed;
  fetch_webhook(engine, "http://127.0.0.1:1/list", std::chrono::seconds(5),
                [&](Result<std::vector<DiscoveredAddress>> r) { closed = std::move(r); });
  ASSERT_TRUE(test::run_until(io, [&] { return closed.has_value(); }));
  ASSERT_FALSE(*closed);
  EXPECT_NE(closed->error().describe().find("127.0.0.1:1"), std::string::npos);
}

}  // namespace
}  // namespace naap::orch
