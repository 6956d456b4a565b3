// Data-parallel communication: libtorch's c10d with the Gloo backend (CPU, TCP), as torch.distributed uses it.
// A process group is made from a rendezvous store — TCPStore (rank 0 serves it; works across hosts) or FileStore (a
// file every process on one machine can reach) — and offers allreduce, broadcast and barrier, each waited for with
// a timeout, so a dead peer turns into an error within that time instead of a hang. Same status/error rules as
// vit_native.cpp: every export catches everything, returns 0 or 1, and leaves the message in vit_last_error.
#include "vit_common.h"
#include "vit_tensor_list.h"

#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/torch.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

using T = at::Tensor;

namespace {

struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
  int rank = 0;
  int size = 1;
  std::chrono::milliseconds timeout{0};
};

Group& group_of(void* g) {
  if (g == nullptr) throw std::invalid_argument("null process group handle");
  return *static_cast<Group*>(g);
}

// Collectives take contiguous CPU tensors.
std::vector<T> tensors_of(T* const* handles, int n, const char* what) { return vit::tensors_of(handles, n, what, true); }

std::chrono::milliseconds timeout_or(const Group& g, int64_t ms) {
  return ms > 0 ? std::chrono::milliseconds(ms) : g.timeout;
}

// Work::wait throws on a timeout ("Operation timed out!") or rethrows Gloo's error (a peer gone): either way the
// message here names the operation and the limit. After a timeout the group is not usable again (its work is still
// queued); the caller should stop.
void wait(const c10::intrusive_ptr<c10d::Work>& work, std::chrono::milliseconds timeout, const char* what) {
  try {
    if (!work->wait(timeout)) throw std::runtime_error("not completed");
  } catch (const c10::Error& e) {
    throw std::runtime_error(std::string(what) + " failed (timeout " + std::to_string(timeout.count()) +
                             " ms; a peer may have stopped): " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string(what) + " failed (timeout " + std::to_string(timeout.count()) +
                             " ms; a peer may have stopped): " + e.what());
  }
}

}  // namespace

// Joins a group of `world_size` processes as `rank`. store_kind 1 = TCP: `address` is the host of rank 0 (which
// listens on `port`; the others connect); 2 = file: `address` is the file's path (port ignored). `bind_host` is the
// address this process's Gloo connections use (NULL or empty: `address` itself on rank 0 and this host's name on the
// others, for TCP — the C# side passes the local address that routes to rank 0 — and the loopback for a file store). `timeout_ms` bounds the rendezvous and, by default, every later operation.
VIT_API int vit_dist_init(int store_kind, const char* address, int port, int rank, int world_size, int64_t timeout_ms,
                          const char* bind_host, void** out) {
  VIT_TRY
  vit::check_out(out);
  *out = nullptr;
  if (address == nullptr || *address == '\0') throw std::invalid_argument("no rendezvous address");
  if (world_size < 1) throw std::invalid_argument("world size must be at least 1, got " + std::to_string(world_size));
  if (rank < 0 || rank >= world_size)
    throw std::invalid_argument("rank " + std::to_string(rank) + " is outside 0.." + std::to_string(world_size - 1));
  if (timeout_ms <= 0) throw std::invalid_argument("timeout must be positive");
  auto group = std::make_unique<Group>();
  group->rank = rank;
  group->size = world_size;
  group->timeout = std::chrono::milliseconds(timeout_ms);
  std::string host;
  if (store_kind == 1) {
    if (port < 1 || port > 65535) throw std::invalid_argument("port must be in 1..65535, got " + std::to_string(port));
    c10d::TCPStoreOptions o;
    o.port = static_cast<std::uint16_t>(port);
    o.isServer = rank == 0;
    o.numWorkers = world_size;
    o.waitWorkers = true;
    o.timeout = group->timeout;
    group->store = c10::make_intrusive<c10d::TCPStore>(std::string(address), o);
    host = bind_host != nullptr && *bind_host != '\0' ? bind_host : (rank == 0 ? std::string(address) : std::string());
  } else if (store_kind == 2) {
    auto fs = c10::make_intrusive<c10d::FileStore>(std::string(address), world_size);
    fs->setTimeout(group->timeout);
    group->store = fs;
    host = bind_host != nullptr && *bind_host != '\0' ? bind_host : "127.0.0.1";
  } else {
    throw std::invalid_argument("unknown store kind " + std::to_string(store_kind) + " (1: TCP, 2: file)");
  }
  auto options = c10d::ProcessGroupGloo::Options::create(group->timeout);
  options->devices.push_back(host.empty() ? c10d::ProcessGroupGloo::createDefaultDevice()
                                          : c10d::ProcessGroupGloo::createDeviceForHostname(host));
  options->threads = 2;
  group->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(group->store, rank, world_size, options);
  *out = group.release();
  VIT_CATCH
}

VIT_API int vit_dist_free(void* g) {
  VIT_TRY
  delete static_cast<Group*>(g);
  VIT_CATCH
}

VIT_API int vit_dist_info(void* g, int* rank, int* size) {
  VIT_TRY
  vit::check_out(rank);
  vit::check_out(size);
  auto& group = group_of(g);
  *rank = group.rank;
  *size = group.size;
  VIT_CATCH
}

