// Dialer "tcp": a plain TCP connection to the node.
#include "chain/chain.hpp"
#include "core/component.hpp"

namespace gost {
namespace {

class TcpDialer final : public Dialer {
 public:
  awaitable<StreamPtr> dial(std::string_view addr, const log::Logger&) override {
    co_return co_await dial_tcp(addr);
  }
};

GOST_REGISTER(DialerRegistry, "tcp", [](const DialerOptions& o) {
  reject_unsupported(o.config.metadata, {"mptcp"}, "dialer tcp");
  return std::shared_ptr<Dialer>(new TcpDialer());
});

}  // namespace
}  // namespace gost
