"""The plan model over the closed set of action kinds: every kind of step renders, serialises to JSON
and comes back from it; the planner's and the executor's refusals say the same thing."""

from __future__ import annotations

import json
from pathlib import Path

from envdoctor.facts import Facts
from envdoctor.findings import (
    ACTION_TYPES,
    Action,
    Manual,
    PipInstall,
    PipUninstall,
    SetEnv,
    action_from_dict,
)
from envdoctor.fix.model import Plan, Step
from envdoctor.fix.refusals import live_refusals, refusals
from envdoctor.fix.render import render_plan
from envdoctor.fix.target import Target

# One step of each kind, with what its line must say.
EXAMPLES: dict[str, tuple[Action, str]] = {
    "pip-install": (
        PipInstall(("torch==2.13.0", "torchvision"), "https://download.pytorch.org/whl/cu126", True),
        "/env/bin/python -m pip install --no-input --index-url https://download.pytorch.org/whl/cu126 "
        "--force-reinstall torch==2.13.0 torchvision",
    ),
    "pip-uninstall": (PipUninstall(("apex",)), "/env/bin/python -m pip uninstall -y apex"),
    "set-env": (
        SetEnv("NCCL_P2P_DISABLE", "1 2"),
        "export NCCL_P2P_DISABLE='1 2' (in /env/envdoctor-activate.sh)",
    ),
    "manual": (Manual("Upgrade the NVIDIA driver"), "MANUAL: Upgrade the NVIDIA driver"),
}


def test_every_kind_of_step_renders_and_round_trips_through_json():
    assert set(EXAMPLES) == set(ACTION_TYPES)  # a new kind needs an example here
    steps: list[Step[Action]] = [Step(action, ["some-finding"]) for action, _ in EXAMPLES.values()]
    plan = Plan("/env/bin/python", "/env", steps)
    text = render_plan(plan)
    for (action, line), step in zip(EXAMPLES.values(), steps, strict=True):
        assert plan.describe(step) == line and f"{line}    [some-finding]" in text
        assert step.automatic is not isinstance(action, Manual)
    data = json.loads(json.dumps(plan.to_dict()))
    assert [action_from_dict(s["action"]) for s in data["steps"]] == [a for a, _ in EXAMPLES.values()]
    assert data["commands"] == [line for _, line in EXAMPLES.values()]
    unset = Step(SetEnv("PYTORCH_CUDA_ALLOC_CONF", None))
    assert plan.describe(unset) == "unset PYTORCH_CUDA_ALLOC_CONF (in /env/envdoctor-activate.sh)"


def test_refusals_from_facts_and_from_the_live_target_share_their_wording(tmp_path: Path):
    (tmp_path / "conda-meta").mkdir()
    (tmp_path / "conda-meta" / "pytorch-2.2.2-py311.json").write_text(
        '{"name": "pytorch", "version": "2.2.2"}'
    )
    stdlib = tmp_path / "lib" / "python3.11"
    stdlib.mkdir(parents=True)
    (stdlib / "EXTERNALLY-MANAGED").write_text("[externally-managed]\n")
    python = str(tmp_path / "bin" / "python")
    target = Target(python, str(tmp_path), str(tmp_path), str(stdlib), {})
    facts = Facts()
    facts.python.executable, facts.python.prefix = python, str(tmp_path)
    facts.python.externally_managed, facts.python.conda_packages = True, {"pytorch": "2.2.2"}

    live = live_refusals(target, allow_system=False, allow_conda=False)
    assert len(live) == 2 and "(PEP 668)" in live[0] and "--allow-conda" in live[1]
    assert refusals(facts, allow_system=False, allow_conda=False) == live
    assert live_refusals(target, allow_system=True, allow_conda=True) == []
    assert refusals(facts, allow_system=True, allow_conda=True) == []
