"""Environment reports pasted as a pretty-printed Python dict: OpenCompass's issue form (MMEngine's
collect_env through pprint) gives every key as a quoted string and long values as continuation lines."""

from __future__ import annotations

from envdoctor.explain import rank
from envdoctor.findings import Severity
from envdoctor.paste import facts_from_report, report_lines

OPENCOMPASS = """### Environment

{'CUDA available': True,
 'CUDA_HOME': '/usr/local/cuda',
 'GCC': 'gcc (Ubuntu 11.3.0-1ubuntu1~22.04) 11.3.0',
 'GPU 0,1,2,3': 'NVIDIA A800 80GB PCIe',
 'MMEngine': '0.10.6',
 'MUSA available': False,
 'NVCC': 'Cuda compilation tools, release 12.1, V12.1.105',
 'OpenCV': '4.11.0',
 'PyTorch': '2.5.1+cu121',
 'PyTorch compiling details': 'PyTorch built with:\\n'
                              '  - GCC 9.3\\n'
                              '  - C++ Version: 201703\\n'
                              '  - CUDA Runtime 12.1\\n'
                              '  - NVCC architecture flags: -gencode;arch=compute_80,code=sm_80;-gencode;arch=compute_90,code=sm_90\\n'
                              '  - CuDNN 90.1  (built against CUDA 12.4)\\n',
 'TorchVision': '0.20.1+cu121',
 'numpy_random_seed': 2147483648,
 'opencompass': '0.4.2+'}
"""


def test_opencompass_environment_dict_is_read_as_tool_output():
    facts = facts_from_report(OPENCOMPASS)
    assert facts.torch.version == "2.5.1+cu121" and facts.torch.cuda == "12.1"
    assert [g.name for g in facts.nvidia.gpus] == ["NVIDIA A800 80GB PCIe"] * 4
    assert facts.torch.cuda_available is True and facts.cuda.nvcc_version == "12.1"
    assert "torch.version" not in facts.stated and "nvidia.gpus" not in facts.stated
    assert not [d for d in rank(facts) if d.finding.severity is Severity.ERROR]


def test_dict_entries_and_continuation_strings_become_key_value_lines():
    lines = [line.strip() for line in report_lines(OPENCOMPASS)]
    assert "CUDA available: True" in lines and "GPU 0,1,2,3: NVIDIA A800 80GB PCIe" in lines
    assert "PyTorch compiling details: PyTorch built with:" in lines and "- CUDA Runtime 12.1" in lines
    # a line with several entries (a config dumped on one line) stays as it was
    one_line = "{'bf16': True, 'fp16': False}"
    assert report_lines(one_line) == [one_line]
