// batch: the worker's validate + tag path in C++, complete on its own. It decides every line
// of a batch: accepted (tagged, spliced, counted by Talos kind) or malformed (counted by reason
// and dead-lettered), exactly as the TypeScript path (packages/worker/src/process.ts) does,
// which stays the fallback without a compiler and the oracle of the differential tests
// (batch-native.test.ts, process.test.ts): the two write the same bytes for every input.
//
// One call runs over a batch of ring records from a cursor. It returns DONE when the batch is
// done, or GROW when an output buffer is too small for the next line: JS grows that buffer and
// calls again, and the call resumes at that line. Nothing else crosses: no per-line N-API
// call, and no allocation but for a line nested deeper than 1024 or than maxDepth (the exact
// verdict's container stack and the decoded keys of a too-deep candidate).
//
//   u32 LE len | payload (len bytes) | pad to 4      payload = u8 head | peer | line
//   head = peerLen (bits 0-6) | 0x80 for a block of '\n'-terminated lines
//
// Export: processRecords(src, out, dl, plan, source, state[, fields, facts, times]): number (ST_DONE or ST_GROW)
//   src     Uint8Array   the batch: bytes [0, state[LENGTH]) are read, nothing else
//   out     Uint8Array   the NDJSON buffer, written at [state[POS], ...)
//   dl      Uint8Array   the dead-letter buffer, written at [state[DL_POS], ...) when state[DEAD_LETTER]
//   plan    Uint8Array   a packed TagPlan (batch-native.ts packPlan)
//   source  Uint8Array   JSON.stringify(sourceId) as UTF-8: the envelopes' component_id
//   state   Float64Array the named slots below (batch-native.ts mirrors them)
//   fields, facts, times   with them, the object index's facts are gathered as the lines are
//           decided (facts.h: the indexed fields packed; their values and the lines left to JS;
//           the time range)
// Throws a TypeError / RangeError on malformed arguments (a bug on the JS side, never input data).
//
//   state: Float64Array(26)
//   ┌──────────────────── in: set by JS once per batch ────────────────────┐
//   │ 0 LENGTH   bytes of the batch     1 MAX_DEPTH  (Infinity allowed)    │
//   │ 2 DEAD_LETTER  1: write envelopes to dl                              │
//   ├──────────────────── cursor: JS zeroes it, the addon keeps it ────────┤
//   │ 3 OFF      offset of the record being read (its length header)      │
//   │ 4 LINE     next line of the block record at OFF, or -1: its start    │
//   │ 5 POS      NDJSON bytes in out    6 DL_POS  envelope bytes in dl     │
//   ├──────────────────── out: on GROW ────────────────────────────────────┤
//   │ 7 NEED     room out must have past POS (0: enough)                   │
//   │ 8 DL_NEED  room dl must have past DL_POS (0: enough)                 │
//   ├──────────────────── counts: JS zeroes them, the addon adds to them ──┤
//   │ 9 RECORDS  10 ACCEPTED  11 INPUT_BYTES  12 SERVICE  13 KERNEL        │
//   │ 14 OTHER   15..20 MALFORMED by reason, MALFORMED_REASONS order:      │
//   │            invalid_frame, empty, invalid_utf8, invalid_json,         │
//   │            not_object, too_deep                                      │
//   ├──────────────────── index facts: JS zeroes them, the addon keeps them ┤
//   │ 21 F_RECORDS  22 F_UNTIMED  23 F_UNCERTAIN  24 F_OVERFLOW            │
//   │ 25 F_HAS_TIME                                                        │
//   └──────────────────────────────────────────────────────────────────────┘
//
// How a line is decided (process.ts #record says the same in TypeScript):
//   1. strip a leading BOM, trim JSON whitespace; nothing left: `empty`
//   2. the fast scan (json-scan.ts rule for rule): UTF-8 + JSON + depth <= min(maxDepth, 1024)
//      + top-level keys (collisions with injected keys, Talos kinds). Nearly every line ends here.
//   3. what it does not accept takes the exact verdict, which is JSON.parse's (process.ts's
//      exact path): invalid_utf8 anywhere first, then invalid_json (the grammar, no depth
//      limit), not_object, too_deep (the parsed value's depth: a later duplicate key replaces
//      a deep member), else accepted with its keys compared decoded ("\u0063luster" is
//      "cluster"), and an injected key named like an Object.prototype member ("constructor")
//      counting as present, as `obj[key] !== undefined` does.
//   4. accepted: the original bytes up to the closing brace (colliding members cut out, the
//      rest byte for byte), tags or tags + host key, the peer (escaped as JSON.stringify would
//      when it is not plain ASCII), `"`, `}`; raw CR/LF become spaces; `\n`.
//   5. malformed: `{"reason":…,"component_id":…,"peer":…,"raw":…}` or `"raw_base64"`, the
//      escaping JSON.stringify does, when dead-lettering is on.
//
// Built by scripts/build-native.ts (g++ -O2 -std=c++17, no -march); SSE2 when the target has
// it (x86-64 always), a portable 8-byte SWAR loop otherwise. N-API version 8, no V8 API.

#define NAPI_VERSION 8
#include <node_api.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

#include "facts.h"
#include "generated-constants.h"

// -DBATCH_SCALAR builds the portable loop on x86-64 too (to test what aarch64 runs).
#if defined(__SSE2__) && !defined(BATCH_SCALAR)
#define BATCH_SSE2 1
#include <emmintrin.h>
#endif

namespace {

// Rare work kept out of the line loop, so the common path stays compact in the instruction cache.
#define BATCH_COLD __attribute__((noinline, cold))

// ------------------------------------------------------------------ shared with the TypeScript

// The state slots (S_*, STATE_SLOTS), statuses (ST_*), malformed reasons (R_*, REASON_NAMES),
// scanner results (SCAN_*, the json-scan.ts bits), MAX_SCAN_DEPTH and KEY_INHERITED come from
// packages/worker/src/native-constants.ts; PEER_LEN_MASK and BLOCK_FLAG from the ring's
// record-format.ts: generated-constants.h (scripts/gen-native-constants.ts).
using namespace sluice::ring;
using namespace sluice::worker;

// The malformed counts fit between S_MALFORMED and the index facts' slots.
static_assert(S_MALFORMED + R_COUNT <= S_F_RECORDS && S_F_HAS_TIME < STATE_SLOTS, "state slots overlap");

// Byte classes.
constexpr uint8_t C_PLAIN = 1;   // may appear as is inside a JSON string: 0x20..0x7f but '"' and '\'
constexpr uint8_t C_ESCAPE = 2;  // may follow a backslash ('u' apart)
constexpr uint8_t C_HEX = 4;
constexpr uint8_t C_WS = 8;      // JSON whitespace

struct Classes {
  uint8_t c[256];
  constexpr Classes() : c() {
    for (int i = 0x20; i < 0x80; i++) c[i] = (i == '"' || i == '\\') ? 0 : C_PLAIN;
    const char* esc = "\"\\/bfnrt";
    for (int i = 0; esc[i] != 0; i++) c[static_cast<uint8_t>(esc[i])] |= C_ESCAPE;
    const char* hex = "0123456789abcdefABCDEF";
    for (int i = 0; hex[i] != 0; i++) c[static_cast<uint8_t>(hex[i])] |= C_HEX;
    c[' '] |= C_WS;
    c['\t'] |= C_WS;
    c['\n'] |= C_WS;
    c['\r'] |= C_WS;
  }
};
constexpr Classes CLS{};

inline bool isWs(uint8_t c) { return (CLS.c[c] & C_WS) != 0; }

// ------------------------------------------------------------------ the packed tag plan

// u32 LE words: tagLen, tagHostLen, hasHostKey, nKeys (extra tags), nInject (nKeys + hasHostKey),
// then per injected key its length and its flags (KEY_INHERITED: `({})[key] !== undefined` in
// JS, "constructor", "__proto__", ...); then the bytes: tagBytes, tagHostBytes, every
// injectKeyBytes in order.

struct Plan {
  const uint8_t* tag;
  size_t tagLen;
  const uint8_t* tagHost;
  size_t tagHostLen;
  bool hasHostKey;
  uint32_t nKeys;
  uint32_t nInject;
  const uint8_t* keyWords;  // nInject × (u32 LE length, u32 LE flags)
  const uint8_t* keys;      // concatenated
};

inline uint32_t u32le(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16) |
         (static_cast<uint32_t>(p[3]) << 24);
}

