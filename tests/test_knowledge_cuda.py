"""The CUDA-side knowledge tables and their accessors (envdoctor.knowledge.cuda)."""

from __future__ import annotations

import pytest

from envdoctor.knowledge import STATUSES, load_table
from envdoctor.knowledge import cuda as kb

TABLES = ("torch_releases", "cuda_drivers", "arch_lists", "gpus", "fp8")


@pytest.mark.parametrize("table", TABLES)
def test_every_row_has_https_source_and_status(table):
    rows = load_table(table)
    assert rows
    for row in rows:
        assert row["source"].startswith("https://"), row
        assert row["status"] in STATUSES


@pytest.mark.parametrize(
    ("name", "cc"),
    [
        ("NVIDIA GeForce RTX 4090", "8.9"),
        ("Tesla V100-SXM2-16GB", "7.0"),
        ("NVIDIA H100 80GB HBM3", "9.0"),
        ("NVIDIA H100 PCIe", "9.0"),
        ("NVIDIA A100-SXM4-80GB", "8.0"),
        ("NVIDIA A100-SXM4-40GB MIG 1g.5gb", "8.0"),
        ("NVIDIA RTX PRO 6000 Blackwell Server Edition", "12.0"),
        ("NVIDIA RTX PRO 6000 Blackwell Max-Q Workstation Edition", "12.0"),
        ("NVIDIA RTX 6000 Ada Generation", "8.9"),
        ("NVIDIA RTX A6000", "8.6"),
        ("Quadro RTX 6000", "7.5"),
        ("NVIDIA H200", "9.0"),
        ("NVIDIA GH200 480GB", "9.0"),
        ("NVIDIA L4", "8.9"),
        ("NVIDIA L40S", "8.9"),
        ("Tesla T4", "7.5"),
        ("NVIDIA GB200", "10.0"),
        ("NVIDIA B200", "10.0"),
        ("NVIDIA B300 SXM6 AC", "10.3"),
        ("NVIDIA GeForce RTX 5090", "12.0"),
        ("NVIDIA GeForce RTX 3090", "8.6"),
        ("NVIDIA A10G", "8.6"),
        ("NVIDIA GB10", "12.1"),
        ("nvidia geforce rtx 4090", "8.9"),
        # rows read on NVIDIA's legacy list (developer.nvidia.com/cuda-legacy-gpus)
        ("Quadro GV100", "7.0"),
        ("Jetson AGX Xavier", "7.2"),
        ("Tesla P100-PCIE-16GB", "6.0"),
        ("Tesla P40", "6.1"),
        ("Tesla P4", "6.1"),
        ("NVIDIA TITAN Xp", "6.1"),
        ("NVIDIA GeForce GTX 1080 Ti", "6.1"),
        ("GeForce GTX TITAN X", "5.2"),
        ("Tesla M60", "5.2"),
        ("NVIDIA GeForce GTX 970", "5.2"),
        ("NVIDIA GeForce GTX 750 Ti", "5.0"),
    ],
)
def test_gpu_capability_from_driver_names(name, cc):
    assert kb.gpu_capability(name) == cc


@pytest.mark.parametrize("name", ["", "Matrox G200", "NVIDIA Graphics Device", "Intel Arc A770"])
def test_gpu_capability_unknown_names_give_none(name):
    assert kb.gpu_capability(name) is None


@pytest.mark.parametrize(
    ("version", "cuda", "variant"),
    [
        ("2.6.0+cu126", None, "cu126"),
        ("2.6.0+cu126", "12.6", "cu126"),
        ("2.13.0+cpu", None, "cpu"),
        ("2.0.1", "11.7", "cu117"),
        ("2.11.0", "13.0", "cu130"),
        ("2.5.1+rocm6.2", None, "rocm6.2"),
        ("2.0.1", None, None),
    ],
)
def test_parse_variant(version, cuda, variant):
    assert kb.parse_variant(version, cuda) == variant


