#include "core/auth.hpp"

namespace gost {

void Auther::add(std::string user, std::string password) {
  if (user.empty()) return;
  users_.insert_or_assign(std::move(user), std::move(password));
}

std::optional<std::string> Auther::authenticate(std::string_view user,
                                                std::string_view password) const {
  auto it = users_.find(user);
  if (it == users_.end()) return std::nullopt;
  if (!it->second.empty() && it->second != password) return std::nullopt;
  return it->first;
}

std::optional<std::string> Authenticator::authenticate(std::string_view user,
                                                       std::string_view password) const {
  for (const auto& a : authers_)
    if (auto id = a.authenticate(user, password)) return id;
  return std::nullopt;
}

}  // namespace gost