bool parsePlan(const uint8_t* p, size_t n, Plan& plan) {
  if (n < 20) return false;
  plan.tagLen = u32le(p);
  plan.tagHostLen = u32le(p + 4);
  uint32_t hasHost = u32le(p + 8);
  plan.nKeys = u32le(p + 12);
  plan.nInject = u32le(p + 16);
  // nKeys of the nInject keys are compared when the line gets no host tag (TagPlan: keys.length
  // of injectKeyBytes.length), all of them when it does.
  if (hasHost > 1 || plan.nKeys > plan.nInject || plan.nInject != plan.nKeys + hasHost) return false;
  plan.hasHostKey = hasHost == 1;
  uint64_t head = 20 + 8ull * plan.nInject;
  if (head > n) return false;
  plan.keyWords = p + 20;
  uint64_t total = head + plan.tagLen + plan.tagHostLen;
  for (uint32_t k = 0; k < plan.nInject; k++) {
    const uint32_t len = u32le(plan.keyWords + 8 * k);
    // Every key is a JSON string, quotes included (the collision paths read it as one).
    if (len < 2) return false;
    total += len;
  }
  if (total != n) return false;
  plan.tag = p + head;
  plan.tagHost = plan.tag + plan.tagLen;
  plan.keys = plan.tagHost + plan.tagHostLen;
  for (uint32_t k = 0, off = 0; k < plan.nInject; k++) {
    const uint32_t len = u32le(plan.keyWords + 8 * k);
    if (plan.keys[off] != '"' || plan.keys[off + len - 1] != '"') return false;
    off += len;
  }
  return true;
}

// Whether the key src[ks, ks + n) (quotes included) equals one of the first nKeys injected keys, byte for byte.
inline bool collides(const Plan& plan, uint32_t nKeys, const uint8_t* ks, size_t n) {
  const uint8_t* key = plan.keys;
  for (uint32_t k = 0; k < nKeys; k++) {
    size_t len = u32le(plan.keyWords + 8 * k);
    if (len == n && std::memcmp(key, ks, n) == 0) return true;
    key += len;
  }
  return false;
}

// ------------------------------------------------------------------ the scanner (json-scan.ts)

// Just past the string opening at p (a '"'), or nullptr when it is not a valid JSON string of
// well-formed UTF-8 ending before `end`. Sets sawEscape when it holds an escape.
inline const uint8_t* scanString(const uint8_t* p, const uint8_t* end, bool& sawEscape) {
  p++;
  for (;;) {
#ifdef BATCH_SSE2
    {
      const __m128i quote = _mm_set1_epi8('"');
      const __m128i bslash = _mm_set1_epi8('\\');
      const __m128i space = _mm_set1_epi8(0x20);
      // Signed compare: bytes below 0x20 and bytes 0x80..0xff (negative) are both "less than 0x20".
      while (end - p >= 16) {
        __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
        __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)), _mm_cmplt_epi8(v, space));
        int mask = _mm_movemask_epi8(m);
        if (mask != 0) {
          p += __builtin_ctz(static_cast<unsigned>(mask));
          break;
        }
        p += 16;
      }
    }
#else
    // 8 bytes per test: exact about whether a byte that is not plain exists (not which one).
    while (end - p >= 8) {
      uint64_t w;
      std::memcpy(&w, p, 8);
      const uint64_t ones = 0x0101010101010101ull;
      const uint64_t high = 0x8080808080808080ull;
      uint64_t q = w ^ (ones * '"');
      uint64_t b = w ^ (ones * '\\');
      if (((w | ((w - ones * 0x20) & ~w) | ((q - ones) & ~q) | ((b - ones) & ~b)) & high) != 0) break;
      p += 8;
    }
#endif
    while (p < end && (CLS.c[*p] & C_PLAIN) != 0) p++;
    if (p >= end) return nullptr;
    const uint8_t c = *p;
    if (c == '"') return p + 1;
    if (c == '\\') {
      sawEscape = true;
      if (end - p <= 1) return nullptr;
      const uint8_t x = p[1];
      if ((CLS.c[x] & C_ESCAPE) != 0) {
        p += 2;
      } else if (x == 'u') {
        if (end - p <= 5 || (CLS.c[p[2]] & C_HEX) == 0 || (CLS.c[p[3]] & C_HEX) == 0 || (CLS.c[p[4]] & C_HEX) == 0 ||
            (CLS.c[p[5]] & C_HEX) == 0)
          return nullptr;
        p += 6;
      } else {
        return nullptr;
      }
      continue;
    }
    if (c < 0x80) return nullptr;  // a control character
    // Well-formed UTF-8 (Unicode table 3-7); a sequence must end before `end`.
    if (c < 0xc2) return nullptr;
    if (c < 0xe0) {
      if (end - p <= 1 || (p[1] & 0xc0) != 0x80) return nullptr;
      p += 2;
    } else if (c < 0xf0) {
      if (end - p <= 2) return nullptr;
      const uint8_t c1 = p[1];
      if ((c1 & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80) return nullptr;
      if ((c == 0xe0 && c1 < 0xa0) || (c == 0xed && c1 > 0x9f)) return nullptr;
      p += 3;
    } else if (c < 0xf5) {
      if (end - p <= 3) return nullptr;
      const uint8_t c1 = p[1];
      if ((c1 & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 || (p[3] & 0xc0) != 0x80) return nullptr;
      if ((c == 0xf0 && c1 < 0x90) || (c == 0xf4 && c1 > 0x8f)) return nullptr;
      p += 4;
    } else {
      return nullptr;
    }
  }
}

inline bool isDigit(uint8_t c) { return c >= '0' && c <= '9'; }

// Just past the number at p, or nullptr.
__attribute__((always_inline)) inline const uint8_t* scanNumber(const uint8_t* p, const uint8_t* end) {
  if (*p == '-') p++;
  if (p >= end) return nullptr;
  if (*p == '0') {
    p++;
  } else if (*p > '0' && *p <= '9') {
    p++;
    while (p < end && isDigit(*p)) p++;
  } else {
    return nullptr;
  }
  if (p < end && *p == '.') {
    p++;
    if (p >= end || !isDigit(*p)) return nullptr;
    while (p < end && isDigit(*p)) p++;
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    p++;
    if (p < end && (*p == '+' || *p == '-')) p++;
    if (p >= end || !isDigit(*p)) return nullptr;
    while (p < end && isDigit(*p)) p++;
  }
  return p;
}

