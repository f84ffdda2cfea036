"""Every overlay and profile builds, and a cluster would accept every object in it."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess

import pytest
import yaml

from mlcycle.auth.secrets import SECRET_NAME
from mlcycle.config import Settings
from mlcycle.deploy.environments import CREDENTIALS_SECRET, ENVIRONMENTS, PLATFORM_NAMESPACE, RUNTIME_NAME
from mlcycle.deploy.render import check_inference_service, render_inference_service
from mlcycle.errors import InvalidInputError
from tests.manifests.schemas import REPO_ROOT, ManifestError, find, kustomize_build, validate_object

CUSTOM_KINDS = {
    "InferenceService",
    "ServingRuntime",
    "Profile",
    "PodDefault",
    "AuthorizationPolicy",
    "ServiceMonitor",
    "PodMonitor",
    "PrometheusRule",
}


def _validate_all(objects: list[dict]) -> None:
    problems = []
    for obj in objects:
        try:
            validate_object(obj)
        except ManifestError as e:
            problems.append(str(e))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("env", list(ENVIRONMENTS))
def test_overlay_objects_validate_strictly(overlays, env):
    objects = overlays[env]
    _validate_all(objects)
    kinds = {o["kind"] for o in objects}
    assert {
        "InferenceService",
        "ServingRuntime",
        "ServiceMonitor",
        "PodMonitor",
        "PrometheusRule",
        "StatefulSet",
        "NetworkPolicy",
        "ConfigMap",
    } <= kinds


def test_profiles_validate_strictly(profiles):
    _validate_all(profiles)
    assert {
        "Profile",
        "PodDefault",
        "AuthorizationPolicy",
        "ResourceQuota",
        "LimitRange",
        "RoleBinding",
        "ServingRuntime",
        "Secret",
    } <= {o["kind"] for o in profiles}


def test_every_custom_kind_is_covered(overlays, profiles):
    seen = {o["kind"] for objs in overlays.values() for o in objs} | {o["kind"] for o in profiles}
    assert seen >= CUSTOM_KINDS


MISSPELLINGS = [
    ("InferenceService", ("spec", "predictor"), "canaryTrafficPercnt", 10),
    ("InferenceService", ("spec", "predictor", "model"), "runtimeName", "x"),
    ("ServingRuntime", ("spec",), "supportedModelFormat", []),
    ("ServiceMonitor", ("spec",), "endpoint", []),
    ("PodMonitor", ("spec",), "podMetricEndpoints", []),
    ("PrometheusRule", ("spec",), "group", []),
    ("Deployment", ("spec", "template", "spec", "containers", 0), "imagePullPolicyy", "Always"),
    ("StatefulSet", ("spec",), "replica", 1),
    ("NetworkPolicy", ("spec",), "policyType", ["Ingress"]),
    ("Deployment", ("metadata",), "label", {"a": "b"}),
]


@pytest.mark.parametrize(("kind", "path", "field", "value"), MISSPELLINGS)
def test_validator_rejects_a_misspelled_field(overlays, kind, path, field, value):
    obj = copy.deepcopy(next(o for o in overlays["prod"] if o["kind"] == kind))
    validate_object(obj)  # valid as built
    target = obj
    for step in path:
        target = target[step]
    target[field] = value
    with pytest.raises(ManifestError, match=re.escape(field)):
        validate_object(obj)


@pytest.mark.parametrize(
    ("kind", "path", "field"),
    [
        ("Profile", ("spec",), "ownr"),
        ("PodDefault", ("spec",), "envs"),
        ("AuthorizationPolicy", ("spec",), "rule"),
    ],
)
def test_validator_rejects_misspelled_profile_fields(profiles, kind, path, field):
    obj = copy.deepcopy(next(o for o in profiles if o["kind"] == kind))
    target = obj
    for step in path:
        target = target[step]
    target[field] = target.get(field, [])
    with pytest.raises(ManifestError, match=field):
        validate_object(obj)


@pytest.mark.parametrize(
    ("path", "old", "new"),
    [
        ("overlays/prod/mlflow-replicas-patch.yaml", "replicas:", "replica:"),
        ("base/inferenceservice-template.yaml", "    scaleMetric:", "    scaleMetrik:"),
        ("base/monitoring.yaml", "honorLabels:", "honourLabels:"),
        ("components/serving-runtime/servingruntime.yaml", "readinessProbe:", "readynessProbe:"),
    ],
)
def test_a_misspelled_field_in_a_committed_file_fails_the_offline_check(tmp_path, kubectl, path, old, new):
    """End to end: a typo in a committed manifest or patch makes the prod overlay's check fail."""
    shutil.copytree(REPO_ROOT / "kustomize", tmp_path / "kustomize")
    target = tmp_path / "kustomize" / path
    assert old in target.read_text()
    target.write_text(target.read_text().replace(old, new, 1))
    with pytest.raises(ManifestError, match=re.escape(new.strip().rstrip(":"))):
        _validate_or_raise(kustomize_build(tmp_path / "kustomize/overlays/prod"))


