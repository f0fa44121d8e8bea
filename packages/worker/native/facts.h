// facts.h: the object index's facts of a batch, gathered by batch.cc's scan as it validates
// each line (included by batch.cc only). What an index holds and why: docs/internals.md,
// "Object index"; the TypeScript side and the rules: packages/worker/src/facts.ts.
//
// The scan notes, for each line it accepts, where the values of the keys of interest start and
// end at the top level (Capture); Batch::line then adds the indexed fields' values to the
// batch's sets and the record's time to its range. What it cannot decide exactly it does not
// guess: the line is "uncertain" and its place in the output goes back to JS, which decides it
// the reader's way (JSON.parse). A line is uncertain when
//   - the fast scan did not accept it (an escaped key, nesting past its limit: the exact verdict),
//     or an injected key collides with one of its keys (its members move),
//   - an indexed field's value is a number, true, false or null (its text is JSON's: `2e2` is
//     `200`), or a string with an escape; or the peer written for the host key is escaped,
//   - `talos-time` appears more than once, is not a string, or is not in the plain
//     `YYYY-MM-DDTHH:MM:SS[.digits]Z` form (offsets, lowercase `z`, a space for `T`),
//   - a HEC record (`event` and `time`, no `talos-time`) has `time` twice, or as a string with an
//     escape or longer than 63 bytes,
//   - it has more than 16 keys of interest.
// Values of an indexed key that appears twice are both kept: a superset never hides a record.
//
// The batch's sets, counts and range live in JS's buffers between calls (a call that stops for
// ST_GROW resumes with them): `facts` (Uint32Array: per field 1 + 2 * 64 words, the count of
// distinct values or MANY, then (offset, length) of each value's text in the NDJSON output; then
// (start, end) of each uncertain line), `times` (the earliest and latest canonical time, 29 bytes
// each) and the S_F_* slots of the state (packages/worker/src/native-constants.ts).

#ifndef SLUICE_FACTS_H
#define SLUICE_FACTS_H

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "generated-constants.h"

namespace facts {

// The buffers' layout, shared with facts.ts: packages/worker/src/native-constants.ts, through
// generated-constants.h.
constexpr uint32_t MAX_VALUES = sluice::worker::MAX_FIELD_VALUES;
constexpr uint32_t MANY = sluice::worker::F_MANY;
constexpr uint32_t MAX_FIELDS = sluice::worker::F_MAX_FIELDS;
constexpr size_t STRIDE = sluice::worker::F_STRIDE;
constexpr size_t TIME_LEN = sluice::worker::F_TIME_LEN;  // YYYY-MM-DDTHH:MM:SS.nnnnnnnnn
static_assert(STRIDE == 1 + 2 * MAX_VALUES, "a field's words: its count, then (offset, length) per value");


inline uint64_t load64(const uint8_t* p) {
  uint64_t w;
  std::memcpy(&w, p, 8);
  return w;
}

// Whether every byte of w is an ASCII digit (SWAR: b - '0' and b + 0x46 both keep the high bit
// clear only for '0'..'9'; a borrow or carry reaches a higher byte only from a byte that failed).
inline bool allDigits(uint64_t w) {
  constexpr uint64_t ONES = 0x0101010101010101ull;
  return (((w - ONES * '0') | (w + ONES * 0x46)) & (ONES * 0x80)) == 0;
}

// Whether a[0, n) and b[0, n) are equal: whole words, the last one overlapping (no libc call for
// the short keys and values compared here).
inline bool sameBytes(const uint8_t* a, const uint8_t* b, size_t n) {
  if (n >= 8) {
    size_t i = 0;
    for (; i + 8 < n; i += 8)
      if (load64(a + i) != load64(b + i)) return false;
    return load64(a + n - 8) == load64(b + n - 8);
  }
  if (n >= 4) {
    uint32_t x, y, u, v;
    std::memcpy(&x, a, 4);
    std::memcpy(&y, b, 4);
    std::memcpy(&u, a + n - 4, 4);
    std::memcpy(&v, b + n - 4, 4);
    return x == y && u == v;
  }
  for (size_t i = 0; i < n; i++)
    if (a[i] != b[i]) return false;
  return true;
}

inline uint32_t fnv1a(const uint8_t* p, size_t n) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
  return h;
}

