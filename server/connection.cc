#include "server/connection.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

#include "protocol/lazy_free.h"
#include "server/command_table.h"
#include "server/dispatcher.h"
#include "server/io_thread.h"
#include "server/routing.h"
#include "server/util/strings.h"

namespace kvpool {

namespace {

// Before AUTH, requests are held to what AUTH/HELLO need, as Redis does, so
// a stranger cannot make the server buffer large requests.
constexpr uint64_t kUnauthedMaxArgs = 10;
constexpr uint64_t kUnauthedMaxBulk = 16 * 1024;

struct RefRelease {
  void (*release)(void*);
  void* ctx;
  size_t bytes;                       // what this reference added to ref_bytes
  std::shared_ptr<size_t> ref_bytes;  // the connection's count of referenced store bytes
};

void ReleaseRef(const void*, size_t, void* extra) {
  auto* r = static_cast<RefRelease*>(extra);
  *r->ref_bytes -= r->bytes;
  r->release(r->ctx);
  delete r;
}

}  // namespace

class Connection::Slot : public ReplySlot {
 public:
  Slot(std::shared_ptr<Connection*> conn, std::shared_ptr<Outstanding> o)
      : conn_(std::move(conn)), o_(std::move(o)) {}
  void Finish(std::string_view encoded) override {
    protocol::DeferredReply r;
    r.Write(encoded.data(), encoded.size());
    Finish(std::move(r));
  }
  void Finish(protocol::DeferredReply&& reply) override {
    if (finished_) return;
    finished_ = true;
    if (*conn_ != nullptr) (*conn_)->DeferredDone(o_, std::move(reply));
  }
  bool alive() const override { return *conn_ != nullptr; }

