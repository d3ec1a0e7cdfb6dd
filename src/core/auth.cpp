#include "core/auth.hpp"

namespace gost {

Auther::Auther() : state_(std::make_shared<State>()) {
  state_->table.store(std::make_shared<const Table>());
}

void Auther::add(std::string user, std::string password) {
  if (user.empty()) return;
  state_->inline_users.insert_or_assign(std::move(user), std::move(password));
  state_->table.store(std::make_shared<const Table>(state_->inline_users));
}

void Auther::State::set_loaded(const std::vector<std::pair<std::string, std::string>>& users) {
  auto t = std::make_shared<Table>(inline_users);
  for (const auto& [u, p] : users)
    if (!u.empty()) t->insert_or_assign(u, p);
  table.store(std::move(t));
}

void Auther::set_loaded(const std::vector<std::pair<std::string, std::string>>& users) const {
  state_->set_loaded(users);
}

std::function<void(const std::vector<std::pair<std::string, std::string>>&)> Auther::loaded_setter()
    const {
  return [weak = std::weak_ptr<State>(state_)](const auto& users) {
    if (auto s = weak.lock()) s->set_loaded(users);
  };
}

std::optional<std::string> Auther::authenticate(std::string_view user,
                                                std::string_view password) const {
  auto table = state_->table.load();
  auto it = table->find(user);
  if (it == table->end()) return std::nullopt;
  if (!it->second.empty() && it->second != password) return std::nullopt;
  return it->first;
}

Authenticator::Authenticator(std::vector<Auther> authers) : authers_(std::move(authers)) {
  for (const auto& a : authers_)
    if (a.plugin()) async_ = true;
}

std::optional<std::string> Authenticator::authenticate(std::string_view user,
                                                       std::string_view password) const {
  for (const auto& a : authers_)
    if (!a.plugin())
      if (auto id = a.authenticate(user, password)) return id;
  return std::nullopt;
}

awaitable<std::optional<std::string>> Authenticator::authenticate_async(std::string service,
                                                                        std::string user,
                                                                        std::string password,
                                                                        std::string client) const {
  if (!async_) co_return authenticate(user, password);  // no plugin: never suspends
  for (const auto& a : authers_) {
    std::optional<std::string> id;
    if (const AuthPlugin* p = a.plugin())
      id = co_await p->authenticate(service, user, password, client);
    else
      id = a.authenticate(user, password);
    if (id) co_return id;
  }
  co_return std::nullopt;
}

}  // namespace gost
