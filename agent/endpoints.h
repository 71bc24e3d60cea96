// Endpoints: an agent given several collectors (TIDEMARK_ENDPOINT=tcp://a:7878,tcp://b:7878)
// orders them by rendezvous hashing of its instance: each agent's first is its home, and the
// rest, in order, where it goes when the one it uses stops acknowledging. Every agent of a
// fleet computes its own order with no coordination; removing one collector moves only the
// agents whose home it was, spread over the others. No Python here.
//
// Thread-safety: reentrant.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tidemark::agent {

// "a, b,c" -> {"a", "b", "c"}: split at commas, blanks around each dropped, empty ones too.
std::vector<std::string> SplitEndpoints(const std::string& list);

// The endpoints, highest rendezvous score first: score = FNV-1a 64 of instance + "\n" +
// endpoint, mixed (splitmix64). `instance`: snapshot::AgentName of the agent's identity.
std::vector<std::string> RendezvousOrder(std::vector<std::string> endpoints,
                                         const std::string& instance);

}  // namespace tidemark::agent
