#!/usr/bin/env bash
# Install (if needed) and run every test: the lit/FileCheck IR suite, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
# The aarch64 / armv7 / riscv64 artifact tests run code under qemu and link with the cross gcc;
# the Cortex-M tests link a bare-metal harness (arm-none-eabi-gcc, newlib) and run qemu-system-arm.
if ! command -v qemu-aarch64 >/dev/null || ! command -v aarch64-linux-gnu-gcc >/dev/null \
  || ! command -v arm-linux-gnueabihf-gcc >/dev/null || ! command -v riscv64-linux-gnu-gcc >/dev/null \
  || ! command -v arm-none-eabi-gcc >/dev/null || ! command -v qemu-system-arm >/dev/null; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross \
      gcc-arm-linux-gnueabihf libc6-dev-armhf-cross gcc-riscv64-linux-gnu libc6-dev-riscv64-cross \
      gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm >/dev/null
  else
    echo "note: install qemu-user, gcc-aarch64-linux-gnu, gcc-arm-linux-gnueabihf, gcc-riscv64-linux-gnu," \
      "gcc-arm-none-eabi, libnewlib-arm-none-eabi and qemu-system-arm (Debian)" \
      "for the cross-target tests; they fail without them" >&2
  fi
fi
[ -x .venv/bin/bnnc ] || bash scripts/install.sh
.venv/bin/lit -sv test/lit
.venv/bin/python -m pytest test
