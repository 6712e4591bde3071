#include "storage/transport/fake_transport.h"

#include <event2/event.h>
#include <gtest/gtest.h>

#include <chrono>
#include <optional>

namespace kvpool::transport {
namespace {

struct Result {
  Status st;
  std::string reply, bulk;
};

class FakeTransportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = event_base_new();
    net_ = std::make_unique<FakeNetwork>(base_, 3);
    for (int i = 0; i < 3; ++i) {
      t_.push_back(net_->CreateTransport(i));
      ASSERT_TRUE(
          t_[i]
              ->Start({base_},
                      [this, i](std::unique_ptr<IncomingCall> c) { Handle(i, std::move(c)); })
              .ok());
    }
  }
  void TearDown() override {
    held_.clear();
    t_.clear();
    net_.reset();
    event_base_free(base_);
  }
  // Owner behaviour by opcode: 1 echo, 2 bulk_in → bulk_out, 3 hold, 4 drop.
  void Handle(int node, std::unique_ptr<IncomingCall> c) {
    handled_[node]++;
    if (c->opcode() == 1) return c->Reply(std::string(c->body()));
    if (c->opcode() == 3) return held_.push_back(std::move(c));
    if (c->opcode() == 4) return;
    auto shared = std::make_shared<std::unique_ptr<IncomingCall>>(std::move(c));
    auto buf = std::make_shared<std::string>((*shared)->bulk_in_size(), '\0');
    (*shared)->ReadBulk(0, buf->size(), buf->data(), [this, shared, buf](Status st) {
      IncomingCall& c = **shared;
      if (!st.ok()) return c.Reply("read: " + st.ToString());
      size_t at;
      auto* keep = new std::shared_ptr<std::string>(buf);
      Status w = c.WriteBulk(
          buf->data(), buf->size(),
          [](void* p) { delete static_cast<std::shared_ptr<std::string>*>(p); }, keep, &at);
      if (!w.ok()) delete keep;
      released_ += w.ok();
      c.Reply(w.ok() ? "copied" : "no room");
    });
  }
  std::optional<Result> CallAndRun(int from, int to, CallArgs args, int timeout_ms = 1000) {
    std::optional<Result> out;
    bool returned = false;
    t_[from]->Call(0, to, std::move(args), timeout_ms,
                   [&](Status st, std::string_view reply, std::string_view bulk) {
                     EXPECT_TRUE(returned || !st.ok()) << "success delivered synchronously";
                     out = Result{st, std::string(reply), std::string(bulk)};
                   });
    returned = true;
    RunUntil([&] { return out.has_value(); });
    return out;
  }
  template <typename Pred>
  void RunUntil(Pred pred, int max_ms = 5000) {
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(max_ms);
    while (!pred() && std::chrono::steady_clock::now() < end) event_base_loop(base_, EVLOOP_ONCE);
  }
  static CallArgs Args(uint16_t op, std::string body, size_t cap = 0) {
    CallArgs a;
    a.opcode = op;
    a.body = std::move(body);
    a.bulk_out_capacity = cap;
    return a;
  }

  event_base* base_ = nullptr;
  std::unique_ptr<FakeNetwork> net_;
  std::vector<std::unique_ptr<Transport>> t_;
  std::vector<std::unique_ptr<IncomingCall>> held_;
  int handled_[3] = {0, 0, 0};
  int released_ = 0;
};

TEST_F(FakeTransportTest, EchoIsAsynchronous) {
  auto r = CallAndRun(0, 1, Args(1, "hi"));
  ASSERT_TRUE(r && r->st.ok());
  EXPECT_EQ(r->reply, "hi");
  EXPECT_EQ(net_->delivered(1), 1u);
  EXPECT_EQ(t_[0]->counters(1).calls.load(), 1u);
  EXPECT_STREQ(t_[0]->name(), "fake");
}

TEST_F(FakeTransportTest, CountersCountDeliveredCalls) {
  ASSERT_TRUE(CallAndRun(0, 1, Args(1, "a")) && CallAndRun(2, 1, Args(1, "b")));
  std::vector<TransportCounter> c = t_[1]->Counters();
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].name, "calls_delivered");
  EXPECT_EQ(c[0].value, 2u);
  EXPECT_EQ(t_[0]->Counters()[0].value, 0u);
}

TEST(TransportCounterNameTest, OnlyLowercaseDigitsAndUnderscores) {
  for (const char* ok : {"a", "frames_sent", "segments_tagged", "x2_y"})
    EXPECT_TRUE(IsTransportCounterName(ok)) << ok;
  for (const char* bad : {"", "_a", "2a", "Frames", "a-b", "a b", "a\nb", "a{b}", "a\"b"})
    EXPECT_FALSE(IsTransportCounterName(bad)) << bad;
  EXPECT_TRUE(IsTransportCounterName(std::string(64, 'a')));
  EXPECT_FALSE(IsTransportCounterName(std::string(65, 'a')));
}

