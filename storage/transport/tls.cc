#include "storage/transport/tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <sstream>

namespace kvpool::transport {

namespace {

// OpenSSL's reasons queued on this thread, oldest first; clears the queue.
std::string OpenSslErrors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

Status Refuse(const std::string& option, const std::string& what) {
  return Status::InvalidArgument(option + ": " + what + " (" + OpenSslErrors() + ")");
}

// "TLSv1.2 TLSv1.3" → the lowest and highest version allowed.
Status ParseProtocols(const std::string& text, int* min_version, int* max_version) {
  bool v12 = false, v13 = false;
  std::istringstream in(text);
  std::string word;
  while (in >> word) {
    for (char& c : word) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (word == "tlsv1.2") {
      v12 = true;
    } else if (word == "tlsv1.3") {
      v13 = true;
    } else if (word == "tlsv1" || word == "tlsv1.1") {
      return Status::InvalidArgument("tls-protocols: " + word +
                                     " is not offered (kvpool speaks TLSv1.2 and TLSv1.3)");
    } else {
      return Status::InvalidArgument("tls-protocols: unknown protocol '" + word + "'");
    }
  }
  if (!v12 && !v13) v12 = v13 = true;  // empty: both, as Redis's default
  *min_version = v12 ? TLS1_2_VERSION : TLS1_3_VERSION;
  *max_version = v13 ? TLS1_3_VERSION : TLS1_2_VERSION;
  return Status::OK();
}

int PassphraseCallback(char* buf, int size, int, void* userdata) {
  const auto* pass = static_cast<const std::string*>(userdata);
  if (pass == nullptr || size <= 0) return 0;
  int n = static_cast<int>(std::min(pass->size(), static_cast<size_t>(size)));
  memcpy(buf, pass->data(), static_cast<size_t>(n));
  return n;
}

}  // namespace

StatusOr<std::shared_ptr<TlsContext>> TlsContext::Create(const TlsOptions& o, Role role) {
  ERR_clear_error();
  int min_version = 0, max_version = 0;
  if (Status s = ParseProtocols(o.protocols, &min_version, &max_version); !s.ok()) return s;
  if (o.cert_file.empty()) return Status::InvalidArgument("tls-cert-file is not set");
  if (o.key_file.empty()) return Status::InvalidArgument("tls-key-file is not set");
  bool verifies = role == Role::kPeer || o.auth_clients != TlsAuthClients::kNo;
  if (verifies && o.ca_cert_file.empty() && o.ca_cert_dir.empty())
    return Status::InvalidArgument(
        "tls-ca-cert-file (or tls-ca-cert-dir) is not set: peers' certificates cannot be "
        "verified");

  SSL_CTX* raw = SSL_CTX_new(TLS_method());
  if (raw == nullptr) return Status::Internal("SSL_CTX_new: " + OpenSslErrors());
  std::shared_ptr<TlsContext> ctx(new TlsContext(raw));
  ctx->key_pass_ = o.key_file_pass;

  SSL_CTX_set_min_proto_version(raw, min_version);
  SSL_CTX_set_max_proto_version(raw, max_version);
  // No renegotiation: a session's Read never has to write and its Write
  // never has to read, except for TLS 1.3's rare key updates.
  uint64_t opts = SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF;
  if (o.prefer_server_ciphers) opts |= SSL_OP_CIPHER_SERVER_PREFERENCE;
  SSL_CTX_set_options(raw, opts);
  // Partial writes, retried from wherever the caller's buffer now is (an
  // evbuffer's first chunk moves as it drains); buffers freed while idle.
  SSL_CTX_set_mode(raw, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
  // Pool links never resume a session: no TLS 1.3 tickets to send them.
  if (role == Role::kPeer) SSL_CTX_set_num_tickets(raw, 0);
  static const unsigned char kSessionContext[] = "kvpool";
  SSL_CTX_set_session_id_context(raw, kSessionContext, sizeof(kSessionContext) - 1);

  if (!o.key_file_pass.empty()) {
    SSL_CTX_set_default_passwd_cb(raw, &PassphraseCallback);
    SSL_CTX_set_default_passwd_cb_userdata(raw, &ctx->key_pass_);
  }
  if (SSL_CTX_use_certificate_chain_file(raw, o.cert_file.c_str()) != 1)
    return Refuse("tls-cert-file", "cannot load '" + o.cert_file + "'");
  if (SSL_CTX_use_PrivateKey_file(raw, o.key_file.c_str(), SSL_FILETYPE_PEM) != 1)
    return Refuse("tls-key-file", "cannot load '" + o.key_file + "', or it is not the key of '" +
                                      o.cert_file + "'");
  if (SSL_CTX_check_private_key(raw) != 1)
    return Refuse("tls-key-file", "the key does not match tls-cert-file");
  if (!o.ca_cert_file.empty() || !o.ca_cert_dir.empty()) {
    const char* file = o.ca_cert_file.empty() ? nullptr : o.ca_cert_file.c_str();
    const char* dir = o.ca_cert_dir.empty() ? nullptr : o.ca_cert_dir.c_str();
    if (SSL_CTX_load_verify_locations(raw, file, dir) != 1)
      return Refuse("tls-ca-cert-file", "cannot load the CA certificates");
  }
  if (!o.ciphers.empty() && SSL_CTX_set_cipher_list(raw, o.ciphers.c_str()) != 1)
    return Refuse("tls-ciphers", "no usable cipher in '" + o.ciphers + "'");
  if (!o.ciphersuites.empty() && SSL_CTX_set_ciphersuites(raw, o.ciphersuites.c_str()) != 1)
    return Refuse("tls-ciphersuites", "no usable suite in '" + o.ciphersuites + "'");

  int verify = SSL_VERIFY_NONE;
  if (role == Role::kPeer || o.auth_clients == TlsAuthClients::kYes)
    verify = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
  else if (o.auth_clients == TlsAuthClients::kOptional)
    verify = SSL_VERIFY_PEER;
  SSL_CTX_set_verify(raw, verify, nullptr);
  return ctx;
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

StatusOr<std::unique_ptr<TlsSession>> TlsSession::Create(const TlsContext& ctx, int fd,
                                                         Side side) {
  ERR_clear_error();
  SSL* ssl = SSL_new(ctx.native());
  if (ssl == nullptr) return Status::Internal("SSL_new: " + OpenSslErrors());
  std::unique_ptr<TlsSession> s(new TlsSession(ssl));
  if (SSL_set_fd(ssl, fd) != 1) return Status::Internal("SSL_set_fd: " + OpenSslErrors());
  if (side == Side::kAccept) {
    SSL_set_accept_state(ssl);
  } else {
    SSL_set_connect_state(ssl);
    // The connecting side checks the server's certificate too (a pool
    // link): SSL_VERIFY_PEER on a client means exactly that.
    SSL_set_verify(ssl, SSL_VERIFY_PEER, nullptr);
  }
  return s;
}

TlsSession::~TlsSession() { SSL_free(ssl_); }

bool TlsSession::established() const { return SSL_is_init_finished(ssl_) == 1; }

bool TlsSession::pending() const { return SSL_pending(ssl_) > 0 || SSL_has_pending(ssl_) == 1; }

ssize_t TlsSession::Read(void* buf, size_t len) {
  ERR_clear_error();
  int n = SSL_read(ssl_, buf, static_cast<int>(std::min(len, static_cast<size_t>(INT_MAX))));
  if (n > 0) return n;
  if (SSL_get_error(ssl_, n) == SSL_ERROR_ZERO_RETURN) return 0;  // close_notify, or EOF
  return Fail(n);
}

ssize_t TlsSession::Write(const void* buf, size_t len) {
  if (len == 0) return 0;
  ERR_clear_error();
  int n = SSL_write(ssl_, buf, static_cast<int>(std::min(len, static_cast<size_t>(INT_MAX))));
  if (n > 0) return n;
  if (SSL_get_error(ssl_, n) == SSL_ERROR_ZERO_RETURN) {
    errno = EPIPE;
    return -1;
  }
  return Fail(n);
}

int TlsSession::Handshake() {
  ERR_clear_error();
  int r = SSL_do_handshake(ssl_);
  if (r == 1) return 1;
  return static_cast<int>(Fail(r));
}

ssize_t TlsSession::Fail(int ret) {
  int saved = errno;
  switch (SSL_get_error(ssl_, ret)) {
    case SSL_ERROR_WANT_READ:
      want_ = Want::kRead;
      errno = EAGAIN;
      return -1;
    case SSL_ERROR_WANT_WRITE:
      want_ = Want::kWrite;
      errno = EAGAIN;
      return -1;
    case SSL_ERROR_ZERO_RETURN:
      error_ = "the peer closed the TLS session";
      errno = EPROTO;
      return -1;
    case SSL_ERROR_SYSCALL:
      // The socket's own error; 0 means the peer went away mid-record.
      errno = saved != 0 && saved != EAGAIN ? saved : ECONNRESET;
      return -1;
    default:
      error_ = OpenSslErrors();
      errno = EPROTO;
      return -1;
  }
}

}  // namespace kvpool::transport
