// One client connection: reads requests off the socket into its own buffer,
// parses them (pipelined), dispatches each, and writes the replies back in
// order. Large values go to the socket by reference (no copy) while pinned.
//
// A command answered later (its keys are on other nodes) does not stop the
// pipeline: the commands after it run meanwhile if each has keys, none of
// them a key of a command still outstanding, and is not WATCH; their
// replies wait behind, in order. So the order of commands on one key is
// kept, as in Redis; commands on different keys may take effect out of the
// order they were sent in (as when a cluster client pipelines to several
// nodes). Any other command waits until every outstanding reply is in.
//
// Threading: lives on one IoThread and is touched only there.
#pragma once

#include <event2/buffer.h>
#include <event2/event.h>

#include <deque>
#include <memory>
#include <string>
#include <functional>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "protocol/deferred_reply.h"
#include "protocol/reply_builder.h"
#include "protocol/resp_parser.h"
#include "server/client_state.h"
#include "server/server_context.h"
#include "storage/transport/tls.h"

namespace kvpool {

class IoThread;

class Connection : private protocol::ReplySink {
 public:
  // With `tls`, the socket speaks TLS (a tls-port client): the handshake
  // runs in the first reads, and every read and write goes through it.
  Connection(ServerContext* server, IoThread* thread, int fd, std::string addr, std::string laddr,
             std::shared_ptr<const transport::TlsContext> tls = nullptr);
  ~Connection() override;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  uint64_t id() const { return client_.info->id; }
  // Registers the client and starts reading.
  void Start();
  // Stops all I/O at once and hands the object to the thread to free.
  // Idempotent; safe to call from inside this connection's callbacks.
  void Close();
  // Once a second: closes the connection if idle longer than timeout_ms
  // (0 = never), over client-output-buffer-limit, or still in its TLS
  // handshake after tls-handshake-timeout-ms.
  void Cron(int64_t now_ms, int64_t timeout_ms);

 private:
  // Bytes held for a pipelined reply before the socket is tried; above it,
  // requests stay unparsed until the client reads (back-pressure).
  static constexpr size_t kOutputPauseBytes = 16u << 20;
  static constexpr size_t kReadChunk = 16 * 1024;
  // Bytes one Flush writes at most before the loop serves others.
  static constexpr size_t kMaxWritePerFlush = 1u << 20;
  // Bytes one read takes at most: on loopback one recv copies whatever a
  // fast sender keeps adding (a 300 MB SET held a loop 1.3 s in one call).
  static constexpr size_t kMaxReadPerCall = 1u << 20;

  // Most deferred commands outstanding at once; more wait.
  static constexpr size_t kMaxOutstanding = 256;

  class Slot;
  // A deferred command whose reply has not been sent.
  struct Outstanding {
    bool done = false;     // its reply is in `reply`
    bool emitted = false;  // written out (it was at the head)
    bool barrier = false;  // later commands wait for it
    protocol::DeferredReply reply;
    // Replies of later commands that ran meanwhile, sent right after it.
    protocol::DeferredReply after;
    size_t after_bytes = 0;
    size_t after_ref_bytes = 0;  // of those, values sent by reference
    std::vector<std::string> keys;  // counted in busy_keys_ until done
  };
  // MONITOR: this connection gets a line per command the node runs.
  void StartMonitor();
  void MonitorWrite(const std::string& line);
  // The reply of a deferred command (see ReplySlot) arrived.
  void DeferredDone(const std::shared_ptr<Outstanding>& o, protocol::DeferredReply&& reply);
  // Writes out the replies at the head of outstanding_ that are in.
  void EmitReady();
  void AfterDeferred();
  void ResumeReading();
  // Whether args_ is a command later ones may pass while it is outstanding
  // (it has keys, none WATCHed, outside MULTI); its keys in *keys.
  bool Passable(std::vector<std::string_view>* keys);
  // Whether args_ may run while replies are outstanding; its keys in *keys.
  bool MayPass(std::vector<std::string_view>* keys);
  // Dispatches args_ (parsed) and keeps track of it if it is answered later
  // (`passable` and `keys` as MayPass found them, when it was asked).
  void Run(bool passable, std::vector<std::string_view> keys, int64_t now_ms);
  Outstanding* CaptureTarget() const {
    return capture_ != nullptr && !emitting_ && !capture_->emitted ? capture_.get() : nullptr;
  }

