"""Checks what `helm template` of helm/beat must contain, beyond schema validity.

Usage: check-chart.py RENDERED.yaml [--set key=value ...]  (the same --set flags as the render)
Exits 1 with a list of problems. Run by deploy/validate-helm.sh.
"""
import sys

import yaml


def main() -> int:
    path, args = sys.argv[1], sys.argv[2:]
    sets = {}
    for a, b in zip(args, args[1:]):
        if a == "--set":
            k, v = b.split("=", 1)
            sets[k] = v
    n = int(sets.get("replicas", "4"))
    f = (n - 1) // 3
    tor = sets.get("transports.tor.enabled") == "true"
    state = sets.get("state.enabled", "true") == "true"
    monitoring = sets.get("monitoring.serviceMonitor.enabled") == "true"
    tls = sets.get("api.mode") == "tls"
    services = ["keystore", "gateway", "consensus"] + (["state"] if state else [])
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    problems = []

    def check(cond, msg):
        if not cond:
            problems.append(msg)

    sts = by_kind.get("StatefulSet", [])
    check(len(sts) == n, f"{len(sts)} StatefulSets for n={n}")
    for i, s in enumerate(sorted(sts, key=lambda s: s["metadata"]["name"])):
        spec = s["spec"]
        name = s["metadata"]["name"]
        check(spec["replicas"] == 1, f"{name}: replicas {spec['replicas']}")
        check(spec["podManagementPolicy"] == "Parallel", f"{name}: not Parallel")
        pod = spec["template"]["spec"]
        idx = int(s["metadata"]["labels"]["beat.io/replica"])
        secrets = sorted(v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v)
        want = sorted([f"beat-keys-{idx}"] + ([f"beat-api-tls-{idx}"] if tls else []))
        check(secrets == want, f"{name}: secrets {secrets} (want exactly its own: {want})")
        names = [c["name"] for c in pod["containers"]]
        check(names[: len(services)] == services, f"{name}: containers {names}")
        for c in pod["containers"]:
            mounts = {m["name"] for m in c.get("volumeMounts", [])}
            check(("keys" in mounts) == (c["name"] == "keystore"), f"{name}/{c['name']}: keys mount {mounts}")
            r = c.get("resources", {})
            check("requests" in r and "limits" in r, f"{name}/{c['name']}: resources {r}")
            check(c["securityContext"].get("readOnlyRootFilesystem") is True, f"{name}/{c['name']}: writable root")
            sockets = {"sock-keystore-consensus": {"keystore", "consensus"},
                       "sock-keystore-gateway": {"keystore", "gateway"},
                       "sock-gateway": {"gateway", "consensus"}}
            for vol, allowed in sockets.items():
                check((vol in mounts) == (c["name"] in allowed), f"{name}/{c['name']}: {vol} mount {mounts}")
            if c["name"] in services:
                internal = c["name"] in ("keystore", "gateway")
                ports = {p["containerPort"] for p in c.get("ports", [])}
                check(not (ports & {7200, 7300}), f"{name}/{c['name']}: internal API on a port {ports}")
                # The kubelet cannot probe a gRPC port that requires a client certificate.
                for probe in ["livenessProbe", "readinessProbe", "startupProbe"]:
                    kind = "httpGet" if internal or tls else "grpc"
                    check(kind in c.get(probe, {}), f"{name}/{c['name']}: {probe} is not {kind}")
                if not internal and not tls:
                    check(isinstance(c["readinessProbe"]["grpc"]["port"], int), f"{name}/{c['name']}: probe port")
                mounts = {m["name"]: m for m in c.get("volumeMounts", [])}
                wants_tls = tls and c["name"] in ("consensus", "state")
                check(("api-tls" in mounts) == wants_tls, f"{name}/{c['name']}: api-tls mounted: {'api-tls' in mounts}")
                env = {e["name"]: e["value"] for e in c.get("env", [])}
                check(env.get(f"BEAT_{c['name'].upper()}__REPLICA") == str(idx), f"{name}/{c['name']}: replica env {env}")
    svcs = {s["metadata"]["name"]: s for s in by_kind.get("Service", [])}
    peers = [s for s in svcs.values() if s["metadata"]["name"].endswith("-peers")]
    check(len(peers) == 1 and peers[0]["spec"].get("clusterIP") == "None"
          and peers[0]["spec"].get("publishNotReadyAddresses") is True, "headless peer Service")
    clients = [s for s in svcs.values() if any(p["name"].startswith("grpc-") for p in s["spec"]["ports"])]
    check(len(clients) == n + 1, f"{len(clients)} client Services (want one per replica and one for all)")
    for s in clients:
        for p in s["spec"]["ports"]:
            check(p["name"].startswith("grpc-") and p.get("appProtocol"), f"{s['metadata']['name']}: port {p}")
    pdbs = by_kind.get("PodDisruptionBudget", [])
    check(len(pdbs) == 1 and pdbs[0]["spec"]["minAvailable"] == n - f, f"PDB minAvailable (want {n - f})")
    nps = by_kind.get("NetworkPolicy", [])
    check(len(nps) == 1, "one NetworkPolicy")
    if nps:
        ingress = nps[0]["spec"]["ingress"]
        peer_rule = ingress[0]
        check([p["port"] for p in peer_rule["ports"]] == [7000] and "podSelector" in peer_rule["from"][0],
              f"peer ingress rule {peer_rule}")
        client_ports = sorted(p["port"] for p in ingress[1]["ports"])
        check(client_ports == ([7100, 7400] if state else [7100]), f"client ingress ports {client_ports}")
        open_egress = any(t.get("ipBlock", {}).get("cidr") == "0.0.0.0/0"
                          for r in nps[0]["spec"]["egress"] for t in r.get("to", []))
        check(open_egress == tor, f"egress to the Internet is {open_egress} with tor {tor}")
    config = next(c for c in by_kind["ConfigMap"] if c["metadata"]["name"].endswith("-config"))
    for svc in ["keystore", "gateway"]:
        toml = config["data"][f"{svc}.toml"]
        check("0.0.0.0:72" not in toml and "0.0.0.0:73" not in toml and "unix:/run/beat/" in toml,
              f"{svc}.toml: internal API not on a Unix socket")
    check(("[tor]" in config["data"]["gateway.toml"]) == tor, "gateway [tor] section")
    check(("state.toml" in config["data"]) == state, "state.toml")
    for svc in ["consensus"] + (["state"] if state else []):
        toml = config["data"][f"{svc}.toml"]
        check(("[api.tls]" in toml) == tls and ("plaintext_off_loopback = true" in toml) == (not tls),
              f"{svc}.toml: api.mode {'tls' if tls else 'mesh'} not rendered")
    check(len(by_kind.get("ServiceMonitor", [])) == (1 if monitoring else 0), "ServiceMonitor")
    if problems:
        print("chart checks failed:\n  " + "\n  ".join(problems))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
