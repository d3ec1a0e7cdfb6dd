// core/throttle: ThrottledStream over an in-memory stream, with policy's token buckets.
#include "core/throttle.hpp"

#include <gtest/gtest.h>

#include "policy/limiter.hpp"

using namespace gost;
using namespace std::chrono_literals;

namespace {

// Reads yield as many bytes as asked (counting the largest read), writes take everything.
class FakeStream final : public Stream {
 public:
  explicit FakeStream(asio::any_io_executor ex) : ex_(std::move(ex)) {}
  asio::any_io_executor executor() override { return ex_; }
  awaitable<std::size_t> read_some(asio::mutable_buffer buf, error_code& ec) override {
    largest_read = std::max(largest_read, buf.size());
    co_return buf.size();
  }
  awaitable<std::size_t> write_some(asio::const_buffer buf, error_code& ec) override {
    written += buf.size();
    co_return buf.size();
  }
  awaitable<void> shutdown_write(error_code& ec) override { co_return; }
  void close() override { closed = true; }
  tcp::socket* raw_tcp() override { return nullptr; }
  std::size_t largest_read = 0, written = 0;
  bool closed = false;

 private:
  asio::any_io_executor ex_;
};

ThrottlePtr bucket(double rate) {
  return std::make_shared<policy::BucketThrottle>(
      std::vector{std::make_shared<policy::TokenBucket>(rate, rate)});
}

}  // namespace

TEST(ThrottledStream, UnlimitedIsNotWrapped) {
  asio::io_context io;
  auto fake = std::make_unique<FakeStream>(io.get_executor());
  Stream* raw = fake.get();
  EXPECT_EQ(throttled(std::move(fake), nullptr, nullptr).get(), raw);
}

TEST(ThrottledStream, KeepsReadsAndWritesToTheBudget) {
  asio::io_context io;
  auto fake = std::make_unique<FakeStream>(io.get_executor());
  auto* inner = fake.get();
  constexpr double rate = 4 * 1024 * 1024;  // burst = 1 s of it
  auto s = throttled(std::move(fake), bucket(rate), bucket(rate));
  ASSERT_NE(s.get(), inner);
  EXPECT_EQ(s->raw_tcp(), nullptr);  // a limited stream never splices
  EXPECT_EQ(s->raw_tcp_write(), nullptr);
  std::size_t read = 0, written = 0;
  Throttle::Clock::duration read_time{}, write_time{};
  asio::co_spawn(
      io,
      [&]() -> awaitable<void> {
        std::vector<char> buf(64 * 1024);
        constexpr std::size_t total = 6 * 1024 * 1024;  // the burst, then 2 MiB at 4 MiB/s: 0.5 s
        auto rest = [&](std::size_t done) { return std::min(buf.size(), total - done); };
        error_code ec;
        auto start = Throttle::Clock::now();
        while (read < total) {
          co_await s->wait_readable(ec);
          read += co_await s->read_some(asio::buffer(buf.data(), rest(read)), ec);
          EXPECT_FALSE(ec);
        }
        read_time = Throttle::Clock::now() - start;
        start = Throttle::Clock::now();
        while (written < total)
          written += co_await s->write_some(asio::buffer(buf.data(), rest(written)), ec);
        write_time = Throttle::Clock::now() - start;
      },
      asio::detached);
  io.run_for(10s);
  EXPECT_EQ(read, 6u * 1024 * 1024);
  EXPECT_EQ(inner->written, 6u * 1024 * 1024);
  EXPECT_LE(inner->largest_read, 64u * 1024);
  EXPECT_GT(read_time, 450ms);
  EXPECT_LT(read_time, 800ms);
  EXPECT_GT(write_time, 450ms);
  EXPECT_LT(write_time, 800ms);
}

TEST(ThrottledStream, CloseAbortsAWait) {
  asio::io_context io;
  auto fake = std::make_unique<FakeStream>(io.get_executor());
  auto* inner = fake.get();
  auto s = throttled(std::move(fake), bucket(100), nullptr);  // 100 B/s
  error_code result;
  bool done = false;
  asio::co_spawn(
      io,
      [&]() -> awaitable<void> {
        std::vector<char> buf(1000);
        error_code ec;
        co_await s->read_some(asio::buffer(buf), ec);  // the burst: 100 bytes
        co_await s->read_some(asio::buffer(buf), ec);  // waits ~1 s for the next 100
        result = ec;
        done = true;
      },
      asio::detached);
  asio::steady_timer t(io, 50ms);
  t.async_wait([&](error_code) { s->close(); });
  auto start = std::chrono::steady_clock::now();
  io.run_for(5s);
  EXPECT_TRUE(done);
  EXPECT_EQ(result, asio::error::operation_aborted);
  EXPECT_TRUE(inner->closed);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 500ms);
}