__attribute__((always_inline)) inline const uint8_t* scanLiteral(const uint8_t* p, const uint8_t* end, const char* word, size_t n) {
  if (static_cast<size_t>(end - p) < n) return nullptr;
  for (size_t j = 1; j < n; j++)
    if (p[j] != static_cast<uint8_t>(word[j])) return nullptr;
  return p + n;
}

// Just past the scalar (number or literal) at p, or nullptr when there is none. Inlined into
// the fast scan by force: as a call, g++ -O2 left it out of line, one call per number.
__attribute__((always_inline)) inline const uint8_t* scanScalar(const uint8_t* p, const uint8_t* end) {
  const uint8_t c = *p;
  if (c == '-' || isDigit(c)) return scanNumber(p, end);
  if (c == 't') return scanLiteral(p, end, "true", 4);
  if (c == 'f') return scanLiteral(p, end, "false", 5);
  if (c == 'n') return scanLiteral(p, end, "null", 4);
  return nullptr;
}

inline bool keyIs(const uint8_t* ks, const char* key, size_t n) { return std::memcmp(ks, key, n) == 0; }

enum ScanState : int { VALUE = 0, VALUE_OR_CLOSE = 1, KEY = 2, KEY_OR_CLOSE = 3, AFTER = 4 };
constexpr uint8_t IN_OBJECT = 1;
constexpr uint8_t IN_ARRAY = 2;

// scanRecord of json-scan.ts over [s, e) (trimmed: *s is the first token). `sawNewline` is set
// when a raw CR or LF is met (in an accepted line it can only be whitespace between tokens).
// With F, the values of the keys of interest at the top level are noted in `cap` (facts.h).
template <bool F>
int scanRecord(const uint8_t* s, const uint8_t* e, int limit, const Plan& plan, uint32_t nKeys, bool& sawNewline,
               const facts::Batch* fb, facts::LineCaptures* cap) {
  if (*s != '{') return SCAN_REJECT;
  uint8_t stack[MAX_SCAN_DEPTH + 2];
  int flags = SCAN_OK;
  int depth = 1;
  stack[1] = IN_OBJECT;
  int state = KEY_OR_CLOSE;
  const uint8_t* p = s + 1;
  bool nl = false;
  uint8_t c = 0;
  for (;;) {
    while (p < e && isWs(c = *p)) {
      nl |= c == '\n' || c == '\r';
      p++;
    }
    if (p >= e) {
      sawNewline = nl;
      return depth == 0 ? flags : SCAN_REJECT;
    }
    if (depth == 0) return SCAN_REJECT;  // bytes after the record's closing brace
    if (state == AFTER) {
      const bool inObject = stack[depth] == IN_OBJECT;
      if (c == ',') {
        p++;
        state = inObject ? KEY : VALUE;
      } else if (c == (inObject ? '}' : ']')) {
        p++;
        depth--;
      } else {
        return SCAN_REJECT;
      }
    } else if (state >= KEY) {
      if (c == '}' && state == KEY_OR_CLOSE) {
        p++;
        depth--;
        state = AFTER;
        continue;
      }
      if (c != '"') return SCAN_REJECT;
      const uint8_t* ks = p;
      bool sawEscape = false;
      p = scanString(p, e, sawEscape);
      if (p == nullptr) return SCAN_REJECT;
      if (depth == 1) {
        if (sawEscape) return SCAN_REJECT;  // the exact verdict compares decoded keys
        const size_t n = static_cast<size_t>(p - ks);
        if (collides(plan, nKeys, ks, n)) flags |= SCAN_COLLIDES;
        // One length test per key before any compare: ~20 fewer instructions per Talos line than
        // a helper returning the bit (callgrind over the gate's 4,000 loadgen lines).
        if (n == 15) {
          if (keyIs(ks, "\"talos-service\"", 15)) flags |= SCAN_TALOS_SERVICE;
        } else if (n == 10) {
          if (keyIs(ks, "\"facility\"", 10)) flags |= SCAN_FACILITY;
          else if (keyIs(ks, "\"priority\"", 10)) flags |= SCAN_PRIORITY;
        } else if (n == 7) {
          if (keyIs(ks, "\"clock\"", 7)) flags |= SCAN_CLOCK;
        } else if (n == 5 && keyIs(ks, "\"seq\"", 5)) {
          flags |= SCAN_SEQ;
        }
        if constexpr (F) cap->pending = fb->find(ks, n);
      }
      while (p < e && isWs(c = *p)) {
        nl |= c == '\n' || c == '\r';
        p++;
      }
      if (p >= e || c != ':') return SCAN_REJECT;
      p++;
      state = VALUE;
    } else {
      // VALUE or VALUE_OR_CLOSE
      const uint8_t* vs = p;
      bool sawEscape = false;
      if (c == '"') {
        p = scanString(p, e, sawEscape);
        state = AFTER;
      } else if (c == '{') {
        if (++depth > limit) return SCAN_REJECT;
        stack[depth] = IN_OBJECT;
        p++;
        state = KEY_OR_CLOSE;
      } else if (c == '[') {
        if (++depth > limit) return SCAN_REJECT;
        stack[depth] = IN_ARRAY;
        p++;
        state = VALUE_OR_CLOSE;
      } else if (c == ']' && state == VALUE_OR_CLOSE) {
        p++;
        depth--;
        state = AFTER;
      } else {
        p = scanScalar(p, e);
        state = AFTER;
      }
      if (p == nullptr) return SCAN_REJECT;
      if constexpr (F) {
        if (cap->pending != facts::NONE) cap->add(c, sawEscape, vs, p);
      }
    }
  }
}

// ------------------------------------------------------------------ the exact verdict (rare lines)
//
// Lines the fast scan does not accept: malformed ones, and the rare valid line with a top-level
// key spelled with escapes or nested deeper than min(maxDepth, 1024). These may allocate
// (a container stack past 1024 levels, the decoded keys of a too-deep candidate).

// Well-formed UTF-8 (what node:buffer isUtf8 accepts): no overlongs, surrogates or code points
// past U+10FFFF, no truncated sequence.
bool utf8Valid(const uint8_t* p, const uint8_t* e) {
  while (p < e) {
    // 8 ASCII bytes at a time: the common case, even in a malformed line.
    while (e - p >= 8) {
      uint64_t w;
      std::memcpy(&w, p, 8);
      if ((w & 0x8080808080808080ull) != 0) break;
      p += 8;
    }
    if (p >= e) break;
    const uint8_t c = *p;
    if (c < 0x80) {
      p++;
    } else if (c < 0xc2) {
      return false;
    } else if (c < 0xe0) {
      if (e - p < 2 || (p[1] & 0xc0) != 0x80) return false;
      p += 2;
    } else if (c < 0xf0) {
      if (e - p < 3 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80) return false;
      if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f)) return false;
      p += 3;
    } else if (c < 0xf5) {
      if (e - p < 4 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 || (p[3] & 0xc0) != 0x80) return false;
      if ((c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] > 0x8f)) return false;
      p += 4;
    } else {
      return false;
    }
  }
  return true;
}

