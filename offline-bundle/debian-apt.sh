# Sourced by offline-bundle/dev-bundle.sh and e2e/real-apiserver/build.sh: apt for Debian
# releases newer than this machine's (trixie, sid), with a sources list, state and cache of
# their own under APT_DIR/<release>, so the machine's apt configuration, lists and dpkg status
# are never read for them nor written. Needs APT_DIR, ARCH and a `die` function.

# This machine's Debian mirror: the URI of the apt source (deb822 .sources or one-line .list)
# that serves its own codename, e.g. http://deb.debian.org/debian.
debian_mirror() {
	local codename files
	codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
	[[ -n $codename ]] || die "/etc/os-release names no VERSION_CODENAME; cannot find this machine's Debian mirror"
	files=$(ls /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
	# shellcheck disable=SC2086
	[[ -n $files ]] && awk -v want="$codename" '
		function check() {
			if (uri != "" && suites ~ ("(^| )" want "( |$)") && types ~ /(^| )deb( |$)/) { print uri; exit }
			uri = suites = types = ""
		}
		FNR == 1 { check() }
		FILENAME ~ /\.sources$/ {
			if ($0 ~ /^[ \t]*$/) { check(); next }
			if ($1 == "URIs:") uri = $2
			if ($1 == "Suites:") { suites = $0; sub(/^Suites:/, "", suites) }
			if ($1 == "Types:") { types = $0; sub(/^Types:/, "", types) }
			next
		}
		$1 == "deb" {
			i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
			if ($(i + 1) == want) { print $i; exit }
		}
		END { check() }
	' $files | head -n 1
}

# apt-get with its own sources list, state and cache for release $1 (under APT_DIR), so the
# machine's apt configuration, lists and dpkg status stay untouched.
apt_release() {
	local rel=$1 dir=$APT_DIR/$1
	shift
	apt-get -q -o Dir::Etc::SourceList="$dir/sources.list" -o Dir::Etc::SourceParts=/dev/null \
		-o Dir::State="$dir/state" -o Dir::State::status=/dev/null -o Dir::Cache="$dir/cache" \
		-o APT::Architecture="$ARCH" -o APT::Architectures="$ARCH" \
		-o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false \
		-o Acquire::Languages=none "$@"
}

# Points release $1 at mirror $2 and runs apt-get update for it (log in $3), refusing a
# Release file that did not verify. $4: the archive components (default main).
apt_release_update() {
	local rel=$1 mirror=$2 log=$3 components=${4:-main}
	mkdir -p "$APT_DIR/$rel/state/lists/partial" "$APT_DIR/$rel/cache/archives/partial"
	echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $rel $components" \
		>"$APT_DIR/$rel/sources.list"
	apt_release "$rel" update >"$log" 2>&1 ||
		die "apt-get update of Debian $rel from $mirror failed: $(tail -n 3 "$log")"
	# apt-get update only warns about a Release file it could not verify; refuse it.
	! grep -qE '^(W|E): .*(NO_PUBKEY|not signed|is not valid|GPG error)' "$log" ||
		die "Debian $rel's Release file did not verify: $(grep -E '^(W|E):' "$log" | head -n 2)"
}

# apt-cache with release $1's own sources list, state and cache (see apt_release).
apt_cache_release() {
	local rel=$1 dir=$APT_DIR/$1
	shift
	apt-cache -o Dir::Etc::SourceList="$dir/sources.list" -o Dir::Etc::SourceParts=/dev/null \
		-o Dir::State="$dir/state" -o Dir::State::status=/dev/null -o Dir::Cache="$dir/cache" \
		-o APT::Architecture="$ARCH" -o APT::Architectures="$ARCH" "$@"
}
