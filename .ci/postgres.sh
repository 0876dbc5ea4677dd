#!/usr/bin/env bash
# Start a throwaway PostgreSQL for the store tests and export DATABASE_URL_TEST.
#
#   source .ci/postgres.sh
#
# Installs PostgreSQL with apt-get when its server binaries are missing, initialises a cluster under /tmp,
# starts it on 127.0.0.1 (as the `postgres` user when run as root: PostgreSQL refuses to run as root), and
# creates the password-authenticated role and database `hkaipulse_test`. Safe to run again: a running server,
# an existing cluster, role or database are reused. Meant to be sourced under `set -euo pipefail`, so it
# returns (never exits) and leaves the caller's shell options alone.

_hkaipulse_pg() {
    local port="${HKAIPULSE_PG_PORT:-55432}"
    local root="${HKAIPULSE_PG_ROOT:-/tmp/hkaipulse-ci-pg}"
    local db="hkaipulse_test" role="hkaipulse" password="hkaipulse"
    local data="$root/data" bindir="" as=()

    _find_bindir() {
        if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
            dirname "$(readlink -f "$(command -v pg_ctl)")"
            return 0
        fi
        # Debian keeps the server binaries off PATH, one folder per major version: take the newest.
        local newest
        newest=$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/pg_ctl' 2>/dev/null | sort -V | tail -n 1)
        [ -n "$newest" ] && dirname "$newest"
    }

    bindir=$(_find_bindir || true)
    if [ -z "$bindir" ]; then
        echo "postgres.sh: installing PostgreSQL with apt-get" >&2
        if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq \
               && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }; then
            echo "postgres.sh: apt-get install postgresql failed" >&2
            return 1
        fi
        bindir=$(_find_bindir || true)
        if [ -z "$bindir" ]; then
            echo "postgres.sh: PostgreSQL installed but pg_ctl not found" >&2
            return 1
        fi
    fi

    if [ "$(id -u)" -eq 0 ]; then
        if ! id postgres >/dev/null 2>&1; then
            useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
        fi
        as=(runuser -u postgres --)
    fi

    mkdir -p "$root"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$root"

    if ! "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port"; then
        if [ ! -f "$data/PG_VERSION" ]; then
            rm -rf "$data"
            if ! "${as[@]}" "$bindir/initdb" -D "$data" -U postgres -E UTF8 --no-sync \
                    --auth-local=trust --auth-host=scram-sha-256 >"$root/initdb.log" 2>&1; then
                echo "postgres.sh: initdb failed:" >&2
                cat "$root/initdb.log" >&2
                return 1
            fi
        fi
        local options="-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$root"
        # A test database needs no durability; without fsync the suite runs several times faster.
        options+=" -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        if ! "${as[@]}" "$bindir/pg_ctl" -D "$data" -l "$root/server.log" -w -t 60 -o "$options" start \
                >/dev/null; then
            echo "postgres.sh: the server did not start:" >&2
            tail -n 30 "$root/server.log" >&2
            return 1
        fi
    fi

    local tries=0
    until "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port"; do
        tries=$((tries + 1))
        if [ "$tries" -ge 60 ]; then
            echo "postgres.sh: PostgreSQL on 127.0.0.1:$port is not accepting connections" >&2
            return 1
        fi
        sleep 1
    done

    # Over the Unix socket as the superuser (trusted); the tests connect over TCP with the password.
    local psql=("${as[@]}" "$bindir/psql" -h "$root" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -qtA)
    if [ -z "$("${psql[@]}" -c "SELECT 1 FROM pg_roles WHERE rolname = '$role'")" ]; then
        "${psql[@]}" -c "CREATE ROLE $role LOGIN CREATEDB PASSWORD '$password'" || return 1
    fi
    if [ -z "$("${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname = '$db'")" ]; then
        "${psql[@]}" -c "CREATE DATABASE $db OWNER $role" || return 1
    fi

    export DATABASE_URL_TEST="postgresql://$role:$password@127.0.0.1:$port/$db"
    echo "postgres.sh: PostgreSQL ready; DATABASE_URL_TEST=postgresql://$role:***@127.0.0.1:$port/$db" >&2
}

_hkaipulse_pg
_hkaipulse_pg_status=$?
unset -f _hkaipulse_pg _find_bindir
if [ "$_hkaipulse_pg_status" -ne 0 ]; then
    unset _hkaipulse_pg_status
    # Sourced: fail the caller's step; run directly: fail the script.
    # shellcheck disable=SC2317
    return 1 2>/dev/null || exit 1
fi
unset _hkaipulse_pg_status
