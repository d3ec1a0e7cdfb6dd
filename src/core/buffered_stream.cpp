#include "core/buffered_stream.hpp"

#include <cstring>

namespace gost {

awaitable<std::size_t> BufferedStream::read_some(asio::mutable_buffer buf, error_code& ec) {
  if (offset_ < prefix_.size()) {
    std::size_t n = std::min(buf.size(), prefix_.size() - offset_);
    std::memcpy(buf.data(), prefix_.data() + offset_, n);
    offset_ += n;
    if (offset_ == prefix_.size()) std::string().swap(prefix_), offset_ = 0;
    ec = {};
    co_return n;
  }
  co_return co_await inner_->read_some(buf, ec);
}

awaitable<void> BufferedStream::wait_readable(error_code& ec) {
  if (offset_ < prefix_.size()) {
    ec = {};
    co_return;
  }
  co_await inner_->wait_readable(ec);
}

}  // namespace gost
