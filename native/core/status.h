// Error reporting shared by every front end (Node-API, wasm C ABI).
// The kind decides which JS error class the glue throws, so callers can tell a
// wrong argument type (TypeError) from a value out of range (RangeError).
#pragma once
#include <string>
#include <utility>

namespace bl {

enum class ErrorKind { None = 0, Type = 1, Range = 2, Runtime = 3 };

class Status {
 public:
  Status() = default;
  static Status ok() { return Status(); }
  static Status type_error(std::string msg) { return Status(ErrorKind::Type, std::move(msg)); }
  static Status range_error(std::string msg) { return Status(ErrorKind::Range, std::move(msg)); }
  static Status runtime_error(std::string msg) { return Status(ErrorKind::Runtime, std::move(msg)); }

  bool is_ok() const { return kind_ == ErrorKind::None; }
  ErrorKind kind() const { return kind_; }
  const std::string& message() const { return message_; }

 private:
  Status(ErrorKind kind, std::string msg) : kind_(kind), message_(std::move(msg)) {}
  ErrorKind kind_ = ErrorKind::None;
  std::string message_;
};

#define BL_RETURN_IF_ERROR(expr)          \
  do {                                    \
    ::bl::Status bl_status_ = (expr);     \
    if (!bl_status_.is_ok()) return bl_status_; \
  } while (0)

}  // namespace bl
