// Runs, on this node, what peers forward: single commands and whole
// transactions (pool::CommandExecutor for the server).
#pragma once

#include "server/server_context.h"
#include "storage/pool/pool.h"

namespace kvpool {

class PoolExecutor : public pool::CommandExecutor {
 public:
  explicit PoolExecutor(ServerContext* server) : server_(server) {}
  std::string Execute(int lane, int db, int resp,
                      const std::vector<std::string_view>& argv) override;
  // Large values by reference (pinned items, held strings), not copied.
  std::unique_ptr<pool::HeldReply> ExecuteHeld(int lane, int db, int resp,
                                               const std::vector<std::string_view>& argv) override;
  std::string ExecuteTransaction(
      int lane, int db, int resp, const std::vector<std::vector<std::string_view>>& cmds,
      const std::vector<std::pair<std::string_view, uint64_t>>& watched) override;
  std::vector<std::string_view> WriteKeys(const std::vector<std::string_view>& argv) override;
  bool ReadsKeys(const std::vector<std::string_view>& argv) override;
  std::vector<std::pair<int, std::string_view>> TransactionWrites(
      int db, const std::vector<std::vector<std::string_view>>& cmds) override;

 private:
  ServerContext* server_;
};

}  // namespace kvpool
