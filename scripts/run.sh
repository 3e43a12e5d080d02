#!/usr/bin/env bash
# `make run`: Redis, migrations, the whole Procfile against kitesim, then the demo seed.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/0}"
export WEB_PORT="${WEB_PORT:-8000}" KITESIM_PORT="${KITESIM_PORT:-8765}" FLOWER_PORT="${FLOWER_PORT:-5555}"
export KITE_ROOT="${KITE_ROOT:-http://127.0.0.1:$KITESIM_PORT}"
# Flower shows task arguments and results: it always asks for a password (tickerproject/flowerconfig.py).
export FLOWER_BASIC_AUTH="${FLOWER_BASIC_AUTH:-flower:$(python -c 'import secrets; print(secrets.token_urlsafe(12))')}"
# kitesim's demo app has our callback as its registered redirect URL: admin's "Log in to Kite" comes back.
export KITESIM_ARGS="${KITESIM_ARGS:---account demo:demosecret:demotoken:http://127.0.0.1:$WEB_PORT/kite/callback}"
# Market hours follow kitesim's simulated session, so the demo trades at any hour.
export MARKET_CLOCK="${MARKET_CLOCK:-kitesim}"
mkdir -p var
# Celery children and uvicorn share metrics through files; stale files from a previous run would lie.
export PROMETHEUS_MULTIPROC_DIR="$PWD/var/prometheus"
rm -rf "$PROMETHEUS_MULTIPROC_DIR" && mkdir -p "$PROMETHEUS_MULTIPROC_DIR"

python scripts/ensure_redis.py
python manage.py migrate --no-input -v 0

honcho start &
honcho_pid=$!
trap 'kill -TERM "$honcho_pid" 2>/dev/null; wait "$honcho_pid"' INT TERM EXIT

python scripts/wait_for.py "$KITE_ROOT/_sim/state" "http://127.0.0.1:$WEB_PORT/healthz"
python manage.py demo_seed
python manage.py grant_trading admin demo

cat <<TXT

  Ticker Service is running (Ctrl-C stops every process).
    Dashboard  http://127.0.0.1:$WEB_PORT/           user admin / password admin
    Admin      http://127.0.0.1:$WEB_PORT/admin/     user admin / password admin
    API docs   http://127.0.0.1:$WEB_PORT/api/docs/
    Health     http://127.0.0.1:$WEB_PORT/healthz
    Metrics    http://127.0.0.1:$WEB_PORT/metrics
    Feeds      http://127.0.0.1:$WEB_PORT/api/v1/feeds
    Flower     http://127.0.0.1:$FLOWER_PORT/           user ${FLOWER_BASIC_AUTH%%:*} / password ${FLOWER_BASIC_AUTH#*:}
    kitesim    $KITE_ROOT  (api_key demo, api_secret demosecret, access_token demotoken)
  An API key for scripts (admin may trade on demo): .venv/bin/python manage.py issue_api_key admin --scope trade

TXT
wait "$honcho_pid"
