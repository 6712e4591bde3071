// kvpool._native: the C++ batch client (clients/cpp) for Python. Pointers
// are plain integers, as in Mooncake Store's API; buffer objects (bytes,
// bytearray, memoryview, numpy arrays) are taken through the buffer
// protocol. Every call releases the GIL while it talks to the nodes.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kvpool/client.h"

namespace py = pybind11;
using kvpool::client::Buffer;
using kvpool::client::Client;
using kvpool::client::KeyIo;

namespace {

// Keys as str (UTF-8) or bytes, kept alive for the call.
struct Keys {
  std::vector<std::string> owned;
  std::vector<std::string_view> views;
  explicit Keys(const py::sequence& keys) {
    owned.reserve(keys.size());
    for (const py::handle& k : keys) {
      if (py::isinstance<py::bytes>(k)) {
        owned.push_back(k.cast<std::string>());
      } else if (py::isinstance<py::str>(k)) {
        owned.push_back(k.cast<std::string>());
      } else {
        throw py::type_error("keys must be str or bytes");
      }
    }
    for (const std::string& s : owned) views.emplace_back(s);
  }
};

class NativeClient {
 public:
  NativeClient(const std::string& host, int port, const std::string& user,
               const std::string& password, int timeout_ms, bool direct) {
    kvpool::client::Options o;
    o.host = host;
    o.port = port;
    o.user = user;
    o.password = password;
    o.timeout_ms = timeout_ms;
    o.direct = direct;
    std::string err;
    int rc;
    {
      py::gil_scoped_release nogil;
      rc = Client::Open(o, &c_, &err);
    }
    if (rc != kvpool::client::kOk) throw py::value_error("kvpool: cannot reach " + host + ":" +
                                                         std::to_string(port) + ": " + err);
  }

  // One buffer per key: (ptr, size) integers.
  std::vector<int64_t> GetInto(const py::sequence& keys, const std::vector<uintptr_t>& ptrs,
                               const std::vector<size_t>& sizes) {
    return Single(keys, ptrs, sizes, /*put=*/false);
  }
  std::vector<int64_t> PutFrom(const py::sequence& keys, const std::vector<uintptr_t>& ptrs,
                               const std::vector<size_t>& sizes) {
    return Single(keys, ptrs, sizes, /*put=*/true);
  }
  // Several buffers per key, the value their concatenation.
  std::vector<int64_t> GetIntoMulti(const py::sequence& keys,
                                    const std::vector<std::vector<uintptr_t>>& ptrs,
                                    const std::vector<std::vector<size_t>>& sizes) {
    return Multi(keys, ptrs, sizes, /*put=*/false);
  }
  std::vector<int64_t> PutFromMulti(const py::sequence& keys,
                                    const std::vector<std::vector<uintptr_t>>& ptrs,
                                    const std::vector<std::vector<size_t>>& sizes) {
    return Multi(keys, ptrs, sizes, /*put=*/true);
  }
  // Buffer objects, one per key (writable for gets).
  std::vector<int64_t> GetIntoBuffers(const py::sequence& keys, const py::sequence& bufs) {
    return Buffers(keys, bufs, /*put=*/false);
  }
  std::vector<int64_t> PutFromBuffers(const py::sequence& keys, const py::sequence& bufs) {
    return Buffers(keys, bufs, /*put=*/true);
  }

  std::vector<int64_t> Exists(const py::sequence& keys) {
    return KeysOnly(keys, &Client::BatchExists);
  }
  std::vector<int64_t> Size(const py::sequence& keys) { return KeysOnly(keys, &Client::BatchSize); }
  std::vector<int64_t> Remove(const py::sequence& keys) {
    return KeysOnly(keys, &Client::BatchRemove);
  }
  int64_t RemoveAll() {
    py::gil_scoped_release nogil;
    return c_->RemoveAll();
  }
  int Refresh() {
    py::gil_scoped_release nogil;
    return c_->Refresh();
  }
  int Nodes() const { return c_->Nodes(); }
  std::string LastError() const { return c_->LastError(); }

 private:
  std::vector<int64_t> Run(std::vector<KeyIo>& io, bool put) {
    std::vector<int64_t> out(io.size());
    py::gil_scoped_release nogil;
    if (put) {
      c_->BatchPutFrom(io, out);
    } else {
      c_->BatchGetInto(io, out);
    }
    return out;
  }

  std::vector<int64_t> Single(const py::sequence& keys, const std::vector<uintptr_t>& ptrs,
                              const std::vector<size_t>& sizes, bool put) {
    Keys k(keys);
    if (ptrs.size() != k.views.size() || sizes.size() != k.views.size())
      throw py::value_error("keys, ptrs and sizes must have the same length");
    std::vector<Buffer> bufs(ptrs.size());
    std::vector<KeyIo> io(ptrs.size());
    for (size_t i = 0; i < ptrs.size(); ++i) {
      bufs[i] = Buffer{reinterpret_cast<void*>(ptrs[i]), sizes[i]};
      io[i] = KeyIo{k.views[i], &bufs[i], 1};
    }
    return Run(io, put);
  }

