#include "core/memory.hpp"

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <iterator>
#include <mutex>

#include "core/log.hpp"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace gost::memory {
namespace {

// One increment per connection, not per byte: a shared counter costs nothing measurable.
std::atomic<long> g_open{0};
std::atomic<long> g_peak{0};  // highest g_open since the last release
std::atomic<long> g_opened{0};  // connections ever opened

// Below this many closed connections a release is not worth an arena walk (a pending TLS
// handshake costs ~55 KiB, so 64 of them are ~3.5 MiB).
constexpr long kMinDrop = 64;

}  // namespace

ConnectionScope::ConnectionScope() {
  g_opened.fetch_add(1, std::memory_order_relaxed);
  long n = g_open.fetch_add(1, std::memory_order_relaxed) + 1;
  long p = g_peak.load(std::memory_order_relaxed);
  while (n > p && !g_peak.compare_exchange_weak(p, n, std::memory_order_relaxed)) {
  }
}

ConnectionScope::~ConnectionScope() { g_open.fetch_sub(1, std::memory_order_relaxed); }

constexpr int kTrimThreshold = 32 << 20;

void tune_allocator() {
#if defined(__GLIBC__)
  mallopt(M_TRIM_THRESHOLD, kTrimThreshold);
  mallopt(M_MMAP_THRESHOLD, 4 << 20);
#endif
}

bool load_dropped(long peak, long open) {
  return peak - open >= kMinDrop && peak - open >= peak / 4;
}

bool Arrivals::burst_ended(long opened) {
  const long in_tick = opened - seen_;
  seen_ = opened;
  if (in_tick >= kQuiet) {
    burst_ += in_tick;
    return false;
  }
  const bool ended = burst_ >= kMinDrop;
  burst_ = 0;
  return ended;
}

namespace {

void trim(const char* why, long peak, long open) {
#if defined(__GLIBC__)
  auto t0 = std::chrono::steady_clock::now();
  malloc_trim(0);
  if (log::enabled(log::Level::debug)) {
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - t0);
    log::root().debug(fmt::format("memory: {}: {} -> {} connections, free heap released in {} us",
                                  why, peak, open, us.count()));
  }
#else
  (void)why, (void)peak, (void)open;
#endif
}

// The follow-up trims still due after the last load-drop release (main thread only).
std::chrono::steady_clock::time_point g_released{};
std::size_t g_followups_done = std::size(kFollowUps);
Arrivals g_arrivals;

#if defined(__GLIBC__)
constexpr bool trims = true;  // trim() gives memory back
#else
constexpr bool trims = false;
#endif

}  // namespace

bool release_after_load_drop(const std::function<void()>& shed) {
  long peak = g_peak.load(std::memory_order_relaxed);
  long open = g_open.load(std::memory_order_relaxed);
  auto now = std::chrono::steady_clock::now();
  const bool arrivals_ended = g_arrivals.burst_ended(g_opened.load(std::memory_order_relaxed));
  if (!load_dropped(peak, open)) {
    if (arrivals_ended) {
      if (shed) shed();
      trim("arrivals ended", peak, open);
      return trims;
    }
    if (g_followups_done < std::size(kFollowUps) &&
        now >= g_released + std::chrono::seconds(kFollowUps[g_followups_done])) {
      ++g_followups_done;
      if (shed) shed();
      trim("follow-up", peak, open);
    }
    return false;
  }
  // A connection accepted meanwhile may have raised the peak: then keep its value (the next
  // tick sees the drop again if there is one).
  long seen = peak;
  g_peak.compare_exchange_strong(seen, open, std::memory_order_relaxed);
  if (shed) shed();
  trim("load drop", peak, open);
  g_arrivals.reset();
  g_released = now;
  g_followups_done = 0;
  return trims;
}

void release_thread_heap() {
#if defined(__GLIBC__)
  // malloc_trim() madvises the free chunks of every arena, but the free top of a worker's arena
  // only the thread's own free() gives back, and only past M_TRIM_THRESHOLD (32 MiB here, so a
  // burst's whole heap stayed: h2c server 38 MiB with 1 MiB in use). A free of 64 KiB or more
  // makes glibc check its arena's top against the threshold: lowered for that one free. The
  // lock keeps two workers from restoring it under each other.
  static std::mutex mu;
  std::lock_guard lock(mu);
  mallopt(M_TRIM_THRESHOLD, 128 << 10);
  void* p = std::malloc(256 << 10);
  asm volatile("" : : "r"(p) : "memory");  // a malloc/free pair the compiler must not elide
  std::free(p);
  mallopt(M_TRIM_THRESHOLD, kTrimThreshold);
#endif
}

}  // namespace gost::memory
