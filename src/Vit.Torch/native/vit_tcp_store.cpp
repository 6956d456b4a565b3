// The TCP rendezvous store (see vit_tcp_store.h): rendezvous only, never collective traffic.
//
// Wire format (all integers little-endian), after the client's 8-byte greeting "VITGLOO1":
//   set:  'S' u32 key_length key u32 value_length value   -> u8 0
//   get:  'G' u32 key_length key u64 wait_ms             -> u8 0 u32 value_length value   (the key is set)
//                                                          | u8 1                          (not set within wait_ms)
// A connection that greets otherwise, or sends an unknown request or an oversized key or value, is closed.
#include "vit_tcp_store.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace vit {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr char kGreeting[8] = {'V', 'I', 'T', 'G', 'L', 'O', 'O', '1'};
constexpr uint32_t kMaxKey = 1024;
constexpr uint32_t kMaxValue = 16u << 20;  // the addresses of a rank's pairs: ~150 bytes per peer
constexpr int kPollTickMs = 100;           // how often rank 0's threads look at the stop flag

std::string errno_text(int e) { return std::strerror(e); }

int remaining_ms(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<int64_t>(left, 0, 1 << 30));
}

// Waits until fd is readable (POLLIN) or writable (POLLOUT), up to the deadline; false on timeout.
bool wait_fd(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int r = ::poll(&p, 1, remaining_ms(deadline));
    if (r > 0) return true;
    if (r == 0) return false;
    if (errno != EINTR) throw std::runtime_error("poll: " + errno_text(errno));
  }
}

// Sends exactly n bytes before the deadline. Returns false on a timeout; throws on a failed connection.
bool send_all(int fd, const void* data, size_t n, Clock::time_point deadline) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    if (!wait_fd(fd, POLLOUT, deadline)) return false;
    const ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      throw std::runtime_error("the connection failed: " + errno_text(errno));
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// Receives exactly n bytes before the deadline. Returns false on a timeout, or when `stop` (rank 0's threads
// at shutdown) becomes true; throws on a closed or failed connection.
bool recv_all(int fd, void* data, size_t n, Clock::time_point deadline, const std::atomic<bool>* stop = nullptr) {
  char* p = static_cast<char*>(data);
  while (n > 0) {
    if (stop != nullptr) {
      if (stop->load()) return false;
      if (!wait_fd(fd, POLLIN, std::min(deadline, Clock::now() + milliseconds(kPollTickMs)))) {
        if (Clock::now() >= deadline) return false;
        continue;
      }
    } else if (!wait_fd(fd, POLLIN, deadline)) {
      return false;
    }
    const ssize_t r = ::recv(fd, p, n, 0);
    if (r == 0) throw std::runtime_error("the connection was closed by the other side");
    if (r < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      throw std::runtime_error("the connection failed: " + errno_text(errno));
    }
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

void put_u32(std::vector<char>& b, uint32_t v) {
  for (int i = 0; i < 4; ++i) b.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
void put_u64(std::vector<char>& b, uint64_t v) {
  for (int i = 0; i < 8; ++i) b.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
uint64_t get_le(const unsigned char* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

void set_nodelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// Connects to one address without blocking past the deadline; returns the socket or -1 (errno set).
int connect_before(const addrinfo* a, Clock::time_point deadline) {
  const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
  if (fd < 0) return -1;
  if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) return fd;
  if (errno == EINPROGRESS && wait_fd(fd, POLLOUT, deadline)) {
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err == 0) return fd;
    errno = err;
  } else if (errno == EINPROGRESS) {
    errno = ETIMEDOUT;
  }
  const int saved = errno;
  ::close(fd);
  errno = saved;
  return -1;
}

// Listens on every interface: IPv6 with IPv4-mapped addresses where the host has IPv6, else IPv4.
int listen_any(int port) {
  int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1, zero = 0;
  if (fd >= 0) {
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_any;
    a.sin6_port = htons(static_cast<uint16_t>(port));
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && ::listen(fd, 128) == 0) return fd;
    const int saved = errno;
    ::close(fd);
    if (saved != EAFNOSUPPORT && saved != EADDRNOTAVAIL) {
      errno = saved;
      return -1;
    }
  }
  fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && ::listen(fd, 128) == 0) return fd;
  const int saved = errno;
  ::close(fd);
  errno = saved;
  return -1;
}

void check_key(const std::string& key) {
  if (key.size() > kMaxKey) throw std::invalid_argument("rendezvous key longer than " + std::to_string(kMaxKey) + " bytes");
}

}  // namespace

