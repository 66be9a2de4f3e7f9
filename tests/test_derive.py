"""Diagnoses derived from mined knowledge: the API index, wheel listings, CUDA toolkit arch ranges.

The API and wheel tests read the shipped index (``envdoctor/knowledge/*.json.gz``, mined from the
released wheels and PyPI's file listings by tools/mine_api.py); the messages are real ones from
public issues.
"""

from __future__ import annotations

import pytest

from envdoctor.explain import rank
from envdoctor.findings import Severity
from envdoctor.knowledge import mined
from envdoctor.paste import facts_from_report


def _top(text: str):
    return rank(facts_from_report(text))[0].finding


def test_attribute_missing_from_an_older_torch_names_the_release_that_added_it():
    text = (
        "pytorch2.5.1+cuda12.1\n"
        'File "/envs/u/lib/python3.11/site-packages/unsloth_zoo/loss_utils.py", line 241, in <module>\n'
        "AttributeError: module 'torch.compiler' has no attribute 'set_stance'\n"
    )
    f = _top(text)
    assert f.id == "requirement-conflict" and f.severity is Severity.ERROR
    assert f.message == (
        "torch.compiler.set_stance first appears in torch 2.6.0; this environment has torch 2.5.1, "
        "and unsloth_zoo uses it"
    )
    assert f.sources == ["https://pypi.org/project/torch/2.6.0/"]


def test_transformers_calling_a_newer_torch_api_is_transformers_torch_incompat():
    text = (
        "'2.0.1+cu117'\n"
        '  File "/usr/local/lib/python3.10/dist-packages/transformers/cache_utils.py", line 1656\n'
        "AttributeError: module 'torch._dynamo' has no attribute 'mark_static_address'\n"
    )
    facts = facts_from_report(text.replace("'2.0.1+cu117'", "torch 2.0.1+cu117"))
    f = rank(facts)[0].finding
    assert f.id == "transformers-torch-incompat"
    assert f.message.startswith("torch._dynamo.mark_static_address first appears in torch 2.")


def test_names_removed_from_a_package_name_the_release_that_removed_them():
    hub = _top("ImportError: cannot import name 'cached_download' from 'huggingface_hub' (/x/__init__.py)")
    assert hub.id == "requirement-conflict"
    assert hub.message.startswith("huggingface_hub.cached_download was removed in huggingface-hub 0.26.0")
    numpy = _top(
        "AttributeError: `np.float_` was removed in the NumPy 2.0 release. Use `np.float64` instead."
    )
    assert numpy.id == "numpy-abi" and "numpy.float_ was removed in numpy 2.0.0" in numpy.message


def test_no_finding_when_the_installed_release_has_the_name_or_the_name_was_never_mined():
    assert not [
        d
        for d in rank(
            facts_from_report(
                "torch 2.6.0\nAttributeError: module 'torch.compiler' has no attribute 'set_stance'"
            )
        )
        if "derived" in d.support
    ]
    assert not rank(facts_from_report("AttributeError: module 'torch' has no attribute 'no_such_thing_zz'"))


def test_the_index_is_not_loaded_without_an_error_line_that_needs_it():
    mined.api_index.cache_clear()
    mined.wheel_tags.cache_clear()
    mined.requires_python.cache_clear()
    rank(facts_from_report("PyTorch version: 2.1.0+cu121\nRuntimeError: CUDA error: out of memory\n"))
    assert mined.api_index.cache_info().currsize == 0 and mined.wheel_tags.cache_info().currsize == 0
    assert mined.requires_python.cache_info().currsize == 0


def test_no_matching_distribution_for_a_python_the_release_has_no_wheel_for():
    text = (
        "I am running windows 11, python 3.11.\n"
        "ERROR: Could not find a version that satisfies the requirement torch==1.13.1 (from versions: 2.0.0)\n"
        "ERROR: No matching distribution found for torch==1.13.1\n"
    )
    f = _top(text)
    assert f.id == "python-unsupported" and f.severity is Severity.ERROR
    assert f.message.startswith(
        "torch 1.13.1 has no wheel for Python 3.11 on Windows (it ships 3.7, 3.8, 3.9, 3.10); "
        "the first newer release with a Python 3.11 wheel is 2.0.0, the newest is 2."
    )
    linux = facts_from_report(text.replace("windows 11", "ubuntu 22.04"))  # 1.13.1 has a Linux cp311 wheel
    assert not [d for d in rank(linux) if "derived" in d.support]


