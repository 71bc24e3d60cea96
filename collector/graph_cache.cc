#include "collector/graph_cache.h"

#include "snapshot/wire.h"

namespace tidemark::collector {

snapshot::Result<std::shared_ptr<const LoadedGraph>> GraphCache::Get(
    const std::string& store_dir, const store::IndexEntry& entry) {
  const std::string key = std::to_string(entry.segment) + ":" + std::to_string(entry.offset);
  {
    std::lock_guard lock(mutex_);
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if (it->first != key) continue;
      entries_.splice(entries_.begin(), entries_, it);
      hits_.fetch_add(1);
      return entries_.front().second;
    }
  }
  misses_.fetch_add(1);
  auto message = store::ReadMessage(store_dir, entry);
  if (!message) return std::unexpected(message.error());
  auto decoded = snapshot::Decode(*message);
  std::string().swap(*message);
  if (!decoded) return std::unexpected(decoded.error());
  auto graph = analysis::HeapGraph::Load(std::move(*decoded));
  if (!graph) return std::unexpected(graph.error());
  graph->BuildParents();
  analysis::Dominators dominators = analysis::Dominators::Compute(*graph);
  auto loaded =
      std::make_shared<LoadedGraph>(LoadedGraph{std::move(*graph), std::move(dominators), 0});
  // idom, retained, preorder: 16 bytes an object, beside the graph's own.
  loaded->bytes = loaded->graph.memory_bytes() + 16 * loaded->graph.size();
  std::shared_ptr<const LoadedGraph> out = loaded;
  if (loaded->bytes > max_bytes_) return out;
  std::lock_guard lock(mutex_);
  for (const auto& [k, cached] : entries_) {
    if (k == key) return cached;  // Another query loaded it meanwhile.
  }
  entries_.emplace_front(key, out);
  bytes_ += loaded->bytes;
  while (bytes_ > max_bytes_ && entries_.size() > 1) {
    bytes_ -= entries_.back().second->bytes;
    entries_.pop_back();
  }
  return out;
}

uint64_t GraphCache::bytes() const {
  std::lock_guard lock(mutex_);
  return bytes_;
}

}  // namespace tidemark::collector
