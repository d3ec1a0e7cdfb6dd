#include "policy/ingress.hpp"

namespace gost::policy {

namespace {
std::string strip_port(std::string_view host) {
  // net.SplitHostPort: "[v6]:p" or "h:p" with a single colon; otherwise the host as is.
  if (!host.empty() && host.front() == '[') {
    auto close = host.find(']');
    if (close != std::string_view::npos && close + 1 < host.size() && host[close + 1] == ':')
      return std::string(host.substr(1, close - 1));
    return std::string(host);
  }
  auto colon = host.find(':');
  if (colon != std::string_view::npos && host.find(':', colon + 1) == std::string_view::npos &&
      colon > 0)
    return std::string(host.substr(0, colon));
  return std::string(host);
}
}  // namespace

Ingress::Ingress(const std::vector<IngressRule>& rules) {
  for (const auto& r : rules) put(configured_, r);
  rules_ = configured_;
}

void Ingress::put(std::unordered_map<std::string, std::string>& m, const IngressRule& r) {
  if (r.hostname.empty() || r.endpoint.empty()) return;
  std::string host = r.hostname.front() == '*' ? r.hostname.substr(1) : r.hostname;
  if (m.size() >= kMaxRules && !m.contains(host)) return;
  m[host] = r.endpoint;
}

void Ingress::set_rule(const IngressRule& r) {
  std::lock_guard lock(mu_);
  put(registered_, r);
  put(rules_, r);
}

void Ingress::update(const std::vector<IngressRule>& loaded) {
  std::unordered_map<std::string, std::string> fresh;
  for (const auto& r : loaded) put(fresh, r);
  std::lock_guard lock(mu_);
  loaded_ = std::move(fresh);
  rebuild();
}

void Ingress::rebuild() {
  rules_ = configured_;
  for (const auto* layer : {&loaded_, &registered_})
    for (const auto& [host, ep] : *layer)
      if (rules_.size() < kMaxRules || rules_.contains(host)) rules_[host] = ep;
}

std::size_t Ingress::size() const {
  std::lock_guard lock(mu_);
  return rules_.size();
}

std::string Ingress::lookup(const std::string& key) const {
  auto it = rules_.find(key);
  return it == rules_.end() ? std::string() : it->second;
}

std::string Ingress::endpoint(std::string_view h) const {
  if (h.empty()) return {};
  std::string host = strip_port(h);
  std::lock_guard lock(mu_);
  if (rules_.empty()) return {};
  std::string ep = lookup(host);
  if (ep.empty()) ep = lookup("." + host);
  if (ep.empty()) {
    std::string_view s = host;
    for (;;) {
      auto dot = s.find('.');
      if (dot == std::string_view::npos || dot == 0) break;
      ep = lookup(std::string(s.substr(dot)));
      s.remove_prefix(dot + 1);
      if (!ep.empty()) break;
    }
  }
  return ep;
}

std::vector<IngressRule> parse_tunnel_rules(std::string_view text) {
  std::vector<IngressRule> out;
  while (!text.empty()) {
    auto comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    auto colon = item.find(':');
    if (colon == std::string_view::npos) continue;
    out.push_back({std::string(item.substr(0, colon)), std::string(item.substr(colon + 1))});
  }
  return out;
}

std::optional<IngressRule> parse_ingress_line(std::string_view line) {
  std::string_view fields[2];
  std::size_t n = 0, i = 0;
  auto space = [](char c) { return c == ' ' || c == '\t'; };
  while (n < 2 && i < line.size()) {
    while (i < line.size() && space(line[i])) ++i;
    std::size_t start = i;
    while (i < line.size() && !space(line[i])) ++i;
    if (i > start) fields[n++] = line.substr(start, i - start);
  }
  if (n < 2) return std::nullopt;
  return IngressRule{.hostname = std::string(fields[0]), .endpoint = std::string(fields[1])};
}

}  // namespace gost::policy