@pytest.fixture
def without_mined_requires_python(tmp_path, monkeypatch):
    monkeypatch.setattr(mined, "REQUIRES_PYTHON", tmp_path / "absent.json.gz")
    mined.requires_python.cache_clear()
    yield
    mined.requires_python.cache_clear()


def test_pip_skipping_the_release_for_its_requires_python_is_python_unsupported(
    without_mined_requires_python,
):
    """vllm's wheels are abi3 (their tags fit any newer CPython); pip's own Requires-Python listing
    says why vllm==0.10 is not installable on Debian 13's Python 3.13 (phoronix test-profiles#337),
    also where the mined Requires-Python does not cover the package (here: taken away)."""
    text = (
        "It's not possible to install `vllm` on Debian 13 (trixie) because it ships with Python 3.13\n"
        "ERROR: Ignored the following versions that require a different python version: "
        "0.10.0 Requires-Python <3.13,>=3.9; 0.10.1 Requires-Python <3.13,>=3.9; "
        "0.8.5.post1 Requires-Python <3.13,>=3.9\n"
        "ERROR: Could not find a version that satisfies the requirement vllm==0.10 (from versions: 0.0.1)\n"
        "ERROR: No matching distribution found for vllm==0.10\n"
    )
    f = _top(text)
    assert f.id == "python-unsupported" and f.severity is Severity.ERROR
    assert (
        f.message
        == "pip skipped vllm 0.10.0: it requires Python <3.13,>=3.9, and this environment has Python 3.13"
    )
    assert f.evidence["requires-python"] == "vllm 0.10.0: <3.13,>=3.9 (pip's own listing)"
    assert mined.wheel_pythons("vllm", "0.10.0") == ["cp38-abi3"]  # the tags alone cannot tell
    other = text.replace("vllm==0.10", "vllm==0.7.3")  # a release pip did not skip for its Python
    assert not [d for d in rank(facts_from_report(other)) if d.finding.id == "python-unsupported"]
    # The listing belongs to the request pip reports next, not to an earlier failure of another one.
    earlier = "ERROR: No matching distribution found for flash-attn==0.10.0\n" + text
    assert _top(earlier).evidence["requested"] == "vllm==0.10"


def test_mined_requires_python_decides_where_abi3_tags_fit_every_python():
    """Without pip's own listing: vllm 0.10.0's abi3 wheels fit CPython 3.13 by their tags, but their
    Requires-Python (<3.13,>=3.9, mined from PyPI) excludes it; 0.10.2 is the first to admit 3.13."""
    text = "Debian 13 ships Python 3.13.5\nERROR: No matching distribution found for vllm==0.10.0\n"
    f = _top(text)
    assert f.id == "python-unsupported"
    assert f.message.startswith(
        "vllm 0.10.0 requires Python <3.13,>=3.9 on Linux (its wheels' Requires-Python; pip skips it on "
        "Python 3.13); the first newer release with a Python 3.13 wheel is 0.10.2"
    )
    assert mined.python_allowed("vllm", "0.10.0", "3.12.4") is True
    assert not [
        d for d in rank(facts_from_report(text.replace("3.13.5", "3.12.4"))) if "derived" in d.support
    ]


def test_toolkit_arch_range_bounds_a_wheel_without_a_known_arch_list():
    report = (
        "PyTorch version: {torch}\nCUDA used to build PyTorch: {cuda}\nIs CUDA available: True\n"
        "GPU models and configuration: GPU 0: {gpu}\nNvidia driver version: 550.54.15\n"
    )
    above = _top(report.format(torch="1.6.0+cu102", cuda="10.2", gpu="A100-SXM4-40GB"))
    assert above.id == "arch-not-in-wheel" and above.severity is Severity.WARNING
    assert (
        "built with CUDA 10.2, which compiles for sm_30 .. sm_75: no kernels for A100-SXM4-40GB"
        in above.message
    )
    below = _top(report.format(torch="2.0.0a0+1767026", cuda="12.1", gpu="Tesla K80"))
    assert below.id == "arch-not-in-wheel" and below.severity is Severity.ERROR
    assert "sm_50 .. sm_90" in below.message
    fits = rank(
        facts_from_report(report.format(torch="2.0.0a0+1767026", cuda="12.1", gpu="NVIDIA A100-SXM4-80GB"))
    )
    assert "arch-not-in-wheel" not in [d.finding.id for d in fits]


