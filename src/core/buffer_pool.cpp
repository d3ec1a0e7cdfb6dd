#include "core/buffer_pool.hpp"

#include <fcntl.h>
#include <unistd.h>

namespace gost {
namespace {

constexpr std::size_t kMaxPooled = 32;
constexpr int kPipeSize = 256 * 1024;

struct ThreadPools {
  std::vector<std::unique_ptr<char[]>> large;  // kRelayBufferSize
  std::vector<std::unique_ptr<char[]>> small;  // kSmallBufferSize
  std::vector<std::unique_ptr<Pipe>> pipes;
};
thread_local ThreadPools pools;

std::vector<std::unique_ptr<char[]>>& free_list(std::size_t n) {
  return n == kSmallBufferSize ? pools.small : pools.large;
}

}  // namespace

std::unique_ptr<char[]> take_buffer(std::size_t n) {
  auto& list = free_list(n);
  if (list.empty()) return std::unique_ptr<char[]>(new char[n]);
  auto b = std::move(list.back());
  list.pop_back();
  return b;
}

void give_buffer(std::size_t n, std::unique_ptr<char[]> b) {
  auto& list = free_list(n);
  if (b && list.size() < kMaxPooled) list.push_back(std::move(b));
}

Pipe::Pipe() {
  if (::pipe2(fds_, O_NONBLOCK | O_CLOEXEC) != 0) {
    fds_[0] = fds_[1] = -1;
    return;
  }
  ::fcntl(fds_[1], F_SETPIPE_SZ, kPipeSize);  // best effort: larger pipes mean fewer syscalls
}

Pipe::~Pipe() {
  if (fds_[0] >= 0) ::close(fds_[0]);
  if (fds_[1] >= 0) ::close(fds_[1]);
}

std::unique_ptr<Pipe> acquire_pipe() {
  if (!pools.pipes.empty()) {
    auto p = std::move(pools.pipes.back());
    pools.pipes.pop_back();
    return p;
  }
  auto p = std::make_unique<Pipe>();
  if (!p->ok()) return nullptr;
  return p;
}

void release_pipe(std::unique_ptr<Pipe> p) {
  if (p && p->pending == 0 && pools.pipes.size() < kMaxPooled) pools.pipes.push_back(std::move(p));
}

void shed_pooled() {
  pools.large.clear();
  pools.small.clear();
  pools.pipes.clear();
}

}  // namespace gost
