// libFuzzer target: the policy matchers (src/policy/): bypass, admission and hosts rules built
// from fuzzed matcher lists, then asked about fuzzed targets. Nothing may crash, hang or read
// out of bounds; a compiled rule set asked twice answers the same.
#include <cstdint>
#include <string>
#include <vector>

#include "policy/admission.hpp"
#include "policy/bypass.hpp"
#include "policy/hosts.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace p = gost::policy;
  // Lines: the matchers, then (after an empty line) the targets asked about.
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> matchers, targets;
  bool asking = false;
  while (!in.empty()) {
    auto nl = in.find('\n');
    std::string line(in.substr(0, nl));
    in = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
    if (line.empty()) {
      asking = true;
      continue;
    }
    (asking ? targets : matchers).push_back(std::move(line));
  }
  std::vector<std::string> rejected;
  auto bypass =
      p::compile_bypass(!matchers.empty() && matchers[0].size() % 2, "", matchers, &rejected);
  auto admission = p::compile_admission(false, matchers, &rejected);
  std::vector<gost::config::HostMapping> mappings;
  for (const auto& m : matchers)
    for (auto& mapping : p::parse_hosts_line(m)) mappings.push_back(std::move(mapping));
  auto hosts = p::compile_hosts(mappings, nullptr);
  for (const auto& t : targets) {
    const bool once = bypass->bypasses("tcp", t);
    if (bypass->bypasses("tcp", t) != once) __builtin_trap();
    (void)bypass->bypasses("udp", t, "example.com:80");
    if (auto ip = p::parse_ip(p::split_host_port_view(t).host)) (void)admission->admits(*ip);
    (void)hosts->map_address(t);
    (void)hosts->lookup(t, "ip6");
    (void)p::glob_match(t, matchers.empty() ? std::string() : matchers.back());
  }
  return 0;
}
