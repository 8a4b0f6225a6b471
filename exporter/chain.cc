#include "chain.h"

#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include <fmt/format.h>

#include "unique_fd.h"

namespace corral::chain {
namespace {

constexpr std::string_view kSeqKey = "{\"seq\":\"";
constexpr std::string_view kPrevKey = "\",\"prev\":\"";

void to_hex(const unsigned char* p, size_t n, std::string& out) {
  static constexpr char kDigits[] = "0123456789abcdef";
  out.resize(n * 2);
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kDigits[p[i] >> 4];
    out[2 * i + 1] = kDigits[p[i] & 15];
  }
}

std::string to_hex(const unsigned char* p, size_t n) {
  std::string out;
  to_hex(p, n, out);
  return out;
}

std::optional<std::string> from_hex(std::string_view hex) {
  if (hex.size() % 2) return std::nullopt;
  std::string out(hex.size() / 2, '\0');
  for (size_t i = 0; i < out.size(); ++i) {
    unsigned v = 0;
    auto [p, ec] = std::from_chars(hex.data() + 2 * i, hex.data() + 2 * i + 2, v, 16);
    if (ec != std::errc() || p != hex.data() + 2 * i + 2) return std::nullopt;
    out[i] = static_cast<char>(v);
  }
  return out;
}

bool is_hex(std::string_view s) {
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

std::string openssl_error() {
  unsigned long e = ERR_get_error();
  if (!e) return "unknown openssl error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return buf;
}

struct PkeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;

struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxDeleter>;

struct MdDeleter {
  void operator()(EVP_MD* m) const { EVP_MD_free(m); }
};
using MdPtr = std::unique_ptr<EVP_MD, MdDeleter>;

struct FileDeleter {
  void operator()(FILE* f) const { fclose(f); }
};
using FilePtr = std::unique_ptr<FILE, FileDeleter>;

// The key's id: the first 8 bytes of SHA-256 over its raw public half.
std::string key_id_of(EVP_PKEY* key) {
  unsigned char raw[64];
  size_t len = sizeof raw;
  if (EVP_PKEY_get_raw_public_key(key, raw, &len) != 1)
    throw std::runtime_error("failed to read the public key: " + openssl_error());
  Hasher h;
  return h.hex(std::string_view(reinterpret_cast<char*>(raw), len)).substr(0, 16);
}

void write_pem(const std::string& path, EVP_PKEY* key, bool private_half, mode_t mode) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode));
  if (!fd)
    throw std::system_error(errno, std::generic_category(), "failed to create key file " + path);
  FilePtr f(fdopen(fd.get(), "w"));
  if (!f) throw std::system_error(errno, std::generic_category(), "failed to open " + path);
  fd.release();
  int ok = private_half ? PEM_write_PrivateKey(f.get(), key, nullptr, nullptr, 0, nullptr, nullptr)
                        : PEM_write_PUBKEY(f.get(), key);
  if (ok != 1 || fflush(f.get()) != 0 || fsync(fileno(f.get())) != 0)
    throw std::runtime_error("failed to write key file " + path + ": " + openssl_error());
}

PkeyPtr read_pem(const std::string& path, bool private_half) {
  FilePtr f(fopen(path.c_str(), "re"));
  if (!f)
    throw std::system_error(errno, std::generic_category(), "failed to read key file " + path);
  PkeyPtr key(private_half ? PEM_read_PrivateKey(f.get(), nullptr, nullptr, nullptr)
                           : PEM_read_PUBKEY(f.get(), nullptr, nullptr, nullptr));
  if (!key && !private_half) {
    // A private key file works for verifying too.
    rewind(f.get());
    ERR_clear_error();
    key.reset(PEM_read_PrivateKey(f.get(), nullptr, nullptr, nullptr));
  }
  if (!key) throw std::runtime_error("key file " + path + " holds no PEM key: " + openssl_error());
  if (EVP_PKEY_get_id(key.get()) != EVP_PKEY_ED25519)
    throw std::runtime_error("key file " + path + " is not an Ed25519 key");
  return key;
}

}  // namespace

struct Hasher::Ctx {
  MdCtxPtr ctx{EVP_MD_CTX_new()};
  // Fetched once: EVP_sha256() makes every init look the implementation up
  // again under the provider store's lock, which cost as much as the hash.
  MdPtr md{EVP_MD_fetch(nullptr, "SHA256", nullptr)};
};

Hasher::Hasher() : ctx_(std::make_unique<Ctx>()) {
  if (!ctx_->ctx) throw std::runtime_error("failed to allocate a sha-256 context");
  if (!ctx_->md) throw std::runtime_error("failed to fetch sha-256: " + openssl_error());
}
Hasher::~Hasher() = default;

std::string Hasher::hex(std::string_view bytes) {
  std::string out;
  hex(bytes, out);
  return out;
}

void Hasher::hex(std::string_view bytes, std::string& out) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  if (EVP_DigestInit_ex2(ctx_->ctx.get(), ctx_->md.get(), nullptr) != 1 ||
      EVP_DigestUpdate(ctx_->ctx.get(), bytes.data(), bytes.size()) != 1 ||
      EVP_DigestFinal_ex(ctx_->ctx.get(), md, &len) != 1)
    throw std::runtime_error("sha-256 failed: " + openssl_error());
  to_hex(md, len, out);
}

