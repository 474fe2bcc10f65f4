"""`delivery base-image build`: a Debian base image made with debootstrap and pushed to the private registry."""

from __future__ import annotations

import argparse
from pathlib import Path

from delivery import clikit
from delivery.baseimage import DEFAULT_MIRROR, BaseImageSpec, build_base_image
from delivery.ci.stages import host_ca_bundle
from delivery.config import add_registry_flag, registry_settings
from delivery.docker import DockerClient
from delivery.errors import ConfigError

EPILOG = """\
examples:
  delivery base-image build --suite bookworm --with python3,python3-venv,ca-certificates \\
      --venv /opt/venv --push 127.0.0.1:5000/base/python:bookworm
  delivery base-image build --suite bookworm --with python3,python3-venv,ca-certificates \\
      --venv /opt/venv --pip numpy,scipy --extra-ca-bundle corp-ca.pem --push REG/base/sci:bookworm

Cached under $DELIVERY_CACHE/base-images by a key of the inputs: a second run
skips debootstrap (tar cached) or everything (the registry holds that key).
No public registry is needed: this is how an air-gapped site mirrors its bases.
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `base-image build`."""
    group = sub.add_parser("base-image", help="build Debian base images without any public registry")
    inner = group.add_subparsers(title="commands", metavar="COMMAND")
    build = clikit.add_command(inner, "build", _build, epilog=EPILOG,
                               help="debootstrap a minimal root, import it as an image, push it")
    build.add_argument("--suite", default="bookworm", help="Debian suite (default: bookworm)")
    build.add_argument("--with", dest="packages", default="ca-certificates",
                       help="comma-separated Debian packages to include (default: ca-certificates)")
    build.add_argument("--venv", help="create a Python venv at this path, first on PATH (needs python3-venv)")
    build.add_argument("--pip", default="", help="comma-separated pip requirements installed into --venv")
    build.add_argument("--extra-ca-bundle", type=Path,
                       help="CA bundle pip trusts during --pip (default: the host's); not left in the image")
    build.add_argument("--mirror", default=DEFAULT_MIRROR, help=f"Debian mirror (default: {DEFAULT_MIRROR})")
    build.add_argument("--push", required=True, metavar="REGISTRY/REPOSITORY:TAG", help="where the image goes")
    add_registry_flag(build)
    clikit.add_json_flag(build)


def _build(args: argparse.Namespace) -> int:
    packages = tuple(sorted({p.strip() for p in args.packages.split(",") if p.strip()}))
    pip = tuple(p.strip() for p in args.pip.split(",") if p.strip())
    if pip and not args.venv:
        raise ConfigError("--pip needs --venv")
    spec = BaseImageSpec(args.suite, packages, args.venv, pip, args.mirror)
    ca = args.extra_ca_bundle.read_bytes() if args.extra_ca_bundle else host_ca_bundle()
    settings = registry_settings(args)
    result = build_base_image(spec, args.push, DockerClient(), settings, ca_bundle=ca,
                              progress=lambda line: print(line) if not args.json else None)
    if args.json:
        clikit.print_json({"reference": result.reference, "digest": result.digest, "key": result.key,
                           "steps": list(result.steps)})
    else:
        print(f"{result.reference}@{result.digest} (key {result.key}; {', '.join(result.steps)})")
    return 0
