// udp_recv: the udp source's native receiver (Linux). It owns the source's UDP sockets,
// reads them with recvmmsg from a uv_poll readable callback on the main thread's loop, and
// writes each datagram as one record into the source's SharedArrayBuffer ring, in exactly the
// byte format of Ring.tryWrite(datagram, peerHead) (packages/ring/src/ring.ts, record-format.ts):
//
//   64-byte header (Int32 slots WRITE_INDEX, READ_INDEX, CAPACITY), then the data region
//   +--------------------+--------------------------------+---------------+
//   | u32 LE payload len | u8 peerLen | peer | datagram    | 0..3 zero pad |
//   +--------------------+--------------------------------+---------------+
//
// Why: node:dgram makes one native -> JS call per datagram, 5-8 us of main thread each on the
// 2-core bench machine: 100,000 datagrams/s paced lost 0.3-9 % and the full rate stored
// 63,000-86,000/s. Here the JS callback runs once per batch with the batch's counts: 0 % lost
// and 160,000-185,000/s stored (bench/e2e.bench.ts udp-paced,udp-full, README).
//
// Single producer: only this code writes the ring of a source while it runs (udp.ts never
// calls tryWrite on it), always on the loop's thread. The dispatcher releases space on the
// same thread, so nothing moves READ_INDEX while a wake-up is being processed.
//
// Built by scripts/build-native.ts (g++ against the headers of the Node that runs the repo);
// loaded by packages/sources/src/udp/native.ts. N-API version 8, no V8 API.

#define NAPI_VERSION 8
#include <node_api.h>
#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "generated-constants.h"