def test_torch_release_rows():
    rel = kb.torch_release("2.6.0+cu126")
    assert rel is not None and rel.minor == "2.6"
    assert rel.cuda_variants == ["cu118", "cu124", "cu126"]
    assert rel.pypi_default_cuda == "cu124"
    assert kb.torch_release("2.0").pypi_default_cuda == "cu117"
    assert kb.torch_release("2.11.0").pypi_default_cuda == "cu130"
    assert kb.torch_release("9.9") is None


def test_python_313_from_torch_25_and_315_only_from_215():
    assert "3.13" not in kb.torch_release("2.4").python
    assert "3.13" in kb.torch_release("2.5").python
    assert "3.15" not in kb.torch_release("2.14").python
    assert "3.15" in kb.torch_release("2.15").python
    assert "3.10" not in kb.torch_release("2.15").python


def test_driver_floors_are_minor_version_compatibility_aware():
    assert kb.min_driver_for_cuda("cu117") == "450.80.02"
    assert kb.min_driver_for_cuda("12.6") == "525.60.13"
    assert kb.min_driver_for_cuda("cu128") == "525.60.13"
    assert kb.min_driver_for_cuda("cu130") == "580"
    assert kb.min_driver_for_cuda("cpu") is None
    assert kb.toolkit_driver_for_cuda("cu128") == "570.26"
    assert kb.toolkit_driver_for_cuda("13.0") == "580.65.06"
    assert kb.driver_at_least("580.95.05", "580")
    assert not kb.driver_at_least("535.183.01", "580")
    assert kb.driver_cuda_for_driver("535.183.01") == "12.2"


def test_every_release_variant_has_driver_rows_and_an_arch_list():
    for rel in kb.torch_releases():
        for variant in rel.cuda_variants:
            assert kb.min_driver_for_cuda(variant), variant
            assert kb.toolkit_driver_for_cuda(variant), variant
            assert kb.arch_list(rel.minor, variant), (rel.minor, variant)


def test_every_arch_row_names_a_variant_its_release_ships():
    for row in load_table("arch_lists"):
        for minor in row["torch"]:
            rel = kb.torch_release(minor)
            assert rel is not None, minor
            for variant in row["variants"]:
                assert variant in rel.cuda_variants, (minor, variant)


def test_arch_rule_same_major_higher_minor_runs_cubin():
    cu128 = kb.arch_list("2.11.0", "cu128")
    assert cu128 == ["7.5", "8.0", "8.6", "9.0", "10.0", "12.0"]
    assert kb.arch_covers("8.9", cu128)  # RTX 4090 on sm_86 cubins
    assert kb.arch_covers("10.3", cu128)  # B300 on sm_100 cubins
    assert kb.arch_covers("12.1", cu128)  # GB10 on sm_120 cubins
    assert not kb.arch_covers("7.0", cu128)  # V100: Volta dropped from 2.11 cu128
    assert not kb.arch_covers("8.0", ["8.6"])  # a cubin never runs on a lower minor


def test_arch_rule_without_ptx_never_crosses_a_major():
    assert not kb.arch_covers("12.0", kb.arch_list("2.6.0", "cu126"))  # RTX 5090 on cu126
    assert not kb.arch_covers("9.0", kb.arch_list("2.0.1", "cu117"))  # H100 on 2.0 cu117
    assert kb.arch_covers("9.0", kb.arch_list("2.0.1", "cu118"))


@pytest.mark.parametrize(("version", "variant"), [("2.6.0", "cu124"), ("2.6.0", "cu126"), ("2.7.0", "cu126")])
def test_cuda12_release_wheels_of_26_and_27_carry_no_ptx(version, variant):
    """The nightlies had 9.0+PTX; the release branches stripped it, so an RTX 5090 is not covered."""
    entries = kb.arch_list(version, variant)
    assert entries == ["5.0", "6.0", "7.0", "7.5", "8.0", "8.6", "9.0"]
    assert not kb.arch_covers("12.0", entries, "12.8", wheel_cuda=variant)


