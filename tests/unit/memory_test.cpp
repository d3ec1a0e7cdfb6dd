// The rule that decides when free heap is given back after a load drop (core/memory.hpp).
#include "core/memory.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

using gost::memory::load_dropped;

TEST(Memory, LoadDropNeedsSixtyFourAndAQuarterOfThePeak) {
  EXPECT_FALSE(load_dropped(0, 0));
  EXPECT_FALSE(load_dropped(63, 0));  // fewer than 64 connections gone
  EXPECT_TRUE(load_dropped(64, 0));
  EXPECT_TRUE(load_dropped(1500, 0));     // a burst that ended
  EXPECT_FALSE(load_dropped(1000, 800));  // 200 gone: less than a quarter of a steady 1000
  EXPECT_TRUE(load_dropped(1000, 750));
  EXPECT_FALSE(load_dropped(100, 100));  // steady
}

TEST(Memory, ConnectionScopesCountAndAReleaseResetsThePeak) {
  {
    std::vector<std::unique_ptr<gost::memory::ConnectionScope>> open;
    for (int i = 0; i < 100; ++i) open.push_back(std::make_unique<gost::memory::ConnectionScope>());
  }
  EXPECT_TRUE(gost::memory::release_after_load_drop());   // 100 opened then closed
  EXPECT_FALSE(gost::memory::release_after_load_drop());  // the peak was reset to the load
}

TEST(Memory, ABurstOfArrivalsEndsAtTheFirstQuietTick) {
  gost::memory::Arrivals a;
  EXPECT_FALSE(a.burst_ended(500));   // 500 opened in this tick: a burst goes on
  EXPECT_FALSE(a.burst_ended(1000));  // and on
  EXPECT_TRUE(a.burst_ended(1003));   // 3 in a tick: it has ended
  EXPECT_FALSE(a.burst_ended(1003));  // once
  long opened = 1003;
  for (int tick = 0; tick < 100; ++tick)  // a steady trickle of 15 a second is no burst
    EXPECT_FALSE(a.burst_ended(opened += 15)) << tick;
  EXPECT_FALSE(a.burst_ended(opened += 40));  // 40 opened,
  EXPECT_FALSE(a.burst_ended(opened));        // then quiet: fewer than 64 is not worth a trim
  EXPECT_FALSE(a.burst_ended(opened += 100));
  a.reset();  // a load drop's release covered it
  EXPECT_FALSE(a.burst_ended(opened));
}

#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__)
namespace {
long rss_kib() {
  long pages = 0, rss = 0;
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return -1;
  if (std::fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = -1;
  std::fclose(f);
  return rss * (sysconf(_SC_PAGESIZE) / 1024);
}
}  // namespace

// A worker's arena keeps a burst's memory as its free top (below M_TRIM_THRESHOLD, which
// tune_allocator() raises to 32 MiB); release_thread_heap() on that thread gives it back.
TEST(Memory, ReleaseThreadHeapGivesAWorkersFreeTopBack) {
  gost::memory::tune_allocator();
  long before = 0, after = 0;
  std::thread([&] {
    std::vector<void*> blocks;
    blocks.reserve(1500);  // nothing of its own between the blocks and the top
    for (int i = 0; i < 1500; ++i) {  // 24 MiB in 16 KiB blocks, touched
      void* p = std::malloc(16 << 10);
      std::memset(p, 1, 16 << 10);
      blocks.push_back(p);
    }
    for (auto it = blocks.rbegin(); it != blocks.rend(); ++it) std::free(*it);
    before = rss_kib();
    gost::memory::release_thread_heap();
    after = rss_kib();
  }).join();
  EXPECT_GT(before - after, 16 * 1024) << "RSS " << before << " -> " << after << " KiB";
}
#endif