// A stack of container kinds: 1024 levels in place, a heap vector past them.
class KindStack {
 public:
  void push(uint8_t kind) {
    if (n_ < kInline) inline_[n_] = kind;
    else more_.push_back(kind);
    n_++;
  }
  void pop() {
    n_--;
    if (n_ >= kInline) more_.pop_back();
  }
  uint8_t top() const { return n_ <= kInline ? inline_[n_ - 1] : more_.back(); }
  size_t size() const { return n_; }

 private:
  static constexpr size_t kInline = MAX_SCAN_DEPTH;
  uint8_t inline_[kInline];
  std::vector<uint8_t> more_;
  size_t n_ = 0;
};

// Whether [s, e) is one JSON text (any value), as JSON.parse decides for well-formed UTF-8;
// `maxNesting` is its deepest container nesting (the outermost container is 1).
bool jsonValid(const uint8_t* s, const uint8_t* e, size_t& maxNesting) {
  KindStack stack;
  size_t deepest = 0;
  int state = VALUE;
  const uint8_t* p = s;
  bool done = false;  // the top-level value is complete
  for (;;) {
    while (p < e && isWs(*p)) p++;
    if (p >= e) {
      maxNesting = deepest;
      return done;
    }
    if (done) return false;  // bytes after the value
    const uint8_t c = *p;
    if (state == AFTER) {
      const bool inObject = stack.top() == IN_OBJECT;
      if (c == ',') {
        p++;
        state = inObject ? KEY : VALUE;
        continue;
      }
      if (c != (inObject ? '}' : ']')) return false;
      p++;
      stack.pop();
    } else if (state >= KEY) {
      if (c == '}' && state == KEY_OR_CLOSE) {
        p++;
        stack.pop();
      } else {
        bool sawEscape = false;
        if (c != '"' || (p = scanString(p, e, sawEscape)) == nullptr) return false;
        while (p < e && isWs(*p)) p++;
        if (p >= e || *p != ':') return false;
        p++;
        state = VALUE;
        continue;
      }
    } else if (c == '{' || c == '[') {
      stack.push(c == '{' ? IN_OBJECT : IN_ARRAY);
      if (stack.size() > deepest) deepest = stack.size();
      p++;
      state = c == '{' ? KEY_OR_CLOSE : VALUE_OR_CLOSE;
      continue;
    } else if (c == ']' && state == VALUE_OR_CLOSE) {
      p++;
      stack.pop();
    } else {
      bool sawEscape = false;
      p = c == '"' ? scanString(p, e, sawEscape) : scanScalar(p, e);
      if (p == nullptr) return false;
    }
    // A value is complete.
    state = AFTER;
    if (stack.size() == 0) done = true;
  }
}

// Decoding the JSON string src[ks, ke) (quotes included, already valid) to UTF-16 code units,
// one at a time: what a JS string compares.
class U16Reader {
 public:
  U16Reader(const uint8_t* ks, const uint8_t* ke) : p_(ks + 1), e_(ke - 1) {}
  // The next code unit, or -1 at the end.
  int32_t next() {
    if (low_ != 0) {
      const int32_t u = low_;
      low_ = 0;
      return u;
    }
    if (p_ >= e_) return -1;
    const uint8_t c = *p_;
    if (c == '\\') {
      const uint8_t x = p_[1];
      p_ += 2;
      switch (x) {
        case 'b': return 0x08;
        case 'f': return 0x0c;
        case 'n': return 0x0a;
        case 'r': return 0x0d;
        case 't': return 0x09;
        case 'u': {
          int32_t u = 0;
          for (int k = 0; k < 4; k++) {
            const uint8_t h = *p_++;
            u = u * 16 + (h <= '9' ? h - '0' : (h | 0x20) - 'a' + 10);
          }
          return u;
        }
        default: return x;  // '"', '\\', '/'
      }
    }
    if (c < 0x80) {
      p_++;
      return c;
    }
    if (c < 0xe0) {
      const int32_t u = ((c & 0x1f) << 6) | (p_[1] & 0x3f);
      p_ += 2;
      return u;
    }
    if (c < 0xf0) {
      const int32_t u = ((c & 0x0f) << 12) | ((p_[1] & 0x3f) << 6) | (p_[2] & 0x3f);
      p_ += 3;
      return u;
    }
    const int32_t cp = ((c & 0x07) << 18) | ((p_[1] & 0x3f) << 12) | ((p_[2] & 0x3f) << 6) | (p_[3] & 0x3f);
    p_ += 4;
    low_ = 0xdc00 | ((cp - 0x10000) & 0x3ff);
    return 0xd800 | ((cp - 0x10000) >> 10);
  }

 private:
  const uint8_t* p_;
  const uint8_t* e_;
  int32_t low_ = 0;  // the second half of a surrogate pair (never 0)
};

// Whether two valid JSON strings (quotes included) are the same JS string once decoded.
bool decodedEqual(const uint8_t* as, const uint8_t* ae, const uint8_t* bs, const uint8_t* be) {
  if (ae - as == be - bs && std::memcmp(as, bs, static_cast<size_t>(ae - as)) == 0) return true;
  U16Reader a(as, ae), b(bs, be);
  for (;;) {
    const int32_t x = a.next();
    if (x != b.next()) return false;
    if (x < 0) return true;
  }
}

std::u16string decodeKey(const uint8_t* ks, const uint8_t* ke) {
  std::u16string out;
  U16Reader r(ks, ke);
  for (int32_t u; (u = r.next()) >= 0;) out.push_back(static_cast<char16_t>(u));
  return out;
}

// Walking valid JSON text: just past the string at p (the scanner's 16-byte loop: the member
// walk of the collision path costs 1.5x a plain splice instead of 5x with a byte loop), and
// just past the value at p. Both stop before `end`.
inline const uint8_t* skipString(const uint8_t* p, const uint8_t* end) {
  bool sawEscape = false;
  const uint8_t* q = scanString(p, end, sawEscape);
  return q == nullptr ? end : q;
}

const uint8_t* skipValue(const uint8_t* p, const uint8_t* end) {
  const uint8_t first = *p;
  if (first == '"') return skipString(p, end);
  if (first == '{' || first == '[') {
    size_t depth = 0;
    while (p < end) {
      const uint8_t c = *p;
      if (c == '"') {
        p = skipString(p, end);
        continue;
      }
      if (c == '{' || c == '[') {
        depth++;
      } else if (c == '}' || c == ']') {
        if (--depth == 0) return p + 1;
      }
      p++;
    }
    return end;
  }
  while (p < end) {  // number, true, false, null
    const uint8_t c = *p;
    if (c == ',' || c == '}' || c == ']' || isWs(c)) return p;
    p++;
  }
  return end;
}

