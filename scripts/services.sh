#!/usr/bin/env bash
# The servers the team-registry tests and benchmarks run against, on 127.0.0.1:
# PostgreSQL (Debian's package, installed with apt-get when missing) and an S3-compatible
# server (moto's standalone server, from the `dev` extra, installed with pip when missing).
#
#   scripts/services.sh start     install what is missing, start both, write .services.env
#   scripts/services.sh stop      stop both (S3 objects go; PostgreSQL's data dir stays)
#   scripts/services.sh status    exit 0 when both answer
#   scripts/services.sh restart-postgres   stop and start PostgreSQL (the reconnect test)
#
# .services.env (git-ignored) holds MODELKEEP_REGISTRY_URI, MODELKEEP_ARTIFACTS_URI and the
# standard AWS variables, so `set -a; . ./.services.env; set +a` points modelkeep.Registry()
# and the CLI at the team backends. `start` is a no-op when both already answer.
set -euo pipefail

cd "$(dirname "$0")/.."
PROJECT=$(pwd)
PYTHON=${PYTHON:-$PROJECT/.venv/bin/python}
STATE=$PROJECT/.services
ENV_FILE=$PROJECT/.services.env
BUCKET=modelkeep
DB=modelkeep
DB_USER=modelkeep

log() { echo "services: $*" >&2; }
die() { log "error: $*"; exit 1; }

free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

pg_bin() {
    local found
    found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [[ -z "$found" || ! -x "$found/postgres" ]]; then
        return 1
    fi
    echo "$found"
}

install_postgres() {
    if pg_bin >/dev/null; then
        return
    fi
    [[ $(id -u) -eq 0 ]] || die "PostgreSQL is not installed; run as root (apt-get install -y postgresql)"
    log "installing PostgreSQL (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    # Another apt-get (scripts/chromium.sh) may hold the lock: wait for it rather than fail.
    apt-get -o DPkg::Lock::Timeout=300 update -qq >/dev/null
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends postgresql >/dev/null
    # The package starts a cluster of its own on 5432; ours runs beside it, on its own port.
    pg_bin >/dev/null || die "apt-get installed postgresql but no server binary was found"
}

install_moto() {
    if "$PYTHON" -c 'import importlib.util as u, sys; sys.exit(not (u.find_spec("moto") and u.find_spec("flask")))' 2>/dev/null; then
        return
    fi
    log "installing moto[server] (pip)"
    "$PYTHON" -m pip install --quiet 'moto[server]>=5.0'
}

# PostgreSQL refuses to run as root: as root it runs as the `postgres` user the package
# creates, with its data where that user can reach (the checkout may not be).
as_pg() {
    if [[ $(id -u) -eq 0 ]]; then
        (cd / && runuser -u postgres -- "$@")  # from a folder the postgres user may enter
    else
        "$@"
    fi
}

pg_data_dir() {
    if [[ -f "$STATE/pg.data" ]]; then  # where `start` put it
        cat "$STATE/pg.data"
    elif [[ $(id -u) -eq 0 ]]; then
        local key
        key=$(printf '%s' "$PROJECT" | cksum | cut -d' ' -f1)
        echo "${TMPDIR:-/tmp}/modelkeep-services-$key/pg"
    else
        echo "$STATE/pg"
    fi
}

pg_running() {
    local data
    data=$(pg_data_dir)
    [[ -f "$data/postmaster.pid" ]] && as_pg "$(pg_bin)/pg_ctl" -D "$data" status >/dev/null 2>&1
}

