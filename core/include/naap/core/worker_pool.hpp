// A small pool of worker threads for CPU work kept off the event loop (decode, encode), and a
// serial queue that runs one stream's tasks in order on it.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace naap {

// A few threads; 0 = one per core. Tasks of one stream run in order through a SerialQueue.
class WorkerPool {
 public:
  // nice > 0 lowers the workers' scheduling priority (Linux: per thread) so that a loaded
  // machine delays background work, never the event loop that paces live input.
  explicit WorkerPool(unsigned threads, int nice = 0);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;
  void post(std::function<void()> task);
  std::size_t threads() const { return threads_.size(); }

 private:
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> tasks_;  // waiting tasks
  bool stopping_ = false;                    // threads exit once the queue is empty
  std::vector<std::thread> threads_;         // the workers
};

// Runs tasks one after another on a WorkerPool, never two of them at once.
class SerialQueue : public std::enable_shared_from_this<SerialQueue> {
 public:
  explicit SerialQueue(WorkerPool& pool) : pool_(pool) {}
  void post(std::function<void()> task);
  std::size_t pending() const;

 private:
  void drain();
  WorkerPool& pool_;
  mutable std::mutex mutex_;
  std::deque<std::function<void()>> tasks_;  // in order
  bool running_ = false;                     // a drain is scheduled or running
};

}  // namespace naap
