// The splunk_hec source's fast path: one pass over a request body of HEC event envelopes
// (stacked `{..} {..}`, arrays `[{..},{..}]`, or both) that finds each envelope and checks it
// is one JSON object (RFC 8259, well-formed UTF-8, nesting at most maxDepth) whose top-level
// `event` is present and plainly not blank. It runs on the main thread, in the turn the body
// arrives: ~0.46 ns a byte (10.3 µs for a 22 KiB batch of 100 Talos-shaped envelopes), against
// ~4.4 ns for the TypeScript scanner (hec-decode.ts) on the same body.
//
// It only ever says "all of these envelopes are fine, here they are" or "decide it yourself":
// anything else (a malformed or blank envelope, an empty body, a top-level key spelled with
// escapes, an `event` string that starts with an escape or non-ASCII text, nesting beyond
// kMaxDepth, more envelopes than `spans` holds) returns -1 and hec-decode.ts decides the whole
// body with its exact path, which names the rejection and the envelope. So a bug here can cost
// speed, but an envelope accepted here is always one the exact path accepts
// (hec-decode.test.ts checks that differentially).
//
// Bounds: every read is below `length`.
//
// Export:
//   scanEnvelopes(body: Uint8Array, length: number, maxDepth: number, spans: Uint32Array): number
//     envelopes found (> 0), [start, end) of envelope i at spans[2i], spans[2i + 1]; or -1.

#define NAPI_VERSION 8
#include <node_api.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "generated-constants.h"

// SSE2 (x86-64 always has it; no -march) tests 16 string bytes at a time and says which one
// stops the run: a 22 KiB body of 100 Talos-shaped envelopes took 16.3 µs of CPU with the
// 8-byte SWAR loop alone, 10.3 µs with this. -DHEC_SCAN_SCALAR builds the portable loop.
#if defined(__SSE2__) && !defined(HEC_SCAN_SCALAR)
#define HEC_SCAN_SSE2 1
#include <emmintrin.h>
#endif

namespace {

// The fast scanners' depth cap, json-scan.ts MAX_SCAN_DEPTH (native-constants.ts), so both
// fast paths of a HEC body send the same envelopes to the exact path.
constexpr int kMaxDepth = sluice::worker::MAX_SCAN_DEPTH;
constexpr int kFail = -1;

inline bool IsWs(uint8_t c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

inline bool IsHex(uint8_t c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

#ifndef HEC_SCAN_SSE2
// Eight bytes at a time: true when none is '"', '\\', below 0x20 or above 0x7f.
inline bool PlainWord(const uint8_t* p) {
  uint64_t w;
  std::memcpy(&w, p, 8);
  constexpr uint64_t ones = 0x0101010101010101ULL;
  constexpr uint64_t high = 0x8080808080808080ULL;
  const uint64_t q = w ^ (ones * '"');
  const uint64_t b = w ^ (ones * '\\');
  const uint64_t t = (w | ((w - ones * 0x20) & ~w) | ((q - ones) & ~q) | ((b - ones) & ~b)) & high;
  return t == 0;
}
#endif

// Index just past the string opening at s[i] (a '"'), or -1. *escaped: it held an escape.
long ScanString(const uint8_t* s, long i, long n, bool* escaped) {
  i++;
  for (;;) {
#ifdef HEC_SCAN_SSE2
    {
      const __m128i quote = _mm_set1_epi8('"');
      const __m128i bslash = _mm_set1_epi8('\\');
      const __m128i space = _mm_set1_epi8(0x20);
      // Signed compare: bytes below 0x20 and bytes 0x80..0xff (negative) are both "less than 0x20".
      while (i + 16 <= n) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i));
        const __m128i stop = _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash));
        const __m128i m = _mm_or_si128(stop, _mm_cmplt_epi8(v, space));
        const int mask = _mm_movemask_epi8(m);
        if (mask != 0) {
          i += __builtin_ctz(static_cast<unsigned>(mask));
          break;
        }
        i += 16;
      }
    }
#else
    while (i + 8 <= n && PlainWord(s + i)) i += 8;
