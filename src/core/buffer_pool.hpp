// Per-thread free lists for the data path: relay buffers and splice pipes are taken only while
// bytes are in flight and given back afterwards, so an idle connection holds neither.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

namespace gost {

inline constexpr std::size_t kRelayBufferSize = 64 * 1024;
inline constexpr std::size_t kSmallBufferSize = 16 * 1024;

// Buffers of `n` bytes (kRelayBufferSize or kSmallBufferSize) from this thread's free list.
std::unique_ptr<char[]> take_buffer(std::size_t n);
void give_buffer(std::size_t n, std::unique_ptr<char[]> b);

template <std::size_t N>
class PooledBuffer {
 public:
  PooledBuffer() : data_(take_buffer(N)) {}
  ~PooledBuffer() { give_buffer(N, std::move(data_)); }
  PooledBuffer(const PooledBuffer&) = delete;
  PooledBuffer& operator=(const PooledBuffer&) = delete;
  char* data() { return data_.get(); }
  static constexpr std::size_t size() { return N; }

 private:
  std::unique_ptr<char[]> data_;
};
using RelayBuffer = PooledBuffer<kRelayBufferSize>;
// What a relay direction reads into until it sees bulk (a read that fills it): while its write
// waits for a slow peer, a short or interactive tunnel holds a quarter of a RelayBuffer (issue 16:
// 9,000 tunnels at once each held up to 2 x 64 KiB).
using SmallBuffer = PooledBuffer<kSmallBufferSize>;

// A pipe for splice(2). Empty whenever it is back in the pool.
class Pipe {
 public:
  Pipe();
  ~Pipe();
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;
  bool ok() const { return fds_[0] >= 0; }
  int read_fd() const { return fds_[0]; }
  int write_fd() const { return fds_[1]; }
  // Bytes that sit in the pipe; a pipe with bytes left is destroyed rather than pooled.
  std::size_t pending = 0;

 private:
  int fds_[2] = {-1, -1};
};

std::unique_ptr<Pipe> acquire_pipe();  // nullptr if the process is out of descriptors
void release_pipe(std::unique_ptr<Pipe> p);

// Frees this thread's pooled buffers and pipes (after a load drop, core/memory.hpp: a burst's
// pooled 64 KiB buffers sit among its freed memory and keep pages of the heap from going back).
void shed_pooled();

}  // namespace gost
