// The local log's tamper evidence, shared by its writer and its verifier.
//
// Every line starts with the fixed prefix {"seq":"N","prev":"H", where H is
// the hex SHA-256 of the previous line's bytes (without its newline), so an
// edited, removed or reordered line breaks the chain at the next one. Every
// so often a checkpoint record carries an Ed25519 signature over its own seq
// and prev: rewriting history and re-hashing the chain after it then needs
// the signing key, which only root can read.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace corral::chain {

inline constexpr size_t kHashHexLength = 64;
// The prev of the very first record of a log.
inline const std::string kGenesis(kHashHexLength, '0');

// Incremental SHA-256 with its context kept between calls (the writer hashes
// every line; setting a context up each time costs more than the hash).
class Hasher {
 public:
  Hasher();
  ~Hasher();
  Hasher(const Hasher&) = delete;
  Hasher& operator=(const Hasher&) = delete;
  // Lowercase hex of SHA-256(bytes).
  std::string hex(std::string_view bytes);
  // The same into `out`, whose allocation is reused.
  void hex(std::string_view bytes, std::string& out);

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

struct LineHead {
  uint64_t seq = 0;
  std::string_view prev;  // 64 hex digits
};

// Reads the fixed prefix; nullopt when the line does not start with it.
std::optional<LineHead> parse_head(std::string_view line);
// Appends the prefix for a record, up to and including prev's closing quote.
void append_head(std::string& out, uint64_t seq, std::string_view prev);

// What a checkpoint's signature covers.
std::string checkpoint_message(uint64_t seq, std::string_view prev, std::string_view reason);

// An Ed25519 key pair. The private half lives in a root-only PEM file; the
// public half beside it (KEY.pub) is what verifiers are given.
class SigningKey {
 public:
  // Loads `path`, or creates it (mode 0600, directories 0700) and KEY.pub
  // when it does not exist. Throws naming the file on any failure.
  static SigningKey load_or_create(const std::string& path);
  SigningKey(SigningKey&&) noexcept;
  ~SigningKey();

  std::string sign_hex(std::string_view message) const;
  const std::string& key_id() const { return key_id_; }

 private:
  struct Pkey;
  explicit SigningKey(std::unique_ptr<Pkey> key);
  std::unique_ptr<Pkey> key_;
  std::string key_id_;
};

class VerifyKey {
 public:
  // Loads a PEM public key (or a private key, whose public half is used).
  static VerifyKey load(const std::string& path);
  VerifyKey(VerifyKey&&) noexcept;
  ~VerifyKey();

  bool verify_hex(std::string_view message, std::string_view signature_hex) const;
  const std::string& key_id() const { return key_id_; }

 private:
  struct Pkey;
  explicit VerifyKey(std::unique_ptr<Pkey> key);
  std::unique_ptr<Pkey> key_;
  std::string key_id_;
};

}  // namespace corral::chain