#endif
    while (i < n && s[i] >= 0x20 && s[i] < 0x80 && s[i] != '"' && s[i] != '\\') i++;
    if (i >= n) return -1;
    const uint8_t c = s[i];
    if (c == '"') return i + 1;
    if (c == '\\') {
      *escaped = true;
      if (i + 1 >= n) return -1;
      const uint8_t x = s[i + 1];
      if (x == '"' || x == '\\' || x == '/' || x == 'b' || x == 'f' || x == 'n' || x == 'r' || x == 't') {
        i += 2;
      } else if (x == 'u') {
        if (i + 5 >= n || !IsHex(s[i + 2]) || !IsHex(s[i + 3]) || !IsHex(s[i + 4]) || !IsHex(s[i + 5])) return -1;
        i += 6;
      } else {
        return -1;
      }
      continue;
    }
    if (c < 0x80) return -1;  // a control character
    // Well-formed UTF-8 (Unicode table 3-7); a sequence must end before the closing quote.
    if (c < 0xc2) return -1;
    if (c < 0xe0) {
      if (i + 1 >= n || (s[i + 1] & 0xc0) != 0x80) return -1;
      i += 2;
    } else if (c < 0xf0) {
      if (i + 2 >= n) return -1;
      const uint8_t c1 = s[i + 1];
      if ((c1 & 0xc0) != 0x80 || (s[i + 2] & 0xc0) != 0x80) return -1;
      if ((c == 0xe0 && c1 < 0xa0) || (c == 0xed && c1 > 0x9f)) return -1;
      i += 3;
    } else if (c < 0xf5) {
      if (i + 3 >= n) return -1;
      const uint8_t c1 = s[i + 1];
      if ((c1 & 0xc0) != 0x80 || (s[i + 2] & 0xc0) != 0x80 || (s[i + 3] & 0xc0) != 0x80) return -1;
      if ((c == 0xf0 && c1 < 0x90) || (c == 0xf4 && c1 > 0x8f)) return -1;
      i += 4;
    } else {
      return -1;
    }
  }
}

inline bool Digit(uint8_t c) { return c >= '0' && c <= '9'; }

long ScanNumber(const uint8_t* s, long i, long n) {
  if (s[i] == '-') i++;
  if (i >= n) return -1;
  if (s[i] == '0') {
    i++;
  } else if (s[i] > '0' && s[i] <= '9') {
    while (i < n && Digit(s[i])) i++;
  } else {
    return -1;
  }
  if (i < n && s[i] == '.') {
    i++;
    if (i >= n || !Digit(s[i])) return -1;
    while (i < n && Digit(s[i])) i++;
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    if (i < n && (s[i] == '+' || s[i] == '-')) i++;
    if (i >= n || !Digit(s[i])) return -1;
    while (i < n && Digit(s[i])) i++;
  }
  return i;
}

long ScanLiteral(const uint8_t* s, long i, long n, const char* word, long len) {
  if (i + len > n || std::memcmp(s + i, word, len) != 0) return -1;
  return i + len;
}

enum State { kValue, kValueOrClose, kKey, kKeyOrClose, kAfter };
enum Event { kNone, kBlankOrUnsure, kSet };

// The envelope opening at s[start] ('{'): the index past its closing '}', or -1 unless it is
// a valid object whose last top-level `event` is plainly not blank.
long ScanEnvelope(const uint8_t* s, long start, long n, int limit, uint8_t* stack) {
  int depth = 1;
  stack[1] = 1;  // 1: object, 2: array
  State state = kKeyOrClose;
  Event event = kNone;
  bool eventKey = false;
  long i = start + 1;
  for (;;) {
    while (i < n && IsWs(s[i])) i++;
    if (i >= n) return -1;
    const uint8_t c = s[i];
    if (state == kAfter) {
      const bool inObject = stack[depth] == 1;
      if (c == ',') {
        i++;
        state = inObject ? kKey : kValue;
      } else if (c == (inObject ? '}' : ']')) {
        i++;
        if (--depth == 0) return event == kSet ? i : -1;
      } else {
        return -1;
      }
    } else if (state == kKey || state == kKeyOrClose) {
      if (c == '}' && state == kKeyOrClose) {
        i++;
        if (--depth == 0) return event == kSet ? i : -1;
        state = kAfter;
        continue;
      }
      if (c != '"') return -1;
      const long ks = i;
      bool escaped = false;
      i = ScanString(s, i, n, &escaped);
      if (i < 0) return -1;
      if (depth == 1) {
        if (escaped) return -1;  // "\u0065vent" is "event": the exact path decides
        eventKey = i - ks == 7 && std::memcmp(s + ks + 1, "event", 5) == 0;
      }
      while (i < n && IsWs(s[i])) i++;
      if (i >= n || s[i] != ':') return -1;
      i++;
      state = kValue;
    } else {
      const bool isEvent = depth == 1 && eventKey;
      if (c == '"') {
        const long vs = i;
        bool escaped = false;
        i = ScanString(s, i, n, &escaped);
        if (i < 0) return -1;
        if (isEvent) {
          // Set when its first non-space byte is printable ASCII; else the exact path decides.
          long k = vs + 1;
          while (k < i - 1 && s[k] == ' ') k++;
          event = k < i - 1 && s[k] < 0x80 && s[k] != '\\' ? kSet : kBlankOrUnsure;
        }
        state = kAfter;
      } else if (c == '{' || c == '[') {
        if (++depth > limit) return -1;
        if (isEvent) event = kSet;
        stack[depth] = c == '{' ? 1 : 2;
        i++;
        state = c == '{' ? kKeyOrClose : kValueOrClose;
      } else if (c == ']' && state == kValueOrClose) {
        i++;
        depth--;
        state = kAfter;
      } else {
        if (c == '-' || Digit(c)) i = ScanNumber(s, i, n);
        else if (c == 't') i = ScanLiteral(s, i, n, "true", 4);
        else if (c == 'f') i = ScanLiteral(s, i, n, "false", 5);
        else if (c == 'n') i = ScanLiteral(s, i, n, "null", 4);
        else return -1;
        if (i < 0) return -1;
        if (isEvent) event = c == 'n' ? kBlankOrUnsure : kSet;
        state = kAfter;
      }
    }
  }
}