TEST_F(FakeTransportTest, BulkInToBulkOut) {
  std::string data(100000, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = char(i * 31 + 7);
  CallArgs a = Args(2, "", data.size());
  a.bulk_in = {{data.data(), 1000}, {data.data() + 1000, data.size() - 1000}};
  auto r = CallAndRun(0, 2, std::move(a));
  ASSERT_TRUE(r && r->st.ok()) << r->st.ToString();
  EXPECT_EQ(r->reply, "copied");
  EXPECT_EQ(r->bulk, data);
  EXPECT_EQ(t_[0]->counters(2).bytes_out.load(), data.size());
  EXPECT_EQ(t_[0]->counters(2).bytes_in.load(), data.size());
  // Over capacity.
  a = Args(2, "", 10);
  a.bulk_in = {{data.data(), 11}};
  r = CallAndRun(0, 2, std::move(a));
  ASSERT_TRUE(r && r->st.ok());
  EXPECT_EQ(r->reply, "no room");
}

TEST_F(FakeTransportTest, DownNodeRefusesAfterDelay) {
  net_->SetDown(1, FakeNetwork::DownMode::kRefuse, 50);
  EXPECT_FALSE(t_[0]->peer_up(1));
  auto start = std::chrono::steady_clock::now();
  auto r = CallAndRun(0, 1, Args(1, "x"));
  EXPECT_EQ(r->st.code(), Code::kUnavailable);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(45));
  EXPECT_EQ(handled_[1], 0);
  net_->SetUp(1);
  EXPECT_TRUE(CallAndRun(0, 1, Args(1, "x"))->st.ok());
}

TEST_F(FakeTransportTest, BlackholedNodeTimesOut) {
  net_->SetDown(1, FakeNetwork::DownMode::kBlackhole);
  auto r = CallAndRun(0, 1, Args(1, "x"), 30);
  EXPECT_EQ(r->st.code(), Code::kTimeout);
  EXPECT_EQ(net_->in_flight(), 0u);
}

TEST_F(FakeTransportTest, NodeGoingDownFailsHeldCalls) {
  std::optional<Result> out;
  t_[0]->Call(0, 1, Args(3, ""), 0, [&](Status st, std::string_view, std::string_view) {
    out = Result{st, "", ""};
  });
  RunUntil([&] { return held_.size() == 1; });
  net_->SetDown(1);
  RunUntil([&] { return out.has_value(); });
  EXPECT_EQ(out->st.code(), Code::kUnavailable);
  held_[0]->Reply("lost");  // answering afterwards is harmless
  RunUntil([] { return false; }, 20);
}

TEST_F(FakeTransportTest, InjectedFailures) {
  net_->SetCallFilter([](int from, int to, const CallArgs& a) {
    return a.body == "fail" ? Status::Unavailable("injected") : Status::OK();
  });
  EXPECT_EQ(CallAndRun(0, 1, Args(1, "fail"))->st.code(), Code::kUnavailable);
  EXPECT_TRUE(CallAndRun(0, 1, Args(1, "pass"))->st.ok());
  EXPECT_EQ(handled_[1], 1);
  EXPECT_EQ(t_[0]->counters(1).errors.load(), 1u);
}

TEST_F(FakeTransportTest, DroppedCallAndLateReply) {
  auto r = CallAndRun(0, 1, Args(4, ""));
  EXPECT_EQ(r->st.code(), Code::kInternal);
  EXPECT_EQ(r->st.message(), "kvpool: call dropped");
  // A reply after the timeout is dropped; the callback runs once.
  int callbacks = 0;
  t_[0]->Call(0, 1, Args(3, ""), 20, [&](Status st, std::string_view, std::string_view) {
    EXPECT_EQ(st.code(), Code::kTimeout);
    callbacks++;
  });
  RunUntil([&] { return callbacks == 1; });
  held_[0]->Reply("late");
  RunUntil([] { return false; }, 20);
  EXPECT_EQ(callbacks, 1);
}

TEST_F(FakeTransportTest, ReadBulkAfterRequesterGaveUp) {
  std::string data(10, 'd');
  CallArgs a = Args(3, "");
  a.bulk_in = {{data.data(), data.size()}};
  int callbacks = 0;
  t_[0]->Call(0, 1, std::move(a), 20,
              [&](Status, std::string_view, std::string_view) { callbacks++; });
  RunUntil([&] { return callbacks == 1; });
  ASSERT_EQ(held_.size(), 1u);
  std::optional<Status> read;
  char buf[10];
  held_[0]->ReadBulk(0, 10, buf, [&](Status st) { read = st; });
  RunUntil([&] { return read.has_value(); });
  EXPECT_EQ(read->code(), Code::kUnavailable);
}

TEST_F(FakeTransportTest, StoppedNodes) {
  std::optional<Result> out;
  t_[0]->Call(0, 1, Args(3, ""), 0, [&](Status st, std::string_view, std::string_view) {
    out = Result{st, "", ""};
  });
  RunUntil([&] { return held_.size() == 1; });
  t_[0]->StopLane(0);  // the requester stops: its call fails now
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->st.code(), Code::kUnavailable);
  EXPECT_EQ(CallAndRun(0, 1, Args(1, "x"))->st.code(), Code::kUnavailable);
  t_[2].reset();  // a node taken away
  EXPECT_EQ(CallAndRun(1, 2, Args(1, "x"))->st.code(), Code::kUnavailable);
  EXPECT_FALSE(t_[1]->peer_up(2));
}

}  // namespace
}  // namespace kvpool::transport
