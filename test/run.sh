#!/usr/bin/env bash
# `npm test`: unit, integration and end-to-end tests in one run of node's test runner.
# The end-to-end tests start real programs from Debian's packages; install them when we can
# (root with apt), otherwise say exactly what is missing. They never skip silently.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for pair in docker-registry:docker-registry skopeo:skopeo containerd:containerd ctr:containerd openssl:openssl chromium:chromium docker-compose:docker-compose htpasswd:apache2-utils docker:docker.io dockerd:docker.io podman:podman; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair##*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  packages=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing for the end-to-end tests: $packages"
    apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $packages >/dev/null
  else
    echo "The end-to-end tests need Debian packages that are not installed: sudo apt-get install -y $packages" >&2
    echo "(or run only the other tests: npm run test:unit && npm run test:integration)" >&2
    exit 1
  fi
fi

# Node 20 has no test globs; the file list is explicit.
exec node --import tsx --test $(find test/unit test/integration test/e2e -name '*.test.ts' | sort)