 private:
  std::shared_ptr<Connection*> conn_;
  std::shared_ptr<Outstanding> o_;
  bool finished_ = false;
};

Connection::Connection(ServerContext* server, IoThread* thread, int fd, std::string addr,
                       std::string laddr, std::shared_ptr<const transport::TlsContext> tls)
    : server_(server), thread_(thread), fd_(fd), tls_ctx_(std::move(tls)), reply_(this, 2) {
  ClientInfo& info = *client_.info;
  info.id = server_->clients().NextId();
  info.addr = std::move(addr);
  info.laddr = std::move(laddr);
  info.fd = fd;
  info.created_ms = NowMs();
  info.last_interaction_ms.store(info.created_ms, std::memory_order_relaxed);
  out_ = evbuffer_new();
  handle_ = std::make_shared<Connection*>(this);
  // As Redis: a client that connects while no password is set stays
  // authenticated if one is set later.
  client_.authenticated = !server_->hot().requirepass_set.load();
  // Registered at once (on the accepting thread), so CLIENT LIST/KILL and
  // INFO see a client from the moment its connection is accepted.
  IoThread* t = thread_;
  uint64_t cid = client_.info->id;
  std::shared_ptr<ClientInfo> shared_info = client_.info;
  server_->clients().Add(client_.info, [t, cid, shared_info] {
    shared_info->kill_requested.store(true);
    t->Post([t, cid] { t->CloseConnection(cid); });
  });
  client_.lane = thread_->index();
  client_.monitor = [this] { StartMonitor(); };
  client_.defer = [this]() -> std::shared_ptr<ReplySlot> {
    auto o = std::make_shared<Outstanding>();
    outstanding_.push_back(o);
    last_deferred_ = o;
    return std::make_shared<Slot>(handle_, std::move(o));
  };
}

Connection::~Connection() {
  if (!closed_) server_->clients().Remove(id());  // never started (shutdown)
  if (read_ev_) event_free(read_ev_);
  if (write_ev_) event_free(write_ev_);
  if (flush_ev_) event_free(flush_ev_);
  if (tls_wait_ev_) event_free(tls_wait_ev_);
  if (out_) evbuffer_free(out_);  // releases references to pinned values
  tls_.reset();  // before its socket closes
  if (fd_ >= 0) close(fd_);
}

void Connection::Start() {
  read_ev_ = event_new(thread_->base(), fd_, EV_READ | EV_PERSIST, &Connection::OnReadable, this);
  write_ev_ = event_new(thread_->base(), fd_, EV_WRITE | EV_PERSIST, &Connection::OnWritable, this);
  flush_ev_ = event_new(thread_->base(), -1, 0, &Connection::OnFlushSoon, this);
  if (tls_ctx_) {
    auto session = transport::TlsSession::Create(*tls_ctx_, fd_, transport::TlsSession::Side::kAccept);
    if (!session.ok()) {
      LogLimitOnce(server_->stats().logged_tls, "closed TLS client " + client_.info->addr + ": " +
                                                    session.status().message());
      Close();
      return;
    }
    tls_ = std::move(session.value());
    tls_wait_ev_ = event_new(thread_->base(), fd_, EV_READ, &Connection::OnTlsWait, this);
  }
  if (client_.info->kill_requested.load()) {
    Close();
    return;
  }
  UpdateParserLimits();
  event_add(read_ev_, nullptr);
  reading_ = true;
}

void Connection::Close() {
  if (closed_) return;
  closed_ = true;
  *handle_ = nullptr;  // deferred replies still in flight find no one
  if (read_ev_) event_del(read_ev_);
  if (write_ev_) event_del(write_ev_);
  if (flush_ev_) event_del(flush_ev_);
  if (tls_wait_ev_) event_del(tls_wait_ev_);
  server_->clients().Remove(id());
  if (monitoring_) server_->monitor().Remove(id());
  if (client_.watch) {
    server_->store().Unwatch(client_.watch);
    client_.watch.reset();
  }
  thread_->Retire(id());
}

void Connection::StartMonitor() {
  if (monitoring_) return;
  monitoring_ = true;
  IoThread* t = thread_;
  std::shared_ptr<Connection*> h = handle_;
  server_->monitor().Add(id(), [t, h](std::string line) {
    t->Post([h, line = std::move(line)] {
      if (*h != nullptr) (*h)->MonitorWrite(line);
    });
  });
}

void Connection::MonitorWrite(const std::string& line) {
  if (closed_) return;
  Write(line.data(), line.size());
  Flush();
  Cron(NowMs(), 0);  // a monitor that does not read is closed at the output limit
}

void Connection::Cron(int64_t now_ms, int64_t timeout_ms) {
  if (closed_) return;
  // A TLS client that stalls in its handshake holds a slot of maxclients
  // (as any connection does) only this long.
  if (tls_ && !tls_->established() &&
      now_ms - client_.info->created_ms > server_->config().Int("tls-handshake-timeout-ms")) {
    server_->stats().tls_failed_connections.fetch_add(1, std::memory_order_relaxed);
    LogLimitOnce(server_->stats().logged_tls,
                 "closed TLS client " + client_.info->addr +
                     ": no TLS handshake within tls-handshake-timeout-ms");
    Close();
    return;
  }
  // A client that never reads gets no write events: check its output here.
  if (OverOutputLimit()) return CloseOverOutputLimit();
  // A monitor only listens: idle is what it is (as Redis, no timeout).
  if (timeout_ms <= 0 || !outstanding_.empty() || monitoring_) return;
  if (now_ms - client_.info->last_interaction_ms.load(std::memory_order_relaxed) > timeout_ms) {
    SPDLOG_DEBUG("closing idle client id={}", id());
    server_->stats().idle_timeout_disconnections.fetch_add(1);
    Close();
  }
}

void Connection::OnReadable(evutil_socket_t, short, void* arg) {
  static_cast<Connection*>(arg)->HandleRead();
}

void Connection::OnWritable(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<Connection*>(arg);
  self->Flush();
  if (self->closed_) return;
  // Output drained below the pause mark: requests held back can run now.
  self->ResumeReading();
}

void Connection::OnFlushSoon(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<Connection*>(arg);
  self->Flush();
  if (self->closed_) return;
  self->ResumeReading();
}

void Connection::ResumeReading() {
  if (closed_ || reading_ || closing_ || held_ || OutputBytes() >= kOutputPauseBytes) return;
  output_paused_ = false;
  event_add(read_ev_, nullptr);
  reading_ = true;
  if (tls_ && tls_->pending()) event_active(read_ev_, EV_READ, 0);
  ProcessInput();
  Flush();
}

void Connection::DeferredDone(const std::shared_ptr<Outstanding>& o,
                              protocol::DeferredReply&& reply) {
  o->reply = std::move(reply);
  o->done = true;
  // Done: later commands on its keys may run.
  for (const std::string& k : o->keys)
    if (auto it = busy_keys_.find(k); it != busy_keys_.end() && --it->second == 0) busy_keys_.erase(it);
  o->keys.clear();
  if (o->barrier) {
    o->barrier = false;
    --barriers_;
  }
  EmitReady();
  AfterDeferred();
}

void Connection::EmitReady() {
  emitting_ = true;  // what is replayed goes out, not to a command's `after`
  while (!outstanding_.empty() && outstanding_.front()->done) {
    std::shared_ptr<Outstanding> o = std::move(outstanding_.front());
    outstanding_.pop_front();
    o->emitted = true;
    if (o->reply.text_only() && pending_.empty()) {
      pending_.swap(o->reply.text());  // adopted, not copied
    } else {
      o->reply.ReplayInto(*this);  // values a peer sent stay references
    }
    held_bytes_ -= std::min(held_bytes_, o->after_bytes);
    held_ref_bytes_ -= std::min(held_ref_bytes_, o->after_ref_bytes);
    o->after.ReplayInto(*this);
  }
  emitting_ = false;
}

void Connection::AfterDeferred() {
  if (in_dispatch_) return;  // finished at once: the dispatch loop goes on
  PublishInfo(NowMs());
  ProcessInput();  // commands that waited, or were not parsed yet
  // The replies of this pass of the loop go out together, once its other
  // events ran (OnFlushSoon), not in one send each: the remote
  // commands of a pipeline are answered by a few frames from the peers.
  if (!closed_) event_active(flush_ev_, EV_TIMEOUT, 0);
  ResumeReading();
}

void Connection::UpdateParserLimits() {
  bool authed = client_.authenticated || !server_->hot().requirepass_set.load();
  protocol::ParserLimits limits;
  limits.max_bulk_len = static_cast<uint64_t>(server_->hot().proto_max_bulk_len.load());
  limits.max_args = static_cast<uint64_t>(server_->hot().proto_max_args.load());
  limits.max_inline_len = static_cast<uint64_t>(server_->hot().proto_inline_max_len.load());
  if (!authed) {
    limits.max_args = kUnauthedMaxArgs;
    limits.max_bulk_len = kUnauthedMaxBulk;
  }
  parser_.set_limits(limits);
  parser_authed_limits_ = authed;
}

void Connection::HandleRead() {
  if (closed_) return;
  // Room for the next chunk, or for the whole of a large request the parser
  // has announced, so a 64 MiB value is read in place without regrowing;
  // and a chunk more for small arguments after it (SET key <300 MB> GET:
  // without, the 300 MB were copied into a buffer twice the size, in one
  // turn, to read "GET").
  size_t have = in_end_ - in_begin_;
  size_t want = std::max(kReadChunk, parser_.min_request_size() > have
                                         ? parser_.min_request_size() - have + kReadChunk
                                         : size_t{0});
  if (in_cap_ - in_end_ < want) {
    // Outstanding commands' arguments point into in_: it is kept as it is,
    // and the unparsed rest moves to a buffer of the same size.
    const bool in_use = !outstanding_.empty() || held_;
    if (!in_use && in_begin_ > 0 && in_cap_ - have >= want && have < in_cap_ / 2) {
      memmove(in_.get(), in_.get() + in_begin_, have);
    } else {
      size_t cap = std::max(in_use ? in_cap_ : in_cap_ * 2, have + want);
      if (in_use) old_in_.push_back(in_);
      // Whoever lets go of it last (this connection, or a peer link still
      // sending a large value from it) frees a large one in the background:
      // unmapping hundreds of MB of touched pages takes tens of ms.
      std::shared_ptr<char[]> grown(new char[cap],
                                    [cap](char* p) { protocol::DeleteArrayLater(p, cap); });
      if (have) memcpy(grown.get(), in_.get() + in_begin_, have);
      in_ = std::move(grown);
      in_cap_ = cap;
    }
    in_begin_ = 0;
    in_end_ = have;
  }
  ssize_t n = ReadSocket(in_.get() + in_end_, std::min(in_cap_ - in_end_, kMaxReadPerCall));
  if (n == 0) {
    Close();
    return;
  }
  if (n < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      if (tls_ && errno == EPROTO) TlsFailed("read");
      Close();
    } else if (tls_read_waits_write_) {
      TlsWait(EV_WRITE);
    }
    return;
  }
  in_end_ += static_cast<size_t>(n);
  server_->stats().net_input_bytes.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);

  uint64_t limit = static_cast<uint64_t>(
      server_->hot().client_query_buffer_limit.load(std::memory_order_relaxed));
  if (in_end_ - in_begin_ > limit) {
    server_->stats().query_buffer_limit_disconnections.fetch_add(1);
    LogLimitOnce(server_->stats().logged_query_buffer,
                 "closed client " + client_.info->addr +
                     ": its unparsed input passed client-query-buffer-limit");
    Close();
    return;
  }
  ProcessInput();
  Flush();
  // Records TLS already took off the socket are not announced by it again.
  if (tls_ && !closed_ && reading_ && tls_->pending()) event_active(read_ev_, EV_READ, 0);
}

