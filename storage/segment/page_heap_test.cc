#include "storage/segment/page_heap.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

namespace kvpool::storage {
namespace {

constexpr size_t kPage = PageHeap::kPageSize;

class PageHeapTest : public ::testing::Test {
 protected:
  void Make(size_t pages, bool release = true) {
    auto r = Region::Map(pages * kPage);
    ASSERT_TRUE(r.ok());
    region_ = std::move(r.value());
    heap_ = std::make_unique<PageHeap>(region_.base(), pages, release);
  }
  size_t Start(Span* s) { return s->start; }

  Region region_;
  std::unique_ptr<PageHeap> heap_;
};

TEST_F(PageHeapTest, AllocatesContiguousSpansInOrder) {
  Make(16);
  Span* a = heap_->Alloc(4);
  Span* b = heap_->Alloc(4);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(Start(a), 0u);
  EXPECT_EQ(Start(b), 4u);
  EXPECT_EQ(heap_->SpanBase(b), region_.base() + 4 * kPage);
  EXPECT_EQ(heap_->used_pages(), 8u);
  // Every address inside a span maps to it.
  EXPECT_EQ(heap_->SpanOf(heap_->SpanBase(b) + 3 * kPage + 17), b);
  EXPECT_EQ(heap_->SpanOf(heap_->SpanBase(a)), a);
  heap_->Free(a);
  heap_->Free(b);
  EXPECT_EQ(heap_->used_pages(), 0u);
  EXPECT_EQ(heap_->LargestFreeRun(), 16u);
}

TEST_F(PageHeapTest, CoalescesBothNeighbours) {
  Make(8);
  Span* s[8];
  for (auto& p : s) ASSERT_NE(p = heap_->Alloc(1), nullptr);
  EXPECT_EQ(heap_->Alloc(1), nullptr);
  // Free odd ones, then even ones: each even free merges left and right.
  for (int i = 1; i < 8; i += 2) heap_->Free(s[i]);
  EXPECT_EQ(heap_->LargestFreeRun(), 1u);
  for (int i = 0; i < 8; i += 2) heap_->Free(s[i]);
  EXPECT_EQ(heap_->LargestFreeRun(), 8u);
  Span* all = heap_->Alloc(8);
  ASSERT_NE(all, nullptr);
  EXPECT_EQ(Start(all), 0u);
  heap_->Free(all);
}

TEST_F(PageHeapTest, BestFitPicksSmallestSufficientHole) {
  Make(32);
  // Layout: [0,5) A  [5,6) x  [6,8) B  [8,9) y  [9,12) C  [12,13) z  rest free
  Span* a = heap_->Alloc(5);
  Span* x = heap_->Alloc(1);
  Span* b = heap_->Alloc(2);
  Span* y = heap_->Alloc(1);
  Span* c = heap_->Alloc(3);
  Span* z = heap_->Alloc(1);
  heap_->Free(a);  // hole of 5 at 0
  heap_->Free(b);  // hole of 2 at 6
  heap_->Free(c);  // hole of 3 at 9
  Span* two = heap_->Alloc(2);
  EXPECT_EQ(Start(two), 6u);
  Span* three = heap_->Alloc(3);
  EXPECT_EQ(Start(three), 9u);
  Span* four = heap_->Alloc(4);
  EXPECT_EQ(Start(four), 0u);  // splits the 5-hole, leaving 1 page at 4
  Span* one = heap_->Alloc(1);
  EXPECT_EQ(Start(one), 4u);
  for (Span* s : {x, y, z, two, three, four, one}) heap_->Free(s);
  EXPECT_EQ(heap_->LargestFreeRun(), 32u);
}

TEST_F(PageHeapTest, ExhaustionReturnsNull) {
  Make(4);
  EXPECT_EQ(heap_->Alloc(5), nullptr);
  EXPECT_EQ(heap_->Alloc(0), nullptr);
  Span* a = heap_->Alloc(3);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(heap_->Alloc(2), nullptr);
  Span* b = heap_->Alloc(1);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(heap_->Alloc(1), nullptr);
  heap_->Free(a);
  EXPECT_NE(b = heap_->Alloc(3), nullptr);
}

TEST_F(PageHeapTest, PurgeGivesPagesBackAsZeroes) {
  Make(64);
  Span* s = heap_->Alloc(2);
  std::memset(heap_->SpanBase(s), 0xab, 2 * kPage);
  heap_->Free(s);  // small: stays dirty until Purge
  EXPECT_EQ(heap_->Purge(1000), 64u);  // the whole (coalesced) free run
  EXPECT_EQ(heap_->Purge(1000), 0u);   // nothing dirty left
  s = heap_->Alloc(2);
  EXPECT_EQ(Start(s), 0u);
  EXPECT_EQ(static_cast<unsigned char>(heap_->SpanBase(s)[100]), 0u);
  heap_->Free(s);
  EXPECT_EQ(heap_->LargestFreeRun(), 64u);
}

// A dirty free run of `pages` (made of spans too small to be released
// eagerly).
void MakeDirtyRun(PageHeap& heap, size_t pages) {
  std::vector<Span*> spans;
  for (size_t i = 0; i < pages / 8; ++i) spans.push_back(heap.Alloc(8));
  for (Span* s : spans) {
    std::memset(heap.SpanBase(s), 0x5a, 8 * PageHeap::kPageSize);
    heap.Free(s);
  }
}

// Purge takes out of the heap only what its budget allows: the rest of a
// longer run stays free for allocations while it releases (before, the
// whole run left the heap, and a write then found the segment full and
// evicted a key with almost nothing stored).
TEST_F(PageHeapTest, PurgeSplitsARunLongerThanItsBudget) {
  Make(64);
  MakeDirtyRun(*heap_, 64);
  size_t free_meanwhile = 0;
  heap_->SetPurgeHookForTest([&] { free_meanwhile = heap_->LargestFreeRun(); });
  EXPECT_EQ(heap_->Purge(10), 10u);
  EXPECT_EQ(free_meanwhile, 54u);
  EXPECT_EQ(heap_->LargestFreeRun(), 64u);
  EXPECT_EQ(heap_->used_pages(), 0u);
  heap_->SetPurgeHookForTest(nullptr);
  // The released part merged back into the dirty rest: dirty as a whole.
  EXPECT_EQ(heap_->Purge(1000), 64u);
}

// An allocation that finds no free run while Purge has pages out waits for
// them instead of failing.
TEST_F(PageHeapTest, AllocWaitsForPagesBeingPurged) {
  Make(16);
  MakeDirtyRun(*heap_, 16);
  std::atomic<bool> done{false};
  Span* got = nullptr;
  std::thread t;
  heap_->SetPurgeHookForTest([&] {
    t = std::thread([&] {
      got = heap_->Alloc(4);
      done = true;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_FALSE(done.load()) << "Alloc did not wait for the pages being released";
  });
  EXPECT_EQ(heap_->Purge(16), 16u);
  t.join();
  ASSERT_NE(got, nullptr);
  EXPECT_EQ(got->npages, 4u);
  heap_->Free(got);
  heap_->SetPurgeHookForTest(nullptr);
}

TEST_F(PageHeapTest, LargeSpansAreReleasedEagerly) {
  Make(64);
  Span* s = heap_->Alloc(PageHeap::kEagerReleasePages);
  std::memset(heap_->SpanBase(s), 0xcd, PageHeap::kEagerReleasePages * kPage);
  heap_->Free(s);
  s = heap_->Alloc(PageHeap::kEagerReleasePages);
  EXPECT_EQ(static_cast<unsigned char>(heap_->SpanBase(s)[kPage + 5]), 0u);
  heap_->Free(s);
}

TEST_F(PageHeapTest, NoReleaseKeepsContents) {
  Make(64, /*release=*/false);
  Span* s = heap_->Alloc(PageHeap::kEagerReleasePages);
  std::memset(heap_->SpanBase(s), 0xcd, PageHeap::kEagerReleasePages * kPage);
  heap_->Free(s);
  EXPECT_EQ(heap_->Purge(1000), 0u);
  s = heap_->Alloc(PageHeap::kEagerReleasePages);
  EXPECT_EQ(static_cast<unsigned char>(heap_->SpanBase(s)[kPage + 5]), 0xcdu);
  heap_->Free(s);
}

TEST_F(PageHeapTest, SpansStillAllocatedAtDestructionAreNotLeaked) {
  Make(8);
  ASSERT_NE(heap_->Alloc(3), nullptr);
  ASSERT_NE(heap_->Alloc(1), nullptr);
  heap_.reset();  // LeakSanitizer checks the Span objects
}

}  // namespace
}  // namespace kvpool::storage