  std::vector<int64_t> Multi(const py::sequence& keys,
                             const std::vector<std::vector<uintptr_t>>& ptrs,
                             const std::vector<std::vector<size_t>>& sizes, bool put) {
    Keys k(keys);
    if (ptrs.size() != k.views.size() || sizes.size() != k.views.size())
      throw py::value_error("keys, ptrs and sizes must have the same length");
    std::vector<std::vector<Buffer>> bufs(ptrs.size());
    std::vector<KeyIo> io(ptrs.size());
    for (size_t i = 0; i < ptrs.size(); ++i) {
      if (ptrs[i].size() != sizes[i].size())
        throw py::value_error("each key's ptrs and sizes must have the same length");
      for (size_t j = 0; j < ptrs[i].size(); ++j)
        bufs[i].push_back(Buffer{reinterpret_cast<void*>(ptrs[i][j]), sizes[i][j]});
      io[i] = KeyIo{k.views[i], bufs[i].data(), bufs[i].size()};
    }
    return Run(io, put);
  }

  std::vector<int64_t> Buffers(const py::sequence& keys, const py::sequence& objs, bool put) {
    Keys k(keys);
    if (objs.size() != k.views.size()) throw py::value_error("keys and buffers must have the same length");
    std::vector<py::buffer_info> infos;
    infos.reserve(objs.size());
    std::vector<Buffer> bufs(objs.size());
    std::vector<KeyIo> io(objs.size());
    for (size_t i = 0; i < objs.size(); ++i) {
      py::buffer b = py::reinterpret_borrow<py::buffer>(objs[i]);
      // C-contiguous (PyBUF_ND); writable for a get.
      infos.push_back(b.request(/*writable=*/!put));
      const py::buffer_info& bi = infos.back();
      bufs[i] = Buffer{bi.ptr, static_cast<size_t>(bi.size * bi.itemsize)};
      io[i] = KeyIo{k.views[i], &bufs[i], 1};
    }
    return Run(io, put);
  }

  using KeysCall = void (Client::*)(std::span<const std::string_view>, std::span<int64_t>);
  std::vector<int64_t> KeysOnly(const py::sequence& keys, KeysCall call) {
    Keys k(keys);
    std::vector<int64_t> out(k.views.size());
    py::gil_scoped_release nogil;
    (c_.get()->*call)(k.views, out);
    return out;
  }

  std::unique_ptr<Client> c_;
};

}  // namespace

PYBIND11_MODULE(_native, m) {
  m.doc() = "kvpool's native batch client (see kvpool.DistributedStore)";
  m.attr("OK") = static_cast<int>(kvpool::client::kOk);
  m.attr("INTERNAL_ERROR") = static_cast<int>(kvpool::client::kInternal);
  m.attr("BUFFER_OVERFLOW") = static_cast<int>(kvpool::client::kBufferOverflow);
  m.attr("NO_AVAILABLE_HANDLE") = static_cast<int>(kvpool::client::kNoMemory);
  m.attr("INVALID_PARAMS") = static_cast<int>(kvpool::client::kInvalidParams);
  m.attr("OBJECT_NOT_FOUND") = static_cast<int>(kvpool::client::kNotFound);
  m.attr("RPC_FAIL") = static_cast<int>(kvpool::client::kRpcFail);
  m.def("key_slot", [](const std::string& key) { return kvpool::client::KeySlot(key); });
  py::class_<NativeClient>(m, "Client")
      .def(py::init<const std::string&, int, const std::string&, const std::string&, int, bool>(),
           py::arg("host") = "127.0.0.1", py::arg("port") = 6379, py::arg("user") = "",
           py::arg("password") = "", py::arg("timeout_ms") = 30000, py::arg("direct") = true)
      .def("get_into", &NativeClient::GetInto)
      .def("put_from", &NativeClient::PutFrom)
      .def("get_into_multi", &NativeClient::GetIntoMulti)
      .def("put_from_multi", &NativeClient::PutFromMulti)
      .def("get_into_buffers", &NativeClient::GetIntoBuffers)
      .def("put_from_buffers", &NativeClient::PutFromBuffers)
      .def("exists", &NativeClient::Exists)
      .def("size", &NativeClient::Size)
      .def("remove", &NativeClient::Remove)
      .def("remove_all", &NativeClient::RemoveAll)
      .def("refresh", &NativeClient::Refresh)
      .def("nodes", &NativeClient::Nodes)
      .def("last_error", &NativeClient::LastError);
}
