// Loading the daemon's YAML configuration: environment overrides are grafted onto the parsed
// tree, then one validation pass records every problem with its position (or the variable that
// caused it) instead of stopping at the first.
#include "naap/scheduler/config.hpp"

#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <tuple>
#include <utility>

#include "naap/core/key_path.hpp"
#include "naap/core/sha256.hpp"

extern char** environ;  // NOLINT: POSIX, declared by no standard header

namespace naap::scheduler {
namespace {

using YAML::Mark;
using YAML::Node;
using json = nlohmann::json;
using Kind = reports::ResultsOptions::SinkKind;

constexpr milliseconds k_ms{1};
constexpr milliseconds k_second{1'000};
constexpr milliseconds k_minute{60'000};
constexpr milliseconds k_hour{3'600'000};
constexpr milliseconds k_day{24 * 3'600'000};
constexpr double k_max_spool_mb = 1024.0 * 1024.0;  // 1 TiB: beyond is a typo, not a plan
constexpr std::string_view k_default_topic = "naap_synthetic_events";

// ---------------------------------------------------------------------------------------------
// Small text helpers.

// A value as it appears in a message: quoted, control characters escaped, long ones cut.
std::string in_quotes(std::string_view text) {
  std::string out = "\"";
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (i == 60) {
      out += "...";
      break;
    }
    const char c = text[i];
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += c == '\n' ? "\\n" : c == '\t' ? "\\t" : "?";
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string list_of(std::initializer_list<std::string_view> names) {
  std::string out;
  for (auto name : names) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

// Optimal string alignment distance: insertions, deletions, substitutions and adjacent
// transpositions ("concurent" → "concurrent" is 1, "peroid" → "period" is 1).
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.size()][b.size()];
}

// The closest candidate within 2 edits (the first of equals), or empty.
std::string_view closest(std::string_view word,
                         std::initializer_list<std::string_view> candidates) {
  std::string_view best;
  std::size_t best_distance = 3;
  for (auto candidate : candidates) {
    const std::size_t distance = edit_distance(word, candidate);
    if (distance < best_distance) {
      best = candidate;
      best_distance = distance;
    }
  }
  return best;
}

// What a node holds, for "expected X, got Y".
std::string describe_node(const Node& node) {
  if (!node.IsDefined() || node.IsNull()) return "nothing";
  if (node.IsScalar()) return in_quotes(node.Scalar());
  if (node.IsSequence()) return "a list";
  return "a mapping";
}

std::string lowercase(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) {
    return static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  });
  return out;
}

bool all_digits(std::string_view text) {
  return !text.empty() &&
         std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string check_http_url(std::string_view url) {
  std::string_view rest;
  if (url.starts_with("http://")) {
    rest = url.substr(7);
  } else if (url.starts_with("https://")) {
    rest = url.substr(8);
  } else {
    return "must start with http:// or https://";
  }
  if (std::any_of(url.begin(), url.end(),
                  [](char c) { return static_cast<unsigned char>(c) <= ' '; })) {
    return "contains spaces or control characters";
  }
  const std::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
  // Drop "user:password@" (npos + 1 == 0 keeps the whole authority when there is none).
  const std::string_view host_port = authority.substr(authority.find('@') + 1);
  if (host_port.empty()) return "has no host";
  // The port is optional in a URL; when present it must be valid.
  const bool bracketed = host_port.front() == '[';
  const auto colon = host_port.rfind(':');
  const bool has_port =
      colon != std::string_view::npos && (!bracketed || (colon > 0 && host_port[colon - 1] == ']'));
  if (!has_port) {
    if (bracketed && host_port.back() != ']') return "has an unclosed '[' in the host";
    return "";
  }
  const std::string why = check_host_port(host_port);
  return why.empty() ? "" : "has a bad host or port (" + why + ")";
}

std::string host_name() {
  char buffer[256] = {};
  if (::gethostname(buffer, sizeof(buffer) - 1) != 0 || buffer[0] == '\0') return "naap-loadtest";
  return buffer;
}

std::string level_name(log::Level level) {
  switch (level) {
    case log::Level::debug:
      return "debug";
    case log::Level::info:
      return "info";
    case log::Level::warn:
      return "warn";
    case log::Level::error:
      return "error";
    case log::Level::off:
      return "off";
  }
  return "info";
}

std::string_view sink_name(Kind kind) {
  switch (kind) {
    case Kind::jsonl:
      return "jsonl";
    case Kind::stdout_lines:
      return "stdout";
    case Kind::kafka:
      return "kafka";
    case Kind::none:
      return "none";
  }
  return "none";
}

// ---------------------------------------------------------------------------------------------
// Problem collection.

// A NAAP_CONFIG__* variable: where it lands in the tree and what it puts there.
struct Override {
  std::string variable;               // e.g. NAAP_CONFIG__SINKS__KAFKA__BROKERS
  std::vector<std::string> segments;  // lower-cased keys; all digits = a list index
  std::string path;                   // display form, e.g. "tests[0].duration"
  Node value;                         // the variable's value parsed as YAML
};

class Checker {
 public:
  explicit Checker(std::string file) : file_(std::move(file)) {}

  // Problems under an overridden path are reported against the variable, not the file.
  void attribute(std::string path, std::string variable) {
    overridden_.emplace_back(std::move(path), std::move(variable));
  }

  void report(const std::string& key, const Mark& mark, std::string message) {
    ConfigProblem problem;
    problem.key = key;
    problem.message = std::move(message);
    if (auto variable = variable_for(key)) {
      problem.file = *variable;
    } else {
      problem.file = file_;
      if (!mark.is_null()) {
        problem.line = mark.line + 1;
        problem.column = mark.column + 1;
      }
    }
    problems_.push_back(std::move(problem));
  }
  void report(const std::string& key, std::string message) {
    report(key, Mark::null_mark(), std::move(message));
  }
  // A problem with a variable itself (its name, its YAML), before it reaches the tree.
  void report_variable(const std::string& variable, const std::string& key, std::string message) {
    problems_.push_back(ConfigProblem{variable, 0, 0, key, std::move(message)});
  }

  bool ok() const { return problems_.empty(); }
  const std::string& file() const { return file_; }

  // File problems by position, then those without one, then those of variables.
  std::vector<ConfigProblem> take() {
    std::stable_sort(problems_.begin(), problems_.end(),
                     [&](const ConfigProblem& a, const ConfigProblem& b) {
                       auto rank = [&](const ConfigProblem& p) {
                         return std::tuple(p.file != file_, p.line == 0, p.line, p.column);
                       };
                       return rank(a) < rank(b);
                     });
    return std::move(problems_);
  }

 private:
  // The variable with the longest path that covers `key` (the key itself or an ancestor).
  std::optional<std::string> variable_for(std::string_view key) const {
    std::optional<std::string> best;
    std::size_t best_length = 0;
    for (const auto& [path, variable] : overridden_) {
      const bool covers = key == path || (key.starts_with(path) && key.size() > path.size() &&
                                          (key[path.size()] == '.' || key[path.size()] == '['));
      if (covers && (!best || path.size() >= best_length)) {
        best = variable;
        best_length = path.size();
      }
    }
    return best;
  }

  std::string file_;
  std::vector<std::pair<std::string, std::string>> overridden_;  // path → variable
  std::vector<ConfigProblem> problems_;
};

// ---------------------------------------------------------------------------------------------
// Environment overrides.

std::vector<Override> read_overrides(const Env& env, Checker& checker) {
  std::vector<Override> out;
  for (const auto& [name, value] : env) {
    if (!name.starts_with(k_override_prefix)) continue;
    Override o;
    o.variable = name;
    std::string_view rest = std::string_view(name).substr(k_override_prefix.size());
    bool well_formed = !rest.empty();
    while (well_formed) {
      const auto separator = rest.find("__");
      const std::string_view segment = rest.substr(0, separator);
      if (segment.empty() || (all_digits(segment) && segment.size() > 6)) {
        well_formed = false;
        break;
      }
      o.segments.push_back(lowercase(segment));
      o.path = all_digits(segment) ? index_key(o.path, std::stoul(std::string(segment)))
                                   : join_key(o.path, o.segments.back());
      if (separator == std::string_view::npos) break;
      rest = rest.substr(separator + 2);
    }
    if (!well_formed || all_digits(o.segments.front())) {
      checker.report_variable(name, "",
                              "not a configuration key: use NAAP_CONFIG__KEY or "
                              "NAAP_CONFIG__SECTION__KEY (levels separated by __, e.g. "
                              "NAAP_CONFIG__ROUND__PERIOD)");
      continue;
    }
    if (value.empty()) {
      // An empty value is the empty string (e.g. to switch ops.listen off), not YAML's null.
      o.value = Node(std::string());
    } else {
      try {
        o.value = YAML::Load(value);
      } catch (const YAML::Exception& e) {
        checker.report_variable(name, o.path, "not a valid YAML value: " + e.msg);
        continue;
      }
    }
    out.push_back(std::move(o));
  }
  return out;
}

// Puts the override's value at its path, creating missing mappings on the way. yaml-cpp nodes
// are references: `reset` moves a handle, `=` writes through it into the tree.
void graft(Node root, const Override& o, Checker& checker) {
  Node current;
  current.reset(root);
  std::string walked;
  for (std::size_t i = 0; i < o.segments.size(); ++i) {
    const std::string& segment = o.segments[i];
    const bool last = i + 1 == o.segments.size();
    if (all_digits(segment)) {
      const std::size_t index = std::stoul(segment);
      if (!current.IsSequence()) {
        checker.report_variable(o.variable, o.path,
                                walked + " is not a list, so it has no entry [" + segment + "]");
        return;
      }
      if (index >= current.size()) {
        checker.report_variable(o.variable, o.path,
                                walked + " has " + std::to_string(current.size()) +
                                    " entries: there is no [" + segment + "]");
        return;
      }
      walked = index_key(walked, index);
      if (last) {
        current[index] = o.value;
        return;
      }
      Node next = current[index];
      current.reset(next);
      continue;
    }
    if (current.IsNull()) current = Node(YAML::NodeType::Map);
    if (!current.IsMap()) {
      checker.report_variable(o.variable, o.path,
                              walked + " is " + describe_node(current) +
                                  ", not a mapping, so it has no key " + segment);
      return;
    }
    walked = join_key(walked, segment);
    if (last) {
      current[segment] = o.value;
      return;
    }
    Node next = current[segment];
    if (!next.IsDefined()) {
      current[segment] = Node(YAML::NodeType::Map);
      next.reset(current[segment]);
    }
    current.reset(next);
  }
}

// ---------------------------------------------------------------------------------------------
// Typed reading of mappings.

struct Entry {
  Node key;    // the key node (its mark locates key problems)
  Node value;  // may be null
};

// One mapping of the file: checks its keys (unknown, duplicate, forbidden) and gives typed
// access to the values. Absent and null values read as "not given".
class Section {
 public:
  struct Forbidden {
    std::string_view key;      // a key that must not appear
    std::string_view message;  // why, and what to do instead
  };

  // `anchor` is where a missing required key is reported (the section's key in its parent).
  Section(Checker& checker, std::string path, const Node& node, Mark anchor,
          std::initializer_list<std::string_view> allowed,
          std::initializer_list<Forbidden> forbidden = {})
      : checker_(checker), path_(std::move(path)), anchor_(anchor) {
    if (!node.IsDefined() || node.IsNull()) return;
    if (!node.IsMap()) {
      checker_.report(path_, node.Mark(), "expected a mapping, got " + describe_node(node));
      return;
    }
    given_ = true;
    for (auto it = node.begin(); it != node.end(); ++it) {
      // yaml-cpp's operator-> hands out a temporary proxy: hold the nodes by value.
      const Node key = it->first;
      const Node value = it->second;
      if (!key.IsScalar()) {
        checker_.report(path_, key.Mark(), "keys must be plain names, got " + describe_node(key));
        continue;
      }
      const std::string name = key.Scalar();
      const std::string where = join_key(path_, name);
      if (auto first = entries_.find(name); first != entries_.end()) {
        checker_.report(where, key.Mark(),
                        "duplicate key (first at line " +
                            std::to_string(first->second.key.Mark().line + 1) + ")");
        continue;
      }
      auto banned = std::find_if(forbidden.begin(), forbidden.end(),
                                 [&](const Forbidden& f) { return f.key == name; });
      if (banned != forbidden.end()) {
        checker_.report(where, key.Mark(), std::string(banned->message));
        entries_.emplace(name, Entry{key, Node()});
        continue;
      }
      if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
        const auto suggestion = closest(name, allowed);
        checker_.report(where, key.Mark(),
                        suggestion.empty()
                            ? "unknown key (allowed here: " + list_of(allowed) + ")"
                            : "unknown key (did you mean " + std::string(suggestion) + "?)");
        entries_.emplace(name, Entry{key, Node()});
        continue;
      }
      entries_.emplace(name, Entry{key, value});
    }
  }

  Checker& checker() const { return checker_; }
  const std::string& path() const { return path_; }
  bool given() const { return given_; }
  std::string key_path(std::string_view key) const { return join_key(path_, key); }

  // The value of a key when given and not null.
  const Node* value(std::string_view key) const {
    auto it = entries_.find(key);
    if (it == entries_.end() || !it->second.value.IsDefined() || it->second.value.IsNull())
      return nullptr;
    return &it->second.value;
  }
  // Where the key is written, or this section's anchor when it is not.
  Mark key_mark(std::string_view key) const {
    auto it = entries_.find(key);
    return it == entries_.end() ? anchor_ : it->second.key.Mark();
  }

  void require(std::string_view key, std::string message = "required") const {
    checker_.report(key_path(key), key_mark(key), std::move(message));
  }

  // A nested mapping (absent: an empty section, nothing given).
  Section child(std::string_view key, std::initializer_list<std::string_view> allowed,
                std::initializer_list<Forbidden> forbidden = {}) const {
    const Node* node = value(key);
    return Section(checker_, key_path(key), node ? *node : Node(), key_mark(key), allowed,
                   forbidden);
  }

 private:
  Checker& checker_;
  std::string path_;
  Mark anchor_;
  bool given_ = false;
  std::map<std::string, Entry, std::less<>> entries_;
};

// The scalar text at `key`, or nullopt when absent/null or not a scalar (reported).
std::optional<std::string> scalar(const Section& s, std::string_view key,
                                  std::string_view expected) {
  const Node* node = s.value(key);
  if (!node) return std::nullopt;
  if (!node->IsScalar()) {
    s.checker().report(s.key_path(key), node->Mark(),
                       "expected " + std::string(expected) + ", got " + describe_node(*node));
    return std::nullopt;
  }
  return node->Scalar();
}

void report_value(const Section& s, std::string_view key, std::string message) {
  const Node* node = s.value(key);
  s.checker().report(s.key_path(key), node ? node->Mark() : s.key_mark(key), std::move(message));
}

// A string; `required` reports a missing one. Empty strings are refused unless allowed.
bool read_string(const Section& s, std::string_view key, std::string& out, bool required,
                 bool allow_empty = false) {
  auto text = scalar(s, key, "a string");
  if (!text) {
    if (required && !s.value(key)) s.require(key);
    return false;
  }
  if (text->empty() && !allow_empty) {
    report_value(s, key, "must not be empty");
    return false;
  }
  out = std::move(*text);
  return true;
}

void read_int(const Section& s, std::string_view key, int& out, int min, int max) {
  const std::string expected = "an integer " + std::to_string(min) + ".." + std::to_string(max);
  auto text = scalar(s, key, expected);
  if (!text) return;
  long long value = 0;
  const char* end = text->data() + text->size();
  const auto [ptr, ec] = std::from_chars(text->data(), end, value);
  if (ec != std::errc() || ptr != end || value < min || value > max) {
    report_value(s, key, "expected " + expected + ", got " + in_quotes(*text));
    return;
  }
  out = static_cast<int>(value);
}

// A duration in [min, max]; false (reported) when given but unusable.
bool read_duration(const Section& s, std::string_view key, milliseconds& out, milliseconds min,
                   milliseconds max) {
  auto text = scalar(s, key, "a duration (e.g. 90s)");
  if (!text) return false;
  auto parsed = parse_duration(*text);
  if (!parsed) {
    report_value(s, key, parsed.error().message);
    return false;
  }
  if (*parsed < milliseconds(0)) {
    report_value(s, key, "must not be negative, got " + *text);
    return false;
  }
  if (*parsed < min) {
    report_value(s, key, "must be at least " + format_duration(min) + ", got " + *text);
    return false;
  }
  if (*parsed > max) {
    report_value(s, key, "must be at most " + format_duration(max) + ", got " + *text);
    return false;
  }
  out = *parsed;
  return true;
}

void read_optional_duration(const Section& s, std::string_view key,
                            std::optional<milliseconds>& out, milliseconds min, milliseconds max) {
  milliseconds value{0};
  if (read_duration(s, key, value, min, max)) out = value;
}

// One of `allowed`; reports the value, the allowed ones and the nearest.
bool read_choice(const Section& s, std::string_view key, std::string& out,
                 std::initializer_list<std::string_view> allowed) {
  auto text = scalar(s, key, "one of " + list_of(allowed));
  if (!text) return false;
  if (std::find(allowed.begin(), allowed.end(), *text) == allowed.end()) {
    std::string message = "expected one of " + list_of(allowed) + "; got " + in_quotes(*text);
    const auto suggestion = closest(*text, allowed);
    if (!suggestion.empty()) message += " (did you mean " + std::string(suggestion) + "?)";
    report_value(s, key, std::move(message));
    return false;
  }
  out = std::move(*text);
  return true;
}

bool read_url(const Section& s, std::string_view key, std::string& out, bool required) {
  std::string text;
  if (!read_string(s, key, text, required)) return false;
  if (const std::string why = check_http_url(text); !why.empty()) {
    report_value(s, key, in_quotes(text) + " is not an http(s) URL: it " + why);
    return false;
  }
  out = std::move(text);
  return true;
}

// A list of HOST:PORT strings; each bad entry and each repeat is reported at its position.
void read_addresses(const Section& s, std::string_view key, std::vector<std::string>& out) {
  const Node* node = s.value(key);
  if (!node) return;
  const std::string path = s.key_path(key);
  if (!node->IsSequence()) {
    s.checker().report(path, node->Mark(),
                       "expected a list of HOST:PORT, got " + describe_node(*node));
    return;
  }
  std::set<std::string> seen;
  for (std::size_t i = 0; i < node->size(); ++i) {
    const Node item = (*node)[i];
    const std::string where = index_key(path, i);
    if (!item.IsScalar()) {
      s.checker().report(where, item.Mark(), "expected HOST:PORT, got " + describe_node(item));
      continue;
    }
    const std::string& text = item.Scalar();
    if (const std::string why = check_host_port(text); !why.empty()) {
      s.checker().report(where, item.Mark(), in_quotes(text) + " is not HOST:PORT (" + why + ")");
      continue;
    }
    if (!seen.insert(text).second) {
      s.checker().report(where, item.Mark(), in_quotes(text) + " is listed twice");
      continue;
    }
    out.push_back(text);
  }
}

// Kafka bootstrap servers: "h:p,h:p" or a list of "h:p"; stored comma-joined.
void read_brokers(const Section& s, std::string& out) {
  const Node* node = s.value("brokers");
  if (!node) {
    s.require("brokers", "required: the Kafka bootstrap servers, HOST:PORT[,HOST:PORT...]");
    return;
  }
  const std::string path = s.key_path("brokers");
  std::vector<std::pair<std::string, Node>> items;  // (text, where it is written)
  if (node->IsScalar()) {
    std::string_view rest = node->Scalar();
    while (true) {
      const auto comma = rest.find(',');
      std::string_view item = rest.substr(0, comma);
      while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
      while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
      items.emplace_back(std::string(item), *node);
      if (comma == std::string_view::npos) break;
      rest = rest.substr(comma + 1);
    }
  } else if (node->IsSequence()) {
    for (std::size_t i = 0; i < node->size(); ++i) {
      const Node item = (*node)[i];
      if (!item.IsScalar()) {
        s.checker().report(index_key(path, i), item.Mark(),
                           "expected HOST:PORT, got " + describe_node(item));
        return;
      }
      items.emplace_back(item.Scalar(), item);
    }
    if (items.empty()) {
      s.checker().report(path, node->Mark(), "must list at least one HOST:PORT");
      return;
    }
  } else {
    s.checker().report(path, node->Mark(),
                       "expected HOST:PORT[,HOST:PORT...] or a list, got a mapping");
    return;
  }
  std::string joined;
  bool ok = true;
  for (const auto& [text, at] : items) {
    if (const std::string why = check_host_port(text); !why.empty()) {
      s.checker().report(path, at.Mark(), in_quotes(text) + " is not HOST:PORT (" + why + ")");
      ok = false;
    }
    if (!joined.empty()) joined += ',';
    joined += text;
  }
  if (ok) out = joined;
}

// A relative path in `sinks:` lives in the state folder.
std::filesystem::path under_state_dir(const std::filesystem::path& state_dir,
                                      const std::string& path) {
  const std::filesystem::path p(path);
  return p.is_relative() ? state_dir / p : p;
}

// ---------------------------------------------------------------------------------------------
// The sections.

void read_discovery(const Section& top, Config& config) {
  if (!top.value("discovery")) {
    top.require("discovery",
                "required: at least one orchestrator source (static, webhook or "
                "signer)");
    return;
  }
  const Section d =
      top.child("discovery", {"refresh", "probe_timeout", "static", "webhook", "signer"});
  if (!d.given()) return;
  DiscoveryConfig& out = config.discovery;
  read_duration(d, "refresh", out.refresh, 10 * k_second, k_day);
  read_duration(d, "probe_timeout", out.probe_timeout, 100 * k_ms, k_minute);
  read_addresses(d, "static", out.static_addresses);
  const bool static_given = d.value("static") != nullptr;
  if (d.value("webhook")) {
    const Section w = d.child("webhook", {"url", "timeout"});
    if (w.given()) {
      WebhookDiscovery webhook;
      read_url(w, "url", webhook.url, true);
      read_duration(w, "timeout", webhook.timeout, 100 * k_ms, k_minute);
      out.webhook = webhook;
    }
  }
  if (d.value("signer")) {
    const Section g = d.child("signer", {"url"});
    if (g.given()) {
      SignerDiscovery signer;
      read_url(g, "url", signer.url, true);
      out.signer = signer;
    }
  }
  const bool static_empty =
      static_given && d.value("static")->IsSequence() && d.value("static")->size() == 0;
  if ((!static_given || static_empty) && !d.value("webhook") && !d.value("signer")) {
    top.checker().report("discovery", top.key_mark("discovery"),
                         static_empty ? "static is empty and there is no webhook or signer: "
                                        "no orchestrator would ever be tested"
                                      : "needs at least one source: static, webhook or signer");
  }
}

void read_tests(const Section& top, Config& config) {
  const Node* node = top.value("tests");
  if (!node) {
    top.require("tests", "required: a non-empty list of tests (pipeline, dataset, scenario...)");
    return;
  }
  if (!node->IsSequence()) {
    top.checker().report("tests", node->Mark(),
                         "expected a list of tests, got " + describe_node(*node));
    return;
  }
  if (node->size() == 0) {
    top.checker().report("tests", node->Mark(),
                         "must list at least one test: a round would run nothing");
    return;
  }
  for (std::size_t i = 0; i < node->size(); ++i) {
    const Node item = (*node)[i];
    const std::string path = index_key("tests", i);
    if (!item.IsMap()) {
      top.checker().report(
          path, item.Mark(),
          "expected a mapping (pipeline, dataset, scenario, ...), got " + describe_node(item));
      continue;
    }
    const Section t(
        top.checker(), path, item, item.Mark(),
        {"pipeline", "dataset", "scenario", "duration", "prompt_interval", "include", "exclude"});
    TestSpec spec;
    read_string(t, "pipeline", spec.pipeline, true);
    read_string(t, "dataset", spec.dataset, false);
    read_string(t, "scenario", spec.scenario, false);
    read_optional_duration(t, "duration", spec.duration, k_second, k_day);
    read_optional_duration(t, "prompt_interval", spec.prompt_interval, milliseconds(0), k_day);
    read_addresses(t, "include", spec.include);
    read_addresses(t, "exclude", spec.exclude);
    config.tests.push_back(std::move(spec));
  }
}

void read_sinks(const Section& top, const Env& env, Config& config) {
  reports::ResultsOptions& out = config.results;
  const Section s =
      top.child("sinks", {"events", "kafka", "spool", "spool_max_mb", "flush_timeout"});

  out.sink = Kind::jsonl;
  out.jsonl_path = config.state_dir / "events.jsonl";
  if (auto events = scalar(s, "events", "jsonl[:PATH], stdout, kafka or none")) {
    std::string jsonl_path;
    auto kind = reports::parse_sink_kind(*events, &jsonl_path);
    if (!kind) {
      report_value(s, "events",
                   "expected jsonl[:PATH], stdout, kafka or none; got " + in_quotes(*events));
    } else {
      out.sink = *kind;
      if (!jsonl_path.empty()) out.jsonl_path = under_state_dir(config.state_dir, jsonl_path);
    }
  }

  out.kafka.topic = std::string(k_default_topic);
  if (auto it = env.find(std::string(k_kafka_password_env)); it != env.end() && !it->second.empty())
    out.kafka.sasl_password = it->second;
  if (s.value("kafka")) {
    const Section k =
        s.child("kafka", {"brokers", "topic", "security", "sasl_mechanism", "username", "ca_file"},
                {{"password",
                  "the Kafka password is never read from the file: set it in the "
                  "environment variable NAAP_KAFKA_PASSWORD"}});
    if (k.given()) {
      read_brokers(k, out.kafka.brokers);
      read_string(k, "topic", out.kafka.topic, false);
      read_choice(k, "security", out.kafka.security_protocol,
                  {"plaintext", "ssl", "sasl_plaintext", "sasl_ssl"});
      read_choice(k, "sasl_mechanism", out.kafka.sasl_mechanism,
                  {"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"});
      read_string(k, "username", out.kafka.sasl_username, false);
      read_string(k, "ca_file", out.kafka.ca_file, false);
      const bool sasl = out.kafka.security_protocol.starts_with("sasl_");
      if (sasl && !k.value("sasl_mechanism"))
        k.require("sasl_mechanism", "required with security " + out.kafka.security_protocol +
                                        ": PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512");
      if (sasl && !k.value("username"))
        k.require("username", "required with security " + out.kafka.security_protocol);
      // Only a sink that will connect needs the secret: --check-config of a file whose Kafka
      // block is unused must not demand it.
      if (sasl && out.sink == Kind::kafka && out.kafka.sasl_password.empty()) {
        report_value(k, "security",
                     out.kafka.security_protocol +
                         " needs the password in the environment variable NAAP_KAFKA_PASSWORD "
                         "(it is never read from the file)");
      }
    }
  } else if (out.sink == Kind::kafka) {
    s.require("kafka", "required with events: kafka (brokers, topic, security...)");
  }

  if (auto spool = scalar(s, "spool", "a file path")) {
    out.spool_path =
        spool->empty() ? std::filesystem::path() : under_state_dir(config.state_dir, *spool);
  } else if (out.sink == Kind::kafka || out.sink == Kind::stdout_lines) {
    // reports::open_results would use reports::default_state_dir(); the daemon keeps its
    // spool in its own state folder.
    out.spool_path = config.state_dir /
                     ("spool-" + (out.sink == Kind::kafka ? out.kafka.topic : "stdout") + ".jsonl");
  }
  if (auto mb = scalar(s, "spool_max_mb", "a size in MiB")) {
    double value = 0;
    const char* end = mb->data() + mb->size();
    const auto [ptr, ec] = std::from_chars(mb->data(), end, value);
    if (ec != std::errc() || ptr != end || !(value > 0) || value > k_max_spool_mb) {
      report_value(s, "spool_max_mb",
                   "expected a size in MiB, a number > 0 and <= 1048576, got " + in_quotes(*mb));
    } else {
      out.spool_max_bytes = static_cast<std::uint64_t>(value * 1024 * 1024);
    }
  }
  read_duration(s, "flush_timeout", out.flush_deadline, milliseconds(0), k_hour);
}

void read_config(const Node& root, const Env& env, Checker& checker, Config& config) {
  const Section top(
      checker, "", root, Mark::null_mark(),
      {"gateway_id", "region", "state_dir", "log_level", "round", "concurrency", "watchdog_slack",
       "budgets", "discovery", "signer_url", "tests", "decoder", "sinks", "ops"});

  if (!read_string(top, "gateway_id", config.gateway_id, false)) config.gateway_id = host_name();
  read_string(top, "region", config.region, true);
  std::string state_dir;
  if (read_string(top, "state_dir", state_dir, false)) {
    config.state_dir = state_dir;
  } else {
    config.state_dir = reports::default_state_dir();
  }

  std::string level;
  if (read_choice(top, "log_level", level, {"debug", "info", "warn", "error"}))
    log::parse_level(level, config.log_level);

  const Section round = top.child("round", {"period"});
  read_duration(round, "period", config.round.period, 30 * k_second, k_day);

  read_int(top, "concurrency", config.concurrency, 1, 256);
  read_duration(top, "watchdog_slack", config.watchdog_slack, 5 * k_second, k_day);

  const Section budgets = top.child("budgets", {"max_concurrent", "min_gap", "daily_time"});
  read_int(budgets, "max_concurrent", config.budgets.max_concurrent, 1, 256);
  read_duration(budgets, "min_gap", config.budgets.min_gap, milliseconds(0), k_day);
  read_duration(budgets, "daily_time", config.budgets.daily_time, milliseconds(0), k_day);

  read_discovery(top, config);

  std::string signer_url;
  if (read_url(top, "signer_url", signer_url, false)) config.signer_url = signer_url;

  read_tests(top, config);

  std::string decoder;
  if (read_choice(top, "decoder", decoder, {"auto", "software", "nvdec", "none"})) {
    config.decoder = decoder == "software" ? DecoderChoice::software
                     : decoder == "nvdec"  ? DecoderChoice::nvdec
                     : decoder == "none"   ? DecoderChoice::none
                                           : DecoderChoice::automatic;
  }

  read_sinks(top, env, config);

  const Section ops = top.child("ops", {"listen"});
  std::string listen;
  if (read_string(ops, "listen", listen, false, true)) {
    const std::string why = listen.empty() ? "" : check_host_port(listen, true);
    if (why.empty()) {
      config.ops.listen = listen;
    } else {
      report_value(ops, "listen",
                   in_quotes(listen) + " is not HOST:PORT (" + why + "); \"\" switches it off");
    }
  }
}

json duration_json(milliseconds d) {
  return d.count();
}

json optional_duration_json(const std::optional<milliseconds>& d) {
  return d ? json(d->count()) : json(nullptr);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Public functions.

Env process_env() {
  Env env;
  for (char** entry = environ; entry && *entry; ++entry) {
    const std::string_view text(*entry);
    const auto equals = text.find('=');
    if (equals == std::string_view::npos) continue;
    env.emplace(std::string(text.substr(0, equals)), std::string(text.substr(equals + 1)));
  }
  return env;
}

std::string_view to_string(DecoderChoice choice) {
  switch (choice) {
    case DecoderChoice::automatic:
      return "auto";
    case DecoderChoice::software:
      return "software";
    case DecoderChoice::nvdec:
      return "nvdec";
    case DecoderChoice::none:
      return "none";
  }
  return "auto";
}

std::string ConfigProblem::to_string() const {
  std::string out = file;
  if (line > 0) out += ":" + std::to_string(line) + ":" + std::to_string(column);
  out += ": ";
  if (!key.empty()) out += key + ": ";
  return out + message;
}

Result<milliseconds> parse_duration(std::string_view text) {
  const std::string form = "a number with a unit ms, s, m or h (e.g. 500ms, 90s, 1.5m, 2h)";
  auto bad = [&](const std::string& why, const std::string& detail = "") {
    return fail(ErrorCategory::config, why + ", got " + in_quotes(text) + detail);
  };
  std::size_t i = 0;
  const bool negative = i < text.size() && text[i] == '-';
  if (negative) ++i;
  const std::size_t int_start = i;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
  const std::string_view int_part = text.substr(int_start, i - int_start);
  std::string_view fraction;
  if (i < text.size() && text[i] == '.') {
    const std::size_t start = ++i;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
    fraction = text.substr(start, i - start);
    if (fraction.empty()) return bad("expected a duration: " + form);
  }
  if (int_part.empty()) return bad("expected a duration: " + form);
  const std::string_view unit = text.substr(i);
  std::int64_t unit_ms = 0;
  if (unit == "ms") {
    unit_ms = 1;
  } else if (unit == "s") {
    unit_ms = 1'000;
  } else if (unit == "m") {
    unit_ms = 60'000;
  } else if (unit == "h") {
    unit_ms = 3'600'000;
  } else if (unit.empty()) {
    return bad("expected a duration with an explicit unit: " + form);
  } else {
    return bad("expected a duration: " + form, " (unknown unit " + in_quotes(unit) + ")");
  }
  // Exact decimal arithmetic: "0.1s" is 100 ms, not 100.00000000000001.
  if (int_part.size() > 10 || fraction.size() > 9)
    return bad("expected a duration of at most 10 digits before the point and 9 after");
  std::int64_t whole = 0;
  for (char c : int_part) whole = whole * 10 + (c - '0');
  std::int64_t frac = 0;
  std::int64_t scale = 1;
  for (char c : fraction) {
    frac = frac * 10 + (c - '0');
    scale *= 10;
  }
  if ((frac * unit_ms) % scale != 0)
    return bad("a duration must be a whole number of milliseconds");
  const std::int64_t ms = whole * unit_ms + frac * unit_ms / scale;
  return milliseconds(negative ? -ms : ms);
}

std::string format_duration(milliseconds duration) {
  const std::int64_t ms = duration.count();
  if (ms == 0) return "0s";
  const std::string sign = ms < 0 ? "-" : "";
  const std::int64_t a = ms < 0 ? -ms : ms;
  if (a % 3'600'000 == 0) return sign + std::to_string(a / 3'600'000) + "h";
  if (a % 60'000 == 0) return sign + std::to_string(a / 60'000) + "m";
  if (a % 1'000 == 0) return sign + std::to_string(a / 1'000) + "s";
  return sign + std::to_string(a) + "ms";
}

std::string check_host_port(std::string_view text, bool allow_port_zero) {
  if (text.empty()) return "empty";
  std::string_view host;
  std::string_view port;
  if (text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos) return "unclosed '[' around an IPv6 address";
    host = text.substr(1, close - 1);
    if (close + 1 >= text.size() || text[close + 1] != ':') return "missing :PORT";
    port = text.substr(close + 2);
    const bool ipv6_chars = std::all_of(host.begin(), host.end(), [](char c) {
      return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
             c == ':' || c == '.';
    });
    if (host.empty() || !ipv6_chars || host.find(':') == std::string_view::npos)
      return "not an IPv6 address in brackets";
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return "missing :PORT";
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos)
      return "an IPv6 address goes in brackets, e.g. [::1]:8935";
    if (host.empty()) return "empty host";
    const bool host_chars = std::all_of(host.begin(), host.end(), [](char c) {
      return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
             c == '.' || c == '-' || c == '_';
    });
    if (!host_chars) return "the host has characters a host name cannot have";
  }
  if (!all_digits(port) || port.size() > 5) return "the port must be a number 1..65535";
  const int number = std::stoi(std::string(port));
  if (number > 65535 || (number == 0 && !allow_port_zero))
    return "the port must be a number 1..65535";
  return "";
}

Result<Config> parse_config(std::string_view yaml_text, std::string_view file_name, const Env& env,
                            std::vector<ConfigProblem>* problems) {
  Checker checker{std::string(file_name)};
  const std::vector<Override> overrides = read_overrides(env, checker);
  Config config;
  config.source = std::string(file_name);

  std::vector<Node> documents;
  bool parsed = false;
  try {
    documents = YAML::LoadAll(std::string(yaml_text));
    parsed = true;
  } catch (const YAML::ParserException& e) {
    checker.report("", e.mark, "YAML syntax error: " + e.msg);
  } catch (const YAML::Exception& e) {
    checker.report("", e.mark, "cannot parse YAML: " + e.msg);
  }
  if (parsed && documents.size() > 1) {
    checker.report("", documents[1].Mark(),
                   "a second YAML document (after ---): the configuration is one document");
  } else if (parsed && (documents.empty() || documents[0].IsNull())) {
    checker.report("", "the file is empty: it needs at least region, discovery and tests");
  } else if (parsed && !documents[0].IsMap()) {
    checker.report("", documents[0].Mark(),
                   "expected a mapping of settings (key: value) at the top level, got " +
                       describe_node(documents[0]));
  } else if (parsed) {
    Node root = documents[0];
    try {
      for (const Override& o : overrides) {
        graft(root, o, checker);
        checker.attribute(o.path, o.variable);
        config.overrides.push_back(o.variable);
      }
      read_config(root, env, checker, config);
    } catch (const YAML::Exception& e) {
      // Not expected (every access is type-checked first); still a configuration problem,
      // never a crash at start-up.
      checker.report("", e.mark, "cannot read this YAML: " + e.msg);
    }
  }
  if (auto it = env.find(std::string(k_kafka_password_env)); it != env.end() && !it->second.empty())
    config.overrides.push_back(it->first);
  std::sort(config.overrides.begin(), config.overrides.end());

  std::vector<ConfigProblem> found = checker.take();
  if (problems) *problems = found;
  if (found.empty()) return config;
  std::string message;
  for (const auto& problem : found) {
    if (!message.empty()) message += '\n';
    message += problem.to_string();
  }
  return fail(Error(ErrorCategory::config, std::move(message))
                  .with("file", std::string(file_name))
                  .with("problems", std::to_string(found.size())));
}

Result<Config> load_config(const std::filesystem::path& file, const Env& env,
                           std::vector<ConfigProblem>* problems) {
  auto cannot_read = [&](const std::string& why) -> Result<Config> {
    ConfigProblem problem{file.string(), 0, 0, "", "cannot read the configuration file: " + why};
    if (problems) *problems = {problem};
    return fail(Error(ErrorCategory::config, problem.to_string()).with("file", file.string()));
  };
  std::error_code ec;
  if (std::filesystem::is_directory(file, ec)) return cannot_read("it is a directory");
  std::ifstream in(file, std::ios::binary);
  if (!in) return cannot_read(std::strerror(errno));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) return cannot_read(std::strerror(errno));
  return parse_config(buffer.str(), file.string(), env, problems);
}

