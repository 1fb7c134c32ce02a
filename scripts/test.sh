#!/usr/bin/env bash
# Runs every test of Canopy on a fresh machine: installs what the tests need
# (Apache ZooKeeper from Debian for its Java client, zkCli.sh and a reference
# server; kazoo and pytest into a venv), then the Rust tests, then the
# client-compatibility suite against Canopy and against the real ZooKeeper.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -f /usr/share/java/zookeeper.jar ] || ! command -v java >/dev/null; then
    echo "== installing Apache ZooKeeper (Debian packages zookeeper, zookeeper-bin)"
    export DEBIAN_FRONTEND=noninteractive
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -q
    $SUDO apt-get install -y -q zookeeper zookeeper-bin default-jre-headless
fi

# tmux: the CLI's interactive tests drive the shell and browser in it;
# openssl: the TLS tests make throwaway certificates with it.
if ! command -v tmux >/dev/null || ! command -v openssl >/dev/null; then
    echo "== installing tmux and openssl"
    export DEBIAN_FRONTEND=noninteractive
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -q
    $SUDO apt-get install -y -q tmux openssl
fi

VENV=.venv
if [ ! -x "$VENV/bin/python" ]; then
    echo "== creating the Python venv $VENV"
    python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q -r tests/compat/requirements.txt

echo "== Rust: build, unit and integration tests"
cargo build --workspace --all-targets
cargo test --workspace
echo "== example: a provider and a consumer find each other through an embedded Canopy"
cargo run -q --example registry_demo

echo "== canopy bench: every workload once with tiny counts (a smoke run, not a measurement)"
CANOPY_BIN="$PWD/target/debug/canopy" scripts/bench-smoke.sh

echo "== hardening load harness: every scenario once with tiny counts (the full run is scripts/load-harden.sh)"
SMOKE=1 scripts/load-harden.sh

echo "== the Rust client's integration tests against Apache ZooKeeper 3.8"
CLIENT_TEST_TARGET=zookeeper cargo test -p canopy-client --test api --test session --test registry

echo "== the canopy CLI's integration tests (zkCli commands, tools, shell, browser) against Apache ZooKeeper 3.8"
CLIENT_TEST_TARGET=zookeeper cargo test -p canopy-cli --test zkcli --test tools --test interactive

echo "== client compatibility: kazoo, zkCli.sh and the Dubbo flow against Canopy"
CANOPY_BIN="$PWD/target/debug/canopy" "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/compat

echo "== the same suite against Apache ZooKeeper, to prove the tests hold for the real thing"
COMPAT_TARGET=zookeeper "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/compat

echo "== fuzzing: each cargo-fuzz target for about a minute on its corpus (fuzz/README.md)"
scripts/fuzz-smoke.sh
