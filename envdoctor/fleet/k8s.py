"""``fleet manifest --k8s``: one ``envdoctor check`` per node as a Kubernetes Indexed Job.

completions = parallelism = N, and a required pod anti-affinity on ``kubernetes.io/hostname`` puts each
pod on a node of its own (a cluster with fewer nodes leaves pods Pending: the report then counts them
missing). Each pod prints one ``@envdoctor-fleet <node> {json}`` line, so ``kubectl logs`` of the Job is
a file ``fleet report`` reads; with ``--results-pvc`` every node also writes ``<node>.json`` into a
shared volume, the folder form of the same input. The user applies it: envdoctor never talks to the API.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from envdoctor.fleet.report import LOG_PREFIX

LABEL = "envdoctor.io/job"


@dataclass
class JobSpec:
    nodes: int
    image: str
    name: str = "envdoctor-fleet"
    namespace: str | None = None
    gpus_per_node: int = 1  # nvidia.com/gpu requested per pod (the node's full count to check them all)
    quick: bool = False
    results_pvc: str | None = None  # a ReadWriteMany claim mounted at /results
    node_selector: dict[str, str] = field(default_factory=dict)
    deadline_s: int = 900


def _script(spec: JobSpec) -> str:
    check = "envdoctor check --json" + (" --quick" if spec.quick else "")
    out = '/results/"$NODE_NAME".json' if spec.results_pvc else '/tmp/"$NODE_NAME".json'
    # The check's own exit status is in its result; the pod succeeds so that the Job completes.
    return (
        f"{check} --write {out} >/dev/null 2>/tmp/check.err\n"
        f'printf "{LOG_PREFIX} %s " "$NODE_NAME"\n'
        f'tr -d \'\\n\' < {out} 2>/dev/null || printf \'{{"error": "no result: %s"}}\' "$(tail -n 1 /tmp/check.err)"\n'
        "echo\n"
    )


def job(spec: JobSpec) -> dict[str, Any]:
    """The Job as plain data."""
    container: dict[str, Any] = {
        "name": "envdoctor",
        "image": spec.image,
        "command": ["/bin/sh", "-c", _script(spec)],
        "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
    }
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "affinity": {
            "podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "labelSelector": {"matchLabels": {LABEL: spec.name}},
                        "topologyKey": "kubernetes.io/hostname",
                    }
                ]
            }
        },
        "containers": [container],
    }
    if spec.gpus_per_node:
        gpus = str(spec.gpus_per_node)
        container["resources"] = {"limits": {"nvidia.com/gpu": gpus}, "requests": {"nvidia.com/gpu": gpus}}
        pod["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    if spec.node_selector:
        pod["nodeSelector"] = dict(spec.node_selector)
    if spec.results_pvc:
        container["volumeMounts"] = [{"name": "results", "mountPath": "/results"}]
        pod["volumes"] = [{"name": "results", "persistentVolumeClaim": {"claimName": spec.results_pvc}}]
    metadata: dict[str, Any] = {"name": spec.name, "labels": {LABEL: spec.name}}
    if spec.namespace:
        metadata["namespace"] = spec.namespace
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": {
            "completionMode": "Indexed",
            "completions": spec.nodes,
            "parallelism": spec.nodes,
            "backoffLimit": 0,
            "activeDeadlineSeconds": spec.deadline_s,
            "ttlSecondsAfterFinished": 86400,
            "template": {"metadata": {"labels": {LABEL: spec.name}}, "spec": pod},
        },
    }


def render(spec: JobSpec) -> str:
    """The manifest with how to apply it and read the result in its header."""
    ns = f" -n {spec.namespace}" if spec.namespace else ""
    header = f"""# envdoctor fleet: one `envdoctor check` per node, {spec.nodes} nodes ({spec.image}).
#   kubectl apply{ns} -f THIS_FILE
#   kubectl wait{ns} --for=condition=complete job/{spec.name} --timeout={spec.deadline_s}s
#   kubectl logs{ns} -l {LABEL}={spec.name} --tail=-1 --max-log-requests={max(5, spec.nodes)} > fleet.log
#   envdoctor fleet report fleet.log --expect {spec.nodes}
"""
    return header + yaml.dump(job(spec), Dumper=_Dumper, sort_keys=False, width=200)


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the pod's script) as literal blocks, readable in the manifest."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)