Result<Config> load_config(const std::filesystem::path& file) {
  return load_config(file, process_env());
}

std::string Config::canonical() const {
  json tests_json = json::array();
  for (const auto& t : tests) {
    tests_json.push_back({{"pipeline", t.pipeline},
                          {"dataset", t.dataset},
                          {"scenario", t.scenario},
                          {"duration_ms", optional_duration_json(t.duration)},
                          {"prompt_interval_ms", optional_duration_json(t.prompt_interval)},
                          {"include", t.include},
                          {"exclude", t.exclude}});
  }
  json discovery_json = {{"refresh_ms", duration_json(discovery.refresh)},
                         {"probe_timeout_ms", duration_json(discovery.probe_timeout)},
                         {"static", discovery.static_addresses},
                         {"webhook", nullptr},
                         {"signer", nullptr}};
  if (discovery.webhook) {
    discovery_json["webhook"] = {{"url", discovery.webhook->url},
                                 {"timeout_ms", duration_json(discovery.webhook->timeout)}};
  }
  if (discovery.signer) discovery_json["signer"] = {{"url", discovery.signer->url}};
  // The Kafka password is left out on purpose: the fingerprint is published in run summaries.
  const json kafka_json = {{"brokers", results.kafka.brokers},
                           {"topic", results.kafka.topic},
                           {"security", results.kafka.security_protocol},
                           {"sasl_mechanism", results.kafka.sasl_mechanism},
                           {"username", results.kafka.sasl_username},
                           {"ca_file", results.kafka.ca_file}};
  const json doc = {
      {"gateway_id", gateway_id},
      {"region", region},
      {"state_dir", state_dir.string()},
      {"log_level", level_name(log_level)},
      {"round", {{"period_ms", duration_json(round.period)}}},
      {"concurrency", concurrency},
      {"watchdog_slack_ms", duration_json(watchdog_slack)},
      {"budgets",
       {{"max_concurrent", budgets.max_concurrent},
        {"min_gap_ms", duration_json(budgets.min_gap)},
        {"daily_time_ms", duration_json(budgets.daily_time)}}},
      {"discovery", discovery_json},
      {"signer_url", signer_url ? json(*signer_url) : json(nullptr)},
      {"tests", tests_json},
      {"decoder", std::string(to_string(decoder))},
      {"sinks",
       {{"events", std::string(sink_name(results.sink))},
        {"jsonl_path", results.jsonl_path.string()},
        {"kafka", kafka_json},
        {"spool", results.spool_path.string()},
        {"spool_max_bytes", results.spool_max_bytes},
        {"flush_timeout_ms", duration_json(results.flush_deadline)}}},
      {"ops", {{"listen", ops.listen}}},
  };
  return doc.dump();
}

