// A minimal real collector for the agent's tests: a ZeroMQ ROUTER on an ephemeral loopback
// port that decodes each snapshot and acknowledges it with its sequence number.
//
// Prints "endpoint tcp://127.0.0.1:PORT" once bound, then one line per message:
// "ok SERVICE PID SEQ KIND OBJECTS" or "bad REASON". Exits when stdin closes.
#include <poll.h>
#include <unistd.h>

#include <iostream>
#include <zmq.hpp>

#include "snapshot/control.h"
#include "snapshot/wire.h"

int main() {
  zmq::context_t context(1);
  zmq::socket_t router(context, zmq::socket_type::router);
  router.set(zmq::sockopt::linger, 0);
  router.bind("tcp://127.0.0.1:0");
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
      auto snap = tidemark::snapshot::Decode(body.to_string_view());
      if (!snap) {
        std::cout << "bad " << snap.error().message << std::endl;
        continue;
      }
      const auto& h = snap->header;
      std::cout << "ok " << h.identity.service << " " << h.identity.pid << " " << h.seq << " "
                << tidemark::snapshot::KindName(h.kind) << " " << h.objects << std::endl;
      tidemark::snapshot::Control ack;
      ack.ack = h.seq;
      router.send(identity, zmq::send_flags::sndmore);
      router.send(zmq::buffer(tidemark::snapshot::EncodeControl(ack)), zmq::send_flags::none);
    }
  }
}
