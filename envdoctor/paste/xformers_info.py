"""``python -m xformers.info``: the report xFormers' issue form and its import warning ask for.

Tool output: torch itself answered. The first line names the xFormers release, then one
``name: status`` line per operator and setting, the name padded to 40 columns::

    xFormers 0.0.35+42fc265.d20260623
    memory_efficient_attention.cutlassF-pt:            available
    pytorch.version:                                   2.12.1+cu130
    pytorch.cuda:                                      available
    gpu.compute_capability:                            12.0
    gpu.name:                                          NVIDIA GeForce RTX 5070

``pytorch.cuda`` is ``not available`` (and no ``gpu.*`` lines follow) when torch sees no GPU. The
xFormers release and torch's version together let the companion table say whether the two were built
for each other, without the import warning.
"""

from __future__ import annotations

import re

from envdoctor.paste.builder import TOOL, Builder
from envdoctor.paste.text import version_in

_RELEASE = re.compile(r"^\s*xFormers (?P<version>\d+\.\d+\.\d+\S*)\s*$")
_ENTRY = re.compile(
    r"^\s*(?P<key>pytorch\.version|pytorch\.cuda|gpu\.compute_capability|gpu\.name):\s+(?P<value>\S.*?)\s*$"
)
_CAPABILITY = re.compile(r"^\d+\.\d+$")


def parse(lines: list[str], b: Builder) -> None:
    name = capability = None
    for line in lines:
        release = _RELEASE.match(line)
        if release:
            b.package("xformers", release.group("version"), TOOL)
            continue
        entry = _ENTRY.match(line)
        if entry is None:
            continue
        key, value = entry.group("key"), entry.group("value")
        if key == "pytorch.version":
            version = version_in(value)
            if version:
                b.package("torch", version, TOOL)
        elif key == "pytorch.cuda" and value in ("available", "not available"):
            b.put("torch.cuda_available", value == "available", TOOL)
        elif key == "gpu.compute_capability" and _CAPABILITY.match(value):
            capability = value
        elif key == "gpu.name":
            name = value
    if name:
        b.gpu(None, name, capability)