ssize_t Connection::ReadSocket(char* buf, size_t len) {
  if (!tls_) return recv(fd_, buf, len, 0);
  tls_read_waits_write_ = false;
  ssize_t n = tls_->Read(buf, len);
  if (n < 0 && errno == EAGAIN)
    tls_read_waits_write_ = tls_->wants() == transport::TlsSession::Want::kWrite;
  return n;
}

ssize_t Connection::SendSocket(const char* buf, size_t len) {
  if (!tls_) return send(fd_, buf, len, MSG_NOSIGNAL);
  tls_write_waits_read_ = false;
  ssize_t n = tls_->Write(buf, len);
  if (n < 0 && errno == EAGAIN)
    tls_write_waits_read_ = tls_->wants() == transport::TlsSession::Want::kRead;
  if (n < 0 && errno == EPROTO) TlsFailed("write");
  return n;
}

int Connection::WriteOut(size_t max) {
  if (!tls_) return evbuffer_write_atmost(out_, fd_, static_cast<ev_ssize_t>(max));
  // One chunk per call, from its start: a write TLS could not finish is
  // retried with the same bytes (and maybe more), as OpenSSL requires.
  evbuffer_iovec v;
  if (evbuffer_peek(out_, -1, nullptr, &v, 1) < 1) return 0;
  ssize_t n = SendSocket(static_cast<const char*>(v.iov_base), std::min(v.iov_len, max));
  if (n > 0) evbuffer_drain(out_, static_cast<size_t>(n));
  return static_cast<int>(n);
}

