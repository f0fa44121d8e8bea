// batch: the worker's validate + tag fast path in C++ (packages/worker/src/process.ts holds the
// TypeScript path it mirrors, and stays the fallback and the handler of every rare line).
//
// One call runs over a batch of ring records from a cursor and returns a status when it is
// done, when the output buffer is too small for the next line (JS grows it and calls again),
// or when it meets a line or frame it leaves to JS (JS handles exactly that one with its own
// code, then calls again to resume after it). No per-line N-API call, no allocation.
//
//   u32 LE len | payload (len bytes) | pad to 4      payload = u8 head | peer | line
//   head = peerLen (bits 0-6) | 0x80 for a block of '\n'-terminated lines
//
// Handled here, byte for byte as process.ts does it: framing, block splitting at '\n' (a '\r'
// before it is the line ending's), BOM + JSON whitespace trimming, the scan of json-scan.ts
// (UTF-8, JSON, depth limit, top-level Talos keys, collisions with injected keys), the splice
// (original bytes up to the closing brace, a comma unless the object is empty, tags or tags +
// host key, the peer, `"`, `}`), raw CR/LF → space in the emitted record, and the counts.
//
// Left to JS (status LINE): every line the scanner does not accept (JS's exact path names the
// reason, or accepts it: a top-level key with escapes, nesting beyond 1024), empty lines.
// Status EMIT: a line the scan accepted that JS emits with its own code, given the scan's
// result: a top-level key colliding with an injected key (JS's collision path cuts it), or a
// peer that is not JSON-safe (JS escapes it). Status FRAME / FRAME_END: a broken frame
// (zero-length payload, peerLen beyond the payload; a partial length header or a length beyond
// the span, which end the batch).
//
// Export: processRecords(src: Uint8Array, out: Uint8Array, plan: Uint8Array, state: Float64Array): number
//   src: the batch (bytes [0, state[LENGTH]) are read, nothing else); out: the NDJSON buffer,
//   written at [state[POS], ...); plan: a packed TagPlan (batch-native.ts packPlan); state:
//   named slots (S_* below, mirrored in batch-native.ts), cursor in and out, counts added to.
//   Returns a status (ST_* below). Throws a TypeError / RangeError on malformed arguments.
//
// Built by scripts/build-native.ts (g++ -O2 -std=c++17, no -march); SSE2 when the target has
// it (x86-64 always), a portable 8-byte SWAR loop otherwise. N-API version 8, no V8 API.

#define NAPI_VERSION 8
#include <node_api.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

// -DBATCH_SCALAR builds the portable loop on x86-64 too (to test what aarch64 runs).
#if defined(__SSE2__) && !defined(BATCH_SCALAR)
#define BATCH_SSE2 1
#include <emmintrin.h>
#endif

