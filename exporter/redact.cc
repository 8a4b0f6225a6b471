#include "redact.h"

#include <re2/re2.h>
#include <re2/set.h>

#include <algorithm>
#include <array>
#include <bit>
#include <initializer_list>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace corral {
namespace {

using Argv = google::protobuf::RepeatedPtrField<std::string>;
constexpr auto npos = std::string_view::npos;

constexpr bool is_upper(char c) { return c >= 'A' && c <= 'Z'; }
constexpr bool is_lower(char c) { return c >= 'a' && c <= 'z'; }
constexpr bool is_alpha(char c) { return is_upper(c) || is_lower(c); }
constexpr bool is_alnum(char c) { return is_alpha(c) || (c >= '0' && c <= '9'); }
constexpr bool is_name_char(char c) { return is_alnum(c) || c == '_'; }
constexpr bool is_option_char(char c) { return is_name_char(c) || c == '-' || c == '.'; }
constexpr char to_upper(char c) { return is_lower(c) ? static_cast<char>(c - 'a' + 'A') : c; }
constexpr char to_lower(char c) { return is_upper(c) ? static_cast<char>(c - 'A' + 'a') : c; }

template <bool (*Pred)(char)>
bool all(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return Pred(c); });
}

bool one_of(std::string_view s, std::initializer_list<std::string_view> set) {
  return std::find(set.begin(), set.end(), s) != set.end();
}

// What a name says about its value.
enum class Kind {
  kPlain,
  kSecret,
  kSecretOrPath,   // a key or credentials, or the path of a file holding them, which stays
  kAuthorization,  // "Bearer X": the scheme word stays, it tells what kind of secret was there
};

// A name cut into upper-case words at non-alphanumerics and at lower-to-upper changes
// ("x-api-key", "clientSecret"), stored back to back so that joined() spans the words.
class Words {
 public:
  explicit Words(std::string_view name) {
    bool in_word = false;
    char prev = 0;
    for (char c : name) {
      if (!is_alnum(c)) {
        in_word = false;
      } else {
        if (in_word && is_lower(prev) && is_upper(c)) in_word = false;
        if (!in_word) {
          if (count_ == kMaxWords) break;
          start_[count_++] = len_;
          in_word = true;
        }
        if (len_ == sizeof buf_) break;
        buf_[len_++] = to_upper(c);
      }
      prev = c;
    }
    start_[count_] = len_;
  }

  size_t size() const { return count_; }
  std::string_view operator[](size_t i) const {
    return {buf_ + start_[i], start_[i + 1] - start_[i]};
  }
  std::string_view joined() const { return {buf_, len_}; }

 private:
  static constexpr size_t kMaxWords = 24;
  char buf_[256];
  size_t len_ = 0;
  size_t start_[kMaxWords + 1];
  size_t count_ = 0;
};

