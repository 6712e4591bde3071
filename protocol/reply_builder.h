// Encodes replies in RESP2 or RESP3 into a ReplySink. No I/O, no server types.
// The same call sequence yields the protocol-appropriate bytes: e.g. Null() is
// "$-1\r\n" in RESP2 and "_\r\n" in RESP3; MapHeader(n) is "*2n" in RESP2 and
// "%n" in RESP3. Each reply under ~500 bytes reaches the sink in a single
// Write; larger bulks go as header, payload, CRLF without an extra copy.
//
// Threading: one builder per connection; not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace kvpool::protocol {

// Where encoded bytes go. WriteRef lets large values reach the socket without
// a copy: the sink keeps (data, len) referenced until it has been sent, then
// calls release(ctx) exactly once. The default copies and releases at once.
class ReplySink {
 public:
  virtual ~ReplySink() = default;
  virtual void Write(const char* data, size_t len) = 0;
  virtual void WriteRef(const char* data, size_t len, void (*release)(void*), void* ctx) {
    Write(data, len);
    release(ctx);
  }
};

// A sink that appends to a std::string (tests, deferred replies).
class StringSink : public ReplySink {
 public:
  void Write(const char* data, size_t len) override { out.append(data, len); }
  std::string out;
};


// One error reply's bytes ("-msg\r\n", the same in RESP2 and RESP3), for a
// reply finished later as bytes (a deferred reply).
std::string EncodeError(std::string_view msg);

class ReplyBuilder {
 public:
  explicit ReplyBuilder(ReplySink* sink, int resp = 2) : sink_(sink), resp_(resp) {}

  void set_sink(ReplySink* sink) { sink_ = sink; }
  ReplySink* sink() const { return sink_; }
  void set_resp(int resp) { resp_ = resp; }  // 2 or 3
  int resp() const { return resp_; }

  // "+s\r\n". s should not hold CR/LF; any that slip in become spaces.
  void SimpleString(std::string_view s);
  void Ok() { SimpleString("OK"); }
  // "-msg\r\n". `msg` carries its own prefix ("ERR ...", "WRONGTYPE ...");
  // CR/LF inside it are replaced by spaces so the frame stays valid.
  void Error(std::string_view msg);
  void Integer(int64_t v);        // ":v\r\n"
  void Bulk(std::string_view s);  // "$len\r\ns\r\n"
  // A bulk whose payload the sink references instead of copying (see
  // ReplySink::WriteRef); release(ctx) is called once it is no longer needed.
  void BulkRef(const char* data, size_t len, void (*release)(void*), void* ctx);
  void Null();                 // RESP2 "$-1", RESP3 "_"
  void NullArray();            // RESP2 "*-1", RESP3 "_"
  void ArrayHeader(size_t n);  // "*n"
  void MapHeader(size_t n);    // RESP3 "%n", RESP2 "*2n"
  void SetHeader(size_t n);    // RESP3 "~n", RESP2 "*n"
  // RESP3 ",v\r\n", RESP2 a bulk of the same text: "%.17g", or inf/-inf/nan.
  void Double(double v);
  void Bool(bool v);  // RESP3 "#t"/"#f", RESP2 ":1"/":0"
  // RESP3 "=len\r\ntxt:s\r\n" (INFO in RESP3), RESP2 a plain bulk. As Redis,
  // `format` is cut or space-padded to exactly three bytes.
  void Verbatim(std::string_view s, std::string_view format = "txt");
  // Bytes that are already a complete RESP reply (e.g. relayed from a peer).
  void Raw(std::string_view encoded);

  // Error() calls so far, and the first word of the last one ("ERR",
  // "WRONGTYPE"): what a caller needs for error statistics.
  uint64_t errors() const { return errors_; }
  std::string_view last_error_code() const { return last_error_code_; }

  // Array of bulks.
  template <typename Container>
  void BulkArray(const Container& items) {
    ArrayHeader(items.size());
    for (const auto& s : items) Bulk(s);
  }

 private:
  void Header(char type, uint64_t n);        // "<type>n\r\n"
  void Line(char type, std::string_view s);  // "<type>s\r\n", CR/LF -> ' '
  // "<type><len>\r\n<prefix><s>\r\n" with len = prefix + s; one Write when small.
  void TypedBlob(char type, std::string_view prefix, std::string_view s);
  ReplySink* sink_;
  int resp_;
  uint64_t errors_ = 0;
  std::string last_error_code_;
};

}  // namespace kvpool::protocol
