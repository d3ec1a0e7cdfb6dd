// Per-thread free lists for the data path: relay buffers and splice pipes are taken only while
// bytes are in flight and given back afterwards, so an idle connection holds neither.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

namespace gost {

inline constexpr std::size_t kRelayBufferSize = 64 * 1024;

class RelayBuffer {
 public:
  RelayBuffer();
  ~RelayBuffer();
  RelayBuffer(const RelayBuffer&) = delete;
  RelayBuffer& operator=(const RelayBuffer&) = delete;
  char* data() { return data_.get(); }
  static constexpr std::size_t size() { return kRelayBufferSize; }

 private:
  std::unique_ptr<char[]> data_;
};

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

}  // namespace gost