def _validate_or_raise(objects: list[dict]) -> None:
    for obj in objects:
        validate_object(obj)


@pytest.mark.parametrize("env", list(ENVIRONMENTS))
def test_overlay_inference_service_matches_render(overlays, env):
    """The deploy step and the overlays agree: same alias, scaling, runtime, labels and namespace."""
    built = find(overlays[env], "InferenceService")
    rendered = render_inference_service("wine", env)
    assert built == rendered
    check_inference_service(built)


@pytest.mark.parametrize("env", list(ENVIRONMENTS))
def test_overlay_places_platform_in_its_namespace(overlays, env):
    objects = overlays[env]
    namespaces = {o["metadata"].get("namespace") for o in objects if o["kind"] != "Namespace"}
    assert namespaces == {PLATFORM_NAMESPACE}
    assert find(objects, "Namespace")["metadata"]["name"] == PLATFORM_NAMESPACE
    assert all(o["metadata"]["labels"]["mlcycle.io/environment"] == env for o in objects)
    assert find(objects, "ServingRuntime")["metadata"]["name"] == RUNTIME_NAME


def test_prod_runs_two_mlflow_servers(overlays):
    assert find(overlays["prod"], "Deployment", "mlcycle-mlflow")["spec"]["replicas"] == 2
    assert find(overlays["dev"], "Deployment", "mlcycle-mlflow")["spec"]["replicas"] == 1
    pdb = find(overlays["prod"], "PodDisruptionBudget")
    pod_labels = find(overlays["prod"], "Deployment", "mlcycle-mlflow")["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_mlflow_runs_with_basic_auth_as_mlcycle_server_does(overlays):
    import configparser

    from mlcycle.auth.server import render_auth_config

    for env in ("dev", "prod"):
        mlflow = find(overlays[env], "Deployment", "mlcycle-mlflow")["spec"]["template"]["spec"]
        container = mlflow["containers"][0]
        assert "--app-name=basic-auth" in container["args"]
        env_vars = {e["name"]: e for e in container["env"]}
        for name in ("MLFLOW_AUTH_ADMIN_USERNAME", "MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY"):
            assert env_vars[name]["valueFrom"]["secretKeyRef"]["name"].startswith("mlcycle-mlflow-auth"), name
        for name in ("PGUSER", "PGPASSWORD", "PGDATABASE"):
            assert env_vars[name]["valueFrom"]["secretKeyRef"]["name"].startswith("mlcycle-postgres"), name
        config_map = next(v["configMap"]["name"] for v in mlflow["volumes"] if "configMap" in v)
        ini = find(overlays[env], "ConfigMap", config_map)["data"]["basic_auth.ini"]
        parsed = configparser.ConfigParser(interpolation=None)
        parsed.read_string(ini)
        ours = configparser.ConfigParser(interpolation=None)
        ours.read_string(render_auth_config("postgresql+psycopg2://mlcycle-postgres:5432"))
        assert dict(parsed["mlflow"]) == dict(ours["mlflow"])  # the same config mlcycle server writes
        assert env_vars["MLFLOW_AUTH_CONFIG_PATH"]["value"].endswith("/basic_auth.ini")


def test_only_dev_generates_credentials(overlays):
    names = {o["metadata"]["name"] for o in overlays["dev"] if o["kind"] == "Secret"}
    assert {n.rsplit("-", 1)[0] for n in names - {CREDENTIALS_SECRET}} == {
        "mlcycle-postgres", "mlcycle-minio", "mlcycle-mlflow-auth"}
    assert CREDENTIALS_SECRET in names  # by name: the InferenceService's envFrom refers to it
    assert not [o for o in overlays["prod"] if o["kind"] == "Secret"]
    # The generated (hash-suffixed) Secret names reach the workloads that read them.
    mlflow = find(overlays["dev"], "Deployment", "mlcycle-mlflow")
    refs = {
        e["valueFrom"]["secretKeyRef"]["name"]
        for e in mlflow["spec"]["template"]["spec"]["containers"][0]["env"]
        if "valueFrom" in e
    }
    assert refs <= {o["metadata"]["name"] for o in overlays["dev"] if o["kind"] == "Secret"}


def _images(objects):
    for _, pod in _workload_pods(objects):
        for container in pod["containers"] + pod.get("initContainers", []):
            yield container["image"]


def test_project_images_carry_the_package_version(overlays, profiles):
    settings = Settings()
    ours = {i for objs in [*overlays.values(), profiles] for i in _images(objs) if "ghcr.io/mlcycle/" in i}
    assert ours == {settings.image, settings.predictor_image}


def _workload_pods(objects):
    for obj in objects:
        if obj["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield obj, obj["spec"]["template"]["spec"]
        elif obj["kind"] == "CronJob":
            yield obj, obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        elif obj["kind"] == "ServingRuntime":
            yield obj, obj["spec"]


@pytest.mark.parametrize("source", ["prod", "profiles"])
def test_every_container_has_resources_probes_and_runs_as_non_root(overlays, profiles, source):
    objects = profiles if source == "profiles" else overlays[source]
    checked = 0
    for obj, pod in _workload_pods(objects):
        pod_sc = pod.get("securityContext", {})
        for c in pod["containers"]:
            where = f"{obj['kind']}/{obj['metadata']['name']}/{c['name']}"
            sc = c.get("securityContext", {})
            assert c["resources"]["requests"] and c["resources"]["limits"], where
            if obj["kind"] not in ("Job", "CronJob"):
                assert "readinessProbe" in c and "livenessProbe" in c, where
            assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, where
            assert sc.get("allowPrivilegeEscalation") is False, where
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], where
            assert "RuntimeDefault" in (
                sc.get("seccompProfile", {}).get("type"),
                pod_sc.get("seccompProfile", {}).get("type"),
            ), where
            checked += 1
    assert checked >= (4 if source == "profiles" else 5)


def test_network_policies_default_deny_and_keep_postgres_private(overlays):
    objects = overlays["prod"]
    deny = find(objects, "NetworkPolicy", "mlcycle-default-deny-ingress")
    assert deny["spec"]["podSelector"] == {} and "ingress" not in deny["spec"]
    postgres = find(objects, "NetworkPolicy", "mlcycle-postgres-ingress")
    assert postgres["spec"]["ingress"][0]["from"] == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "mlcycle-mlflow"}}}
    ]


