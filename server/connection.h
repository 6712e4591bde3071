// One client connection: reads requests off the socket into its own buffer,
// parses them (pipelined), dispatches each, and writes the replies back in
// order. Large values go to the socket by reference (no copy) while pinned.
//
// Threading: lives on one IoThread and is touched only there.
#pragma once

#include <event2/buffer.h>
#include <event2/event.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/reply_builder.h"
#include "protocol/resp_parser.h"
#include "server/client_state.h"
#include "server/server_context.h"

namespace kvpool {

class IoThread;

class Connection : private protocol::ReplySink {
 public:
  Connection(ServerContext* server, IoThread* thread, int fd, std::string addr, std::string laddr);
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
  // (0 = never) or over client-output-buffer-limit.
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

  class Slot;
  // The reply of a deferred command (see ReplySlot) arrived.
  void DeferredDone(std::string_view encoded);
  void DeferredDone(protocol::DeferredReply&& reply);
  void AfterDeferred();
  void ResumeReading();

  static void OnReadable(evutil_socket_t fd, short what, void* arg);
  static void OnWritable(evutil_socket_t fd, short what, void* arg);
  void HandleRead();
  void ProcessInput();
  void Flush();
  size_t OutputBytes() const;
  bool OverOutputLimit();
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
  bool closed_ = false;
  bool reading_ = false;       // read event armed
  // Requests are held back until the client reads its replies. While set,
  // the write event stays armed even with the output drained: its callback
  // is where reading resumes, and a Flush can drain everything at once when
  // the client reads as fast as the socket is written.
  bool output_paused_ = false;
  bool write_armed_ = false;   // write event armed
  bool closing_ = false;       // close once output drains
  bool waiting_ = false;       // a deferred reply is outstanding: requests wait
  bool in_dispatch_ = false;   // inside Dispatch (a deferred reply may finish at once)
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
