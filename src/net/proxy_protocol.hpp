// The PROXY protocol on accepted connections (docs/PROTOCOLS.md "PROXY protocol"): a v1 or v2
// header read in the connection's own coroutine. The codec is proto/proxy_protocol; the header a
// node is sent is written by chain/ (dial_route).
#pragma once

#include <chrono>

#include "core/log.hpp"
#include "core/stream.hpp"

namespace gost::net {

// GOST's header read timeout (proxyproto.WrapListener(..., 10*time.Second) in its listeners).
inline constexpr std::chrono::seconds kProxyHeaderTimeout{10};

// Looks for a PROXY header when `s` is an accepted socket its listener marked
// (TcpStream::expect_proxy_header, from the service's `proxyProtocol`); otherwise, and on any
// later call, does nothing. The header, exactly, is consumed: what follows stays in the socket for
// the transport's handshake. A header with addresses replaces the ones the stream reports (and so
// every wrapper's above it). No header: nothing is consumed. Throws system_error on a malformed or
// truncated header (invalid_argument) and after kProxyHeaderTimeout without one (timed_out).
awaitable<void> read_proxy_header(Stream& s);

// read_proxy_header() for the service's connection coroutine: false when the connection must be
// closed, the reason logged on `log` (error for a malformed header, debug for a timeout or reset).
awaitable<bool> accept_proxy_header(Stream& s, const log::Logger& log);

}  // namespace gost::net