TEAMS = ("team-a", "team-b")


@pytest.mark.parametrize("team", TEAMS)
def test_each_profile_provisions_its_team(profiles, team):
    assert Settings(team=team).team == team  # a valid team name
    profile = find([o for o in profiles if o["kind"] == "Profile"], "Profile", team)
    assert profile["spec"]["owner"]["kind"] == "User"
    mine = [o for o in profiles if o["metadata"].get("namespace") == team]
    assert {o["kind"] for o in mine} >= {
        "CronJob",
        "ResourceQuota",
        "LimitRange",
        "PodDefault",
        "AuthorizationPolicy",
        "RoleBinding",
        "ServingRuntime",
        "Secret",
    }
    assert all(o["metadata"]["labels"]["mlcycle.io/team"] == team for o in mine)
    pod_default = find(mine, "PodDefault")
    env = {e["name"]: e["value"] for e in pod_default["spec"]["env"]}
    assert env["MLCYCLE_TEAM"] == team
    assert Settings(team=team, artifact_root=env["MLCYCLE_ARTIFACT_ROOT"]).effective_artifact_root == (
        f"s3://mlflow/{team}"
    )
    assert pod_default["spec"]["envFrom"] == [{"secretRef": {"name": CREDENTIALS_SECRET}},
                                              {"secretRef": {"name": SECRET_NAME, "optional": True}}]
    # Predictors and drift checks agree on where payload logs go.
    isvc_env = {
        e["name"]: e["value"]
        for e in render_inference_service("wine", "prod", team=team, version=1)["spec"]["predictor"]["model"]["env"]
    }
    assert (
        env["MLCYCLE_SERVING_PAYLOAD_DESTINATION"]
        == isvc_env["MLCYCLE_SERVING_PAYLOAD_DESTINATION"]
        == (f"s3://mlflow/{team}/payloads")
    )
    assert find(mine, "Secret")["metadata"]["name"] == CREDENTIALS_SECRET
    policy = find(mine, "AuthorizationPolicy", "mlcycle-inferenceservices")
    assert policy["spec"]["rules"][0]["from"][0]["source"]["namespaces"] == [team]
    assert find(mine, "ServingRuntime")["metadata"]["name"] == RUNTIME_NAME
    # The rendered InferenceService of this team lands where its runtime and policy are.
    isvc = render_inference_service("wine", "prod", team=team, version=3)
    assert isvc["metadata"]["namespace"] == team
    selector = policy["spec"]["selector"]["matchLabels"]
    assert selector.items() <= isvc["spec"]["predictor"]["labels"].items()
    validate_object(isvc)


