// vit_gloo (libvit_gloo.so): the collectives of data-parallel training over Debian's Gloo (libgloo-dev), on raw
// buffers. No libtorch: the caller (Vit.Torch.Distributed.GlooGroup) passes the memory of its tensors.
//
// A group is made by a rendezvous through a store — Gloo's FileStore (a directory every process on one machine
// can reach) or our TcpStore (rank 0 serves it; works across hosts; vit_tcp_store.h) — and Gloo's TCP transport:
// rendezvous::Context::connectFullMesh opens one connection per pair of ranks. It then runs Gloo's own
// algorithms: allreduce (ring), broadcast, barrier. Every operation is bounded by a timeout, so a dead or stalled
// peer becomes an error naming the operation and the limit instead of a hang. After a failed collective the group
// is unusable (Gloo closes its connections on a timeout); every later call says so.
//
// Rules (vit_status.h): every export returns 0 or 1 and catches everything; the error text is read with
// vit_gloo_last_error. One group is used by one thread at a time; every rank must make the same calls in the
// same order (each call takes the next tag, as c10d's ProcessGroupGloo does).
//
// Symbols: libtorch_cpu (loaded in the same process by TorchSharp) exports its own, newer copy of Gloo under the
// same names. This library is built with hidden visibility and -Bsymbolic (what it instantiates from Gloo's
// headers binds to itself), links Debian's libgloo.so, and is loaded by C# with RTLD_DEEPBIND (GlooNative), so
// that it and libgloo resolve Gloo's names in libgloo first. vit_gloo_init checks where gloo::allreduce was bound
// and refuses to run on another copy.
#include "vit_status.h"
#include "vit_tcp_store.h"

#include <gloo/allreduce.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/math.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/file_store.h>
#include <gloo/transport/tcp/device.h>

#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

using std::chrono::milliseconds;

// One group: the store (kept for the group's life: rank 0 serves the others until they are connected), Gloo's
// TCP device (its event loop thread) and the connected context. Members are destroyed in reverse order: the
// context's connections first.
struct VitGloo {
  std::unique_ptr<gloo::rendezvous::Store> store;
  std::shared_ptr<gloo::transport::Device> device;
  std::shared_ptr<gloo::rendezvous::Context> context;
  int rank = 0;
  int size = 1;
  milliseconds timeout{0};
  std::mutex mutex;        // one collective at a time
  uint32_t next_tag = 0;   // every rank counts the same calls, so the tags agree
  std::string failure;     // non-empty once a collective failed
};

namespace {

constexpr int kStoreTcp = 1;
constexpr int kStoreFile = 2;

// Gloo's FileStore, with the group's timeout in get() and wait(keys) instead of Gloo's fixed 30 s, and a clear
// refusal of a directory that holds keys of an earlier run (FileStore::set would only say "File already exists").
class TimedFileStore final : public gloo::rendezvous::FileStore {
 public:
  TimedFileStore(const std::string& path, milliseconds timeout) : gloo::rendezvous::FileStore(path), path_(path), timeout_(timeout) {}

  void set(const std::string& key, const std::vector<char>& data) override {
    struct stat st {};
    if (::stat(objectPath(key).c_str(), &st) == 0)
      throw std::runtime_error("rendezvous: the store directory " + path_ + " already holds key '" + key +
                               "' from an earlier run; use a new, empty directory for every run");
    gloo::rendezvous::FileStore::set(key, data);
  }

  using gloo::rendezvous::FileStore::wait;
  void wait(const std::vector<std::string>& keys) override { gloo::rendezvous::FileStore::wait(keys, timeout_); }

 private:
  std::string path_;
  milliseconds timeout_;
};

// Makes the store's directory (one level) if it is not there yet; refuses a path that is something else.
void make_store_directory(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST)
    throw std::runtime_error("rendezvous: cannot create the store directory " + path + ": " + std::strerror(errno));
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    throw std::runtime_error("rendezvous: the store path " + path + " exists and is not a directory");
}

