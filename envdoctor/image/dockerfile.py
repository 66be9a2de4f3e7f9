"""Render a recipe as a Dockerfile for the legacy builder (what the Docker SDK drives).

Touches: nothing: text in, text out.

No BuildKit-only syntax (heredocs, ``RUN --mount``, ``# syntax=``). Layers go from the least to
the most often changed: system Python, torch, the recipe's pins, envdoctor itself. torch comes
from the recipe's wheel index and nothing else does (``--index-url`` on that one ``pip install``
only); the later ``pip install`` repeats the torch pin so that no package can swap the build.
The venv is needed because Debian and Ubuntu mark their system Python externally managed.

With local wheels (``--wheels``, air-gapped machines) the venv is built in a stage of its own
that copies the wheels in and installs from them (``--find-links``; torch with ``--no-index``
when a wheel of the recipe's build is there); the image copies only ``/opt/venv`` out of it, so
no layer of the image holds the wheels. A ``COPY`` followed by ``rm`` in a later layer would not
shrink the image: the copied files stay in the ``COPY`` layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from envdoctor import __version__

if TYPE_CHECKING:
    from envdoctor.recipes import Recipe

VENV = "/opt/venv"
SOURCE_DIR = "/opt/envdoctor-src"
CERT_DIR = "ca-certificates"  # folder of the build context that holds extra CA certificates
WHEEL_DIR = "wheels"  # folder of the build context that holds local wheels (--wheels)
OWN_WHEEL_DIR = "envdoctor-wheel"  # folder of the build context that holds envdoctor's own wheel
WHEELS_IN_STAGE = "/tmp/wheels"  # where the venv stage sees them
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"  # what update-ca-certificates writes
USER_NAME = "trainer"
USER_UID = 10001
LABEL_PREFIX = "io.envdoctor"
# Source paths copied into the image, relative to the context root (see envdoctor.image.context).
SOURCE_PATHS = ("envdoctor", "reference_model", "recipes")
SOURCE_FILES = ("pyproject.toml", "README.md")


def default_tag(recipe: Recipe, install_torch: bool = True) -> str:
    """``envdoctor/<recipe>:<recipe hash>``: a rebuilt recipe gets a new tag, an unchanged one reuses it."""
    from envdoctor.recipes import recipe_hash

    suffix = "" if install_torch else "-no-torch"
    return f"envdoctor/{recipe.name}{suffix}:{recipe_hash(recipe)}"


def image_labels(recipe: Recipe, install_torch: bool = True) -> dict[str, str]:
    """The labels every image of a recipe carries: which recipe, which revision of it, which envdoctor."""
    from envdoctor.recipes import recipe_hash

    torch = f"{recipe.torch.version}+{recipe.torch.variant}" if install_torch else "none"
    return {
        f"{LABEL_PREFIX}.recipe": recipe.name,
        f"{LABEL_PREFIX}.recipe-hash": recipe_hash(recipe),
        f"{LABEL_PREFIX}.version": __version__,
        f"{LABEL_PREFIX}.torch": torch,
    }


def local_torch_wheel(recipe: Recipe, wheels: Sequence[str]) -> str | None:
    """The file name among ``wheels`` that is the recipe's torch build, or None.

    It must be torch at the recipe's version with the variant as local label (``2.13.0+cpu``:
    how the PyTorch indexes name their builds; an unlabelled wheel could be any CUDA build), for
    the recipe's CPython (``cp311``) on Linux. The CPU architecture is left to pip.
    """
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename
    from packaging.version import Version

    wanted = Version(f"{recipe.torch.version}+{recipe.torch.variant}")
    python_tag = "cp" + recipe.python.replace(".", "")
    for name in sorted(wheels):
        try:
            project, version, _build, tags = parse_wheel_filename(name)
        except InvalidWheelFilename:
            continue
        if (
            project == "torch"
            and version == wanted
            and any(t.interpreter == python_tag and "linux" in t.platform for t in tags)
        ):
            return name
    return None


def render_dockerfile(
    recipe: Recipe,
    ca_certs: Sequence[str] = (),
    install_torch: bool = True,
    wheels: Sequence[str] = (),
    own_wheel: str | None = None,
) -> str:
    """The Dockerfile of ``recipe``.

    ``ca_certs`` are file names under ``ca-certificates/`` in the build context: extra CA
    certificates (a TLS-inspecting proxy) installed before anything is downloaded.
    ``install_torch=False`` leaves out torch and the recipe's packages: a small image with
    Python and envdoctor, to check a container setup before a multi-GB build.
    ``wheels`` are file names under ``wheels/`` in the build context: every ``pip install``
    looks there too, and torch comes from there alone when one of them is the recipe's build.
    ``own_wheel`` is the file name of envdoctor's wheel under ``envdoctor-wheel/`` (an installed
    envdoctor); None means the context holds envdoctor's source tree (a checkout).
    """
    py = f"python{recipe.python}"
    regenerate = " --no-torch" if not install_torch else ""
    regenerate += " --wheels DIR" if wheels else ""
    lines = [
        f"# envdoctor {__version__}, recipe {recipe.name}: {recipe.description}",
        f"# Regenerate with: envdoctor build --recipe {recipe.name} --print-dockerfile{regenerate}",
        "# Build context: "
        + (
            f"envdoctor's wheel ({OWN_WHEEL_DIR}/{own_wheel})."
            if own_wheel
            else "the envdoctor source tree (pyproject.toml, README.md, envdoctor/, ...)."
        ),
        f"ARG BASE_IMAGE={recipe.base_image}",
        "FROM ${BASE_IMAGE}" + (" AS base" if wheels else ""),
        "",
        "ARG DEBIAN_FRONTEND=noninteractive",
    ]
    if ca_certs:
        lines += [
            "# Extra CA certificates (TLS-inspecting proxy), trusted before any download.",
            f"COPY {CERT_DIR}/ /usr/local/share/ca-certificates/",
            _env_block({"PIP_CERT": CA_BUNDLE, "REQUESTS_CA_BUNDLE": CA_BUNDLE, "SSL_CERT_FILE": CA_BUNDLE}),
        ]
    apt = [
        "apt-get update",
        "apt-get install -y --no-install-recommends ca-certificates",
        # Images that ship their own Python (python:3.x) already have it with venv; others get Debian's.
        f'if ! {py} -c "import ensurepip" 2>/dev/null; then '
        f"apt-get install -y --no-install-recommends {py} {py}-venv; fi",
    ]
    if ca_certs:
        apt.append("update-ca-certificates")
    apt.append("rm -rf /var/lib/apt/lists/*")
    lines += [
        "",
        "# System packages follow the base image, which the recipe pins by tag.",
        "# hadolint ignore=DL3008",
        _run(apt),
        "",
        f"ENV VIRTUAL_ENV={VENV} \\\n    PATH={VENV}/bin:$PATH",
    ]
    pip = "pip install --no-cache-dir"
    # Every install but torch from its index looks at the wheels too; that one must not: a wheel
    # of another build there (2.13.0+cu126 for a CPU recipe) would satisfy torch==2.13.0 as well.
    pip_local = f"{pip} --find-links {WHEELS_IN_STAGE}" if wheels else pip
    if wheels:
        lines += [
            "",
            "# The venv is built in a stage of its own: the wheels never reach a layer of the image.",
            "FROM base AS venv",
            f"COPY {WHEEL_DIR}/ {WHEELS_IN_STAGE}/",
        ]
    venv = [f"{py} -m venv {VENV}"]
    if install_torch:
        torch_wheel = local_torch_wheel(recipe, wheels)
        if torch_wheel is None:
            torch_req = recipe.torch.requirement
            venv.append(f"{pip} --index-url {recipe.torch.index_url} {_quote(torch_req)}")
        else:
            # The exact local build, nothing from an index; its dependencies come with the next install.
            torch_req = f"torch=={recipe.torch.version}+{recipe.torch.variant}"
            venv.append(f"{pip_local} --no-index --no-deps {_quote(torch_req)}")
        lines.append(_run(venv))
        if recipe.packages or torch_wheel is not None:
            pins = " ".join(_quote(p) for p in (torch_req, *recipe.packages))
            lines.append(_run([f"{pip_local} {pins}"]))
    else:
        lines.append(_run(venv))
    user = f"useradd --create-home --no-log-init --uid {USER_UID} --shell /bin/bash {USER_NAME}"
    if own_wheel:
        lines += ["", f"COPY {OWN_WHEEL_DIR}/ {SOURCE_DIR}/"]
        install_own = f"{pip_local} {SOURCE_DIR}/{own_wheel}"
    else:
        lines += [
            "",
            f"COPY {' '.join(SOURCE_FILES)} {SOURCE_DIR}/",
            *(f"COPY {p}/ {SOURCE_DIR}/{p}/" for p in SOURCE_PATHS),
        ]
        install_own = f"{pip_local} {SOURCE_DIR}"
    if wheels:
        lines += [
            _run([install_own]),
            "",
            "FROM base",
            f"COPY --from=venv {VENV} {VENV}",
            _run([user]),
            "",
        ]
    else:
        lines += [_run([install_own, f"rm -rf {SOURCE_DIR}", user]), ""]
    if recipe.env:
        lines.append(_env_block(recipe.env))
    labels = image_labels(recipe, install_torch)
    lines += [
        "LABEL " + " \\\n      ".join(f'{k}="{_escape(v)}"' for k, v in labels.items()),
        f"USER {USER_UID}",
        f"WORKDIR /home/{USER_NAME}",
        'CMD ["envdoctor", "check"]',
    ]
    return "\n".join(lines) + "\n"


def _run(commands: list[str]) -> str:
    return "RUN " + " \\\n    && ".join(commands)


def _env_block(env: dict[str, str]) -> str:
    return "ENV " + " \\\n    ".join(f'{k}="{_escape(v)}"' for k, v in env.items())


def _escape(value: str) -> str:
    """Escape a value for a double-quoted Dockerfile word (ENV/LABEL): backslash, quote, dollar."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")


def _quote(spec: str) -> str:
    """A requirement as one double-quoted shell word (``"numpy<2"``); backquotes escaped too."""
    return '"' + _escape(spec).replace("`", "\\`") + '"'
