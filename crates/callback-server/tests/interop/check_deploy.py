"""Checks the deploy files as far as a machine without a container engine
can, and prints what the binary must start with.

- deploy/k8s/*.yaml validate strictly against the Kubernetes schemas
  (kubernetes-validate, which carries them; no cluster needed);
- deploy/compose.yaml parses, and every instance gets the same settings;
- the Prometheus files and the Grafana dashboard parse;
- the Dockerfile has a non-root user, a HEALTHCHECK and a data volume.

Prints one JSON object: {"k8s": {...env}, "compose": {...env},
"docker": {...env}, "metrics": [metric names the dashboard and rules use]}.
Exits non-zero with the reason on stderr when a check fails."""
import json
import pathlib
import re
import sys

import kubernetes_validate
import yaml

deploy = pathlib.Path(sys.argv[1])


def fail(why):
    print(why, file=sys.stderr)
    sys.exit(1)


env = {}
k8s = {}
for path in sorted((deploy / "k8s").glob("*.yaml")):
    for doc in yaml.safe_load_all(path.read_text()):
        try:
            kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)
        except kubernetes_validate.ValidationError as e:
            fail(f"{path.name}: {e.message} at {list(e.path)}")
        k8s[doc["kind"]] = doc
for kind in ["Deployment", "Service", "ConfigMap", "Secret", "PodDisruptionBudget"]:
    if kind not in k8s:
        fail(f"deploy/k8s has no {kind}")
pod = k8s["Deployment"]["spec"]["template"]["spec"]
container = pod["containers"][0]
if container["readinessProbe"]["httpGet"]["path"] != "/readyz":
    fail("the readiness probe is not /readyz")
if container["livenessProbe"]["httpGet"]["path"] != "/healthz":
    fail("the liveness probe is not /healthz")
config = k8s["ConfigMap"]["data"]
grace_s = int(config["CBC__SERVER__SHUTDOWN_GRACE_MS"]) / 1000
if pod["terminationGracePeriodSeconds"] <= grace_s:
    fail("terminationGracePeriodSeconds must be longer than the drain time")
env["k8s"] = {**config, **k8s["Secret"]["stringData"]}

compose = yaml.safe_load((deploy / "compose.yaml").read_text())
instances = [s for name, s in compose["services"].items() if name.startswith("callback-center-")]
if len(instances) != 3:
    fail(f"compose.yaml runs {len(instances)} instances, not 3")
settings = [json.dumps(s["environment"], sort_keys=True) for s in instances]
if len(set(settings)) != 1:
    fail("the compose instances differ in settings")
for service in ["mariadb", "redis", "balancer", "prometheus", "grafana"]:
    if service not in compose["services"]:
        fail(f"compose.yaml has no {service}")
env["compose"] = instances[0]["environment"]

dockerfile = (deploy / "Dockerfile").read_text()
for needed in ["USER ", "HEALTHCHECK ", "VOLUME ", "/healthz"]:
    if needed not in dockerfile:
        fail(f"the Dockerfile lacks {needed.strip()}")
docker_env = {}
for block in re.findall(r"^ENV ((?:.*\\\n)*.*)$", dockerfile, re.M):
    for key, value in re.findall(r"(\w+)=(\S+)", block.replace("\\\n", " ")):
        docker_env[key] = value
env["docker"] = docker_env

rules = yaml.safe_load((deploy / "prometheus" / "alerts.yml").read_text())
yaml.safe_load((deploy / "prometheus" / "prometheus.yml").read_text())
dashboard = json.loads((deploy / "grafana" / "callback-center.json").read_text())
exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
exprs += [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
if not dashboard["panels"]:
    fail("the dashboard has no panels")
env["metrics"] = sorted({m for e in exprs for m in re.findall(r"\bcallback_[a-z_]+", e)})
print(json.dumps(env))
