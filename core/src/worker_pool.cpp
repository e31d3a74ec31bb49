// WorkerPool and SerialQueue (see worker_pool.hpp).
#include "naap/core/worker_pool.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>

namespace naap {

WorkerPool::WorkerPool(unsigned threads, int nice) {
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  for (unsigned i = 0; i < threads; ++i) {
    threads_.emplace_back([this, nice] {
      // Best effort: without the permission to change it the thread keeps the default.
      if (nice > 0) (void)setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), nice);
      for (;;) {
        std::function<void()> task;
        {
          std::unique_lock lock(mutex_);
          wake_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
          if (tasks_.empty()) return;
          task = std::move(tasks_.front());
          tasks_.pop_front();
        }
        task();
      }
    });
  }
}

WorkerPool::~WorkerPool() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& t : threads_) t.join();
}

void WorkerPool::post(std::function<void()> task) {
  {
    std::lock_guard lock(mutex_);
    tasks_.push_back(std::move(task));
  }
  wake_.notify_one();
}

void SerialQueue::post(std::function<void()> task) {
  bool schedule = false;
  {
    std::lock_guard lock(mutex_);
    tasks_.push_back(std::move(task));
    if (!running_) running_ = schedule = true;
  }
  if (schedule) pool_.post([self = shared_from_this()] { self->drain(); });
}

std::size_t SerialQueue::pending() const {
  std::lock_guard lock(mutex_);
  return tasks_.size();
}

void SerialQueue::drain() {
  for (;;) {
    std::function<void()> task;
    {
      std::lock_guard lock(mutex_);
      if (tasks_.empty()) {
        running_ = false;
        return;
      }
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    task();
  }
}

}  // namespace naap