  static void OnReadable(evutil_socket_t fd, short what, void* arg);
  static void OnWritable(evutil_socket_t fd, short what, void* arg);
  static void OnFlushSoon(evutil_socket_t fd, short what, void* arg);
  void HandleRead();
  // recv/send, or the TLS session's Read/Write: the one branch per call
  // the plain path pays.
  ssize_t ReadSocket(char* buf, size_t len);
  ssize_t SendSocket(const char* buf, size_t len);
  // Writes up to `max` bytes of out_ (evbuffer_write_atmost's contract).
  int WriteOut(size_t max);
  // TLS only: the session needs the other direction's event to go on (a
  // read that must write, a write that must read; rare without
  // renegotiation). Arms tls_wait_ev_ once for `what`.
  void TlsWait(short what);
  static void OnTlsWait(evutil_socket_t fd, short what, void* arg);
  void TlsFailed(const char* during);
  void ProcessInput();
  // Pipelining: once a command of this input ran and more bytes follow,
  // parses up to kPrefetchAhead of the next commands (without consuming
  // them) and has the store prefetch their keys together (issue 20).
  void PrefetchAhead();
  void Flush();
  size_t OutputBytes() const;
  bool OverOutputLimit();
  void CloseOverOutputLimit();  // counted, logged once
  void UpdateParserLimits();
  void PublishInfo(int64_t now_ms);

  // ReplySink
  void Write(const char* data, size_t len) override;
  void WriteRef(const char* data, size_t len, void (*release)(void*), void* ctx) override;

  ServerContext* server_;
  IoThread* thread_;
  int fd_;
  event* read_ev_ = nullptr;
  event* write_ev_ = nullptr;
  // Activated (never added) by a deferred reply: sends what is ready once
  // the loop's pass ran its other events. Not write_ev_: libevent ignores
  // event_add of an I/O event while it is active, so arming write_ev_ in
  // that window would be lost.
  event* flush_ev_ = nullptr;
  std::shared_ptr<const transport::TlsContext> tls_ctx_;
  std::unique_ptr<transport::TlsSession> tls_;  // null = plaintext
  event* tls_wait_ev_ = nullptr;
  bool tls_read_waits_write_ = false;  // last read wanted the socket writable
  bool tls_write_waits_read_ = false;  // last write wanted the socket readable
  bool closed_ = false;
  bool monitoring_ = false;  // MONITOR was run: lines come from ServerContext::monitor()
  bool reading_ = false;       // read event armed
  // Requests are held back until the client reads its replies. While set,
  // the write event stays armed even with the output drained: its callback
  // is where reading resumes, and a Flush can drain everything at once when
  // the client reads as fast as the socket is written.
  bool output_paused_ = false;
  bool write_armed_ = false;   // write event armed
  bool closing_ = false;       // close once output drains
  bool held_ = false;          // args_ is a parsed command waiting for outstanding replies
  bool in_dispatch_ = false;   // inside Dispatch (a deferred reply may finish at once)
  bool emitting_ = false;      // EmitReady is writing out replies
  std::deque<std::shared_ptr<Outstanding>> outstanding_;  // oldest first
  // Looked up by string_view (MayPass, per key of every pipelined command
  // behind a deferred one), with no std::string made for it.
  struct KeyHash {
    using is_transparent = void;
    size_t operator()(std::string_view k) const { return std::hash<std::string_view>{}(k); }
  };
  // Keys of outstanding commands, with how many of them hold each.
  std::unordered_map<std::string, int, KeyHash, std::equal_to<>> busy_keys_;
  int barriers_ = 0;                                // outstanding commands nothing passes
  size_t held_bytes_ = 0;  // bytes of replies waiting behind outstanding ones
  size_t held_ref_bytes_ = 0;  // of those, values sent by reference
  // Where the running command's replies go while one before it is
  // outstanding (its `after`); null = to the socket.
  std::shared_ptr<Outstanding> capture_;
  std::shared_ptr<Outstanding> last_deferred_;  // set by client_.defer
  // Input buffers outstanding or held commands' arguments point into.
  std::vector<std::shared_ptr<char[]>> old_in_;
  // Points to this connection until it closes; deferred replies hold it.
  std::shared_ptr<Connection*> handle_;

  // Input: unparsed bytes are in_[in_begin_, in_end_).
  // Shared so that a deferred command's arguments (e.g. MSET values a
  // transport sends by reference) outlive the connection if it closes.
  std::shared_ptr<char[]> in_;
  size_t in_cap_ = 0, in_begin_ = 0, in_end_ = 0;
  protocol::RequestParser parser_;
  bool parser_authed_limits_ = true;
  std::vector<std::string_view> args_;
  // Commands ahead whose keys PrefetchAhead hinted; it looks again at 0.
  int prefetched_ = 0;
  std::vector<std::string_view> ahead_args_, ahead_keys_;  // reused buffers

  // Output: small replies collect in pending_; evbuffer out_ holds what the
  // socket has not taken yet and references to pinned values.
  std::string pending_;
  evbuffer* out_ = nullptr;
  // Bytes of out_ that reference store memory (released callbacks may
  // outlive the connection, hence shared).
  std::shared_ptr<size_t> ref_bytes_ = std::make_shared<size_t>(0);
  int64_t soft_since_ms_ = 0;  // when output went over the soft limit; 0 = not over

  ClientState client_;
  protocol::ReplyBuilder reply_;
};

}  // namespace kvpool
