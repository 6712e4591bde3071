// Number parsing and formatting with Redis's exact acceptance rules, and
// Redis-style glob matching. Pure functions, no server types.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace kvpool {

// Strict base-10 int64 as Redis's string2ll: optional '-', digits, no
// leading zeros (except "0"), no spaces or '+', no overflow.
[[nodiscard]] bool ParseInt64(std::string_view s, int64_t* out);
// As Redis's string2ld: a finite long double, no spaces, not "nan".
[[nodiscard]] bool ParseLongDouble(std::string_view s, long double* out);
// As Redis's strtod checks for scores/expire floats: finite or +-inf, no spaces.
[[nodiscard]] bool ParseDouble(std::string_view s, double* out);

// INCRBYFLOAT's "human" formatting: %.17Lf with trailing zeros removed.
std::string FormatLongDouble(long double v);
// Decimal text of v, without allocation beyond the result.
std::string FormatInt64(int64_t v);

// Redis's stringmatchlen: glob with * ? [abc] [^a-z] and \ escapes.
bool GlobMatch(std::string_view pattern, std::string_view str, bool nocase = false);

// ASCII lower-casing, and case-insensitive equality.
std::string ToLower(std::string_view s);
bool EqualsIgnoreCase(std::string_view a, std::string_view b);

}  // namespace kvpool
