"""`fleet manifest --k8s`: an Indexed Job validated against the Kubernetes schemas (strict, offline),
and its pod script run for real on two "nodes" whose log `fleet report` reads."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from cli_helpers import invoke

kubernetes_validate = pytest.importorskip("kubernetes_validate")


def _manifest(*args: str) -> dict:
    result = invoke(["fleet", "manifest", "--k8s", *args])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("# envdoctor fleet: one `envdoctor check` per node")
    return yaml.safe_load(result.stdout)


def test_manifest_is_an_indexed_job_with_one_pod_per_node_and_gpus():
    job = _manifest("-N", "64", "--image", "registry.example/envdoctor:1", "--gpus-per-node", "8")
    kubernetes_validate.validate(job, "1.30", strict=True)
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == spec["parallelism"] == 64
    pod = spec["template"]["spec"]
    (term,) = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"] == spec["template"]["metadata"]["labels"]
    (container,) = pod["containers"]
    assert container["resources"]["limits"] == {"nvidia.com/gpu": "8"}
    assert container["env"][0]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"


def test_manifest_variants_validate_and_bad_usage_exits_2():
    job = _manifest(
        "-N", "2", "--image", "x", "--gpus-per-node", "0", "--results-pvc", "fleet", "--namespace", "ml",
        "--node-selector", "pool=a100", "--quick",
    )  # fmt: skip
    kubernetes_validate.validate(job, "1.30", strict=True)
    pod = job["spec"]["template"]["spec"]
    assert "resources" not in pod["containers"][0] and pod["nodeSelector"] == {"pool": "a100"}
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "fleet"
    assert invoke(["fleet", "manifest", "--k8s", "-N", "0", "--image", "x"]).exit_code == 2
    assert (
        invoke(["fleet", "manifest", "--k8s", "-N", "2", "--image", "x", "--node-selector", "k"]).exit_code
        == 2
    )


def test_schema_check_rejects_a_broken_job():
    job = _manifest("-N", "2", "--image", "x")
    job["spec"]["template"]["spec"]["containers"][0]["gpus"] = 8
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, "1.30", strict=True)


def test_fleet_report_reads_the_logs_of_the_pods(tmp_path):
    """The pod's own script, run here as two nodes with envdoctor on PATH; `kubectl logs --prefix`
    style prefixes on one of them."""
    job = _manifest("-N", "2", "--image", "x", "--quick", "--gpus-per-node", "0")
    script = job["spec"]["template"]["spec"]["containers"][0]["command"][2]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "envdoctor").write_text(f'#!/bin/sh\nexec {sys.executable} -m envdoctor "$@"\n')
    (bin_dir / "envdoctor").chmod(0o755)
    run = uuid.uuid4().hex[:8]
    names = [f"k8s-{run}-{i}" for i in (1, 2)]
    lines = []
    try:
        for i, name in enumerate(names):
            env = dict(os.environ, NODE_NAME=name, PATH=f"{bin_dir}:{os.environ['PATH']}")
            proc = subprocess.run(
                ["/bin/sh", "-c", script], env=env, capture_output=True, text=True, timeout=120
            )
            assert proc.returncode == 0 and proc.stdout.count("\n") == 1, proc.stdout + proc.stderr
            lines.append((f"[pod/envdoctor-fleet-{i}-abcde/envdoctor] " if i else "") + proc.stdout)
    finally:
        for name in names:
            Path(f"/tmp/{name}.json").unlink(missing_ok=True)
    log = tmp_path / "fleet.log"
    log.write_text("some other line\n" + "".join(lines))
    result = invoke(["fleet", "report", str(log), "--expect", "3"])
    assert result.exit_code == 1  # one node expected but never scheduled
    assert result.stdout.startswith(
        "envdoctor fleet: 3 expected, 2 reported, 1 missing: 1 node(s) need attention"
    )
    assert f"baseline of 2 node(s) (k8s-{run}-[1-2])" in result.stdout
    assert invoke(["fleet", "report", str(log), "--expect", "2"]).exit_code == 0
    (tmp_path / "empty.log").write_text("nothing here\n")
    assert invoke(["fleet", "report", str(tmp_path / "empty.log")]).exit_code == 2