namespace {

// The ring's layout and record format (HEADER_BYTES, WRITE_INDEX, READ_INDEX, CAPACITY,
// RECORD_HEADER_BYTES, MAX_PEER_BYTES, ...): packages/ring/src/record-format.ts, through
// generated-constants.h (scripts/gen-native-constants.ts).
using namespace sluice::ring;

// Datagrams per recvmmsg call and per wake-up of one socket. 1024 bounds a wake-up at a few
// hundred microseconds, so timers, the dispatcher and the other sockets still get their turn.
constexpr unsigned BATCH = 64;
constexpr unsigned WAKEUP_BUDGET = 1024;
// After a wake-up that found datagrams but fewer than the budget, the socket is not polled
// for this long and is then read by a timer: the kernel queues what arrives meanwhile (1 ms at
// 100,000/s is ~100 datagrams, far below an 8 MiB receive buffer). Polled at once, an idle
// main thread wakes for every datagram: 1.4 datagrams per wake-up at 100,000/s paced, and
// each wake-up (epoll, recvmmsg, the JS call, two counter updates) cost the main thread ~3 us.
constexpr uint64_t COALESCE_MS = 1;
// Receive slots never need more than 64 KiB: a UDP payload is at most 65,527 bytes.
constexpr uint32_t MAX_SLOT_BYTES = 65536;

// ------------------------------------------------------------------ the ring (producer side)

struct Ring {
  int32_t* header;
  uint8_t* data;
  uint32_t capacity;
  uint32_t mask;
  uint32_t max_payload;
  uint32_t write;      // producer-local copy of WRITE_INDEX (only we move it)
  uint32_t read_seen;  // last READ_INDEX loaded
};

inline uint32_t load_index(const Ring& r, int slot) {
  return static_cast<uint32_t>(__atomic_load_n(&r.header[slot], __ATOMIC_SEQ_CST));
}

// Copy src[0, n) into the data region at p, wrapping; returns the next position.
inline uint32_t copy_in(Ring& r, const uint8_t* src, uint32_t n, uint32_t p) {
  if (n == 0) return p;
  const uint32_t first = r.capacity - p;
  if (n <= first) {
    memcpy(r.data + p, src, n);
    return (p + n) & r.mask;
  }
  memcpy(r.data + p, src, first);
  memcpy(r.data, src + first, n - first);
  return n - first;
}

// Ring.tryWriteRange for head ++ body, except that the new WRITE_INDEX is published by
// publish() (after every record of a recvmmsg batch is in place). The caller has checked
// head_len + body_len <= max_payload.
inline bool ring_write(Ring& r, const uint8_t* head, uint32_t head_len, const uint8_t* body, uint32_t body_len) {
  const uint32_t payload = head_len + body_len;
  const uint32_t span = RECORD_HEADER_BYTES + ((payload + 3) & ~3u);
  if (span > r.capacity - (r.write - r.read_seen)) {
    r.read_seen = load_index(r, READ_INDEX);
    if (span > r.capacity - (r.write - r.read_seen)) return false;
  }
  const uint32_t pos = r.write & r.mask;  // a multiple of 4: the length never straddles the end
  uint8_t* len = r.data + pos;
  len[0] = static_cast<uint8_t>(payload);
  len[1] = static_cast<uint8_t>(payload >> 8);
  len[2] = static_cast<uint8_t>(payload >> 16);
  len[3] = static_cast<uint8_t>(payload >> 24);
  uint32_t p = (pos + RECORD_HEADER_BYTES) & r.mask;
  p = copy_in(r, head, head_len, p);
  p = copy_in(r, body, body_len, p);
  // Zero padding, so a consumer never sees an older record's bytes (never wraps: 4-aligned).
  while ((p & 3) != 0) r.data[p++] = 0;
  r.write += span;
  return true;
}

inline void publish(Ring& r) {
  __atomic_store_n(&r.header[WRITE_INDEX], static_cast<int32_t>(r.write), __ATOMIC_SEQ_CST);
}

// ------------------------------------------------------------------ receiver

struct Receiver;

// One socket: read on readability (poll) while it is quiet, on a 1 ms timer while datagrams
// keep coming (see COALESCE_MS), and on readability again once a read hits the budget.
struct Socket {
  uv_poll_t poll;
  uv_timer_t timer;
  int fd;
  bool polling;
  int open_handles;  // freed when both handles are closed
  Receiver* owner;
};

struct Counts {
  double received;
  double bytes;
  double written;
  double ring_full;
  double oversize;
};

struct Receiver {
  napi_env env;
  napi_ref sab_ref;       // the ring's SharedArrayBuffer stays alive while we may write into it
  napi_ref callback_ref;  // onBatch(received, bytes, written, ringFull, oversize, errno)
  napi_async_context async_context;
  Ring ring;
  bool with_peer;
  bool closed;
  std::vector<Socket*> sockets;
  // recvmmsg vectors and their slots (lazily touched: a 250-byte datagram dirties one page).
  uint32_t slot_bytes;
  uint8_t* slots;
  mmsghdr msgs[BATCH];
  iovec iovs[BATCH];
  sockaddr_storage names[BATCH];
  // The peer head of the last sender: a Talos node sends many datagrams in a row, so this
  // skips inet_ntop for nearly every datagram.
  sockaddr_storage last_peer;
  bool have_last_peer;
  uint8_t head[1 + MAX_PEER_BYTES];
  uint32_t head_len;
};

bool same_peer(const sockaddr_storage& a, const sockaddr_storage& b) {
  if (a.ss_family != b.ss_family) return false;
  if (a.ss_family == AF_INET) {
    return reinterpret_cast<const sockaddr_in&>(a).sin_addr.s_addr == reinterpret_cast<const sockaddr_in&>(b).sin_addr.s_addr;
  }
  if (a.ss_family == AF_INET6) {
    const auto& x = reinterpret_cast<const sockaddr_in6&>(a);
    const auto& y = reinterpret_cast<const sockaddr_in6&>(b);
    return x.sin6_scope_id == y.sin6_scope_id && memcmp(&x.sin6_addr, &y.sin6_addr, sizeof x.sin6_addr) == 0;
  }
  return false;
}

// The peer address as Node's dgram reports it (uv_inet_ntop, `%scope` on a link-local IPv6
// address), then normalizePeer (`::ffff:1.2.3.4` -> `1.2.3.4`), then peerHead (the ring's
// record-format.ts): u8 length
// (at most MAX_PEER_BYTES, so the length byte stays below 0x80, the worker's block flag)
// and the ASCII bytes (& 0x7f).
void format_head(Receiver* r, const sockaddr_storage& peer, socklen_t len) {
  char ip[INET6_ADDRSTRLEN + UV_IF_NAMESIZE];
  const char* text = ip;
  ip[0] = 0;
  if (len >= sizeof(sockaddr_in) && peer.ss_family == AF_INET) {
    if (uv_inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(peer).sin_addr, ip, sizeof ip) != 0) ip[0] = 0;
  } else if (len >= sizeof(sockaddr_in6) && peer.ss_family == AF_INET6) {
    const auto& a6 = reinterpret_cast<const sockaddr_in6&>(peer);
    if (uv_inet_ntop(AF_INET6, &a6.sin6_addr, ip, sizeof ip) != 0) ip[0] = 0;
    if (IN6_IS_ADDR_LINKLOCAL(&a6.sin6_addr) && a6.sin6_scope_id > 0) {
      const size_t n = strlen(ip);
      size_t room = sizeof ip - n - 1;
      ip[n] = '%';
      if (uv_if_indextoiid(a6.sin6_scope_id, ip + n + 1, &room) != 0) ip[n] = 0;
    }
    if (strncmp(ip, "::ffff:", 7) == 0 && strchr(ip, '.') != nullptr) text = ip + 7;
  }
  if (text[0] == 0) text = "unknown";  // normalizePeer(undefined)
  size_t n = strlen(text);
  if (n > MAX_PEER_BYTES) n = MAX_PEER_BYTES;
  r->head[0] = static_cast<uint8_t>(n);
  for (size_t i = 0; i < n; i++) r->head[1 + i] = static_cast<uint8_t>(text[i]) & 0x7f;
  r->head_len = static_cast<uint32_t>(1 + n);
}

