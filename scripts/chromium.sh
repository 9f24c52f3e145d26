#!/usr/bin/env bash
# Installs Debian's chromium package, which the inspector page's test drives
# headless (internal/emulator/inspector), when /usr/bin/chromium is missing;
# `make test` runs it first. Then prints Chromium's version.
#
#   scripts/chromium.sh
#
# It uses apt-get, with sudo when not root, and waits for the dpkg lock, so
# that two runs side by side do not collide. Where it cannot install (no
# apt-get, no root and no sudo) it says what to install and goes on: the
# test then skips, except under CI=true, where this script and the test
# fail.
set -euo pipefail

CHROMIUM=${CHROMIUM:-/usr/bin/chromium}

# cannot reports what is missing: a failure under CI=true, a warning else.
cannot() {
	echo "chromium.sh: $1; install Chromium (Debian's chromium package) or set CHROMIUM to a Chromium binary; without it the inspector page's test is skipped" >&2
	if [ "${CI:-}" = true ]; then
		exit 1
	fi
	exit 0
}

if [ ! -x "$CHROMIUM" ]; then
	if ! command -v apt-get >/dev/null 2>&1; then
		cannot "$CHROMIUM is missing and there is no apt-get"
	fi
	sudo=
	if [ "$(id -u)" -ne 0 ]; then
		if ! command -v sudo >/dev/null 2>&1; then
			cannot "$CHROMIUM is missing, installing it needs root, and there is no sudo"
		fi
		sudo=sudo
	fi
	# Two runs side by side take turns (the second finds it installed);
	# apt-get itself waits up to 10 minutes for a dpkg lock another apt-get
	# or dpkg holds.
	if command -v flock >/dev/null 2>&1; then
		exec 9>"${TMPDIR:-/tmp}/mastersocket-chromium.lock"
		flock -w 900 9 || { echo "chromium.sh: another install of chromium is still running after 15 minutes" >&2; exit 1; }
	fi
	if [ ! -x "$CHROMIUM" ]; then
		lock=(-o DPkg::Lock::Timeout=600)
		echo "chromium.sh: installing Debian's chromium package (for the inspector page's test)" >&2
		$sudo env DEBIAN_FRONTEND=noninteractive apt-get "${lock[@]}" update -q
		$sudo env DEBIAN_FRONTEND=noninteractive apt-get "${lock[@]}" install -y -q --no-install-recommends chromium
	fi
	if [ ! -x "$CHROMIUM" ]; then
		echo "chromium.sh: apt-get installed chromium, but $CHROMIUM is still missing" >&2
		exit 1
	fi
fi
# Chromium's version, for the test log (its launcher script may print noise on stderr).
"$CHROMIUM" --version 2>/dev/null || { echo "chromium.sh: $CHROMIUM does not run" >&2; exit 1; }
