#include "collector/http_auth.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

namespace tidemark::collector {
namespace {

std::array<unsigned char, 32> Digest(std::string_view text) {
  std::array<unsigned char, 32> out{};
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), out.data());
  return out;
}

}  // namespace

BearerAuth::BearerAuth(const std::string& token) : enabled_(!token.empty()) {
  if (enabled_) digest_ = Digest(token);
}

bool BearerAuth::Allows(std::string_view authorization) const {
  constexpr std::string_view kScheme = "Bearer ";
  if (authorization.size() <= kScheme.size()) return false;
  // The scheme is case-insensitive (RFC 7235); the token is not.
  for (size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(authorization[i])) !=
        std::tolower(static_cast<unsigned char>(kScheme[i]))) {
      return false;
    }
  }
  const auto given = Digest(authorization.substr(kScheme.size()));
  return CRYPTO_memcmp(given.data(), digest_.data(), digest_.size()) == 0;
}

}  // namespace tidemark::collector