void call_js(Receiver* r, const Counts& c, int err) {
  napi_env env = r->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, global, argv[6], result;
  napi_get_reference_value(env, r->callback_ref, &cb);
  napi_get_global(env, &global);
  napi_create_double(env, c.received, &argv[0]);
  napi_create_double(env, c.bytes, &argv[1]);
  napi_create_double(env, c.written, &argv[2]);
  napi_create_double(env, c.ring_full, &argv[3]);
  napi_create_double(env, c.oversize, &argv[4]);
  napi_create_int32(env, err, &argv[5]);
  // make_callback, not call_function: it runs the nextTick and microtask queues afterwards, as
  // Node does after its own socket callbacks.
  if (napi_make_callback(env, r->async_context, global, cb, 6, argv, &result) == napi_pending_exception) {
    napi_value exception;
    napi_get_and_clear_last_exception(env, &exception);
    napi_fatal_exception(env, exception);  // -> process 'uncaughtException', as from any callback
  }
  napi_close_handle_scope(env, scope);
}

void on_readable(uv_poll_t* handle, int status, int events);
void on_timer(uv_timer_t* handle);

// Read up to WAKEUP_BUDGET datagrams of one socket into the ring, tell JS the counts, then
// choose how the socket is read next.
void read_socket(Socket* s, int status) {
  Receiver* r = s->owner;
  if (r->closed) return;
  Counts c = {0, 0, 0, 0, 0};
  int err = status < 0 ? status : 0;
  Ring& ring = r->ring;
  unsigned budget = status < 0 ? 0 : WAKEUP_BUDGET;
  while (budget > 0) {
    const unsigned want = budget < BATCH ? budget : BATCH;
    for (unsigned i = 0; i < want; i++) r->msgs[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
    // MSG_TRUNC in flags: msg_len is the datagram's real length even when it did not fit.
    const int n = recvmmsg(s->fd, r->msgs, want, MSG_DONTWAIT | MSG_TRUNC, nullptr);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) err = -errno;
      break;
    }
    const double written_before = c.written;
    for (int i = 0; i < n; i++) {
      const mmsghdr& m = r->msgs[i];
      const uint32_t len = m.msg_len;
      c.received++;
      c.bytes += len;
      if (r->with_peer && !(r->have_last_peer && same_peer(r->names[i], r->last_peer))) {
        format_head(r, r->names[i], m.msg_hdr.msg_namelen);
        memcpy(&r->last_peer, &r->names[i], sizeof(sockaddr_storage));
        r->have_last_peer = true;
      }
      if ((m.msg_hdr.msg_flags & MSG_TRUNC) != 0 || static_cast<uint64_t>(len) + r->head_len > ring.max_payload) {
        c.oversize++;
      } else if (ring_write(ring, r->head, r->head_len, static_cast<const uint8_t*>(m.msg_hdr.msg_iov->iov_base), len)) {
        c.written++;
      } else {
        c.ring_full++;
      }
    }
    if (c.written != written_before) publish(ring);
    budget -= static_cast<unsigned>(n);
    if (static_cast<unsigned>(n) < want) break;  // the socket is empty: skip the EAGAIN call
  }
  if (c.received != 0 || err != 0) call_js(r, c, err);
  if (r->closed) return;  // the JS callback may have closed the receiver
  if (status < 0) {
    // libuv could not poll the fd (EBADF...): stop, or level-triggered polling would spin.
    // A recvmmsg error is reported and reading goes on, as libuv does for dgram sockets.
    uv_poll_stop(&s->poll);
    s->polling = false;
    return;
  }
  const bool busy = c.received != 0 && c.received < WAKEUP_BUDGET;
  if (busy) {
    if (s->polling) uv_poll_stop(&s->poll);
    s->polling = false;
    uv_timer_start(&s->timer, on_timer, COALESCE_MS, 0);
  } else if (!s->polling) {
    // Quiet (nothing read: wait for the next datagram) or flooded (the budget was hit: read
    // again on the next loop turn).
    uv_poll_start(&s->poll, UV_READABLE, on_readable);
    s->polling = true;
  }
}

