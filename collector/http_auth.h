// BearerAuth: whether an HTTP request carries the configured token (http.token_file) in
// "Authorization: Bearer TOKEN". Compared in constant time: both sides are hashed (SHA-256) and
// the digests compared with CRYPTO_memcmp, so neither the token's bytes nor its length show in
// how long a refusal takes.
//
// Thread-safety: immutable after construction; Allows may be called from any thread.
#pragma once

#include <array>
#include <string>
#include <string_view>

namespace tidemark::collector {

class BearerAuth {
 public:
  explicit BearerAuth(const std::string& token);  // "" = no token: Enabled() is false.

  bool Enabled() const { return enabled_; }

  // REQUIRES: Enabled(). `authorization`: the header's value ("" if absent).
  bool Allows(std::string_view authorization) const;

 private:
  bool enabled_;
  std::array<unsigned char, 32> digest_{};
};

}  // namespace tidemark::collector