void Connection::TlsWait(short what) {
  event_del(tls_wait_ev_);
  event_assign(tls_wait_ev_, thread_->base(), fd_, what, &Connection::OnTlsWait, this);
  event_add(tls_wait_ev_, nullptr);
}

void Connection::OnTlsWait(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<Connection*>(arg);
  if (self->tls_read_waits_write_) self->HandleRead();
  if (!self->closed_ && self->tls_write_waits_read_) self->Flush();
}

void Connection::TlsFailed(const char* during) {
  server_->stats().tls_failed_connections.fetch_add(1, std::memory_order_relaxed);
  // A client that is not speaking TLS (plain RESP on the TLS port), or has
  // no certificate the CA signed: closed, logged once.
  LogLimitOnce(server_->stats().logged_tls, "closed TLS client " + client_.info->addr + " (" +
                                                during + "): " + tls_->error());
}

namespace {

// Redis's securityWarningCommand: the first line of an HTTP request, or one
// of its headers, read as an inline command.
bool CrossProtocolAttack(std::string_view command) {
  return EqualsIgnoreCase(command, "post") || EqualsIgnoreCase(command, "host:");
}

}  // namespace

void Connection::ProcessInput() {
  // One wall-clock read for the commands parsed from this input, and one
  // monotonic read per command for their statistics (dispatcher.h).
  struct Batch {
    Batch() { BeginCommandBatch(); }
    ~Batch() { EndCommandBatch(); }
  } batch;
  int64_t now = 0;
  while (!closed_ && !closing_) {
    if (!held_) {
      if (in_begin_ >= in_end_) break;
      if (OutputBytes() >= kOutputPauseBytes) {
        // The client is not reading its replies: stop taking requests.
        if (reading_) {
          event_del(read_ev_);
          reading_ = false;
        }
        output_paused_ = true;
        break;
      }
      bool authed = client_.authenticated || !server_->hot().requirepass_set.load();
      if (authed != parser_authed_limits_) UpdateParserLimits();
      // A command of this input ran and more follow: a pipeline.
      if (prefetched_ == 0 && now != 0 && authed) PrefetchAhead();
      size_t consumed = 0;
      std::string_view in(in_.get() + in_begin_, in_end_ - in_begin_);
      protocol::ParseResult r = parser_.Parse(in, &consumed, &args_);
      if (r == protocol::ParseResult::kNeedMore) break;
      if (r == protocol::ParseResult::kOk && prefetched_ > 0) --prefetched_;
      if (r == protocol::ParseResult::kError) {
        server_->stats().protocol_errors.fetch_add(1, std::memory_order_relaxed);
        LogLimitOnce(server_->stats().logged_protocol,
                     "protocol error from client " + client_.info->addr + ": " + parser_.error() +
                         " (the client is closed, as Redis does)");
        // After the replies still outstanding, then closed once they are out.
        capture_ = outstanding_.empty() ? nullptr : outstanding_.back();
        reply_.Error(parser_.error());
        capture_.reset();
        in_begin_ = in_end_;
        closing_ = true;
        break;
      }
      in_begin_ += consumed;
      if (args_.empty()) continue;
      if (CrossProtocolAttack(args_[0])) {
        // An HTTP request (a browser page posting to the cache) is not run,
        // line by line, as inline commands: as Redis, close without a reply.
        LogLimitOnce(server_->stats().logged_cross_protocol,
                     "possible SECURITY ATTACK from " + client_.info->addr +
                         ": it sent POST or Host: (cross protocol scripting); connection closed");
        in_begin_ = in_end_;
        closing_ = true;
        break;
      }
    }
    std::vector<std::string_view> keys;
    // Only while replies are outstanding: a command runs at once otherwise.
    const bool passable = !outstanding_.empty() && MayPass(&keys);
    if (!outstanding_.empty() && !passable) {
      // It waits for the replies outstanding; nothing more is read meanwhile.
      held_ = true;
      if (reading_) {
        event_del(read_ev_);
        reading_ = false;
      }
      break;
    }
    held_ = false;
    if (now == 0) now = NowMs();
    Run(passable, std::move(keys), now);
    if (client_.close_after_reply) {
      closing_ = true;
      break;
    }
  }
  if (!outstanding_.empty() || held_) return;  // their arguments live in in_
  old_in_.clear();
  if (in_begin_ == in_end_) in_begin_ = in_end_ = 0;
  // Give back a large buffer once a big request has been served.
  if (in_end_ == 0 && in_cap_ > (1u << 20)) {
    in_.reset();
    in_cap_ = 0;
  }
}

