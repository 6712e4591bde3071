#include "storage/transport/frame_mac.h"

#include <endian.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <climits>
#include <cstring>

namespace kvpool::transport {

struct FrameMac::Ctx {
  ~Ctx() { EVP_CIPHER_CTX_free(c); }
  EVP_CIPHER_CTX* c = nullptr;
};

FrameMac::FrameMac() = default;
FrameMac::~FrameMac() = default;

Status FrameMac::Init(const FrameKey& key) {
  auto ctx = std::make_unique<Ctx>();
  ctx->c = EVP_CIPHER_CTX_new();
  if (!ctx->c) return Status::Internal("frame MAC: EVP_CIPHER_CTX_new failed");
  // The key schedule is set once; Begin only sets the IV.
  if (EVP_EncryptInit_ex(ctx->c, EVP_chacha20_poly1305(), nullptr, key.data(), nullptr) != 1)
    return Status::Internal("frame MAC: ChaCha20-Poly1305 init failed");
  ctx_ = std::move(ctx);
  seq_ = 0;
  in_frame_ = false;
  return Status::OK();
}

Status FrameMac::Begin() {
  if (!ctx_) return Status::Internal("frame MAC: not keyed");
  uint8_t iv[12] = {0, 0, 0, 0};
  const uint64_t be = htobe64(seq_);
  std::memcpy(iv + 4, &be, 8);
  if (EVP_EncryptInit_ex(ctx_->c, nullptr, nullptr, nullptr, iv) != 1) {
    in_frame_ = false;
    return Status::Internal("frame MAC: setting the IV failed");
  }
  ++seq_;
  in_frame_ = true;
  return Status::OK();
}

Status FrameMac::Update(const void* data, size_t len) {
  if (!in_frame_) return Status::Internal("frame MAC: Update outside a frame");
  const auto* p = static_cast<const unsigned char*>(data);
  while (len > 0) {
    const int n = static_cast<int>(std::min<size_t>(len, 1u << 30));
    int outl = 0;
    // No output buffer: the bytes are additional authenticated data.
    if (EVP_EncryptUpdate(ctx_->c, nullptr, &outl, p, n) != 1) {
      in_frame_ = false;
      return Status::Internal("frame MAC: update failed");
    }
    p += n;
    len -= static_cast<size_t>(n);
  }
  return Status::OK();
}

Status FrameMac::Finish(FrameTag* tag) {
  if (!in_frame_) return Status::Internal("frame MAC: Finish outside a frame");
  in_frame_ = false;
  unsigned char none[16];
  int outl = 0;
  if (EVP_EncryptFinal_ex(ctx_->c, none, &outl) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx_->c, EVP_CTRL_AEAD_GET_TAG, static_cast<int>(tag->size()),
                          tag->data()) != 1)
    return Status::Internal("frame MAC: final failed");
  return Status::OK();
}

Status FrameMac::Check(const uint8_t* tag) {
  FrameTag want;
  Status st = Finish(&want);
  if (!st.ok()) return st;
  if (CRYPTO_memcmp(want.data(), tag, want.size()) != 0)
    return Status::PermissionDenied("frame failed authentication");
  return Status::OK();
}

}  // namespace kvpool::transport
