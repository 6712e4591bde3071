// transport::BulkOut (transport.h): a reply's bulk bytes, kept past the
// callback when the caller asks.
#include <algorithm>
#include <cstring>

#include "storage/transport/transport.h"

namespace kvpool::transport {

std::shared_ptr<const void> BulkOut::Keep() {
  if (kept_) return kept_;
  if (buffer_ != nullptr && *buffer_) {
    // The received buffer itself: the view stays where it is.
    kept_ = std::shared_ptr<const char[]>(buffer_->release());
    return kept_;
  }
  std::shared_ptr<char[]> copy(new char[std::max<size_t>(bytes_.size(), 1)]);
  if (!bytes_.empty()) std::memcpy(copy.get(), bytes_.data(), bytes_.size());
  bytes_ = std::string_view(copy.get(), bytes_.size());
  kept_ = std::move(copy);
  return kept_;
}

}  // namespace kvpool::transport
