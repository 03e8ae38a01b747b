"""Provenance commands: ``manifest``, ``lineage``, ``keygen``, ``sign`` and ``verify``."""

from __future__ import annotations

import argparse
import hashlib
import json
import operator
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlward._internal.lazy import lazy_module
from mlward._internal.provenance import KEY_TYPES, default_trust_file
from mlward._internal.provenance.errors import ProvenanceError
from mlward._internal.provenance.hashing import ALGORITHMS, DEFAULT_SHARD_SIZE, HashSpec
from mlward.cli.main import add_cluster_option
from mlward.cli.record import file_uri, record
from mlward.errors import MlwardError

if TYPE_CHECKING:
    from mlward._internal.provenance import chain, dsse, keys, lineage, manifest, oms
else:
    # Loaded on first use, so that other commands do not pay for cryptography at start-up.
    chain, dsse, keys, lineage, manifest, oms = (
        lazy_module(f"mlward._internal.provenance.{name}")
        for name in ("chain", "dsse", "keys", "lineage", "manifest", "oms"))

EXIT_OK, EXIT_CHANGED, EXIT_ERROR = 0, 1, 2


def register(sub: Any) -> None:
    _register_manifest(sub)
    _register_lineage(sub)

    p = sub.add_parser("keygen", help="create a signing key pair (ECDSA P-256 or Ed25519)",
                       description="Write PREFIX.key (private, mode 0600) and PREFIX.pub.")
    p.add_argument("-o", "--output", metavar="PREFIX", type=Path, default=Path("mlward-signing"),
                   help="file name prefix (default: mlward-signing)")
    p.add_argument("--type", choices=KEY_TYPES, default="ecdsa-p256",
                   help="key type (default: ecdsa-p256; OMS signatures need ecdsa-p256)")
    p.add_argument("--trust", metavar="FILE", nargs="?", const="",
                   help="also add the public key to the trust file "
                   "(default: $MLWARD_TRUST or the project's .mlward/trusted_keys.pem)")
    p.add_argument("--force", action="store_true", help="overwrite existing key files")
    p.set_defaults(func=run_keygen)

    p = sub.add_parser("sign", help="sign a manifest or statement (DSSE), or a model folder (OMS)",
                       description="Sign FILE into a DSSE envelope FILE.dsse.json, or with --oms "
                       "sign a model folder into an OpenSSF model signing (OMS v1.0) Sigstore "
                       "bundle MODEL.sig that `model_signing verify key` accepts.")
    p.add_argument("path", metavar="FILE_OR_MODEL", type=Path)
    p.add_argument("-k", "--key", metavar="KEY", type=Path, required=True,
                   help="private key file (from mlward keygen)")
    p.add_argument("--oms", action="store_true", help="write an OMS v1.0 bundle for a model folder")
    p.add_argument("-o", "--output", metavar="SIG", type=Path,
                   help="signature file (default: FILE.dsse.json, or MODEL.sig with --oms)")
    p.set_defaults(func=run_sign)

    p = sub.add_parser(
        "verify", help="verify a signature, or a model's whole chain of provenance",
        description="For a model with a lineage statement: check, in order, the signature on "
        "the statement (and an OMS bundle MODEL.sig when there is one), the model's files, the "
        "statement and every input manifest, and name the first broken link. For an OMS "
        "bundle: check it and the model folder. For any other file: check FILE.dsse.json.",
        epilog="Exit codes: 0 everything verified; 1 a broken link (bad or missing signature, "
        "changed files); 2 usage error or something that could not be read.")
    p.add_argument("path", metavar="MODEL_OR_FILE", type=Path)
    p.add_argument("-s", "--signature", metavar="SIG", type=Path,
                   help="signature file (default: found beside the model or file)")
    _trust_options(p)
    p.add_argument("-f", "--format", choices=("text", "json"), default="text")
    p.set_defaults(func=run_verify)


def _trust_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--key", metavar="PUB", type=Path, action="append",
                   help="accept this public key (repeatable) instead of the trust file")
    p.add_argument("--trust", metavar="FILE", type=Path,
                   help="trust file of accepted public keys "
                   "(default: $MLWARD_TRUST or the project's .mlward/trusted_keys.pem)")


