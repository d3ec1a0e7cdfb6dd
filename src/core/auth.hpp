// Basic user/password authentication (docs/PROTOCOLS.md "core: authentication").
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/asio.hpp"

namespace gost {

// An external authenticator (GOST's auther `plugin`, source/plugin.hpp): asked per connection, on
// the connection's executor. nullopt refuses; otherwise the client id.
class AuthPlugin {
 public:
  virtual ~AuthPlugin() = default;
  virtual awaitable<std::optional<std::string>> authenticate(std::string service, std::string user,
                                                             std::string password,
                                                             std::string client) const = 0;
};

// One auther: a user table — its inline users plus what its sources loaded (docs/ARCHITECTURE.md
// "Sources") — or a plugin. A user with an empty password accepts any password; an auther with no
// users rejects everyone. Copies share the table: a source's update reaches every service that
// names the auther, and a connection reads one consistent version without a lock.
class Auther {
 public:
  Auther();
  void add(std::string user, std::string password);  // inline users, before the auther is shared
  // Replaces the loaded users (later pairs win, and win over inline users; go-gost/x auth.go).
  void set_loaded(const std::vector<std::pair<std::string, std::string>>& users) const;
  // set_loaded for a source's callback: holds the auther weakly (the auther holds its source).
  std::function<void(const std::vector<std::pair<std::string, std::string>>&)> loaded_setter()
      const;
  std::optional<std::string> authenticate(std::string_view user, std::string_view password) const;

  void set_plugin(std::shared_ptr<const AuthPlugin> p) { state_->plugin = std::move(p); }
  const AuthPlugin* plugin() const { return state_->plugin.get(); }
  // Whatever must live as long as the auther (its source loader).
  void keep(std::shared_ptr<void> p) { state_->keep.push_back(std::move(p)); }

 private:
  using Table = std::map<std::string, std::string, std::less<>>;
  struct State {
    void set_loaded(const std::vector<std::pair<std::string, std::string>>& users);
    Table inline_users;
    std::atomic<std::shared_ptr<const Table>> table;
    std::shared_ptr<const AuthPlugin> plugin;
    std::vector<std::shared_ptr<void>> keep;
  };
  std::shared_ptr<State> state_;
};

// The handler's authenticator: several authers tried in order; the first success wins and returns
// the client id (the user name, or what a plugin answered).
class Authenticator {
 public:
  explicit Authenticator(std::vector<Auther> authers);
  // The users of the non-plugin authers only (what @api/@metrics check).
  std::optional<std::string> authenticate(std::string_view user, std::string_view password) const;
  // True when an auther is a plugin.
  bool needs_async() const { return async_; }
  // Every handler's authentication: without a plugin it never suspends (the users' tables only);
  // a plugin auther is asked over HTTP in its turn (docs/ARCHITECTURE.md "Sources").
  awaitable<std::optional<std::string>> authenticate_async(std::string service, std::string user,
                                                           std::string password,
                                                           std::string client) const;

 private:
  std::vector<Auther> authers_;
  bool async_ = false;
};

}  // namespace gost