// The members of the valid object [s, e), one at a time: the key src[ks, ke) (quotes included)
// and the value src[vs, ve).
class Members {
 public:
  Members(const uint8_t* s, const uint8_t* e) : p_(s + 1), close_(e - 1) {}
  bool next(const uint8_t*& ks, const uint8_t*& ke, const uint8_t*& vs, const uint8_t*& ve) {
    if (done_) return false;
    while (p_ < close_ && isWs(*p_)) p_++;
    if (p_ >= close_) return false;  // an empty object
    ks = p_;
    p_ = ke = skipString(p_, close_);
    while (*p_ != ':') p_++;
    p_++;
    while (isWs(*p_)) p_++;
    vs = p_;
    p_ = ve = skipValue(p_, close_);
    while (p_ < close_ && isWs(*p_)) p_++;
    if (p_ >= close_ || *p_ != ',') done_ = true;
    else p_++;
    return true;
  }

 private:
  const uint8_t* p_;
  const uint8_t* close_;
  bool done_ = false;
};

// The nesting of the value JSON.parse builds from the valid text [s, e) (the outermost
// container is 1): process.ts's deeperThan walks that value, where a later duplicate key has
// replaced an earlier member, so `{"a":[[[[]]]],"a":1}` is 1 deep. Iterative: no native stack.
size_t parsedDepth(const uint8_t* s, const uint8_t* e) {
  struct Frame {
    bool object;
    size_t deepest;      // arrays: the deepest element so far
    size_t memberBase;   // objects: where this object's members start in `members`
    std::u16string key;  // objects: the key of the member being read
  };
  struct Member {
    std::u16string key;
    size_t depth;
  };
  std::vector<Frame> frames;
  std::vector<Member> members;
  size_t result = 0;
  bool expectKey = false;  // after '{' or an object's ','
  const uint8_t* p = s;
  for (;;) {
    while (p < e && isWs(*p)) p++;
    if (p >= e) return result;
    const uint8_t c = *p;
    if (c == ',') {
      p++;
      expectKey = frames.back().object;
      continue;
    }
    if (expectKey && c == '"') {
      const uint8_t* ke = skipString(p, e);
      frames.back().key = decodeKey(p, ke);
      p = ke;
      while (*p != ':') p++;
      p++;
      expectKey = false;
      continue;
    }
    expectKey = false;
    if (c == '{' || c == '[') {
      frames.push_back(Frame{c == '{', 0, members.size(), std::u16string()});
      expectKey = c == '{';
      p++;
      continue;
    }
    size_t depth;  // of the value that ends here
    if (c == '}') {
      const Frame& f = frames.back();
      size_t deepest = 0;
      const size_t n = members.size() - f.memberBase;
      if (n == 1) {
        deepest = members.back().depth;
      } else if (n > 1) {
        std::unordered_map<std::u16string, size_t> last;  // the value JSON.parse keeps per key
        for (size_t i = f.memberBase; i < members.size(); i++) last[members[i].key] = members[i].depth;
        for (const auto& kv : last)
          if (kv.second > deepest) deepest = kv.second;
      }
      members.resize(f.memberBase);
      frames.pop_back();
      depth = 1 + deepest;
      p++;
    } else if (c == ']') {
      depth = 1 + frames.back().deepest;
      frames.pop_back();
      p++;
    } else {
      p = skipValue(p, e);
      depth = 0;
    }
    if (frames.empty()) {
      result = depth;
    } else if (frames.back().object) {
      members.push_back(Member{std::move(frames.back().key), depth});
    } else if (depth > frames.back().deepest) {
      frames.back().deepest = depth;
    }
  }
}

// ------------------------------------------------------------------ escaping (JSON.stringify's)

constexpr char HEX_DIGITS[] = "0123456789abcdef";

// One byte below 0x80 as JSON.stringify writes that character inside a string.
inline uint8_t* escapeAscii(uint8_t* o, uint8_t b) {
  if (b >= 0x20 && b != '"' && b != '\\') {
    *o++ = b;
    return o;
  }
  *o++ = '\\';
  switch (b) {
    case '"': *o++ = '"'; break;
    case '\\': *o++ = '\\'; break;
    case 0x08: *o++ = 'b'; break;
    case 0x09: *o++ = 't'; break;
    case 0x0a: *o++ = 'n'; break;
    case 0x0c: *o++ = 'f'; break;
    case 0x0d: *o++ = 'r'; break;
    default:
      *o++ = 'u';
      *o++ = '0';
      *o++ = '0';
      *o++ = static_cast<uint8_t>(HEX_DIGITS[b >> 4]);
      *o++ = static_cast<uint8_t>(HEX_DIGITS[b & 15]);
  }
  return o;
}

// The bytes [p, e) read as Latin-1 (one character per byte), escaped as JSON.stringify does,
// without quotes: at most 6 bytes per byte.
BATCH_COLD uint8_t* escapeLatin1(uint8_t* o, const uint8_t* p, const uint8_t* e) {
  for (; p < e; p++) {
    const uint8_t b = *p;
    if (b < 0x80) {
      o = escapeAscii(o, b);
    } else {
      *o++ = static_cast<uint8_t>(0xc0 | (b >> 6));
      *o++ = static_cast<uint8_t>(0x80 | (b & 0x3f));
    }
  }
  return o;
}

// Well-formed UTF-8 [p, e) escaped as JSON.stringify does, without quotes: at most 6 bytes per byte.
uint8_t* escapeUtf8(uint8_t* o, const uint8_t* p, const uint8_t* e) {
  for (; p < e; p++) {
    const uint8_t b = *p;
    o = b < 0x80 ? escapeAscii(o, b) : (*o++ = b, o);
  }
  return o;
}

uint8_t* base64(uint8_t* o, const uint8_t* p, const uint8_t* e) {
  static constexpr char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (; e - p >= 3; p += 3) {
    const uint32_t v = (static_cast<uint32_t>(p[0]) << 16) | (static_cast<uint32_t>(p[1]) << 8) | p[2];
    *o++ = static_cast<uint8_t>(A[v >> 18]);
    *o++ = static_cast<uint8_t>(A[(v >> 12) & 63]);
    *o++ = static_cast<uint8_t>(A[(v >> 6) & 63]);
    *o++ = static_cast<uint8_t>(A[v & 63]);
  }
  if (e - p == 1) {
    *o++ = static_cast<uint8_t>(A[p[0] >> 2]);
    *o++ = static_cast<uint8_t>(A[(p[0] & 3) << 4]);
    *o++ = '=';
    *o++ = '=';
  } else if (e - p == 2) {
    *o++ = static_cast<uint8_t>(A[p[0] >> 2]);
    *o++ = static_cast<uint8_t>(A[((p[0] & 3) << 4) | (p[1] >> 4)]);
    *o++ = static_cast<uint8_t>(A[(p[1] & 15) << 2]);
    *o++ = '=';
  }
  return o;
}

inline uint8_t* put(uint8_t* o, const char* s) {
  const size_t n = std::strlen(s);
  std::memcpy(o, s, n);
  return o + n;
}

// ------------------------------------------------------------------ the batch loop

inline bool peerSafe(const uint8_t* p, const uint8_t* e) {
  for (; p < e; p++) {
    const uint8_t b = *p;
    if (b < 0x20 || b > 0x7e || b == '"' || b == '\\') return false;
  }
  return true;
}

