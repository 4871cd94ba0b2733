#!/usr/bin/env bash
# Builds Caddy v2.11.9 with caddy-l4 v0.1.2 and caddy-vipa from this checkout
# through xcaddy. Output: xcaddy-build/caddy (or the path given as $1).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
out=${1:-$here/caddy}

XCADDY_VERSION=v0.4.5
CADDY_VERSION=v2.11.9
L4_VERSION=v0.1.2

if ! command -v xcaddy >/dev/null 2>&1; then
	echo "installing xcaddy $XCADDY_VERSION"
	go install "github.com/caddyserver/xcaddy/cmd/xcaddy@$XCADDY_VERSION"
	PATH="$(go env GOPATH)/bin:$PATH"
fi

# The unpublished module needs a version beside its replacement path: the
# module proxy refuses unknown modules with 403, which stops a plain "=.".
cd "$repo"
xcaddy build "$CADDY_VERSION" \
	--with "github.com/mholt/caddy-l4@$L4_VERSION" \
	--with "github.com/caddy-vipa/caddy-vipa@v0.0.0=$repo" \
	--output "$out"

"$out" version
"$out" list-modules | grep -E '^(vipadynamic|layer4\.handlers\.distribute|admin\.api\.vipa)$'
