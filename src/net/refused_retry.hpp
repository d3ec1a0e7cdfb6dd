// A client stream that its server may refuse by ending it before sending a single byte — GOST's
// mws/mwss listener closes a new smux stream at once (a FIN right after the SYN, no data) when its
// connection queue is full (docs/PROTOCOLS.md "smux: refused streams"). Such a refusal is safe to
// retry while the server can have done nothing with the tunnel (issue 16), so this wrapper keeps
// a copy of what the tunnel wrote until the first byte arrives and, when the stream ends first,
// opens another one (reopen()) and writes the copy again there. The connector on top (socks5,
// http, relay with its reply read lazily) never notices.
//
// A tunnel is retried only while
// - nothing has been read from it (a reply, even an error reply, means the server served it);
// - everything it wrote is still held: at most `replay_limit` bytes;
// - it has not half-closed: a tunnel that sent everything and shut down, to a target that read it
//   and closed without a byte (GOST's relay server then never sends its reply either), looks
//   exactly like a refusal, and sending its bytes again would deliver them twice;
// - the stream ended within `refusal_window` of its opening: GOST refuses a stream as soon as it
//   takes it from the session; a stream that ends later is no refusal (a relay server's request
//   timeout ending a tunnel that never wrote, a target that took its time and closed);
// - fewer than `max_retries` retries were made (back-off `backoff`, doubled each time).
// Once the first byte has been read the copy is freed and the wrapper only forwards calls: an idle
// tunnel holds no buffer (docs/ARCHITECTURE.md "The relay").
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "core/stream.hpp"

namespace gost::net {

struct RefusedRetryLimits {
  int max_retries = 3;
  std::chrono::milliseconds backoff{50};
  std::size_t replay_limit = 16 * 1024;
  std::chrono::nanoseconds reopen_timeout = std::chrono::seconds(15);
  std::chrono::nanoseconds refusal_window = std::chrono::seconds(5);
};

class RefusedRetryStream : public Stream {
 public:
  RefusedRetryStream(StreamPtr first, RefusedRetryLimits limits);
  ~RefusedRetryStream() override;

  asio::any_io_executor executor() override { return inner_->executor(); }
  awaitable<std::size_t> read_some(asio::mutable_buffer buf, error_code& ec) override;
  awaitable<std::size_t> write_some(asio::const_buffer buf, error_code& ec) override;
  awaitable<void> wait_readable(error_code& ec) override { return inner_->wait_readable(ec); }
  awaitable<void> shutdown_write(error_code& ec) override;
  void close() override;
  std::string remote_address() const override { return inner_->remote_address(); }
  std::string local_address() const override { return inner_->local_address(); }

  int retries() const { return retries_; }

 protected:
  // A new stream to the same server (throws system_error when there is none).
  virtual awaitable<StreamPtr> reopen() = 0;
  // Every refusal seen: `why` says what happens next ("retrying", "given up after 4 attempts",
  // "not retried: ..."). Not called for the half-closed case, which may be no refusal at all.
  virtual void refused(std::string_view why) = 0;
  // Names the server in the tunnel's error line ("dialer mws 127.0.0.1:8080").
  virtual std::string server() const = 0;

 private:
  awaitable<bool> retry(error_code& ec);
  awaitable<StreamPtr> reopen_bounded();
  void stop_watching();
  void lost(std::string_view why);
  void writer_done();

  StreamPtr inner_;
  RefusedRetryLimits limits_;
  std::string sent_;      // every byte written, while watching_ && replayable_
  bool watching_ = true;  // nothing read yet and a retry still possible
  bool replayable_ = true;
  bool half_closed_ = false;
  bool switching_ = false;  // a retry is replacing inner_: writers wait
  bool closed_ = false;
  int writers_ = 0;                               // writes in flight on inner_
  std::chrono::steady_clock::time_point opened_;  // of inner_
  int retries_ = 0;
  // Made by the first retry: writers wait on it while switching_, the retry while writers_ > 0.
  std::unique_ptr<asio::steady_timer> cond_;
  asio::steady_timer* backoff_ = nullptr;  // the retry's pause, while it lasts
  struct Cancel {
    asio::cancellation_signal signal;
    bool expired = false;
  };
  std::shared_ptr<Cancel> reopening_;  // while reopen() runs: close() cancels it
};

}  // namespace gost::net