def _register_manifest(sub: Any) -> None:
    p = sub.add_parser("manifest", help="content manifests of datasets and models",
                       description="Record or check every file's size and digest.")
    msub = p.add_subparsers(dest="manifest_command", metavar="COMMAND", required=True)
    c = msub.add_parser("create", help="hash files and folders into a manifest",
                        description="Hash every file under PATH (files, folders, or "
                        "object-storage prefixes s3://BUCKET/PREFIX, gs://…, az://…) into a "
                        "manifest. Symlinks and special files are recorded, never followed. "
                        "With --cluster, large files are hashed in shards across the Dask "
                        "workers and small files in batches: the manifest is the same as a "
                        "local run's.")
    c.add_argument("paths", nargs="+", metavar="PATH")
    c.add_argument("-o", "--output", metavar="FILE", type=Path, required=True,
                   help="manifest file to write")
    _absolute_option(c)
    _hash_options(c)
    add_cluster_option(c)
    c.set_defaults(func=run_manifest_create)
    v = msub.add_parser("verify", help="re-hash and list added, removed, modified, renamed files",
                        description="Re-hash the manifest's roots, found relative to where the "
                        "manifest is now (or PATH in their place), and say where each was "
                        "read. A manifest of schema 1 (absolute paths) needs the PATHs.",
                        epilog="Exit codes: 0 identical; 1 any difference; 2 error.")
    v.add_argument("manifest", metavar="FILE", type=Path)
    v.add_argument("paths", nargs="*", metavar="PATH", type=Path,
                   help="where the manifest's roots are now (default: where they were)")
    v.add_argument("-f", "--format", choices=("text", "json"), default="text")
    v.set_defaults(func=run_manifest_verify)


def _absolute_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--absolute-paths", action="store_true",
                   help="record inputs outside the project (or the manifest's folder) by "
                   "absolute path, marked as such (default: refuse them; inside it, paths "
                   "are always relative, so a clone verifies its own files)")


def _hash_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hash", choices=ALGORITHMS, default="sha256",
                   help="digest algorithm (default: sha256)")
    p.add_argument("--whole-file", action="store_true",
                   help="plain SHA-256 of every file, even large ones (what sha256sum prints); "
                   "slower: one core per file")
    p.add_argument("--shard-size", metavar="BYTES", type=int, default=DEFAULT_SHARD_SIZE,
                   help=f"SHA-256 files larger than this are hashed in shards in parallel "
                   f"(default: {DEFAULT_SHARD_SIZE})")


def _spec(args: argparse.Namespace) -> HashSpec:
    return HashSpec(args.hash, None if args.whole_file else args.shard_size)


def _register_lineage(sub: Any) -> None:
    p = sub.add_parser("lineage", help="record and verify which data and code made a model",
                       description="Lineage statements (in-toto Statement v1, SLSA provenance "
                       "v1 predicate) stored beside the model as MODEL.lineage.json.")
    lsub = p.add_subparsers(dest="lineage_command", metavar="COMMAND", required=True)
    r = lsub.add_parser("record", help="write MODEL.lineage.json for a trained model")
    r.add_argument("--model", metavar="PATH", type=Path, required=True,
                   help="the model file or folder")
    r.add_argument("--data", metavar="MANIFEST_OR_PATH", type=Path, nargs="+", required=True,
                   help="input manifests, or files and folders to hash into new manifests")
    r.add_argument("--code", metavar="DIR", type=Path, help="the training code's folder")
    r.add_argument("--param", metavar="KEY=VALUE", action="append", default=[],
                   help="a training parameter (repeatable)")
    r.add_argument("--run-id", metavar="ID", help="the run's id (default: a new UUID)")
    r.add_argument("-o", "--output", metavar="FILE", type=Path,
                   help="statement file (default: MODEL.lineage.json)")
    _absolute_option(r)
    r.add_argument("--label", metavar="COLUMN",
                   help="label column of tabular inputs (default: [data] label); their data "
                   "snapshots let `lineage verify` show what changed in the rows")
    r.add_argument("--key", metavar="COLUMN",
                   help="key column of tabular inputs (default: [data] key)")
    r.add_argument("--no-data-snapshot", action="store_true",
                   help="do not snapshot tabular inputs (needs the data extra otherwise)")
    _hash_options(r)
    r.set_defaults(func=run_lineage_record)
    v = lsub.add_parser("verify", help="check a model and every input before retraining",
                        description="Check the model's files against its lineage statement, "
                        "re-hash every input and name each one that changed; for a tabular "
                        "input recorded with a data snapshot, show what changed in its rows "
                        "(the `mlward data diff` summary and indicators). A signature "
                        "beside the statement is checked too when trusted keys are given or "
                        "the trust file exists.",
                        epilog="Exit codes: 0 unchanged; 1 anything changed; 2 error.")
    v.add_argument("model", metavar="MODEL", type=Path)
    _trust_options(v)
    v.add_argument("-f", "--format", choices=("text", "json"), default="text")
    v.set_defaults(func=run_lineage_verify)


