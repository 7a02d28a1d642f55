#!/usr/bin/env bash
# Newer Nix for the tests, beside Debian's own: Debian trixie's (Nix 2.26) and sid's (2.34)
# nix-bin, each in a minimal Debian root of its own, run from here through that root's own
# dynamic loader and libraries (no chroot, no namespace: the tests' stores, sshd and
# environment are this machine's).
#
#   .ci/nix-versions.sh [SUITE...]      (as root; default: trixie sid)
#
# Each root is made once under $BUDGET_SOLVE_NIX_CACHE (default /var/cache/budget-solve/nix)
# and kept between runs:
#
#   SUITE/root/       the Debian root (debootstrap --variant=minbase, then nix-bin)
#   SUITE/bin/        nix, nix-store, nix-build, ... : wrappers that run the root's Nix
#   SUITE/version     what that Nix says to --version ("nix (Nix) 2.34.8")
#   SUITE/complete    written last: a root without it is half made and is made again
#
# The tests (tests/e2e/versions.py) find them there. Idempotent: a complete root is left
# as it is and only its wrappers are written again; run it as often as you like.
set -euo pipefail

CACHE=${BUDGET_SOLVE_NIX_CACHE:-/var/cache/budget-solve/nix}
MIRROR=${BUDGET_SOLVE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
TRIES=${BUDGET_SOLVE_TRIES:-3}
# argv[0] selects the program inside Debian's one `nix` binary.
PROGRAMS=(nix nix-store nix-env nix-build nix-instantiate nix-daemon nix-collect-garbage
          nix-copy-closure nix-hash nix-prefetch-url nix-shell nix-channel)
# The mirror here may serve a Release file past its Valid-Until; apt would refuse it.
APT=(apt-get -q -o Acquire::Check-Valid-Until=false -o Acquire::Check-Date=false
     -o Acquire::Retries=3 -o Dpkg::Use-Pty=0)

say() { printf 'nix-versions: %s\n' "$*" >&2; }

fail() {
    say "error: $*"
    exit 1
}

# retry LOG WHAT COMMAND...: run COMMAND up to $TRIES times, its output to LOG; on the
# last failure, print the end of LOG and stop.
retry() {
    local log=$1 what=$2
    shift 2
    local try
    for ((try = 1; try <= TRIES; try++)); do
        if "$@" >>"$log" 2>&1; then
            return 0
        fi
        say "$what failed (try $try of $TRIES)"
        [[ $try -lt $TRIES ]] && sleep $((try * 5))
    done
    say "the end of $log:"
    tail -n 25 "$log" >&2
    fail "$what failed $TRIES times; see $log (network or mirror $MIRROR?)"
}

# The root's Nix run from this machine: its loader, its libraries, argv[0] the program.
wrappers() {
    local dir=$1 prog tmp
    mkdir -p "$dir/bin"
    for prog in "${PROGRAMS[@]}"; do
        tmp=$(mktemp "$dir/bin/.$prog.XXXXXX")
        # @DIR@ and @PROG@ filled in; the rest is the wrapper as it runs.
        sed -e "s|@DIR@|$dir|g" -e "s|@PROG@|$prog|g" >"$tmp" <<'EOF'
#!/bin/sh
# @PROG@ of the Debian root @DIR@/root (written by .ci/nix-versions.sh).
# Run through the loader, Nix's /proc/self/exe is the loader: its default build hook
# ("/proc/self/exe __build-remote", started for a build) would run the loader on
# "__build-remote". The hook is this directory's nix, after the caller's NIX_CONFIG.
NIX_CONFIG="${NIX_CONFIG:+$NIX_CONFIG
}build-hook = @DIR@/bin/nix __build-remote"
export NIX_CONFIG
exec @DIR@/root/lib64/ld-linux-x86-64.so.2 \
    --library-path @DIR@/root/usr/lib/x86_64-linux-gnu:@DIR@/root/lib/x86_64-linux-gnu \
    --argv0 @PROG@ @DIR@/root/usr/bin/nix "$@"
EOF
        chmod 755 "$tmp"
        mv -f "$tmp" "$dir/bin/$prog"
    done
}

make_root() {
    local suite=$1 dir=$2 log=$3
    local root=$dir/root
    rm -rf --one-file-system "$dir"
    mkdir -p "$dir"
    : >"$log"
    say "$suite: debootstrap (about 30 s; log $log)"
    # A failed debootstrap leaves a partial root that a second one refuses: start afresh.
    retry "$log" "debootstrap $suite" \
        sh -c 'rm -rf --one-file-system "$1" && debootstrap --variant=minbase "$2" "$1" "$3"' \
        sh "$root" "$suite" "$MIRROR"
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    say "$suite: apt-get install nix-bin"
    retry "$log" "apt-get update in the $suite root" chroot "$root" "${APT[@]}" update
    # Without --no-install-recommends nix-setup-systemd comes along and fails to configure
    # in a chroot (no systemd there).
    retry "$log" "apt-get install nix-bin in the $suite root" \
        chroot "$root" env DEBIAN_FRONTEND=noninteractive \
        "${APT[@]}" install -y --no-install-recommends nix-bin
    chroot "$root" apt-get clean >>"$log" 2>&1 || true
}

setup() {
    local suite=$1
    local dir=$CACHE/$suite log=$CACHE/$suite.log
    if [[ ! -f $dir/complete ]]; then
        make_root "$suite" "$dir" "$log"
    fi
    wrappers "$dir"
    local version
    if ! version=$("$dir/bin/nix" --version 2>>"$log") || [[ $version != "nix (Nix) "* ]]; then
        rm -f "$dir/complete"
        fail "$suite: its nix does not run from here (nix --version: ${version:-nothing}); see $log"
    fi
    "$dir/bin/nix-store" --version >/dev/null 2>>"$log" || fail "$suite: nix-store does not run; see $log"
    printf '%s\n' "$version" >"$dir/version"
    printf '%s\n' "$version" >"$dir/complete"
    printf '%s\t%s\t%s\n' "$suite" "${version##* }" "$dir/bin"
}

main() {
    [[ $(id -u) == 0 ]] || fail "run as root (debootstrap and chroot need it)"
    local suites=("$@")
    [[ ${#suites[@]} -gt 0 ]] || suites=(trixie sid)
    if ! command -v debootstrap >/dev/null; then
        say "apt-get install debootstrap"
        retry /dev/null "apt-get update" apt-get -qq update
        retry /dev/null "apt-get install debootstrap" \
            env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap
    fi
    mkdir -p "$CACHE"
    # One run at a time: a second waits for the first's roots instead of racing it.
    exec 9>"$CACHE/.lock"
    flock 9
    local suite
    for suite in "${suites[@]}"; do
        setup "$suite"
    done
}

main "$@"
