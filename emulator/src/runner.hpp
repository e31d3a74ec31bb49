// The emulated ai-runner of one stream (private to the emulator): reads the input and control
// channels, produces output and events, applies the stream's faults, records ground truth.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "naap/core/worker_pool.hpp"
#include "naap/emulator/faults.hpp"
#include "naap/emulator/ground_truth.hpp"
#include "naap/emulator/runner_status.hpp"
#include "naap/transport/http_engine.hpp"
#include "naap/transport/trickle_publisher.hpp"
#include "naap/transport/trickle_subscriber.hpp"

namespace naap::emulator {

// What the emulator hands a new stream.
struct StreamSetup {
  std::string manifest_id;        // mid
  std::string stream_id;          // gateway's stream id
  std::string request_id;         // gateway's request id
  std::string model_id;           // pipeline
  nlohmann::json params;          // initial params from the start request
  FaultProfile faults;            // merged profile for this stream
  std::string internal_base;      // "http://127.0.0.1:P/ai/trickle/" (the runner's hop)
  double load_time_s = 1.0;       // default LOADING at start, seconds
  double reload_time_s = 2.0;     // default LOADING after a reload, seconds
  double no_input_stop_s = 60.0;  // stop after this long without input, seconds
  std::string encoder_preset;     // x264 preset
  double balance_s = -1;          // priced: prepaid stream seconds; < 0 = free
};

class RunnerStream : public std::enable_shared_from_this<RunnerStream> {
 public:
  using StopFn = std::function<void(const std::string& manifest_id, const std::string& reason)>;

  RunnerStream(boost::asio::io_context& io, http::Engine& engine, WorkerPool& pool,
               StreamSetup setup, StopFn on_stop);
  ~RunnerStream();

  // Publishes runner_receive_stream_request and opens the four channel clients. io thread.
  void start();
  // Ends the stream: clients closed, ground truth finalised, on_stop called. io thread.
  void stop(const std::string& reason);
  // Priced mode: stream seconds bought by a payment. io thread.
  void credit(double seconds);

  bool stopped() const { return stopped_; }
  const std::string& model_id() const { return setup_.model_id; }
  std::shared_ptr<StreamTruth> truth() const { return truth_; }

  struct Codec;  // decode/transform/encode state, touched on the stream's SerialQueue only

 private:
  struct Output;  // one piece of output waiting for its emission time

  void on_input_data(std::int64_t seq, std::string_view bytes);
  void on_input_segment_end();
  void on_control_segment(std::string body);
  void apply_params(nlohmann::json params, std::int64_t received_us);
  void publish_event(const nlohmann::ordered_json& event);
  void tick();
  void schedule_tick();
  void enqueue_output(Output out);
  void emit_ready();
  void start_loading(const std::string& reason, double seconds);
  void fire_crash();
  Now now() const;

  boost::asio::io_context& io_;
  http::Engine& engine_;
  StreamSetup setup_;
  StopFn on_stop_;
  std::shared_ptr<StreamTruth> truth_;
  std::shared_ptr<SerialQueue> queue_;
  std::shared_ptr<Codec> codec_;
  RunnerStatus status_;
  std::mt19937_64 rng_;

  std::shared_ptr<trickle::TrickleSubscriber> input_;
  std::shared_ptr<trickle::TrickleSubscriber> control_;
  std::shared_ptr<trickle::TricklePublisher> output_;
  std::shared_ptr<trickle::TricklePublisher> events_;
  std::shared_ptr<trickle::SegmentWriter> out_writer_;  // output segment being written
  std::string control_buffer_;                          // control segment being read

  std::deque<Output> pending_out_;                        // ordered by due time
  boost::asio::steady_timer emit_timer_;                  // fires at pending_out_.front().due
  boost::asio::steady_timer tick_timer_;                  // 1 s runner housekeeping
  std::chrono::steady_clock::time_point started_;         // stream start
  std::chrono::steady_clock::time_point last_input_;      // last input byte
  std::chrono::steady_clock::time_point last_due_;        // keeps output in order
  std::chrono::steady_clock::time_point bandwidth_free_;  // bandwidth cap: link busy until
  std::chrono::steady_clock::time_point loading_until_;   // LOADING ends
  std::chrono::steady_clock::time_point last_debit_;      // priced mode accounting
  bool loading_ = false;                                  // pipeline loading (overlay frames)
  bool first_segment_traced_ = false;       // runner_receive_first_ingest_segment sent
  bool first_output_traced_ = false;        // runner_send_first_processed_segment sent
  bool stall_fired_ = false;                // stall fault fired
  bool crash_fired_ = false;                // crash fault fired
  bool stopped_ = false;                    // stop() ran
  double balance_s_ = -1;                   // priced: prepaid seconds left; < 0 = free
  std::uint64_t output_segments_ = 0;       // output segments started
  std::size_t input_bytes_in_segment_ = 0;  // bytes of the input segment being read
};

}  // namespace naap::emulator