@contextmanager
def _errors_recorded(args: argparse.Namespace, action: str, resource: str) -> Iterator[None]:
    """A command that fails is recorded too (outcome ``error``), then fails as it would."""
    try:
        yield
    except MlwardError as exc:
        record(args, action, resource, outcome="error", details={"error": exc.diagnostics()})
        raise


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """The cycle collector paused while a manifest is built: an entry per file, none in a
    cycle, which the collector would otherwise scan again and again as they are made (15 ms
    of the 0.33 s a 20,000-file manifest takes) to free nothing. What was made meanwhile is
    then frozen (left out of every later collection): else the first collection after it,
    at the next allocation, would go through all of it once more (8 ms)."""
    import gc

    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.freeze()
            gc.enable()


def run_manifest_create(args: argparse.Namespace) -> int:
    from mlward._internal.sources.remote import OBJECT_SCHEMES, scheme_of
    from mlward.executors import make_executor

    targets = [p if scheme_of(p) in OBJECT_SCHEMES else Path(p) for p in args.paths]
    executor = make_executor(args.settings) if args.settings.cluster else None
    try:
        with (_errors_recorded(args, "manifest.create", file_uri(args.output)),
              _no_cycle_collection()):
            m = manifest.create(targets, _spec(args), manifest_file=args.output,
                                absolute=args.absolute_paths, executor=executor)
            m.write(args.output)
    finally:
        if executor is not None:
            executor.close()
    files = operator.countOf(map(operator.attrgetter("type"), m.entries), "file")
    size = sum(map(operator.attrgetter("size"), m.entries))
    print(f"wrote {args.output}: {files} file(s), {size} bytes, "
          f"root digest sha256:{m.root_digest}")
    for r in m.roots:
        if r.absolute:
            print(f"  root {r.name}: recorded by absolute path {r.path} (outside the project)")
    here = args.output.resolve().parent
    record(args, "manifest.create", file_uri(args.output), outcome="pass",
           digests={"sha256": m.root_digest},
           details={"roots": [r.path if r.remote else file_uri(r.where(here))
                              for r in m.roots], "files": files})
    return EXIT_OK


def run_manifest_verify(args: argparse.Namespace) -> int:
    with (_errors_recorded(args, "manifest.verify", file_uri(args.manifest)),
          _no_cycle_collection()):
        m = manifest.Manifest.load(args.manifest)
        checked = manifest.verify(m, args.paths or None, manifest_file=args.manifest)
    changes = checked.changes
    if args.format == "json":
        print(json.dumps(checked.to_dict(), indent=1))
    else:
        for line in checked.where():
            print(f"root {line}")
        for c in changes:
            print(c)
        print(f"{len(changes)} change(s)" if changes else
              f"identical: {len(m.entries)} entries match {args.manifest}")
    record(args, "manifest.verify", file_uri(args.manifest),
           outcome="fail" if changes else "pass", digests={"sha256": m.root_digest},
           details={"changes": len(changes), "roots": checked.where()})
    return EXIT_CHANGED if changes else EXIT_OK


def run_lineage_record(args: argparse.Namespace) -> int:
    params = lineage.parse_params(args.param)
    data = args.settings.section("data")
    with _errors_recorded(args, "lineage.record", file_uri(args.model)):
        out, statement = lineage.record(
            args.model, args.data, code=args.code, params=params, run_id=args.run_id,
            spec=_spec(args), output=args.output, absolute=args.absolute_paths,
            label=args.label or data.get("label"), key=args.key or data.get("key"),
            snapshots=not args.no_data_snapshot)
    deps = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
    print(f"wrote {out}: {len(statement['subject'])} model file(s), {len(deps)} input(s)")
    for d in deps:
        snapshot = d["annotations"].get("mlward.dataSnapshot")
        print(f"  {d['name']}: manifest {d['annotations']['mlward.manifest']}"
              + (f", data snapshot {snapshot}" if snapshot else ""))
    record(args, "lineage.record", file_uri(args.model), outcome="pass",
           details={"statement": str(out), "inputs": [d["name"] for d in deps]})
    return EXIT_OK


def _trusted(args: argparse.Namespace) -> Mapping[str, keys.PublicKey]:
    """The keys given with --key, else those of the trust file (which must exist)."""
    if args.key:
        loaded = [keys.load_public(p) for p in args.key]
        return {keys.key_id(k): k for k in loaded}
    return keys.load_trusted(args.trust or default_trust_file(args.settings.trust))


def _trusted_if_any(args: argparse.Namespace) -> Mapping[str, keys.PublicKey] | None:
    """Like :func:`_trusted`, but None when no key is given and no trust file exists."""
    trust_file = default_trust_file(args.settings.trust)
    if not args.key and args.trust is None and not trust_file.exists():
        return None
    return _trusted(args)


def run_lineage_verify(args: argparse.Namespace) -> int:
    with _errors_recorded(args, "lineage.verify", file_uri(args.model)):
        result = chain.verify_chain(args.model, trusted=_trusted_if_any(args),
                                    require_signature=False)
    return _report_chain(args, result, "lineage.verify")


