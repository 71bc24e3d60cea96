#include "cli/flags.h"

#include <ostream>

namespace tidemark::cli {

std::optional<int64_t> IntOption(const Flags& flags, const std::string& option, int64_t fallback,
                                 std::ostream& err) {
  auto v = flags.value(option);
  if (!v) return fallback;
  try {
    size_t used = 0;
    const int64_t n = std::stoll(*v, &used);
    if (used == v->size()) return n;
  } catch (const std::exception&) {
  }
  err << "tidemark: " << option << " takes an integer, not '" << *v << "'\n";
  return std::nullopt;
}

}  // namespace tidemark::cli
