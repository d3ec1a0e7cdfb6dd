#include "policy/admission.hpp"

#include <fmt/format.h>

namespace gost::policy {

std::shared_ptr<const AdmissionRules> compile_admission(bool whitelist,
                                                        const std::vector<std::string>& items,
                                                        std::vector<std::string>* rejected) {
  auto rules = std::make_shared<AdmissionRules>();
  rules->whitelist = whitelist;
  for (const auto& item : items) {
    if (auto ip = parse_ip(item); ip && item.front() != '[') {
      rules->matchers.add(*ip, *ip);
    } else if (auto net = parse_cidr(item)) {
      rules->matchers.add(net->first, net->second);
    } else if (rejected) {
      rejected->push_back(item);
    }
  }
  rules->matchers.finish();
  return rules;
}

Admission::Admission(const config::Admission& cfg)
    : name_(cfg.name), whitelist_(cfg.whitelist || cfg.reverse), inline_(cfg.matchers) {
  std::vector<std::string> rejected;
  set(compile_admission(whitelist_, inline_, &rejected));
  if (!rejected.empty())
    throw config::ConfigError(
        fmt::format("admission {}: matcher \"{}\" is neither an IP address nor a CIDR (host "
                    "names are not supported)",
                    name_, rejected.front()));
}

std::vector<std::string> Admission::update(const std::vector<std::string>& items) {
  std::vector<std::string> all = inline_;
  all.insert(all.end(), items.begin(), items.end());
  std::vector<std::string> rejected;
  set(compile_admission(whitelist_, all, &rejected));
  return rejected;
}

bool admits(const Admissions& admissions, std::string_view client) {
  if (admissions.empty() || client.empty()) return true;
  // A peer that is not an IP (a unix socket) matches nothing: a whitelist refuses it.
  const auto ip = parse_ip(split_host_port_view(client).host);
  for (const auto& a : admissions) {
    const auto rules = a->current();
    if (ip ? !rules->admits(*ip) : rules->whitelist) return false;
  }
  return true;
}

bool has_plugin(const Admissions& admissions) {
  for (const auto& a : admissions)
    if (a->plugin()) return true;
  return false;
}

}  // namespace gost::policy