start_postgres() {
    local bin data port
    bin=$(pg_bin)
    data=$(pg_data_dir)
    if pg_running; then
        return
    fi
    if [[ ! -f "$data/PG_VERSION" ]]; then
        rm -rf "$data"
        mkdir -p "$data"
        if [[ $(id -u) -eq 0 ]]; then
            chown postgres: "$data" "$(dirname "$data")"
        fi
        as_pg "$bin/initdb" -D "$data" -U "$DB_USER" --auth=trust -E UTF8 --no-sync >/dev/null
    fi
    port=$(cat "$STATE/pg.port" 2>/dev/null || free_port)
    echo "$port" >"$STATE/pg.port"
    echo "$data" >"$STATE/pg.data"
    # fsync off: test data, and it keeps registrations fast on a shared disk.
    as_pg "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 -o \
        "-c listen_addresses=127.0.0.1 -p $port -k $data -c fsync=off -c max_connections=200" \
        start >/dev/null || { tail -n 20 "$data/server.log" >&2; die "PostgreSQL did not start"; }
    if ! as_pg "$bin/psql" -h 127.0.0.1 -p "$port" -U "$DB_USER" -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1; then
        as_pg "$bin/createdb" -h 127.0.0.1 -p "$port" -U "$DB_USER" "$DB"
    fi
}

stop_postgres() {
    local bin data
    bin=$(pg_bin) || return 0
    data=$(pg_data_dir)
    if pg_running; then
        as_pg "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null
    fi
}

s3_running() {
    [[ -f "$STATE/s3.pid" ]] && kill -0 "$(cat "$STATE/s3.pid")" 2>/dev/null
}

start_s3() {
    local port
    if s3_running; then
        return
    fi
    port=$(cat "$STATE/s3.port" 2>/dev/null || free_port)
    echo "$port" >"$STATE/s3.port"
    nohup "$PYTHON" -m moto.server -H 127.0.0.1 -p "$port" >"$STATE/s3.log" 2>&1 &
    echo $! >"$STATE/s3.pid"
    AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing "$PYTHON" - "$port" "$BUCKET" <<'EOF' \
        || die "the S3 server did not start (see .services/s3.log)"
import sys, time, urllib.request
port, bucket = sys.argv[1], sys.argv[2]
url = f"http://127.0.0.1:{port}/{bucket}"
for _ in range(300):
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="PUT"), timeout=2)
        break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit(1)
EOF
}

stop_s3() {
    if s3_running; then
        kill "$(cat "$STATE/s3.pid")"
    fi
    rm -f "$STATE/s3.pid"
}

write_env() {
    local pg_port s3_port
    pg_port=$(cat "$STATE/pg.port")
    s3_port=$(cat "$STATE/s3.port")
    cat >"$ENV_FILE" <<EOF
# Written by scripts/services.sh start: the team registry on the local test servers.
MODELKEEP_REGISTRY_URI=postgresql+psycopg://$DB_USER@127.0.0.1:$pg_port/$DB
MODELKEEP_ARTIFACTS_URI=s3://$BUCKET/registry
AWS_ENDPOINT_URL=http://127.0.0.1:$s3_port
AWS_ACCESS_KEY_ID=testing
AWS_SECRET_ACCESS_KEY=testing
AWS_DEFAULT_REGION=us-east-1
EOF
}

case "${1:-}" in
    start)
        mkdir -p "$STATE"
        if pg_bin >/dev/null && pg_running && s3_running && [[ -f "$ENV_FILE" ]]; then
            exit 0  # both answer already
        fi
        install_postgres
        install_moto
        start_postgres
        data=$(pg_data_dir)
        echo "$data" >"$STATE/pg.data"
        start_s3
        write_env
        log "PostgreSQL on 127.0.0.1:$(cat "$STATE/pg.port"), S3 on 127.0.0.1:$(cat "$STATE/s3.port"); see .services.env"
        ;;
    stop)
        stop_s3
        stop_postgres
        rm -f "$ENV_FILE"
        ;;
    status)
        pg_running && s3_running
        ;;
    restart-postgres)
        stop_postgres
        start_postgres
        ;;
    *)
        echo "usage: $0 start|stop|status|restart-postgres" >&2
        exit 2
        ;;
esac
