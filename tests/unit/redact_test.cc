#include "redact.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace corral {
namespace {

using Strings = std::vector<std::string>;

struct Redacted {
  Strings argv;
  uint32_t count;
};

audit::Record exec_record(const Strings& argv) {
  audit::Record r;
  r.mutable_exec()->set_path(argv.empty() ? "/usr/bin/true" : "/usr/bin/" + argv[0]);
  for (const auto& a : argv) r.mutable_exec()->add_argv(a);
  return r;
}

// Redacts an exec of `argv`, and checks that doing it again masks nothing more.
Redacted redact_exec(const Strings& argv) {
  audit::Record r = exec_record(argv);
  const uint32_t count = redact(r);
  const std::string once = r.SerializeAsString();
  EXPECT_EQ(redact(r), 0u) << "not idempotent";
  EXPECT_EQ(r.SerializeAsString(), once) << "not idempotent";
  return {{r.exec().argv().begin(), r.exec().argv().end()}, count};
}

// One string: the masked text and how many values, checking idempotence too.
std::string redact_one(std::string text, uint32_t* count = nullptr) {
  const uint32_t n = redact_string(text);
  if (count) *count = n;
  std::string again = text;
  EXPECT_EQ(redact_string(again), 0u) << "not idempotent: " << text;
  EXPECT_EQ(again, text);
  return text;
}

// A command line as a shell runs it, "bash -c LINE": masked, with how many values.
std::string redact_script(const std::string& line, uint32_t* count) {
  const auto r = redact_exec({"bash", "-c", line});
  *count = r.count;
  return r.argv.at(2);
}

TEST(RedactHeaders, KeepsSchemeMasksCredential) {
  auto r = redact_exec({"curl", "-sS", "-H", "Authorization: Bearer abc.DEF-123_xyz",
                        "https://api.example.com/v1/items"});
  EXPECT_EQ(r.argv, (Strings{"curl", "-sS", "-H", "Authorization: Bearer [REDACTED]",
                             "https://api.example.com/v1/items"}));
  EXPECT_EQ(r.count, 1u);

  r = redact_exec({"curl", "--header", "X-Api-Key: 0123456789abcdef", "-H",
                   "Cookie: session=a1b2; theme=dark", "-H", "Proxy-Authorization:Basic dXNlcjpw",
                   "-H", "Accept: application/json"});
  EXPECT_EQ(r.argv, (Strings{"curl", "--header", "X-Api-Key: [REDACTED]", "-H",
                             "Cookie: [REDACTED]", "-H", "Proxy-Authorization:Basic [REDACTED]",
                             "-H", "Accept: application/json"}));
  EXPECT_EQ(r.count, 3u);
}

TEST(RedactHeaders, InsideAShellCommandLine) {
  uint32_t n = 0;
  EXPECT_EQ(redact_script("curl -H 'Authorization: token s3cr3t' -H \"Private-Token: glx\" "
                        "https://h/x | jq .",
                        &n),
            "curl -H 'Authorization: token [REDACTED]' -H \"Private-Token: [REDACTED]\" "
            "https://h/x | jq .");
  EXPECT_EQ(n, 2u);
  // A variable is not the secret, and shows how the agent passed it.
  EXPECT_EQ(redact_script("curl -H \"Authorization: Bearer $GITHUB_TOKEN\" https://h", &n),
            "curl -H \"Authorization: Bearer $GITHUB_TOKEN\" https://h");
  EXPECT_EQ(n, 0u);
}

TEST(RedactHeaders, NotInsideUrlsAndQuotedInCode) {
  uint32_t n = 0;
  EXPECT_EQ(redact_script("git push https://x-access-token:ghs_0123456789abcdefghijABCDEFGHIJ0123"
                          "@github.com/o/r.git HEAD",
                          &n),
            "git push https://x-access-token:[REDACTED]@github.com/o/r.git HEAD");
  EXPECT_EQ(n, 1u);
  const auto r = redact_exec({"node", "-e", "fetch(u, {headers: {Authorization: 'Bearer abc'}})"});
  EXPECT_EQ(r.argv.at(2), "fetch(u, {headers: {Authorization: 'Bearer [REDACTED]'}})");
  EXPECT_EQ(r.count, 1u);
  const std::string text = "echo 'Authorization header missing'; curl -H 'X-Request-Id: 42' h";
  EXPECT_EQ(redact_script(text, &n), text);
  EXPECT_EQ(n, 0u);
}

TEST(RedactAws, ConfigureSetAndKeys) {
  auto r = redact_exec({"aws", "configure", "set", "aws_secret_access_key",
                        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "--profile", "dev"});
  EXPECT_EQ(r.argv, (Strings{"aws", "configure", "set", "aws_secret_access_key", "[REDACTED]",
                             "--profile", "dev"}));
  EXPECT_EQ(r.count, 1u);

  r = redact_exec({"aws", "configure", "set", "aws_access_key_id", "AKIAIOSFODNN7EXAMPLE"});
  EXPECT_EQ(r.argv, (Strings{"aws", "configure", "set", "aws_access_key_id", "[REDACTED]"}));
  EXPECT_EQ(r.count, 1u);

  r = redact_exec({"aws", "configure", "set", "region", "eu-west-1"});
  EXPECT_EQ(r.argv, (Strings{"aws", "configure", "set", "region", "eu-west-1"}));
  EXPECT_EQ(r.count, 0u);

  uint32_t n = 0;
  EXPECT_EQ(redact_script("printf '[default]\\naws_access_key_id = ASIAY34FZKBOKMUTVV7A\\n"
                        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\\n' "
                        "> ~/.aws/credentials",
                        &n),
            "printf '[default]\\naws_access_key_id = [REDACTED]\\n"
            "aws_secret_access_key = [REDACTED]\\n' > ~/.aws/credentials");
  EXPECT_EQ(n, 2u);
}

TEST(RedactUrls, PasswordInUserinfo) {
  auto r = redact_exec({"git", "clone", "https://alice:hunter2@git.example.com/team/repo.git"});
  EXPECT_EQ(r.argv,
            (Strings{"git", "clone", "https://alice:[REDACTED]@git.example.com/team/repo.git"}));
  EXPECT_EQ(r.count, 1u);

  uint32_t n = 0;
  EXPECT_EQ(redact_script("psql postgres://app:p%40ss@db:5432/app && redis-cli -u redis://:pw@r",
                          &n),
            "psql postgres://app:[REDACTED]@db:5432/app && redis-cli -u redis://:[REDACTED]@r");
  EXPECT_EQ(n, 2u);
  // A token as the user name is caught by its format.
  EXPECT_EQ(redact_one("https://ghp_0123456789abcdefghijABCDEFGHIJ012345@github.com/o/r", &n),
            "https://[REDACTED]@github.com/o/r");
  EXPECT_EQ(n, 1u);
  EXPECT_EQ(redact_one("ssh://git@github.com:22/o/r https://[::1]:8080/x", &n),
            "ssh://git@github.com:22/o/r https://[::1]:8080/x");
  EXPECT_EQ(n, 0u);
}

TEST(RedactUrls, SecretsInQueryStrings) {
  uint32_t n = 0;
  EXPECT_EQ(redact_one("https://api.example.com/v1?access_token=abc123&page=2&api_key=k3y", &n),
            "https://api.example.com/v1?access_token=[REDACTED]&page=2&api_key=[REDACTED]");
  EXPECT_EQ(n, 2u);
  EXPECT_EQ(redact_one("https://b.blob.core.windows.net/c/f?sv=2022-11-02&sig=Zm9vYmFy%3D", &n),
            "https://b.blob.core.windows.net/c/f?sv=2022-11-02&sig=[REDACTED]");
  EXPECT_EQ(n, 1u);
  EXPECT_EQ(redact_one("https://s3.amazonaws.com/b/k?X-Amz-Credential=AKIA%2F20240101&"
                        "X-Amz-Signature=9f2c1e&X-Amz-Expires=300",
                        &n),
            "https://s3.amazonaws.com/b/k?X-Amz-Credential=[REDACTED]&"
            "X-Amz-Signature=[REDACTED]&X-Amz-Expires=300");
  EXPECT_EQ(n, 2u);
}

TEST(RedactAssignments, EnvironmentStyle) {
  auto r = redact_exec({"env", "GITHUB_TOKEN=ghp_0123456789abcdefghijABCDEFGHIJ012345",
                        "AUTHOR=me", "make", "release"});
  EXPECT_EQ(r.argv, (Strings{"env", "GITHUB_TOKEN=[REDACTED]", "AUTHOR=me", "make", "release"}));
  EXPECT_EQ(r.count, 1u);

  r = redact_exec({"docker", "run", "-e", "DB_PASSWORD=correct horse", "-e",
                   "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG", "-e",
                   "TOKENIZERS_PARALLELISM=false", "-e", "OPENAI_API_KEY", "img"});
  EXPECT_EQ(r.argv, (Strings{"docker", "run", "-e", "DB_PASSWORD=[REDACTED]", "-e",
                             "AWS_SECRET_ACCESS_KEY=[REDACTED]", "-e",
                             "TOKENIZERS_PARALLELISM=false", "-e", "OPENAI_API_KEY", "img"}));
  EXPECT_EQ(r.count, 2u);

  r = redact_exec({"env", "SLACK_BOT_AUTH=x1", "NPM_CONFIG__AUTH=dXNlcg==", "MYSQL_PWD=pw",
                   "SESSION_SIGNING_KEY=k", "CLIENT_CREDENTIALS=c", "STRIPE_APIKEY=s", "true"});
  EXPECT_EQ(r.argv, (Strings{"env", "SLACK_BOT_AUTH=[REDACTED]", "NPM_CONFIG__AUTH=[REDACTED]",
                             "MYSQL_PWD=[REDACTED]", "SESSION_SIGNING_KEY=[REDACTED]",
                             "CLIENT_CREDENTIALS=[REDACTED]", "STRIPE_APIKEY=[REDACTED]", "true"}));
  EXPECT_EQ(r.count, 6u);
}

TEST(RedactAssignments, InACommandLine) {
  uint32_t n = 0;
  EXPECT_EQ(redact_script("export API_KEY=abc123; HF_TOKEN='hf secret' make test", &n),
            "export API_KEY=[REDACTED]; HF_TOKEN='[REDACTED]' make test");
  EXPECT_EQ(n, 2u);
  EXPECT_EQ(redact_script("mount -t cifs -o username=bob,password=s3cret //srv/share /mnt", &n),
            "mount -t cifs -o username=bob,password=[REDACTED] //srv/share /mnt");
  EXPECT_EQ(n, 1u);
  EXPECT_EQ(redact_script("java -Djavax.net.ssl.keyStorePassword=changeit -jar app.jar", &n),
            "java -Djavax.net.ssl.keyStorePassword=[REDACTED] -jar app.jar");
  EXPECT_EQ(n, 1u);
  EXPECT_EQ(redact_script("kubectl create secret generic db --from-literal=password=pw1", &n),
            "kubectl create secret generic db --from-literal=password=[REDACTED]");
  EXPECT_EQ(n, 1u);
  // Paths of credential files, references and settings about secrets stay.
  const std::string settings =
      "GOOGLE_APPLICATION_CREDENTIALS=/etc/gcp/sa.json PASSWORD_FILE=/run/s TOKEN=$GH_TOKEN "
      "AUTH_TYPE=basic SSH_AUTH_SOCK=/tmp/agent.1 MAX_TOKENS=4096 TOKEN=$(cat t) make";
  EXPECT_EQ(redact_script(settings, &n), settings);
  EXPECT_EQ(n, 0u);
}

TEST(RedactAssignments, WholeArgumentOrCommandLine) {
  // One argument: the value is all the rest, spaces and all.
  auto r = redact_exec({"env", "-i", "PASSWORD=correct horse battery", "API_KEY=k", "make"});
  EXPECT_EQ(r.argv, (Strings{"env", "-i", "PASSWORD=[REDACTED]", "API_KEY=[REDACTED]", "make"}));
  EXPECT_EQ(r.count, 2u);
  // A shell's command line: the value is one word, the command after it stays.
  for (const Strings& shell : {Strings{"bash", "-c"}, Strings{"/bin/sh", "-lc"},
                               Strings{"sudo", "zsh", "-e", "-c"}, Strings{"bash", "-c", "-l"}}) {
    Strings argv = shell;
    argv.push_back("API_KEY=abc make test");
    r = redact_exec(argv);
    EXPECT_EQ(r.argv.back(), "API_KEY=[REDACTED] make test") << shell[0];
    EXPECT_EQ(r.count, 1u);
  }
  uint32_t n = 0;
  EXPECT_EQ(redact_script("cat <<EOF > .env\nDB_PASSWORD=hunter2\nAPI_KEY=abc\nDEBUG=1\nEOF", &n),
            "cat <<EOF > .env\nDB_PASSWORD=[REDACTED]\nAPI_KEY=[REDACTED]\nDEBUG=1\nEOF");
  EXPECT_EQ(n, 2u);
  // The quote after '=' closes a string here: there is no value.
  const std::string grep = "grep -rn 'api_key=' src/ && grep -c \"TOKEN=\" .env";
  EXPECT_EQ(redact_script(grep, &n), grep);
  EXPECT_EQ(n, 0u);
}

TEST(RedactAssignments, AnyBytes) {
  uint32_t n = 0;
  EXPECT_EQ(redact_one("SECRET=\xff\xfe\x80\xc3(x", &n), "SECRET=[REDACTED]");
  EXPECT_EQ(n, 1u);
  EXPECT_EQ(redact_script("SECRET=\xff\xfe\x80\xc3x make", &n), "SECRET=[REDACTED] make");
  EXPECT_EQ(n, 1u);
}

TEST(RedactOptions, ValueInSameOrNextArgument) {
  auto r = redact_exec({"deploy", "--token", "t0k3n", "--password=pa ss", "--api-key", "k",
                        "--client-secret=cs", "--access-token", "at", "--auth-token", "au",
                        "--verbose"});
  EXPECT_EQ(r.argv, (Strings{"deploy", "--token", "[REDACTED]", "--password=[REDACTED]",
                             "--api-key", "[REDACTED]", "--client-secret=[REDACTED]",
                             "--access-token", "[REDACTED]", "--auth-token", "[REDACTED]",
                             "--verbose"}));
  EXPECT_EQ(r.count, 6u);

  r = redact_exec({"keytool", "-importkeystore", "-srcstorepass", "changeit", "-deststorepass",
                   "$PW"});
  EXPECT_EQ(r.argv, (Strings{"keytool", "-importkeystore", "-srcstorepass", "[REDACTED]",
                             "-deststorepass", "$PW"}));
  EXPECT_EQ(r.count, 1u);
}

TEST(RedactOptions, FlagsAndPathsStay) {
  const Strings argvs[] = {
      {"train", "--tokenizer=bpe", "--max-tokens", "4096", "--tokens", "12"},
      {"psql", "--no-password", "-h", "db", "-p", "5432", "-U", "app"},
      {"docker", "login", "--password-stdin", "ghcr.io"},
      {"ansible-playbook", "--ask-pass", "--private-key", "~/.ssh/id_ed25519", "site.yml"},
      {"ssh", "-i", "/home/u/.ssh/id_rsa", "-o", "PasswordAuthentication=no", "host"},
      {"git", "commit", "-m", "fix token parsing", "--author", "A <a@b.c>"},
      {"gh", "auth", "login", "--with-token"},
      {"pip", "install", "scikit-learn", "sk-learn"},
      {"git", "config", "--global", "credential.helper", "store"},
      {"curl", "-u", "alice", "https://h"},
      {"mysql", "-u", "root", "-p", "appdb"},
      {"docker", "login", "-u", "bob", "--password", "-"},
      {"gpg", "--passphrase-fd", "0", "-d", "f.gpg"},
  };
  for (const Strings& argv : argvs) {
    const auto r = redact_exec(argv);
    EXPECT_EQ(r.argv, argv);
    EXPECT_EQ(r.count, 0u) << argv[0];
  }
  uint32_t n = 0;
  EXPECT_EQ(redact_one("--private-key=0x4c0883a69102937d6231471b5dbb6204fe512961708279", &n),
            "--private-key=[REDACTED]");
  EXPECT_EQ(n, 1u);
}

TEST(RedactOptions, InACommandLine) {
  uint32_t n = 0;
  EXPECT_EQ(redact_script("npx vercel deploy --token t0k3n --prod && gh run list", &n),
            "npx vercel deploy --token [REDACTED] --prod && gh run list");
  EXPECT_EQ(n, 1u);
  EXPECT_EQ(redact_script("vault login -method=userpass --password \"two words\" x", &n),
            "vault login -method=userpass --password \"[REDACTED]\" x");
  EXPECT_EQ(n, 1u);
}

TEST(RedactCommands, SingleLetterOptionsWhereUnambiguous) {
  auto r = redact_exec({"curl", "-u", "alice:pw1", "-ubob:pw2", "--user=carol:pw3", "https://h"});
  EXPECT_EQ(r.argv, (Strings{"curl", "-u", "alice:[REDACTED]", "-ubob:[REDACTED]",
                             "--user=carol:[REDACTED]", "https://h"}));
  EXPECT_EQ(r.count, 3u);

  r = redact_exec({"sshpass", "-p", "pw", "ssh", "-p", "2222", "host"});
  EXPECT_EQ(r.argv, (Strings{"sshpass", "-p", "[REDACTED]", "ssh", "-p", "2222", "host"}));
  EXPECT_EQ(r.count, 1u);

  r = redact_exec({"mysqldump", "-u", "root", "-ps3cret", "appdb"});
  EXPECT_EQ(r.argv, (Strings{"mysqldump", "-u", "root", "-p[REDACTED]", "appdb"}));
  EXPECT_EQ(r.count, 1u);

  r = redact_exec({"docker", "login", "-u", "ci", "-p", "pw", "registry.example.com"});
  EXPECT_EQ(r.argv, (Strings{"docker", "login", "-u", "ci", "-p", "[REDACTED]",
                             "registry.example.com"}));
  EXPECT_EQ(r.count, 1u);

  r = redact_exec({"docker", "run", "-u", "1000:1000", "-p", "8080:80", "img"});
  EXPECT_EQ(r.argv, (Strings{"docker", "run", "-u", "1000:1000", "-p", "8080:80", "img"}));
  EXPECT_EQ(r.count, 0u);

  r = redact_exec({"gh", "secret", "set", "DEPLOY_KEY", "--body", "v4lue"});
  EXPECT_EQ(r.argv, (Strings{"gh", "secret", "set", "DEPLOY_KEY", "--body", "[REDACTED]"}));
  EXPECT_EQ(r.count, 1u);

  r = redact_exec({"ssh-keygen", "-t", "ed25519", "-N", "pass phrase", "-f", "k"});
  EXPECT_EQ(r.argv, (Strings{"ssh-keygen", "-t", "ed25519", "-N", "[REDACTED]", "-f", "k"}));
  EXPECT_EQ(r.count, 1u);

  uint32_t n = 0;
  EXPECT_EQ(redact_script("curl -fsS -u admin:pw1 https://h && sshpass -p 'pw 2' ssh h && "
                        "mysql -h db -ppw3 app && gh secret set X --body v4",
                        &n),
            "curl -fsS -u admin:[REDACTED] https://h && sshpass -p '[REDACTED]' ssh h && "
            "mysql -h db -p[REDACTED] app && gh secret set X --body [REDACTED]");
  EXPECT_EQ(n, 4u);
}

TEST(RedactCommands, SettersAndNetrc) {
  auto r = redact_exec({"git", "config", "--global", "user.password", "hunter2"});
  EXPECT_EQ(r.argv, (Strings{"git", "config", "--global", "user.password", "[REDACTED]"}));
  EXPECT_EQ(r.count, 1u);
  r = redact_exec({"kubectl", "config", "set-credentials", "admin", "--token=abc123"});
  EXPECT_EQ(r.argv,
            (Strings{"kubectl", "config", "set-credentials", "admin", "--token=[REDACTED]"}));
  EXPECT_EQ(r.count, 1u);
  uint32_t n = 0;
  EXPECT_EQ(redact_script("git config --global user.password hunter2 && "
                          "npm config set //registry.npmjs.org/:_authToken xyz && "
                          "git config user.name bob",
                          &n),
            "git config --global user.password [REDACTED] && "
            "npm config set //registry.npmjs.org/:_authToken [REDACTED] && "
            "git config user.name bob");
  EXPECT_EQ(n, 2u);
  EXPECT_EQ(redact_script("echo 'machine github.com login bob password p4ss' >> ~/.netrc", &n),
            "echo 'machine github.com login bob password [REDACTED]' >> ~/.netrc");
  EXPECT_EQ(n, 1u);
}

TEST(RedactJson, QuotedKeys) {
  auto r = redact_exec({"curl", "-d", R"({"user":"bob","password":"hunter2","n":1})", "https://h"});
  EXPECT_EQ(r.argv, (Strings{"curl", "-d", R"({"user":"bob","password":"[REDACTED]","n":1})",
                             "https://h"}));
  EXPECT_EQ(r.count, 1u);
  uint32_t n = 0;
  EXPECT_EQ(redact_script(R"(curl -d "{\"client_secret\":\"cs1\", \"grant\":\"x\"}" h)", &n),
            R"(curl -d "{\"client_secret\":\"[REDACTED]\", \"grant\":\"x\"}" h)");
  EXPECT_EQ(n, 1u);
  EXPECT_EQ(redact_script(R"py(python -c "f({'api_key': 'k1', 'model': 'm'})")py", &n),
            R"py(python -c "f({'api_key': '[REDACTED]', 'model': 'm'})")py");
  EXPECT_EQ(n, 1u);
}

TEST(RedactYaml, OneWordOrQuotedValuesOnTheirOwnLine) {
  uint32_t n = 0;
  EXPECT_EQ(redact_script("cat > c.yml <<EOF\ndb:\n  password: s3cret\n  user: app\n"
                          "api_key: \"k 1\"\nEOF\necho \"token: abc\" >> c.yml",
                          &n),
            "cat > c.yml <<EOF\ndb:\n  password: [REDACTED]\n  user: app\n"
            "api_key: \"[REDACTED]\"\nEOF\necho \"token: [REDACTED]\" >> c.yml");
  EXPECT_EQ(n, 3u);
  // Prose after a name stays; a lone word cannot be told from a secret and goes.
  const auto r = redact_exec({"git", "commit", "-m", "token: fix parsing", "-m", "auth: ok"});
  EXPECT_EQ(r.argv,
            (Strings{"git", "commit", "-m", "token: fix parsing", "-m", "auth: [REDACTED]"}));
  EXPECT_EQ(r.count, 1u);
}

TEST(RedactPem, PrivateKeyBlock) {
  const std::string key =
      "-----BEGIN RSA PRIVATE KEY-----\n"
      "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n"
      "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n"
      "-----END RSA PRIVATE KEY-----\n";
  auto r = redact_exec({"echo", key});
  EXPECT_EQ(r.argv, (Strings{"echo", "-----BEGIN RSA PRIVATE KEY-----\n[REDACTED]\n"
                                     "-----END RSA PRIVATE KEY-----\n"}));
  EXPECT_EQ(r.count, 1u);

  uint32_t n = 0;
  EXPECT_EQ(redact_script("echo '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n"
                        "-----END OPENSSH PRIVATE KEY-----' > k; echo '-----BEGIN PUBLIC KEY-----'",
                        &n),
            "echo '-----BEGIN OPENSSH PRIVATE KEY-----\n[REDACTED]\n"
            "-----END OPENSSH PRIVATE KEY-----' > k; echo '-----BEGIN PUBLIC KEY-----'");
  EXPECT_EQ(n, 1u);
  // Cut off before the END line: all the rest goes.
  EXPECT_EQ(redact_one("-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg4LVWM9nuwNSk3yBQ", &n),
            "-----BEGIN EC PRIVATE KEY-----\n[REDACTED]");
  EXPECT_EQ(n, 1u);
  // Held in a secret-named variable: one value.
  EXPECT_EQ(redact_one("PRIVATE_KEY=" + key, &n), "PRIVATE_KEY=[REDACTED]");
  EXPECT_EQ(n, 1u);
}

TEST(RedactTokens, KnownFormats) {
  const std::string jwt =
      "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ."
      "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
  const Strings tokens = {
      "AKIAIOSFODNN7EXAMPLE",
      "ghp_0123456789abcdefghijABCDEFGHIJ012345",
      "gho_0123456789abcdefghijABCDEFGHIJ012345",
      "ghs_0123456789abcdefghijABCDEFGHIJ012345",
      "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJ",
      "glpat-xYz0123456789abcdefGH",
      "xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOp",
      "sk-ant-api03-AbCdEf0123456789_ghIJklMNop-QRstuv",
      "sk-proj-AbCdEf0123456789ghIJklMNopQRstuv_wx-yz",
      "sk-AbCdEf0123456789ghIJklMNopQRstuvWXyz0123456789ab",
      "AIzaSyA-0123456789abcdefghijklmnopqrstu",
      "sk_live_51H8abcdefGHIJKLmnop",
      "rk_live_51H8abcdefGHIJKLmnop",
      "npm_0123456789abcdefghijABCDEFGHIJ012345",
      "hf_abcdefghijABCDEFGHIJ0123456789xy",
      jwt,
  };
  for (const std::string& token : tokens) {
    uint32_t n = 0;
    EXPECT_EQ(redact_one("tool --data " + token + " --x", &n), "tool --data [REDACTED] --x");
    EXPECT_EQ(n, 1u) << token;
    EXPECT_EQ(redact_one("/tmp/" + token + ".txt", &n), "/tmp/[REDACTED].txt");
  }
  auto r = redact_exec({"http", "https://h/me", "Authorization:Bearer " + jwt});
  EXPECT_EQ(r.argv, (Strings{"http", "https://h/me", "Authorization:Bearer [REDACTED]"}));
  EXPECT_EQ(r.count, 1u);
}

TEST(RedactTokens, LookalikesStay) {
  const std::string texts[] = {
      "sk-learn", "task-0123456789abcdef0123456789abcdef", "/tmp/sk-learn-benchmark-results-2024",
      "ghp_short", "eyJhbGciOiJIUzI1NiJ9", "AKIA", "hf_hub_download", "npm_config_cache",
      "xoxb-", "AIzaShort",
  };
  for (const std::string& text : texts) EXPECT_EQ(redact_one(text), text);
}

TEST(RedactRecord, OrdinaryRecordsUntouched) {
  const Strings argvs[] = {
      {"git", "status", "--short"},
      {"ls", "-la", "/home/u/.ssh"},
      {"make", "-j8", "CC=gcc", "CFLAGS=-O2 -g"},
      {"python3", "-m", "pytest", "-k", "token and not slow", "tests/test_auth.py"},
      {"bash", "-c", "cat /etc/passwd | grep -v nologin > /tmp/users; echo done"},
      {"grep", "-rn", "password", "src/"},
      {"cargo", "build", "--release", "--features=keyring"},
  };
  for (const Strings& argv : argvs) {
    audit::Record r = exec_record(argv);
    const std::string before = r.SerializeAsString();
    EXPECT_EQ(redact(r), 0u) << argv[0];
    EXPECT_EQ(r.SerializeAsString(), before) << argv[0];
  }
  for (const char* path : {"/home/u/project/src/main.cc", "/home/u/.ssh/id_rsa", "/etc/passwd",
                           "/usr/lib/python3/dist-packages/keyring/backend.py",
                           "/home/u/.config/gh/hosts.yml", "/proc/self/status"}) {
    audit::Record r;
    r.mutable_open()->set_path(path);
    r.mutable_open()->set_requested(path);
    r.mutable_open()->add_flags("O_RDONLY");
    const std::string before = r.SerializeAsString();
    EXPECT_EQ(redact(r), 0u) << path;
    EXPECT_EQ(r.SerializeAsString(), before) << path;
    EXPECT_FALSE(r.has_decision());
  }
}

TEST(RedactRecord, EveryFreeTextField) {
  const std::string secret = "ghp_0123456789abcdefghijABCDEFGHIJ012345";
  audit::Record r;
  r.mutable_exec()->set_path("/tmp/" + secret + "/run");
  r.mutable_exec()->add_argv("run");
  r.mutable_exec()->add_argv("--token");
  r.mutable_exec()->add_argv("x");
  r.mutable_decision()->set_reason("exec of run --token=" + secret);
  EXPECT_EQ(redact(r), 3u);
  EXPECT_EQ(r.exec().path(), "/tmp/[REDACTED]/run");
  EXPECT_EQ(r.exec().argv(2), "[REDACTED]");
  EXPECT_EQ(r.decision().reason(), "exec of run --token=[REDACTED]");

  r.Clear();
  r.mutable_session_start()->add_command("claude");
  r.mutable_session_start()->add_command("--api-key");
  r.mutable_session_start()->add_command("sk-ant-api03-AbCdEf0123456789_ghIJklMNop");
  r.mutable_session_start()->set_cwd("/work/API_KEY=k");
  EXPECT_EQ(redact(r), 2u);
  EXPECT_EQ(r.session_start().command(2), "[REDACTED]");
  EXPECT_EQ(r.session_start().cwd(), "/work/API_KEY=[REDACTED]");

  r.Clear();
  r.mutable_open()->set_path("/tmp/dl/" + secret);
  r.mutable_open()->set_requested("dl/" + secret);
  EXPECT_EQ(redact(r), 2u);
  EXPECT_EQ(r.open().path(), "/tmp/dl/[REDACTED]");
  EXPECT_EQ(r.open().requested(), "dl/[REDACTED]");

  r.Clear();
  r.mutable_unlink()->set_path("/tmp/" + secret);
  EXPECT_EQ(redact(r), 1u);
  EXPECT_EQ(r.unlink().path(), "/tmp/[REDACTED]");

  r.Clear();
  r.mutable_rename()->set_from("/tmp/a?token=t1");
  r.mutable_rename()->set_to("/tmp/b?token=t2");
  EXPECT_EQ(redact(r), 2u);
  EXPECT_EQ(r.rename().from(), "/tmp/a?token=[REDACTED]");
  EXPECT_EQ(r.rename().to(), "/tmp/b?token=[REDACTED]");

  r.Clear();
  r.mutable_truncate()->set_path("/tmp/" + secret);
  EXPECT_EQ(redact(r), 1u);
  EXPECT_EQ(r.truncate().path(), "/tmp/[REDACTED]");

  r.Clear();
  r.mutable_agent()->set_message("sink down: https://ingest:pw@soc.example.com refused");
  EXPECT_EQ(redact(r), 1u);
  EXPECT_EQ(r.agent().message(), "sink down: https://ingest:[REDACTED]@soc.example.com refused");
}

}  // namespace
}  // namespace corral
