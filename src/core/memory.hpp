// Giving memory back to the kernel after a burst of connections (issue 11).
//
// glibc keeps freed heap memory for reuse: after 1,500 concurrent TLS handshakes a relay+tls
// server's live heap is back near idle (~1 MB), yet its RSS stays at the burst's peak (90 MB
// instead of 11 MB): the burst's memory sits in the workers' arenas as free chunks between a few
// long-lived allocations, so the heaps cannot shrink from the top. malloc_trim(0) madvises every
// free page of every arena away, so we call it once the load has dropped: 15 bursts end at
// 20.8 MB (1.9x idle), the peak and the data path are unchanged. MALLOC_ARENA_MAX does not help
// (the memory is free inside the arenas, not spread over many); jemalloc or mimalloc with eager
// decay end lower (16-17 MB) but add a dependency, 0.5-1.2 MB at idle and 3-7 % per idle
// tunnel. Numbers: bench/README.md, "Memory after bursts of TLS handshakes".
#pragma once

#include <functional>

namespace gost::memory {

// Called once at start-up, before any thread exists. glibc gives freed memory at the top of a
// heap back to the kernel at once when more than 128 KiB are free there, and serves blocks of
// 128 KiB and more with mmap/munmap: on a busy data path (a QUIC push of 45 KB decrypted, copied,
// queued and freed 2,000 times a second) that is a madvise or munmap per message, each of which
// makes every other thread of the process flush its TLB (an inter-processor interrupt, costly in
// a VM). With thresholds of 32 MiB / 4 MiB the heap keeps such memory for reuse; what a load
// peak leaves behind is still given back by release_after_load_drop(). Measured: relay+h3 upload
// at 0.48 ms instead of 0.9 ms of CPU per push (both processes), relay+tls and tcp unchanged.
void tune_allocator();

// Held by every accepted connection for its lifetime: counts open connections and their recent
// peak, which is what tells a load drop (and how much memory it could have left behind).
class ConnectionScope {
 public:
  ConnectionScope();
  ~ConnectionScope();
  ConnectionScope(const ConnectionScope&) = delete;
  ConnectionScope& operator=(const ConnectionScope&) = delete;
};

// Whether a drop from `peak` open connections (since the last release) to `open` is worth a
// release: at least a quarter of them and at least 64 gone. A steady load, even a large one
// with some churn, does not trigger it; a burst on top of many long-lived tunnels does.
bool load_dropped(long peak, long open);

// Whether a burst of new connections has just ended, from the count of connections ever opened,
// given about once a second: at least kMinDrop opened in ticks of kQuiet or more each, then a
// quieter tick. Their handshakes' memory (a TLS handshake's buffers and state, some 50 KiB
// each) is free again then, between what the tunnels that stay open hold: the heap keeps it
// although no connection closed (1,000 relay+tls tunnels opened 64 at a time: ~3 KiB per
// tunnel). A steady trickle never counts as a burst.
class Arrivals {
 public:
  static constexpr long kQuiet = 16;
  bool burst_ended(long opened);
  void reset() { burst_ = 0; }  // a release covered this burst

 private:
  long seen_ = 0;
  long burst_ = 0;
};

// Called about once a second from a thread that serves no connection (the main thread; the trim
// walks every arena under its lock, and would stall a worker's connections for that long).
// Releases free heap memory when load_dropped() or a burst of arrivals has ended (Arrivals), and
// again kFollowUps after a load drop's release: much
// is freed only later — a multiplexed session ends some time after its last stream, a QUIC
// connection drains for three PTOs, pooled sessions are reaped when idle — and a 2,000-tunnel
// h3 burst left 43 MiB after the first trim, 36 MiB after a later one (issue 16 §2). On a drop
// `shed` runs first, then at each follow-up: it has each worker drop its pooled buffers
// (core/buffer_pool) and give its arena's free top back (release_thread_heap), on its own thread.
// True if it released now.
bool release_after_load_drop(const std::function<void()>& shed = {});

// Gives the free top of the calling thread's malloc arena back (on a worker: `shed` posts it).
void release_thread_heap();

// Seconds after a load-drop release at which the heap is trimmed again.
inline constexpr int kFollowUps[] = {2, 4, 6, 20};

}  // namespace gost::memory
