// The rendezvous of a multi-host group (MASTER_ADDR/MASTER_PORT): the smallest key-value store Gloo's
// rendezvous::Context::connectFullMesh needs, over TCP. Debian's Gloo has file, hash, prefix and Redis stores but
// no TCP store (torch.distributed's TCPStore is c10d's, inside libtorch). Only the handful of keys of the
// rendezvous go through it (each rank's host name and the addresses of its Gloo pairs); every collective's
// traffic is Gloo's own, over the pairs connectFullMesh opens.
//
// Rank 0 serves: it listens on the port (all interfaces) and answers the others, one thread per connection; its
// own calls read and write the table directly. The other ranks connect (retrying while rank 0 is not up yet) and
// send requests. Every call is bounded by the store's timeout, so a rank that never comes turns into an error
// naming the key and the limit.
#pragma once

#include <gloo/rendezvous/store.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace vit {

class TcpStore final : public gloo::rendezvous::Store {
 public:
  // server: this process is rank 0 and listens on `port`; otherwise it connects to host:port. Throws when rank
  // 0 cannot listen, or when a client cannot reach rank 0 within `timeout`.
  TcpStore(const std::string& host, int port, bool server, std::chrono::milliseconds timeout);
  ~TcpStore() override;

  TcpStore(const TcpStore&) = delete;
  TcpStore& operator=(const TcpStore&) = delete;

  void set(const std::string& key, const std::vector<char>& data) override;

  // Waits (up to the store's timeout) until the key is set, as Gloo expects of get.
  std::vector<char> get(const std::string& key) override;

  void wait(const std::vector<std::string>& keys) override;
  void wait(const std::vector<std::string>& keys, const std::chrono::milliseconds& timeout) override;

 private:
  // Rank 0: the table, and the threads that serve it.
  void serve();
  void serve_client(int fd);
  bool lookup(const std::string& key, std::chrono::steady_clock::time_point deadline, std::vector<char>* value);

  // The other ranks: one request and its answer, under the client mutex.
  std::vector<char> request_get(const std::string& key, std::chrono::milliseconds wait);

  std::string where_;  // "rank 0 at host:port", for messages
  std::chrono::milliseconds timeout_;
  bool server_;

  std::mutex table_mutex_;
  std::condition_variable table_changed_;
  std::map<std::string, std::vector<char>> table_;
  std::atomic<bool> stopping_{false};
  int listen_fd_ = -1;
  std::thread acceptor_;
  std::mutex clients_mutex_;
  std::vector<std::thread> client_threads_;

  std::mutex client_mutex_;
  int fd_ = -1;
};

}  // namespace vit