TcpStore::TcpStore(const std::string& host, int port, bool server, milliseconds timeout)
    : where_("rank 0 at " + host + ":" + std::to_string(port)), timeout_(timeout), server_(server) {
  if (server_) {
    listen_fd_ = listen_any(port);
    if (listen_fd_ < 0)
      throw std::runtime_error("rendezvous: rank 0 cannot listen on port " + std::to_string(port) + ": " + errno_text(errno));
    acceptor_ = std::thread([this] { serve(); });
    return;
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* list = nullptr;
  const int rv = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &list);
  if (rv != 0) throw std::runtime_error("rendezvous: cannot resolve the master address '" + host + "': " + ::gai_strerror(rv));
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> owned(list, &::freeaddrinfo);
  // Rank 0 may start later than this rank: retry until the timeout.
  const auto deadline = Clock::now() + timeout_;
  int last = 0;
  for (;;) {
    for (const addrinfo* a = list; a != nullptr && fd_ < 0; a = a->ai_next) {
      fd_ = connect_before(a, deadline);
      if (fd_ < 0) last = errno;
    }
    if (fd_ >= 0 || Clock::now() >= deadline) break;
    std::this_thread::sleep_for(milliseconds(std::min(50, remaining_ms(deadline))));
  }
  if (fd_ < 0)
    throw std::runtime_error("rendezvous: could not connect to " + where_ + " within " + std::to_string(timeout_.count()) +
                             " ms (last error: " + errno_text(last) + "; has rank 0 started?)");
  set_nodelay(fd_);
  if (!send_all(fd_, kGreeting, sizeof kGreeting, deadline)) {
    ::close(fd_);
    throw std::runtime_error("rendezvous: " + where_ + " did not take the greeting within the timeout");
  }
}

TcpStore::~TcpStore() {
  stopping_ = true;
  table_changed_.notify_all();
  if (acceptor_.joinable()) acceptor_.join();
  {
    std::lock_guard<std::mutex> lock(clients_mutex_);
    for (auto& t : client_threads_) t.join();
  }
  if (listen_fd_ >= 0) ::close(listen_fd_);
  if (fd_ >= 0) ::close(fd_);
}

// ---- rank 0: the table and its server -------------------------------------------------------------------

void TcpStore::serve() {
  while (!stopping_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, kPollTickMs) <= 0) continue;
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) continue;
    set_nodelay(fd);
    std::lock_guard<std::mutex> lock(clients_mutex_);
    client_threads_.emplace_back([this, fd] { serve_client(fd); });
  }
}

// Answers one client's requests until it disconnects, misbehaves, or the store stops. A failure here only ends
// this connection: the client then fails with its own message.
void TcpStore::serve_client(int fd) {
  const auto forever = Clock::time_point::max();
  try {
    char greeting[sizeof kGreeting];
    if (!recv_all(fd, greeting, sizeof greeting, Clock::now() + timeout_, &stopping_) ||
        std::memcmp(greeting, kGreeting, sizeof greeting) != 0) {
      ::close(fd);
      return;
    }
    for (;;) {
      unsigned char head[5];
      if (!recv_all(fd, head, sizeof head, forever, &stopping_)) break;
      const uint64_t key_length = get_le(head + 1, 4);
      if ((head[0] != 'S' && head[0] != 'G') || key_length > kMaxKey) break;
      std::string key(key_length, '\0');
      if (!recv_all(fd, key.data(), key.size(), forever, &stopping_)) break;
      if (head[0] == 'S') {
        unsigned char len[4];
        if (!recv_all(fd, len, 4, forever, &stopping_)) break;
        const uint64_t n = get_le(len, 4);
        if (n > kMaxValue) break;
        std::vector<char> value(n);
        if (!recv_all(fd, value.data(), n, forever, &stopping_)) break;
        {
          std::lock_guard<std::mutex> lock(table_mutex_);
          table_[key] = std::move(value);
        }
        table_changed_.notify_all();
        const char ok = 0;
        if (!send_all(fd, &ok, 1, Clock::now() + timeout_)) break;
      } else {
        unsigned char wait[8];
        if (!recv_all(fd, wait, 8, forever, &stopping_)) break;
        const auto wait_ms = static_cast<int64_t>(std::min<uint64_t>(get_le(wait, 8), uint64_t{1} << 40));
        std::vector<char> value;
        std::vector<char> reply;
        if (lookup(key, Clock::now() + milliseconds(wait_ms), &value)) {
          reply.push_back(0);
          put_u32(reply, static_cast<uint32_t>(value.size()));
          reply.insert(reply.end(), value.begin(), value.end());
        } else {
          reply.push_back(1);
        }
        if (!send_all(fd, reply.data(), reply.size(), Clock::now() + timeout_)) break;
      }
    }
  } catch (const std::exception&) {
    // The client went away or broke the protocol: drop the connection.
  }
  ::close(fd);
}

