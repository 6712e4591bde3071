// Runs commands in process, without sockets: a real Store, Config and
// command table, one client, replies captured as RESP bytes. For handler
// tests (<family>_test.cc).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/reply_builder.h"
#include "server/command_table.h"
#include "server/config.h"
#include "server/dispatcher.h"
#include "server/server_context.h"
#include "storage/segment/store.h"

namespace kvpool::testing {

class CommandHarness {
 public:
  // `options`: "--name value" pairs applied as at startup.
  explicit CommandHarness(std::vector<std::string> options = {}) {
    Status s = config_.LoadArgs(options);
    if (!s.ok()) abort();
    storage::StoreOptions so;
    // Tests default to a small segment rather than a quarter of the machine.
    so.maxmemory = config_.Int("maxmemory") > 0 ? EffectiveMaxMemory(config_) : (256u << 20);
    so.policy = static_cast<storage::EvictionPolicy>(config_.Int("maxmemory-policy"));
    so.databases = static_cast<int>(config_.Int("databases"));
    auto store = storage::Store::Open(so);
    if (!store.ok()) abort();
    store_ = std::move(store.value());
    table_ = std::make_unique<CommandTable>(CommandTable::Build());
    server_ = std::make_unique<ServerContext>(&config_, store_.get(), table_.get());
  }

  // Runs one command; returns the raw RESP reply.
  std::string Run(std::vector<std::string> args) {
    std::vector<std::string_view> views(args.begin(), args.end());
    protocol::StringSink sink;
    protocol::ReplyBuilder rb(&sink, client_.resp);
    Dispatch(*server_, client_, rb, views, now_ms_ == 0 ? NowMs() : now_ms_);
    return sink.out;
  }

  // Fixes the clock (ms since epoch); 0 = real time.
  void SetNow(int64_t now_ms) { now_ms_ = now_ms; }

  ClientState& client() { return client_; }
  ServerContext& server() { return *server_; }
  storage::Store& store() { return *store_; }
  Config& config() { return config_; }

 private:
  Config config_;
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<CommandTable> table_;
  std::unique_ptr<ServerContext> server_;
  ClientState client_;
  int64_t now_ms_ = 0;
};

}  // namespace kvpool::testing