void on_readable(uv_poll_t* handle, int status, int /*events*/) {
  read_socket(static_cast<Socket*>(handle->data), status);
}

void on_timer(uv_timer_t* handle) {
  read_socket(static_cast<Socket*>(handle->data), 0);
}

void on_handle_closed(uv_handle_t* handle) {
  Socket* s = static_cast<Socket*>(handle->data);
  if (--s->open_handles == 0) delete s;
}

// Stop polling and close every socket. Synchronous for the fds (a port is free again when
// close() returns); the poll and timer handles are freed by libuv's close callbacks.
void close_receiver(Receiver* r, bool release_refs) {
  if (r->closed) return;
  r->closed = true;
  for (Socket* s : r->sockets) {
    // uv_close removes the fd from epoll before we close it (uv__platform_invalidate_fd).
    uv_close(reinterpret_cast<uv_handle_t*>(&s->poll), on_handle_closed);
    uv_close(reinterpret_cast<uv_handle_t*>(&s->timer), on_handle_closed);
    ::close(s->fd);
    s->fd = -1;
  }
  r->sockets.clear();
  if (release_refs) {
    napi_delete_reference(r->env, r->sab_ref);
    napi_delete_reference(r->env, r->callback_ref);
    napi_async_destroy(r->env, r->async_context);
  }
  r->sab_ref = nullptr;
  r->callback_ref = nullptr;
  r->async_context = nullptr;
}

void on_env_cleanup(void* arg) {
  close_receiver(static_cast<Receiver*>(arg), false);
}

void finalize_receiver(napi_env env, void* data, void* /*hint*/) {
  Receiver* r = static_cast<Receiver*>(data);
  if (!r->closed) {
    napi_remove_env_cleanup_hook(env, on_env_cleanup, r);
    close_receiver(r, true);
  }
  free(r->slots);
  delete r;
}

// ------------------------------------------------------------------ JS glue

napi_value throw_error(napi_env env, const char* code, const std::string& message) {
  napi_throw_error(env, code, message.c_str());
  return nullptr;
}

