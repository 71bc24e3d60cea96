// A minimal real collector for the agent's tests: a ZeroMQ ROUTER on an ephemeral loopback
// port that decodes each snapshot and acknowledges it with its sequence number.
//
// Prints "endpoint tcp://127.0.0.1:PORT" once bound, then one line per message:
// "ok SERVICE PID SEQ KIND OBJECTS TIMESTAMP_NS CROSSED MEMORY LIMIT SOURCE" (the header's
// memory figures: 0 0 0 - without a limit), "bye SERVICE PID SEQ START_NS" for a goodbye,
// or "bad REASON". Exits when stdin closes.
// With --graph-requests it asks for graphs as tidemarkd does: three requests at once after the
// first summary, one more right after the first graph. An argument tcp://HOST:PORT binds there
// instead of an ephemeral port.
#include <poll.h>
#include <unistd.h>

#include <iostream>
#include <string>
#include <zmq.hpp>

#include "snapshot/control.h"
#include "snapshot/wire.h"

int main(int argc, char** argv) {
  bool ask_for_graphs = false;
  std::string bind_to = "tcp://127.0.0.1:0";
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--graph-requests") ask_for_graphs = true;
    if (arg.rfind("tcp://", 0) == 0) bind_to = arg;
  }
  bool asked_after_summary = false, asked_after_graph = false;
  zmq::context_t context(1);
  zmq::socket_t router(context, zmq::socket_type::router);
  router.set(zmq::sockopt::linger, 0);
  router.bind(bind_to);
  std::cout << "endpoint " << router.get(zmq::sockopt::last_endpoint) << std::endl;
  zmq::pollitem_t items[2] = {{static_cast<void*>(router), 0, ZMQ_POLLIN, 0},
                              {nullptr, STDIN_FILENO, ZMQ_POLLIN, 0}};
  while (true) {
    zmq::poll(items, 2, std::chrono::milliseconds(1000));
    if (items[1].revents & (ZMQ_POLLIN | ZMQ_POLLERR)) {
      char buf[256];
      if (read(STDIN_FILENO, buf, sizeof buf) <= 0) return 0;
    }
    if (!(items[0].revents & ZMQ_POLLIN)) continue;
    zmq::message_t identity, body;
    while (router.recv(identity, zmq::recv_flags::dontwait)) {
      if (!router.recv(body, zmq::recv_flags::none)) break;
      if (tidemark::snapshot::IsGoodbye(body.to_string_view())) {
        auto bye = tidemark::snapshot::DecodeGoodbye(body.to_string_view());
        if (!bye) {
          std::cout << "bad " << bye.error().message << std::endl;
        } else {
          std::cout << "bye " << bye->identity.service << " " << bye->identity.pid << " "
                    << bye->seq << " " << bye->identity.start_time_ns << std::endl;
        }
        continue;
      }
      auto snap = tidemark::snapshot::Decode(body.to_string_view());
      if (!snap) {
        std::cout << "bad " << snap.error().message << std::endl;
        continue;
      }
      const auto& h = snap->header;
      std::cout << "ok " << h.identity.service << " " << h.identity.pid << " " << h.seq << " "
                << tidemark::snapshot::KindName(h.kind) << " " << h.objects << " " << h.timestamp_ns
                << " " << h.memory.crossed_pct << " " << h.memory.current << " " << h.memory.limit
                << " " << (h.memory.source.empty() ? "-" : h.memory.source) << std::endl;
      const std::string peer = identity.to_string();  // Sending empties the message.
      tidemark::snapshot::Control ack;
      ack.ack = h.seq;
      router.send(identity, zmq::send_flags::sndmore);
      router.send(zmq::buffer(tidemark::snapshot::EncodeControl(ack)), zmq::send_flags::none);
      const bool graph = h.kind == tidemark::snapshot::Kind::kGraph;
      int requests = 0;
      if (ask_for_graphs && !graph && !asked_after_summary) {
        asked_after_summary = true;
        requests = 3;
      } else if (ask_for_graphs && graph && !asked_after_graph) {
        asked_after_graph = true;
        requests = 1;
      }
      tidemark::snapshot::Control request;
      request.graph_requested = true;
      for (int i = 0; i < requests; ++i) {
        router.send(zmq::buffer(peer), zmq::send_flags::sndmore);
        router.send(zmq::buffer(tidemark::snapshot::EncodeControl(request)), zmq::send_flags::none);
      }
    }
  }
}
