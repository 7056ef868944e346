#!/usr/bin/env bash
# The whole test suite, from a clean checkout: installs what is missing, then checks
# formatting and lints and runs every test (window tests under Xvfb included).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh --window-tests
export PATH="$HOME/.cargo/bin:$PATH"

echo "== cargo fmt --check" >&2
cargo fmt --all --check
echo "== cargo clippy" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test" >&2
cargo test --workspace --locked
