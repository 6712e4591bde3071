#include "protocol/deferred_reply.h"

#include "protocol/lazy_free.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace kvpool::protocol {
namespace {

// Records what reaches it: bytes, and which writes were references.
class RecordingSink : public ReplySink {
 public:
  void Write(const char* data, size_t len) override { out.append(data, len); }
  void WriteRef(const char* data, size_t len, void (*release)(void*), void* ctx) override {
    out.append(data, len);
    refs.emplace_back(data, len);
    release(ctx);
  }
  std::string out;
  std::vector<std::pair<const char*, size_t>> refs;
};

void Count(void* ctx) { ++*static_cast<int*>(ctx); }

TEST(DeferredReplyTest, ReplaysBytesAndReferencesInOrder) {
  DeferredReply d;
  ReplyBuilder rb(&d, 2);
  std::string big(40000, 'v');
  int released = 0;
  rb.ArrayHeader(3);
  rb.Bulk("a");
  rb.BulkRef(big.data(), big.size(), &Count, &released);
  rb.Null();
  EXPECT_FALSE(d.text_only());
  EXPECT_EQ(d.size(), 4 + 7 + 8 + big.size() + 2 + 5);

  RecordingSink sink;
  d.ReplayInto(sink);
  EXPECT_EQ(sink.out, "*3\r\n$1\r\na\r\n$40000\r\n" + big + "\r\n$-1\r\n");
  ASSERT_EQ(sink.refs.size(), 1u);
  EXPECT_EQ(sink.refs[0].first, big.data()) << "the value was copied, not referenced";
  EXPECT_EQ(released, 1);
  EXPECT_EQ(d.size(), 0u);
}

TEST(DeferredReplyTest, ReferencesNeverReplayedAreReleasedOnce) {
  int released = 0;
  {
    DeferredReply d;
    d.WriteRef("xy", 2, &Count, &released);
    DeferredReply moved(std::move(d));
    DeferredReply assigned;
    assigned.WriteRef("z", 1, &Count, &released);
    assigned = std::move(moved);  // releases "z", takes "xy"
    EXPECT_EQ(released, 1);
  }
  EXPECT_EQ(released, 2);
}

TEST(DeferredReplyTest, OwnsAHeapStringGivenByReference) {
  auto* value = new std::string(100000, 'q');
  RecordingSink sink;
  {
    DeferredReply d;
    ReplyBuilder rb(&d, 3);
    rb.BulkRef(value->data(), value->size(), &DeleteString, value);
    d.ReplayInto(sink);  // the sink releases: deletes the string (ASan checks)
  }
  EXPECT_EQ(sink.out.size(), 9 + 100000 + 2);
  DeferredReply unsent;
  auto* other = new std::string("never sent");
  unsent.WriteRef(other->data(), other->size(), &DeleteString, other);  // freed by ~DeferredReply
}

TEST(DeferredReplyTest, FreesALargeStringInTheBackground) {
  const uint64_t before = LazyFreedBytes();
  auto* big = new std::string(kLazyFreeMinBytes, 'b');
  const size_t cap = big->capacity();
  auto* small = new std::string(1000, 's');
  {
    DeferredReply d;
    ReplyBuilder rb(&d, 3);
    rb.BulkRef(big->data(), big->size(), &DeleteString, big);
    rb.BulkRef(small->data(), small->size(), &DeleteString, small);  // freed at once
  }
  WaitForLazyFrees();  // ASan would report `big` leaked if it never were
  EXPECT_EQ(LazyFreedBytes() - before, cap);
}

TEST(DeferredReplyTest, FreesALargeArrayInTheBackground) {
  const uint64_t before = LazyFreedBytes();
  DeleteArrayLater(new char[1000], 1000);  // at once
  DeleteArrayLater(new char[kLazyFreeMinBytes], kLazyFreeMinBytes);
  WaitForLazyFrees();  // ASan would report either leaked if it never were
  EXPECT_EQ(LazyFreedBytes() - before, kLazyFreeMinBytes);
}

TEST(DeferredReplyTest, TextOnlyReplyCanBeAdopted) {
  DeferredReply d;
  ReplyBuilder rb(&d, 2);
  rb.Integer(7);
  ASSERT_TRUE(d.text_only());
  std::string taken;
  taken.swap(d.text());
  EXPECT_EQ(taken, ":7\r\n");
}

}  // namespace
}  // namespace kvpool::protocol