void Connection::PrefetchAhead() {
  constexpr int kPrefetchAhead = 32;
  protocol::RequestParser ahead(parser_.limits());
  ahead_keys_.clear();
  size_t off = in_begin_;
  int n = 0;
  // Multibulk only: an inline command's arguments live in the parser.
  while (n < kPrefetchAhead && off < in_end_ && in_[off] == '*') {
    size_t consumed = 0;
    std::string_view in(in_.get() + off, in_end_ - off);
    if (ahead.Parse(in, &consumed, &ahead_args_) != protocol::ParseResult::kOk) break;
    off += consumed;
    ++n;
    if (ahead_args_.empty()) continue;
    const CommandSpec* spec = server_->commands().Find(ahead_args_[0]);
    if (spec == nullptr) continue;
    ForEachCommandKey(*spec, ahead_args_, [&](std::string_view k) {
      if (ahead_keys_.size() >= storage::Store::kMaxPrefetch) return false;
      ahead_keys_.push_back(k);
      return true;
    });
  }
  // At least one command is counted, so a lone one is not parsed twice over.
  prefetched_ = std::max(n, 1);
  if (ahead_keys_.size() >= 2) server_->store().Prefetch(client_.db, ahead_keys_);
}

bool Connection::Passable(std::vector<std::string_view>* keys) {
  if (client_.in_multi) return false;
  const CommandSpec* spec = server_->commands().Find(args_[0]);
  if (spec == nullptr || spec->first_key <= 0 || spec->name == "watch") return false;
  *keys = CommandKeys(*spec, args_);
  return !keys->empty();
}

