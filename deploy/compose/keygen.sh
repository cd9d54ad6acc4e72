#!/bin/sh
# The Compose cluster's key ceremony (the one-shot `keygen` service runs it as root).
#
# Writes the public committee file to the `committee` volume and each replica's encrypted
# keystore and passphrase to that replica's own `keys-<i>` volume, owned by the beat user
# (10001) with mode 0400; the public APIs' TLS material to `tls-<i>` and `tls-client`. The dealer's scratch copy lives on a tmpfs and is gone when the
# container exits. Does nothing if the committee already exists, so `up` after `down` (without
# -v) keeps the keys; delete the volumes to start a new committee.
set -eu
committee=/var/lib/beat/committee
n="${BEAT_REPLICAS:-4}"
if [ -s "$committee/committee.json" ]; then
  echo "keygen: $committee/committee.json exists; keeping the committee"
  exit 0
fi
dealer=$(mktemp -d /tmp/dealer.XXXXXX)
set --
i=0
while [ "$i" -lt "$n" ]; do
  set -- "$@" --replica "tcp=replica-$i:7000"
  i=$((i + 1))
done
beat keygen --out "$dealer" --name "${BEAT_COMMITTEE_NAME:-compose}" \
  --variant "${BEAT_VARIANT:-beat0}" --batch-size "${BEAT_BATCH_SIZE:-16384}" "$@" \
  --tls --tls-name localhost --tls-name 127.0.0.1 --tls-name 'replica-{i}' --tls-client client
i=0
while [ "$i" -lt "$n" ]; do
  keys="/keys/replica-$i"
  install -d -o 10001 -g 10001 -m 0700 "$keys"
  install -o 10001 -g 10001 -m 0400 "$dealer/replica-$i/keystore.bin" "$keys/keystore.bin"
  install -o 10001 -g 10001 -m 0400 "$dealer/replica-$i/passphrase" "$keys/passphrase"
  # The public APIs' TLS material of replica i: its server certificate and its state service's
  # client credentials (private, 0400), the CA and the clients' token hashes (public).
  tls="/tls/replica-$i"
  install -d -o 10001 -g 10001 -m 0700 "$tls"
  for f in server.pem server.key state.pem state.key state.token; do
    install -o 10001 -g 10001 -m 0400 "$dealer/replica-$i/tls/$f" "$tls/$f"
  done
  install -o 10001 -g 10001 -m 0444 "$dealer/tls/ca.pem" "$tls/ca.pem"
  install -o 10001 -g 10001 -m 0444 "$dealer/tls/tokens" "$tls/tokens"
  i=$((i + 1))
done
# The host-side client's credentials (copy them out with docker cp); the CA key is not kept.
install -d -m 0700 /tls-client
install -m 0400 "$dealer/tls/ca.pem" /tls-client/ca.pem
for f in client.pem client.key client.token; do
  install -m 0400 "$dealer/tls/clients/$f" "/tls-client/$f"
done
# The committee file last: its presence means the ceremony completed.
install -o 10001 -g 10001 -m 0444 "$dealer/committee.json" "$committee/committee.json.tmp"
mv "$committee/committee.json.tmp" "$committee/committee.json"
rm -rf "$dealer"
echo "keygen: wrote the committee and $n keystores"
