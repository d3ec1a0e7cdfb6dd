#include "core/foreign_stream.hpp"

#include <utility>

namespace gost {
namespace {

struct OpResult {
  error_code ec;
  std::size_t n = 0;
};

// Each runs on the stream's own executor (co_spawn); the caller's buffer stays valid because the
// caller is suspended until the result is dispatched back to it.
awaitable<OpResult> foreign_read(std::shared_ptr<Stream> s, asio::mutable_buffer buf) {
  OpResult r;
  r.n = co_await s->read_some(buf, r.ec);
  co_return r;
}
awaitable<OpResult> foreign_write(std::shared_ptr<Stream> s, asio::const_buffer buf) {
  OpResult r;
  r.n = co_await s->write_some(buf, r.ec);
  co_return r;
}
awaitable<OpResult> foreign_wait(std::shared_ptr<Stream> s) {
  OpResult r;
  co_await s->wait_readable(r.ec);
  co_return r;
}
awaitable<OpResult> foreign_shutdown(std::shared_ptr<Stream> s) {
  OpResult r;
  co_await s->shutdown_write(r.ec);
  co_return r;
}

class ForeignStream final : public Stream {
 public:
  ForeignStream(std::shared_ptr<Stream> inner, asio::any_io_executor here)
      : inner_(std::move(inner)),
        owner_(inner_->executor()),
        here_(std::move(here)),
        remote_(inner_->remote_address()),
        local_(inner_->local_address()) {}
  ~ForeignStream() override {
    // The last reference goes on the owner's thread (pending operations hold their own).
    asio::post(owner_, [s = std::move(inner_)]() mutable {
      s->close();
      s.reset();
    });
  }

  asio::any_io_executor executor() override { return here_; }

  awaitable<std::size_t> read_some(asio::mutable_buffer buf, error_code& ec) override {
    auto r = co_await asio::co_spawn(owner_, foreign_read(inner_, buf), asio::use_awaitable);
    ec = r.ec;
    co_return r.n;
  }
  awaitable<std::size_t> write_some(asio::const_buffer buf, error_code& ec) override {
    auto r = co_await asio::co_spawn(owner_, foreign_write(inner_, buf), asio::use_awaitable);
    ec = r.ec;
    co_return r.n;
  }
  awaitable<void> wait_readable(error_code& ec) override {
    auto r = co_await asio::co_spawn(owner_, foreign_wait(inner_), asio::use_awaitable);
    ec = r.ec;
  }
  awaitable<void> shutdown_write(error_code& ec) override {
    auto r = co_await asio::co_spawn(owner_, foreign_shutdown(inner_), asio::use_awaitable);
    ec = r.ec;
  }
  void close() override {
    asio::post(owner_, [s = inner_] { s->close(); });
  }
  std::string remote_address() const override { return remote_; }
  std::string local_address() const override { return local_; }

 private:
  std::shared_ptr<Stream> inner_;
  asio::any_io_executor owner_;
  asio::any_io_executor here_;
  std::string remote_;
  std::string local_;
};

// Owns a shared stream on its own executor: the handle a same-worker caller gets.
class SharedStream final : public Stream {
 public:
  explicit SharedStream(std::shared_ptr<Stream> s) : s_(std::move(s)) {}
  ~SharedStream() override { s_->close(); }
  asio::any_io_executor executor() override { return s_->executor(); }
  awaitable<std::size_t> read_some(asio::mutable_buffer buf, error_code& ec) override {
    return s_->read_some(buf, ec);
  }
  awaitable<std::size_t> write_some(asio::const_buffer buf, error_code& ec) override {
    return s_->write_some(buf, ec);
  }
  awaitable<void> wait_readable(error_code& ec) override { return s_->wait_readable(ec); }
  Poll poll_readable() override { return s_->poll_readable(); }
  bool writable_now() override { return s_->writable_now(); }
  awaitable<void> wait_writable(error_code& ec) override { return s_->wait_writable(ec); }
  awaitable<void> shutdown_write(error_code& ec) override { return s_->shutdown_write(ec); }
  void close() override { s_->close(); }
  tcp::socket* raw_tcp() override { return s_->raw_tcp(); }
  tcp::socket* raw_tcp_write() override { return s_->raw_tcp_write(); }
  std::string remote_address() const override { return s_->remote_address(); }
  std::string local_address() const override { return s_->local_address(); }

 private:
  std::shared_ptr<Stream> s_;
};

}  // namespace

StreamPtr adopt_stream(std::shared_ptr<Stream> s, asio::any_io_executor here) {
  if (s->executor() == here) return std::make_unique<SharedStream>(std::move(s));
  return std::make_unique<ForeignStream>(std::move(s), std::move(here));
}

}  // namespace gost