// The distinct values of one field in this batch: offsets into the NDJSON, a hash to compare first.
struct ValueSet {
  uint32_t count = 0;
  uint32_t last = 0;  // the value seen last: most lines repeat their neighbour's
  bool many = false;
  uint32_t hash[MAX_VALUES];
  uint32_t off[MAX_VALUES];
  uint32_t len[MAX_VALUES];

  void add(const uint8_t* base, uint32_t o, uint32_t n) {
    if (many) return;
    const uint8_t* v = base + o;
    if (count != 0 && len[last] == n && sameBytes(base + off[last], v, n)) return;
    if (count <= LINEAR) {
      // A few values (services, levels, hosts of a batch): compared directly, lengths first,
      // cheaper than hashing the value (callgrind: the hash was most of a miss on `last`).
      for (uint32_t i = 0; i < count; i++) {
        if (len[i] == n && sameBytes(base + off[i], v, n)) {
          last = i;
          return;
        }
      }
      if (count == LINEAR) {
        for (uint32_t i = 0; i < count; i++) hash[i] = fnv1a(base + off[i], len[i]);
      }
    } else {
      const uint32_t h = fnv1a(v, n);
      for (uint32_t i = 0; i < count; i++) {
        if (hash[i] == h && len[i] == n && sameBytes(base + off[i], v, n)) {
          last = i;
          return;
        }
      }
    }
    if (count == MAX_VALUES) {
      many = true;
      return;
    }
    if (count >= LINEAR) hash[count] = fnv1a(v, n);
    off[count] = o;
    len[count] = n;
    last = count++;
  }

  // Up to this many values are looked up by a plain scan; past it by hash, then bytes.
  static constexpr uint32_t LINEAR = 16;
};

struct Key {
  const uint8_t* name;
  uint32_t len;
  int slot;  // a field's index, or one of the K_* below
};

constexpr int K_TALOS_TIME = -1;
constexpr int K_TIME = -2;
constexpr int K_EVENT = -3;

inline bool isDigit(uint8_t c) { return c >= '0' && c <= '9'; }

// Two digits at p as a number.
inline int num2(const uint8_t* p) { return (p[0] - '0') * 10 + (p[1] - '0'); }

inline bool inRange(int m, int d, int h, int min, int s) {
  return m >= 1 && m <= 12 && d >= 1 && d <= 31 && h <= 23 && min <= 59 && s <= 59;
}

inline bool zFraction(const uint8_t* a, const uint8_t* b, uint8_t* out);

// record-time.ts zCanonical: a plain `YYYY-MM-DDTHH:MM:SS[.digits]Z` in [a, b) into out (29 bytes).
inline bool zCanonical(const uint8_t* a, const uint8_t* b, uint8_t* out) {
  const size_t n = static_cast<size_t>(b - a);
  if (n < 20 || b[-1] != 'Z') return false;
  // "YYYY-MM-" and "DDTHH:MM" as words: the separators checked, then swapped for '0' so one
  // digit test covers the rest; ":SS" by hand.
  constexpr uint64_t SEP0 = 0xff0000ff00000000ull;  // bytes 4 ('-') and 7 ('-')
  constexpr uint64_t SEP1 = 0x0000ff0000ff0000ull;  // bytes 2 ('T') and 5 (':')
  const uint64_t w0 = load64(a);
  const uint64_t w1 = load64(a + 8);
  constexpr uint64_t WANT0 = (uint64_t{'-'} << 56) | (uint64_t{'-'} << 32);
  constexpr uint64_t WANT1 = (uint64_t{':'} << 40) | (uint64_t{'T'} << 16);
  if ((w0 & SEP0) != WANT0 || (w1 & SEP1) != WANT1) return false;
  constexpr uint64_t ZEROS = 0x3030303030303030ull;
  if (!allDigits((w0 & ~SEP0) | (ZEROS & SEP0)) || !allDigits((w1 & ~SEP1) | (ZEROS & SEP1))) return false;
  if (a[16] != ':' || !isDigit(a[17]) || !isDigit(a[18])) return false;
  if (!inRange(num2(a + 5), num2(a + 8), num2(a + 11), num2(a + 14), num2(a + 17))) return false;
  std::memcpy(out, a, 19);
  return zFraction(a, b, out);
}