def test_arch_rule_ptx_jits_forward_given_a_new_enough_driver():
    assert kb.arch_covers("12.0", ["8.0", "9.0+PTX"])
    assert kb.arch_covers("12.0", ["sm_80", "sm_90", "compute_90"])
    assert kb.arch_covers("12.0", ["sm_90", "compute_90"], "12.8", wheel_cuda="12.4")
    assert not kb.arch_covers("12.0", ["sm_90", "compute_90"], "12.2", wheel_cuda="cu124")
    assert not kb.arch_covers("8.6", ["9.0+PTX"])  # PTX only JITs forward


def test_arch_specific_targets_run_on_exactly_that_capability():
    assert kb.arch_covers("9.0", ["sm_90a"])
    assert not kb.arch_covers("10.0", ["sm_90a", "compute_90a"])


def _torch_form(entries: list[str]) -> list[str]:
    out = []
    for entry in entries:
        base = entry.replace("+PTX", "").replace(".", "")
        out.append(f"sm_{base}")
        if entry.endswith("+PTX"):
            out.append(f"compute_{base}")
    return out


def test_table_form_and_torch_form_agree_on_every_shipped_arch_list():
    caps = [
        "3.7",
        "5.0",
        "6.1",
        "7.0",
        "7.5",
        "8.0",
        "8.6",
        "8.9",
        "9.0",
        "10.0",
        "10.3",
        "11.0",
        "12.0",
        "12.1",
    ]
    for rel in kb.torch_releases():
        for variant in rel.cuda_variants:
            table = kb.arch_list(rel.minor, variant)
            for cc in caps:
                assert kb.arch_covers(cc, table) == kb.arch_covers(cc, _torch_form(table)), (
                    rel.minor,
                    variant,
                    cc,
                )


@pytest.mark.parametrize(
    ("torch_version", "driver", "caps", "variant"),
    [
        ("2.11.0", "535.183.01", ["8.0"], "cu128"),  # cu130 needs 580; cu128 is the newest that runs
        ("2.11.0", "535.183.01", ["7.0"], "cu126"),  # V100: only cu126 has sm_70 in 2.11
        ("2.11.0", None, ["7.0"], "cu126"),
        ("2.11.0", "580.95.05", ["9.0"], "cu130"),
        (
            "2.13.0",
            "580.95.05",
            ["9.0"],
            "cu130",
        ),  # cu132's own driver is 595: prefer the fully supported one
        ("2.13.0", "595.58.03", ["9.0"], "cu132"),
        ("2.0.1", "535.183.01", ["9.0"], "cu118"),
        ("2.6.0", "575.57.08", ["12.0"], None),  # no 2.6 wheel has Blackwell kernels
        ("2.11.0", "440.33.01", ["8.0"], None),  # below every floor
        ("2.11.0", "580.95.05", [], "cu130"),
    ],
)
def test_choose_variant(torch_version, driver, caps, variant):
    assert kb.choose_variant(torch_version, driver, caps) == variant


def test_release_with_variant_moves_forward_by_the_smallest_stable_step():
    rel, variant = kb.release_with_variant("2.6.0", "575.57.08", ["12.0"])
    assert (rel.minor, rel.latest, variant) == ("2.7", "2.7.1", "cu128")
    rel, variant = kb.release_with_variant("2.6.0", "575.57.08", ["12.0"], python="3.14.0")
    assert (rel.minor, variant) == ("2.9", "cu128")
    assert kb.release_with_variant("2.14.1", "580.95.05", ["7.0"]) is None  # 2.15 has no Volta wheel


def test_index_url():
    assert kb.index_url("cu128") == "https://download.pytorch.org/whl/cu128"
    assert kb.index_url("cpu") == "https://download.pytorch.org/whl/cpu"


def test_fp8_requirements():
    assert not kb.fp8_supported("8.0")  # A100
    assert not kb.fp8_supported("8.6")
    assert kb.fp8_supported("8.9")  # Ada
    assert kb.fp8_supported("9.0")  # H100
    assert kb.fp8_supported("12.0")
    assert kb.fp8_min_cuda("8.9") == "12.1"
    assert kb.fp8_min_cuda("9.0") is None
    assert "transformer-engine" in kb.fp8_libraries()
