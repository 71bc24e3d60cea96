#include "collector/notifier.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <spdlog/spdlog.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <optional>

#include "config/http_url.h"
#include "diff/json.h"
#include "snapshot/clock.h"

extern char** environ;

namespace tidemark::collector {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using nlohmann::json;

using config::HttpUrl;

template <typename Stream>
asio::awaitable<void> Exchange(Stream& stream, const HttpUrl& url, const config::HookConfig& hook,
                               const std::string& body, std::string& error) {
  http::request<http::string_body> request{http::verb::post, url.target, 11};
  request.set(http::field::host, url.host);
  request.set(http::field::user_agent, "tidemarkd");
  request.set(http::field::content_type, "application/json");
  for (const auto& [name, value] : hook.headers) request.set(name, value);
  request.body() = body;
  request.prepare_payload();
  co_await http::async_write(stream, request, asio::use_awaitable);
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  beast::error_code ec;
  co_await http::async_read(stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
  // A server ending a body at EOF over TLS without close_notify (Python's http.server, many
  // others) reads as a truncated stream: the status line is all we need.
  if (ec && !(ec == asio::ssl::error::stream_truncated && parser.is_header_done())) {
    throw beast::system_error(ec);
  }
  const unsigned status = parser.get().result_int();
  if (status >= 200 && status < 300) {
    error.clear();
  } else {
    error = "HTTP " + std::to_string(status) + ": " + parser.get().body().substr(0, 200);
  }
}

std::string HttpPost(const config::HookConfig& hook, const std::string& url_text,
                     const std::string& body) {
  const auto url = config::ParseHttpUrl(url_text);
  if (!url) return url.error().message;
  std::string error = "timed out after " + std::to_string(hook.timeout_ms) + " ms";
  bool done = false;
  try {
    asio::io_context io;
    asio::ssl::context tls(asio::ssl::context::tls_client);
    if (url->tls && hook.tls_verify) {
      if (hook.ca_file.empty()) {
        tls.set_default_verify_paths();
      } else {
        tls.load_verify_file(hook.ca_file);
      }
    }
    auto run = [&]() -> asio::awaitable<void> {
      asio::ip::tcp::resolver resolver(io);
      const auto endpoints =
          co_await resolver.async_resolve(url->host, url->port, asio::use_awaitable);
      if (!url->tls) {
        beast::tcp_stream stream(io);
        co_await stream.async_connect(endpoints, asio::use_awaitable);
        co_await Exchange(stream, *url, hook, body, error);
        beast::error_code ignored;
        stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
        co_return;
      }
      beast::ssl_stream<beast::tcp_stream> stream(io, tls);
      if (hook.tls_verify) {
        stream.set_verify_mode(asio::ssl::verify_peer);
        stream.set_verify_callback(asio::ssl::host_name_verification(url->host));
      }
      if (!SSL_set_tlsext_host_name(stream.native_handle(), url->host.c_str())) {
        throw std::runtime_error("cannot set the TLS server name");
      }
      co_await beast::get_lowest_layer(stream).async_connect(endpoints, asio::use_awaitable);
      co_await stream.async_handshake(asio::ssl::stream_base::client, asio::use_awaitable);
      co_await Exchange(stream, *url, hook, body, error);
    };
    asio::co_spawn(io, run(), [&](std::exception_ptr e) {
      done = true;
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& x) {
        error = x.what();
      }
    });
    io.run_for(std::chrono::milliseconds(hook.timeout_ms));
  } catch (const std::exception& e) {
    return e.what();  // TLS setup: a CA file that does not load.
  }
  (void)done;
  return error;
}

// Runs argv with `input` on stdin; kills it at the timeout.
std::string RunCommand(const config::HookConfig& hook, const std::string& input) {
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return "pipe failed";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[0], 0);
  std::vector<char*> argv;
  for (const std::string& arg : hook.command) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int spawned = ::posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(pipe_fds[0]);
  if (spawned != 0) {
    ::close(pipe_fds[1]);
    return "cannot run " + hook.command[0] + ": " + std::strerror(spawned);
  }
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(hook.timeout_ms);
  auto left_ms = [&] {
    return static_cast<int>(std::max<int64_t>(
        0, std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
                                                                 std::chrono::steady_clock::now())
               .count()));
  };
  // Write stdin without blocking past the deadline (the command may not read it all).
  ::fcntl(pipe_fds[1], F_SETFL, O_NONBLOCK);
  size_t written = 0;
  while (written < input.size() && left_ms() > 0) {
    const ssize_t n = ::write(pipe_fds[1], input.data() + written, input.size() - written);
    if (n > 0) {
      written += static_cast<size_t>(n);
    } else if (n < 0 && errno == EAGAIN) {
      pollfd p{pipe_fds[1], POLLOUT, 0};
      ::poll(&p, 1, left_ms());
    } else {
      break;  // EPIPE: it exited or closed stdin; its exit status says whether that was fine.
    }
  }
  ::close(pipe_fds[1]);
  // Wait for the exit on a pidfd, so the deadline is exact.
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  int status = 0;
  pid_t reaped = 0;
  while ((reaped = ::waitpid(pid, &status, WNOHANG)) == 0 && left_ms() > 0) {
    if (pidfd >= 0) {
      pollfd p{pidfd, POLLIN, 0};
      ::poll(&p, 1, left_ms());
    } else {
      ::poll(nullptr, 0, 10);
    }
  }
  if (pidfd >= 0) ::close(pidfd);
  if (reaped == 0) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    return hook.command[0] + " did not finish within " + std::to_string(hook.timeout_ms) +
           " ms and was killed";
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return "";
  if (WIFEXITED(status))
    return hook.command[0] + " exited with status " + std::to_string(WEXITSTATUS(status));
  return hook.command[0] + " was killed by signal " + std::to_string(WTERMSIG(status));
}

