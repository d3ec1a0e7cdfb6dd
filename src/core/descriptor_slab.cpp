// Memory given back after a burst (issue 16 §2): Asio's descriptor states in a region of their own.
//
// Asio's epoll reactor keeps every per-socket descriptor_state it ever allocated: its object_pool
// puts a closed socket's state on a free list and never deletes it (Boost 1.81). Allocated with
// operator new in the middle of a burst, the states end up scattered between the burst's buffers
// and coroutine frames; once those are freed, every state splits the free space around it, and
// each free chunk keeps the page holding its header resident: 2,000 tunnels through a ws server
// (4,000 sockets) left ~2,000 free chunks per worker arena, ~8 MiB each that malloc_trim cannot
// release (RSS 3x idle 10 s later). Here every allocation of exactly that size comes from one
// reserved region instead, where the states sit side by side (160 bytes each): the heap frees
// in large pieces again. Other objects of the same size share the region, which costs nothing.
//
// The replaced operator new/delete add one size compare per allocation and one range check per
// delete. Aligned and array forms keep their defaults (the array forms call these).
#include <sys/mman.h>

#include <atomic>
#include "core/asio.hpp"  // Boost.Asio as the rest of the program includes it
#include <cstdlib>
#include <mutex>
#include <new>

#if defined(BOOST_ASIO_HAS_EPOLL) && !defined(__SANITIZE_ADDRESS__)
#define GOST_DESCRIPTOR_SLAB 1
#endif

#ifdef GOST_DESCRIPTOR_SLAB
namespace {

constexpr std::size_t kSlot = sizeof(boost::asio::detail::epoll_reactor::descriptor_state);
// Address space reserved once (not memory: pages are touched as slots are first used). Enough
// for 1.6 million sockets; beyond it allocations fall back to malloc.
constexpr std::size_t kReserve = std::size_t{256} << 20;

struct Slab {
  std::mutex mu;
  std::atomic<char*> base{nullptr};
  char* next = nullptr;  // first never-used slot
  char* end = nullptr;
  void* free_list = nullptr;  // freed slots, linked through their first word
  bool failed = false;

  void* alloc() {
    std::lock_guard lock(mu);
    if (free_list) {
      void* p = free_list;
      free_list = *static_cast<void**>(p);
      return p;
    }
    if (!base.load(std::memory_order_relaxed)) {
      if (failed) return nullptr;
      void* m = ::mmap(nullptr, kReserve, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (m == MAP_FAILED) {
        failed = true;
        return nullptr;
      }
      next = static_cast<char*>(m);
      end = next + kReserve;
      base.store(next, std::memory_order_release);
    }
    if (next + kSlot > end) return nullptr;
    void* p = next;
    next += kSlot;
    return p;
  }

  bool owns(void* p) const {
    char* b = base.load(std::memory_order_acquire);
    return b && static_cast<char*>(p) >= b && static_cast<char*>(p) < b + kReserve;
  }

  void release(void* p) {
    std::lock_guard lock(mu);
    *static_cast<void**>(p) = free_list;
    free_list = p;
  }
};

constinit Slab g_slab;

}  // namespace

void* operator new(std::size_t n) {
  if (n == kSlot)
    if (void* p = g_slab.alloc()) return p;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}

void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return ::operator new(n);
  } catch (...) {
    return nullptr;
  }
}

void operator delete(void* p) noexcept {
  if (!p) return;
  if (g_slab.owns(p))
    g_slab.release(p);
  else
    std::free(p);
}

void operator delete(void* p, std::size_t) noexcept { ::operator delete(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { ::operator delete(p); }
#endif