// The file that provides `fn` to this library (dladdr of the address the dynamic linker bound).
std::string provider_of(const void* fn) {
  Dl_info info{};
  if (::dladdr(fn, &info) == 0 || info.dli_fname == nullptr) return "(unknown)";
  return info.dli_fname;
}

std::string gloo_provider() { return provider_of(reinterpret_cast<const void*>(&gloo::allreduce)); }

// Refuses to run when Gloo's names were bound to another copy than Debian's libgloo (libtorch_cpu's, when it
// sits in the global scope and this library was loaded without RTLD_DEEPBIND): their classes differ.
void check_binding() {
  const std::string fname = gloo_provider();
  if (fname.find("libgloo.so") == std::string::npos)
    throw std::runtime_error("libvit_gloo.so's Gloo calls are bound to " + fname +
                             ", not to Debian's libgloo.so: another copy of Gloo is in the process's global symbol scope "
                             "(libtorch's?). Load libvit_gloo.so with RTLD_DEEPBIND (Vit.Torch's GlooNative does).");
}

VitGloo& group_of(VitGloo* g) {
  if (g == nullptr) throw std::invalid_argument("null Gloo group handle");
  return *g;
}

// Runs one collective under the group's lock with the next tag: `body(timeout, tag)`. Any failure is reported
// as "<what> failed (timeout N ms; a peer may have stopped): <Gloo's message>" and leaves the group unusable.
template <typename Body>
void collective(VitGloo& g, const char* what, int64_t timeout_ms, Body body) {
  std::lock_guard<std::mutex> lock(g.mutex);
  if (!g.failure.empty())
    throw std::runtime_error(std::string(what) + ": the group is unusable after an earlier failure (" + g.failure +
                             "); every rank must create a new group");
  const milliseconds timeout = timeout_ms > 0 ? milliseconds(timeout_ms) : g.timeout;
  const uint32_t tag = g.next_tag++;
  try {
    body(timeout, tag);
  } catch (const std::exception& e) {
    g.failure = std::string(what) + " failed (timeout " + std::to_string(timeout.count()) +
                " ms; a peer may have stopped): " + e.what();
    throw std::runtime_error(g.failure);
  }
}

using ReduceFn = gloo::AllreduceOptions::Func;

template <typename T>
ReduceFn reduction(int op) {
  using Fn = void (*)(void*, const void*, const void*, size_t);
  switch (op) {
    case 0: return static_cast<Fn>(&gloo::sum<T>);
    case 1: return static_cast<Fn>(&gloo::min<T>);
    case 2: return static_cast<Fn>(&gloo::max<T>);
    default: throw std::invalid_argument("unknown reduce op " + std::to_string(op) + " (0 sum, 1 min, 2 max)");
  }
}

template <typename T>
void allreduce_as(gloo::AllreduceOptions& o, void* data, size_t count, int op) {
  o.setOutput(static_cast<T*>(data), count);
  o.setReduceFunction(reduction<T>(op));
}

}  // namespace

// ---- library ----------------------------------------------------------------------------------------------

// Bumped whenever an export's signature or meaning changes; checked by the C# loader (GlooNative).
VIT_API int vit_gloo_abi_version() { return 2; }  // 2: int32 allreduce

// Copies this thread's last error text into buf (cap bytes, NUL-terminated, truncated) when buf is not NULL;
// returns the text's full length in bytes. Never fails.
VIT_API int vit_gloo_last_error(char* buf, int cap) { return vit::copy_last_error(buf, cap); }

