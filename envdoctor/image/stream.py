"""Run a build through the SDK's low-level streaming API and make sense of the stream.

Touches: the Docker engine: builds one image under the tag and removes the untagged images the build
left (failed steps' layers, finished stages, the image the tag named before).

``client.api.build(decode=True)`` yields chunks as the legacy builder writes them:
``{"stream": "Step 3/6 : RUN ..."}``, the step's output (stderr lines arrive as ``stream`` too,
wrapped in ANSI colour codes), `` ---> <layer id>`` and, on success, ``{"aux": {"ID": ...}}``.
A failing RUN does not raise: the last chunk is an ``errorDetail`` with the exit ``code``; a
missing base image is an ``errorDetail`` without a code at the ``FROM`` step; a Dockerfile the
engine cannot parse raises ``APIError`` 400 before any step. A failed build leaves the layers of
its successful steps behind as untagged images: their ids are recorded from the stream and
removed. So does a successful multi-stage build: the last image of every stage but the final one
stays as an untagged image (with the venv stage of ``--wheels``, the layer holding the wheels);
it is removed too.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
STEP_RE = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
LAYER_RE = re.compile(r"^ ---> ([0-9a-f]{12,64})$")
TAIL_LINES = 30
HANG_UP_WAIT = 30.0  # seconds an interrupted build may take to stop before its layers are left behind


@dataclass
class BuildEvent:
    """One thing the build reported: a new step, or a line of a step's output."""

    kind: str  # "step" or "output"
    step: int
    total: int
    text: str


@dataclass
class BuildFailure:
    """Why a build stopped."""

    kind: str  # "step-failed" (RUN exited non-zero), "base-image", "step-error", "rejected"
    message: str  # the engine's message, one line
    step: int | None = None
    instruction: str | None = None
    exit_code: int | None = None
    log_tail: list[str] = field(default_factory=list)


@dataclass
class BuildResult:
    image_id: str | None = None
    tag: str | None = None
    steps: list[str] = field(default_factory=list)  # "RUN apt-get update ...", in order
    layers: list[str] = field(default_factory=list)  # layer ids from the stream, base image first
    stage_ends: list[str] = field(default_factory=list)  # last layer of each stage before a later FROM
    failure: BuildFailure | None = None
    # Untagged images removed: the layers of a failed build, or the image the tag named before.
    removed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failure is None and self.image_id is not None


def build_image(
    client: Any,
    context: BinaryIO,
    tag: str,
    *,
    buildargs: dict[str, str] | None = None,
    network_mode: str = "host",
    on_event: Callable[[BuildEvent], None] | None = None,
) -> BuildResult:
    """Build ``context`` (a tar with a Dockerfile) as ``tag``; never raises for a failed step.

    Raises ``docker.errors.APIError`` only when the engine rejects the request itself (the
    caller maps it to a one-line error); everything that happens during the steps is in the
    result. After a failure, untagged layers this build produced are removed.
    """
    import docker

    result = BuildResult(tag=tag)
    parser = _StreamParser(result, on_event)
    previous = _image_id(client, tag)
    try:
        chunks = client.api.build(
            fileobj=context,
            custom_context=True,
            tag=tag,
            buildargs=buildargs or {},
            decode=True,
            rm=True,
            forcerm=True,
            pull=False,
            network_mode=network_mode,
        )
        for chunk in chunks:
            parser.feed(chunk)
    except docker.errors.APIError as exc:
        if exc.status_code == 400:
            result.failure = BuildFailure(kind="rejected", message=_one_line(exc.explanation or str(exc)))
            return result
        raise
    except BaseException:  # Ctrl-C, a dropped connection: remove what the finished steps built
        # urllib3 has closed the connection on the way out, so the engine cancels the running step.
        remove_dangling_layers(client, result.layers[1:], wait=HANG_UP_WAIT)
        raise
    parser.finish()
    if result.failure is None and result.image_id is None:
        result.failure = BuildFailure(kind="step-error", message="the build stream ended without an image id")
    if result.failure is not None:
        result.removed = remove_dangling_layers(client, result.layers[1:])
        return result
    # Earlier stages' last images, and the image the tag named before (if the tag moved to the new
    # one) are dangling now unless another image is built on them or tagged elsewhere.
    moved = [previous] if previous is not None and previous != result.image_id else []
    result.removed = remove_dangling_layers(client, [*moved, *result.stage_ends])
    return result


