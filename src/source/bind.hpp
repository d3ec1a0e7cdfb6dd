// From the configuration's `reload`/`file`/`redis`/`http`/`plugin` blocks to running sources
// (docs/ARCHITECTURE.md "Sources", docs/PROTOCOLS.md "config: dynamic sources").
#pragma once

#include <optional>
#include <string>

#include "config/model.hpp"
#include "core/auth.hpp"
#include "source/loader.hpp"
#include "source/plugin.hpp"

namespace gost::source {

// The loader's options for a control's sources. `redis_type` is what GOST reads for this kind
// ("hash" for authers, "set" for admissions and bypasses, "set-or-list" for hosts: a list with
// `type: list`, "hash-or-set" for ingresses: a set with `type: set`). Throws ConfigError
// naming `where` for what we refuse (an https URL, a Redis address without a port).
Sources loader_sources(const config::Sources& s, const std::string& where,
                       const std::string& redis_type);

// The control's plugin when it has one: type http; grpc (GOST's default) and `tls` are refused.
// Its failures are logged once per outage, naming `where` and the plugin's address, and saying
// what happens `meanwhile`.
std::optional<PluginOptions> http_plugin(const config::Sources& s, const std::string& where,
                                         const std::string& meanwhile);

// Ties `sources` to a control's holder (policy::Admission, Bypass, Hosts): reads them now and
// every `reload`, hands each change to `apply` (on the source thread), and returns the holder
// owning the loader — the loader stops when the last service, hop or node lets go of it. The
// loader holds the holder weakly.
template <class H, class F>
std::shared_ptr<H> with_sources(std::shared_ptr<H> holder, Sources sources, log::Logger log,
                                F apply) {
  if (sources.empty()) return holder;
  std::weak_ptr<H> weak = holder;
  auto loader = Loader::start(std::move(sources), Format::lines, std::move(log),
                              [weak, apply](const Data& d) {
                                if (auto h = weak.lock()) apply(*h, d);
                              });
  struct Owner {
    std::shared_ptr<H> holder;
    std::shared_ptr<Loader> loader;
  };
  auto owner = std::make_shared<Owner>(Owner{holder, std::move(loader)});
  return std::shared_ptr<H>(owner, holder.get());
}

// An auther: its inline users plus what its sources hold (read now, then every `reload`), or its
// plugin (which, as in GOST, replaces everything else).
Auther make_auther(const config::Auther& a);

}  // namespace gost::source
