// A 64-bit digest of a value, so operators and tests can see that the
// copies of a key hold the same bytes (POOL COPIES) without moving them.
// Not cryptographic: it tells accidental differences apart, it does not
// resist someone crafting two values with one digest.
//
// The function (call it kvhash64) is part of the wire contract between
// nodes: every node must compute the same digest of the same bytes, on any
// CPU, so it is fixed here and pinned by digest_test.cc's vectors. Never
// change it without a new name (nodes of two builds would disagree).
//
//   h = P3 ^ (len * P1)
//   for each 8-byte word w of the value (little-endian; the last, partial
//   word zero-padded): h = rotl(h ^ (rotl(w * P2, 31) * P1), 27) * P1 + P3
//   digest = fmix64(h ^ len)          (MurmurHash3's 64-bit finaliser)
//
// The length enters at both ends, so values that differ only in trailing
// zero bytes differ. Speed: one multiply-rotate round per 8 bytes on the
// dependent chain: about 2.8 GB/s (64 MiB in 24 ms, digest_test prints it); the
// caller pays for the whole value at once, on its thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace kvpool {

uint64_t Hash64(std::string_view data);

// 16 lowercase hex digits, most significant first.
std::string Hex64(uint64_t v);

}  // namespace kvpool