// Whether a name (of a variable, option, header, JSON key...) holds a secret. Every name it
// accepts contains one of the hints of has_hint(), case aside.
Kind classify(std::string_view name) {
  const Words words(name);
  size_t n = words.size();
  // "--no-password", "--ask-pass", "set-credentials", "TOKEN_FILE", "SECRET_NAME": flags,
  // subcommands, and names of other things
  if (n == 0 ||
      one_of(words[0], {"NO", "SKIP", "ASK", "WITH", "WITHOUT", "ENABLE", "DISABLE", "SET", "GET",
                        "UNSET"}) ||
      one_of(words[n - 1],
             {"FILE", "FILES", "PATH", "DIR", "FD", "URL", "URI", "ENDPOINT", "HOST", "PORT",
              "SERVER", "DOMAIN", "REALM", "SCOPE", "SCOPES", "PROVIDER", "USER", "USERNAME",
              "EMAIL", "NAME", "ID", "TYPE", "METHOD", "MODE", "LENGTH", "LEN", "COUNT", "LIMIT",
              "TTL", "TIMEOUT", "EXPIRY", "EXPIRES", "ENABLED", "REQUIRED", "STDIN", "PROMPT",
              "HELPER", "CMD", "COMMAND", "AUTHENTICATION"}))
    return Kind::kPlain;
  const std::string_view all = words.joined();
  if (all.find("PRIVATEKEY") != npos || all.find("CREDENTIAL") != npos) {
    return Kind::kSecretOrPath;
  }
  for (std::string_view part :
       {"SECRET", "PASSWORD", "PASSWD", "PASSPHRASE", "APIKEY", "ACCESSKEY", "SESSIONKEY"}) {
    if (all.find(part) != npos) return Kind::kSecret;
  }
  for (size_t i = 0; i < n; ++i) {
    const std::string_view w = words[i];
    // Whole words: "TOKENIZER", "MAX_TOKENS", "BYPASS", "PWD" (the shell's cwd) are no secrets.
    if (w.ends_with("TOKEN") || (w.ends_with("PASS") && !one_of(w, {"BYPASS", "COMPASS"})) ||
        one_of(w, {"PASSIN", "PASSOUT", "CREDS"}) || (w == "PWD" && n > 1)) {
      return Kind::kSecret;
    }
    if (w == "KEY" || w == "KEYS") {
      for (size_t j = 0; j < i; ++j) {
        if (one_of(words[j], {"SSH", "SIGNING", "DEPLOY"})) return Kind::kSecretOrPath;
        if (one_of(words[j], {"API", "ACCESS", "SESSION", "MASTER", "CLIENT", "AUTH", "LICENSE",
                              "ENCRYPTION", "ADMIN"})) {
          return Kind::kSecret;
        }
      }
    }
  }
  // Last word only: "AUTH_TYPE", "SSH_AUTH_SOCK", "COOKIE_JAR", "SIGNATURE_VERSION" are
  // settings; "AUTHOR" is no AUTH at all.
  if (n > 1 && one_of(words[n - 1], {"HEADER", "HEADERS"})) --n;
  const std::string_view last = words[n - 1];
  if (last == "AUTHORIZATION") return Kind::kAuthorization;
  if (last.ends_with("AUTH") || one_of(last, {"COOKIE", "SIG", "SIGNATURE"})) return Kind::kSecret;
  return Kind::kPlain;
}

// "/run/secrets/db", "~/.ssh/id_ed25519", "sa.json": where a key is, not the key.
bool looks_like_path(std::string_view v) {
  if (v.find_first_of(" \t\r\n") != npos) return false;
  return v.starts_with('/') || v.starts_with("~/") || v.starts_with("./") ||
         v.starts_with("../") || v.ends_with(".pem") || v.ends_with(".key") ||
         v.ends_with(".json") || v.ends_with(".p12") || v.ends_with(".pfx");
}

// "$TOKEN", "${TOKEN}", or the "$" of "$(cat token)": where a value comes from, not the value.
bool is_reference(std::string_view v) {
  if (!v.starts_with('$')) return false;
  v.remove_prefix(1);
  if (v.starts_with('{') && v.ends_with('}')) v = v.substr(1, v.size() - 2);
  return all<is_name_char>(v);
}

// "Bearer X" -> "X". A scheme masked as a lone word stays too.
std::string_view after_scheme(std::string_view v) {
  const size_t end = v.find_first_of(" \t");
  if (end == npos || end == 0 ||
      !(all<is_option_char>(v.substr(0, end)) || v.substr(0, end) == kRedacted))
    return v;
  const size_t rest = v.find_first_not_of(" \t", end);
  return rest == npos ? v.substr(v.size()) : v.substr(rest);
}

// Whether `v` holds masks and nothing else but punctuation: "[REDACTED] [REDACTED]", left by two
// rules over parts of one value, is masked already.
bool masked_already(std::string_view v) {
  if (v.find(kRedacted) == npos) return false;
  while (!v.empty()) {
    if (v.starts_with(kRedacted)) {
      v.remove_prefix(kRedacted.size());
    } else if (is_alnum(v[0]) || static_cast<uint8_t>(v[0]) >= 0x80) {
      return false;
    } else {
      v.remove_prefix(1);
    }
  }
  return true;
}