// Writes the path of the file that provides Gloo's functions to this library (Debian's libgloo.so.0 unless
// another copy took precedence) into buf; fails when it does not fit in cap bytes with its NUL.
VIT_API int vit_gloo_provider(char* buf, int cap) {
  VIT_TRY
  vit::check_out(buf);
  const std::string path = gloo_provider();
  if (static_cast<int64_t>(path.size()) + 1 > cap)
    throw std::invalid_argument("buffer of " + std::to_string(cap) + " bytes is too small for " + std::to_string(path.size() + 1));
  std::memcpy(buf, path.c_str(), path.size() + 1);
  VIT_CATCH
}

// ---- lifetime ---------------------------------------------------------------------------------------------

// Joins a group of `world_size` processes as `rank`, waiting (up to timeout_ms) until all have joined.
//  store_kind 1 = TCP: `address` is rank 0's host, which listens on `port` (all interfaces); the others connect.
//  store_kind 2 = file: `address` is a directory every rank can reach (made if missing; it must not hold keys
//                of an earlier run); `port` is ignored.
// `bind_host` is the address this process's Gloo connections use. NULL or empty: for TCP, `address` itself on
// rank 0 and this host's name on the others (the C# side passes the local address that routes to rank 0); for
// a file store, the loopback. timeout_ms bounds the rendezvous and, by default, every later operation.
// *out: a new group the caller owns and releases with vit_gloo_free.
VIT_API int vit_gloo_init(int store_kind, const char* address, int port, int rank, int world_size, int64_t timeout_ms,
                          const char* bind_host, VitGloo** out) {
  VIT_TRY
  vit::check_out(out);
  *out = nullptr;
  if (address == nullptr || *address == '\0') throw std::invalid_argument("no rendezvous address");
  if (world_size < 1) throw std::invalid_argument("world size must be at least 1, got " + std::to_string(world_size));
  if (rank < 0 || rank >= world_size)
    throw std::invalid_argument("rank " + std::to_string(rank) + " is outside 0.." + std::to_string(world_size - 1));
  if (timeout_ms <= 0) throw std::invalid_argument("timeout must be positive");
  check_binding();
  auto group = std::make_unique<VitGloo>();
  group->rank = rank;
  group->size = world_size;
  group->timeout = milliseconds(timeout_ms);
  const bool have_bind = bind_host != nullptr && *bind_host != '\0';
  gloo::transport::tcp::attr attr;
  if (store_kind == kStoreTcp) {
    if (port < 1 || port > 65535) throw std::invalid_argument("port must be in 1..65535, got " + std::to_string(port));
    group->store = std::make_unique<vit::TcpStore>(address, port, rank == 0, group->timeout);
    attr.hostname = have_bind ? bind_host : (rank == 0 ? address : "");  // empty: Gloo takes this host's name
  } else if (store_kind == kStoreFile) {
    make_store_directory(address);
    group->store = std::make_unique<TimedFileStore>(address, group->timeout);
    attr.hostname = have_bind ? bind_host : "127.0.0.1";
  } else {
    throw std::invalid_argument("unknown store kind " + std::to_string(store_kind) + " (1: TCP, 2: file)");
  }
  group->device = gloo::transport::tcp::CreateDevice(attr);
  group->context = std::make_shared<gloo::rendezvous::Context>(rank, world_size);
  group->context->setTimeout(group->timeout);
  try {
    group->context->connectFullMesh(*group->store, group->device);
  } catch (const std::exception& e) {
    throw std::runtime_error("forming the group (rank " + std::to_string(rank) + " of " + std::to_string(world_size) +
                             ") failed (timeout " + std::to_string(timeout_ms) + " ms; did every rank start?): " + e.what());
  }
  *out = group.release();
  VIT_CATCH
}

// Leaves the group: closes its connections (and, on rank 0 of a TCP store, stops serving the rendezvous).
// NULL is a no-op.
VIT_API int vit_gloo_free(VitGloo* g) {
  VIT_TRY
  delete g;
  VIT_CATCH
}

VIT_API int vit_gloo_info(VitGloo* g, int* rank, int* size) {
  VIT_TRY
  vit::check_out(rank);
  vit::check_out(size);
  auto& group = group_of(g);
  *rank = group.rank;
  *size = group.size;
  VIT_CATCH
}