def _image_id(client: Any, reference: str) -> str | None:
    import docker

    try:
        return client.images.get(reference).id
    except docker.errors.ImageNotFound:
        return None


def remove_dangling_layers(client: Any, layer_ids: list[str], wait: float = 0.0) -> list[str]:
    """Remove the untagged images among ``layer_ids``, newest first; return the ids removed.

    Tagged images (the base image) and layers other images build on (cached steps of an earlier
    build: the engine answers 409) are left alone. A layer a container still uses (the step an
    interrupted build was running, until the engine has removed its container) is tried again for
    up to ``wait`` seconds.
    """
    import docker

    deadline = time.monotonic() + wait
    removed = []
    for layer in reversed(layer_ids):
        while True:
            try:
                if not client.images.get(layer).tags:
                    client.images.remove(layer, noprune=False)
                    removed.append(layer)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                if exc.status_code != 409:
                    raise
                if "container" in str(exc.explanation) and time.monotonic() < deadline:
                    time.sleep(0.2)
                    continue
            break
    return removed


class _StreamParser:
    """Turns decoded chunks into events, step/layer bookkeeping and a failure description."""

    def __init__(self, result: BuildResult, on_event: Callable[[BuildEvent], None] | None) -> None:
        self.result = result
        self.on_event = on_event or (lambda event: None)
        self.step = 0
        self.total = 0
        self.partial = ""
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)

    def feed(self, chunk: dict[str, Any]) -> None:
        if "stream" in chunk:
            self.partial += ANSI_RE.sub("", str(chunk["stream"]))
            *lines, self.partial = self.partial.split("\n")
            for line in lines:
                self._line(line.rstrip("\r"))
        if "aux" in chunk and isinstance(chunk["aux"], dict) and "ID" in chunk["aux"]:
            self.result.image_id = chunk["aux"]["ID"]
        if "errorDetail" in chunk or "error" in chunk:
            self.finish()
            detail = chunk.get("errorDetail") or {}
            message = _one_line(detail.get("message") or chunk.get("error") or "unknown build error")
            code = detail.get("code")
            instruction = self.result.steps[-1] if self.result.steps else None
            if code is not None:
                kind = "step-failed"
            elif instruction is not None and instruction.upper().startswith("FROM"):
                kind = "base-image"
            else:
                kind = "step-error"
            self.result.failure = BuildFailure(
                kind=kind,
                message=message,
                step=self.step or None,
                instruction=instruction,
                exit_code=code,
                log_tail=list(self.tail),
            )

    def finish(self) -> None:
        if self.partial:
            self._line(self.partial)
            self.partial = ""

    def _line(self, line: str) -> None:
        step = STEP_RE.match(line)
        if step:
            if step.group(3).upper().startswith("FROM ") and self.result.layers:
                self.result.stage_ends.append(self.result.layers[-1])
            self.step, self.total = int(step.group(1)), int(step.group(2))
            self.result.steps.append(step.group(3))
            self.tail.clear()
            self.on_event(BuildEvent("step", self.step, self.total, step.group(3)))
            return
        layer = LAYER_RE.match(line)
        if layer:
            self.result.layers.append(layer.group(1))
            return
        if (
            line.startswith((" ---> ", "Removing intermediate container", "Successfully "))
            or not line.strip()
        ):
            return
        self.tail.append(line)
        self.on_event(BuildEvent("output", self.step, self.total, line))


def _one_line(text: str) -> str:
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    return " ".join(lines) if lines else str(text)
