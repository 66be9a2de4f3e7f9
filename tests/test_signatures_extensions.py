"""Messages that CUDA extension packages print in their own words (apex, the OpenMMLab code bases, DGL),
the same messages as pastes render them in Markdown, and PTX that a local toolkit built."""

from __future__ import annotations

import pytest

from envdoctor.explain import explain_text, load_signatures, match_text, rank
from envdoctor.paste import facts_from_report
from envdoctor.rules import all_rules
from envdoctor.signatures import SignatureError, parse_signature


def _top(text: str) -> str | None:
    candidates = explain_text(text).candidates
    return candidates[0].finding.id if candidates else None


def _first(text: str) -> tuple[str, dict[str, str]]:
    """The first candidate's id and the fields its first message gave."""
    first = explain_text(text).candidates[0]
    return first.finding.id, first.matches[0].fields


def test_apex_refusing_to_build_is_nvcc_against_torchs_cuda_and_states_torchs_cuda():
    text = (
        "RuntimeError: Cuda extensions are being compiled with a version of Cuda that does not match the\n"
        "version used to compile Pytorch binaries.  Pytorch binaries were compiled with Cuda 11.3.\n"
    )
    finding_id, fields = _first(text)
    assert finding_id == "nvcc-mismatch" and fields["torch_cuda"] == "11.3"


@pytest.mark.parametrize(
    ("message", "requirement"),
    [
        (
            "AssertionError: MMCV==2.2.0 is used but incompatible. Please install mmcv>=2.0.0rc4, <2.2.0.",
            "mmcv>=2.0.0rc4, <2.2.0",
        ),
        (
            "AssertionError: MMCV==1.3.9 is used but incompatible. Please install mmcv>=[1, 1, 4], <=[1, 2, 0].",
            "mmcv>=[1, 1, 4], <=[1, 2, 0]",
        ),
        (
            "AssertionError: MMEngine==0.7.0 is used but incompatible. Please install mmengine>=0.7.1, <1.0.0.",
            "mmengine>=0.7.1, <1.0.0",
        ),
    ],
)
def test_openmmlab_version_range_assertion_is_a_requirement_conflict(message: str, requirement: str):
    finding_id, fields = _first(message)
    assert finding_id == "requirement-conflict" and fields["requirement"] == requirement


@pytest.mark.parametrize(
    "message",
    [
        "ImportError: Cannot load Graphbolt C++ library",
        "FileNotFoundError: Cannot find DGL C++ graphbolt library at /x/dgl/graphbolt/libgraphbolt_pytorch_2.5.1.so",
        "FileNotFoundError: Cannot find DGL C++ sparse library at /x/dgl/dgl_sparse/libdgl_sparse_pytorch_2.4.0.so",
    ],
)
def test_dgl_library_missing_for_this_torch_is_an_extension_built_for_another_torch(message: str):
    assert _top(message) == "ext-abi-mismatch"


def test_a_library_that_is_not_dgls_is_not_taken_for_it():
    assert not [m for m in match_text("Cannot find C++ library libfoo") if m.signature.id]


def test_xformers_warning_quoted_in_backticks_still_names_both_torch_releases():
    text = (
        "`WARNING[XFORMERS]: xFormers can't load C++/CUDA extensions. xFormers was built for:\n"
        "`\n`PyTorch 2.0.1+cu118 with CUDA 1108 (you have 1.13.1+cu117)`"
    )
    assert _first(text) == ("ext-abi-mismatch", {"built": "2.0.1+cu118", "torch": "1.13.1+cu117"})


def test_libtorch_symbol_whose_underscores_markdown_made_emphasis_is_still_a_libtorch_symbol():
    text = (
        "ImportError: /env/site-packages/causal_conv1d_cuda.cpython-310-x86_64-linux-gnu.so: undefined "
        "symbol: *ZNK3c1017SymbolicShapeMeta18init*is_contiguousEv"
    )
    assert _top(text) == "ext-abi-mismatch"
    # A plain C symbol of the extension itself is still only the generic, low-confidence signature.
    names = [m.signature.name for m in match_text("ImportError: /x/ext.so: undefined symbol: my_kernel")]
    assert names == ["extension-undefined-symbol"]


PTX = "RuntimeError: CUDA error: the provided PTX was compiled with an unsupported toolchain."


def test_ptx_from_a_toolkit_newer_than_torchs_cuda_is_the_toolkit_not_torchs_driver_floor():
    report = (
        "PyTorch version: 2.0.0+nv23.05\nCUDA used to build PyTorch: 11.4\nCUDA runtime version: 11.8.89\n"
    )
    ranked = rank(facts_from_report(report + PTX))
    assert ranked[0].finding.id == "toolkit-newer-than-driver"
    assert ranked[0].finding.fix  # the rule's own fix: build with a toolkit the driver supports


@pytest.mark.parametrize(
    "report",
    [
        "PyTorch version: 2.1.0+cu121\nCUDA used to build PyTorch: 12.1\nCUDA runtime version: 12.1.105\n",
        "PyTorch version: 2.1.0+cu121\nCUDA used to build PyTorch: 12.1\n",
        "",
    ],
    ids=["same-cuda", "no-nvcc", "no-report"],
)
def test_ptx_without_a_newer_local_toolkit_stays_the_driver(report: str):
    text = report + PTX
    ranked = rank(facts_from_report(text)) if report else explain_text(text).candidates
    assert ranked[0].finding.id == "driver-too-old"


