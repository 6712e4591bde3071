#include "storage/segment/slab_allocator.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <set>
#include <thread>
#include <vector>

namespace kvpool::storage {
namespace {

constexpr size_t kPage = PageHeap::kPageSize;

class SlabTest : public ::testing::Test {
 protected:
  void Make(size_t pages) {
    auto r = Region::Map(pages * kPage);
    ASSERT_TRUE(r.ok());
    region_ = std::move(r.value());
    heap_ = std::make_unique<PageHeap>(region_.base(), pages, true);
    slabs_ = std::make_unique<SlabAllocator>(heap_.get());
  }
  void TearDown() override {
    slabs_.reset();
    heap_.reset();
  }

  Region region_;
  std::unique_ptr<PageHeap> heap_;
  std::unique_ptr<SlabAllocator> slabs_;
};

TEST(SlabClassesTest, TableIsIncreasingAlignedAndTight) {
  const int n = SlabAllocator::NumClasses();
  EXPECT_GT(n, 60);
  EXPECT_LT(n, SlabAllocator::kLargeClass);
  for (int c = 0; c < n; ++c) {
    size_t sz = SlabAllocator::ClassSize(c);
    EXPECT_EQ(sz % 8, 0u) << c;
    if (c > 0) {
      size_t prev = SlabAllocator::ClassSize(c - 1);
      EXPECT_GT(sz, prev);
      EXPECT_LE(sz - prev, std::max<size_t>(8, prev / 8 + 1024)) << c;  // ~12.5% steps
    }
    // At least 8 objects per slab.
    EXPECT_GE(SlabAllocator::SlabPages(c) * kPage / sz, 8u) << c;
  }
  EXPECT_EQ(SlabAllocator::ClassSize(n - 1), SlabAllocator::kMaxSmallSize);
  // ClassFor gives the smallest class that fits.
  for (size_t bytes = 1; bytes <= SlabAllocator::kMaxSmallSize; bytes += (bytes < 4096 ? 1 : 97)) {
    uint8_t c = SlabAllocator::ClassFor(bytes);
    ASSERT_GE(SlabAllocator::ClassSize(c), bytes);
    if (c > 0) {
      ASSERT_LT(SlabAllocator::ClassSize(c - 1), bytes);
    }
  }
  EXPECT_EQ(SlabAllocator::ClassFor(SlabAllocator::kMaxSmallSize + 1), SlabAllocator::kLargeClass);
  EXPECT_EQ(SlabAllocator::AllocSize(SlabAllocator::kMaxSmallSize + 1),
            SlabAllocator::kMaxSmallSize + kPage);
  EXPECT_EQ(SlabAllocator::AllocSize(100), 104u);
  EXPECT_EQ(SlabAllocator::AllocSize(156), 160u);
}

TEST_F(SlabTest, EveryClassAllocatesDisjointObjects) {
  Make(4096);  // 256 MiB
  for (int c = 0; c < SlabAllocator::NumClasses(); ++c) {
    const size_t sz = SlabAllocator::ClassSize(c);
    std::vector<char*> objs;
    for (int i = 0; i < 10; ++i) {
      uint8_t cls;
      auto* p = static_cast<char*>(slabs_->Alloc(sz, &cls));
      ASSERT_NE(p, nullptr) << c;
      EXPECT_EQ(cls, c);
      EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 8, 0u);
      std::memset(p, i, sz);
      objs.push_back(p);
    }
    EXPECT_EQ(slabs_->used_bytes(), 10 * sz);
    for (int i = 0; i < 10; ++i) {
      EXPECT_EQ(objs[i][0], i);
      EXPECT_EQ(objs[i][sz - 1], i);
      slabs_->Free(objs[i], static_cast<uint8_t>(c));
    }
    EXPECT_EQ(slabs_->used_bytes(), 0u);
  }
}

TEST_F(SlabTest, FreedObjectIsReused) {
  Make(64);
  uint8_t cls;
  void* a = slabs_->Alloc(100, &cls);
  void* b = slabs_->Alloc(100, &cls);
  slabs_->Free(a, cls);
  void* c = slabs_->Alloc(100, &cls);
  EXPECT_EQ(a, c);
  slabs_->Free(b, cls);
  slabs_->Free(c, cls);
}

TEST_F(SlabTest, EmptySlabsReturnToTheHeapKeepingOneCached) {
  Make(64);
  const uint8_t cls = SlabAllocator::ClassFor(1000);
  const size_t per_slab = SlabAllocator::SlabPages(cls) * kPage / SlabAllocator::ClassSize(cls);
  std::vector<void*> objs;
  for (size_t i = 0; i < per_slab * 3; ++i) {
    uint8_t c;
    objs.push_back(slabs_->Alloc(1000, &c));
  }
  EXPECT_EQ(heap_->used_pages(), 3 * SlabAllocator::SlabPages(cls));
  for (void* p : objs) slabs_->Free(p, cls);
  EXPECT_EQ(heap_->used_pages(), SlabAllocator::SlabPages(cls));  // one cached
  EXPECT_EQ(slabs_->used_bytes(), 0u);
}

TEST_F(SlabTest, LargeObjectsAreWholeSpans) {
  Make(64);
  uint8_t cls;
  void* p = slabs_->Alloc(SlabAllocator::kMaxSmallSize + 1, &cls);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(cls, SlabAllocator::kLargeClass);
  EXPECT_EQ(slabs_->used_bytes(), SlabAllocator::kMaxSmallSize + kPage);
  EXPECT_EQ(heap_->used_pages(), 5u);
  slabs_->Free(p, cls);
  EXPECT_EQ(heap_->used_pages(), 0u);
  EXPECT_EQ(slabs_->used_bytes(), 0u);
}

TEST_F(SlabTest, ExhaustionReturnsNullAndRecovers) {
  Make(16);  // 1 MiB
  std::vector<void*> objs;
  uint8_t cls = 0;
  for (;;) {
    void* p = slabs_->Alloc(4000, &cls);
    if (p == nullptr) break;
    objs.push_back(p);
  }
  EXPECT_GT(objs.size(), 200u);
  EXPECT_LE(slabs_->used_bytes(), 16 * kPage);
  // Another class cannot get a slab either.
  uint8_t other;
  EXPECT_EQ(slabs_->Alloc(64, &other), nullptr);
  EXPECT_EQ(slabs_->Alloc(2 * kPage, &other), nullptr);
  for (void* p : objs) slabs_->Free(p, cls);
  void* big = slabs_->Alloc(15 * kPage, &other);  // 15 pages: all but the cached slab
  EXPECT_NE(big, nullptr);
  slabs_->Free(big, other);
}

TEST_F(SlabTest, ConcurrentAllocFreeFromFourThreads) {
  Make(2048);
  auto worker = [&](int seed) {
    std::mt19937 rng(seed);
    std::vector<std::pair<char*, std::pair<size_t, uint8_t>>> live;
    for (int i = 0; i < 20000; ++i) {
      if (live.size() < 200 && (rng() % 3 != 0 || live.empty())) {
        size_t sz = rng() % 4 == 0 ? 1 + rng() % 300000 : 1 + rng() % 512;
        uint8_t cls;
        auto* p = static_cast<char*>(slabs_->Alloc(sz, &cls));
        ASSERT_NE(p, nullptr);
        std::memset(p, seed, std::min<size_t>(sz, 64));
        p[sz - 1] = static_cast<char>(seed);
        live.push_back({p, {sz, cls}});
      } else {
        size_t k = rng() % live.size();
        auto [p, info] = live[k];
        ASSERT_EQ(p[0], static_cast<char>(seed));
        ASSERT_EQ(p[info.first - 1], static_cast<char>(seed));
        slabs_->Free(p, info.second);
        live[k] = live.back();
        live.pop_back();
      }
    }
    for (auto& [p, info] : live) slabs_->Free(p, info.second);
  };
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) ts.emplace_back(worker, t + 1);
  for (auto& t : ts) t.join();
  EXPECT_EQ(slabs_->used_bytes(), 0u);
}

}  // namespace
}  // namespace kvpool::storage