std::string Config::fingerprint() const {
  return Sha256::hex(canonical());
}

std::string Config::describe() const {
  std::ostringstream out;
  auto line = [&](std::string_view name, const std::string& value) {
    out << "  " << name << std::string(name.size() < 16 ? 16 - name.size() : 1, ' ') << value
        << '\n';
  };
  auto addresses = [](const std::vector<std::string>& list) {
    std::string text;
    for (const auto& a : list) text += (text.empty() ? "" : ", ") + a;
    return text.empty() ? std::string("(none)") : text;
  };
  out << "configuration " << (source.empty() ? std::string("(text)") : source) << '\n';
  line("fingerprint", "sha256:" + fingerprint());
  line("gateway_id", gateway_id);
  line("region", region);
  line("state_dir", state_dir.string());
  line("log_level", level_name(log_level));
  line("round.period", format_duration(round.period));
  line("concurrency", std::to_string(concurrency) + " sessions at once");
  line("watchdog_slack", format_duration(watchdog_slack) + " after a session's planned end");
  line("budgets", "per orchestrator: " + std::to_string(budgets.max_concurrent) + " at once, gap " +
                      format_duration(budgets.min_gap) + ", " +
                      (budgets.daily_time.count() == 0
                           ? std::string("no daily limit")
                           : format_duration(budgets.daily_time) + " per UTC day"));
  line("discovery", "refresh " + format_duration(discovery.refresh) + ", probe timeout " +
                        format_duration(discovery.probe_timeout));
  if (!discovery.static_addresses.empty()) line("  static", addresses(discovery.static_addresses));
  if (discovery.webhook)
    line("  webhook",
         discovery.webhook->url + " (timeout " + format_duration(discovery.webhook->timeout) + ")");
  if (discovery.signer) line("  signer", discovery.signer->url);
  line("payments", signer_url ? "remote signer " + *signer_url : std::string("off-chain"));
  line("tests", std::to_string(tests.size()));
  for (std::size_t i = 0; i < tests.size(); ++i) {
    const TestSpec& t = tests[i];
    std::string text = t.pipeline + " dataset=" + t.dataset +
                       " scenario=" + (t.scenario.empty() ? "(first)" : t.scenario);
    if (t.duration) text += " duration=" + format_duration(*t.duration);
    if (t.prompt_interval) text += " prompt_interval=" + format_duration(*t.prompt_interval);
    if (!t.include.empty()) text += " include=" + addresses(t.include);
    if (!t.exclude.empty()) text += " exclude=" + addresses(t.exclude);
    line("  [" + std::to_string(i) + "]", text);
  }
  line("decoder", std::string(to_string(decoder)));
  switch (results.sink) {
    case Kind::jsonl:
      line("events", "jsonl " + results.jsonl_path.string());
      break;
    case Kind::stdout_lines:
      line("events", "stdout");
      break;
    case Kind::kafka:
      line("events", "kafka " + results.kafka.brokers + " topic " + results.kafka.topic + " (" +
                         results.kafka.security_protocol +
                         (results.kafka.sasl_username.empty()
                              ? std::string()
                              : ", " + results.kafka.sasl_mechanism + " user " +
                                    results.kafka.sasl_username + ", password " +
                                    (results.kafka.sasl_password.empty() ? "not set" : "set")) +
                         ")");
      break;
    case Kind::none:
      line("events", "none (results are not kept)");
      break;
  }
  if (results.sink != Kind::none) {
    line("spool", (results.spool_path.empty() ? std::string("(next to the events file)")
                                              : results.spool_path.string()) +
                      ", max " + std::to_string(results.spool_max_bytes / (1024 * 1024)) +
                      " MiB, flush timeout " + format_duration(results.flush_deadline));
  }
  line("ops.listen", ops.listen.empty() ? std::string("off") : ops.listen);
  std::string names;
  for (const auto& name : overrides) names += (names.empty() ? "" : ", ") + name;
  line("overrides", names.empty() ? std::string("(none)") : names);
  return out.str();
}

}  // namespace naap::scheduler