struct Run {
  const uint8_t* src;
  uint8_t* out;
  size_t outLen;
  size_t pos;
  uint8_t* dl;
  size_t dlLen;
  size_t dlPos;
  const Plan* plan;
  const uint8_t* source;
  size_t sourceLen;
  double maxDepth;
  int limit;
  bool deadLetter;
  facts::Batch* fb;  // the index facts, or nullptr when no sink indexes
  int hostSlot;      // the plan's host key among the indexed fields, or facts::NONE
  facts::LineCaptures cap;
  double records, accepted, inputBytes, service, kernel, other;
  double malformed[R_COUNT];
  size_t need, dlNeed;

  // One line src[ls, le) with peer src[peerS, peerE) (peerOk: JSON-safe, checked once per
  // record). False when out or dl must grow first: nothing is written or counted then.
  bool line(size_t peerS, size_t peerE, bool peerOk, size_t ls, size_t le) {
    size_t s = ls;
    if (le - s >= 3 && src[s] == 0xef && src[s + 1] == 0xbb && src[s + 2] == 0xbf) s += 3;
    while (s < le && isWs(src[s])) s++;
    if (s == le) return malformedLine(R_EMPTY, peerS, peerE, ls, le);
    size_t e = le;
    while (isWs(src[e - 1])) e--;
    const Plan& pl = *plan;
    const bool withHost = peerE != peerS && pl.hasHostKey;
    const uint32_t nKeys = withHost ? pl.nInject : pl.nKeys;
    bool hasNewline = false;
    int flags;
    if (fb != nullptr) {
      cap.clear();
      flags = scanRecord<true>(src + s, src + e, limit, pl, nKeys, hasNewline, fb, &cap);
    } else {
      flags = scanRecord<false>(src + s, src + e, limit, pl, nKeys, hasNewline, nullptr, nullptr);
    }
    const bool exact = flags == SCAN_REJECT;
    if (exact) {
      const int reason = exactVerdict(s, e, nKeys, flags, hasNewline);
      if (reason >= 0) return malformedLine(reason, peerS, peerE, ls, le);
    }
    // Written at most: the line, the tags, the peer escaped at 6 bytes per byte, `,"}\n`.
    const size_t tagsLen = withHost ? pl.tagHostLen : pl.tagLen;
    const size_t n = (e - s) + tagsLen + 6 * (withHost ? peerE - peerS : 0) + 8;
    if (n > outLen - pos) {
      need = n;
      return false;
    }
    const size_t lineOut = pos;
    emit(s, e, peerS, peerE, withHost, peerOk, (flags & SCAN_COLLIDES) != 0, nKeys, hasNewline);
    if (fb != nullptr) {
      // The exact verdict's and the collision path's lines are JS's to decide (facts.h).
      if (exact || (flags & SCAN_COLLIDES) != 0) {
        fb->uncertainLine(lineOut, pos - 1);
      } else {
        const int host = withHost ? hostSlot : facts::NONE;
        // The peer ends the line: `<peer>"}\n`.
        const size_t peerLen = peerE - peerS;
        fb->line(cap, src + s, out, lineOut, pos - 1, host, pos - 3 - peerLen, peerLen, peerOk);
      }
    }
    records += 1;
    accepted += 1;
    inputBytes += static_cast<double>(le - ls);
    if ((flags & SCAN_TALOS_SERVICE) != 0) service += 1;
    else if ((flags & SCAN_KERNEL) == SCAN_KERNEL) kernel += 1;
    else other += 1;
    return true;
  }

  // What process.ts's exact path decides for a line the fast scan did not accept: a reason
  // (R_*), or -1 with the scan's flags for an accepted line (keys compared decoded).
  BATCH_COLD int exactVerdict(size_t s, size_t e, uint32_t nKeys, int& flags, bool& hasNewline) {
    const uint8_t* ps = src + s;
    const uint8_t* pe = src + e;
    if (!utf8Valid(ps, pe)) return R_INVALID_UTF8;
    size_t nesting = 0;
    if (!jsonValid(ps, pe, nesting)) return R_INVALID_JSON;
    if (*ps != '{') return R_NOT_OBJECT;
    if (static_cast<double>(nesting) > maxDepth && static_cast<double>(parsedDepth(ps, pe)) > maxDepth) return R_TOO_DEEP;
    // `obj[key] !== undefined` for each injected key: an own key, decoded, or an inherited one.
    const Plan& pl = *plan;
    flags = SCAN_OK;
    for (uint32_t k = 0; k < nKeys; k++)
      if ((u32le(pl.keyWords + 8 * k + 4) & KEY_INHERITED) != 0) flags |= SCAN_COLLIDES;
    Members m(ps, pe);
    const uint8_t *ks, *ke, *vs, *ve;
    while (m.next(ks, ke, vs, ve)) {
      if (keyMatches(ks, ke, nKeys)) flags |= SCAN_COLLIDES;
      flags |= talosKeyBitDecoded(ks, ke);
    }
    hasNewline = std::memchr(ps, '\n', e - s) != nullptr || std::memchr(ps, '\r', e - s) != nullptr;
    return -1;
  }

  static int talosKeyBitDecoded(const uint8_t* ks, const uint8_t* ke) {
    static const char* const KEYS[] = {"\"talos-service\"", "\"facility\"", "\"priority\"", "\"clock\"", "\"seq\""};
    static constexpr int BITS[] = {SCAN_TALOS_SERVICE, SCAN_FACILITY, SCAN_PRIORITY, SCAN_CLOCK, SCAN_SEQ};
    for (int i = 0; i < 5; i++) {
      const auto* k = reinterpret_cast<const uint8_t*>(KEYS[i]);
      if (decodedEqual(ks, ke, k, k + std::strlen(KEYS[i]))) return BITS[i];
    }
    return 0;
  }

  // Whether the key src[ks, ke) (quotes included) is one of the first nKeys injected keys,
  // decoded: "\u0063luster" is "cluster" (process.ts keyMatches).
  bool keyMatches(const uint8_t* ks, const uint8_t* ke, uint32_t nKeys) const {
    const Plan& pl = *plan;
    const size_t n = static_cast<size_t>(ke - ks);
    if (collides(pl, nKeys, ks, n)) return true;
    // Without an escape the bytes decide: JSON.stringify escapes only what cannot appear raw in
    // a JSON string (quote, backslash, control characters, lone surrogates).
    if (std::memchr(ks, '\\', n) == nullptr) return false;
    const uint8_t* key = pl.keys;
    for (uint32_t k = 0; k < nKeys; k++) {
      const size_t len = u32le(pl.keyWords + 8 * k);
      if (decodedEqual(ks, ke, key, key + len)) return true;
      key += len;
    }
    return false;
  }

  // Append one accepted record (process.ts #emit); the room was checked by the caller.
  void emit(size_t s, size_t e, size_t peerS, size_t peerE, bool withHost, bool peerOk, bool collide, uint32_t nKeys,
            bool hasNewline) {
    const Plan& pl = *plan;
    uint8_t* const start = out + pos;
    uint8_t* o = start;
    bool hasMember;
    if (collide) {
      o = copyMembersExcept(o, s, e, nKeys, hasMember);
    } else {
      std::memcpy(o, src + s, e - 1 - s);
      o += e - 1 - s;
      size_t j = e - 2;
      while (isWs(src[j])) j--;
      hasMember = src[j] != '{';  // `{}` and `{ }` take no comma
    }
    const uint8_t* tags = withHost ? pl.tagHost : pl.tag;
    const size_t tagsLen = withHost ? pl.tagHostLen : pl.tagLen;
    if (tagsLen != 0) {
      if (hasMember) *o++ = ',';
      std::memcpy(o, tags, tagsLen);
      o += tagsLen;
      if (withHost) {
        if (peerOk) {
          std::memcpy(o, src + peerS, peerE - peerS);
          o += peerE - peerS;
        } else {
          o = escapeLatin1(o, src + peerS, src + peerE);
        }
        *o++ = '"';
      }
    }
    *o++ = '}';
    if (hasNewline) {
      // A raw CR/LF in valid JSON can only be whitespace between tokens: a space keeps the
      // record byte-exact on one line.
      for (uint8_t* q = start; q < o; q++)
        if (*q == '\n' || *q == '\r') *q = ' ';
    }
    *o++ = '\n';
    pos = static_cast<size_t>(o - out);
  }

