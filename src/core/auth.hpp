// Basic user/password authentication (docs/PROTOCOLS.md "core: authentication").
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace gost {

// One auther: a user table. A user with an empty password accepts any password; an auther with no
// users rejects everyone.
class Auther {
 public:
  void add(std::string user, std::string password);
  std::optional<std::string> authenticate(std::string_view user, std::string_view password) const;

 private:
  std::map<std::string, std::string, std::less<>> users_;
};

// The handler's authenticator: several authers tried in order; the first success wins and returns
// the client id (the user name).
class Authenticator {
 public:
  explicit Authenticator(std::vector<Auther> authers) : authers_(std::move(authers)) {}
  std::optional<std::string> authenticate(std::string_view user, std::string_view password) const;

 private:
  std::vector<Auther> authers_;
};

}  // namespace gost