std::optional<LineHead> parse_head(std::string_view line) {
  if (!line.starts_with(kSeqKey)) return std::nullopt;
  line.remove_prefix(kSeqKey.size());
  LineHead head;
  auto [p, ec] = std::from_chars(line.data(), line.data() + line.size(), head.seq);
  if (ec != std::errc() || p == line.data()) return std::nullopt;
  line.remove_prefix(static_cast<size_t>(p - line.data()));
  if (!line.starts_with(kPrevKey)) return std::nullopt;
  line.remove_prefix(kPrevKey.size());
  if (line.size() < kHashHexLength + 1 || line[kHashHexLength] != '"') return std::nullopt;
  head.prev = line.substr(0, kHashHexLength);
  if (!is_hex(head.prev)) return std::nullopt;
  return head;
}

void append_head(std::string& out, uint64_t seq, std::string_view prev) {
  char digits[20];
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, seq);
  out += kSeqKey;
  out.append(digits, end);
  out += kPrevKey;
  out += prev;
  out += '"';
}

std::string checkpoint_message(uint64_t seq, std::string_view prev, std::string_view reason) {
  return "corral-audit-checkpoint-v1\n" + std::to_string(seq) + "\n" + std::string(prev) + "\n" +
         std::string(reason);
}

struct SigningKey::Pkey {
  PkeyPtr key;
};
struct VerifyKey::Pkey {
  PkeyPtr key;
};

SigningKey::SigningKey(std::unique_ptr<Pkey> key) : key_(std::move(key)) {
  key_id_ = key_id_of(key_->key.get());
}
SigningKey::SigningKey(SigningKey&&) noexcept = default;
SigningKey::~SigningKey() = default;

SigningKey SigningKey::load_or_create(const std::string& path) {
  auto pkey = std::make_unique<Pkey>();
  auto dir = std::filesystem::path(path).parent_path();
  if (!dir.empty() && !std::filesystem::exists(dir)) {
    std::filesystem::create_directories(dir);
    std::filesystem::permissions(dir, std::filesystem::perms::owner_all);
  }
  // Two corral processes starting at once must not both create a key: the
  // directory's lock makes one create it and the other load it.
  UniqueFd dir_fd(::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir_fd || ::flock(dir_fd.get(), LOCK_EX) != 0)
    throw std::system_error(errno, std::generic_category(),
                            "failed to lock the key directory of " + path);
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) {
    // A key others can read signs nothing an attacker could not forge.
    if (st.st_mode & (S_IRWXG | S_IRWXO))
      throw std::runtime_error("signing key " + path + " is readable by others (mode " +
                               fmt::format("{:04o}", st.st_mode & 07777) + "); it must be 0600");
    pkey->key = read_pem(path, true);
    return SigningKey(std::move(pkey));
  }
  if (errno != ENOENT)
    throw std::system_error(errno, std::generic_category(), "failed to stat key file " + path);
  EVP_PKEY* raw = nullptr;
  std::unique_ptr<EVP_PKEY_CTX, void (*)(EVP_PKEY_CTX*)> ctx(
      EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr), EVP_PKEY_CTX_free);
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 || EVP_PKEY_keygen(ctx.get(), &raw) != 1)
    throw std::runtime_error("failed to generate an ed25519 key: " + openssl_error());
  pkey->key.reset(raw);
  write_pem(path, raw, true, 0600);
  std::string pub = path + ".pub";
  std::filesystem::remove(pub);
  write_pem(pub, raw, false, 0644);
  return SigningKey(std::move(pkey));
}

std::string SigningKey::sign_hex(std::string_view message) const {
  MdCtxPtr ctx(EVP_MD_CTX_new());
  unsigned char sig[64];
  size_t len = sizeof sig;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key_->key.get()) != 1 ||
      EVP_DigestSign(ctx.get(), sig, &len, reinterpret_cast<const unsigned char*>(message.data()),
                     message.size()) != 1)
    throw std::runtime_error("failed to sign a checkpoint: " + openssl_error());
  return to_hex(sig, len);
}

VerifyKey::VerifyKey(std::unique_ptr<Pkey> key) : key_(std::move(key)) {
  key_id_ = key_id_of(key_->key.get());
}
VerifyKey::VerifyKey(VerifyKey&&) noexcept = default;
VerifyKey::~VerifyKey() = default;

VerifyKey VerifyKey::load(const std::string& path) {
  auto pkey = std::make_unique<Pkey>();
  pkey->key = read_pem(path, false);
  return VerifyKey(std::move(pkey));
}

bool VerifyKey::verify_hex(std::string_view message, std::string_view signature_hex) const {
  auto sig = from_hex(signature_hex);
  if (!sig) return false;
  MdCtxPtr ctx(EVP_MD_CTX_new());
  bool ok = ctx &&
            EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key_->key.get()) == 1 &&
            EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig->data()),
                             sig->size(), reinterpret_cast<const unsigned char*>(message.data()),
                             message.size()) == 1;
  ERR_clear_error();
  return ok;
}

}  // namespace corral::chain
