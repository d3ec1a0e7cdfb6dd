#include "net/grpc.hpp"

#include <fmt/format.h>

#include <cstring>

#include "core/buffer_pool.hpp"

namespace gost::net {

namespace {
namespace pg = proto::grpc;
// Data bytes per message: a message and its header fit one pooled buffer (and stay far below
// the 4 MiB a grpc-go peer accepts).
constexpr std::size_t kMaxWrite = kRelayBufferSize - pg::kMaxChunkHeader;
}  // namespace

H2Headers grpc_request(std::string_view authority, std::string_view method_path, bool tls) {
  return {{":method", "POST"},
          {":scheme", tls ? "https" : "http"},
          {":path", std::string(method_path)},
          {":authority", std::string(authority)},
          {"content-type", "application/grpc"},
          {"user-agent", "grpc-go/1.82.1"},
          {"te", "trailers"}};
}

std::string grpc_message(std::string_view text) {
  std::string out;
  for (unsigned char c : text) {
    if (c >= 0x20 && c <= 0x7e && c != '%')
      out.push_back(static_cast<char>(c));
    else
      out += fmt::format("%{:02X}", c);
  }
  return out;
}

GrpcStream::GrpcStream(Http2StreamPtr s, bool server, log::Logger log)
    : h2_(std::move(s)), server_(server), log_(std::move(log)) {
  // A server call that ends normally ends with OK (docs/PROTOCOLS.md "grpc: request and response").
  if (server_) h2_->set_trailers({{"grpc-status", "0"}, {"grpc-message", ""}});
}

GrpcStream::~GrpcStream() { close(); }

std::string GrpcStream::check_head() {
  if (head_checked_ || server_ || !h2_->head_received()) return {};
  head_checked_ = true;
  if (h2_->status() != 200) return fmt::format("grpc: HTTP status {}", h2_->status());
  auto ct = h2_->header("content-type");
  if (!ct.starts_with("application/grpc") || (ct.size() > 16 && ct[16] != '+' && ct[16] != ';'))
    return fmt::format("grpc: unexpected content-type \"{}\"", ct);
  return {};
}

// The end of the server's response: grpc-status in the trailers, or in the head of a
// trailers-only response.
std::string GrpcStream::check_status() {
  const auto& t = h2_->trailers().empty() ? h2_->headers() : h2_->trailers();
  auto status = h2_header(t, "grpc-status");
  if (status == "0") return {};
  if (status.empty()) return "grpc: the server ended the call without a grpc-status";
  return fmt::format("grpc: status {}: {}", status, h2_header(t, "grpc-message"));
}

awaitable<std::size_t> GrpcStream::read_some(asio::mutable_buffer buf, error_code& ec) {
  for (;;) {
    if (failed_) {
      ec = failed_;
      co_return 0;
    }
    if (buf.size() == 0) {
      ec = {};
      co_return 0;
    }
    std::size_t n = co_await h2_->read_some(buf, ec);
    std::string bad = check_head();
    if (bad.empty() && ec == asio::error::eof) {
      if (!decoder_.at_boundary())
        bad = "grpc: the stream ended inside a message";
      else if (!server_)
        bad = check_status();
      if (bad.empty()) co_return 0;  // EOF
    }
    if (!bad.empty()) {
      log_.debug(bad);
      failed_ = make_error_code(boost::system::errc::bad_message);
      if (server_) {
        // Malformed input from a client: the call ends with an error status.
        h2_->set_trailers(
            {{"grpc-status", std::to_string(pg::kInternal)}, {"grpc-message", grpc_message(bad)}});
      }
      continue;
    }
    if (ec) co_return 0;
    auto* p = static_cast<std::uint8_t*>(buf.data());
    std::size_t k = decoder_.decode(p, n, p);  // in place: the output never overtakes the input
    if (decoder_.failed()) {
      log_.debug(fmt::format("grpc: bad message: {}", decoder_.message()));
      failed_ = make_error_code(boost::system::errc::bad_message);
      if (server_)
        h2_->set_trailers({{"grpc-status", std::to_string(decoder_.status())},
                           {"grpc-message", grpc_message(decoder_.message())}});
      continue;
    }
    if (k > 0) co_return k;
    // Only framing so far: read on.
  }
}

awaitable<std::size_t> GrpcStream::write_some(asio::const_buffer buf, error_code& ec) {
  ec = {};
  if (buf.size() == 0) co_return 0;
  std::size_t n = std::min(buf.size(), kMaxWrite);
  RelayBuffer scratch;  // held only while this message is being written
  auto* out = reinterpret_cast<std::uint8_t*>(scratch.data());
  std::size_t h = pg::chunk_header(out, n);
  std::memcpy(out + h, buf.data(), n);
  co_await write_all(*h2_, asio::buffer(out, h + n), ec);
  co_return ec ? 0 : n;
}

awaitable<void> GrpcStream::wait_readable(error_code& ec) {
  if (failed_) {
    ec = {};
    co_return;
  }
  co_await h2_->wait_readable(ec);
}

awaitable<void> GrpcStream::shutdown_write(error_code& ec) { co_await h2_->shutdown_write(ec); }

void GrpcStream::close() {
  if (h2_) h2_->close();
}

}  // namespace gost::net