def _report_chain(args: argparse.Namespace, result: chain.ChainResult, action: str) -> int:
    if args.format == "json":
        print(json.dumps({"ok": result.ok, "links": [
            {"name": link.name, "ok": link.ok, "detail": link.detail,
             "changes": [c.to_dict() for c in link.changes],
             **({"data_diff": list(link.notes)} if link.notes else {})}
            for link in result.links]},
            indent=1))
    else:
        for link in result.links:
            print(f"{'ok  ' if link.ok else 'FAIL'} {link.name}: {link.detail}")
            for c in link.changes:
                print(f"       {c}")
            for note in link.notes:
                print(f"       data: {note}")
        broken = result.first_broken
        print(f"verified: {_subject(args)}" if broken is None else
              f"NOT verified: the first broken link is the {broken.name}: {broken.detail}")
    broken = result.first_broken
    record(args, action, file_uri(_subject(args)), outcome="pass" if broken is None else "fail",
           details={"links": [[link.name, link.ok] for link in result.links]})
    return EXIT_OK if result.ok else EXIT_CHANGED


def _subject(args: argparse.Namespace) -> Path:
    return Path(getattr(args, "model", None) or args.path)


def run_keygen(args: argparse.Namespace) -> int:
    files = keys.generate(args.output, args.type, force=args.force)
    print(f"private key: {files.private} (keep it secret; mode 0600)")
    print(f"public key:  {files.public} (key id {files.key_id})")
    if args.trust is not None:
        trust = Path(args.trust) if args.trust else default_trust_file(args.settings.trust)
        keys.add_trusted(trust, keys.load_public(files.public))
        print(f"trusted in:  {trust}")
    record(args, "keygen", file_uri(files.public), outcome="pass",
           digests={"sha256": files.key_id},
           details={"type": args.type, "digest": "SHA-256 of the public key PEM (key id)"})
    return EXIT_OK


def run_sign(args: argparse.Namespace) -> int:
    with _errors_recorded(args, "sign", file_uri(args.path)):
        return _sign(args)


def _sign(args: argparse.Namespace) -> int:
    key = keys.load_private(args.key)
    kid = keys.key_id(key.public_key())
    if args.oms:
        out = args.output or chain.oms_signature_path(args.path)
        statement = oms.sign(args.path, key, out)
        print(f"wrote {out}: OMS v1.0 bundle over {len(statement['predicate']['resources'])} "
              f"file(s), key id {kid}")
        digest = statement["subject"][0]["digest"]
    else:
        raw = manifest.read_bounded(args.path, "file to sign")
        payload_type = (dsse.MANIFEST_TYPE if _is_manifest(raw) else dsse.IN_TOTO_TYPE
                        if b'"_type"' in raw[:4096] else "application/octet-stream")
        out = args.output or chain.signature_path(args.path)
        dsse.sign(raw, payload_type, key).write(out)
        print(f"wrote {out}: DSSE envelope ({payload_type}), key id {kid}")
        digest = {"sha256": hashlib.sha256(raw).hexdigest()}
    record(args, "sign", file_uri(args.path), outcome="pass", digests=digest,
           details={"signature": str(out), "keyid": kid, "oms": args.oms})
    return EXIT_OK


def _is_manifest(raw: bytes) -> bool:
    return f'"kind": "{manifest.KIND}"'.encode() in raw[:4096]


def run_verify(args: argparse.Namespace) -> int:
    with _errors_recorded(args, "verify", file_uri(args.path)):
        return _verify(args)


def _verify(args: argparse.Namespace) -> int:
    path: Path = args.path
    if not path.exists():
        raise ProvenanceError(f"{path} does not exist")
    sig = args.signature
    bundle_sig = sig or chain.oms_signature_path(path)
    has_statement = lineage.statement_path(path).exists()
    if bundle_sig.exists() and (sig is not None or not has_statement) and oms.is_bundle(
            manifest.read_json(bundle_sig, "signature")):
        link = chain.verify_oms(path, bundle_sig, _trusted(args))
        return _report_chain(args, chain.ChainResult((link,)), "verify")
    if has_statement:
        result = chain.verify_chain(path, trusted=_trusted(args), signature=sig)
        return _report_chain(args, result, "verify")
    sig = sig or chain.signature_path(path)
    if not sig.exists():
        raise ProvenanceError(f"no signature for {path} (looked for {sig}) and no lineage "
                              "statement beside it")
    trusted = _trusted(args)
    try:
        keyid = chain.verify_file(path, sig, trusted)
    except ProvenanceError as exc:
        link = chain.Link("signature", False, exc.diagnostics())
    else:
        link = chain.Link("signature", True, f"valid, key {keyid[:16]}...")
    return _report_chain(args, chain.ChainResult((link,)), "verify")