def test_no_placeholder_survives_in_profiles(profiles):
    text = yaml.safe_dump_all(profiles)
    assert not re.search(r"(?<![A-Z_])TEAM(?![A-Z_])", text.replace("MLCYCLE_TEAM", ""))


def test_rendered_inference_services_validate_against_the_crd():
    for env in ENVIRONMENTS:
        for canary in (None, 0, 10, 100):
            validate_object(
                render_inference_service("team-a.wine", env, team="team-a", version=7, canary_percent=canary)
            )


def test_render_rejects_what_the_webhook_would(overlays):
    isvc = find(overlays["prod"], "InferenceService")
    isvc["spec"]["predictor"]["canaryTrafficPercent"] = 101
    validate_object(isvc)  # the CRD schema lets it through...
    with pytest.raises(InvalidInputError):  # ...KServe's webhook would not, and neither do we
        check_inference_service(isvc)


CONTRACT_METRICS = set(re.findall(r"`(mlcycle_[a-z_]+)", (REPO_ROOT / "docs/contracts.md").read_text()))


def _rule_file(overlays) -> dict:
    """Every PrometheusRule of the prod overlay (serving, canary, drift, performance) as one rules file."""
    rules = [o for o in overlays["prod"] if o["kind"] == "PrometheusRule"]
    assert len(rules) >= 2, "expected the serving rules and the drift/performance rules"
    return {"groups": [group for rule in rules for group in rule["spec"]["groups"]]}


def test_alerts_and_dashboard_use_only_contract_metrics(overlays):
    rules = yaml.safe_dump(_rule_file(overlays))
    dashboard = find(overlays["prod"], "ConfigMap", "mlcycle-grafana-dashboard")["data"]["mlcycle.json"]
    used = set(re.findall(r"\b(mlcycle_[a-z_]+)", rules + dashboard))
    normalized = {re.sub(r"_bucket$", "", m) for m in used}
    assert normalized <= CONTRACT_METRICS, normalized - CONTRACT_METRICS
    names = {r["alert"] for g in _rule_file(overlays)["groups"] for r in g["rules"]}
    assert {"MlcycleHighErrorRate", "MlcycleHighLatency", "MlcycleCanaryUnhealthy", "MlcycleDriftDetected"} <= names


