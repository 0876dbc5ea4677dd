#!/usr/bin/env bash
# Puts promtool on PATH (sourced by .ci/run), for tests/test_deploy.py to check deploy/'s rules and config.
# Debian's `prometheus` package (19 MB) carries it; only promtool is unpacked from it, into a cache folder: no
# Prometheus server is installed or started. Without apt (or when the download fails) the test is skipped and
# the parse-only checks still run.
if ! command -v promtool >/dev/null 2>&1; then
    promtool_dir="${XDG_CACHE_HOME:-$HOME/.cache}/hk-ai-pulse/promtool"
    if [ ! -x "$promtool_dir/usr/bin/promtool" ] && command -v apt-get >/dev/null 2>&1; then
        promtool_tmp=$(mktemp -d)
        # A fresh machine may have no package lists yet: read them once when the first try fails.
        if (cd "$promtool_tmp" && { apt-get download prometheus >/dev/null 2>&1 \
                || { DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 \
                     && apt-get download prometheus >/dev/null 2>&1; }; }); then
            mkdir -p "$promtool_dir"
            dpkg-deb -x "$promtool_tmp"/prometheus_*.deb "$promtool_dir"
            rm -f "$promtool_dir/usr/bin/prometheus"  # only promtool is wanted
        else
            echo "CI: could not download Debian's prometheus package; promtool checks will be skipped" >&2
        fi
        rm -rf "$promtool_tmp"
    fi
    if [ -x "$promtool_dir/usr/bin/promtool" ]; then
        export PATH="$promtool_dir/usr/bin:$PATH"
    fi
fi
