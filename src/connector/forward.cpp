// Connector "forward": the node itself is the destination; the stream is used as it is.
#include "core/component.hpp"

namespace gost {
namespace {

class ForwardConnector final : public Connector {
 public:
  awaitable<StreamPtr> connect(StreamPtr s, std::string_view, std::string_view,
                               const log::Logger&) override {
    co_return s;
  }
};

GOST_REGISTER(ConnectorRegistry, "forward", [](const ConnectorOptions&) {
  return std::shared_ptr<Connector>(new ForwardConnector());
});

}  // namespace
}  // namespace gost
