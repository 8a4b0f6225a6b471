#!/usr/bin/env bash
# Installs every build and test dependency from Debian packages. Idempotent:
# when everything is present it only checks, quietly.
set -euo pipefail

packages=(
  build-essential cmake pkg-config git  # toolchain
  clang llvm libclang-rt-14-dev         # bpf/*.bpf.c (-target bpf); libFuzzer
  libbpf-dev bpftool libelf-dev zlib1g-dev  # loading BPF, skeletons, vmlinux.h
  libboost-dev                          # Boost.Asio event loop
  libprotobuf-dev protobuf-compiler     # exporter/audit.proto
  libspdlog-dev libfmt-dev              # logging
  libcli11-dev                          # command line
  libseccomp-dev                        # the session's syscall filter
  libyaml-cpp-dev libre2-dev            # policy files, glob matching
  libssl-dev                            # audit chain (SHA-256, Ed25519), syslog TLS
  nlohmann-json3-dev                    # OCSF output, reading the log back
  librdkafka-dev                        # Kafka sink (and its mock cluster for tests)
  liblz4-dev libzstd-dev libsasl2-dev   # librdkafka's own, to link it from its archive
  rsyslog rsyslog-openssl rsyslog-gnutls openssl  # the syslog collector tests start (TLS: both drivers)
  libgtest-dev                          # tests
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
  echo "setup: missing packages: ${missing[*]}; run as root (sudo $0)" >&2
  exit 1
fi
echo "setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