// An Error shaped like Node's socket errors: `bind EADDRINUSE 0.0.0.0:6050`, with code,
// errno and syscall.
napi_value throw_errno(napi_env env, int errnum, const char* syscall, const std::string& where) {
  const char* name = uv_err_name(-errnum);
  std::string message = std::string(syscall) + " " + name + (where.empty() ? "" : " " + where);
  napi_value msg, code, error, value;
  napi_create_string_utf8(env, message.c_str(), NAPI_AUTO_LENGTH, &msg);
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_create_error(env, code, msg, &error);
  napi_create_int32(env, -errnum, &value);
  napi_set_named_property(env, error, "errno", value);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &value);
  napi_set_named_property(env, error, "syscall", value);
  napi_throw(env, error);
  return nullptr;
}

bool get_string(napi_env env, napi_value v, std::string* out) {
  char buf[256];
  size_t n;
  if (napi_get_value_string_utf8(env, v, buf, sizeof buf, &n) != napi_ok) return false;
  out->assign(buf, n);
  return true;
}

bool get_u32(napi_env env, napi_value v, uint32_t* out) {
  return napi_get_value_uint32(env, v, out) == napi_ok;
}

void close_fds(std::vector<int>& fds) {
  for (int fd : fds) ::close(fd);
  fds.clear();
}

