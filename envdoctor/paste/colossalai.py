"""Colossal-AI's installation report (``colossalai check -i``, asked for by its bug form).

Tool output: Colossal-AI asked torch and the toolkit on ``CUDA_HOME``::

    #### Installation Report ####
    ------------ Environment ------------
    Colossal-AI version: 0.2.5
    PyTorch version: 1.13.1
    System CUDA version: 9.1
    CUDA version required by PyTorch: 11.7

Releases of 2022 capitalise the keys (``PyTorch Version: 1.10.0``, ``System CUDA Version: 11.8``,
``CUDA Version required by PyTorch: 11.1``). "System CUDA version" is the nvcc of ``CUDA_HOME`` (what
Colossal-AI builds its kernels with), "CUDA version required by PyTorch" is ``torch.version.cuda``:
``N/A`` there means a CPU build of torch, ``N/A`` for the system CUDA means no toolkit was found. The
lines are read only in a paste that holds the report's ``Colossal-AI version:`` line.
"""

from __future__ import annotations

from envdoctor.paste.builder import TOOL, Builder
from envdoctor.paste.text import is_unknown, key_values, short_version, version_in

_MARK = "colossal-ai version"


def parse(lines: list[str], b: Builder) -> None:
    entries = [(key, value) for _, key, value in key_values(lines)]
    if not any(key == _MARK for key, _ in entries):
        return
    for key, value in entries:
        torch = version_in(value) if key == "pytorch version" else None
        if torch:
            b.package("torch", torch, TOOL)
        elif key == "system cuda version" and not is_unknown(value):
            b.put("cuda.nvcc_version", short_version(value), TOOL)
        elif key == "cuda version required by pytorch":
            b.torch_build(None if is_unknown(value) else short_version(value), TOOL)
