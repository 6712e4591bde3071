#include "server/pool_executor.h"

#include <deque>

#include "server/command_table.h"
#include "server/dispatcher.h"
#include "server/routing.h"
#include "server/util/strings.h"

namespace kvpool {

std::string PoolExecutor::Execute(int lane, int db, int resp,
                                  const std::vector<std::string_view>& argv) {
  return RunLocally(*server_, lane, db, resp, argv);
}

namespace {

// A reply's pieces as the builder wrote them: texts copied, references
// kept (and released when it is destroyed).
class PiecesSink : public protocol::ReplySink, public pool::HeldReply {
 public:
  ~PiecesSink() override {
    for (Piece& p : pieces_)
      if (p.release) p.release(p.ctx);
  }
  void Write(const char* data, size_t len) override {
    if (pieces_.empty() || pieces_.back().is_ref) pieces_.emplace_back();
    pieces_.back().text.append(data, len);
  }
  void WriteRef(const char* data, size_t len, void (*release)(void*), void* ctx) override {
    pieces_.push_back({{}, std::string_view(data, len), true, release, ctx});
  }
  // Call once every piece is written.
  void Seal() {
    for (const Piece& p : pieces_) views_.push_back(p.is_ref ? p.ref : std::string_view(p.text));
  }
  const std::vector<std::string_view>& pieces() const override { return views_; }

 private:
  struct Piece {
    std::string text;
    std::string_view ref;
    bool is_ref = false;
    void (*release)(void*) = nullptr;
    void* ctx = nullptr;
  };
  // A deque: pieces never move, so a text's view stays valid.
  std::deque<Piece> pieces_;
  std::vector<std::string_view> views_;
};

}  // namespace

std::unique_ptr<pool::HeldReply> PoolExecutor::ExecuteHeld(int lane, int db, int resp,
                                                           const std::vector<std::string_view>& argv) {
  auto sink = std::make_unique<PiecesSink>();
  RunLocallyInto(*server_, lane, db, resp, argv, sink.get());
  sink->Seal();
  return sink;
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