  // The collision path (process.ts #copyMembersExcept): `{` and the members of the valid object
  // [s, e) whose key is not among the first nKeys injected keys, comma-separated, kept members
  // copied in runs (the spacing between them included).
  __attribute__((noinline)) uint8_t* copyMembersExcept(uint8_t* o, size_t s, size_t e, uint32_t nKeys, bool& kept) {
    *o++ = '{';
    kept = false;
    const uint8_t* runStart = nullptr;
    const uint8_t* runEnd = nullptr;
    Members m(src + s, src + e);
    const uint8_t *ks, *ke, *vs, *ve;
    while (m.next(ks, ke, vs, ve)) {
      if (keyMatches(ks, ke, nKeys)) {
        if (runStart != nullptr) {
          if (kept) *o++ = ',';
          std::memcpy(o, runStart, static_cast<size_t>(runEnd - runStart));
          o += runEnd - runStart;
          kept = true;
          runStart = nullptr;
        }
      } else {
        if (runStart == nullptr) runStart = ks;
        runEnd = ve;
      }
    }
    if (runStart != nullptr) {
      if (kept) *o++ = ',';
      std::memcpy(o, runStart, static_cast<size_t>(runEnd - runStart));
      o += runEnd - runStart;
      kept = true;
    }
    return o;
  }

  // A malformed line: counted, and dead-lettered when that is on. False when dl must grow first.
  BATCH_COLD bool malformedLine(int reason, size_t peerS, size_t peerE, size_t ls, size_t le) {
    if (!deadLetterEnvelope(reason, peerS, peerE, ls, le)) return false;
    records += 1;
    inputBytes += static_cast<double>(le - ls);
    malformed[reason] += 1;
    return true;
  }

  // An invalid frame, raw bytes [rs, re), peer null.
  BATCH_COLD bool invalidFrame(size_t rs, size_t re) {
    if (!deadLetterEnvelope(R_INVALID_FRAME, 0, 0, rs, re)) return false;
    records += 1;
    malformed[R_INVALID_FRAME] += 1;
    return true;
  }

  // `{"reason":…,"component_id":…,"peer":…,"raw":…}\n` (or "raw_base64" when the bytes are not
  // well-formed UTF-8), as process.ts #deadLetter writes it. True when written or not wanted.
  bool deadLetterEnvelope(int reason, size_t peerS, size_t peerE, size_t rs, size_t re) {
    if (!deadLetter) return true;
    const size_t n = 96 + sourceLen + 6 * (peerE - peerS) + 6 * (re - rs);
    if (n > dlLen - dlPos) {
      dlNeed = n;
      return false;
    }
    uint8_t* o = dl + dlPos;
    o = put(o, "{\"reason\":\"");
    o = put(o, REASON_NAMES[reason]);
    o = put(o, "\",\"component_id\":");
    std::memcpy(o, source, sourceLen);
    o += sourceLen;
    o = put(o, ",\"peer\":");
    if (peerS < peerE) {
      *o++ = '"';
      o = escapeLatin1(o, src + peerS, src + peerE);
      *o++ = '"';
    } else {
      o = put(o, "null");
    }
    if (utf8Valid(src + rs, src + re)) {
      o = put(o, ",\"raw\":\"");
      o = escapeUtf8(o, src + rs, src + re);
    } else {
      o = put(o, ",\"raw_base64\":\"");
      o = base64(o, src + rs, src + re);
    }
    o = put(o, "\"}\n");
    dlPos = static_cast<size_t>(o - dl);
    return true;
  }
};

// A non-negative integer slot no greater than `max`, or false.
inline bool slotIndex(double v, size_t max, size_t& outValue) {
  if (!(v >= 0) || v > static_cast<double>(max) || v != static_cast<double>(static_cast<uint64_t>(v))) return false;
  outValue = static_cast<size_t>(v);
  return true;
}

