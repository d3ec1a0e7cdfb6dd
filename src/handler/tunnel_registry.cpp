#include "handler/tunnel_registry.hpp"

#include <algorithm>

#include "core/foreign_stream.hpp"

namespace gost::tunnel {

namespace rp = proto::relay;

bool Registry::add(const std::string& tunnel, std::shared_ptr<Connector> c) {
  std::lock_guard lock(mu_);
  auto it = tunnels_.find(tunnel);
  if (it == tunnels_.end()) {
    if (tunnels_.size() >= kMaxTunnels) return false;
    it = tunnels_.emplace(tunnel, std::vector<std::shared_ptr<Connector>>{}).first;
  }
  auto& list = it->second;
  std::erase_if(list, [](const auto& x) { return x->closed.load(); });
  if (list.size() >= kMaxConnectorsPerTunnel) return false;
  list.push_back(std::move(c));
  return true;
}

void Registry::remove(const std::string& tunnel, const Connector* c) {
  std::lock_guard lock(mu_);
  auto it = tunnels_.find(tunnel);
  if (it == tunnels_.end()) return;
  std::erase_if(it->second, [c](const auto& x) { return x.get() == c; });
  if (it->second.empty()) tunnels_.erase(it);
}

std::size_t Registry::connectors(const std::string& tunnel) {
  std::lock_guard lock(mu_);
  auto it = tunnels_.find(tunnel);
  return it == tunnels_.end() ? 0 : it->second.size();
}

std::vector<std::shared_ptr<Connector>> Registry::all() {
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<Connector>> out;
  for (const auto& [id, list] : tunnels_) out.insert(out.end(), list.begin(), list.end());
  return out;
}

std::shared_ptr<Connector> Registry::select(const std::string& tunnel, std::string_view network) {
  std::lock_guard lock(mu_);
  auto it = tunnels_.find(tunnel);
  if (it == tunnels_.end() || it->second.empty()) return nullptr;
  const auto& list = it->second;
  if (list.size() == 1) return list[0]->closed ? nullptr : list[0];
  const bool udp = network == "udp";
  constexpr std::uint8_t kMaxWeight = 0xFF;
  std::vector<std::pair<std::shared_ptr<Connector>, unsigned>> candidates;
  bool max_found = false;
  for (const auto& c : list) {
    if (c->closed || c->id.is_udp() != udp) continue;
    unsigned w = c->id.weight() == 0 ? 1 : c->id.weight();
    if (w == kMaxWeight && !max_found) {
      candidates.clear();
      max_found = true;
    }
    if (w == kMaxWeight || !max_found) candidates.emplace_back(c, w);
  }
  if (candidates.empty()) return nullptr;
  unsigned total = 0;
  for (const auto& [c, w] : candidates) total += w;
  unsigned pick = std::uniform_int_distribution<unsigned>(0, total - 1)(rng_);
  for (const auto& [c, w] : candidates) {
    if (pick < w) return c;
    pick -= w;
  }
  return candidates.back().first;
}

namespace {

// On the connector's executor: a new stream on its session with `header` written on it.
awaitable<std::shared_ptr<Stream>> open_on_session(std::shared_ptr<Connector> c,
                                                   std::string header) {
  error_code ec;
  StreamPtr s = co_await c->session->open_stream(ec);
  if (!s) co_return nullptr;
  co_await write_all(*s, asio::buffer(header), ec);
  if (ec) co_return nullptr;
  co_return std::shared_ptr<Stream>(std::move(s));
}

}  // namespace

awaitable<StreamPtr> dial_connector(Registry& registry, const std::string& tunnel,
                                    std::string_view network, std::string header,
                                    std::string* connector_id) {
  auto here = co_await asio::this_coro::executor;
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto c = registry.select(tunnel, network);
    if (!c) co_return nullptr;
    auto opening = asio::co_spawn(c->executor, open_on_session(c, header), asio::use_awaitable);
    std::shared_ptr<Stream> s = co_await std::move(opening);
    if (!s) continue;
    if (connector_id) *connector_id = c->id.to_string();
    co_return adopt_stream(std::move(s), here);
  }
  co_return nullptr;
}

}  // namespace gost::tunnel