// What follows the seconds of a plain Z time a[0, b) (at least 20 bytes): `Z`, or `.digits` and
// `Z`, into out[19, 29) as a 9-digit fraction.
inline bool zFraction(const uint8_t* a, const uint8_t* b, uint8_t* out) {
  const size_t n = static_cast<size_t>(b - a);
  if (b[-1] != 'Z') return false;
  out[19] = '.';
  std::memcpy(out + 20, "000000000", 9);
  if (n == 20) return true;
  if (a[19] != '.' || n < 22) return false;
  const uint8_t* d = a + 20;
  const uint8_t* de = b - 1;
  const uint8_t* q = d;
  for (; de - q >= 8; q += 8)
    if (!allDigits(load64(q))) return false;
  for (; q < de; q++)
    if (!isDigit(*q)) return false;
  const size_t digits = static_cast<size_t>(de - d);
  if (digits >= 9) {
    std::memcpy(out + 20, d, 9);
  } else {
    for (size_t i = 0; i < digits; i++) out[20 + i] = d[i];
  }
  return true;
}

// Days since 1970-01-01 to a civil date (proleptic Gregorian; H. Hinnant's algorithm).
inline void civilFromDays(int64_t z, int64_t& y, unsigned& m, unsigned& d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  y = static_cast<int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  if (m <= 2) y++;
}

inline void put(uint8_t* o, unsigned v, int digits) {
  for (int i = digits - 1; i >= 0; i--) {
    o[i] = static_cast<uint8_t>('0' + v % 10);
    v /= 10;
  }
}

// record-time.ts canonicalFromEpochSeconds for the number n (JSON.parse's or Number()'s of the
// same decimal text: strtod rounds as both do). False outside years 0-9999 or not finite.
inline bool canonicalFromEpoch(double n, uint8_t* out) {
  if (!std::isfinite(n)) return false;
  const double secs = std::floor(n);
  const double x = (n - secs) * 1e9;
  double r = std::floor(x);  // Math.round for x >= 0
  if (x - r >= 0.5) r += 1;
  const double nanos = r < 999999999.0 ? r : 999999999.0;
  const double ms = secs * 1000;
  if (!(ms >= -62167219200000.0 && ms < 253402300800000.0)) return false;
  const int64_t s = static_cast<int64_t>(secs);
  int64_t days = s / 86400;
  int64_t rem = s % 86400;
  if (rem < 0) {
    rem += 86400;
    days--;
  }
  int64_t y;
  unsigned m, d;
  civilFromDays(days, y, m, d);
  put(out, static_cast<unsigned>(y), 4);
  out[4] = '-';
  put(out + 5, m, 2);
  out[7] = '-';
  put(out + 8, d, 2);
  out[10] = 'T';
  put(out + 11, static_cast<unsigned>(rem / 3600), 2);
  out[13] = ':';
  put(out + 14, static_cast<unsigned>(rem / 60 % 60), 2);
  out[16] = ':';
  put(out + 17, static_cast<unsigned>(rem % 60), 2);
  out[19] = '.';
  put(out + 20, static_cast<unsigned>(nanos), 9);
  return true;
}

enum TimeResult { T_NONE = 0, T_OK, T_UNCERTAIN };

// HEC's `time` value [vs, ve) (raw JSON, first byte `first`): a number, or a string of digits
// with an optional fraction (`^\d+(\.\d+)?$`); anything else has no time.
inline TimeResult epochTime(const uint8_t* vs, const uint8_t* ve, uint8_t first, bool esc, uint8_t* out) {
  char buf[64];
  const uint8_t* a = vs;
  const uint8_t* b = ve;
  if (first == '"') {
    if (esc) return T_UNCERTAIN;
    a = vs + 1;
    b = ve - 1;
    const uint8_t* p = a;
    while (p < b && isDigit(*p)) p++;
    if (p == a) return T_NONE;
    if (p < b) {
      if (*p != '.') return T_NONE;
      const uint8_t* f = ++p;
      while (p < b && isDigit(*p)) p++;
      if (p == f || p != b) return T_NONE;
    }
  } else if (first != '-' && !isDigit(first)) {
    return T_NONE;  // true, false, null, an object or array: not a number
  }
  const size_t n = static_cast<size_t>(b - a);
  if (n >= sizeof buf) return T_UNCERTAIN;
  std::memcpy(buf, a, n);
  buf[n] = '\0';
  char* end = nullptr;
  const double v = std::strtod(buf, &end);
  if (end != buf + n) return T_UNCERTAIN;
  return canonicalFromEpoch(v, out) ? T_OK : T_NONE;
}


