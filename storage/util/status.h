// Status and StatusOr: how every call that can fail reports it. No exception
// crosses a module boundary. A Status is cheap when ok (no allocation).
#pragma once

#include <cassert>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace kvpool {

enum class Code {
  kOk = 0,
  kNotFound,
  kInvalidArgument,
  kOutOfMemory,       // maxmemory reached and nothing could be evicted
  kIOError,
  kTimeout,
  kUnavailable,       // a peer node is down or unreachable
  kAborted,           // a condition failed (NX/XX, WATCH, version changed)
  kPermissionDenied,  // authentication failed
  kInternal,
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string msg) : code_(code), msg_(std::move(msg)) {}

  static Status OK() { return Status(); }
  static Status NotFound(std::string m = {}) { return {Code::kNotFound, std::move(m)}; }
  static Status InvalidArgument(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
  static Status OutOfMemory(std::string m = {}) { return {Code::kOutOfMemory, std::move(m)}; }
  static Status IOError(std::string m) { return {Code::kIOError, std::move(m)}; }
  static Status Timeout(std::string m = {}) { return {Code::kTimeout, std::move(m)}; }
  static Status Unavailable(std::string m) { return {Code::kUnavailable, std::move(m)}; }
  static Status Aborted(std::string m = {}) { return {Code::kAborted, std::move(m)}; }
  static Status PermissionDenied(std::string m) { return {Code::kPermissionDenied, std::move(m)}; }
  static Status Internal(std::string m) { return {Code::kInternal, std::move(m)}; }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return msg_; }
  std::string ToString() const;

  // Explicitly drop a status whose failure is harmless (and say why at the call site).
  void IgnoreError() const {}

 private:
  Code code_ = Code::kOk;
  std::string msg_;
};

inline std::string Status::ToString() const {
  static constexpr const char* kNames[] = {"OK",          "NotFound", "InvalidArgument",
                                           "OutOfMemory", "IOError",  "Timeout",
                                           "Unavailable", "Aborted",  "PermissionDenied",
                                           "Internal"};
  std::string s = kNames[static_cast<int>(code_)];
  if (!msg_.empty()) s += ": " + msg_;
  return s;
}

template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(Status s) : v_(std::move(s)) { assert(!std::get<Status>(v_).ok()); }
  StatusOr(T value) : v_(std::move(value)) {}

  bool ok() const { return std::holds_alternative<T>(v_); }
  Status status() const { return ok() ? Status::OK() : std::get<Status>(v_); }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  T& operator*() { return value(); }

 private:
  std::variant<Status, T> v_;
};

}  // namespace kvpool
