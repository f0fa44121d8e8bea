// One zstd compression context per worker thread, reused for every frame.
//
// node:zlib's zstdCompressSync builds a zlib stream object, a new ZSTD_CCtx (and its tables)
// and an output chunk list per call, then frees them: on bench/compress.bench.ts that
// wrapper is a measurable share of compressing a 256 KiB batch at level 1 (the figures are in
// packages/worker/src/codecs.ts). Here the context lives as long as the thread (N-API instance
// data, one per worker's env) and each frame is one ZSTD_compress2 into a scratch buffer that
// grows to the largest batch's bound, then one copy into an exactly sized ArrayBuffer that
// the worker can transfer to the main thread.
//
// libzstd is not linked: Node exports its bundled libzstd's symbols (ZSTD_*) for addons, and
// they resolve against the node binary at load time (`-z now` makes a missing one fail the
// load, which scripts/build-native.ts checks). The declarations below are the stable API of
// zstd.h (v1.5), whose parameter numbers are fixed by the zstd ABI.
//
// Exports:
//   zstdCompress(data: Uint8Array, level: number, checksum: boolean): ArrayBuffer
//     one whole frame with the content size in its header (and an XXH64 checksum when asked);
//     throws an Error naming zstd's error otherwise.
//   zstdVersion: number (ZSTD_versionNumber(), e.g. 10507)

#define NAPI_VERSION 8
#include <node_api.h>

#include <cstdlib>
#include <cstring>
#include <string>

extern "C" {
typedef struct ZSTD_CCtx_s ZSTD_CCtx;
ZSTD_CCtx* ZSTD_createCCtx(void);
size_t ZSTD_freeCCtx(ZSTD_CCtx* cctx);
size_t ZSTD_CCtx_setParameter(ZSTD_CCtx* cctx, int param, int value);
size_t ZSTD_CCtx_reset(ZSTD_CCtx* cctx, int reset);
size_t ZSTD_compress2(ZSTD_CCtx* cctx, void* dst, size_t dstCapacity, const void* src, size_t srcSize);
size_t ZSTD_compressBound(size_t srcSize);
unsigned ZSTD_isError(size_t code);
const char* ZSTD_getErrorName(size_t code);
unsigned ZSTD_versionNumber(void);
}

namespace {

// zstd.h: ZSTD_cParameter and ZSTD_ResetDirective values.
constexpr int ZSTD_c_compressionLevel = 100;
constexpr int ZSTD_c_contentSizeFlag = 200;
constexpr int ZSTD_c_checksumFlag = 201;
constexpr int ZSTD_reset_session_and_parameters = 3;

struct State {
  ZSTD_CCtx* cctx = nullptr;
  unsigned char* scratch = nullptr;
  size_t scratchBytes = 0;
  int level = 0;
  int checksum = -1;
};

void FreeState(napi_env, void* data, void*) {
  State* st = static_cast<State*>(data);
  if (st->cctx != nullptr) ZSTD_freeCCtx(st->cctx);
  std::free(st->scratch);
  delete st;
}

napi_value Throw(napi_env env, const std::string& msg) {
  napi_throw_error(env, nullptr, msg.c_str());
  return nullptr;
}

bool Check(napi_env env, size_t code, const char* what) {
  if (!ZSTD_isError(code)) return true;
  Throw(env, std::string("zstd ") + what + ": " + ZSTD_getErrorName(code));
  return false;
}

napi_value Compress(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 3) {
    return Throw(env, "zstdCompress(data, level, checksum): 3 arguments expected");
  }
  bool isTyped = false;
  napi_is_typedarray(env, argv[0], &isTyped);
  if (!isTyped) return Throw(env, "zstdCompress: data must be a Uint8Array");
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  napi_value arraybuffer;
  size_t byteOffset = 0;
  if (napi_get_typedarray_info(env, argv[0], &type, &length, &data, &arraybuffer, &byteOffset) != napi_ok || type != napi_uint8_array) {
    return Throw(env, "zstdCompress: data must be a Uint8Array");
  }
  int32_t level = 0;
  if (napi_get_value_int32(env, argv[1], &level) != napi_ok) return Throw(env, "zstdCompress: level must be a number");
  bool checksum = false;
  if (napi_get_value_bool(env, argv[2], &checksum) != napi_ok) return Throw(env, "zstdCompress: checksum must be a boolean");

  State* st = nullptr;
  if (napi_get_instance_data(env, reinterpret_cast<void**>(&st)) != napi_ok || st == nullptr) {
    return Throw(env, "zstdCompress: the addon was not initialised");
  }
  if (st->cctx == nullptr) {
    st->cctx = ZSTD_createCCtx();
    if (st->cctx == nullptr) return Throw(env, "zstd: out of memory creating a compression context");
  }
  // A failed frame may leave the context mid-frame: start every frame from a clean session,
  // and set the parameters again only when they change (they survive a session reset).
  if (!Check(env, ZSTD_CCtx_reset(st->cctx, st->level == level && st->checksum == (checksum ? 1 : 0) ? 1 : ZSTD_reset_session_and_parameters), "reset")) return nullptr;
  if (st->level != level || st->checksum != (checksum ? 1 : 0)) {
    st->level = 0;
    st->checksum = -1;
    if (!Check(env, ZSTD_CCtx_setParameter(st->cctx, ZSTD_c_compressionLevel, level), "level")) return nullptr;
    if (!Check(env, ZSTD_CCtx_setParameter(st->cctx, ZSTD_c_checksumFlag, checksum ? 1 : 0), "checksum flag")) return nullptr;
    if (!Check(env, ZSTD_CCtx_setParameter(st->cctx, ZSTD_c_contentSizeFlag, 1), "content size flag")) return nullptr;
    st->level = level;
    st->checksum = checksum ? 1 : 0;
  }
  size_t bound = ZSTD_compressBound(length);
  if (bound > st->scratchBytes) {
    unsigned char* grown = static_cast<unsigned char*>(std::realloc(st->scratch, bound));
    if (grown == nullptr) return Throw(env, "zstd: out of memory growing the output buffer");
    st->scratch = grown;
    st->scratchBytes = bound;
  }
  size_t written = ZSTD_compress2(st->cctx, st->scratch, st->scratchBytes, data, length);
  if (!Check(env, written, "compress")) return nullptr;
  void* outData = nullptr;
  napi_value out;
  if (napi_create_arraybuffer(env, written, &outData, &out) != napi_ok) return Throw(env, "zstdCompress: could not allocate the frame");
  std::memcpy(outData, st->scratch, written);
  return out;
}

napi_value Init(napi_env env, napi_value exports) {
  State* st = new State();
  if (napi_set_instance_data(env, st, FreeState, nullptr) != napi_ok) {
    delete st;
    return Throw(env, "zstd addon: could not set instance data");
  }
  napi_value fn;
  if (napi_create_function(env, "zstdCompress", NAPI_AUTO_LENGTH, Compress, nullptr, &fn) != napi_ok) return nullptr;
  napi_set_named_property(env, exports, "zstdCompress", fn);
  napi_value version;
  napi_create_uint32(env, ZSTD_versionNumber(), &version);
  napi_set_named_property(env, exports, "zstdVersion", version);
  return exports;
}

}  // namespace

NAPI_MODULE(zstd, Init)
