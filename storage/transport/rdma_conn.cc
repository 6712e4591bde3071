// Conn: one RC queue pair (see rdma_internal.h for the rules it keeps).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "storage/transport/rdma_internal.h"

namespace kvpool::transport::rdma {

namespace {

constexpr uint64_t kRecvFlag = 1ull << 63;
constexpr int kMaxChain = 32;     // WRs per ibv_post_send
constexpr int kPollBatch = 32;    // completions per ibv_poll_cq
constexpr int kPollBudget = 512;  // completions per callback before yielding the loop
constexpr uint8_t kKeep = 0xFF;   // ToRts: keep the CM's value

std::string Errno(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

std::string EventText(const CmEvent& ev) {
  return std::string(rdma_event_str(ev.type)) + " (status " + std::to_string(ev.status) + ")";
}

}  // namespace

Conn::Conn(Lane* lane, ConnOwner* owner, Role role, int peer)
    : lane_(lane), owner_(owner), role_(role), peer_(peer), depth_(lane->t->dev().queue_depth) {
  flush_ev_ = event_new(lane->base, -1, 0, &Conn::FlushCb, this);
  poll_ev_ = event_new(lane->base, -1, 0, &Conn::PollCb, this);
}

Conn::~Conn() { Close(Status::Unavailable("connection destroyed"), /*notify=*/false); }

Status Conn::Connect(const sockaddr* src, const sockaddr* dst, const ConnRequest& req) {
  req_ = req;
  rdma_cm_id* raw = nullptr;
  if (rdma_create_id(lane_->cm.get(), &raw, this, RDMA_PS_TCP) != 0)
    return Status::Unavailable(Errno("rdma_create_id"));
  id_ = CmId(raw);
  if (rdma_resolve_addr(id_.get(), const_cast<sockaddr*>(src), const_cast<sockaddr*>(dst),
                        lane_->t->tuning().resolve_timeout_ms) != 0)
    return Status::Unavailable(Errno("rdma_resolve_addr"));
  return Status::OK();
}

Status Conn::Accept(rdma_cm_id* id, const ConnRequest& req, uint8_t responder_resources,
                    uint8_t initiator_depth) {
  id_ = CmId(id);
  id_->context = this;
  peer_depth_ = static_cast<int>(req.recv_depth);
  credits_ = peer_depth_;
  // The owner side only initiates READ/WRITE; its QP grants no remote access.
  Status st = SetupQp(0);
  if (st.ok()) st = ToRts(responder_resources, initiator_depth);
  if (st.ok()) {
    const std::string pd = EncodeConnAccept(ConnAccept{static_cast<uint32_t>(depth_)});
    rdma_conn_param p{};
    p.private_data = pd.data();
    p.private_data_len = static_cast<uint8_t>(pd.size());
    p.responder_resources = responder_resources;
    p.initiator_depth = initiator_depth;
    p.retry_count = lane_->t->tuning().retry_count;
    p.rnr_retry_count = 7;
    p.qp_num = qp_->qp_num;
    if (rdma_accept(id_.get(), &p) != 0) st = Status::Unavailable(Errno("rdma_accept"));
  }
  if (!st.ok()) {
    rdma_reject(id_.get(), nullptr, 0);
    return st;
  }
  cm_connected_ = true;
  lane_->t->stats().connections.fetch_add(1, std::memory_order_relaxed);
  return Status::OK();
}

Status Conn::SetupQp(int access) {
  const Device& dev = lane_->t->dev();
  if (id_->verbs != dev.ctx)
    return Status::Unavailable(std::string("peer is reached through RDMA device ") +
                               (id_->verbs ? ibv_get_device_name(id_->verbs->device) : "(none)") +
                               ", this transport uses " + dev.name);
  ibv_cq* cq = ibv_create_cq(dev.ctx, 2 * depth_ + 2, this, lane_->comp.get(), 0);
  if (!cq) return Status::Unavailable(Errno("ibv_create_cq"));
  cq_ = Cq(cq);
  if (ibv_req_notify_cq(cq, 0) != 0) return Status::Unavailable(Errno("ibv_req_notify_cq"));

  ibv_qp_init_attr ia{};
  ia.send_cq = cq;
  ia.recv_cq = cq;
  ia.cap.max_send_wr = static_cast<uint32_t>(depth_);
  ia.cap.max_recv_wr = static_cast<uint32_t>(depth_);
  ia.cap.max_send_sge = 1;
  ia.cap.max_recv_sge = 1;
  ia.qp_type = IBV_QPT_RC;
  ia.sq_sig_all = 0;
  ibv_qp* qp = ibv_create_qp(dev.pd.get(), &ia);
  if (!qp) return Status::Unavailable(Errno("ibv_create_qp"));
  qp_ = Qp(qp);

  // We move the QP through its states ourselves (rdma_cm only computes the
  // attributes), which lets us pick the GID index and the ACK timeout.
  ibv_qp_attr a{};
  int mask = 0;
  a.qp_state = IBV_QPS_INIT;
  if (rdma_init_qp_attr(id_.get(), &a, &mask) != 0)
    return Status::Unavailable(Errno("rdma_init_qp_attr(INIT)"));
  a.qp_access_flags = access;
  mask |= IBV_QP_ACCESS_FLAGS;
  if (int rc = ibv_modify_qp(qp, &a, mask); rc != 0)
    return Status::Unavailable(std::string("ibv_modify_qp(INIT): ") + std::strerror(rc));
  qp_access_ = access;

  StatusOr<MsgBlock*> b = lane_->msgs.Take(&lane_->t->stats());
  if (!b.ok()) return b.status();
  block_ = b.value();
  free_slots_.clear();
  for (int i = depth_ - 1; i >= 0; --i) free_slots_.push_back(i);
  std::vector<int> all(static_cast<size_t>(depth_));
  for (int i = 0; i < depth_; ++i) all[static_cast<size_t>(i)] = i;
  return PostRecvs(all.data(), all.size());
}

Status Conn::ToRts(uint8_t responder_resources, uint8_t initiator_depth) {
  const Device& dev = lane_->t->dev();
  ibv_qp_attr a{};
  int mask = 0;
  // INIT again: the CM knows the final pkey/port now (as librdmacm does).
  a.qp_state = IBV_QPS_INIT;
  if (rdma_init_qp_attr(id_.get(), &a, &mask) != 0)
    return Status::Unavailable(Errno("rdma_init_qp_attr(INIT)"));
  a.qp_access_flags = qp_access_;
  mask |= IBV_QP_ACCESS_FLAGS;
  if (int rc = ibv_modify_qp(qp_.get(), &a, mask); rc != 0)
    return Status::Unavailable(std::string("ibv_modify_qp(INIT): ") + std::strerror(rc));

  a = {};
  a.qp_state = IBV_QPS_RTR;
  if (rdma_init_qp_attr(id_.get(), &a, &mask) != 0)
    return Status::Unavailable(Errno("rdma_init_qp_attr(RTR)"));
  if (responder_resources != kKeep) a.max_dest_rd_atomic = responder_resources;
  if (dev.gid_index >= 0 && (mask & IBV_QP_AV) && a.ah_attr.is_global)
    a.ah_attr.grh.sgid_index = static_cast<uint8_t>(dev.gid_index);
  if (int rc = ibv_modify_qp(qp_.get(), &a, mask); rc != 0)
    return Status::Unavailable(std::string("ibv_modify_qp(RTR): ") + std::strerror(rc));

  a = {};
  a.qp_state = IBV_QPS_RTS;
  if (rdma_init_qp_attr(id_.get(), &a, &mask) != 0)
    return Status::Unavailable(Errno("rdma_init_qp_attr(RTS)"));
  if (initiator_depth != kKeep) a.max_rd_atomic = initiator_depth;
  a.timeout = lane_->t->tuning().ack_timeout;
  mask |= IBV_QP_TIMEOUT;
  if (int rc = ibv_modify_qp(qp_.get(), &a, mask); rc != 0)
    return Status::Unavailable(std::string("ibv_modify_qp(RTS): ") + std::strerror(rc));
  return Status::OK();
}

Status Conn::PostRecvs(const int* slots, size_t n) {
  ibv_recv_wr wrs[kMaxChain];
  ibv_sge sges[kMaxChain];
  for (size_t done = 0; done < n;) {
    const size_t k = std::min<size_t>(kMaxChain, n - done);
    for (size_t i = 0; i < k; ++i) {
      const int slot = slots[done + i];
      sges[i].addr = reinterpret_cast<uint64_t>(block_->slot(slot));
      sges[i].length = static_cast<uint32_t>(kMsgBytes);
      sges[i].lkey = block_->mr->lkey;
      wrs[i] = {};
      wrs[i].wr_id = kRecvFlag | static_cast<uint64_t>(slot);
      wrs[i].sg_list = &sges[i];
      wrs[i].num_sge = 1;
      wrs[i].next = i + 1 < k ? &wrs[i + 1] : nullptr;
    }
    ibv_recv_wr* bad = nullptr;
    if (int rc = ibv_post_recv(qp_.get(), wrs, &bad); rc != 0)
      return Status::Unavailable(std::string("ibv_post_recv: ") + std::strerror(rc));
    done += k;
  }
  return Status::OK();
}

void Conn::OnCmEvent(const CmEvent& ev) {
  if (closed_) return;
  auto self = shared_from_this();
  switch (ev.type) {
    case RDMA_CM_EVENT_ADDR_RESOLVED: {
      if (id_->verbs != lane_->t->dev().ctx)
        return Close(Status::Unavailable(
            std::string("peer ") + std::to_string(peer_) + " is reached through RDMA device " +
            (id_->verbs ? ibv_get_device_name(id_->verbs->device) : "(none)") + ", not " +
            lane_->t->dev().name));
      if (rdma_resolve_route(id_.get(), lane_->t->tuning().resolve_timeout_ms) != 0)
        return Close(Status::Unavailable(Errno("rdma_resolve_route")));
      return;
    }
    case RDMA_CM_EVENT_ROUTE_RESOLVED: {
      // The requester's QP is where the owner READs bulk_in and WRITEs bulk_out.
      Status st =
          SetupQp(IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_WRITE);
      if (!st.ok()) return Close(st);
      const std::string pd = EncodeConnRequest(req_);
      const uint8_t rd = lane_->t->dev().rd_atomic;
      rdma_conn_param p{};
      p.private_data = pd.data();
      p.private_data_len = static_cast<uint8_t>(pd.size());
      p.responder_resources = rd;
      p.initiator_depth = rd;
      p.retry_count = lane_->t->tuning().retry_count;
      p.rnr_retry_count = 7;
      p.qp_num = qp_->qp_num;
      if (rdma_connect(id_.get(), &p) != 0)
        return Close(Status::Unavailable(Errno("rdma_connect")));
      return;
    }
    case RDMA_CM_EVENT_CONNECT_RESPONSE: {
      ConnAccept a;
      Status st = DecodeConnAccept(ev.private_data.data(), ev.private_data.size(), &a);
      if (!st.ok()) return Close(Status::Unavailable("peer's accept: " + st.message()));
      peer_depth_ = static_cast<int>(a.recv_depth);
      credits_ = peer_depth_;
      st = ToRts(kKeep, kKeep);
      if (!st.ok()) {
        rdma_reject(id_.get(), nullptr, 0);
        return Close(st);
      }
      if (rdma_establish(id_.get()) != 0)
        return Close(Status::Unavailable(Errno("rdma_establish")));
      cm_connected_ = true;
      lane_->t->stats().connections.fetch_add(1, std::memory_order_relaxed);
      owner_->OnConnected(this);
      return;
    }
    case RDMA_CM_EVENT_ESTABLISHED:
    case RDMA_CM_EVENT_TIMEWAIT_EXIT:
    case RDMA_CM_EVENT_ADDR_CHANGE:
      return;
    case RDMA_CM_EVENT_DISCONNECTED:
      return Close(Status::Unavailable("peer " + std::to_string(peer_) + " disconnected"));
    case RDMA_CM_EVENT_REJECTED:
      return Close(Status::Unavailable("peer " + std::to_string(peer_) +
                                       " refused the connection (" + EventText(ev) +
                                       "; not listening?)"));
    default:  // ADDR_ERROR, ROUTE_ERROR, CONNECT_ERROR, UNREACHABLE, DEVICE_REMOVAL
      return Close(Status::Unavailable("connection to peer " + std::to_string(peer_) + ": " +
                                       EventText(ev)));
  }
}

// ---- sending ----

void Conn::QueueMessage(FrameHeader h, const CallDesc* d, std::string body, WrDone sent) {
  Op op;
  op.kind = OpKind::kMessage;
  h.body_len = body.size();
  op.h = h;
  if (d) {
    op.has_desc = true;
    op.desc = *d;
  }
  op.body = std::move(body);
  op.done = std::move(sent);
  Queue(std::move(op));
}

void Conn::QueueRead(char* local, uint32_t lkey, uint64_t remote, uint32_t rkey, uint32_t len,
                     WrDone done) {
  Op op;
  op.kind = OpKind::kRead;
  op.local = reinterpret_cast<uint64_t>(local);
  op.lkey = lkey;
  op.remote = remote;
  op.rkey = rkey;
  op.len = len;
  op.done = std::move(done);
  Queue(std::move(op));
}

void Conn::QueueWrite(const char* local, uint32_t lkey, uint64_t remote, uint32_t rkey,
                      uint32_t len, WrDone done) {
  Op op;
  op.kind = OpKind::kWrite;
  op.local = reinterpret_cast<uint64_t>(local);
  op.lkey = lkey;
  op.remote = remote;
  op.rkey = rkey;
  op.len = len;
  op.done = std::move(done);
  Queue(std::move(op));
}

void Conn::QueueSendKey(const FrameKey& key) {
  Op op;
  op.kind = OpKind::kSendKey;
  op.key = key;
  Queue(std::move(op));
}

void Conn::Queue(Op op) {
  if (closed_) {
    if (op.done) op.done(false);
    return;
  }
  fifo_.push_back(std::move(op));
  ScheduleFlush();
}

void Conn::ScheduleFlush() {
  // After the callbacks already running in this loop iteration: what they
  // queue together leaves in one post.
  if (flush_scheduled_ || !qp_ || !flush_ev_) return;
  flush_scheduled_ = true;
  event_active(flush_ev_, EV_TIMEOUT, 0);
}

void Conn::FlushCb(evutil_socket_t, short, void* arg) {
  auto* c = static_cast<Conn*>(arg);
  c->flush_scheduled_ = false;
  auto self = c->shared_from_this();
  c->Flush();
}

void Conn::Flush() {
  if (closed_ || !qp_ || !cm_connected_) return;
  ibv_send_wr wrs[kMaxChain];
  ibv_sge sges[kMaxChain];
  int n = 0;
  auto post = [&]() -> bool {
    if (n == 0) return true;
    wrs[n - 1].send_flags |= IBV_SEND_SIGNALED;  // the last of a post: its actions run soon
    for (int i = 0; i < n; ++i) wrs[i].next = i + 1 < n ? &wrs[i + 1] : nullptr;
    unsignaled_ = 0;
    ibv_send_wr* bad = nullptr;
    const int rc = ibv_post_send(qp_.get(), wrs, &bad);
    n = 0;
    if (rc != 0) {
      Close(Status::Unavailable(std::string("ibv_post_send: ") + std::strerror(rc)));
      return false;
    }
    return true;
  };
  auto add = [&](ibv_wr_opcode opc, uint64_t local, uint32_t len, uint32_t lkey, uint64_t remote,
                 uint32_t rkey, int slot, WrDone done) {
    const uint64_t seq = next_seq_++;
    sges[n] = {local, len, lkey};
    wrs[n] = {};
    wrs[n].wr_id = seq;
    wrs[n].sg_list = &sges[n];
    wrs[n].num_sge = 1;
    wrs[n].opcode = opc;
    if (opc != IBV_WR_SEND) {
      wrs[n].wr.rdma.remote_addr = remote;
      wrs[n].wr.rdma.rkey = rkey;
    }
    if (opc == IBV_WR_RDMA_READ || ++unsignaled_ >= depth_ / 2) {
      wrs[n].send_flags |= IBV_SEND_SIGNALED;
      unsignaled_ = 0;
    }
    inflight_.push_back({seq, slot, std::move(done)});
    ++n;
  };
  auto room = [&] { return depth_ - static_cast<int>(next_seq_ - 1 - done_seq_); };
  while (!fifo_.empty() && room() > 0) {
    Op& op = fifo_.front();
    if (op.kind == OpKind::kSendKey) {
      Status st = sealer_.Enable(op.key);
      fifo_.pop_front();
      if (!st.ok()) return Close(st);
      continue;
    }
    if (op.kind == OpKind::kMessage) {
      if (credits_ < 2 || free_slots_.empty()) break;  // one credit stays for credit returns
      auto seg = BuildSegment(op.started ? SegType::kMore : SegType::kFirst, &op);
      if (!seg.ok()) return Close(seg.status());
      auto [slot, len] = seg.value();
      const bool last = op.off == op.body.size();
      WrDone done;
      if (last) done = std::move(op.done);
      add(IBV_WR_SEND, reinterpret_cast<uint64_t>(block_->slot(depth_ + slot)), len,
          block_->mr->lkey, 0, 0, slot, std::move(done));
      if (last) fifo_.pop_front();
    } else {
      add(op.kind == OpKind::kRead ? IBV_WR_RDMA_READ : IBV_WR_RDMA_WRITE, op.local, op.len,
          op.lkey, op.remote, op.rkey, -1, std::move(op.done));
      fifo_.pop_front();
    }
    if (n == kMaxChain && !post()) return;
  }
  // Nothing left to carry our credits: return them on their own once a
  // quarter of our receive buffers is owed.
  if (to_return_ >= std::max(1, depth_ / 4) && credits_ >= 1 && !free_slots_.empty() &&
      room() > 0) {
    auto seg = BuildSegment(SegType::kCredit, nullptr);
    if (!seg.ok()) return Close(seg.status());
    auto [slot, len] = seg.value();
    add(IBV_WR_SEND, reinterpret_cast<uint64_t>(block_->slot(depth_ + slot)), len, block_->mr->lkey,
        0, 0, slot, nullptr);
  }
  post();
}

StatusOr<std::pair<int, uint32_t>> Conn::BuildSegment(SegType type, Op* op) {
  const int slot = free_slots_.back();
  free_slots_.pop_back();
  char* p = block_->slot(depth_ + slot);
  const bool tagged = sealer_.on();
  EncodeSeg(Seg{type, static_cast<uint32_t>(to_return_), tagged}, p);
  to_return_ = 0;
  size_t len = kSegSize;
  if (op) {
    size_t cap = kMoreRoom;
    if (type == SegType::kFirst) {
      EncodeHeader(op->h, p + len);
      len += kHeaderSize;
      cap = kFirstRoom;
      if (op->has_desc) {
        EncodeCallDesc(op->desc, p + len);
        len += kCallDescSize;
        cap = kFirstCallRoom;
      }
    }
    const size_t k = std::min(cap, op->body.size() - op->off);
    if (k) std::memcpy(p + len, op->body.data() + op->off, k);
    op->off += k;
    op->started = true;
    len += k;
  }
  // The rooms leave kSegTagSize bytes for this.
  RdmaStats& stats = lane_->t->stats();
  if (tagged) {
    Status st = sealer_.Seal(p, len);
    if (!st.ok()) return st;
    len += kSegTagSize;
    stats.segments_tagged.fetch_add(1, std::memory_order_relaxed);
  }
  if (SegTamperFn tamper = SegTamperForTest()) tamper(p, len, tagged, role_ == Role::kIn);
  --credits_;
  stats.segments_sent.fetch_add(1, std::memory_order_relaxed);
  return std::make_pair(slot, static_cast<uint32_t>(len));
}

// ---- completions ----

void Conn::OnCqEvent() {
  if (closed_) return;
  auto self = shared_from_this();
  // Re-arm before polling, so a completion arriving after the last poll
  // raises a new event.
  if (ibv_req_notify_cq(cq_.get(), 0) != 0)
    return Close(Status::Unavailable(Errno("ibv_req_notify_cq")));
  Poll();
}

void Conn::PollCb(evutil_socket_t, short, void* arg) {
  auto* c = static_cast<Conn*>(arg);
  if (c->closed_) return;
  auto self = c->shared_from_this();
  c->Poll();
}

void Conn::Poll() {
  ibv_wc wc[kPollBatch];
  int budget = kPollBudget;
  while (!closed_) {
    const int n = ibv_poll_cq(cq_.get(), kPollBatch, wc);
    if (n < 0) return Close(Status::Unavailable("ibv_poll_cq failed"));
    // Name the error that broke the QP, not the flushes it caused.
    for (int i = 0; i < n && first_error_ == IBV_WC_SUCCESS; ++i)
      if (wc[i].status != IBV_WC_SUCCESS && wc[i].status != IBV_WC_WR_FLUSH_ERR)
        first_error_ = wc[i].status;
    for (int i = 0; i < n && !closed_; ++i) HandleWc(wc[i]);
    if (n < kPollBatch) break;
    budget -= n;
    if (budget <= 0) {  // more may be waiting: let other events run first
      if (poll_ev_) event_active(poll_ev_, EV_TIMEOUT, 0);
      break;
    }
  }
  if (closed_) return;
  if (!repost_.empty()) {
    Status st = PostRecvs(repost_.data(), repost_.size());
    to_return_ += static_cast<int>(repost_.size());
    repost_.clear();
    if (!st.ok()) return Close(st);
  }
  Flush();
}

void Conn::HandleWc(const ibv_wc& wc) {
  auto fail = [&] {
    const ibv_wc_status s = first_error_ != IBV_WC_SUCCESS ? first_error_ : wc.status;
    Close(Status::Unavailable("RDMA transfer with peer " + std::to_string(peer_) +
                              " failed: " + WcStatusName(s) +
                              (s == IBV_WC_WR_FLUSH_ERR ? " (QP in error: peer gone?)" : "")));
  };
  if (wc.wr_id & kRecvFlag) {
    const int slot = static_cast<int>(wc.wr_id & ~kRecvFlag);
    if (wc.status != IBV_WC_SUCCESS) return fail();
    if (OnRecv(slot, wc.byte_len)) repost_.push_back(slot);
    return;
  }
  const bool ok = wc.status == IBV_WC_SUCCESS;
  CompleteSends(wc.wr_id, ok);
  if (!ok && !closed_) fail();
}

void Conn::CompleteSends(uint64_t seq, bool ok) {
  if (seq > done_seq_) done_seq_ = seq;
  // In order: every WR up to seq is done; only seq itself may have failed.
  while (!closed_ && !inflight_.empty() && inflight_.front().seq <= seq) {
    Inflight f = std::move(inflight_.front());
    inflight_.pop_front();
    if (f.slot >= 0) free_slots_.push_back(f.slot);
    if (f.done) f.done(f.seq < seq || ok);
  }
}

// ---- receiving ----

bool Conn::OnRecv(int slot, uint32_t len) {
  const char* p = block_->slot(slot);
  auto violation = [&](const std::string& why) {
    Close(
        Status::Unavailable("protocol violation from peer " + std::to_string(peer_) + ": " + why));
    return false;
  };
  if (len < kSegSize || len > kMsgBytes) return violation("bad segment length");
  Seg seg;
  Status st = DecodeSeg(p, &seg);
  if (!st.ok()) return violation(st.message());
  // Nothing of a segment (not even its credits) is used before its tag.
  size_t data_len = 0;
  st = opener_.Open(p, len, seg.tagged, &data_len);
  if (!st.ok()) {
    lane_->t->stats().segments_refused.fetch_add(1, std::memory_order_relaxed);
    spdlog::warn("rdma: segment {} of the connection {} peer {} failed authentication ({}): "
                 "forged, replayed or reordered; closing the link",
                 opener_.accepted(), role_ == Role::kIn ? "from" : "to", peer_, st.ToString());
    return violation("segment failed authentication");
  }
  if (seg.credits > static_cast<uint32_t>(peer_depth_) ||
      credits_ + static_cast<int64_t>(seg.credits) > peer_depth_)
    return violation("credits beyond the receive depth");
  credits_ += static_cast<int>(seg.credits);
  p += kSegSize;
  size_t n = data_len - kSegSize;
  switch (seg.type) {
    case SegType::kCredit:
      if (n != 0) return violation("credit segment with payload");
      return true;
    case SegType::kFirst: {
      if (assembling_) return violation("new message inside another");
      if (n < kHeaderSize) return violation("short first segment");
      FrameHeader h;
      st = DecodeHeader(p, limits_, &h);
      if (!st.ok()) return violation(st.message());
      p += kHeaderSize;
      n -= kHeaderSize;
      CallDesc d;
      if (h.kind == FrameKind::kCall) {
        if (n < kCallDescSize) return violation("call without a descriptor");
        st = DecodeCallDesc(p, &d);
        if (!st.ok()) return violation(st.message());
        p += kCallDescSize;
        n -= kCallDescSize;
      }
      if (n > h.body_len) return violation("segment longer than its body");
      bool discard = false;
      st = owner_->OnHeader(this, h, &discard);
      if (!st.ok()) {
        Close(st);
        return false;
      }
      if (closed_) return false;
      cur_ = h;
      cur_desc_ = d;
      discard_ = discard;
      cur_got_ = n;
      cur_body_.clear();
      if (!discard) {
        // body_len passed max_body above; this is the only allocation a
        // message makes.
        cur_body_.resize(h.body_len);
        if (n) std::memcpy(cur_body_.data(), p, n);
      }
      assembling_ = true;
      break;
    }
    case SegType::kMore: {
      if (!assembling_) return violation("continuation without a message");
      if (n == 0 || n > cur_.body_len - cur_got_) return violation("continuation past the body");
      if (!discard_) std::memcpy(cur_body_.data() + cur_got_, p, n);
      cur_got_ += n;
      break;
    }
  }
  if (cur_got_ == cur_.body_len) Deliver();
  return !closed_;
}

void Conn::Deliver() {
  assembling_ = false;
  if (discard_) return;
  std::string body = std::move(cur_body_);
  cur_body_ = std::string();
  owner_->OnMessage(this, cur_, cur_desc_, std::move(body));
}

// ---- teardown ----

void Conn::Close(const Status& why, bool notify) {
  if (closed_) return;
  closed_ = true;
  std::shared_ptr<Conn> self = weak_from_this().lock();  // null from the destructor
  // Nothing of ours stays on the lane's event base once a connection is
  // closed (StopLane closes them all).
  flush_scheduled_ = false;
  if (flush_ev_) event_free(flush_ev_);
  if (poll_ev_) event_free(poll_ev_);
  flush_ev_ = poll_ev_ = nullptr;
  if (qp_) {
    ibv_qp_attr a{};
    a.qp_state = IBV_QPS_ERR;
    if (int rc = ibv_modify_qp(qp_.get(), &a, IBV_QP_STATE); rc != 0)
      spdlog::debug("rdma: ibv_modify_qp(ERR): {}", std::strerror(rc));
  }
  // Both sides must disconnect, or the other one waits for the DREQ timeout.
  if (cm_connected_ && id_ && rdma_disconnect(id_.get()) != 0)
    spdlog::debug("rdma: rdma_disconnect: {}", std::strerror(errno));
  // After this no WR of the QP can touch memory: staging buffers, segment
  // ranges and bounce buffers may be reused / released below.
  qp_.reset();
  cq_.reset();
  while (!inflight_.empty()) {
    Inflight f = std::move(inflight_.front());
    inflight_.pop_front();
    if (f.done) f.done(false);
  }
  while (!fifo_.empty()) {
    Op op = std::move(fifo_.front());
    fifo_.pop_front();
    if (op.done) op.done(false);
  }
  if (block_) lane_->msgs.Give(block_);
  block_ = nullptr;
  if (id_) id_->context = nullptr;
  id_.reset();
  if (self) lane_->Bury(self);
  if (notify && owner_) owner_->OnClosed(this, why);
}

}  // namespace kvpool::transport::rdma