// Sums (op 0), or takes the minimum (1) or maximum (2) of, each tensor over all ranks, in place.
VIT_API int vit_dist_allreduce(void* g, T* const* tensors, int n, int op, int64_t timeout_ms) {
  VIT_TRY
  auto& group = group_of(g);
  auto list = tensors_of(tensors, n, "allreduce");
  if (list.empty()) return 0;
  c10d::AllreduceOptions o;
  switch (op) {
    case 0: o.reduceOp = c10d::ReduceOp::SUM; break;
    case 1: o.reduceOp = c10d::ReduceOp::MIN; break;
    case 2: o.reduceOp = c10d::ReduceOp::MAX; break;
    default: throw std::invalid_argument("unknown reduce op " + std::to_string(op));
  }
  o.timeout = timeout_or(group, timeout_ms);
  // One collective per tensor (Gloo's allreduce takes the tensors of one device as a single buffer).
  for (auto& t : list) {
    std::vector<T> one{t};
    wait(group.pg->allreduce(one, o), o.timeout, "allreduce");
  }
  VIT_CATCH
}

// Copies each tensor of rank `root` into the same tensor of every other rank.
VIT_API int vit_dist_broadcast(void* g, T* const* tensors, int n, int root, int64_t timeout_ms) {
  VIT_TRY
  auto& group = group_of(g);
  if (root < 0 || root >= group.size) throw std::invalid_argument("broadcast root " + std::to_string(root) + " is not a rank");
  auto list = tensors_of(tensors, n, "broadcast");
  c10d::BroadcastOptions o;
  o.rootRank = root;
  o.timeout = timeout_or(group, timeout_ms);
  for (auto& t : list) {
    std::vector<T> one{t};
    wait(group.pg->broadcast(one, o), o.timeout, "broadcast");
  }
  VIT_CATCH
}

VIT_API int vit_dist_barrier(void* g, int64_t timeout_ms) {
  VIT_TRY
  auto& group = group_of(g);
  c10d::BarrierOptions o;
  o.timeout = timeout_or(group, timeout_ms);
  wait(group.pg->barrier(o), o.timeout, "barrier");
  VIT_CATCH
}

// Sums the gradients of the parameters `params` over all ranks, in place, in float32 buckets of about
// `bucket_bytes` (as DistributedDataParallel's buckets; Gloo reduces no bfloat16). A parameter without a gradient (its
// rank saw no sample in the step, or the parameter took no part) contributes zeros and ends with the sum. Every rank
// must pass the same parameters in the same order: their sizes are checked against rank 0's before any sum.
VIT_API int vit_dist_allreduce_grads(void* g, T* const* params, int n, int64_t bucket_bytes, int64_t timeout_ms) {
  VIT_TRY
  auto& group = group_of(g);
  auto list = tensors_of(params, n, "gradient allreduce");
  if (bucket_bytes < 4) throw std::invalid_argument("gradient allreduce: bucket size must be at least 4 bytes");
  c10d::AllreduceOptions o;
  o.reduceOp = c10d::ReduceOp::SUM;
  o.timeout = timeout_or(group, timeout_ms);
  // The layout first: every rank's element count and parameter count, so that different models fail clearly
  // instead of summing unrelated numbers.
  int64_t total = 0;
  for (auto& p : list) total += p.numel();
  // One MAX allreduce of (total, n, -total, -n) gives the largest and the smallest of each over the ranks.
  auto shape = torch::tensor({total, static_cast<int64_t>(n), -total, -static_cast<int64_t>(n)}, torch::kInt64);
  {
    c10d::AllreduceOptions m = o;
    m.reduceOp = c10d::ReduceOp::MAX;
    std::vector<T> a{shape};
    wait(group.pg->allreduce(a, m), m.timeout, "gradient allreduce (layout check)");
  }
  const auto* s = shape.data_ptr<int64_t>();
  if (s[0] != -s[2] || s[1] != -s[3])
    throw std::invalid_argument("gradient allreduce: the ranks' models differ (parameter elements " + std::to_string(-s[2]) + ".." +
                                std::to_string(s[0]) + ", tensors " + std::to_string(-s[3]) + ".." + std::to_string(s[1]) + ")");
  torch::NoGradGuard no_grad;
  const int64_t per_bucket = std::max<int64_t>(1, bucket_bytes / 4);
  size_t i = 0;
  while (i < list.size()) {
    size_t j = i;
    int64_t elements = 0;
    std::vector<T> grads;
    while (j < list.size() && (j == i || elements + list[j].numel() <= per_bucket)) {
      auto& p = list[j];
      auto& grad = p.mutable_grad();
      if (!grad.defined()) grad = torch::zeros_like(p, p.options().dtype(torch::kFloat32));
      grads.push_back(grad);
      elements += p.numel();
      ++j;
    }
    auto flat = torch::empty({elements}, torch::kFloat32);
    int64_t at = 0;
    for (auto& gr : grads) {
      flat.narrow(0, at, gr.numel()).copy_(gr.reshape({-1}));
      at += gr.numel();
    }
    std::vector<T> one{flat};
    wait(group.pg->allreduce(one, o), o.timeout, "gradient allreduce");
    at = 0;
    for (auto& gr : grads) {
      gr.copy_(flat.narrow(0, at, gr.numel()).view(gr.sizes()));
      at += gr.numel();
    }
    i = j;
  }
  VIT_CATCH
}
