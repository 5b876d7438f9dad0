// Process groups for kd-tui's data-parallel training: PyTorch's own c10d (TCPStore rendezvous,
// Gloo on CPU; NCCL through csrc/nccl.cpp), behind a narrow C interface. Every entry point
// catches C++ exceptions and returns their message through `err` (0 = success).
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef USE_C10D_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>

// A client of the job's TCPStore. The group holds one; `kd_store_clone` makes another, with its
// own connection, for a thread that must not wait behind the trainer's store calls.
struct KdStore {
  c10::intrusive_ptr<c10d::Store> store;
};

struct KdGroup {
  KdStore store;
  c10::intrusive_ptr<c10d::Backend> backend;
  std::chrono::milliseconds timeout;
};

namespace {
int fail(char* err, size_t len, const std::string& message) {
  if (len > 0) {
    std::strncpy(err, message.c_str(), len - 1);
    err[len - 1] = '\0';
  }
  return 1;
}

template <typename F>
int guarded(char* err, size_t len, F&& f) {
  try {
    f();
    return 0;
  } catch (const std::exception& e) {
    return fail(err, len, e.what());
  } catch (...) {
    return fail(err, len, "unknown C++ exception");
  }
}

// The first line of a c10 message (the rest is a C++ stack trace).
std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

int wait_for(KdGroup* g, c10::intrusive_ptr<c10d::Work> work, char* err, size_t len) {
  return guarded(err, len, [&] {
    try {
      work->wait(g->timeout);
    } catch (const std::exception& e) {
      throw std::runtime_error(first_line(e.what()));
    }
  });
}
}  // namespace

// The NCCL backend lives in a library loaded at run time (it needs libtorch_cuda.so).
typedef c10d::Backend* (*KdNcclCreate)(c10::intrusive_ptr<c10d::Store>*, int, int, int64_t);

extern "C" {

int kd_gloo_built() {
#ifdef USE_C10D_GLOO
  return 1;
#else
  return 0;
#endif
}

// Rendezvous at host:port (rank 0 serves the store), then a backend: "gloo", or "nccl" with
// `nccl_create` from the NCCL library. Null on failure, with the reason in `err`.
KdGroup* kd_group_new(const char* backend, const char* host, int port, int rank, int size,
                      int64_t timeout_ms, void* nccl_create, char* err, size_t err_len) {
  KdGroup* group = nullptr;
  guarded(err, err_len, [&] {
    auto timeout = std::chrono::milliseconds(timeout_ms);
    c10d::TCPStoreOptions opts;
    opts.port = static_cast<std::uint16_t>(port);
    opts.isServer = rank == 0;
    opts.numWorkers = size;
    opts.waitWorkers = true;
    opts.timeout = timeout;
    c10::intrusive_ptr<c10d::Store> store;
    try {
      store = c10::make_intrusive<c10d::TCPStore>(host, opts);
    } catch (const std::exception& e) {
      throw std::runtime_error("rendezvous at " + std::string(host) + ":" + std::to_string(port) +
                               ": " + first_line(e.what()));
    }
    std::string name(backend);
    c10::intrusive_ptr<c10d::Backend> made;
    auto prefixed = c10::make_intrusive<c10d::PrefixStore>(name, store);
    c10::intrusive_ptr<c10d::Store> as_store = prefixed;
    if (name == "gloo") {
#ifdef USE_C10D_GLOO
      auto o = c10d::ProcessGroupGloo::Options::create(timeout);
      const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
      std::string h(host);
      if (ifname && *ifname) {
        o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
      } else if (h == "127.0.0.1" || h == "localhost") {
        o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      } else {
        o->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      }
      made = c10::make_intrusive<c10d::ProcessGroupGloo>(as_store, rank, size, o);
#else
      throw std::runtime_error("this kd-tui was built without Gloo's headers (libgloo-dev)");
#endif
    } else if (name == "nccl") {
      if (!nccl_create) throw std::runtime_error("the NCCL backend is not loaded");
      auto create = reinterpret_cast<KdNcclCreate>(nccl_create);
      made = c10::intrusive_ptr<c10d::Backend>::reclaim(create(&as_store, rank, size, timeout_ms));
    } else {
      throw std::runtime_error("unknown backend " + name);
    }
    group = new KdGroup{KdStore{store}, made, timeout};
  });
  return group;
}

void kd_group_free(KdGroup* g) { delete g; }

// In-place sum over all ranks.
int kd_allreduce_sum(KdGroup* g, at::Tensor* t, char* err, size_t len) {
  std::vector<at::Tensor> tensors{*t};
  c10::intrusive_ptr<c10d::Work> work;
  int rc = guarded(err, len, [&] { work = g->backend->allreduce(tensors); });
  return rc ? rc : wait_for(g, work, err, len);
}

// The group's own store client (owned by the group).
KdStore* kd_group_store(KdGroup* g) { return &g->store; }

// Another client of the same store, with a connection of its own (freed with kd_store_free).
KdStore* kd_store_clone(KdStore* s, char* err, size_t len) {
  KdStore* clone = nullptr;
  guarded(err, len, [&] { clone = new KdStore{s->store->clone()}; });
  return clone;
}

void kd_store_free(KdStore* s) { delete s; }

int kd_store_set(KdStore* s, const char* key, const uint8_t* data, size_t n, char* err,
                 size_t len) {
  return guarded(err, len, [&] { s->store->set(key, std::vector<uint8_t>(data, data + n)); });
}

// 1 if `key` is set, 0 if not (yet), -1 on error (the store's server is gone).
int kd_store_check(KdStore* s, const char* key, char* err, size_t len) {
  bool found = false;
  int rc = guarded(err, len, [&] { found = s->store->check({key}); });
  return rc ? -1 : (found ? 1 : 0);
}

// The value of `key` (which must be set) in a malloc'd buffer the caller frees with free().
int kd_store_get(KdStore* s, const char* key, uint8_t** data, size_t* n, char* err, size_t len) {
  return guarded(err, len, [&] {
    auto value = s->store->get(key);
    *n = value.size();
    *data = static_cast<uint8_t*>(std::malloc(value.empty() ? 1 : value.size()));
    std::memcpy(*data, value.data(), value.size());
  });
}
}
