// TLS over a non-blocking socket the caller owns (OpenSSL): the context
// built once from the tls-* options, and one session per connection. Used
// by the client listener (server/) and by the pool's TCP links (pool-tls).
//
// Only TLS 1.2 and 1.3, without renegotiation or compression. A session's
// Read/Write behave as recv/send do on a non-blocking socket, so a caller
// that does its own socket I/O needs a branch per call, not another loop:
//   > 0   bytes moved;
//   0     (Read only) the peer closed the session;
//   -1    errno EAGAIN: wait for the event wants() names, then call again
//         (the same call: a Write is retried with at least the same bytes);
//         errno EPROTO: the handshake or the session failed (error() says
//         why); ECONNRESET or another errno: the socket failed.
// The handshake runs inside the first Reads (server side) or Writes/Reads
// (client side) with the same contract; established() tells when it is done.
//
// Threading: a TlsContext is immutable once built and may be shared by any
// number of threads; a TlsSession is used by one thread at a time.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "storage/util/status.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace kvpool::transport {

// tls-auth-clients: whether a client must show a certificate the CA signed.
enum class TlsAuthClients { kNo, kYes, kOptional };

struct TlsOptions {
  std::string cert_file;      // PEM certificate (chain) this side shows
  std::string key_file;       // its PEM private key
  std::string key_file_pass;  // the key's passphrase; empty = none
  std::string ca_cert_file;   // PEM CAs peers' certificates are checked against
  std::string ca_cert_dir;    // or a directory of them (c_rehash layout)
  TlsAuthClients auth_clients = TlsAuthClients::kYes;
  std::string protocols;     // "TLSv1.2 TLSv1.3" (either or both); empty = both
  std::string ciphers;       // TLS 1.2 cipher list; empty = OpenSSL's default
  std::string ciphersuites;  // TLS 1.3 suites; empty = OpenSSL's default
  bool prefer_server_ciphers = false;
};

class TlsContext {
 public:
  // kServer accepts clients and verifies their certificates as
  // auth_clients says. kPeer is a pool link: it accepts and connects, and
  // always verifies the other side against the CA (auth_clients ignored).
  enum class Role { kServer, kPeer };

  // InvalidArgument naming the option and OpenSSL's reason when a file
  // cannot be read, the key does not match the certificate, or protocols,
  // ciphers or ciphersuites name nothing OpenSSL has.
  static StatusOr<std::shared_ptr<TlsContext>> Create(const TlsOptions& options, Role role);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  SSL_CTX* native() const { return ctx_; }

 private:
  explicit TlsContext(SSL_CTX* ctx) : ctx_(ctx) {}
  SSL_CTX* ctx_;
  std::string key_pass_;  // read by OpenSSL's passphrase callback while loading the key
};

class TlsSession {
 public:
  enum class Side { kAccept, kConnect };
  // Internal when OpenSSL cannot allocate the session. The fd stays the
  // caller's: the session neither closes it nor changes its flags.
  static StatusOr<std::unique_ptr<TlsSession>> Create(const TlsContext& ctx, int fd, Side side);
  ~TlsSession();
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;

  ssize_t Read(void* buf, size_t len);
  ssize_t Write(const void* buf, size_t len);
  // Drives the handshake alone (for a connecting side that writes nothing
  // first): 1 = established, -1 with errno as Read's.
  int Handshake();

  // The socket event the last call that returned EAGAIN waits for.
  enum class Want { kRead, kWrite };
  Want wants() const { return want_; }
  bool established() const;
  // Decrypted bytes already read off the socket: the socket may not turn
  // readable again for them, so the caller reads again without waiting.
  bool pending() const;
  // Why the last call failed with EPROTO ("" otherwise).
  const std::string& error() const { return error_; }

 private:
  explicit TlsSession(SSL* ssl) : ssl_(ssl) {}
  // Maps SSL_get_error after a call that returned `ret` <= 0.
  ssize_t Fail(int ret);
  SSL* ssl_;
  Want want_ = Want::kRead;
  std::string error_;
};

}  // namespace kvpool::transport