bool Connection::MayPass(std::vector<std::string_view>* keys) {
  if (barriers_ > 0 || outstanding_.size() >= kMaxOutstanding || !Passable(keys)) return false;
  for (std::string_view k : *keys)
    if (busy_keys_.find(k) != busy_keys_.end()) return false;
  return true;
}

void Connection::Run(bool passable, std::vector<std::string_view> keys, int64_t now) {
  client_.args_owner = in_;
  const bool asked = !outstanding_.empty();  // MayPass decided `passable`
  // Replies of a command that runs while others are outstanding go behind
  // the last of them.
  capture_ = asked ? outstanding_.back() : nullptr;
  in_dispatch_ = true;
  Dispatch(*server_, client_, reply_, args_, now, thread_->index());
  in_dispatch_ = false;
  capture_.reset();
  PublishInfo(now);
  std::shared_ptr<Outstanding> o = std::move(last_deferred_);
  if (o != nullptr && !o->done) {
    // Answered later: may later commands pass it? (Decided here, not for
    // every command: most answer at once.)
    if (!asked) passable = Passable(&keys);
    if (passable) {
      for (std::string_view k : keys) {
        o->keys.emplace_back(k);
        ++busy_keys_[o->keys.back()];
      }
    } else {
      o->barrier = true;
      ++barriers_;
    }
  }
  // Answered at once although deferred: its reply (and any behind it) can go.
  if (!outstanding_.empty() && outstanding_.front()->done) EmitReady();
}

void Connection::PublishInfo(int64_t now_ms) {
  ClientInfo& info = *client_.info;
  info.last_interaction_ms.store(now_ms, std::memory_order_relaxed);
  info.db.store(client_.db, std::memory_order_relaxed);
  info.query_buffer.store(in_end_ - in_begin_, std::memory_order_relaxed);
  info.output_buffer.store(OutputBytes(), std::memory_order_relaxed);
  if (reply_.resp() != client_.resp) reply_.set_resp(client_.resp);
}

// Replies held as copies (values sent by reference, the store's or a
// peer's, do not count) against client-output-buffer-limit.
bool Connection::OverOutputLimit() {
  const HotOptions& hot = server_->hot();
  size_t refs = *ref_bytes_ + held_ref_bytes_;
  size_t copied = OutputBytes() - std::min(OutputBytes(), refs);
  int64_t hard = hot.output_hard.load(std::memory_order_relaxed);
  int64_t soft = hot.output_soft.load(std::memory_order_relaxed);
  if (hard > 0 && copied > static_cast<size_t>(hard)) return true;
  if (soft > 0 && copied > static_cast<size_t>(soft)) {
    int64_t now = NowMs();
    if (soft_since_ms_ == 0) soft_since_ms_ = now;
    return now - soft_since_ms_ > hot.output_soft_seconds.load(std::memory_order_relaxed) * 1000;
  }
  soft_since_ms_ = 0;
  return false;
}