// The part of `value` to mask; empty when there is none (nothing, masks already, a reference,
// the path of a key file).
std::string_view secret_part(std::string_view value, Kind kind) {
  if (kind == Kind::kSecretOrPath && looks_like_path(value)) return {};
  if (kind == Kind::kAuthorization) value = after_scheme(value);
  if (value.empty() || masked_already(value) || is_reference(value)) return {};
  return value;
}

// Replaces `secret`, a view into `text`, with the mask. Counts one value unless the mask only
// widens masks already there ("Cookie: a=b; token=[REDACTED]").
uint32_t mask(std::string& text, std::string_view secret) {
  const uint32_t counted = secret.find(kRedacted) == npos;
  text.replace(secret.data() - text.data(), secret.size(), kRedacted);
  return counted;
}

// Whether `text` has `word` at `start`, or right before `end`: loops, not memcmp calls, as the
// words are short and asked about at many positions.
bool starts_at(std::string_view text, size_t start, std::string_view word) {
  if (text.size() < start || text.size() - start < word.size()) return false;
  for (size_t k = 0; k < word.size(); ++k) {
    if (text[start + k] != word[k]) return false;
  }
  return true;
}
bool ends_at(std::string_view text, size_t end, std::string_view word) {
  return end >= word.size() && starts_at(text, end - word.size(), word);
}

bool in(char c, std::string_view set) { return set.find(c) != npos; }

// Whether a token's prefix ends at `i`, a '_' or '-': ghp_ github_pat_ glpat- xoxb- sk- sk_ rk_
// npm_ hf_ pypi-.
bool token_prefix_at(std::string_view text, size_t i) {
  return ends_at(text, i, "sk") || ends_at(text, i, "rk") || ends_at(text, i, "hf") ||
         (i >= 3 && ends_at(text, i - 1, "gh") && in(text[i - 1], "pousr")) ||
         (i >= 4 && ends_at(text, i - 1, "xox") && in(text[i - 1], "abeprs")) ||
         ends_at(text, i, "npm") || ends_at(text, i, "pypi") || ends_at(text, i, "glpat") ||
         ends_at(text, i, "github");
}

// Words, case aside, one of which every rule but the token formats needs: the name hints that
// classify() accepts no name without, commands, "://" of a URL, "-----" of a PEM line.
constexpr std::string_view kHints[] = {
    "token", "secret", "pass",  "pwd",   "cred",    "auth", "cookie", "sig",
    "key",   "curl",   "login", "mysql", "mariadb", "://",  "-----",
};

// For each byte, the hints that start with it, case aside, as bits.
constexpr std::array<uint16_t, 256> kHintStarts = [] {
  std::array<uint16_t, 256> starts{};
  for (size_t h = 0; h < std::size(kHints); ++h) {
    const char c = kHints[h][0];
    starts[static_cast<uint8_t>(c)] |= 1u << h;
    starts[static_cast<uint8_t>(to_upper(c))] |= 1u << h;
  }
  return starts;
}();

bool has_hint(std::string_view text) {
  for (size_t i = 0; i < text.size(); ++i) {
    for (unsigned m = kHintStarts[static_cast<uint8_t>(text[i])]; m != 0; m &= m - 1) {
      const std::string_view hint = kHints[std::countr_zero(m)];
      if (text.size() - i < hint.size()) continue;
      size_t k = 1;
      while (k < hint.size() && to_lower(text[i + k]) == hint[k]) ++k;
      if (k == hint.size()) return true;
    }
  }
  return false;
}

// The bytes may_hold_secret() stops at.
enum Byte : uint8_t { kOther, kDelimiter, kPrefixEnd, kCapitalA, kCapitalJ };

constexpr std::array<Byte, 256> kBytes = [] {
  std::array<Byte, 256> bytes{};
  for (char c : std::string_view("=: \t\n\r\f")) bytes[static_cast<uint8_t>(c)] = kDelimiter;
  bytes['_'] = bytes['-'] = kPrefixEnd;
  bytes['A'] = kCapitalA;
  bytes['J'] = kCapitalJ;
  return bytes;
}();