constexpr int NONE = -100;  // not a key of interest
constexpr int MAX_CAPTURES = 16;

// A value of a key of interest at a line's top level, as the scan met it (pointers into the batch).
struct Capture {
  int slot;
  uint8_t first;  // the value's first byte: '"', '{', '[', or a scalar's
  bool esc;       // a string holding a backslash
  const uint8_t* vs;
  const uint8_t* ve;
};

// What the scan of one line met: filled by scanRecord<true>.
struct LineCaptures {
  Capture c[MAX_CAPTURES];
  int n = 0;
  bool overflow = false;
  int pending = NONE;  // the slot of the key just read, until its value is met

  void clear() {
    n = 0;
    overflow = false;
    pending = NONE;
  }
  void add(uint8_t first, bool esc, const uint8_t* vs, const uint8_t* ve) {
    if (n == MAX_CAPTURES) overflow = true;
    else c[n++] = Capture{pending, first, esc, vs, ve};
    pending = NONE;
  }
};

class Batch {
 public:
  // Reads the packed fields (u32 LE count, then per field u32 LE length and its name as JSON
  // writes it, quotes included) and the state kept in JS's buffers. False: malformed arguments.
  bool load(const uint8_t* fp, size_t fLen, uint32_t* facts, size_t factsLen, uint8_t* times, size_t timesLen,
            const uint8_t* out, const double* st) {
    if (fLen < 4) return false;
    nFields = u32le(fp);
    if (nFields > MAX_FIELDS) return false;
    size_t o = 4;
    for (uint32_t i = 0; i < nFields; i++) {
      if (fLen - o < 4 || u32le(fp + o) > fLen - o - 4) return false;
      keys[i] = Key{fp + o + 4, u32le(fp + o), static_cast<int>(i)};
      o += 4 + keys[i].len;
    }
    static const uint8_t TT[] = "\"talos-time\"";
    static const uint8_t TM[] = "\"time\"";
    static const uint8_t EV[] = "\"event\"";
    keys[nFields] = Key{TT, 12, K_TALOS_TIME};
    keys[nFields + 1] = Key{TM, 6, K_TIME};
    keys[nFields + 2] = Key{EV, 7, K_EVENT};
    nKeys = nFields + 3;
    std::memset(byLen, -1, sizeof byLen);
    for (uint32_t i = 0; i < nKeys; i++) {
      const Key& key = keys[i];
      if (key.len >= 64) continue;
      int8_t* c = byLen[key.len];
      if (c[0] < 0) c[0] = static_cast<int8_t>(i);
      else if (c[1] < 0 && c[0] != MANY_OF_LEN) c[1] = static_cast<int8_t>(i);
      else c[0] = MANY_OF_LEN;
    }
    if (factsLen < nFields * STRIDE || timesLen < 2 * TIME_LEN) return false;
    spans = facts;
    lines = facts + nFields * STRIDE;
    lineCap = (factsLen - nFields * STRIDE) / 2;
    this->times = times;
    // Resume: the sets from their spans (the output may have moved: hashes again from its bytes).
    using namespace sluice::worker;
    records = st[S_F_RECORDS];
    untimed = st[S_F_UNTIMED];
    uncertain = static_cast<size_t>(st[S_F_UNCERTAIN]);
    overflow = st[S_F_OVERFLOW] == 1;
    hasTime = st[S_F_HAS_TIME] == 1;
    if (uncertain > lineCap) return false;
    for (uint32_t i = 0; i < nFields; i++) {
      const uint32_t* w = spans + i * STRIDE;
      ValueSet& v = sets[i];
      v.count = 0;
      v.last = 0;
      v.many = w[0] == MANY;
      if (v.many) continue;
      if (w[0] > MAX_VALUES) return false;
      for (uint32_t k = 0; k < w[0]; k++) {
        v.off[k] = w[1 + 2 * k];
        v.len[k] = w[2 + 2 * k];
        v.hash[k] = fnv1a(out + v.off[k], v.len[k]);
      }
      v.count = w[0];
    }
    if (hasTime) {
      std::memcpy(minT, times, TIME_LEN);
      std::memcpy(maxT, times + TIME_LEN, TIME_LEN);
    }
    return true;
  }

