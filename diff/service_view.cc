#include "diff/service_view.h"

#include <algorithm>
#include <map>
#include <unordered_map>

namespace tidemark::diff {

std::vector<ServiceRow> ServiceView(const RollingState& state, const ServiceViewOptions& options) {
  struct TypeSum {
    double count = 0, bytes = 0;
  };
  struct Service {
    std::vector<const RollingState::Agent*> agents;
    double rss = 0, heap = 0;
    std::unordered_map<uint32_t, TypeSum> types;
  };
  std::map<std::string, Service> services;
  for (const auto& [key, agent] : state.agents()) {
    Service& s = services[agent->identity.service];
    s.agents.push_back(agent.get());
    s.rss += static_cast<double>(agent->rss_bytes);
    s.heap += static_cast<double>(agent->heap_bytes);
    for (size_t slot = 0; slot < agent->type_count(); ++slot) {
      TypeSum& t = s.types[agent->type_id(slot)];
      t.count += agent->count_now(slot);
      t.bytes += agent->bytes_now(slot);
    }
  }
  std::vector<std::pair<double, const std::string*>> by_heap;
  for (const auto& [name, s] : services) by_heap.emplace_back(s.heap, &name);
  std::sort(by_heap.begin(), by_heap.end(), [](auto& a, auto& b) { return a.first > b.first; });
  if (by_heap.size() > options.max_services) by_heap.resize(options.max_services);

  std::vector<ServiceRow> rows;
  std::vector<Sample> samples;
  for (const auto& [heap, name] : by_heap) {
    const Service& s = services.at(*name);
    ServiceRow row{*name, s.agents.size(), s.rss, s.heap, {}};
    std::vector<std::pair<double, uint32_t>> ranked;
    for (const auto& [id, t] : s.types) ranked.emplace_back(t.bytes, id);
    const size_t k = std::min(ranked.size(), options.top_k);
    std::partial_sort(ranked.begin(), ranked.begin() + static_cast<ptrdiff_t>(k), ranked.end(),
                      [](auto& a, auto& b) { return a.first > b.first; });
    ranked.resize(k);
    for (const auto& [service, type] : options.always) {
      const int64_t id = state.names().Find(type);
      if (service != *name || id < 0 || !s.types.count(static_cast<uint32_t>(id))) continue;
      if (std::none_of(ranked.begin(), ranked.end(), [&](auto& r) { return r.second == id; })) {
        ranked.emplace_back(0, static_cast<uint32_t>(id));
      }
    }
    for (const auto& [ignored, id] : ranked) {
      const TypeSum& t = s.types.at(id);
      double rate = 0;
      for (const RollingState::Agent* agent : s.agents) {
        const int64_t slot = agent->SlotOf(id);
        if (slot < 0) continue;
        state.Samples(*agent, static_cast<size_t>(slot), samples);
        rate += ComputeGrowth(samples, options.window_ns).bytes_per_hour;
      }
      row.types.push_back({state.names().Name(id), t.count, t.bytes, rate});
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace tidemark::diff
