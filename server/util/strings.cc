#include "server/util/strings.h"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace kvpool {

bool ParseInt64(std::string_view s, int64_t* out) {
  if (s.empty() || s.size() > 20) return false;
  size_t i = 0;
  bool neg = false;
  if (s[0] == '-') {
    neg = true;
    if (++i == s.size()) return false;
  }
  if (s[i] == '0') {
    if (s.size() == 1) {
      *out = 0;
      return true;
    }
    return false;  // leading zero or "-0"
  }
  uint64_t v = 0;
  for (; i < s.size(); ++i) {
    unsigned d = static_cast<unsigned char>(s[i]) - '0';
    if (d > 9) return false;
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  if (neg) {
    if (v > static_cast<uint64_t>(INT64_MAX) + 1) return false;
    *out = static_cast<int64_t>(0 - v);
  } else {
    if (v > static_cast<uint64_t>(INT64_MAX)) return false;
    *out = static_cast<int64_t>(v);
  }
  return true;
}

namespace {
// strtold/strtod need a NUL-terminated string; values longer than this are
// not numbers Redis would accept either (MAX_LONG_DOUBLE_CHARS is 5k).
constexpr size_t kMaxNumberText = 5 * 1024;
}  // namespace

bool ParseLongDouble(std::string_view s, long double* out) {
  if (s.empty() || s.size() >= kMaxNumberText) return false;
  if (isspace(static_cast<unsigned char>(s[0]))) return false;
  char buf[kMaxNumberText];
  memcpy(buf, s.data(), s.size());
  buf[s.size()] = '\0';
  char* end = nullptr;
  errno = 0;
  long double v = strtold(buf, &end);
  if (end != buf + s.size() || errno == ERANGE || std::isnan(v) || std::isinf(v)) return false;
  *out = v;
  return true;
}

bool ParseDouble(std::string_view s, double* out) {
  if (s.empty() || s.size() >= kMaxNumberText) return false;
  if (isspace(static_cast<unsigned char>(s[0]))) return false;
  char buf[kMaxNumberText];
  memcpy(buf, s.data(), s.size());
  buf[s.size()] = '\0';
  char* end = nullptr;
  errno = 0;
  double v = strtod(buf, &end);
  if (end != buf + s.size() || (errno == ERANGE && !std::isinf(v)) || std::isnan(v)) return false;
  *out = v;
  return true;
}

std::string FormatLongDouble(long double v) {
  char buf[5 * 1024];
  int n = snprintf(buf, sizeof(buf), "%.17Lf", v);
  if (n <= 0 || static_cast<size_t>(n) >= sizeof(buf)) return "0";
  if (memchr(buf, '.', n) != nullptr) {
    while (n > 0 && buf[n - 1] == '0') --n;
    if (n > 0 && buf[n - 1] == '.') --n;
  }
  std::string s(buf, n);
  if (s == "-0") s = "0";
  return s;
}

std::string FormatInt64(int64_t v) {
  char buf[24];
  int n = snprintf(buf, sizeof(buf), "%lld", static_cast<long long>(v));
  return std::string(buf, n);
}

namespace {

// Matches one non-'*' pattern token at p[*pi] against c; advances *pi past
// the token. Classes: [abc] [^a-z] [\]]; an unterminated class ends at the
// end of the pattern, as in Redis.
bool MatchToken(std::string_view p, size_t* pi, unsigned char c, bool nocase) {
  auto fold = [nocase](unsigned char x) { return nocase ? static_cast<unsigned char>(tolower(x)) : x; };
  size_t i = *pi;
  switch (p[i]) {
    case '?':
      *pi = i + 1;
      return true;
    case '[': {
      ++i;
      bool negate = i < p.size() && p[i] == '^';
      if (negate) ++i;
      bool match = false;
      while (i < p.size() && p[i] != ']') {
        if (p[i] == '\\' && i + 1 < p.size()) {
          ++i;
          if (fold(p[i]) == fold(c)) match = true;
        } else if (i + 2 < p.size() && p[i + 1] == '-') {
          unsigned char a = fold(p[i]), b = fold(p[i + 2]);
          if (a > b) std::swap(a, b);
          if (fold(c) >= a && fold(c) <= b) match = true;
          i += 2;
        } else if (fold(p[i]) == fold(c)) {
          match = true;
        }
        ++i;
      }
      *pi = i < p.size() ? i + 1 : i;
      return negate ? !match : match;
    }
    case '\\':
      if (i + 1 < p.size()) ++i;
      [[fallthrough]];
    default:
      *pi = i + 1;
      return fold(p[i]) == fold(c);
  }
}

}  // namespace

// Iterative matching with backtracking to the last '*' only: O(len(p) *
// len(s)) in the worst case, so a hostile KEYS pattern cannot take
// exponential time.
bool GlobMatch(std::string_view p, std::string_view s, bool nocase) {
  size_t pi = 0, si = 0;
  size_t star_p = std::string_view::npos, star_s = 0;
  while (si < s.size()) {
    if (pi < p.size() && p[pi] == '*') {
      while (pi < p.size() && p[pi] == '*') ++pi;
      if (pi == p.size()) return true;
      star_p = pi;
      star_s = si;
      continue;
    }
    size_t next = pi;
    if (pi < p.size() && MatchToken(p, &next, static_cast<unsigned char>(s[si]), nocase)) {
      pi = next;
      ++si;
      continue;
    }
    if (star_p == std::string_view::npos) return false;
    pi = star_p;
    si = ++star_s;
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

std::string ToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
  return out;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace kvpool
