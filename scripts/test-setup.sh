#!/usr/bin/env bash
# Makes a Debian machine ready for `make test`: installs whatever of Ruby (with
# the ffi gem and headers), Prometheus, Chromium and the PostgreSQL server is missing,
# and downloads the Go modules. The tests start their own servers, so this
# script installs only and never starts anything. Re-running it when all is
# present only checks, in well under a second.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# pg_bin_dir mirrors internal/devdb.FindBinDir: initdb on PATH (symlinks
# resolved), then pg_config --bindir, then the newest /usr/lib/postgresql/*/bin;
# the directory must hold initdb, pg_ctl and postgres together.
has_server_binaries() {
	[[ -n "$1" && -x "$1/initdb" && -x "$1/pg_ctl" && -x "$1/postgres" ]]
}
pg_bin_dir() {
	local initdb dir
	if initdb=$(command -v initdb); then
		dir=$(dirname "$(readlink -f "$initdb")")
		if has_server_binaries "$dir"; then echo "$dir"; return 0; fi
	fi
	if dir=$(pg_config --bindir 2>/dev/null) && has_server_binaries "$dir"; then
		echo "$dir"
		return 0
	fi
	# sort -V puts 10 above 9.6; the glob stays literal when nothing matches,
	# which has_server_binaries rejects.
	while read -r dir; do
		if has_server_binaries "$dir"; then echo "$dir"; return 0; fi
	done < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -rV)
	return 1
}

missing=()
if ! command -v ruby >/dev/null 2>&1; then
	missing+=(ruby ruby-ffi ruby-dev)
else
	ruby -rffi -e1 >/dev/null 2>&1 || missing+=(ruby-ffi)
	# ruby-dev provides ruby.h (in rubyhdrdir) and the arch-specific config.h
	# that building native extensions needs.
	ruby -rrbconfig -e '
		c = RbConfig::CONFIG
		ok = File.exist?(File.join(c["rubyhdrdir"], "ruby.h")) &&
			File.exist?(File.join(c["rubyarchhdrdir"], "ruby", "config.h"))
		exit(ok ? 0 : 1)' >/dev/null 2>&1 || missing+=(ruby-dev)
fi
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
# The web console's browser tests drive headless Chromium; the fonts give its
# screenshots legible text without the recommended packages.
command -v chromium >/dev/null 2>&1 || missing+=(chromium fonts-liberation)
pg_bin_dir >/dev/null || missing+=(postgresql)

if ((${#missing[@]} > 0)); then
	if ((EUID != 0)); then
		echo "test-setup: missing: ${missing[*]}" >&2
		echo "test-setup: install them as root: apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
		exit 1
	fi
	echo "test-setup: installing ${missing[*]}" >&2
	# Debian's maintainer scripts start a freshly installed postgresql (and
	# would start prometheus) through invoke-rc.d; a policy-rc.d exiting 101
	# forbids that, because the tests run their own servers.
	policy=/usr/sbin/policy-rc.d
	if [[ ! -e "$policy" ]]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod 755 "$policy"
		trap 'rm -f "$policy"' EXIT
	fi
	export DEBIAN_FRONTEND=noninteractive
	# The lock timeout waits out another apt run (e.g. unattended-upgrades)
	# instead of failing at once.
	apt-get -o DPkg::Lock::Timeout=300 update -qq
	apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}"
	pg_bin_dir >/dev/null || {
		echo "test-setup: postgresql installed but initdb, pg_ctl and postgres still not found" >&2
		exit 1
	}
fi

go mod download

# Jaeger v2 for the tests that read spans back (internal/jaegertest). Built
# from source (a few minutes on 2 cores, once; skipped while up to date).
bash scripts/build-jaeger.sh
