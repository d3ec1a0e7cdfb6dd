// A named policy's current rules (docs/ARCHITECTURE.md "Planned rooms": a service, hop or node
// holds its policy; a reload swaps the rules). Readers take one consistent snapshot with an atomic
// load — no lock on the data path; a source (file, Redis, HTTP: src/source/) swaps in new rules.
#pragma once

#include <atomic>
#include <memory>

namespace gost::policy {

template <class Rules>
class Holder {
 public:
  std::shared_ptr<const Rules> current() const { return rules_.load(std::memory_order_acquire); }

 protected:
  void set(std::shared_ptr<const Rules> rules) {
    rules_.store(std::move(rules), std::memory_order_release);
  }

 private:
  std::atomic<std::shared_ptr<const Rules>> rules_;
};

}  // namespace gost::policy
