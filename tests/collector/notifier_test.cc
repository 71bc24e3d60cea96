// Hooks: real commands, real sockets. (Webhooks against a real HTTP server, Alertmanager and
// the whole pipeline are in test_pipeline.py.)
#include "collector/notifier.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

namespace tidemark::collector {
namespace {

namespace fs = std::filesystem;

bool WaitFor(const std::function<bool()>& condition, int seconds = 20) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return condition();
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

Notification AlertNotification(const std::string& event = "firing") {
  Notification n;
  n.kind = "alert";
  n.event = event;
  n.payload = {{"id", "leak/r/api"},
               {"kind", "leak"},
               {"service", "api"},
               {"type", "app.Order"},
               {"rule", "r"},
               {"labels", {{"team", "core"}}},
               {"summary", "app.Order grows"},
               {"since", "2026-11-26T03:00:00.000Z"},
               {"resolved", "2026-11-26T04:00:00.000Z"},
               {"holders", {{{"path", "app.ORDERS"}, {"description", "list"}}}}};
  return n;
}

config::HookConfig Command(std::vector<std::string> argv, int64_t timeout_ms = 10'000) {
  config::HookConfig hook;
  hook.name = "cmd";
  hook.kind = config::HookKind::kCommand;
  hook.command = std::move(argv);
  hook.timeout_ms = timeout_ms;
  return hook;
}

// A loopback HTTP server that answers the first `failures` requests 500, the rest 200, and keeps
// each request's body.
class HttpServer {
 public:
  explicit HttpServer(int failures) : failures_(failures) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        ::listen(fd_, 8) != 0) {
      ADD_FAILURE() << "cannot listen: " << std::strerror(errno);
    }
    socklen_t length = sizeof address;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~HttpServer() {
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<std::string> bodies() const {
    std::lock_guard lock(mutex_);
    return bodies_;
  }

 private:
  void Serve() {
    for (int client; (client = ::accept(fd_, nullptr, nullptr)) >= 0; ::close(client)) {
      std::string request;
      char buffer[4096];
      size_t end = std::string::npos, length = 0;
      for (ssize_t n; (n = ::read(client, buffer, sizeof buffer)) > 0;) {
        request.append(buffer, static_cast<size_t>(n));
        if (end == std::string::npos && (end = request.find("\r\n\r\n")) != std::string::npos) {
          const size_t at = request.find("Content-Length: ");
          length = at < end ? std::stoul(request.substr(at + 16)) : 0;
        }
        if (end != std::string::npos && request.size() >= end + 4 + length) break;
      }
      bool fail;
      {
        std::lock_guard lock(mutex_);
        bodies_.push_back(end == std::string::npos ? "" : request.substr(end + 4));
        fail = static_cast<int>(bodies_.size()) <= failures_;
      }
      const std::string response = std::string(fail ? "HTTP/1.1 500 Oops" : "HTTP/1.1 200 OK") +
                                   "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
      (void)!::write(client, response.data(), response.size());
    }
  }
  const int failures_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
  mutable std::mutex mutex_;
  std::vector<std::string> bodies_;
};

class NotifierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(TEST_TMPDIR) /
           ("notifier_" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  fs::path dir_;
};

TEST_F(NotifierTest, CommandHookGetsTheDocumentOnStdin) {
  const fs::path out = dir_ / "stdin.json";
  const Notification n = AlertNotification();
  const auto delivered = Deliver(Command({"sh", "-c", "cat > " + out.string()}), n);
  EXPECT_TRUE(delivered) << delivered.error().message;
  const nlohmann::json got = nlohmann::json::parse(ReadFile(out));
  EXPECT_EQ(got, n.Document());
  EXPECT_EQ(got["version"], 1);
  EXPECT_EQ(got["alert"]["id"], "leak/r/api");
}

TEST_F(NotifierTest, CommandExitingNonZeroIsAFailedAttempt) {
  const auto failed =
      Deliver(Command({"sh", "-c", "cat > /dev/null; exit 3"}), AlertNotification());
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().code, snapshot::Code::kIo);
  EXPECT_NE(failed.error().message.find("exited with status 3"), std::string::npos)
      << failed.error().message;
  const auto missing = Deliver(Command({"/nonexistent/tool"}), AlertNotification());
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("cannot run"), std::string::npos);
}

TEST_F(NotifierTest, CommandOverItsTimeoutIsKilled) {
  const auto killed = Deliver(Command({"sleep", "30"}, 200), AlertNotification());
  ASSERT_FALSE(killed);
  EXPECT_NE(killed.error().message.find("did not finish within 200 ms and was killed"),
            std::string::npos)
      << killed.error().message;
}

TEST_F(NotifierTest, UnreachableWebhookIsRetriedThenGivenUp) {
  // A port nothing listens on: bound, never listening, so connecting is refused at once.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  config::HookConfig hook;
  hook.name = "down";
  hook.kind = config::HookKind::kWebhook;
  hook.url = "http://127.0.0.1:" + std::to_string(ntohs(address.sin_port)) + "/hook";
  hook.max_attempts = 3;
  hook.backoff_ms = 10;
  Notifier notifier({hook});
  notifier.Notify(AlertNotification());
  ASSERT_TRUE(WaitFor([&] { return notifier.stats()[0].given_up == 1; }));
  EXPECT_EQ(notifier.stats()[0].failed_attempts, 3u);
  EXPECT_EQ(notifier.stats()[0].delivered, 0u);
  ::close(fd);
}