// new UdpReceiver(host, port, sockets, receiveBufferBytes, ringBytes: Uint8Array over the
// ring's whole SharedArrayBuffer, withPeer, onBatch)
// Own properties set: port (bound, port 0 resolved), receiveBufferBytes (SO_RCVBUF as the
// kernel reports it, like dgram's getRecvBufferSize), sockets (how many were bound).
napi_value construct(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7], self;
  napi_get_cb_info(env, info, &argc, argv, &self, nullptr);
  if (argc != 7) return throw_error(env, "ERR_INVALID_ARG_COUNT", "UdpReceiver: expected 7 arguments");

  std::string host;
  uint32_t port, count, rcvbuf;
  bool with_peer;
  napi_valuetype cb_type;
  if (!get_string(env, argv[0], &host) || !get_u32(env, argv[1], &port) || port > 65535 || !get_u32(env, argv[2], &count) ||
      count < 1 || count > 64 || !get_u32(env, argv[3], &rcvbuf) || napi_get_value_bool(env, argv[5], &with_peer) != napi_ok ||
      napi_typeof(env, argv[6], &cb_type) != napi_ok || cb_type != napi_function) {
    return throw_error(env, "ERR_INVALID_ARG_TYPE", "UdpReceiver: bad arguments");
  }

  // The ring: napi_get_typedarray_info works on a view of a SharedArrayBuffer (the data
  // pointer is the backing store's, which V8 never moves).
  bool is_typed;
  napi_typedarray_type ta_type;
  size_t ta_length, ta_offset;
  void* ta_data;
  napi_value sab;
  if (napi_is_typedarray(env, argv[4], &is_typed) != napi_ok || !is_typed ||
      napi_get_typedarray_info(env, argv[4], &ta_type, &ta_length, &ta_data, &sab, &ta_offset) != napi_ok ||
      ta_type != napi_uint8_array || ta_offset != 0 || ta_data == nullptr || ta_length < HEADER_BYTES + 16) {
    return throw_error(env, "ERR_INVALID_ARG_TYPE", "UdpReceiver: expected a Uint8Array over a whole ring SharedArrayBuffer");
  }
  int32_t* header = static_cast<int32_t*>(ta_data);
  const uint32_t capacity = static_cast<uint32_t>(__atomic_load_n(&header[CAPACITY], __ATOMIC_SEQ_CST));
  if (capacity < 16 || (capacity & (capacity - 1)) != 0 || ta_length != HEADER_BYTES + static_cast<size_t>(capacity)) {
    return throw_error(env, "ERR_INVALID_ARG_VALUE", "UdpReceiver: the buffer is not a ring made by Ring.create");
  }

  // The address: a literal (udp.ts resolves host names first).
  sockaddr_storage addr;
  memset(&addr, 0, sizeof addr);
  socklen_t addr_len;
  int family;
  if (inet_pton(AF_INET, host.c_str(), &reinterpret_cast<sockaddr_in&>(addr).sin_addr) == 1) {
    family = AF_INET;
    addr_len = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, host.c_str(), &reinterpret_cast<sockaddr_in6&>(addr).sin6_addr) == 1) {
    family = AF_INET6;
    addr_len = sizeof(sockaddr_in6);
  } else {
    return throw_error(env, "ERR_INVALID_ARG_VALUE", "UdpReceiver: not an IP address: " + host);
  }
  addr.ss_family = static_cast<sa_family_t>(family);
  const std::string where = (family == AF_INET6 ? "[" + host + "]" : host) + ":";

  // Bind every socket before anything is polled: a failure leaves nothing open.
  std::vector<int> fds;
  const bool reuse_port = count > 1;
  uint32_t bound_port = port;
  int granted = 0;
  for (uint32_t i = 0; i < count; i++) {
    const int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      const int e = errno;
      close_fds(fds);
      return throw_errno(env, e, "socket", "");
    }
    fds.push_back(fd);
    const int off = 0, on = 1;
    const int size = static_cast<int>(rcvbuf);
    // `::` takes IPv4 peers too (as dgram's udp6 does where net.ipv6.bindv6only is 0).
    if (family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off) != 0) {
      const int e = errno;
      close_fds(fds);
      return throw_errno(env, e, "setsockopt", "IPV6_V6ONLY");
    }
    if (reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0) {
      const int e = errno;
      close_fds(fds);
      return throw_errno(env, e, "setsockopt", "SO_REUSEPORT");
    }
    // SO_RCVBUFFORCE first: with CAP_NET_ADMIN (root, or the capability granted) the size asked
    // for is set past net.core.rmem_max, so a DaemonSet need not change the node's sysctls; without
    // it (EPERM) SO_RCVBUF, capped at rmem_max, and the caller warns when it got less.
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) != 0 &&
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size) != 0) {
      const int e = errno;
      close_fds(fds);
      return throw_errno(env, e, "setsockopt", "SO_RCVBUF");
    }
    if (family == AF_INET) reinterpret_cast<sockaddr_in&>(addr).sin_port = htons(static_cast<uint16_t>(bound_port));
    else reinterpret_cast<sockaddr_in6&>(addr).sin6_port = htons(static_cast<uint16_t>(bound_port));
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), addr_len) != 0) {
      const int e = errno;
      close_fds(fds);
      return throw_errno(env, e, "bind", where + std::to_string(bound_port));
    }
    if (i == 0) {
      sockaddr_storage local;
      socklen_t local_len = sizeof local;
      socklen_t int_len = sizeof granted;
      if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) != 0 ||
          getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &granted, &int_len) != 0) {
        const int e = errno;
        close_fds(fds);
        return throw_errno(env, e, "getsockname", "");
      }
      bound_port = ntohs(family == AF_INET ? reinterpret_cast<sockaddr_in&>(local).sin_port : reinterpret_cast<sockaddr_in6&>(local).sin6_port);
    }
  }

  Receiver* r = new Receiver();
  r->env = env;
  r->with_peer = with_peer;
  r->closed = false;
  r->have_last_peer = false;
  r->head[0] = 0;  // peerHead(null): the single byte 0
  r->head_len = 1;
  r->ring.header = header;
  r->ring.data = static_cast<uint8_t*>(ta_data) + HEADER_BYTES;
  r->ring.capacity = capacity;
  r->ring.mask = capacity - 1;
  r->ring.max_payload = capacity - RECORD_HEADER_BYTES;
  r->ring.write = load_index(r->ring, WRITE_INDEX);
  r->ring.read_seen = load_index(r->ring, READ_INDEX);
  // A datagram longer than max_payload is oversize whatever its head, so a slot needs no more:
  // the kernel truncates it (MSG_TRUNC) and still reports its length.
  r->slot_bytes = (r->ring.max_payload < MAX_SLOT_BYTES ? r->ring.max_payload : MAX_SLOT_BYTES);
  r->slot_bytes = (r->slot_bytes + 63) & ~63u;
  r->slots = static_cast<uint8_t*>(malloc(static_cast<size_t>(r->slot_bytes) * BATCH));
  if (r->slots == nullptr) {
    close_fds(fds);
    delete r;
    return throw_error(env, "ERR_MEMORY_ALLOCATION_FAILED", "UdpReceiver: out of memory");
  }
  for (unsigned i = 0; i < BATCH; i++) {
    r->iovs[i].iov_base = r->slots + static_cast<size_t>(i) * r->slot_bytes;
    r->iovs[i].iov_len = r->slot_bytes;
    memset(&r->msgs[i], 0, sizeof r->msgs[i]);
    r->msgs[i].msg_hdr.msg_name = &r->names[i];
    r->msgs[i].msg_hdr.msg_iov = &r->iovs[i];
    r->msgs[i].msg_hdr.msg_iovlen = 1;
  }

  napi_create_reference(env, sab, 1, &r->sab_ref);
  napi_create_reference(env, argv[6], 1, &r->callback_ref);
  napi_value resource_name;
  napi_create_string_utf8(env, "sluice:udp_recv", NAPI_AUTO_LENGTH, &resource_name);
  napi_async_init(env, nullptr, resource_name, &r->async_context);

  uv_loop_t* loop;
  napi_get_uv_event_loop(env, &loop);
  for (int fd : fds) {
    Socket* s = new Socket();
    s->fd = fd;
    s->owner = r;
    s->poll.data = s;
    s->timer.data = s;
    s->open_handles = 2;
    uv_timer_init(loop, &s->timer);
    int rc = uv_poll_init(loop, &s->poll, fd);
    const bool poll_initialized = rc == 0;
    if (rc == 0) rc = uv_poll_start(&s->poll, UV_READABLE, on_readable);
    if (rc != 0) {
      // Sockets already polling are closed by close_receiver; this one and the rest here.
      if (poll_initialized) uv_close(reinterpret_cast<uv_handle_t*>(&s->poll), on_handle_closed);
      else s->open_handles--;
      uv_close(reinterpret_cast<uv_handle_t*>(&s->timer), on_handle_closed);
      for (size_t j = r->sockets.size() + 1; j < fds.size(); j++) ::close(fds[j]);
      ::close(fd);
      close_receiver(r, true);
      free(r->slots);
      delete r;
      return throw_errno(env, -rc, "uv_poll_start", "");
    }
    s->polling = true;
    r->sockets.push_back(s);
  }
  napi_add_env_cleanup_hook(env, on_env_cleanup, r);
  napi_wrap(env, self, r, finalize_receiver, nullptr, nullptr);

  napi_value value;
  napi_create_uint32(env, bound_port, &value);
  napi_set_named_property(env, self, "port", value);
  napi_create_int32(env, granted, &value);
  napi_set_named_property(env, self, "receiveBufferBytes", value);
  napi_create_uint32(env, static_cast<uint32_t>(fds.size()), &value);
  napi_set_named_property(env, self, "sockets", value);
  return nullptr;
}