const char* AlertName(const std::string& kind) {
  if (kind == "native") return "TidemarkNativeMemoryGrowth";
  if (kind == "silent") return "TidemarkAgentSilent";
  if (kind == "memory-pressure") return "TidemarkMemoryPressure";
  return "TidemarkLeak";
}

}  // namespace

json Notification::Document() const {
  return {{"version", 1}, {"kind", kind}, {"event", event}, {kind, payload}};
}

json AlertmanagerAlert(const json& alert, const std::string& event, int64_t valid_until_ns) {
  json labels = json::object();
  // The agents' own labels first, so ours win on a clash.
  const json agent_labels = alert.value("labels", json::object());
  for (const auto& [k, v] : agent_labels.items()) labels[k] = v;
  labels["alertname"] = AlertName(alert.value("kind", ""));
  labels["service"] = alert.value("service", "");
  labels["rule"] = alert.value("rule", "");
  labels["tidemark_id"] = alert.value("id", "");
  labels["severity"] = "warning";
  // A memory-pressure alert's largest type may change between two thresholds: an annotation,
  // not a label, so that Alertmanager sees one alert.
  const bool memory = alert.value("kind", "") == "memory-pressure";
  if (!alert.value("type", "").empty() && !memory) labels["type"] = alert.value("type", "");
  json annotations = {{"summary", alert.value("summary", "")},
                      {"bytes_per_hour", std::to_string(alert.value("bytes_per_hour", 0.0))},
                      {"agents", alert.value("agents", json::array()).dump()}};
  const json& holders = alert.value("holders", json::array());
  if (!holders.empty()) {
    annotations["held_by"] = holders.at(0).value("path", "");
    annotations["holders"] = holders.dump();
  }
  if (!alert.value("site", "").empty()) annotations["site"] = alert.value("site", "");
  if (memory) {
    annotations["largest_type"] = alert.value("type", "");
    if (alert.contains("memory")) annotations["memory"] = alert["memory"].dump();
  }
  const json& evidence = alert.value("evidence", json::array());
  if (!evidence.empty()) {
    std::string commands;
    for (const json& c : evidence)
      commands += (commands.empty() ? "" : "; ") + c.get<std::string>();
    annotations["evidence"] = commands;
  }
  json out = {
      {"labels", labels}, {"annotations", annotations}, {"startsAt", alert.value("since", "")}};
  if (event == "resolved") {
    if (alert.contains("resolved")) out["endsAt"] = alert["resolved"];
  } else {
    out["endsAt"] = diff::Rfc3339(valid_until_ns);
  }
  return out;
}

snapshot::Result<void> Deliver(const config::HookConfig& hook, const Notification& n) {
  std::string error;
  switch (hook.kind) {
    case config::HookKind::kWebhook:
      error = HttpPost(hook, hook.url, n.Document().dump());
      break;
    case config::HookKind::kAlertmanager: {
      std::string base = hook.url;
      while (!base.empty() && base.back() == '/') base.pop_back();
      const int64_t until = snapshot::WallNowNs() + hook.alert_ttl_ms * 1'000'000;
      json body = json::array();
      if (n.event == "refresh") {
        for (const json& alert : n.payload)
          body.push_back(AlertmanagerAlert(alert, "firing", until));
      } else {
        body.push_back(AlertmanagerAlert(n.payload, n.event, until));
      }
      error = HttpPost(hook, base + "/api/v2/alerts", body.dump());
      break;
    }
    case config::HookKind::kCommand:
      error = RunCommand(hook, n.Document().dump() + "\n");
      break;
    case config::HookKind::kLog:
      spdlog::info("hook {}: {}", hook.name, n.Document().dump());
      break;
  }
  if (error.empty()) return {};
  return snapshot::Fail(snapshot::Code::kIo, std::move(error));
}

struct Notifier::Hook {
  config::HookConfig config;
  struct Item {
    Notification notification;
    int attempts = 0;
    std::chrono::steady_clock::time_point due;
    uint64_t generation = 0;  // Hook::notified when it was queued.
  };
  mutable std::mutex mutex;
  std::condition_variable wake;
  std::deque<Item> queue;
  std::chrono::steady_clock::time_point next_refresh{};
  uint64_t notified = 0;  // Alert events and reports queued so far.
  bool stopping = false;
  HookStats stats;
  std::thread thread;
};

