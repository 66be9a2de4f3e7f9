"""The planner: merging and ordering of actions, torch index from driver and GPUs, constraints,
idempotent environment changes and refusals. GPU machines are recorded facts (fixtures)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from cli_helpers import invoke

from envdoctor.facts import Facts, Gpu, load_facts
from envdoctor.findings import Finding, Manual, PipInstall, PipUninstall, SetEnv, Severity
from envdoctor.fix.model import Selection
from envdoctor.fix.planner import build_plan
from envdoctor.fix.recipe_plan import plan_for_recipe
from envdoctor.fix.render import render_plan
from envdoctor.recipes import load_recipe
from envdoctor.rules import evaluate

FIXTURES = Path(__file__).parent / "fixtures" / "facts"


def _facts(**python) -> Facts:
    facts = Facts()
    facts.python.executable = python.get("executable", "/env/bin/python")
    facts.python.prefix = python.get("prefix", "/env")
    facts.python.externally_managed = python.get("externally_managed", False)
    facts.python.conda_packages = python.get("conda_packages", {})
    facts.packages.all = python.get("installed", {"torch": "2.13.0+cpu", "numpy": "2.4.6"})
    return facts


def _finding(fid: str, *actions, severity: Severity = Severity.ERROR) -> Finding:
    return Finding(id=fid, severity=severity, message=fid, actions=list(actions))


def test_actions_are_merged_and_ordered_uninstall_install_torch_first_env_manual():
    findings = [
        _finding("a", Manual("Run the container with --ipc=host"), PipInstall(("numpy<2",))),
        _finding(
            "b", SetEnv("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True"), PipInstall(("numpy>=1.21",))
        ),
        _finding(
            "c", PipInstall(("torch==2.13.0",), "https://download.pytorch.org/whl/cu126", reinstall=True)
        ),
        _finding("d", PipUninstall(("torch-tensorrt",)), Manual("Run the container with --ipc=host")),
        _finding("e", PipUninstall(("torch-tensorrt", "pytorch-triton"))),
    ]
    plan = build_plan(findings, _facts())
    assert [s.action for s in plan.steps] == [
        PipUninstall(("torch-tensorrt", "pytorch-triton")),
        PipInstall(("torch==2.13.0",), "https://download.pytorch.org/whl/cu126", reinstall=True),
        PipInstall(("numpy<2,>=1.21",)),
        SetEnv("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True"),
        Manual("Run the container with --ipc=host"),
    ]
    assert plan.steps[0].because == ["d", "e"] and plan.steps[2].because == ["a", "b"]
    assert plan.steps[4].because == ["a", "d"]
    # Other installs run with torch pinned to the build the plan installs.
    assert plan.constraints == ["torch==2.13.0"]
    assert [plan.describe(s) for s in plan.steps[1:3]] == [
        "/env/bin/python -m pip install --no-input --index-url https://download.pytorch.org/whl/cu126 "
        "--force-reinstall torch==2.13.0",
        "/env/bin/python -m pip install --no-input -c '<constraints>' 'numpy<2,>=1.21'",
    ]


def test_contradicting_pins_keep_the_more_severe_finding_and_say_so():
    findings = [
        _finding("first", PipInstall(("idna==2.10",))),
        _finding("second", PipInstall(("idna==3.7",))),
    ]
    plan = build_plan(findings, _facts())
    assert [s.action for s in plan.steps] == [PipInstall(("idna==2.10",))]
    assert any("idna==3.7 contradicts idna==2.10" in n for n in plan.notes)


def test_installed_torch_is_pinned_while_other_packages_install():
    plan = build_plan([_finding("x", PipInstall(("rich>=13",)))], _facts())
    assert plan.constraints == ["torch==2.13.0+cpu"]


def test_torch_without_index_gets_the_variant_for_driver_and_every_gpu():
    """An old Volta next to an Ada card on a 580 driver: cu130 would drop the V100, so cu126."""
    facts = _facts()
    facts.nvidia.driver_version = "580.95.05"
    facts.nvidia.gpus = [Gpu(0, "NVIDIA GeForce RTX 4090", "8.9"), Gpu(1, "Tesla V100-SXM2-16GB", "7.0")]
    plan = build_plan([_finding("t", PipInstall(("torch==2.13.0",), reinstall=True))], facts)
    assert plan.steps[0].action == PipInstall(
        ("torch==2.13.0",), "https://download.pytorch.org/whl/cu126", True
    )
    facts.nvidia.gpus = facts.nvidia.gpus[:1]
    plan = build_plan([_finding("t", PipInstall(("torch==2.13.0",), reinstall=True))], facts)
    assert plan.steps[0].action.index_url == "https://download.pytorch.org/whl/cu130"


def test_env_already_in_the_activation_file_is_not_planned_again():
    findings = [_finding("alloc", SetEnv("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True"))]
    assert build_plan(findings, _facts(), activation={}).steps
    plan = build_plan(findings, _facts(), activation={"PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True"})
    assert plan.steps == [] and not plan.refusals


def test_pep668_and_conda_refusals_and_their_flags():
    findings = [_finding("n", PipInstall(("numpy<2",)))]
    system = _facts(executable="/usr/bin/python3", prefix="/usr", externally_managed=True)
    assert "PEP 668" in build_plan(findings, system).refusals[0]
    assert "python3 -m venv" in build_plan(findings, system).refusals[0]
    assert build_plan(findings, system, allow_system=True).refusals == []
    conda = _facts(conda_packages={"pytorch": "2.2.2"})
    assert "--allow-conda" in build_plan(findings, conda).refusals[0]
    assert build_plan(findings, conda, allow_conda=True).refusals == []
    # Environment-only plans touch no packages: nothing to refuse.
    assert build_plan([_finding("e", SetEnv("X", "1"))], system).refusals == []


def test_recipe_plan_installs_only_what_differs():
    recipe = load_recipe("torch213-cpu")
    facts = _facts(installed={"torch": "2.13.0+cpu", "numpy": "2.4.6", "transformers": "4.57.1"})
    plan = plan_for_recipe(recipe, facts)
    assert [s.action for s in plan.steps] == [PipInstall(("transformers==5.24.0", "accelerate==1.15.0"))]
    assert plan.steps[0].because == ["recipe torch213-cpu"] and plan.constraints == ["torch==2.13.0+cpu"]


def test_fixture_recipe_r1_on_h100_driver535_reinstalls_torch_from_cu118():
    facts = load_facts(FIXTURES / "h100_torch201_cu117.json")
    plan = plan_for_recipe(load_recipe("r1-repro-2025"), facts)
    assert [s.action for s in plan.steps] == [
        PipInstall(("torch==2.0.1",), "https://download.pytorch.org/whl/cu118", reinstall=True),
        PipInstall(("transformers==4.28.1", "accelerate==0.18.0", "numpy<2")),
        SetEnv("PYTORCH_CUDA_ALLOC_CONF", "garbage_collection_threshold:0.8"),
    ]


def test_fixture_recipe_cu130_on_driver535_adds_manual_driver_upgrade():
    plan = plan_for_recipe(
        load_recipe("torch213-cu130"), load_facts(FIXTURES / "driver535_torch211_cu130.json")
    )
    assert plan.manual_steps[0].action == Manual(
        "Upgrade the NVIDIA driver from 535.183.01 to >= 580.65.06 (cu130), then reboot"
    )


# --- plans for recorded GPU machines (facts fixtures -> rules -> plan) -----------------------

CU = "https://download.pytorch.org/whl/"
PIP = "/opt/venv/bin/python -m pip install --no-input"


def _fixture_plan(name: str, *args: str) -> dict:
    result = invoke(["fix", "--facts", str(FIXTURES / name), "--json", *args])
    assert result.exit_code == 1, result.stderr  # a plan with steps: a problem was found
    return json.loads(result.stdout)


def test_fixture_cpu_wheel_on_h100_box_plans_cu130_reinstall():
    plan = _fixture_plan("cpu_wheel_on_gpu_box.json")
    assert plan["commands"][0] == (f"{PIP} --index-url {CU}cu130 --force-reinstall torch==2.13.0")


def test_fixture_driver535_with_cu130_torch_plans_cu128_and_manual_upgrade():
    plan = _fixture_plan("driver535_torch211_cu130.json")
    assert plan["commands"][0] == (f"{PIP} --index-url {CU}cu128 --force-reinstall torch==2.11.0")
    assert any(c.startswith("MANUAL: Upgrade the NVIDIA driver to >= 580") for c in plan["commands"])
    # The old build saw no GPU; whether the planned one does is unknown, so no GPU-reset step follows.
    assert len(plan["commands"]) == 2, plan["commands"]


def test_fixture_rtx5090_on_cu126_plans_a_blackwell_build():
    plan = _fixture_plan("rtx5090_torch260_cu126.json")
    assert plan["commands"][0] == f"{PIP} --index-url {CU}cu128 torch==2.7.1"


def test_fixture_v100_on_torch211_cu128_plans_cu126():
    plan = _fixture_plan("v100_torch211_cu128.json")
    assert plan["commands"][0] == (f"{PIP} --index-url {CU}cu126 --force-reinstall torch==2.11.0")


def test_fixture_numpy2_with_torch22_pins_numpy_below_2_keeping_torch():
    plan = _fixture_plan("fix_numpy2_torch22.json")
    assert plan["commands"] == ["/opt/venv/bin/python -m pip install --no-input -c '<constraints>' 'numpy<2'"]
    assert plan["constraints"] == ["torch==2.2.2+cu121"] and plan["refusals"] == []


def test_fixture_pep668_system_python_plan_is_refused():
    result = invoke(["fix", "--facts", str(FIXTURES / "fix_pep668_numpy2_torch22.json")])
    assert result.exit_code == 1
    assert "REFUSED: /usr/bin/python3 is an externally-managed system Python (PEP 668)" in result.stdout
    allowed = invoke(
        ["fix", "--facts", str(FIXTURES / "fix_pep668_numpy2_torch22.json"), "--break-system-packages"]
    )
    assert "REFUSED" not in allowed.stdout


def test_fixture_conda_managed_torch_plan_is_refused():
    plan = _fixture_plan("fix_conda_numpy2_torch22.json")
    assert len(plan["refusals"]) == 1 and "managed by conda (pytorch in conda-meta)" in plan["refusals"][0]


def test_fix_apply_with_facts_file_is_a_usage_error():
    result = invoke(["fix", "--facts", str(FIXTURES / "fix_numpy2_torch22.json"), "--apply"])
    assert result.exit_code == 2 and "use --python, not --facts" in result.stderr


def test_fixture_healthy_h200_has_nothing_to_fix():
    findings = evaluate(load_facts(FIXTURES / "healthy_h200.json"))
    plan = build_plan(findings, load_facts(FIXTURES / "healthy_h200.json"))
    assert plan.automatic_steps == []


def test_uv_is_used_when_on_path(monkeypatch):
    from envdoctor.fix import installer as executor

    monkeypatch.setattr(executor.shutil, "which", lambda name: "/usr/local/bin/uv" if name == "uv" else None)
    args = ["install", "--no-input", "--index-url", "https://x/cu126", "--force-reinstall", "torch==2.13.0"]
    assert executor.installer_argv("/env/bin/python", args) == [
        "/usr/local/bin/uv", "pip", "install", "--python", "/env/bin/python",
        "--index-url", "https://x/cu126", "--reinstall", "torch==2.13.0",
    ]  # fmt: skip
    assert executor.installer_argv("/env/bin/python", ["uninstall", "-y", "rich"]) == [
        "/usr/local/bin/uv", "pip", "uninstall", "--python", "/env/bin/python", "rich",
    ]  # fmt: skip
    monkeypatch.setattr(executor.shutil, "which", lambda name: None)
    assert executor.installer_argv("/env/bin/python", ["uninstall", "-y", "rich"])[:3] == [
        "/env/bin/python",
        "-m",
        "pip",
    ]


def test_activation_file_round_trips_values_that_need_quoting(tmp_path):
    from envdoctor.fix import activation as executor

    env = {
        "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True,max_split_size_mb:128",
        "Q": "it's $HOME",
        "U": None,
    }
    path = tmp_path / "envdoctor-activate.sh"
    path.write_text(executor.render_activation(path, env))
    assert executor.parse_activation(path.read_text()) == env
    sourced = subprocess.run(
        ["bash", "-c", f'U=set; . {path}; printf "%s|%s|%s" "$PYTORCH_CUDA_ALLOC_CONF" "$Q" "${{U-unset}}"'],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert sourced.stdout == f"{env['PYTORCH_CUDA_ALLOC_CONF']}|{env['Q']}|unset"


# --- the plan for the facts as they will be after a torch change -----------------------------


def test_fixture_h100_torch201_cu117_cu118_reinstall_drops_the_stale_nvcc_step():
    """nvcc 11.8 vs torch cu117 is reported, but the plan installs cu118: that hint is stale."""
    facts = load_facts(FIXTURES / "h100_torch201_cu117.json")
    assert "nvcc-mismatch" in {f.id for f in evaluate(facts)}
    plan = _fixture_plan("h100_torch201_cu117.json")
    assert plan["commands"] == [
        f"{PIP} --index-url {CU}cu118 --force-reinstall torch==2.0.1",
        f"{PIP} -c '<constraints>' 'numpy<2'",
    ]
    assert plan["deferred"] == []
    assert plan["notes"] == ["dropped nvcc-mismatch: no longer holds with the planned torch 2.0.1+cu118"]


def test_fixture_rtx5090_torch_upgrade_moves_torchvision_and_torchaudio_in_the_same_command():
    """torchvision 0.21.0 / torchaudio 2.6.0 pin torch 2.6.0: moving torch to 2.7.1 moves them too."""
    facts = load_facts(FIXTURES / "fix_rtx5090_torch260_vision_audio.json")
    assert "ext-abi-mismatch" not in {f.id for f in evaluate(facts)}  # they fit the torch installed now
    plan = _fixture_plan("fix_rtx5090_torch260_vision_audio.json")
    assert plan["commands"] == [
        f"{PIP} --index-url {CU}cu128 torch==2.7.1 torchvision==0.22.1+cu128 torchaudio==2.7.1+cu128"
    ]
    assert plan["steps"][0]["because"] == ["arch-not-in-wheel", "ext-abi-mismatch"]
    assert plan["notes"] == ["added ext-abi-mismatch: follows from the planned torch 2.7.1+cu128"]


def test_fixture_driver535_same_torch_rebuilt_for_cu128_takes_torchvision_along():
    """Same torch release, other CUDA build: the +cu130 torchvision must become +cu128 with it."""
    facts = load_facts(FIXTURES / "driver535_torch211_cu130.json")
    for listing in (facts.packages.versions, facts.packages.all):
        listing["torchvision"] = "0.26.0+cu130"
    plan = build_plan(evaluate(facts), facts)
    assert plan.steps[0].action == PipInstall(
        ("torch==2.11.0", "torchvision==0.26.0+cu128"), f"{CU}cu128", reinstall=True
    )


def test_findings_that_no_rule_makes_survive_a_torch_change():
    plan = build_plan(
        [
            _finding("torch-x", PipInstall(("torch==2.13.0",), f"{CU}cpu", reinstall=True)),
            _finding("external", Manual("Rebuild the extension against the new torch")),
        ],
        _facts(),
    )
    assert [s.because for s in plan.steps] == [["torch-x"], ["external"]] and plan.notes == []


# --- which findings get automatic steps ------------------------------------------------------


def _no_torch_facts() -> Facts:
    """A fresh venv without torch on a machine without an NVIDIA driver."""
    facts = _facts(installed={"pip": "24.0"})
    facts.python.version = "3.11.2"
    facts.torch.status = "missing"
    facts.nvidia.error = "driver-missing"
    return facts


def test_warning_steps_are_shown_but_not_applied_by_default():
    facts = _no_torch_facts()
    findings = evaluate(facts)
    missing = next(f for f in findings if f.id == "torch-missing")
    assert missing.severity is Severity.WARNING and isinstance(missing.actions[0], PipInstall)

    plan = build_plan(findings, facts)
    assert plan.automatic_steps == []
    assert [s.action for s in plan.deferred] == missing.actions
    assert plan.deferred[0].because == ["torch-missing (warning)"]
    text = render_plan(plan)
    assert text.startswith(
        "Nothing to do.\nNot applied by default (warnings and info; add --include-warnings"
    )
    assert f"torch=={missing.actions[0].specs[0].split('==')[1]}    [torch-missing (warning)]" in text

    for selection in (Selection(include_warnings=True), Selection(only=frozenset({"torch-missing"}))):
        chosen = build_plan(findings, facts, selection=selection)
        assert [s.action for s in chosen.automatic_steps] == missing.actions and chosen.deferred == []


def test_a_left_out_step_that_a_chosen_one_performs_is_listed_once():
    findings = [
        _finding("err", SetEnv("X", "1")),
        _finding("warn", SetEnv("X", "1"), PipInstall(("rich",)), severity=Severity.WARNING),
    ]
    plan = build_plan(findings, _facts())
    assert [(s.action, s.because) for s in plan.steps] == [(SetEnv("X", "1"), ["err", "warn"])]
    assert [(s.action, s.because) for s in plan.deferred] == [(PipInstall(("rich",)), ["warn (warning)"])]


def test_fixture_only_plans_just_those_findings():
    one = _fixture_plan("h100_torch201_cu117.json", "--only", "numpy-abi")
    assert one["commands"] == [f"{PIP} -c '<constraints>' 'numpy<2'"] and one["deferred"] == []
    # Repeatable and comma-separated; torch stays, so the nvcc hint still holds (an info finding).
    two = _fixture_plan(
        "h100_torch201_cu117.json", "--only", "numpy-abi,nvcc-mismatch", "--only", "shm-too-small"
    )
    assert (
        two["commands"][1]
        == "MANUAL: Use a CUDA 11.7 toolkit for extension builds (CUDA_HOME=/usr/local/cuda-11.7)."
    )
    assert two["notes"] == ["not reported here: shm-too-small"]


def test_fix_only_unknown_id_is_a_usage_error():
    result = invoke(
        ["fix", "--facts", str(FIXTURES / "h100_torch201_cu117.json"), "--only", "numpy-abi,no-such-id"]
    )
    assert result.exit_code == 2 and result.stdout == ""
    assert (
        result.stderr
        == "envdoctor: error: --only: unknown finding id no-such-id (`envdoctor rules` lists them)\n"
    )
    with_recipe = invoke(
        [
            "fix",
            "--recipe",
            "torch213-cpu",
            "--facts",
            str(FIXTURES / "healthy_h200.json"),
            "--include-warnings",
        ]
    )
    assert with_recipe.exit_code == 2 and "--recipe plans the recipe" in with_recipe.stderr