  // Back into JS's buffers.
  void save(double* st) const {
    using namespace sluice::worker;
    st[S_F_RECORDS] = records;
    st[S_F_UNTIMED] = untimed;
    st[S_F_UNCERTAIN] = static_cast<double>(uncertain);
    st[S_F_OVERFLOW] = overflow ? 1 : 0;
    st[S_F_HAS_TIME] = hasTime ? 1 : 0;
    for (uint32_t i = 0; i < nFields; i++) {
      uint32_t* w = spans + i * STRIDE;
      const ValueSet& v = sets[i];
      w[0] = v.many ? MANY : v.count;
      if (v.many) continue;
      for (uint32_t k = 0; k < v.count; k++) {
        w[1 + 2 * k] = v.off[k];
        w[2 + 2 * k] = v.len[k];
      }
    }
    if (hasTime) {
      std::memcpy(times, minT, TIME_LEN);
      std::memcpy(times + TIME_LEN, maxT, TIME_LEN);
    }
  }

  // The slot of the key src[k, k + n) (quotes included), or NONE: one table look-up for most
  // keys; per length at most two candidates, compared without a libc call.
  __attribute__((always_inline)) inline int find(const uint8_t* k, size_t n) const {
    if (n >= 64) return findSlow(k, n);
    const int8_t c0 = byLen[n][0];
    if (c0 < 0) return NONE;
    if (c0 == MANY_OF_LEN) return findSlow(k, n);
    if (sameBytes(keys[c0].name, k, n)) return keys[c0].slot;
    const int8_t c1 = byLen[n][1];
    if (c1 >= 0 && sameBytes(keys[c1].name, k, n)) return keys[c1].slot;
    return NONE;
  }

  // The slot of the host key (JSON.stringify(hostKey) bytes) among the fields, or NONE (a field
  // never shares a name with talos-time, time or event: facts.ts keeps such lists in JS).
  int fieldOf(const uint8_t* k, size_t n) const {
    const int slot = findSlow(k, n);
    return slot >= 0 ? slot : NONE;
  }

  // An accepted line, its captures, its place in the output [lineOut, lineEnd) (lineEnd at its
  // '\n'); `lineSrc` is where its bytes start in the batch (copied to out + lineOut unmoved), the
  // host key's peer is at out[peerOff, peerOff + peerLen) when hostSlot is a field.
  void line(const LineCaptures& lc, const uint8_t* lineSrc, const uint8_t* out, size_t lineOut, size_t lineEnd, int hostSlot,
            size_t peerOff, size_t peerLen, bool peerPlain) {
    if (lc.overflow || (hostSlot != NONE && !peerPlain)) return uncertainLine(lineOut, lineEnd);
    const Capture* tt = nullptr;
    const Capture* tm = nullptr;
    int ttCount = 0, tmCount = 0;
    bool event = false;
    for (int i = 0; i < lc.n; i++) {
      const Capture& c = lc.c[i];
      if (c.slot >= 0) {
        if (c.first != '"' && c.first != '{' && c.first != '[') return uncertainLine(lineOut, lineEnd);
        if (c.first == '"' && c.esc) return uncertainLine(lineOut, lineEnd);
      } else if (c.slot == K_TALOS_TIME) {
        tt = &c;
        ttCount++;
      } else if (c.slot == K_TIME) {
        tm = &c;
        tmCount++;
      } else {
        event = true;
      }
    }
    uint8_t t[TIME_LEN];
    bool timed = false;
    if (ttCount == 1) {
      if (tt->first != '"' || tt->esc || !zTime(tt->vs + 1, tt->ve - 1, t)) return uncertainLine(lineOut, lineEnd);
      timed = true;
    } else if (ttCount > 1 || (event && tmCount > 1)) {
      return uncertainLine(lineOut, lineEnd);
    } else if (event && tmCount == 1) {
      const TimeResult r = epochTime(tm->vs, tm->ve, tm->first, tm->esc, t);
      if (r == T_UNCERTAIN) return uncertainLine(lineOut, lineEnd);
      timed = r == T_OK;
    }
    // Certain: count it, and add its values.
    records += 1;
    if (timed) time(t);
    else untimed += 1;
    for (int i = 0; i < lc.n; i++) {
      const Capture& c = lc.c[i];
      if (c.slot < 0 || c.first != '"') continue;
      const size_t o = lineOut + static_cast<size_t>(c.vs - lineSrc) + 1;
      sets[c.slot].add(out, static_cast<uint32_t>(o), static_cast<uint32_t>(c.ve - c.vs - 2));
    }
    if (hostSlot != NONE) sets[hostSlot].add(out, static_cast<uint32_t>(peerOff), static_cast<uint32_t>(peerLen));
  }

