#include "core/counted_stream.hpp"

#include "core/metrics.hpp"
#include "core/throttle.hpp"

namespace gost {

awaitable<std::size_t> CountedStream::read_some(asio::mutable_buffer buf, error_code& ec) {
  std::size_t n = co_await inner_->read_some(buf, ec);
  sink_->input(n);
  co_return n;
}

awaitable<std::size_t> CountedStream::write_some(asio::const_buffer buf, error_code& ec) {
  std::size_t n = co_await inner_->write_some(buf, ec);
  sink_->output(n);
  co_return n;
}

Stream& uncounted(Stream& s) {
  if (auto* t = dynamic_cast<ThrottledStream*>(&s)) return uncounted(t->inner());
  if (auto* c = dynamic_cast<CountedStream*>(&s)) return c->inner();
  return s;
}

}  // namespace gost