// A cheap first look, true for every text a rule may match: the rules on names, URLs, commands
// and PEM need a hint and a delimiter ('=', ':', whitespace), tokens their prefix. Ordinary paths
// have neither, and RE2 costs ~100 ns a call even on an empty string.
bool may_hold_secret(std::string_view text) {
  bool delimiter = false;
  for (size_t i = 0; i < text.size(); ++i) {
    switch (kBytes[static_cast<uint8_t>(text[i])]) {
      case kOther:
        break;
      case kDelimiter:
        delimiter = true;
        break;
      case kPrefixEnd:
        if (token_prefix_at(text, i)) return true;
        break;
      case kCapitalA:  // AKIA ASIA AIza
        if (i + 1 < text.size() && in(text[i + 1], "KSI")) return true;
        break;
      case kCapitalJ:  // eyJ
        if (ends_at(text, i, "ey")) return true;
        break;
    }
  }
  return delimiter && has_hint(text);
}

// Whether the quote at `pos` of a command line closes a quoted string rather than opens one
// (or is escaped).
bool closes_quote(std::string_view line, size_t pos) {
  char open = 0;
  size_t i = 0;
  for (; i < pos; ++i) {
    const char c = line[i];
    if (c == '\\' && open != '\'') {
      ++i;
    } else if (open == 0 && (c == '\'' || c == '"')) {
      open = c;
    } else if (c == open) {
      open = 0;
    }
  }
  return i == pos && open == line[pos];
}

RE2::Options regex_options() {
  RE2::Options options;
  options.set_encoding(RE2::Options::EncodingLatin1);  // any bytes, one byte one character
  options.set_log_errors(false);
  return options;
}

// The rules, and one RE2::Set of their triggers: a single scan finds out whether a string may
// hold a secret at all, and if so which rules to run.
class Rules {
 public:
  Rules();

  // Whether some rule may mask part of `text`; fills `which` (if given) with those rules.
  bool triggered(std::string_view text, std::vector<int>* which) const;
  // Runs rule `index` over `text`, a command line or not; returns how many values it masked.
  uint32_t apply(int index, std::string& text, bool command_line) const;
  // Whether rule `index` is about a single argument and is no use on a command line.
  bool whole_argument(int index) const { return rules_[index].whole_argument; }

 private:
  // When `named`, group 1 is a name for classify() and the value is the first later group that
  // took part; else the value is the first group that took part, and always a secret.
  struct Rule {
    std::unique_ptr<RE2> re;
    bool named;
    bool whole_argument;
  };
  static constexpr int kMaxGroups = 6;

  std::vector<Rule> rules_;
  RE2::Set triggers_;
};