def test_a_damaged_index_gives_no_derived_finding_and_no_crash(tmp_path, monkeypatch):
    bad = tmp_path / "api_index.json.gz"
    bad.write_bytes(b"\x1f\x8b not really gzip")
    monkeypatch.setattr(mined, "API_INDEX", bad)
    mined.api_index.cache_clear()
    try:
        text = "torch 2.5.1\nAttributeError: module 'torch.compiler' has no attribute 'set_stance'"
        assert not [d for d in rank(facts_from_report(text)) if "derived" in d.support]
    finally:
        mined.api_index.cache_clear()


def test_an_extension_built_with_an_older_cuda_has_no_kernels_for_a_newer_gpu():
    text = (
        "GPU models and configuration: GPU 0: NVIDIA GeForce RTX 5090\n"
        "WARNING[XFORMERS]: xFormers can't load C++/CUDA extensions. xFormers was built for:\n"
        "    PyTorch 2.5.1+cu121 with CUDA 1201 (you have 2.7.0+cu128)\n"
    )
    ranked = rank(facts_from_report(text))
    assert ranked[0].finding.id == "ext-abi-mismatch"  # the torch mismatch is the first cause
    [arch] = [d.finding for d in ranked if d.finding.id == "arch-not-in-wheel"]
    assert arch.severity is Severity.WARNING
    assert arch.message == (
        "xformers was built with CUDA 12.1, which compiles for sm_50 .. sm_90: "
        "no xformers kernels for NVIDIA GeForce RTX 5090 (sm_120)"
    )
    ok = rank(facts_from_report(text.replace("RTX 5090", "RTX 4090")))
    assert "arch-not-in-wheel" not in [d.finding.id for d in ok]


def test_the_python_is_read_from_pips_list_of_the_releases_it_could_install():
    """LibreTranslate/Locomotive#32: no Python stated; pip offered torch from 2.2.0 on, the first
    release with Python 3.12 wheels, so the pinned 2.0.1 has none for it."""
    text = (
        "ERROR: Could not find a version that satisfies the requirement torch==2.0.1+cu117 (from -r "
        "requirements.txt (line 2)) (from versions: 2.2.0, 2.2.1, 2.2.2, 2.3.0, 2.3.1, 2.4.0, 2.4.1, 2.5.0, 2.5.1)\n"
        "ERROR: No matching distribution found for torch==2.0.1+cu117 (from -r requirements.txt (line 2))\n"
    )
    f = _top(text)
    assert f.id == "python-unsupported" and f.severity is Severity.ERROR
    assert f.message.startswith("torch 2.0.1 has no wheel for Python 3.12 ")
    assert f.evidence["python inferred"].startswith("3.12: the only Python whose torch wheels start at 2.2.0")


@pytest.mark.parametrize(
    "listing",
    [
        "none",  # nothing to read (pip's own "no wheel at all" is a signature of its own)
        "2.2.0+cu121, 2.2.1+cu121",  # another index's local versions
        "2.4.0, 2.4.1",  # no Python's wheels start at 2.4.0
    ],
)
def test_no_python_is_inferred_from_a_list_that_fits_no_single_python(listing):
    text = (
        f"ERROR: Could not find a version that satisfies the requirement torch==2.0.1 (from versions: {listing})\n"
        "ERROR: No matching distribution found for torch==2.0.1\n"
    )
    assert not [d for d in rank(facts_from_report(text)) if "python inferred" in d.finding.evidence]


def test_a_source_location_printed_the_warnings_way_names_the_calling_package():
    """facebookresearch/neuroai#155: transformers 5 uses a dtype of torch 2.7 (read from torch's stubs)."""
    text = (
        "- `torch` 2.6.0\n- `transformers` 5.10.2\n"
        "transformers/integrations/finegrained_fp8.py:45: _UE8M0_SF_DTYPE = torch.float8_e8m0fnu\n"
        "AttributeError: module 'torch' has no attribute 'float8_e8m0fnu'\n"
    )
    f = _top(text)
    assert f.id == "transformers-torch-incompat"
    assert f.message == (
        "torch.float8_e8m0fnu first appears in torch 2.7.0; this environment has torch 2.6.0, "
        "and transformers uses it"
    )


def test_a_torch_name_decodes_only_torchs_entry_of_the_index():
    """The index holds each distribution as a JSON text of its own: an error about a torch name does
    not decode transformers' and diffusers' names (0.09 s instead of 0.4 s of a 5 MB paste's CPU)."""
    mined.api_index.cache_clear()
    try:
        assert mined.name_history("torch.compiler.set_stance") is not None
        assert set(mined.api_index()._entries) == {"torch"}
        assert "transformers" in mined.api_index()  # known without being decoded
        assert set(mined.api_index()._entries) == {"torch"}
    finally:
        mined.api_index.cache_clear()