// Waits until the key is in the table or the deadline passes (or the store stops).
bool TcpStore::lookup(const std::string& key, Clock::time_point deadline, std::vector<char>* value) {
  std::unique_lock<std::mutex> lock(table_mutex_);
  const bool found = table_changed_.wait_until(lock, deadline, [&] { return stopping_ || table_.count(key) > 0; }) &&
                     table_.count(key) > 0;
  if (found) *value = table_[key];
  return found;
}

// ---- the Store interface ----------------------------------------------------------------------------------

void TcpStore::set(const std::string& key, const std::vector<char>& data) {
  check_key(key);
  if (data.size() > kMaxValue) throw std::invalid_argument("rendezvous value larger than " + std::to_string(kMaxValue) + " bytes");
  if (server_) {
    {
      std::lock_guard<std::mutex> lock(table_mutex_);
      table_[key] = data;
    }
    table_changed_.notify_all();
    return;
  }
  std::lock_guard<std::mutex> lock(client_mutex_);
  std::vector<char> request{'S'};
  put_u32(request, static_cast<uint32_t>(key.size()));
  request.insert(request.end(), key.begin(), key.end());
  put_u32(request, static_cast<uint32_t>(data.size()));
  request.insert(request.end(), data.begin(), data.end());
  const auto deadline = Clock::now() + timeout_;
  char ok = 1;
  try {
    if (!send_all(fd_, request.data(), request.size(), deadline) || !recv_all(fd_, &ok, 1, deadline))
      throw std::runtime_error("no answer within " + std::to_string(timeout_.count()) + " ms");
  } catch (const std::exception& e) {
    throw std::runtime_error("rendezvous: setting key '" + key + "' at " + where_ + " failed: " + e.what());
  }
  if (ok != 0) throw std::runtime_error("rendezvous: " + where_ + " refused key '" + key + "'");
}

std::vector<char> TcpStore::get(const std::string& key) {
  check_key(key);
  if (server_) {
    std::vector<char> value;
    if (!lookup(key, Clock::now() + timeout_, &value))
      throw std::runtime_error("rendezvous: key '" + key + "' was not set within " + std::to_string(timeout_.count()) +
                               " ms (did every rank start?)");
    return value;
  }
  return request_get(key, timeout_);
}

void TcpStore::wait(const std::vector<std::string>& keys) { wait(keys, timeout_); }

void TcpStore::wait(const std::vector<std::string>& keys, const milliseconds& timeout) {
  const auto deadline = Clock::now() + timeout;
  for (const auto& key : keys) {
    check_key(key);
    const milliseconds left(remaining_ms(deadline));
    if (server_) {
      std::vector<char> ignored;
      if (!lookup(key, deadline, &ignored))
        throw std::runtime_error("rendezvous: key '" + key + "' was not set within " + std::to_string(timeout.count()) +
                                 " ms (did every rank start?)");
    } else {
      request_get(key, left);
    }
  }
}

std::vector<char> TcpStore::request_get(const std::string& key, milliseconds wait) {
  std::lock_guard<std::mutex> lock(client_mutex_);
  std::vector<char> request{'G'};
  put_u32(request, static_cast<uint32_t>(key.size()));
  request.insert(request.end(), key.begin(), key.end());
  put_u64(request, static_cast<uint64_t>(wait.count()));
  // Rank 0 answers when the key is set or when `wait` has passed; allow it a few seconds more to answer.
  const auto deadline = Clock::now() + wait + milliseconds(5000);
  unsigned char status = 1;
  std::vector<char> value;
  try {
    if (!send_all(fd_, request.data(), request.size(), deadline) || !recv_all(fd_, &status, 1, deadline))
      throw std::runtime_error("no answer within " + std::to_string(wait.count() + 5000) + " ms");
    if (status == 0) {
      unsigned char len[4];
      if (!recv_all(fd_, len, 4, deadline)) throw std::runtime_error("the answer stopped");
      const uint64_t n = get_le(len, 4);
      if (n > kMaxValue) throw std::runtime_error("the answer is too large");
      value.resize(n);
      if (!recv_all(fd_, value.data(), n, deadline)) throw std::runtime_error("the answer stopped");
    }
  } catch (const std::exception& e) {
    throw std::runtime_error("rendezvous: getting key '" + key + "' from " + where_ + " failed (has rank 0 stopped?): " + e.what());
  }
  if (status != 0)
    throw std::runtime_error("rendezvous: key '" + key + "' was not set within " + std::to_string(wait.count()) +
                             " ms (did every rank start?)");
  return value;
}

}  // namespace vit
