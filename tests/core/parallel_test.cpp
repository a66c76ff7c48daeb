// Tests of qconf::opt::parallel_for on its persistent thread pool (optimized/src/parallel.cpp):
// every index is visited exactly once at any thread count, nested calls and calls from several
// threads at once neither deadlock nor lose work, exceptions reach the caller, and a fork()ed
// child (the conformance runner's isolation) gets a working pool of its own.
#include "qconf/opt/parallel.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <stdexcept>
#include <thread>
#include <vector>

namespace {

using qconf::opt::parallel_for;

// Runs parallel_for(n, grain) and returns how often each index was visited.
std::vector<int> visits(int64_t n, int64_t grain, int threads) {
  std::vector<std::atomic<int>> v(static_cast<size_t>(n));
  parallel_for(
      n, grain,
      [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) v[static_cast<size_t>(i)].fetch_add(1);
      },
      threads);
  std::vector<int> out;
  for (auto& x : v) out.push_back(x.load());
  return out;
}

TEST(ParallelFor, EveryIndexIsVisitedExactlyOnceAtAnyThreadCount) {
  for (int threads : {1, 2, 3, 8})
    for (int64_t n : {1, 7, 64, 1000})
      for (int64_t grain : {1, 3, 64}) {
        // Many calls in a row: the pool's workers are reused from job to job.
        for (int rep = 0; rep < 20; ++rep)
          EXPECT_EQ(visits(n, grain, threads), std::vector<int>(static_cast<size_t>(n), 1))
              << "threads " << threads << " n " << n << " grain " << grain;
      }
}

TEST(ParallelFor, ChunksAreTheFixedGrainRangesWhateverTheThreadCount) {
  // A result computed per chunk must not depend on the thread count: each chunk is exactly
  // [c * grain, min(n, (c + 1) * grain)) when more than one thread runs.
  for (int threads : {2, 4}) {
    std::vector<std::atomic<int64_t>> ends(100);
    parallel_for(
        100, 7,
        [&](int64_t b, int64_t e) {
          EXPECT_EQ(b % 7, 0);
          ends[static_cast<size_t>(b)].store(e);
        },
        threads);
    for (int64_t b = 0; b < 100; b += 7)
      EXPECT_EQ(ends[static_cast<size_t>(b)].load(), std::min<int64_t>(100, b + 7));
  }
}

TEST(ParallelFor, NestedCallsRunAndDoNotDeadlock) {
  std::atomic<int64_t> total{0};
  parallel_for(
      8, 1,
      [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i)
          parallel_for(
              100, 10, [&](int64_t b2, int64_t e2) { total.fetch_add(e2 - b2); }, 2);
      },
      2);
  EXPECT_EQ(total.load(), 800);
}

TEST(ParallelFor, CallsFromSeveralThreadsAtOnceAllComplete) {
  std::atomic<int> bad{0};
  std::vector<std::thread> users;
  for (int u = 0; u < 4; ++u)
    users.emplace_back([&] {
      for (int rep = 0; rep < 50; ++rep)
        if (visits(257, 5, 2) != std::vector<int>(257, 1)) bad.fetch_add(1);
    });
  for (auto& t : users) t.join();
  EXPECT_EQ(bad.load(), 0);
}

TEST(ParallelFor, AnExceptionInAChunkReachesTheCallerAndThePoolStaysUsable) {
  EXPECT_THROW(parallel_for(
                   100, 1,
                   [](int64_t b, int64_t) {
                     if (b == 37) throw std::runtime_error("chunk 37");
                   },
                   2),
               std::runtime_error);
  EXPECT_EQ(visits(100, 1, 2), std::vector<int>(100, 1));
}

TEST(ParallelFor, AForkedChildGetsAWorkingPool) {
  // The parent's pool exists (its workers are running) before the fork; the child's
  // parallel_for must not wait on the parent's workers, which the child does not have.
  ASSERT_EQ(visits(1000, 10, 2), std::vector<int>(1000, 1));
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    alarm(20);  // a hang (waiting for workers that do not exist) fails the test
    bool ok = true;
    for (int rep = 0; rep < 10; ++rep) ok = ok && visits(1000, 10, 2) == std::vector<int>(1000, 1);
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "child killed by signal "
                                 << (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  EXPECT_EQ(WEXITSTATUS(status), 0);
  // And the parent's pool still works after the fork.
  EXPECT_EQ(visits(1000, 10, 2), std::vector<int>(1000, 1));
}

}  // namespace