int process(const uint8_t* src, size_t srcLen, uint8_t* out, size_t outLen, uint8_t* dl, size_t dlLen, const Plan& plan,
            const uint8_t* source, size_t sourceLen, double* st, facts::Batch* fb, const char** err) {
  size_t length, off, pos, dlPos, lineCur = 0;
  if (!slotIndex(st[S_LENGTH], srcLen, length)) return *err = "state[LENGTH] is beyond the source", -1;
  if (!slotIndex(st[S_OFF], length, off)) return *err = "state[OFF] is beyond the batch", -1;
  if (!slotIndex(st[S_POS], outLen, pos)) return *err = "state[POS] is beyond the output", -1;
  if (!slotIndex(st[S_DL_POS], dlLen, dlPos)) return *err = "state[DL_POS] is beyond the dead-letter output", -1;
  const double maxDepth = st[S_MAX_DEPTH];
  if (!(maxDepth >= 1)) return *err = "state[MAX_DEPTH] must be >= 1", -1;
  bool inBlock = st[S_LINE] >= 0;
  if (inBlock) {
    // Resuming inside the block record at OFF: LINE must lie within its lines.
    size_t len = 0;
    if (length - off < 4 || (len = u32le(src + off)) > length - off - 4 || len == 0 || (src[off + 4] & BLOCK_FLAG) == 0 ||
        1 + static_cast<size_t>(src[off + 4] & PEER_LEN_MASK) > len ||
        !slotIndex(st[S_LINE], off + 4 + len, lineCur) || lineCur < off + 5 + (src[off + 4] & PEER_LEN_MASK))
      return *err = "state[LINE] is not a line of the block record at state[OFF]", -1;
  }
  const int limit = maxDepth < MAX_SCAN_DEPTH ? static_cast<int>(maxDepth) : MAX_SCAN_DEPTH;

  Run r{};
  r.src = src;
  r.out = out;
  r.outLen = outLen;
  r.pos = pos;
  r.dl = dl;
  r.dlLen = dlLen;
  r.dlPos = dlPos;
  r.plan = &plan;
  r.source = source;
  r.sourceLen = sourceLen;
  r.maxDepth = maxDepth;
  r.limit = limit;
  r.deadLetter = st[S_DEAD_LETTER] == 1;
  r.fb = fb;
  r.hostSlot = facts::NONE;
  if (fb != nullptr && plan.hasHostKey) {
    // The host key is the last injected key.
    const uint8_t* k = plan.keys;
    for (uint32_t i = 0; i + 1 < plan.nInject; i++) k += u32le(plan.keyWords + 8 * i);
    r.hostSlot = fb->fieldOf(k, u32le(plan.keyWords + 8 * (plan.nInject - 1)));
  }
  int status = ST_DONE;

  while (off < length) {
    if (length - off < 4) {
      // A partial length header: the span is not record-aligned. The rest is skipped.
      if (!r.invalidFrame(off, length)) {
        status = ST_GROW;
        break;
      }
      off = length;
      break;
    }
    const size_t len = u32le(src + off);
    const size_t ps = off + 4;
    if (len > length - ps) {
      // A length past the span's end: the rest is skipped.
      if (!r.invalidFrame(ps, length)) {
        status = ST_GROW;
        break;
      }
      off = length;
      break;
    }
    const size_t pe = ps + len;
    const size_t next = ps + ((len + 3) & ~static_cast<size_t>(3));
    const uint8_t head = len == 0 ? 0 : src[ps];
    const size_t ls = ps + 1 + (head & PEER_LEN_MASK);
    if (len == 0 || ls > pe) {
      if (!r.invalidFrame(ps, pe)) {
        status = ST_GROW;
        break;
      }
      off = next;
      continue;
    }
    const bool peerOk = !plan.hasHostKey || ls == ps + 1 || peerSafe(src + ps + 1, src + ls);
    if ((head & BLOCK_FLAG) == 0) {
      if (!r.line(ps + 1, ls, peerOk, ls, pe)) {
        status = ST_GROW;
        break;
      }
      off = next;
      continue;
    }
    // A block of '\n'-terminated lines (TCP): one memchr per line, a '\r' before the '\n' is the
    // line ending's; a block missing its last '\n' ends its last line with its end.
    size_t s = inBlock ? lineCur : ls;
    inBlock = false;
    while (s < pe) {
      const void* hit = std::memchr(src + s, '\n', pe - s);
      const size_t nl = hit == nullptr ? pe : static_cast<size_t>(static_cast<const uint8_t*>(hit) - src);
      const size_t e = nl > s && src[nl - 1] == '\r' ? nl - 1 : nl;
      if (!r.line(ps + 1, ls, peerOk, s, e)) {
        status = ST_GROW;
        inBlock = true;
        lineCur = s;
        break;
      }
      s = nl + 1;
    }
    if (status == ST_GROW) break;
    off = next;
  }

  st[S_OFF] = static_cast<double>(off);
  st[S_LINE] = inBlock ? static_cast<double>(lineCur) : -1;
  st[S_POS] = static_cast<double>(r.pos);
  st[S_DL_POS] = static_cast<double>(r.dlPos);
  st[S_NEED] = static_cast<double>(r.need);
  st[S_DL_NEED] = static_cast<double>(r.dlNeed);
  st[S_RECORDS] += r.records;
  st[S_ACCEPTED] += r.accepted;
  st[S_INPUT_BYTES] += r.inputBytes;
  st[S_SERVICE] += r.service;
  st[S_KERNEL] += r.kernel;
  st[S_OTHER] += r.other;
  for (int k = 0; k < R_COUNT; k++) st[S_MALFORMED + k] += r.malformed[k];
  if (fb != nullptr) fb->save(st);
  return status;
}

// ------------------------------------------------------------------ N-API

bool typedArray(napi_env env, napi_value v, napi_typedarray_type want, void** data, size_t* length) {
  bool is = false;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return false;
  napi_typedarray_type type;
  if (napi_get_typedarray_info(env, v, &type, length, data, nullptr, nullptr) != napi_ok) return false;
  if (type != want) return false;
  if (*data == nullptr && *length != 0) return false;
  return true;
}

napi_value ProcessRecords(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value argv[9];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok) return nullptr;
  if (argc < 6) {
    napi_throw_type_error(env, nullptr, "processRecords(src, out, dl, plan, source, state[, fields, facts, times]): 6 or 9 arguments expected");
    return nullptr;
  }
  const bool withFacts = argc >= 9;
  static const char* const NAMES[8] = {"src", "out", "dl", "plan", "source", "state", "fields", "times"};
  void* data[8] = {};
  size_t lens[8] = {};
  // Uint8Arrays: src, out, dl, plan, source, and with the facts: fields (argv 6) and times (argv 8).
  static const int U8_ARGS[7] = {0, 1, 2, 3, 4, 6, 8};
  static const int U8_SLOTS[7] = {0, 1, 2, 3, 4, 6, 7};
  for (int j = 0; j < (withFacts ? 7 : 5); j++) {
    const int i = U8_SLOTS[j];
    if (!typedArray(env, argv[U8_ARGS[j]], napi_uint8_array, &data[i], &lens[i])) {
      const std::string msg = std::string("processRecords: ") + NAMES[i] + " must be a Uint8Array";
      napi_throw_type_error(env, nullptr, msg.c_str());
      return nullptr;
    }
  }
  void* state = nullptr;
  size_t stateLen = 0;
  if (!typedArray(env, argv[5], napi_float64_array, &state, &stateLen) || stateLen < STATE_SLOTS) {
    napi_throw_type_error(env, nullptr, "processRecords: state must be a Float64Array of the batch-native.ts slots");
    return nullptr;
  }
  void* factsData = nullptr;
  size_t factsLen = 0;
  if (withFacts && !typedArray(env, argv[7], napi_uint32_array, &factsData, &factsLen)) {
    napi_throw_type_error(env, nullptr, "processRecords: facts must be a Uint32Array");
    return nullptr;
  }
  Plan plan;
  if (!parsePlan(static_cast<const uint8_t*>(data[3]), lens[3], plan)) {
    napi_throw_range_error(env, nullptr, "processRecords: plan is not a packed tag plan");
    return nullptr;
  }
  facts::Batch fb;
  if (withFacts && !fb.load(static_cast<const uint8_t*>(data[6]), lens[6], static_cast<uint32_t*>(factsData), factsLen,
                            static_cast<uint8_t*>(data[7]), lens[7], static_cast<const uint8_t*>(data[1]),
                            static_cast<const double*>(state))) {
    napi_throw_range_error(env, nullptr, "processRecords: fields, facts or times do not hold the index facts (batch-native.ts packFields)");
    return nullptr;
  }
  if (withFacts && lens[1] > 0xffffffffu) {
    napi_throw_range_error(env, nullptr, "processRecords: out is larger than 4 GiB, past the facts' offsets");
    return nullptr;
  }
  const char* err = nullptr;
  int status = process(static_cast<const uint8_t*>(data[0]), lens[0], static_cast<uint8_t*>(data[1]), lens[1],
                       static_cast<uint8_t*>(data[2]), lens[2], plan, static_cast<const uint8_t*>(data[4]), lens[4],
                       static_cast<double*>(state), withFacts ? &fb : nullptr, &err);
  if (status < 0) {
    napi_throw_range_error(env, nullptr, err);
    return nullptr;
  }
  napi_value result;
  if (napi_create_int32(env, status, &result) != napi_ok) return nullptr;
  return result;
}

napi_value Init(napi_env env, napi_value exports) {
  napi_value fn;
  if (napi_create_function(env, "processRecords", NAPI_AUTO_LENGTH, ProcessRecords, nullptr, &fn) != napi_ok) return nullptr;
  if (napi_set_named_property(env, exports, "processRecords", fn) != napi_ok) return nullptr;
  return exports;
}

}  // namespace

NAPI_MODULE(batch, Init)
