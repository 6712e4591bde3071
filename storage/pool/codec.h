// A small binary encoder/decoder for pool message bodies: big-endian fixed
// integers and length-prefixed byte strings. The Reader checks every length
// against what is left before using it, so a hostile body can only make
// decoding fail, never read out of bounds or allocate from a lie.
#pragma once

#include <endian.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace kvpool::pool {

class Writer {
 public:
  explicit Writer(std::string* out) : out_(out) {}
  void U8(uint8_t v) { out_->push_back(static_cast<char>(v)); }
  void U32(uint32_t v) {
    v = htobe32(v);
    out_->append(reinterpret_cast<const char*>(&v), 4);
  }
  void U64(uint64_t v) {
    v = htobe64(v);
    out_->append(reinterpret_cast<const char*>(&v), 8);
  }
  void I64(int64_t v) { U64(static_cast<uint64_t>(v)); }
  void Bytes(std::string_view s) {
    U32(static_cast<uint32_t>(s.size()));
    out_->append(s.data(), s.size());
  }

 private:
  std::string* out_;
};

// A key list body, {db u32, n u32, key*n}, of key_at(0) .. key_at(n-1).
template <typename KeyAt>
std::string KeysBody(int db, size_t n, KeyAt key_at) {
  std::string body;
  Writer w(&body);
  w.U32(static_cast<uint32_t>(db));
  w.U32(static_cast<uint32_t>(n));
  for (size_t i = 0; i < n; ++i) w.Bytes(key_at(i));
  return body;
}

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  [[nodiscard]] bool U8(uint8_t* v) {
    if (in_.size() < 1) return false;
    *v = static_cast<uint8_t>(in_[0]);
    in_.remove_prefix(1);
    return true;
  }
  [[nodiscard]] bool U32(uint32_t* v) {
    if (in_.size() < 4) return false;
    memcpy(v, in_.data(), 4);
    *v = be32toh(*v);
    in_.remove_prefix(4);
    return true;
  }
  [[nodiscard]] bool U64(uint64_t* v) {
    if (in_.size() < 8) return false;
    memcpy(v, in_.data(), 8);
    *v = be64toh(*v);
    in_.remove_prefix(8);
    return true;
  }
  [[nodiscard]] bool I64(int64_t* v) {
    uint64_t u;
    if (!U64(&u)) return false;
    *v = static_cast<int64_t>(u);
    return true;
  }
  // A view into the input; valid as long as the input is.
  [[nodiscard]] bool Bytes(std::string_view* s) {
    uint32_t n;
    if (!U32(&n) || in_.size() < n) return false;
    *s = in_.substr(0, n);
    in_.remove_prefix(n);
    return true;
  }
  // A count of items that each take at least `min_item_bytes`: rejected if
  // the rest of the input could not hold that many, so callers may reserve.
  [[nodiscard]] bool Count(uint32_t* n, size_t min_item_bytes) {
    if (!U32(n)) return false;
    return min_item_bytes == 0 || *n <= in_.size() / min_item_bytes;
  }
  bool done() const { return in_.empty(); }
  std::string_view rest() const { return in_; }
  size_t left() const { return in_.size(); }

 private:
  std::string_view in_;
};

}  // namespace kvpool::pool
