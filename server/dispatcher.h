// Runs one request: the central checks (unknown command, authentication,
// arity, MULTI queueing, out-of-memory), then the handler. Exactly one reply
// is written for every request.
#pragma once

#include <span>
#include <string_view>

#include "protocol/reply_builder.h"
#include "server/client_state.h"
#include "server/server_context.h"

namespace kvpool {

// `thread` is the I/O thread index (for the MULTI/EXEC isolation gate).
void Dispatch(ServerContext& server, ClientState& client, protocol::ReplyBuilder& reply,
              std::span<const std::string_view> args, int64_t now_ms, int thread = 0);

// Runs a command without the central checks or the gate (EXEC's queued
// commands; they were checked when queued).
void Execute(ServerContext& server, ClientState& client, protocol::ReplyBuilder& reply,
             std::span<const std::string_view> args, int64_t now_ms);

// Milliseconds since the Unix epoch.
int64_t NowMs();

// A batch of commands run back to back on this thread (one read's worth of
// a client's pipeline): while it is open, a command's start time for its
// statistics is the end time of the one before, so a command costs one
// monotonic clock read instead of two (a read costs 20-80 ns here, as much
// as a GET's own work). Closed batches (and commands outside any) read the
// clock at their start. Nests: only the outermost Begin/End count.
void BeginCommandBatch();
void EndCommandBatch();

}  // namespace kvpool
