// A Stream that first returns bytes already read from the inner stream (e.g. bytes that arrived
// in the same read as a protocol header), then reads from the inner stream.
#pragma once

#include <string>

#include "core/stream.hpp"

namespace gost {

class BufferedStream final : public Stream {
 public:
  BufferedStream(StreamPtr inner, std::string prefix)
      : inner_(std::move(inner)), prefix_(std::move(prefix)) {}

  asio::any_io_executor executor() override { return inner_->executor(); }
  awaitable<std::size_t> read_some(asio::mutable_buffer buf, error_code& ec) override;
  awaitable<std::size_t> write_some(asio::const_buffer buf, error_code& ec) override {
    return inner_->write_some(buf, ec);
  }
  awaitable<void> wait_readable(error_code& ec) override;
  Poll poll_readable() override {
    return offset_ < prefix_.size() ? Poll{Poll::ready} : inner_->poll_readable();
  }
  bool writable_now() override { return inner_->writable_now(); }
  awaitable<void> wait_writable(error_code& ec) override { return inner_->wait_writable(ec); }
  awaitable<void> shutdown_write(error_code& ec) override { return inner_->shutdown_write(ec); }
  void close() override { inner_->close(); }
  tcp::socket* raw_tcp() override {
    return offset_ == prefix_.size() ? inner_->raw_tcp() : nullptr;
  }
  tcp::socket* raw_tcp_write() override { return inner_->raw_tcp_write(); }
  std::string remote_address() const override { return inner_->remote_address(); }
  std::string local_address() const override { return inner_->local_address(); }

 private:
  StreamPtr inner_;
  std::string prefix_;
  std::size_t offset_ = 0;
};

// Wraps `s` only when there is something to replay.
inline StreamPtr with_prefix(StreamPtr s, std::string prefix) {
  if (prefix.empty()) return s;
  return std::make_unique<BufferedStream>(std::move(s), std::move(prefix));
}

}  // namespace gost
