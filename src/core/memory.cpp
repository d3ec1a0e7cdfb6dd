#include "core/memory.hpp"

#include <fmt/format.h>

#include <atomic>
#include <chrono>

#include "core/log.hpp"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace gost::memory {
namespace {

// One increment per connection, not per byte: a shared counter costs nothing measurable.
std::atomic<long> g_open{0};
std::atomic<long> g_peak{0};  // highest g_open since the last release

// Below this many closed connections a release is not worth an arena walk (a pending TLS
// handshake costs ~55 KiB, so 64 of them are ~3.5 MiB).
constexpr long kMinDrop = 64;

}  // namespace

ConnectionScope::ConnectionScope() {
  long n = g_open.fetch_add(1, std::memory_order_relaxed) + 1;
  long p = g_peak.load(std::memory_order_relaxed);
  while (n > p && !g_peak.compare_exchange_weak(p, n, std::memory_order_relaxed)) {
  }
}

ConnectionScope::~ConnectionScope() { g_open.fetch_sub(1, std::memory_order_relaxed); }

void tune_allocator() {
#if defined(__GLIBC__)
  mallopt(M_TRIM_THRESHOLD, 32 << 20);
  mallopt(M_MMAP_THRESHOLD, 4 << 20);
#endif
}

bool load_dropped(long peak, long open) {
  return peak - open >= kMinDrop && peak - open >= peak / 4;
}

bool release_after_load_drop() {
  long peak = g_peak.load(std::memory_order_relaxed);
  long open = g_open.load(std::memory_order_relaxed);
  if (!load_dropped(peak, open)) return false;
  // A connection accepted meanwhile may have raised the peak: then keep its value (the next
  // tick sees the drop again if there is one).
  long seen = peak;
  g_peak.compare_exchange_strong(seen, open, std::memory_order_relaxed);
#if defined(__GLIBC__)
  auto t0 = std::chrono::steady_clock::now();
  malloc_trim(0);
  if (log::enabled(log::Level::debug)) {
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - t0);
    log::root().debug(fmt::format("memory: {} -> {} connections, free heap released in {} us", peak,
                                  open, us.count()));
  }
  return true;
#else
  return false;
#endif
}

}  // namespace gost::memory
