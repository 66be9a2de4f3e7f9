"""Render a recipe as a Dockerfile for the legacy builder (what the Docker SDK drives).

No BuildKit-only syntax (heredocs, ``RUN --mount``, ``# syntax=``). Layers go from the least to
the most often changed: system Python, torch, the recipe's pins, envdoctor itself. torch comes
from the recipe's wheel index and nothing else does (``--index-url`` on that one ``pip install``
only); the later ``pip install`` repeats the torch pin so that no package can swap the build.
The venv is needed because Debian and Ubuntu mark their system Python externally managed.
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
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"  # what update-ca-certificates writes
USER_NAME = "trainer"
USER_UID = 10001
LABEL_PREFIX = "io.envdoctor"
# Source paths copied into the image, relative to the context root (see envdoctor.build.context).
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


def render_dockerfile(recipe: Recipe, ca_certs: Sequence[str] = (), install_torch: bool = True) -> str:
    """The Dockerfile of ``recipe``.

    ``ca_certs`` are file names under ``ca-certificates/`` in the build context: extra CA
    certificates (a TLS-inspecting proxy) installed before anything is downloaded.
    ``install_torch=False`` leaves out torch and the recipe's packages: a small image with
    Python and envdoctor, to check a container setup before a multi-GB build.
    """
    py = f"python{recipe.python}"
    lines = [
        f"# envdoctor {__version__}, recipe {recipe.name}: {recipe.description}",
        f"# Regenerate with: envdoctor build --recipe {recipe.name} --print-dockerfile"
        + ("" if install_torch else " --no-torch"),
        "# Build context: the envdoctor source tree (pyproject.toml, README.md, envdoctor/, ...).",
        f"ARG BASE_IMAGE={recipe.base_image}",
        "FROM ${BASE_IMAGE}",
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
    venv = [f"{py} -m venv {VENV}"]
    if install_torch:
        torch_req = recipe.torch.requirement
        venv.append(f"pip install --no-cache-dir --index-url {recipe.torch.index_url} {_quote(torch_req)}")
        lines.append(_run(venv))
        if recipe.packages:
            pins = " ".join(_quote(p) for p in (torch_req, *recipe.packages))
            lines.append(_run([f"pip install --no-cache-dir {pins}"]))
    else:
        lines.append(_run(venv))
    lines += [
        "",
        f"COPY {' '.join(SOURCE_FILES)} {SOURCE_DIR}/",
        *(f"COPY {p}/ {SOURCE_DIR}/{p}/" for p in SOURCE_PATHS),
        _run(
            [
                f"pip install --no-cache-dir {SOURCE_DIR}",
                f"rm -rf {SOURCE_DIR}",
                f"useradd --create-home --no-log-init --uid {USER_UID} --shell /bin/bash {USER_NAME}",
            ]
        ),
        "",
    ]
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