void Connection::CloseOverOutputLimit() {
  server_->stats().output_buffer_limit_disconnections.fetch_add(1);
  LogLimitOnce(server_->stats().logged_output_buffer,
               fmt::format("closed client {}: it reads its replies too slowly "
                           "(client-output-buffer-limit; {} bytes unsent, {} of them values "
                           "sent by reference, {} waiting behind deferred replies)",
                           client_.info->addr, OutputBytes(), *ref_bytes_ + held_ref_bytes_, held_bytes_));
  Close();
}

size_t Connection::OutputBytes() const {
  return pending_.size() + evbuffer_get_length(out_) + held_bytes_;
}

void Connection::Write(const char* data, size_t len) {
  if (Outstanding* t = CaptureTarget()) {
    t->after.Write(data, len);
    t->after_bytes += len;
    held_bytes_ += len;
    return;
  }
  pending_.append(data, len);
}

void Connection::WriteRef(const char* data, size_t len, void (*release)(void*), void* ctx) {
  if (Outstanding* t = CaptureTarget()) {
    t->after.WriteRef(data, len, release, ctx);
    t->after_bytes += len;
    held_bytes_ += len;
    if (len >= kZeroCopyMinBytes) {  // replayed by reference (below)
      t->after_ref_bytes += len;
      held_ref_bytes_ += len;
    }
    return;
  }
  if (len < kZeroCopyMinBytes) {
    pending_.append(data, len);
    release(ctx);
    return;
  }
  if (!pending_.empty()) {
    evbuffer_add(out_, pending_.data(), pending_.size());
    pending_.clear();
  }
  // A value sent by reference is not a copy made for this client: the
  // store's item, or the string a peer's bytes were received into (issue
  // 13: a large value fetched from a peer must not get its reader closed).
  *ref_bytes_ += len;
  evbuffer_add_reference(out_, data, len, &ReleaseRef, new RefRelease{release, ctx, len, ref_bytes_});
}

void Connection::Flush() {
  if (closed_) return;
  if (!pending_.empty()) {
    size_t off = 0;
    if (evbuffer_get_length(out_) == 0) {
      ssize_t n = SendSocket(pending_.data(), pending_.size());
      if (n > 0) {
        off = static_cast<size_t>(n);
        server_->stats().net_output_bytes.fetch_add(off, std::memory_order_relaxed);
      } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        Close();
        return;
      }
    }
    if (off < pending_.size()) evbuffer_add(out_, pending_.data() + off, pending_.size() - off);
    pending_.clear();
    if (pending_.capacity() > (1u << 20)) pending_.shrink_to_fit();
  }
  // At most kMaxWritePerFlush now: a reader as fast as this loop would
  // otherwise keep it writing one huge reply for seconds; the rest goes on
  // the next turns of the loop (the write event stays armed).
  size_t flushed = 0;
  while (evbuffer_get_length(out_) > 0 && flushed < kMaxWritePerFlush) {
    int n = WriteOut(kMaxWritePerFlush - flushed);
    if (n > 0) {
      flushed += static_cast<size_t>(n);
      server_->stats().net_output_bytes.fetch_add(static_cast<uint64_t>(n),
                                                  std::memory_order_relaxed);
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      Close();
      return;
    }
    break;
  }
  if (OverOutputLimit()) return CloseOverOutputLimit();
  bool drained = evbuffer_get_length(out_) == 0;
  bool want_write = !drained || output_paused_;
  if (tls_write_waits_read_ && !drained) {
    TlsWait(EV_READ);  // the write event would only spin until then
    want_write = output_paused_;
  }
  if (want_write && !write_armed_) {
    event_add(write_ev_, nullptr);
    write_armed_ = true;
  } else if (!want_write && write_armed_) {
    event_del(write_ev_);
    write_armed_ = false;
  }
  client_.info->output_buffer.store(OutputBytes(), std::memory_order_relaxed);
  if (drained && closing_ && outstanding_.empty()) Close();
}

}  // namespace kvpool