def test_alert_rules_pass_promtool(overlays, tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (scripts/install-debian-deps.sh installs it)")
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(_rule_file(overlays)))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text(path.read_text().replace("sum by (namespace, model, version)", "sum by (namespace", 1))
    result = subprocess.run(
        [promtool, "check", "rules", str(broken)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode != 0


ALLOWED_KUSTOMIZE_FIELDS = {
    "apiVersion",
    "kind",
    "namespace",
    "resources",
    "components",
    "patches",
    "images",
    "labels",
    "replacements",
    "configMapGenerator",
    "secretGenerator",
}  # no commonLabels, patchesStrategicMerge, patchesJson6902, vars, bases


def test_kustomizations_use_current_fields_and_say_why_they_patch():
    files = sorted((REPO_ROOT / "kustomize").rglob("kustomization.yaml")) + sorted(
        (REPO_ROOT / "profiles").rglob("kustomization.yaml")
    )
    assert len(files) >= 9
    for path in files:
        text = path.read_text()
        assert text.startswith("#"), f"{path} should open with a comment saying what it is"
        fields = set(yaml.safe_load(text))
        assert fields <= ALLOWED_KUSTOMIZE_FIELDS, (path, fields - ALLOWED_KUSTOMIZE_FIELDS)
        for patch in yaml.safe_load(text).get("patches", []):
            patch_file = path.parent / patch["path"]
            assert patch_file.name.endswith("-patch.yaml"), patch_file
            assert patch_file.read_text().startswith("#"), f"{patch_file} should say why it patches"
            before = text[: text.index(f"path: {patch['path']}")].rstrip().splitlines()
            assert any(line.strip().startswith("#") for line in before[-3:]), f"{path}: say why {patch['path']}"


def test_serving_runtime_serves_what_the_render_asks_for(overlays):
    runtime = find(overlays["prod"], "ServingRuntime")
    isvc = render_inference_service("wine", "prod", team="team-a", version=1)
    model = isvc["spec"]["predictor"]["model"]
    assert runtime["metadata"]["name"] == model["runtime"]
    assert model["modelFormat"]["name"] in {f["name"] for f in runtime["spec"]["supportedModelFormats"]}
    assert model["protocolVersion"] in runtime["spec"]["protocolVersions"]
    container = runtime["spec"]["containers"][0]
    assert container["command"] == ["python", "-m", "inference"]
    assert container["args"][0] == "$(MLCYCLE_MODEL_URI)"  # expanded from the InferenceService's env
    assert "--host=0.0.0.0" in container["args"]
    assert [p["containerPort"] for p in container["ports"]] == [8080]
    assert {m["spec"]["podMetricsEndpoints"][0]["port"] for m in overlays["prod"] if m["kind"] == "PodMonitor"} == {
        container["ports"][0]["name"]
    }


def test_the_canary_cronjob_runs_a_real_cli_command(profiles, tmp_path, monkeypatch, capsys):
    from mlcycle.cli import main

    cronjob = find([o for o in profiles if o["metadata"].get("namespace") == "team-a"], "CronJob")
    command = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[0] == "mlcycle"
    monkeypatch.setenv("MLCYCLE_HOME", str(tmp_path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    monkeypatch.setenv("HOME", str(tmp_path))
    # The arguments parse; it stops where a cluster would be needed.
    assert main(command[1:]) == 2
    assert "KUBECONFIG" in capsys.readouterr().err


def test_dashboard_and_canary_queries_are_valid_promql(overlays, tmp_path):
    """promtool parses every dashboard panel's query and the canary analysis' queries."""
    import json

    from mlcycle.deploy.prometheus import canary_queries

    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (scripts/install-debian-deps.sh installs it)")
    dashboard = json.loads(find(overlays["prod"], "ConfigMap", "mlcycle-grafana-dashboard")["data"]["mlcycle.json"])
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(exprs) >= 7
    exprs += list(canary_queries("wine", "team-a", "10m").values())
    rules = [{"record": f"mlcycle:check_{i}", "expr": e} for i, e in enumerate(exprs)]
    path = tmp_path / "queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "queries", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
