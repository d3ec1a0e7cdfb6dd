#include "policy/bypass.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>

namespace gost::policy {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

bool parse_int(std::string_view s, int& out) {
  if (s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

// xnet.PortRange.Parse: "80" (0..65535) or "min-max"; nullopt = not a port (then: any port).
std::optional<PortRange> parse_port_range(std::string_view s) {
  const auto dash = s.find('-');
  int a = 0, b = 0;
  if (dash == std::string_view::npos) {
    if (!parse_int(s, a) || a < 0 || a > 65535) return std::nullopt;
    return PortRange{a, a};
  }
  if (!parse_int(s.substr(0, dash), a) || !parse_int(s.substr(dash + 1), b)) return std::nullopt;
  return PortRange{a, b};
}

int target_port(std::string_view port) {
  int p = 0;
  return parse_int(port, p) ? p : 0;
}

bool any_port(const std::vector<PortRange>& ranges, int port) {
  return std::any_of(ranges.begin(), ranges.end(),
                     [port](const PortRange& r) { return r.contains(port); });
}

// A host key as it is stored and looked up: lower case; an IP literal in its canonical form.
std::string host_key(std::string_view host) {
  if (auto ip = parse_ip(host)) return ip->to_string();
  return lower(host);
}

std::size_t utf8_len(unsigned char c) {
  return c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
}

// The literal characters a pattern ends with (after its last '*' or '?') must end `text` too: a
// cheap test that rules out almost every glob of a long list before the backtracking match.
bool tail_may_match(std::string_view pattern, std::string_view text) {
  std::size_t p = pattern.size(), t = text.size();
  while (p > 0 && pattern[p - 1] != '*' && pattern[p - 1] != '?') {
    if (t == 0 || pattern[p - 1] != text[t - 1]) return false;
    --p;
    --t;
  }
  return true;
}

}  // namespace

bool glob_match(std::string_view pattern, std::string_view text) {
  std::size_t p = 0, t = 0;
  std::size_t star = std::string_view::npos, resume = 0;
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = t;
    } else if (p < pattern.size() && pattern[p] == '?') {
      ++p;
      t += utf8_len(static_cast<unsigned char>(text[t]));
    } else if (p < pattern.size() && pattern[p] == text[t]) {
      ++p;
      ++t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      resume += utf8_len(static_cast<unsigned char>(text[resume]));
      t = resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size() && t == text.size();
}

std::shared_ptr<const BypassRules> compile_bypass(bool whitelist, std::string network,
                                                  const std::vector<std::string>& items,
                                                  std::vector<std::string>* rejected) {
  auto rules = std::make_shared<BypassRules>();
  rules->whitelist = whitelist;
  rules->network = std::move(network);
  // The order of GOST's reload(): CIDR, glob, IP range (or single IP), else host[:port].
  for (const auto& item : items) {
    if (item.empty()) continue;
    if (auto net = parse_cidr(item)) {
      rules->ips.add(net->first, net->second);
      continue;
    }
    auto hp = split_host_port_view(item);
    if (item.find_first_of("*?") != std::string::npos) {
      if (hp.host.find_first_of("[{\\") != std::string_view::npos) {
        if (rejected) rejected->push_back(item);
        continue;
      }
      PortRange ports;
      if (hp.has_port)
        if (auto pr = parse_port_range(hp.port)) ports = *pr;
      rules->globs.push_back({lower(hp.host), ports});
      continue;
    }
    if (auto range = parse_ip_range(item)) {
      rules->ips.add(range->first, range->second);
      continue;
    }
    PortRange ports;
    if (hp.has_port && !hp.host.empty()) {
      if (auto pr = parse_port_range(hp.port)) ports = *pr;
    } else {
      hp.host = item;
    }
    rules->hosts[host_key(hp.host)].push_back(ports);
  }
  rules->ips.finish();
  return rules;
}

bool BypassRules::matches(std::string_view addr) const {
  if (addr.empty()) return false;
  const auto hp = split_host_port_view(addr);
  const std::string_view host = hp.host.empty() ? addr : hp.host;
  const auto ip = parse_ip(host);
  if (ip && ips.contains(*ip)) return true;
  const int port = target_port(hp.port);
  if (!hosts.empty()) {
    const std::string dotted = "." + (ip ? ip->to_string() : lower(host));
    auto hit = [&](std::string_view key) {
      auto it = hosts.find(key);
      return it != hosts.end() && any_port(it->second, port);
    };
    // The name itself, ".name", then every parent domain as ".parent" (AddrMatcher).
    std::string_view name = std::string_view(dotted).substr(1);
    if (hit(name) || hit(dotted)) return true;
    for (auto dot = name.find('.'); dot != std::string_view::npos && dot > 0;
         dot = name.find('.')) {
      if (hit(name.substr(dot))) return true;
      name = name.substr(dot + 1);
    }
  }
  if (!globs.empty()) {
    const std::string name = lower(host);
    for (const auto& g : globs)
      if (g.ports.contains(port) && tail_may_match(g.pattern, name) && glob_match(g.pattern, name))
        return true;
  }
  return false;
}

bool BypassRules::bypasses(std::string_view net, std::string_view addr,
                           std::string_view host) const {
  if (addr.empty()) return false;
  // A bypass bound to a network does not apply to the others.
  if (!network.empty() && net.substr(0, network.size()) != network) return false;
  const bool matched = matches(addr) || (!host.empty() && host != addr && matches(host));
  return matched != whitelist;
}

Bypass::Bypass(const config::Bypass& cfg)
    : name_(cfg.name),
      whitelist_(cfg.whitelist || cfg.reverse),
      network_(cfg.network),
      inline_(cfg.matchers) {
  std::vector<std::string> rejected;
  set(compile_bypass(whitelist_, network_, inline_, &rejected));
  if (!rejected.empty())
    throw config::ConfigError(
        fmt::format("bypass {}: matcher \"{}\": only '*' and '?' are supported in patterns", name_,
                    rejected.front()));
}

std::vector<std::string> Bypass::update(const std::vector<std::string>& items) {
  std::vector<std::string> all = inline_;
  all.insert(all.end(), items.begin(), items.end());
  std::vector<std::string> rejected;
  set(compile_bypass(whitelist_, network_, all, &rejected));
  return rejected;
}

bool bypasses(const Bypasses& list, std::string_view network, std::string_view addr,
              std::string_view host) {
  if (list.empty()) return false;
  BypassVotes votes;
  for (const auto& b : list) {
    const auto rules = b->current();
    votes.add(rules->whitelist, rules->bypasses(network, addr, host));
  }
  return votes.bypassed();
}

bool has_plugin(const Bypasses& list) {
  for (const auto& b : list)
    if (b->plugin()) return true;
  return false;
}

}  // namespace gost::policy