Notifier::Notifier(const std::vector<config::HookConfig>& hooks) {
  for (const config::HookConfig& config : hooks) {
    auto hook = std::make_unique<Hook>();
    hook->config = config;
    hook->stats.name = config.name;
    hook->stats.kind = config::HookKindName(config.kind);
    hooks_.push_back(std::move(hook));
  }
  for (auto& hook : hooks_) hook->thread = std::thread([this, h = hook.get()] { Run(*h); });
}

Notifier::~Notifier() {
  for (auto& hook : hooks_) {
    std::lock_guard lock(hook->mutex);
    hook->stopping = true;
    hook->wake.notify_all();
  }
  for (auto& hook : hooks_) hook->thread.join();
}

void Notifier::Notify(const Notification& n) {
  for (auto& hook : hooks_) {
    const config::HookConfig& c = hook->config;
    bool wanted;
    if (n.kind == "report") {
      wanted = std::find(n.hooks.begin(), n.hooks.end(), c.name) != n.hooks.end() &&
               c.kind != config::HookKind::kAlertmanager;
    } else if (n.event == "refresh") {
      wanted = false;  // Refresh() only.
    } else {
      wanted = c.alerts && (n.event != "resolved" || c.send_resolved);
    }
    if (!wanted) continue;
    std::lock_guard lock(hook->mutex);
    if (hook->queue.size() >= kMaxQueued) {
      hook->queue.pop_front();
      ++hook->stats.dropped;
    }
    hook->queue.push_back({n, 0, std::chrono::steady_clock::now(), ++hook->notified});
    hook->wake.notify_all();
  }
}

void Notifier::Refresh(const json& firing) {
  if (firing.empty()) return;
  const auto now = std::chrono::steady_clock::now();
  for (auto& hook : hooks_) {
    const config::HookConfig& c = hook->config;
    if (c.kind != config::HookKind::kAlertmanager || !c.alerts) continue;
    std::lock_guard lock(hook->mutex);
    if (now < hook->next_refresh) continue;
    hook->next_refresh = now + std::chrono::milliseconds(c.resend_interval_ms);
    std::erase_if(hook->queue,
                  [](const Hook::Item& i) { return i.notification.event == "refresh"; });
    if (hook->queue.size() >= kMaxQueued) {
      hook->queue.pop_front();
      ++hook->stats.dropped;
    }
    hook->queue.push_back({{"alert", "refresh", firing, {}}, 0, now, hook->notified});
    hook->wake.notify_all();
  }
}

std::vector<HookStats> Notifier::stats() const {
  std::vector<HookStats> out;
  for (const auto& hook : hooks_) {
    std::lock_guard lock(hook->mutex);
    out.push_back(hook->stats);
  }
  return out;
}

void Notifier::Run(Hook& hook) {
  std::unique_lock lock(hook.mutex);
  while (!hook.stopping) {
    if (hook.queue.empty()) {
      hook.wake.wait(lock);
      continue;
    }
    // The item due first (retries wait; new ones are due at once).
    auto next =
        std::min_element(hook.queue.begin(), hook.queue.end(),
                         [](const Hook::Item& a, const Hook::Item& b) { return a.due < b.due; });
    if (next->due > std::chrono::steady_clock::now()) {
      hook.wake.wait_until(lock, next->due);
      continue;
    }
    Hook::Item item = std::move(*next);
    hook.queue.erase(next);
    if (item.notification.event == "refresh" && item.generation != hook.notified) {
      ++hook.stats.superseded;
      continue;
    }
    lock.unlock();
    std::string error;
    try {
      if (auto delivered = Deliver(hook.config, item.notification); !delivered) {
        error = delivered.error().message;
      }
    } catch (const std::exception& e) {
      error = e.what();  // Nothing may leave this thread.
    }
    lock.lock();
    ++item.attempts;
    if (error.empty()) {
      ++hook.stats.delivered;
      continue;
    }
    ++hook.stats.failed_attempts;
    if (item.attempts >= hook.config.max_attempts) {
      ++hook.stats.given_up;
      spdlog::error("hook {}: gave up on {} ({}) after {} attempts: {}", hook.config.name,
                    item.notification.kind, item.notification.event, item.attempts, error);
      continue;
    }
    const int64_t backoff =
        std::min<int64_t>(kMaxBackoffMs, hook.config.backoff_ms << std::min(item.attempts - 1, 20));
    spdlog::warn("hook {}: attempt {} failed ({}); retrying in {} ms", hook.config.name,
                 item.attempts, error, backoff);
    item.due = std::chrono::steady_clock::now() + std::chrono::milliseconds(backoff);
    hook.queue.push_back(std::move(item));
  }
  if (!hook.queue.empty()) {
    spdlog::warn("hook {}: {} notifications not delivered at shutdown", hook.config.name,
                 hook.queue.size());
  }
}

}  // namespace tidemark::collector