def test_every_toolkit_id_names_a_registered_rule():
    ids = {r.id for r in all_rules()}
    with_toolkit = [s for s in load_signatures() if s.toolkit_id]
    assert with_toolkit and all(s.toolkit_id in ids for s in with_toolkit)


def test_out_of_memory_written_short_is_recognised_without_a_cause():
    ex = explain_text("6. See error, e.g. CUDA OOM")
    assert not ex.candidates and [m.signature.name for m in ex.notes] == ["cuda-oom"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (" PyTorch 2.9.0+cu128 with CUDA 1208 (you have 2.10.0+cu128)", "ext-abi-mismatch"),
        ("   PyTorch 2.1.0+cu121 with CUDA 1201 (you have 2.1.0+cpu)", "torch-cpu-build"),
    ],
)
def test_xformers_check_quoted_without_its_first_line_is_still_recognised(body: str, expected: str):
    text = (
        body + "\n    Python  3.10.11 (you have 3.13.12)\n"
        "  Please reinstall xformers (see https://github.com/facebookresearch/xformers#installing-xformers)"
    )
    assert _top(text) == expected


def test_xformers_check_with_its_first_line_is_read_once():
    text = (
        "WARNING[XFORMERS]: xFormers can't load C++/CUDA extensions. xFormers was built for:\n"
        "    PyTorch 2.1.2+cu121 with CUDA 1201 (you have 2.0.1+cu118)\n"
        "    Python  3.10.11 (you have 3.10.11)\n  Please reinstall xformers (see https://x)"
    )
    assert [m.signature.name for m in match_text(text)] == ["xformers-built-for-other-torch"]


@pytest.mark.parametrize(
    "message",
    [
        "AssertionError: fp8e4nv data type is not supported on CUDA arch < 89",  # Triton before 3.0
        "[Bug]: fp8e4nv data type error on A100",  # the same refusal quoted in a title
    ],
)
def test_tritons_fp8e4nv_refusal_in_either_wording_is_fp8_unsupported(message: str):
    assert _top(message) == "fp8-unsupported"


def test_xformers_refusing_the_installed_flash_attn_is_a_requirement_conflict_naming_both():
    text = (
        '  File "/opt/conda/lib/python3.11/site-packages/xformers/ops/fmha/flash.py", line 82, in <module>\n'
        "    raise ImportError(\n"
        "ImportError: Requires Flash-Attention version >=2.7.1,<=2.8.2 but got 2.8.3.\n"
    )
    finding_id, fields = _first(text)
    assert finding_id == "requirement-conflict"
    assert fields == {"dependency": "Flash-Attention", "requirement": ">=2.7.1,<=2.8.2", "installed": "2.8.3"}


def test_an_extension_modules_undefined_symbol_quoted_without_its_name_is_an_abi_mismatch():
    text = (
        "However, after install vllm==0.8.5, the version of torch becomes 2.6.0, then get "
        "`flash_attn_2_cuda.cpython-311-x86_64-linux-gnu.so: undefined symbol:`  error again."
    )
    finding_id, fields = _first(text)
    assert finding_id == "ext-abi-mismatch"
    assert fields["library"] == "flash_attn_2_cuda.cpython-311-x86_64-linux-gnu.so"
    named = "ImportError: /x/vllm/_C.abi3.so: undefined symbol: _ZN3c104cuda9SetDeviceEi"
    assert [m.signature.name for m in match_text(named)] == ["extension-undefined-torch-symbol"]


def test_a_cuda_runtime_of_another_major_than_torchs_is_asked_for_by_a_package_built_for_it():
    missing = "ImportError: libcudart.so.10.1: cannot open shared object file: No such file or directory"
    assert _top(missing) == "cuda-lib-conflict"  # torch's CUDA unknown: a library not on the path
    assert _top("PyTorch version: 2.1.0+cu121\n" + missing) == "ext-abi-mismatch"
    same = "ImportError: libcudart.so.12: cannot open shared object file: No such file or directory"
    assert _top("PyTorch version: 2.1.0+cu121\n" + same) == "cuda-lib-conflict"


def test_foreign_cuda_id_needs_a_cuda_group_in_the_pattern():
    row = {
        "name": "x",
        "id": "cuda-lib-conflict",
        "severity": "error",
        "confidence": "high",
        "pattern": "libcudart\\.so: cannot open",
        "foreign_cuda_id": "ext-abi-mismatch",
        "message": "m",
        "source": "https://example.org",
        "example": "libcudart.so: cannot open",
    }
    with pytest.raises(SignatureError, match="foreign_cuda_id"):
        parse_signature("libraries.yaml", 0, row)


def test_torch_1x_split_cuda_library_asked_for_is_a_module_built_for_another_torch():
    """OpenVoice#203: MeloTTS's torch 1.x stack next to OpenVoice V2's torch 2. torch 1.8-1.13 split
    libtorch_cuda.so into _cpp and _cu halves; torch 2 has neither, so the module asking was built for 1.x."""
    for lib in ("libtorch_cuda_cpp.so", "libtorch_cuda_cu.so"):
        assert _top(f"OSError: {lib}: cannot open shared object file: No such file or directory") == (
            "ext-abi-mismatch"
        )


def test_torchs_own_cuda_library_missing_stays_a_broken_install_without_an_id():
    ex = explain_text(
        "ImportError: libtorch_cuda.so: cannot open shared object file: No such file or directory"
    )
    assert not ex.candidates
    assert [m.signature.name for m in ex.notes] == ["libtorch-cuda-import"]