TEST_F(NotifierTest, SlowHookDelaysNoOtherHook) {
  const fs::path fast_out = dir_ / "fast.json", slow_started = dir_ / "slow";
  config::HookConfig slow =
      Command({"sh", "-c", "touch " + slow_started.string() + "; exec sleep 31.5"}, 60'000);
  slow.name = "slow";
  config::HookConfig fast = Command({"sh", "-c", "cat > " + fast_out.string()});
  fast.name = "fast";
  auto notifier = std::make_unique<Notifier>(std::vector<config::HookConfig>{slow, fast});
  notifier->Notify(AlertNotification());
  notifier->Notify(AlertNotification("resolved"));
  ASSERT_TRUE(WaitFor([&] { return fs::exists(slow_started); }));
  ASSERT_TRUE(WaitFor([&] {
    for (const HookStats& s : notifier->stats()) {
      if (s.name == "fast" && s.delivered == 2) return true;
    }
    return false;
  })) << "the fast hook got both while the slow one was still running its first";
  for (const HookStats& s : notifier->stats()) {
    if (s.name == "slow") {
      EXPECT_EQ(s.delivered, 0u);
    }
  }
  // Shutting down waits for the attempt in progress at most its timeout: kill it sooner.
  (void)std::system("pkill -f 'sleep 31.5' >/dev/null 2>&1");
  notifier.reset();
}

TEST_F(NotifierTest, HooksTakeWhatTheyAreConfiguredFor) {
  const fs::path out = dir_ / "lines.jsonl";
  config::HookConfig no_resolved = Command({"sh", "-c", "cat >> " + out.string()});
  no_resolved.send_resolved = false;
  no_resolved.name = "firing-only";
  Notifier notifier({no_resolved});
  notifier.Notify(AlertNotification("resolved"));
  Notification report;
  report.kind = "report";
  report.event = "report";
  report.payload = {{"id", "nightly-1"}};
  report.hooks = {"other-hook"};
  notifier.Notify(report);  // Not for this hook.
  notifier.Notify(AlertNotification("firing"));
  ASSERT_TRUE(WaitFor([&] { return notifier.stats()[0].delivered == 1; }));
  const std::string text = ReadFile(out);
  EXPECT_NE(text.find("\"event\":\"firing\""), std::string::npos);
  EXPECT_EQ(text.find("\"event\":\"resolved\""), std::string::npos);
  EXPECT_EQ(text.find("nightly-1"), std::string::npos);
}

TEST_F(NotifierTest, AlertmanagerRefreshWaitingForARetryIsNotSentAfterAResolution) {
  HttpServer alertmanager(/*failures=*/1);
  config::HookConfig hook;
  hook.name = "am";
  hook.kind = config::HookKind::kAlertmanager;
  hook.url = alertmanager.url();
  hook.max_attempts = 5;
  hook.backoff_ms = 1000;
  Notifier notifier({hook});
  const Notification firing = AlertNotification("firing");
  notifier.Refresh(nlohmann::json::array({firing.payload}));
  ASSERT_TRUE(WaitFor([&] { return notifier.stats()[0].failed_attempts == 1; }));
  // The refresh waits a second for its retry; the alert resolves meanwhile.
  notifier.Notify(AlertNotification("resolved"));
  ASSERT_TRUE(WaitFor([&] { return notifier.stats()[0].superseded == 1; }))
      << "the refresh was sent again after the resolution";
  EXPECT_EQ(notifier.stats()[0].delivered, 1u);
  const auto bodies = alertmanager.bodies();
  ASSERT_EQ(bodies.size(), 2u);
  EXPECT_EQ(nlohmann::json::parse(bodies[1])[0]["endsAt"], "2026-11-26T04:00:00.000Z");
}

TEST(AlertmanagerAlert, CarriesLabelsAnnotationsAndEndsAtWhenResolvedOrValidUntilWhenFiring) {
  const Notification n = AlertNotification("resolved");
  const nlohmann::json a = AlertmanagerAlert(n.payload, "resolved", 0);
  EXPECT_EQ(a["labels"]["alertname"], "TidemarkLeak");
  EXPECT_EQ(a["labels"]["service"], "api");
  EXPECT_EQ(a["labels"]["type"], "app.Order");
  EXPECT_EQ(a["labels"]["team"], "core");
  EXPECT_EQ(a["annotations"]["held_by"], "app.ORDERS");
  EXPECT_EQ(a["startsAt"], "2026-11-26T03:00:00.000Z");
  EXPECT_EQ(a["endsAt"], "2026-11-26T04:00:00.000Z");
  // Firing: valid until the time given (the hook's alert_ttl from now), not the resolution.
  EXPECT_EQ(AlertmanagerAlert(n.payload, "firing", 1'795'000'000'000'000'000)["endsAt"],
            "2026-11-18T11:06:40.000Z");
}

TEST(AlertmanagerAlert, MemoryPressureIsOneAlertWhateverItsLargestType) {
  Notification n = AlertNotification("firing");
  n.payload["kind"] = "memory-pressure";
  n.payload["memory"] = {{"current", 90}, {"limit", 100}, {"source", "rss"}, {"crossed", 90}};
  const nlohmann::json a = AlertmanagerAlert(n.payload, "updated", 1'795'000'000'000'000'000);
  EXPECT_EQ(a["labels"]["alertname"], "TidemarkMemoryPressure");
  EXPECT_FALSE(a["labels"].contains("type"));
  EXPECT_EQ(a["annotations"]["largest_type"], "app.Order");
  EXPECT_NE(a["annotations"]["memory"].get<std::string>().find("\"crossed\":90"),
            std::string::npos);
  EXPECT_EQ(a["endsAt"], "2026-11-18T11:06:40.000Z");
}

}  // namespace
}  // namespace tidemark::collector
