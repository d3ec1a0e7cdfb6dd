// The last step of every proxy handler: relay the client and the stream to its target, with
// GOST's log lines ("<remote> <-> <target>", then "<remote> >-< <target>" with the duration) and
// the byte counts added to the connection's totals.
#pragma once

#include <string>
#include <string_view>

#include "core/component.hpp"
#include "core/relay.hpp"

namespace gost {

// `target` must outlive the relay. Not a coroutine: the relay writes the log lines and adds the
// counts itself. With options.since set, the caller has written the "<->" line at that time.
awaitable<RelayStats> relay_logged(Stream& client, Stream& upstream, std::string_view target,
                                   ConnInfo& conn, RelayOptions options);

// The last step of a handler that owns both streams: relay_logged(), after which nothing of the
// handler is left to run. When the connection can end without its coroutines (conn.end is set,
// as app/connection.cpp sets it), the relay takes the streams and `conn` (moved from: the caller
// must not touch it again) and this returns at once, so that an idle tunnel holds no coroutine
// frame of the connection, the handler or this (docs/ARCHITECTURE.md "Memory"); else the relay is
// awaited here.
awaitable<void> relay_to_end(StreamPtr client, StreamPtr upstream, std::string target,
                             ConnInfo& conn, RelayOptions options);

// For a relay whose side `a` is the client: the bytes splice(2) moves past the client's socket
// count for the request's metrics. Settles the request's series first (ConnInfo::authenticated).
void count_client_splice(RelayOptions& options, ConnInfo& conn);

// conn.log = conn.log.with(key, value) (`key` a literal, log::Field), in conn.log's own storage
// when it has room: a tunnel keeps its logger for its whole life, and a connection's logger is
// made with room for one more field (app/connection.cpp).
void add_log_field(ConnInfo& conn, const char* key, std::string value);

}  // namespace gost
