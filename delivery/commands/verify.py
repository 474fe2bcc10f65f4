"""`delivery verify IMAGE --key PUB`: check an image's signed provenance before trusting it."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

from delivery import clikit
from delivery.config import RegistrySettings, add_registry_flag, registry_settings
from delivery.errors import UsageError
from delivery.provenance import verify_image
from delivery.registry import DIGEST, NotFound


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `verify`."""
    parser = clikit.add_command(
        sub, "verify", _verify,
        help="verify an image's provenance: signature, signer key id and subject digest",
        epilog="examples:\n  delivery verify 127.0.0.1:5000/biomarkers/emphysema:1.4.2 --key signing.pub\n"
               "  delivery verify biomarkers/emphysema@sha256:... --key signing.pub --json\n"
               "exit status: 0 verified, 1 missing or invalid attestation, 2 usage error",
    )
    parser.add_argument("image", metavar="IMAGE", help="[REGISTRY/]REPOSITORY:TAG or [REGISTRY/]REPOSITORY@sha256:…")
    parser.add_argument("--key", type=Path, required=True, help="the signer's public key (PEM)")
    add_registry_flag(parser)
    clikit.add_json_flag(parser)


def split_reference(image: str, settings: RegistrySettings) -> tuple[str, str]:
    """(repository, tag or digest) of IMAGE; a leading registry host must be the configured one."""
    name, sep, digest = image.partition("@")
    if not sep:
        head, colon, tag = name.rpartition(":")
        name, digest = (head, tag) if colon and "/" not in tag else (name, "")
    if name.startswith(settings.host + "/"):
        name = name[len(settings.host) + 1:]
    elif "." in name.split("/")[0] or ":" in name.split("/")[0]:
        raise UsageError(f"{image} is not in the configured registry {settings.host}; pass --registry")
    if not digest:
        raise UsageError(f"{image}: give a tag or a digest")
    return name, digest


def _verify(args: argparse.Namespace) -> int:
    settings = registry_settings(args)
    client = settings.client()
    repository, reference = split_reference(args.image, settings)
    digest = reference if DIGEST.match(reference) else client.head_manifest(repository, reference)
    if digest is None:
        raise NotFound(f"{repository}:{reference} is not in the registry {settings.host}")
    verified = verify_image(client, repository, digest, args.key)
    if args.json:
        clikit.print_json({k: v for k, v in asdict(verified).items() if k != "statement"}
                          | {"verified": True, "scan_verdict": verified.scan_verdict})
    else:
        print(f"verified {settings.host}/{repository}@{digest}\n  signer {verified.key_id}\n"
              f"  source {verified.source_repo} {verified.commit} ({verified.ref})\n  builder {verified.builder_id}\n"
              f"  tests {'passed' if verified.test_passed else 'NOT passed'}, "
              f"scan {verified.scan_verdict}, gpu-test {verified.gpu_test}")
    return 0