Rules::Rules() : triggers_(regex_options(), RE2::UNANCHORED) {
  const std::string hint = "(?i:token|secret|pass|pwd|cred|auth|cookie|sig|key)";  // of kHints
  // A shell word: quoted (the closing quote may be cut off with a truncated argument) or bare.
  const std::string quoted = R"re('([^']*)'?|"((?:[^"\\]|\\.)*)"?)re";
  const std::string word = "(?:" + quoted + R"(|([^\s'"&;|<>()`]+)))";
  const std::string option_word = "(?:" + quoted + R"(|([^\s'"&;|<>()`-][^\s'"&;|<>()`]*)))";
  const std::string assignment = hint + R"([\w.-]*=)";
  struct Spec {
    std::string trigger;  // a superset of what the pattern masks; empty: the pattern itself
    std::string pattern;
    bool named;
    bool whole_argument = false;
  };
  const Spec specs[] = {
      // PEM private key: its body, up to the END line or, cut off, the end of the text
      {"-----BEGIN [A-Z0-9 ]*PRIVATE KEY",
       R"(-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----\s*((?s:.*?))\s*)"
       R"((?:-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|$))",
       false},
      // "API_KEY=x y", "--token=x": a whole argument, its value all the rest (on a command line
      // "API_KEY=x make" the rest is the command)
      {assignment, R"(^-{0,2}([A-Za-z_][\w.-]*)=+((?s:.+)))", true, true},
      // "Authorization: Bearer x", "X-Api-Key: x", "Cookie: a=b"; not "https://x-access-token:"
      {hint + R"([\w-]*[ \t]*:)",
       R"((?i)(?:^|[^\w/.:@-])((?:proxy-)?authorization|(?:set-)?cookie|private-token|api-key)"
       R"re(|x-[a-z0-9-]+)[ \t]*:[ \t]*(?:'([^']*)'|"([^"]*)"|([^'"\r\n]*[^'"\s\\])))re",
       true},
      // "https://user:x@host"
      {"", R"(\b[A-Za-z][A-Za-z0-9+.-]*://[^/?#\s:@'"]*:([^/?#\s@'"]+)@)", false},
      // "password": "x" in JSON or a Python dict, also with escaped quotes in a shell string
      {hint + R"([\w.-]*\\?["'][ \t]*:)",
       R"(\\?["']([A-Za-z_][\w.-]*)\\?["'][ \t]*:[ \t]*(?:\\"([^"\\]*)\\"|)" + quoted + ")",
       true},
      // "password: x" on a YAML line of its own, one word or quoted ("token: fix it" is prose)
      {hint + R"([\w.-]*[ \t]*:[ \t])",
       R"re((?:^|[\n'"])[ \t]*(?:-[ \t]+)?([A-Za-z_][\w.-]*)[ \t]*:[ \t]+)re"
       R"re((?:'([^'\n]*)'|"([^"\n]*)"|([^\s'"#]+))[ \t]*(?:$|[\r\n'"]))re",
       true},
      // "TOKEN=x" in a command line, "?access_token=x&" in a URL, "-Dpassword=x"
      {assignment, R"(([A-Za-z_][\w.-]*)=+)" + word, true},
      // "--token x" in a command line
      {R"(-[\w.-]*)" + hint + R"([\w.-]*[ \t]+[^\s-])",
       R"((?:^|\s)--?([A-Za-z][\w.-]+)[ \t]+)" + option_word, true},
      // "aws_secret_access_key x", as given to aws configure set or in ~/.aws/credentials
      {"",
       R"((?i)aws_(?:secret_access_key|session_token)(?:[ \t]*[:=][ \t]*|[ \t]+)["']?)"
       R"(([A-Za-z0-9/+][A-Za-z0-9/+=]*))",
       false},
      // curl -u user:x
      {"",
       R"(\bcurl\b[^;&|\n]*?\s(?:-u|-U|--user|--proxy-user)(?:[ \t]+|=)?["']?[^\s'":]*:)"
       R"(([^\s'"]+))",
       false},
      // sshpass -p x, docker login -p x
      {"", R"((?:\bsshpass|(?:^|\s)login)(?:\s[^;&|\n]*?)??\s-p[ \t]*)" + word, false},
      // mysql -px (a separate word after -p is the database)
      {"", R"(\b(?:mysql|mysqldump|mysqladmin|mariadb)\b(?:\s[^;&|\n]*?)??\s-p)" + word, false},
      // gh secret set NAME --body x
      {"", R"((?:^|\s)secret\s[^;&|\n]*?\s(?:-b[ \t]*|--body(?:[ \t]+|=)))" + word, false},
      // ssh-keygen -N x (the new passphrase), -P x (the old one)
      {"", R"(\bssh-keygen\b(?:\s[^;&|\n]*?)??\s-[NP][ \t]*)" + word, false},
      // git config user.password x, npm config set //host/:_authToken x
      {"", R"((?:^|\s)(?:set|config)(?:\s+(?:-\S*|set))*\s+([\w./:@-]+)[ \t]+)" + option_word,
       true},
      // machine host login u password x, in a .netrc
      {"", R"(\b(?:machine\s+\S+|default)(?:\s+(?:login|account)\s+\S+)*\s+password\s+)" + word,
       false},
      // Tokens that say what they are wherever they stand
      {"",
       R"(\b((?:AKIA|ASIA)[A-Z0-9]{16}\b|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_\w{30,})"
       R"(|glpat-[\w-]{20,}|xox[abeprs]-[A-Za-z0-9-]{10,}|sk-ant-[\w-]{20,})"
       R"(|sk-(?:proj|svcacct|admin)-[\w-]{20,}|sk-[A-Za-z0-9]{32,}|AIza[\w-]{35})"
       R"(|[rs]k_(?:live|test)_[A-Za-z0-9]{16,}|npm_[A-Za-z0-9]{36,}|hf_[A-Za-z0-9]{30,})"
       R"(|pypi-[\w-]{50,}|eyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]*))",
       false},
  };
  for (const Spec& spec : specs) {
    auto re = std::make_unique<RE2>(spec.pattern, regex_options());
    std::string error;
    if (!re->ok() || re->NumberOfCapturingGroups() >= kMaxGroups ||
        triggers_.Add(spec.trigger.empty() ? spec.pattern : spec.trigger, &error) !=
            static_cast<int>(rules_.size())) {
      throw std::logic_error("redact: bad pattern " + spec.pattern + ": " + re->error() + error);
    }
    rules_.push_back({std::move(re), spec.named, spec.whole_argument});
  }
  if (!triggers_.Compile()) throw std::logic_error("redact: cannot compile the rule set");
}

bool Rules::triggered(std::string_view text, std::vector<int>* which) const {
  if (!may_hold_secret(text)) return false;
  RE2::Set::ErrorInfo error{};
  if (triggers_.Match(re2::StringPiece(text.data(), text.size()), which, &error)) return true;
  if (error.kind == RE2::Set::kNoError) return false;
  // The set cannot tell (out of DFA memory): every rule runs, none is skipped on a guess.
  if (which) {
    which->clear();
    for (int i = 0; i < static_cast<int>(rules_.size()); ++i) which->push_back(i);
  }
  return true;
}

uint32_t Rules::apply(int index, std::string& text, bool command_line) const {
  const Rule& rule = rules_[index];
  const int groups = 1 + rule.re->NumberOfCapturingGroups();
  re2::StringPiece match[kMaxGroups];
  uint32_t masked = 0;
  size_t pos = 0;
  while (pos < text.size() &&
         rule.re->Match(text, pos, text.size(), RE2::UNANCHORED, match, groups)) {
    const size_t end = match[0].data() - text.data() + match[0].size();
    Kind kind = Kind::kSecret;
    int first = 1;
    if (rule.named) {
      kind = classify(match[1]);
      if (kind == Kind::kPlain) {
        // The value may hold names of its own: "username=bob,password=x".
        pos = match[1].data() - text.data() + match[1].size();
        continue;
      }
      first = 2;
    }
    std::string_view value;
    for (int g = first; g < groups && value.data() == nullptr; ++g) value = match[g];
    const size_t start = value.data() - text.data();
    if (command_line && start > 0 && in(text[start - 1], "'\"") && closes_quote(text, start - 1)) {
      pos = start;  // no value: "grep 'api_key=' src" holds none
      continue;
    }
    const std::string_view secret = secret_part(value, kind);
    if (secret.empty()) {
      pos = end;
      continue;
    }
    // On from the mask: what closed the match (a quote) may open the next one.
    pos = secret.data() - text.data() + kRedacted.size();
    masked += mask(text, secret);
  }
  return masked;
}

const Rules& rules() {
  static const Rules instance;
  return instance;
}

// Masks the secrets in one string. A command line ("bash -c '...'") is read word by word; any
// other string is also taken as one argument, whose assignment's value runs to its end.
uint32_t redact_text(std::string& text, bool command_line) {
  const Rules& r = rules();
  if (!r.triggered(text, nullptr)) return 0;
  std::vector<int> which;
  r.triggered(text, &which);
  std::sort(which.begin(), which.end());  // the rules' order: outer structures first
  uint32_t masked = 0;
  for (int index : which) {
    if (!(command_line && r.whole_argument(index))) masked += r.apply(index, text, command_line);
  }
  return masked;
}

// Options that are a secret only after a given command or subcommand, mostly single letters.
struct CommandOption {
  std::string_view after;  // an earlier argument, by basename
  std::string_view option;
  bool separate;           // the value may be the next argument, not only attached ("-pX")
  bool user_password;      // "user:password": only the password is a secret
  bool leading;            // only among the options right after the command: "sshpass -p X ssh"
};

constexpr CommandOption kCommandOptions[] = {
    {"curl", "-u", true, true, false},          {"curl", "--user", true, true, false},
    {"curl", "-U", true, true, false},          {"curl", "--proxy-user", true, true, false},
    {"sshpass", "-p", true, false, true},       {"login", "-p", true, false, false},
    {"secret", "-b", true, false, false},       {"secret", "--body", true, false, false},
    {"mysql", "-p", false, false, false},       {"mysqldump", "-p", false, false, false},
    {"mysqladmin", "-p", false, false, false},  {"mariadb", "-p", false, false, false},
    {"ssh-keygen", "-N", true, false, false},   {"ssh-keygen", "-P", true, false, false},
};

std::string_view basename(std::string_view path) {
  const size_t slash = path.rfind('/');
  return slash == npos ? path : path.substr(slash + 1);
}

// Whether argument `i` is an option of `o.after`.
bool option_of(const Argv& argv, int i, const CommandOption& o) {
  for (int j = i - 1; j >= 0; --j) {
    const std::string& arg = argv.Get(j);
    if (basename(arg) == o.after) return true;
    if (o.leading && !arg.starts_with('-')) return false;
  }
  return false;
}

// Whether argument `i` is the command line a shell runs: "bash -c X", "sudo sh -e -c X".
bool is_script(const Argv& argv, int i) {
  bool dash_c = false;
  int j = i - 1;
  for (; j > 0; --j) {
    const std::string_view flags = argv.Get(j);
    if (flags.size() < 2 || flags[0] != '-' || !all<is_alpha>(flags.substr(1))) break;
    dash_c = dash_c || in('c', flags);
  }
  return dash_c &&
         one_of(basename(argv.Get(j)), {"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash"});
}

// Masks what of `value`, a view into `arg`, is secret.
uint32_t mask_value(std::string& arg, std::string_view value, Kind kind, bool user_password) {
  if (user_password) {
    const size_t colon = value.find(':');
    if (colon == npos) return 0;  // no password: curl asks for it
    value.remove_prefix(colon + 1);
  }
  const std::string_view secret = secret_part(value, kind);
  return secret.empty() ? 0 : mask(arg, secret);
}

// "-pX", "--user=u:X": a command option's value in the same argument.
uint32_t attached_value(Argv& argv, int i) {
  std::string& arg = *argv.Mutable(i);
  for (const CommandOption& o : kCommandOptions) {
    if (arg.size() == o.option.size() || !starts_at(arg, 0, o.option)) continue;
    std::string_view value(arg);
    value.remove_prefix(o.option.size());
    if (o.option.size() > 2) {  // a long option: only "--option=value"
      if (value[0] != '=') continue;
      value.remove_prefix(1);
    }
    if (option_of(argv, i, o)) return mask_value(arg, value, Kind::kSecret, o.user_password);
  }
  return 0;
}

// What argument `i` says of the next one.
struct Ahead {
  Kind kind = Kind::kPlain;
  bool user_password = false;
};

Ahead value_ahead(const Argv& argv, int i, bool after_setter) {
  const std::string& arg = argv.Get(i);
  if (arg.starts_with('-')) {
    for (const CommandOption& o : kCommandOptions) {
      if (o.separate && arg.size() == o.option.size() && starts_at(arg, 0, o.option) &&
          option_of(argv, i, o)) {
        return {Kind::kSecret, o.user_password};
      }
    }
    // "--token X", "-storepass X"; single letters are anybody's ("-p 8080", "-k").
    std::string_view name(arg);
    name.remove_prefix(name.starts_with("--") ? 2 : 1);
    if (name.size() < 2 || !is_alpha(name[0]) || !all<is_option_char>(name)) return {};
    return {classify(name), false};
  }
  // "aws configure set aws_secret_access_key X", "git config --global user.password X"
  if (after_setter && arg.find('=') == npos) return {classify(arg), false};
  return {};
}

// Redacts a field through its mutable accessor only when the text may hold a secret: a clean
// field is neither written nor allocated.
template <typename Mutable>
uint32_t field(const std::string& text, Mutable mutable_text) {
  return may_hold_secret(text) ? redact_text(*mutable_text(), false) : 0;
}

}  // namespace

uint32_t redact_string(std::string& text) { return redact_text(text, false); }

void prepare_redaction() { rules(); }

uint32_t redact_argv(Argv& argv) {
  uint32_t masked = 0;
  Ahead pending;              // what the previous argument said of this one
  bool after_setter = false;  // the last argument not an option was "set" or "config"
  for (int i = 0; i < argv.size(); ++i) {
    std::string& arg = *argv.Mutable(i);
    Ahead ahead;
    if (pending.kind != Kind::kPlain && !arg.starts_with('-')) {
      masked += mask_value(arg, arg, pending.kind, pending.user_password);
      after_setter = false;
    } else {
      ahead = value_ahead(argv, i, after_setter);
      if (arg.starts_with('-')) {
        masked += attached_value(argv, i);
      } else {
        after_setter = one_of(arg, {"set", "config"});
      }
    }
    // Also what a value holds besides: the token in "curl -u ghp_...:x".
    masked += redact_text(arg, is_script(argv, i));
    pending = ahead;
  }
  return masked;
}

uint32_t redact(audit::Record& record) {
  uint32_t masked = 0;
  switch (record.event_case()) {
    case audit::Record::kExec: {
      audit::Exec& e = *record.mutable_exec();
      masked += field(e.path(), [&] { return e.mutable_path(); });
      masked += redact_argv(*e.mutable_argv());
      break;
    }
    case audit::Record::kSessionStart: {
      audit::SessionStart& s = *record.mutable_session_start();
      masked += redact_argv(*s.mutable_command());
      masked += field(s.cwd(), [&] { return s.mutable_cwd(); });
      break;
    }
    case audit::Record::kOpen: {
      audit::FileOpen& o = *record.mutable_open();
      masked += field(o.path(), [&] { return o.mutable_path(); });
      masked += field(o.requested(), [&] { return o.mutable_requested(); });
      break;
    }
    case audit::Record::kUnlink: {
      audit::FileUnlink& u = *record.mutable_unlink();
      masked += field(u.path(), [&] { return u.mutable_path(); });
      break;
    }
    case audit::Record::kRename: {
      audit::FileRename& r = *record.mutable_rename();
      masked += field(r.from(), [&] { return r.mutable_from(); });
      masked += field(r.to(), [&] { return r.mutable_to(); });
      break;
    }
    case audit::Record::kLink: {
      audit::FileLink& l = *record.mutable_link();
      masked += field(l.from(), [&] { return l.mutable_from(); });
      masked += field(l.to(), [&] { return l.mutable_to(); });
      break;
    }
    case audit::Record::kTruncate: {
      audit::FileTruncate& t = *record.mutable_truncate();
      masked += field(t.path(), [&] { return t.mutable_path(); });
      break;
    }
    case audit::Record::kAgent: {
      audit::AgentEvent& a = *record.mutable_agent();
      masked += field(a.message(), [&] { return a.mutable_message(); });
      break;
    }
    default:
      break;
  }
  if (record.has_decision()) {
    audit::Decision& d = *record.mutable_decision();
    masked += field(d.reason(), [&] { return d.mutable_reason(); });
  }
  return masked;
}

}  // namespace corral