// ---- collectives ------------------------------------------------------------------------------------------
// timeout_ms <= 0: the group's timeout. Buffers are borrowed for the call and must not be touched by the caller
// until it returns.

// Reduces `count` elements at `data` over all ranks in place: element 0 float32, 1 float64, 2 int64, 3 int32; op 0
// sum, 1 minimum, 2 maximum. Every rank ends with the same result. Float sums run in Gloo's ring order, so with more
// than two ranks they may differ in the last bit from a sum in another order.
VIT_API int vit_gloo_allreduce(VitGloo* g, void* data, int64_t count, int element, int op, int64_t timeout_ms) {
  VIT_TRY
  auto& group = group_of(g);
  if (count < 0) throw std::invalid_argument("allreduce: negative element count " + std::to_string(count));
  if (count > 0 && data == nullptr) throw std::invalid_argument("allreduce: null buffer");
  if (element < 0 || element > 3)
    throw std::invalid_argument("allreduce: unknown element type " + std::to_string(element) + " (0 float32, 1 float64, 2 int64, 3 int32)");
  if (op < 0 || op > 2) throw std::invalid_argument("allreduce: unknown reduce op " + std::to_string(op) + " (0 sum, 1 min, 2 max)");
  const int64_t size = element == 0 || element == 3 ? 4 : 8;
  if (count > INT64_MAX / size) throw std::invalid_argument("allreduce: " + std::to_string(count) + " elements overflow a byte count");
  if (count == 0) return 0;
  collective(group, "allreduce", timeout_ms, [&](milliseconds timeout, uint32_t tag) {
    gloo::AllreduceOptions o(group.context);
    switch (element) {
      case 0: allreduce_as<float>(o, data, static_cast<size_t>(count), op); break;
      case 1: allreduce_as<double>(o, data, static_cast<size_t>(count), op); break;
      case 2: allreduce_as<int64_t>(o, data, static_cast<size_t>(count), op); break;
      default: allreduce_as<int32_t>(o, data, static_cast<size_t>(count), op); break;
    }
    o.setAlgorithm(gloo::AllreduceOptions::Algorithm::RING);
    o.setTag(tag);
    o.setTimeout(timeout);
    gloo::allreduce(o);
  });
  VIT_CATCH
}

// Copies `nbytes` bytes at `data` of rank `root` into the same buffer of every other rank.
VIT_API int vit_gloo_broadcast(VitGloo* g, void* data, int64_t nbytes, int root, int64_t timeout_ms) {
  VIT_TRY
  auto& group = group_of(g);
  if (root < 0 || root >= group.size) throw std::invalid_argument("broadcast root " + std::to_string(root) + " is not a rank");
  if (nbytes < 0) throw std::invalid_argument("broadcast: negative byte count " + std::to_string(nbytes));
  if (nbytes > 0 && data == nullptr) throw std::invalid_argument("broadcast: null buffer");
  if (nbytes == 0) return 0;
  collective(group, "broadcast", timeout_ms, [&](milliseconds timeout, uint32_t tag) {
    gloo::BroadcastOptions o(group.context);
    o.setOutput(static_cast<uint8_t*>(data), static_cast<size_t>(nbytes));
    o.setRoot(root);
    o.setTag(tag);
    o.setTimeout(timeout);
    gloo::broadcast(o);
  });
  VIT_CATCH
}

// Returns once every rank has called it.
VIT_API int vit_gloo_barrier(VitGloo* g, int64_t timeout_ms) {
  VIT_TRY
  auto& group = group_of(g);
  collective(group, "barrier", timeout_ms, [&](milliseconds timeout, uint32_t tag) {
    gloo::BarrierOptions o(group.context);
    o.setTag(tag);
    o.setTimeout(timeout);
    gloo::barrier(o);
  });
  VIT_CATCH
}
