#!/usr/bin/env bash
# Builds the BEAT runtime image offline, without any container registry:
#
#   deploy/build-images.sh [--tag beat:dev] [--prometheus] path/to/beat
#
# 1. beat-base:bookworm: a Debian bookworm rootfs made with debootstrap (minbase plus
#    ca-certificates, tor (the external-Tor sidecar mode) and tini; `beat` links no OpenSSL or
#    SQLite library, so nothing else) and `docker import`ed. The rootfs tarball is cached under
#    $BEAT_CACHE (default $HOME/.cache/beat) and reused while the package list is unchanged.
# 2. <tag> (default beat:dev): the runtime stage of deploy/Dockerfile on top of that base, with
#    the given host-built `beat` binary (CI passes the debug build).
# 3. With --prometheus: beat-prometheus:bookworm, the base plus Debian's prometheus binary
#    (fetched with `apt-get download`), for the Compose `observability` profile.
#
# Needs root (or sudo) for debootstrap, and docker. Prints how long each step took.
set -euo pipefail
cd "$(dirname "$0")/.."

tag=beat:dev
prometheus=0
binary=""
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) tag="$2"; shift 2 ;;
    --prometheus) prometheus=1; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) binary="$1"; shift ;;
  esac
done
[ -n "$binary" ] || { echo "usage: $0 [--tag TAG] [--prometheus] path/to/beat" >&2; exit 2; }
[ -x "$binary" ] || { echo "$binary is not an executable" >&2; exit 2; }

cache="${BEAT_CACHE:-$HOME/.cache/beat}"
mkdir -p "$cache"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
start=$SECONDS
say() { printf '[build-images %3ds] %s\n' $((SECONDS - start)) "$*"; }

# --- 1. base image ----------------------------------------------------------------------------
base_packages="ca-certificates,tor,tini"
recipe="bookworm minbase $base_packages"
recipe_id=$(printf '%s' "$recipe" | sha256sum | cut -c1-12)
base_tar="$cache/beat-base-bookworm-$recipe_id.tar"
have_base() {
  [ "$(docker image inspect -f '{{index .Config.Labels "beat.base.recipe"}}' beat-base:bookworm 2>/dev/null)" = "$recipe_id" ]
}
if have_base; then
  say "beat-base:bookworm is present (recipe $recipe_id)"
else
  if [ ! -s "$base_tar" ]; then
    command -v debootstrap >/dev/null || { echo "debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }
    mirror=""
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
      mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)
    fi
    if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
      mirror=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list)
    fi
    mirror="${mirror:-http://deb.debian.org/debian}"
    rootfs=$(mktemp -d "$cache/rootfs.XXXXXX")
    trap '$sudo rm -rf "$rootfs"' EXIT
    say "debootstrap bookworm ($base_packages) from $mirror"
    $sudo debootstrap --variant=minbase --include="$base_packages" bookworm "$rootfs" "$mirror" \
      > "$cache/debootstrap.log" 2>&1 || { tail -20 "$cache/debootstrap.log" >&2; exit 1; }
    # Nothing of apt's caches or lists belongs in the image.
    $sudo rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/tmp/*
    $sudo tar -C "$rootfs" --numeric-owner -cf "$base_tar.partial" .
    $sudo chown "$(id -u):$(id -g)" "$base_tar.partial"
    mv "$base_tar.partial" "$base_tar"
    $sudo rm -rf "$rootfs"
    trap - EXIT
  fi
  say "docker import $base_tar"
  docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change "LABEL beat.base.recipe=$recipe_id" \
    --change 'CMD ["/bin/bash"]' \
    "$base_tar" beat-base:bookworm >/dev/null
fi

# --- 2. runtime image -------------------------------------------------------------------------
ctx=$(mktemp -d)
cleanup_ctx() { rm -rf "$ctx"; }
trap cleanup_ctx EXIT
install -m 0755 "$binary" "$ctx/beat"
{
  echo "FROM beat-base:bookworm"
  echo "COPY beat /usr/local/bin/beat"
  sed -n '/^# --- runtime stage/,$p' deploy/Dockerfile
} > "$ctx/Dockerfile"
grep -q '^HEALTHCHECK' "$ctx/Dockerfile" || { echo "deploy/Dockerfile lost its runtime stage marker" >&2; exit 1; }
say "docker build $tag (binary $binary, $(du -h "$binary" | cut -f1))"
docker build -q -t "$tag" "$ctx" >/dev/null

# --- 3. Prometheus image (optional) -----------------------------------------------------------
if [ "$prometheus" -eq 1 ]; then
  if docker image inspect beat-prometheus:bookworm >/dev/null 2>&1; then
    say "beat-prometheus:bookworm is present"
  else
    pctx=$(mktemp -d)
    trap 'cleanup_ctx; rm -rf "$pctx"' EXIT
    deb="$cache/prometheus.deb"
    if [ ! -s "$deb" ]; then
      say "apt-get download prometheus"
      chmod 0755 "$pctx"
      (cd "$pctx" && apt-get download prometheus >/dev/null 2>&1)
      mv "$pctx"/prometheus_*.deb "$deb"
    fi
    dpkg-deb -x "$deb" "$pctx/root"
    install -m 0755 "$pctx/root/usr/bin/prometheus" "$pctx/prometheus"
    cat > "$pctx/Dockerfile" <<'DOCKERFILE'
FROM beat-base:bookworm
COPY prometheus /usr/local/bin/prometheus
RUN mkdir -p /prometheus && chown 65534:65534 /prometheus
USER 65534:65534
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
DOCKERFILE
    say "docker build beat-prometheus:bookworm"
    docker build -q -t beat-prometheus:bookworm "$pctx" >/dev/null
  fi
fi
say "done: $(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%s %.0f MB", "'"$tag"'", $1/1e6}')"
