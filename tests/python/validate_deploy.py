"""Validate the deploy files: compose and Kubernetes schemas, and every lendfusion command line in
them checked by the binary itself (`lendfusion --dry-run ...`) with the environment and the
configuration file the container would get.

usage: validate_deploy.py REPO LENDFUSION_BIN COMPOSE_SPEC_WHEEL
"""

import atexit
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile

import jsonschema
import kubernetes_validate
import yaml

KUBERNETES_VERSION = "1.31.0"


def dry_run(binary, args, env, what):
    """Run `lendfusion --dry-run ARGS` with exactly `env` (plus PATH); fail with its output."""
    full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": tempfile.gettempdir()}
    full_env.update(env)
    result = subprocess.run([binary, "--dry-run", *args], env=full_env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{what}: `lendfusion {' '.join(args)}` is rejected:\n{result.stderr}")
    print(f"ok  {what}: lendfusion {' '.join(args)}")


def compose(repo, binary, wheel):
    path = os.path.join(repo, "deploy", "compose.yaml")
    with open(path) as f:
        doc = yaml.safe_load(f)
    with zipfile.ZipFile(wheel) as z:
        schema = json.loads(z.read("compose/config/compose_spec.json"))
    errors = [f"{list(e.path)}: {e.message}" for e in jsonschema.Draft201909Validator(schema).iter_errors(doc)]
    if errors:
        raise SystemExit("compose.yaml does not follow the Compose specification:\n" + "\n".join(errors))
    print("ok  compose.yaml follows the Compose specification schema")
    for tool in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(tool[0]) and subprocess.run([*tool, "version"], capture_output=True).returncode == 0:
            result = subprocess.run([*tool, "-f", path, "config", "-q"], capture_output=True, text=True)
            if result.returncode != 0:
                raise SystemExit(f"{' '.join(tool)} config rejects compose.yaml:\n{result.stderr}")
            print(f"ok  `{' '.join(tool)} -f deploy/compose.yaml config` accepts it")
            break
    else:
        print("--  no compose tool here (docker compose / docker-compose): schema check only")

    services = doc["services"]
    base = os.path.dirname(path)
    roles = set()
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown service {dependency}"
        if service.get("image", "").split(":")[0] != "lendfusion":
            continue
        env = {k: str(v) for k, v in service.get("environment", {}).items()}
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if target == env.get("LENDFUSION_CONFIG"):
                env["LENDFUSION_CONFIG"] = os.path.normpath(os.path.join(base, source))
        assert os.path.isfile(env["LENDFUSION_CONFIG"]), f"{name}: no config file"
        dry_run(binary, service["command"], env, f"compose service {name}")
        roles.add(service["command"][0])
    for secret in doc.get("secrets", {}).values():
        assert os.path.isfile(os.path.join(base, secret["file"])), secret
    assert {"generate", "coordinator", "worker"} <= roles, roles
    workers = [s for s in services.values() if s.get("command", [""])[0] == "worker"]
    assert len(workers) == 3, "three workers"


def expand(text, env):
    """Kubernetes' $(VAR) expansion in container arguments."""
    return re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), text)


def kubernetes(repo, binary):
    folder = os.path.join(repo, "deploy", "k8s")
    with open(os.path.join(folder, "kustomization.yaml")) as f:
        kustomization = yaml.safe_load(f)
    docs = []
    for resource in kustomization["resources"]:
        with open(os.path.join(folder, resource)) as f:
            for doc in yaml.safe_load_all(f):
                kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
                docs.append(doc)
                print(f"ok  k8s/{resource}: {doc['kind']} {doc['metadata']['name']} "
                      f"passes the Kubernetes {KUBERNETES_VERSION} schema (strict)")
    if shutil.which("kubectl"):
        result = subprocess.run(["kubectl", "kustomize", folder], capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"kubectl kustomize deploy/k8s fails:\n{result.stderr}")
        print("ok  `kubectl kustomize deploy/k8s` builds")

    configmap = next(d for d in docs if d["kind"] == "ConfigMap")
    config_text = configmap["data"]["lendfusion.toml"]
    config = tomllib.loads(config_text)
    workdir = tempfile.mkdtemp()
    atexit.register(shutil.rmtree, workdir, ignore_errors=True)
    config_path = os.path.join(workdir, "lendfusion.toml")
    with open(config_path, "w") as f:
        f.write(config_text)
    secret = next(d for d in docs if d["kind"] == "Secret")

    expected_ops = {"coordinator": config["ops"]["http_port"], "worker": config["ops"]["worker_http_port"]}
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    roles = set()
    for doc in docs:
        if doc["kind"] not in ("Deployment", "StatefulSet", "Job"):
            continue
        for container in doc["spec"]["template"]["spec"]["containers"]:
            env = {}
            for var in container.get("env", []):
                if "value" in var:
                    env[var["name"]] = var["value"]
                elif "secretKeyRef" in var["valueFrom"]:
                    key = var["valueFrom"]["secretKeyRef"]["key"]
                    assert key in secret["stringData"], f"secret key {key} missing"
                    env[var["name"]] = secret["stringData"][key]
                else:
                    env[var["name"]] = "pod-0"
            assert env.get("LENDFUSION_CONFIG") == "/etc/lendfusion/lendfusion.toml", container["name"]
            env["LENDFUSION_CONFIG"] = config_path
            args = [expand(a, env) for a in container["args"]]
            dry_run(binary, args, env, f"k8s {doc['kind']} {doc['metadata']['name']}")
            role = args[0]
            roles.add(role)
            ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
            if role in expected_ops:
                assert ports["ops"] == expected_ops[role], f"{role}: ops port {ports} vs config"
                for probe in ("livenessProbe", "readinessProbe"):
                    assert container[probe]["httpGet"]["port"] == "ops", f"{role} {probe}"
                assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
                assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
                grace = doc["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
                assert grace > config["ops"]["shutdown_grace_seconds"], f"{role}: grace {grace}"
                assert "limits" in container["resources"] and "requests" in container["resources"]
            if role == "coordinator":
                assert ports["flight-sql"] == config["cluster"]["port"]
                assert ports["scheduler"] == config["cluster"]["scheduler_port"]
            if role == "worker":
                assert ports["data"] == config["cluster"]["worker_port"]
                assert ports["tasks"] == config["cluster"]["worker_task_port"]
    assert roles == {"coordinator", "worker", "generate"}, roles
    scheduler_host, scheduler_port = config["cluster"]["coordinator"].split(":")
    scheduler = services[scheduler_host]
    assert scheduler["spec"].get("publishNotReadyAddresses"), "workers must reach an unready coordinator"
    assert int(scheduler_port) in [p["port"] for p in scheduler["spec"]["ports"]]
    assert expected_ops["coordinator"] in [p["port"] for p in scheduler["spec"]["ports"]]
    print("ok  k8s ports, probes, grace periods and services agree with the configuration")


def examples(repo, binary):
    folder = os.path.join(repo, "deploy", "config")
    for name in sorted(os.listdir(folder)):
        if name.endswith(".toml"):
            path = os.path.join(folder, name)
            result = subprocess.run([binary, "config", "--config", path], capture_output=True, text=True)
            if result.returncode != 0:
                raise SystemExit(f"deploy/config/{name}: {result.stderr}")
            print(f"ok  deploy/config/{name} loads")


def main():
    repo, binary, wheel = sys.argv[1:4]
    examples(repo, binary)
    compose(repo, binary, wheel)
    kubernetes(repo, binary)
    print("deploy files valid")


if __name__ == "__main__":
    main()