  // A line JS decides: [start, end) of the output.
  void uncertainLine(size_t start, size_t end) {
    if (overflow) return;
    if (uncertain == lineCap) {
      overflow = true;  // JS then gathers the whole batch its own way
      return;
    }
    lines[2 * uncertain] = static_cast<uint32_t>(start);
    lines[2 * uncertain + 1] = static_cast<uint32_t>(end);
    uncertain++;
  }

 private:
  Key keys[MAX_FIELDS + 3];
  uint32_t nKeys = 0;
  uint32_t nFields = 0;
  // Per length n < 64 (quotes included): the keys of interest that long (-1: none; MANY_OF_LEN: more than two).
  int8_t byLen[64][2];
  static constexpr int8_t MANY_OF_LEN = 127;
  ValueSet sets[MAX_FIELDS];
  uint32_t* spans = nullptr;
  uint32_t* lines = nullptr;
  size_t lineCap = 0;
  uint8_t* times = nullptr;
  double records = 0, untimed = 0;
  size_t uncertain = 0;
  bool overflow = false;
  bool hasTime = false;
  uint8_t minT[TIME_LEN];
  uint8_t maxT[TIME_LEN];
  // The last valid time's first 19 bytes (as words 0-7, 8-15, 11-18) and their canonical text.
  bool lastSecondOk = false;
  uint64_t lastSecond[3];
  uint8_t lastCanon[19];

  static inline uint32_t u32le(const uint8_t* p) {
    return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 |
           static_cast<uint32_t>(p[3]) << 24;
  }

  int findSlow(const uint8_t* k, size_t n) const {
    for (uint32_t i = 0; i < nKeys; i++)
      if (keys[i].len == n && std::memcmp(keys[i].name, k, n) == 0) return keys[i].slot;
    return NONE;
  }

  // zCanonical, with the date and time of day checked once for a run of records in the same
  // second: `YYYY-MM-DDTHH:MM:SS` as the last record's, only the fraction is left to check.
  bool zTime(const uint8_t* a, const uint8_t* b, uint8_t* out) {
    if (b - a >= 20 && lastSecondOk && load64(a) == lastSecond[0] && load64(a + 8) == lastSecond[1] && load64(a + 11) == lastSecond[2]) {
      std::memcpy(out, lastCanon, 19);
      return zFraction(a, b, out);
    }
    if (!zCanonical(a, b, out)) return false;
    lastSecond[0] = load64(a);
    lastSecond[1] = load64(a + 8);
    lastSecond[2] = load64(a + 11);
    std::memcpy(lastCanon, out, 19);
    lastSecondOk = true;
    return true;
  }

  // Canonical times compare as big-endian words (29 bytes: three words and an overlapping fourth).
  static int timeCmp(const uint8_t* a, const uint8_t* b) {
    for (size_t i : {size_t{0}, size_t{8}, size_t{16}, TIME_LEN - 8}) {
      const uint64_t x = __builtin_bswap64(load64(a + i));
      const uint64_t y = __builtin_bswap64(load64(b + i));
      if (x != y) return x < y ? -1 : 1;
    }
    return 0;
  }

  void time(const uint8_t* t) {
    if (!hasTime) {
      std::memcpy(minT, t, TIME_LEN);
      std::memcpy(maxT, t, TIME_LEN);
      hasTime = true;
      return;
    }
    if (timeCmp(t, minT) < 0) std::memcpy(minT, t, TIME_LEN);
    else if (timeCmp(t, maxT) > 0) std::memcpy(maxT, t, TIME_LEN);
  }
};

}  // namespace facts

#endif  // SLUICE_FACTS_H
