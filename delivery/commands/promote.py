"""`delivery promote NAME VERSION --to ENV`: copy by digest, move a channel, audited."""

from __future__ import annotations

import argparse
from pathlib import Path

from delivery import clikit
from delivery.errors import UsageError
from delivery.release import connect
from delivery.release.promote import PromoteRequest, Promotion, promote

EPILOG = """\
examples:
  delivery promote emphysema 0.1.0 --to local                       # into local's first channel (candidate)
  delivery promote emphysema 0.1.0 --to local --digest sha256:4f…   # release CI's sha-… build as 0.1.0
  delivery promote emphysema 0.1.0 --to local --channel stable --from candidate
  delivery promote emphysema 0.1.0 --to production --from staging:stable
  delivery promote emphysema 0.1.0 --to local --force --reason "hotfix INC-42, scan rerun pending"
  delivery promote emphysema 0.1.0 --to local --channel stable --allow-unscanned --reason "INC-7: no DB yet"

The image is copied by digest: the same manifest bytes, never rebuilt or re-compressed (same repository:
one manifest PUT; another repository: cross-repository mount; another registry: each blob streams once).
An existing release tag is never moved to other bytes, not even with --force. Without --force the
image needs a valid signed attestation recording passing tests and scan (the environment's
required_gates), no active freeze, and no yank. A clinical channel (the environment's
clinical_channels, `stable` by default) takes only images whose vulnerabilities were scanned against a
fresh DB; --force does not cover that: --allow-unscanned --reason does (audited). Every promotion is in
the audit log.

exit status: 0 promoted (or already there), 1 refused or failed, 2 usage error
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `promote`."""
    parser = clikit.add_command(sub, "promote", _promote, epilog=EPILOG,
                                help="promote a tested version into an environment's channel, by digest")
    parser.add_argument("name", metavar="NAME", help="biomarker name, e.g. emphysema")
    parser.add_argument("version", metavar="VERSION", help="the exact version to promote, e.g. 1.4.2")
    parser.add_argument("--to", required=True, metavar="ENV", help="target environment (manifests/environments)")
    parser.add_argument("--channel", metavar="CHANNEL", help="channel to move (default: the environment's first)")
    parser.add_argument("--from", dest="from_channel", metavar="[ENV:]CHANNEL",
                        help="require VERSION to be what this channel holds now (e.g. candidate, staging:stable)")
    parser.add_argument("--digest", metavar="sha256:…",
                        help="release this pushed digest (e.g. CI's sha-… build) as VERSION in the target")
    parser.add_argument("--force", action="store_true", help="override failed checks (needs --reason; audited)")
    parser.add_argument("--allow-unscanned", action="store_true",
                        help="promote into a clinical channel although vulnerabilities were not (freshly) scanned "
                             "(needs --reason; audited)")
    parser.add_argument("--reason", default="", metavar="TEXT",
                        help="why (required with --force and --allow-unscanned, audited)")
    parser.add_argument("--public-key", type=Path, metavar="FILE",
                        help="provenance public key (default: $DELIVERY_PUBLIC_KEY, "
                             "else $DELIVERY_HOME/keys/signing.pub)")
    clikit.add_json_flag(parser)


def _promote(args: argparse.Namespace) -> int:
    if args.force and not args.reason.strip():
        raise UsageError("--force needs --reason TEXT", hint="Say why the checks may be skipped; it is audited.")
    if args.allow_unscanned and not args.reason.strip():
        raise UsageError("--allow-unscanned needs --reason TEXT", hint="Say why an unscanned image may serve "
                                                                       "clinical work; it is audited.")
    env = connect.environment(args.to)
    source, target = connect.locations(env, args.name)
    request = PromoteRequest(args.name, args.version, env, args.channel or env.channels[0], args.from_channel,
                             args.force, args.reason.strip(), digest=args.digest,
                             allow_unscanned=args.allow_unscanned)
    verify = connect.verifier(args.public_key or connect.default_public_key())
    result = promote(request, source=source, target=target, store=connect.release_store(),
                     audit=connect.audit_log(), verify=verify)
    if args.json:
        clikit.print_json(_as_json(result))
    else:
        _print(result)
    return 0


def _as_json(result: Promotion) -> dict[str, object]:
    return {
        "reference": result.reference, "version": result.version, "digest": result.digest,
        "environment": result.environment, "channel": result.channel, "previous": result.previous,
        "copy": {"method": result.copy.method, "manifest_bytes": result.copy.manifest_bytes,
                 "blobs_mounted": result.copy.blobs_mounted, "blobs_streamed": result.copy.blobs_streamed},
        "forced_past": list(result.bypassed), "scan": result.scan.as_json() if result.scan else None,
        "provenance": None if result.provenance is None else {
            "key_id": result.provenance.key_id, "commit": result.provenance.commit,
            "source_repo": result.provenance.source_repo, "attestation_digest": result.provenance.attestation_digest},
    }


def _print(result: Promotion) -> None:
    print(f"promoted {result.version} to {result.environment}:{result.channel}")
    print(f"  {result.reference}")
    moved = f"{result.copy.blobs_mounted} blob(s) mounted, {result.copy.blobs_streamed} streamed"
    print(f"  copy: {result.copy.method} ({result.copy.manifest_bytes}-byte manifest; {moved})")
    print(f"  previously: {result.previous or 'nothing'}")
    for problem in result.bypassed:
        print(f"  forced past: {problem}")
    if result.scan is not None:
        print(f"  vulnerabilities: {result.scan.describe()}")
