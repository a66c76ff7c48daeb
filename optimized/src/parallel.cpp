// parallel_for on a persistent pool of worker threads.
//
// Why a pool: creating and joining threads costs tens of microseconds per call, which is a
// visible share of a ~1 ms GEMV or of a small-M GEMM that runs several parallel loops (quant,
// pack, GEMM). The pool keeps its threads parked between calls: after a job a worker spins on
// the job counter for a short while (back-to-back calls are picked up without a wake-up), then
// sleeps on a condition variable.
//
// Determinism. Chunks are still fixed by (n, grain) and handed out dynamically; nothing that
// a chunk computes may depend on which thread runs it, so results do not depend on the thread
// count (as before).
//
// Re-entrancy and concurrency. A parallel_for called from inside a pool job (nested), or while
// another thread's job is using the pool, runs its chunks inline on the calling thread: same
// chunks, same results, no deadlock.
//
// fork(). Threads do not survive fork: the child of a process that has a pool would wait
// forever on workers that do not exist. The pool records the pid that created it; a call from
// another pid (a forked child, e.g. conformance/src/isolate.cpp) abandons the inherited pool
// (its memory is leaked on purpose: its mutexes may have been held at the fork) and creates a
// fresh one lazily.
#include "qconf/opt/parallel.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "qconf/opt/cpu.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define QCONF_CPU_RELAX() _mm_pause()
#else
#define QCONF_CPU_RELAX() ((void)0)
#endif

namespace qconf::opt {
namespace {

// Spin iterations (each one pause, ~10-70 cycles) before a parked worker sleeps, and before
// the caller sleeps while waiting for the helpers to finish.
constexpr int kSpin = 2000;
constexpr int kMaxHelpers = 255;  // the helper count travels in 8 bits

thread_local bool t_in_pool_job = false;

class Pool {
 public:
  Pool() : pid_(getpid()) {}
  // Never destroyed: the workers live until the process exits (or are lost in a fork child).
  pid_t pid() const { return pid_; }

  // Runs the chunks on the caller and `helpers` pool threads. Returns false (nothing run) when
  // the pool is busy with another caller's job.
  bool run(int64_t n, int64_t grain, int64_t chunks, int helpers,
           const std::function<void(int64_t, int64_t)>& fn) {
    std::unique_lock<std::mutex> busy(run_mu_, std::try_to_lock);
    if (!busy.owns_lock()) return false;
    grow(helpers);
    fn_ = &fn;
    n_ = n;
    grain_ = grain;
    chunks_ = chunks;
    next_.store(0, std::memory_order_relaxed);
    error_ = nullptr;
    active_.store(helpers, std::memory_order_relaxed);
    {
      // The generation and the helper count in one word, so a worker never pairs one job's
      // generation with another job's count.
      std::lock_guard<std::mutex> l(mu_);
      const uint64_t gen = (job_.load(std::memory_order_relaxed) >> 8) + 1;
      job_.store(gen << 8 | static_cast<uint64_t>(helpers), std::memory_order_release);
    }
    cv_.notify_all();
    work();
    for (int s = 0; s < kSpin && active_.load(std::memory_order_acquire) != 0; ++s)
      QCONF_CPU_RELAX();
    if (active_.load(std::memory_order_acquire) != 0) {
      std::unique_lock<std::mutex> l(mu_);
      done_cv_.wait(l, [&] { return active_.load(std::memory_order_acquire) == 0; });
    }
    fn_ = nullptr;
    if (error_) std::rethrow_exception(error_);
    return true;
  }

 private:
  void grow(int helpers) {
    while (static_cast<int>(threads_.size()) < helpers) {
      const int index = static_cast<int>(threads_.size());
      // The generation before this job's: a thread that starts late still sees the job.
      const uint64_t seen = job_.load(std::memory_order_relaxed) >> 8;
      threads_.emplace_back([this, index, seen] { worker(index, seen); });
      threads_.back().detach();
    }
  }

  void work() {
    const bool was = t_in_pool_job;
    t_in_pool_job = true;
    try {
      for (int64_t c; (c = next_.fetch_add(1, std::memory_order_relaxed)) < chunks_;)
        (*fn_)(c * grain_, std::min(n_, (c + 1) * grain_));
    } catch (...) {
      std::lock_guard<std::mutex> l(error_mu_);
      if (!error_) error_ = std::current_exception();
      next_.store(chunks_, std::memory_order_relaxed);  // stop handing out chunks
    }
    t_in_pool_job = was;
  }

  void worker(int index, uint64_t seen) {
    auto gen_of = [](uint64_t job) { return job >> 8; };
    for (;;) {
      for (int s = 0; s < kSpin && gen_of(job_.load(std::memory_order_acquire)) == seen; ++s)
        QCONF_CPU_RELAX();
      if (gen_of(job_.load(std::memory_order_acquire)) == seen) {
        std::unique_lock<std::mutex> l(mu_);
        cv_.wait(l, [&] { return gen_of(job_.load(std::memory_order_acquire)) != seen; });
      }
      const uint64_t job = job_.load(std::memory_order_acquire);
      seen = gen_of(job);
      if (index >= static_cast<int>(job & 0xFF)) continue;
      work();
      if (active_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> l(mu_);
        done_cv_.notify_all();
      }
    }
  }

  const pid_t pid_;
  std::mutex run_mu_;  // one job at a time
  std::mutex mu_;      // guards the sleeps on cv_ and done_cv_
  std::condition_variable cv_, done_cv_;
  std::vector<std::thread> threads_;
  std::atomic<uint64_t> job_{0};  // generation << 8 | helpers of the current job
  // The current job (written by the caller before job_ is bumped).
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t n_ = 0, grain_ = 1, chunks_ = 0;
  std::atomic<int64_t> next_{0};
  std::atomic<int> active_{0};
  std::mutex error_mu_;
  std::exception_ptr error_;
};

std::atomic<Pool*> g_pool{nullptr};
std::mutex g_pool_mu;

Pool& pool() {
  Pool* p = g_pool.load(std::memory_order_acquire);
  if (p && p->pid() == getpid()) return *p;
  // First use, or first use in a forked child. The child inherits g_pool_mu in whatever state
  // the parent's threads left it, so the child must not lock it blindly: a fork child is
  // single-threaded until it creates a pool, so a fresh mutex is safe to use here.
  if (p) new (&g_pool_mu) std::mutex();
  std::lock_guard<std::mutex> l(g_pool_mu);
  p = g_pool.load(std::memory_order_acquire);
  if (!p || p->pid() != getpid()) {
    p = new Pool();  // the inherited pool (if any) is abandoned, see the header comment
    g_pool.store(p, std::memory_order_release);
  }
  return *p;
}

}  // namespace

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn,
                  int threads) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int64_t chunks = (n + grain - 1) / grain;
  if (threads <= 0) threads = default_threads();
  const int workers = static_cast<int>(std::min<int64_t>(threads, chunks));
  if (workers > 1 && !t_in_pool_job &&
      pool().run(n, grain, chunks, std::min(workers - 1, kMaxHelpers), fn))
    return;
  // One worker, a nested call, or the pool is busy: all of [0, n) on this thread.
  fn(0, n);
}

}  // namespace qconf::opt