// The whole body: envelopes, stacked and in arrays; spans of each; or kFail.
long ScanBody(const uint8_t* s, long n, int limit, uint32_t* spans, long maxSpans) {
  uint8_t stack[kMaxDepth + 2];
  long count = 0;
  long i = 0;
  if (n >= 3 && s[0] == 0xef && s[1] == 0xbb && s[2] == 0xbf) i = 3;
  auto envelope = [&](long at) -> long {
    if (count >= maxSpans) return -1;
    const long e = ScanEnvelope(s, at, n, limit, stack);
    if (e < 0) return -1;
    spans[2 * count] = static_cast<uint32_t>(at);
    spans[2 * count + 1] = static_cast<uint32_t>(e);
    count++;
    return e;
  };
  while (i < n && IsWs(s[i])) i++;
  while (i < n) {
    if (s[i] == '{') {
      i = envelope(i);
      if (i < 0) return kFail;
    } else if (s[i] == '[') {
      i++;
      while (i < n && IsWs(s[i])) i++;
      if (i < n && s[i] == ']') {
        i++;
      } else {
        for (;;) {
          if (i >= n || s[i] != '{') return kFail;
          i = envelope(i);
          if (i < 0) return kFail;
          while (i < n && IsWs(s[i])) i++;
          if (i < n && s[i] == ',') {
            i++;
            while (i < n && IsWs(s[i])) i++;
            continue;
          }
          if (i < n && s[i] == ']') {
            i++;
            break;
          }
          return kFail;
        }
      }
    } else {
      return kFail;
    }
    while (i < n && IsWs(s[i])) i++;
  }
  return count > 0 ? count : kFail;
}

napi_value ScanEnvelopes(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_value result;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 4) {
    napi_throw_type_error(env, nullptr, "scanEnvelopes(body, length, maxDepth, spans): 4 arguments expected");
    return nullptr;
  }
  napi_typedarray_type type;
  size_t bodyLen = 0;
  void* bodyData = nullptr;
  if (napi_get_typedarray_info(env, argv[0], &type, &bodyLen, &bodyData, nullptr, nullptr) != napi_ok || type != napi_uint8_array) {
    napi_throw_type_error(env, nullptr, "scanEnvelopes: body must be a Uint8Array");
    return nullptr;
  }
  double length = 0;
  double maxDepth = 0;
  if (napi_get_value_double(env, argv[1], &length) != napi_ok || napi_get_value_double(env, argv[2], &maxDepth) != napi_ok) {
    napi_throw_type_error(env, nullptr, "scanEnvelopes: length and maxDepth must be numbers");
    return nullptr;
  }
  size_t spansLen = 0;
  void* spansData = nullptr;
  if (napi_get_typedarray_info(env, argv[3], &type, &spansLen, &spansData, nullptr, nullptr) != napi_ok || type != napi_uint32_array) {
    napi_throw_type_error(env, nullptr, "scanEnvelopes: spans must be a Uint32Array");
    return nullptr;
  }
  // Offsets are u32 in spans: a longer body is the exact path's.
  if (!(length >= 0 && length <= static_cast<double>(bodyLen)) || length > 4294967295.0) {
    napi_throw_range_error(env, nullptr, "scanEnvelopes: length is outside the body");
    return nullptr;
  }
  const int limit = std::isnan(maxDepth) || maxDepth < 1 ? 0 : maxDepth >= kMaxDepth ? kMaxDepth : static_cast<int>(maxDepth);
  long found = kFail;
  if (limit >= 1 && length > 0) {
    found = ScanBody(static_cast<const uint8_t*>(bodyData), static_cast<long>(length), limit, static_cast<uint32_t*>(spansData), static_cast<long>(spansLen / 2));
  }
  napi_create_int32(env, static_cast<int32_t>(found), &result);
  return result;
}

napi_value Init(napi_env env, napi_value exports) {
  napi_value fn;
  if (napi_create_function(env, "scanEnvelopes", NAPI_AUTO_LENGTH, ScanEnvelopes, nullptr, &fn) != napi_ok) return nullptr;
  if (napi_set_named_property(env, exports, "scanEnvelopes", fn) != napi_ok) return nullptr;
  return exports;
}

}  // namespace

NAPI_MODULE(hec_scan, Init)
