// Giving memory back to the kernel after a burst of connections (issue 11).
//
// glibc keeps freed heap memory for reuse: after 1,500 concurrent TLS handshakes a relay+tls
// server's live heap is back near idle, yet its RSS stays at the burst's peak (90 MB instead of
// 11 MB) because live allocations scattered over the heap keep it from shrinking from the top.
// malloc_trim(0) hands every free page in every arena back (madvise), so we call it once the
// load has dropped. bench/tls_burst.py measures it; bench/README.md has the comparison with
// MALLOC_ARENA_MAX, jemalloc and mimalloc.
#pragma once

namespace gost::memory {

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

// Called about once a second from a thread that serves no connection (the main thread; the trim
// walks every arena under its lock, and would stall a worker's connections for that long).
// Releases free heap memory when load_dropped(); true if it did.
bool release_after_load_drop();

}  // namespace gost::memory
