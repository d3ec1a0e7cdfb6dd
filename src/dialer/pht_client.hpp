// What the PHT dialers share — pht/phts (HTTP/1.1, dialer/pht.cpp) and http3/h3 (HTTP/3,
// dialer/h3.cpp): a tunnel is a PHT client session (net/pht) over the dialer's request carrier,
// and it can only be the first node of a route (a session needs requests of its own to the node,
// not one stream through a previous node).
#pragma once

#include <fmt/format.h>

#include <memory>
#include <string>

#include "core/component.hpp"
#include "net/pht.hpp"

namespace gost {

class PhtClientDialer : public Dialer {
 public:
  // `why_first_only` ends the error for a later node: "only the first node ... (<why>)".
  PhtClientDialer(std::string where, std::string why_first_only)
      : where_(std::move(where)), why_first_only_(std::move(why_first_only)) {}

  awaitable<StreamPtr> dial(std::string_view, const log::Logger& log) override {
    co_return co_await net::pht::open_client(carrier_, opts_, log);
  }

  awaitable<StreamPtr> handshake(StreamPtr s, std::string_view) override {
    if (net::pht::is_client_stream(*s)) co_return s;  // made by our dial()
    throw system_error(
        asio::error::operation_not_supported,
        fmt::format("{}: only the first node of a chain can use it ({})", where_, why_first_only_));
  }

 protected:
  std::string where_;
  std::string why_first_only_;
  net::pht::ClientOptions opts_;
  std::shared_ptr<net::pht::ClientCarrier> carrier_;
};

}  // namespace gost
