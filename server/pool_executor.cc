#include "server/pool_executor.h"

#include "server/command_table.h"
#include "server/dispatcher.h"
#include "server/routing.h"
#include "server/util/strings.h"

namespace kvpool {

std::string PoolExecutor::Execute(int lane, int db, int resp,
                                  const std::vector<std::string_view>& argv) {
  return RunLocally(*server_, lane, db, resp, argv);
}

std::string PoolExecutor::ExecuteTransaction(
    int lane, int db, int resp, const std::vector<std::vector<std::string_view>>& cmds,
    const std::vector<std::pair<std::string_view, uint64_t>>& watched) {
  ClientState c;
  c.authenticated = true;
  c.local_only = true;
  c.db = db;
  c.resp = resp;
  c.lane = lane;
  protocol::StringSink sink;
  protocol::ReplyBuilder rb(&sink, resp);
  int64_t now = NowMs();
  // Queue through the dispatcher, as the client's own MULTI would have.
  std::vector<std::string_view> multi{"MULTI"};
  Dispatch(*server_, c, rb, multi, now, lane);
  for (const auto& cmd : cmds) Dispatch(*server_, c, rb, cmd, now, lane);
  sink.out.clear();
  c.exec_versions = watched;
  std::vector<std::string_view> exec{"EXEC"};
  Dispatch(*server_, c, rb, exec, now, lane);
  return sink.out;
}

std::vector<std::string_view> PoolExecutor::WriteKeys(const std::vector<std::string_view>& argv) {
  if (argv.empty()) return {};
  const CommandSpec* spec = server_->commands().Find(argv[0]);
  if (spec == nullptr || (spec->flags & kCmdWrite) == 0) return {};
  return CommandKeys(*spec, argv);
}

std::vector<std::pair<int, std::string_view>> PoolExecutor::TransactionWrites(
    int db, const std::vector<std::vector<std::string_view>>& cmds) {
  std::vector<std::pair<int, std::string_view>> out;
  for (const auto& cmd : cmds) {
    int64_t to;
    if (cmd.size() == 2 && EqualsIgnoreCase(cmd[0], "select") && ParseInt64(cmd[1], &to) &&
        to >= 0 && to < server_->store().databases())
      db = static_cast<int>(to);
    for (std::string_view k : WriteKeys(cmd)) out.emplace_back(db, k);
  }
  return out;
}

bool PoolExecutor::ReadsKeys(const std::vector<std::string_view>& argv) {
  if (argv.empty()) return false;
  const CommandSpec* spec = server_->commands().Find(argv[0]);
  return spec != nullptr && (spec->flags & kCmdReadOnly) != 0 && !CommandKeys(*spec, argv).empty();
}

}  // namespace kvpool