// receiver.close(): stop polling, close the sockets, let go of the ring. Idempotent.
napi_value close_method(napi_env env, napi_callback_info info) {
  napi_value self;
  napi_get_cb_info(env, info, nullptr, nullptr, &self, nullptr);
  void* data;
  if (napi_unwrap(env, self, &data) != napi_ok) return throw_error(env, "ERR_INVALID_THIS", "UdpReceiver.close: not a UdpReceiver");
  Receiver* r = static_cast<Receiver*>(data);
  if (!r->closed) {
    napi_remove_env_cleanup_hook(env, on_env_cleanup, r);
    close_receiver(r, true);
  }
  return nullptr;
}

napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor methods[] = {
      {"close", nullptr, close_method, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_value cls;
  if (napi_define_class(env, "UdpReceiver", NAPI_AUTO_LENGTH, construct, nullptr, 1, methods, &cls) != napi_ok) return nullptr;
  napi_set_named_property(env, exports, "UdpReceiver", cls);
  napi_value batch, budget;
  napi_create_uint32(env, BATCH, &batch);
  napi_create_uint32(env, WAKEUP_BUDGET, &budget);
  napi_set_named_property(env, exports, "recvmmsgBatch", batch);
  napi_set_named_property(env, exports, "wakeupBudget", budget);
  return exports;
}

}  // namespace

NAPI_MODULE(udp_recv, init)