namespace {

// ------------------------------------------------------------------ state slots (batch-native.ts)

enum Slot : int {
  // In (set by JS before the first call of a batch; the cursor slots are kept up to date here).
  S_LENGTH = 0,      // bytes of the batch
  S_DEPTH = 1,       // depth limit: min(maxDepth, 1024), floored
  S_OFF = 2,         // offset of the next record (when not inside a block)
  S_BLK_NEXT = 3,    // start of the next line of the current block, or -1 when not in a block
  S_BLK_END = 4,     // end of the current block's payload
  S_BLK_PS = 5,      // payload start of the current block (head byte)
  S_POS = 6,         // output position (in and out)
  // Counts: added to.
  S_RECORDS = 7,
  S_ACCEPTED = 8,
  S_INPUT_BYTES = 9,
  S_SERVICE = 10,
  S_KERNEL = 11,
  S_OTHER = 12,
  // Out: the line or frame left to JS, or the room needed.
  S_PEER_S = 13,
  S_PEER_E = 14,
  S_LS = 15,         // line start (untrimmed) / frame: raw start
  S_LE = 16,         // line end (untrimmed, a block line's '\r\n' excluded) / frame: raw end
  S_NL = 17,         // a block line: its '\n' (or the block end when it has none); -1 otherwise
  S_NEED = 18,       // ST_GROW: bytes needed past S_POS
  S_S = 19,          // ST_EMIT: the trimmed line [S_S, S_E)
  S_E = 20,
  S_FLAGS = 21,      // ST_EMIT: the scan's result (SCAN_* bits)
  S_HAS_NL = 22,     // ST_EMIT: 1 when the trimmed line holds a raw CR or LF
  S_COUNT = 23,
};

enum Status : int {
  ST_DONE = 0,       // the batch is done
  ST_GROW = 1,       // out is too small for the next line: grow it to S_POS + S_NEED, call again
  ST_LINE = 2,       // JS handles the line S_PEER_S/E, S_LS/E (S_NL), then calls again
  ST_FRAME = 3,      // an invalid frame [S_LS, S_LE) (dead-letter raw bytes); call again
  ST_FRAME_END = 4,  // an invalid frame that ends the batch; do not call again
  ST_EMIT = 5,       // an accepted line JS emits (its collision path, or a peer to escape); then call again
};

// Scanner results: the SCAN_* of json-scan.ts.
constexpr int SCAN_REJECT = -1;
constexpr int SCAN_OK = 1;
constexpr int SCAN_COLLIDES = 2;
constexpr int SCAN_TALOS_SERVICE = 4;
constexpr int SCAN_FACILITY = 8;
constexpr int SCAN_PRIORITY = 16;
constexpr int SCAN_CLOCK = 32;
constexpr int SCAN_SEQ = 64;
constexpr int SCAN_KERNEL = SCAN_FACILITY | SCAN_PRIORITY | SCAN_CLOCK | SCAN_SEQ;

constexpr int MAX_SCAN_DEPTH = 1024;
constexpr uint8_t PEER_LEN_MASK = 0x7f;
constexpr uint8_t BLOCK_FLAG = 0x80;

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
// nInject key lengths; then the bytes: tagBytes, tagHostBytes, every injectKeyBytes in order.
struct Plan {
  const uint8_t* tag;
  size_t tagLen;
  const uint8_t* tagHost;
  size_t tagHostLen;
  bool hasHostKey;
  uint32_t nKeys;
  uint32_t nInject;
  const uint8_t* keyLens;  // nInject u32 LE
  const uint8_t* keys;     // concatenated
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
  if (hasHost > 1 || plan.nKeys > plan.nInject) return false;
  plan.hasHostKey = hasHost == 1;
  uint64_t head = 20 + 4ull * plan.nInject;
  if (head > n) return false;
  plan.keyLens = p + 20;
  uint64_t total = head + plan.tagLen + plan.tagHostLen;
  for (uint32_t k = 0; k < plan.nInject; k++) total += u32le(plan.keyLens + 4 * k);
  if (total != n) return false;
  plan.tag = p + head;
  plan.tagHost = plan.tag + plan.tagLen;
  plan.keys = plan.tagHost + plan.tagHostLen;
  return true;
}

// Whether the key src[ks, ke) (quotes included) equals one of the first nKeys injected keys.
inline bool collides(const Plan& plan, uint32_t nKeys, const uint8_t* ks, size_t n) {
  const uint8_t* key = plan.keys;
  for (uint32_t k = 0; k < nKeys; k++) {
    size_t len = u32le(plan.keyLens + 4 * k);
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
inline const uint8_t* scanNumber(const uint8_t* p, const uint8_t* end) {
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

inline const uint8_t* scanLiteral(const uint8_t* p, const uint8_t* end, const char* word, size_t n) {
  if (static_cast<size_t>(end - p) < n) return nullptr;
  for (size_t j = 1; j < n; j++)
    if (p[j] != static_cast<uint8_t>(word[j])) return nullptr;
  return p + n;
}

inline bool keyIs(const uint8_t* ks, const char* key, size_t n) { return std::memcmp(ks, key, n) == 0; }

enum ScanState : int { VALUE = 0, VALUE_OR_CLOSE = 1, KEY = 2, KEY_OR_CLOSE = 3, AFTER = 4 };
constexpr uint8_t IN_OBJECT = 1;
constexpr uint8_t IN_ARRAY = 2;

// scanRecord of json-scan.ts over [s, e) (trimmed: *s is the first token). `sawNewline` is set
// when a raw CR or LF is met (in an accepted line it can only be whitespace between tokens).
int scanRecord(const uint8_t* s, const uint8_t* e, int limit, const Plan& plan, uint32_t nKeys, bool& sawNewline) {
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
        if (sawEscape) return SCAN_REJECT;  // the exact path compares decoded keys
        const size_t n = static_cast<size_t>(p - ks);
        if (collides(plan, nKeys, ks, n)) flags |= SCAN_COLLIDES;
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
      if (c == '"') {
        bool sawEscape = false;
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
        if (c == '-' || isDigit(c)) p = scanNumber(p, e);
        else if (c == 't') p = scanLiteral(p, e, "true", 4);
        else if (c == 'f') p = scanLiteral(p, e, "false", 5);
        else if (c == 'n') p = scanLiteral(p, e, "null", 4);
        else return SCAN_REJECT;
        state = AFTER;
      }
      if (p == nullptr) return SCAN_REJECT;
    }
  }
}

// ------------------------------------------------------------------ the batch loop

inline bool peerSafe(const uint8_t* p, const uint8_t* e) {
  for (; p < e; p++) {
    const uint8_t b = *p;
    if (b < 0x20 || b > 0x7e || b == '"' || b == '\\') return false;
  }
  return true;
}

enum LineResult : int { L_ACCEPTED, L_HANDOFF, L_EMIT, L_GROW };

struct Run {
  const uint8_t* src;
  uint8_t* out;
  size_t outLen;
  size_t pos;
  const Plan* plan;
  int limit;
  double records, accepted, inputBytes, service, kernel, other;
  size_t need;
  // L_EMIT: what JS needs to emit the line.
  size_t emitS, emitE;
  int emitFlags;
  bool emitNewline;

  // One line src[ls, le) with peer src[peerS, peerE) (peerOk: JSON-safe, checked once per record).
  LineResult line(size_t peerS, size_t peerE, bool peerOk, size_t ls, size_t le) {
    size_t s = ls;
    if (le - s >= 3 && src[s] == 0xef && src[s + 1] == 0xbb && src[s + 2] == 0xbf) s += 3;
    while (s < le && isWs(src[s])) s++;
    if (s == le) return L_HANDOFF;  // empty
    size_t e = le;
    while (isWs(src[e - 1])) e--;
    const Plan& pl = *plan;
    const bool withHost = peerE != peerS && pl.hasHostKey;
    const uint8_t* tags = withHost ? pl.tagHost : pl.tag;
    const size_t tagsLen = withHost ? pl.tagHostLen : pl.tagLen;
    const size_t peerLen = withHost ? peerE - peerS : 0;
    // Written: e - s - 1 line bytes, ',', tags, peer, '"', '}', '\n'.
    const size_t n = (e - s) + tagsLen + peerLen + 8;
    if (n > outLen - pos) {
      need = n;
      return L_GROW;
    }
    bool hasNewline = false;
    const int flags = scanRecord(src + s, src + e, limit, pl, withHost ? pl.nInject : pl.nKeys, hasNewline);
    if (flags == SCAN_REJECT) return L_HANDOFF;
    if ((flags & SCAN_COLLIDES) != 0 || (withHost && !peerOk)) {
      emitS = s;
      emitE = e;
      emitFlags = flags;
      emitNewline = hasNewline;
      return L_EMIT;
    }

    uint8_t* const start = out + pos;
    uint8_t* o = start;
    std::memcpy(o, src + s, e - 1 - s);
    o += e - 1 - s;
    if (tagsLen != 0) {
      size_t j = e - 2;
      while (isWs(src[j])) j--;
      if (src[j] != '{') *o++ = ',';  // `{}` and `{ }` take no comma
      std::memcpy(o, tags, tagsLen);
      o += tagsLen;
      if (withHost) {
        std::memcpy(o, src + peerS, peerLen);
        o += peerLen;
        *o++ = '"';
      }
    }
    *o++ = '}';
    if (hasNewline) {
      for (uint8_t* q = start; q < o; q++)
        if (*q == '\n' || *q == '\r') *q = ' ';
    }
    *o++ = '\n';
    pos = static_cast<size_t>(o - out);

    records += 1;
    accepted += 1;
    inputBytes += static_cast<double>(le - ls);
    if ((flags & SCAN_TALOS_SERVICE) != 0) service += 1;
    else if ((flags & SCAN_KERNEL) == SCAN_KERNEL) kernel += 1;
    else other += 1;
    return L_ACCEPTED;
  }
};

// A line left to JS (L_HANDOFF: all of it; L_EMIT: the emit alone): its slots, and the status.
int handoff(const Run& r, LineResult lr, double* st, size_t peerS, size_t peerE, size_t ls, size_t le, double nl) {
  st[S_PEER_S] = static_cast<double>(peerS);
  st[S_PEER_E] = static_cast<double>(peerE);
  st[S_LS] = static_cast<double>(ls);
  st[S_LE] = static_cast<double>(le);
  st[S_NL] = nl;
  if (lr == L_HANDOFF) return ST_LINE;
  st[S_S] = static_cast<double>(r.emitS);
  st[S_E] = static_cast<double>(r.emitE);
  st[S_FLAGS] = r.emitFlags;
  st[S_HAS_NL] = r.emitNewline ? 1 : 0;
  return ST_EMIT;
}

// A non-negative integer slot no greater than `max`, or false.
inline bool slotIndex(double v, size_t max, size_t& outValue) {
  if (!(v >= 0) || v > static_cast<double>(max) || v != static_cast<double>(static_cast<uint64_t>(v))) return false;
  outValue = static_cast<size_t>(v);
  return true;
}

int process(const uint8_t* src, size_t srcLen, uint8_t* out, size_t outLen, const Plan& plan, double* st, const char** err) {
  size_t length, off, pos, blkEnd = 0, blkPs = 0, blkNext = 0;
  if (!slotIndex(st[S_LENGTH], srcLen, length)) return *err = "state[LENGTH] is beyond the source", -1;
  if (!slotIndex(st[S_OFF], SIZE_MAX / 2, off)) return *err = "state[OFF] is not an offset", -1;
  if (!slotIndex(st[S_POS], outLen, pos)) return *err = "state[POS] is beyond the output", -1;
  const bool startInBlock = st[S_BLK_NEXT] >= 0;
  if (startInBlock) {
    if (!slotIndex(st[S_BLK_END], length, blkEnd) || !slotIndex(st[S_BLK_NEXT], blkEnd, blkNext) ||
        !slotIndex(st[S_BLK_PS], blkNext, blkPs) || blkPs >= blkNext ||
        1 + static_cast<size_t>(src[blkPs] & PEER_LEN_MASK) > blkNext - blkPs)
      return *err = "state: the block cursor is out of bounds", -1;
  }
  double depth = st[S_DEPTH];
  if (!(depth >= 1)) return *err = "state[DEPTH] must be >= 1", -1;
  const int limit = depth < MAX_SCAN_DEPTH ? static_cast<int>(depth) : MAX_SCAN_DEPTH;

  Run r{src, out, outLen, pos, &plan, limit, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, false};
  int status = ST_DONE;
  bool inBlock = startInBlock;
  size_t blkPeerS = 0, blkPeerE = 0;
  bool blkPeerOk = true;
  if (inBlock) {
    blkPeerS = blkPs + 1;
    blkPeerE = blkPeerS + (src[blkPs] & PEER_LEN_MASK);
    blkPeerOk = peerSafe(src + blkPeerS, src + blkPeerE);
  }

  for (;;) {
    if (inBlock) {
      if (blkNext >= blkEnd) {
        inBlock = false;
        continue;
      }
      const size_t s = blkNext;
      const void* hit = std::memchr(src + s, '\n', blkEnd - s);
      const size_t nl = hit == nullptr ? blkEnd : static_cast<size_t>(static_cast<const uint8_t*>(hit) - src);
      const size_t e = nl > s && src[nl - 1] == '\r' ? nl - 1 : nl;
      const LineResult lr = r.line(blkPeerS, blkPeerE, blkPeerOk, s, e);
      if (lr == L_GROW) {
        status = ST_GROW;
        break;
      }
      blkNext = nl + 1;
      if (lr != L_ACCEPTED) {
        status = handoff(r, lr, st, blkPeerS, blkPeerE, s, e, static_cast<double>(nl));
        break;
      }
      continue;
    }
    if (off >= length) break;
    if (length - off < 4) {
      // A partial length header: the span is not record-aligned. The rest is skipped.
      st[S_LS] = static_cast<double>(off);
      st[S_LE] = static_cast<double>(length);
      off = length;
      status = ST_FRAME_END;
      break;
    }
    const size_t len = u32le(src + off);
    const size_t ps = off + 4;
    if (len > length - ps) {
      st[S_LS] = static_cast<double>(ps);
      st[S_LE] = static_cast<double>(length);
      off = length;
      status = ST_FRAME_END;
      break;
    }
    const size_t pe = ps + len;
    const size_t next = ps + ((len + 3) & ~static_cast<size_t>(3));
    const uint8_t head = len == 0 ? 0 : src[ps];
    const size_t ls = ps + 1 + (head & PEER_LEN_MASK);
    if (len == 0 || ls > pe) {
      st[S_LS] = static_cast<double>(ps);
      st[S_LE] = static_cast<double>(pe);
      off = next;
      status = ST_FRAME;
      break;
    }
    const bool peerOk = !plan.hasHostKey || ls == ps + 1 || peerSafe(src + ps + 1, src + ls);
    if ((head & BLOCK_FLAG) != 0) {
      off = next;
      inBlock = true;
      blkNext = ls;
      blkEnd = pe;
      blkPs = ps;
      blkPeerS = ps + 1;
      blkPeerE = ls;
      blkPeerOk = peerOk;
      continue;
    }
    const LineResult lr = r.line(ps + 1, ls, peerOk, ls, pe);
    if (lr == L_GROW) {
      status = ST_GROW;  // off still at this record
      break;
    }
    off = next;
    if (lr != L_ACCEPTED) {
      status = handoff(r, lr, st, ps + 1, ls, ls, pe, -1);
      break;
    }
  }

  st[S_OFF] = static_cast<double>(off);
  st[S_BLK_NEXT] = inBlock && blkNext < blkEnd ? static_cast<double>(blkNext) : -1;
  st[S_BLK_END] = static_cast<double>(blkEnd);
  st[S_BLK_PS] = static_cast<double>(blkPs);
  st[S_POS] = static_cast<double>(r.pos);
  st[S_RECORDS] += r.records;
  st[S_ACCEPTED] += r.accepted;
  st[S_INPUT_BYTES] += r.inputBytes;
  st[S_SERVICE] += r.service;
  st[S_KERNEL] += r.kernel;
  st[S_OTHER] += r.other;
  if (status == ST_GROW) st[S_NEED] = static_cast<double>(r.need);
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
  size_t argc = 4;
  napi_value argv[4];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok) return nullptr;
  if (argc < 4) {
    napi_throw_type_error(env, nullptr, "processRecords(src, out, plan, state): 4 arguments expected");
    return nullptr;
  }
  void* src = nullptr;
  void* out = nullptr;
  void* planBytes = nullptr;
  void* state = nullptr;
  size_t srcLen = 0, outLen = 0, planLen = 0, stateLen = 0;
  if (!typedArray(env, argv[0], napi_uint8_array, &src, &srcLen)) {
    napi_throw_type_error(env, nullptr, "processRecords: src must be a Uint8Array");
    return nullptr;
  }
  if (!typedArray(env, argv[1], napi_uint8_array, &out, &outLen)) {
    napi_throw_type_error(env, nullptr, "processRecords: out must be a Uint8Array");
    return nullptr;
  }
  if (!typedArray(env, argv[2], napi_uint8_array, &planBytes, &planLen)) {
    napi_throw_type_error(env, nullptr, "processRecords: plan must be a Uint8Array");
    return nullptr;
  }
  if (!typedArray(env, argv[3], napi_float64_array, &state, &stateLen) || stateLen < S_COUNT) {
    napi_throw_type_error(env, nullptr, "processRecords: state must be a Float64Array of the batch-native.ts slots");
    return nullptr;
  }
  Plan plan;
  if (!parsePlan(static_cast<const uint8_t*>(planBytes), planLen, plan)) {
    napi_throw_range_error(env, nullptr, "processRecords: plan is not a packed tag plan");
    return nullptr;
  }
  const char* err = nullptr;
  int status = process(static_cast<const uint8_t*>(src), srcLen, static_cast<uint8_t*>(out), outLen, plan,
                       static_cast<double*>(state), &err);
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
