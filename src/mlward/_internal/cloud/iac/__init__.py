"""Infrastructure as code, checked before deployment: Terraform, CloudFormation, Kubernetes.

:class:`IacScanner` recognises the three by content (HCL blocks, a template's
``AWSTemplateFormatVersion`` or ``AWS::`` resource types, a manifest's ``apiVersion`` and
``kind``) and reports MW85x-MW89x findings at the file and line that cause them. Terraform
modules and manifest folders are read as a whole (a bucket's policy may sit in another file
than the bucket), and each file reports what it declares, so every file of a folder gets the
same findings whichever order, process or command scans it.

This module stays light: the parsers load when a file needs them.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlward._internal.scanners.interface import ScanContext, Scanner
from mlward._internal.scanners.secrets.text import looks_like_text
from mlward._internal.sources import Source
from mlward.errors import MissingExtra
from mlward.findings import Finding, Location

if TYPE_CHECKING:
    from mlward._internal.cloud.iac.model import Decl

MAX_IAC_BYTES = 4 << 20
MAX_FOLDER_FILES = 500
_HCL = re.compile(rb'^\s*(resource|data|module|provider|terraform|variable|output|locals)'
                  rb'(\s+"[^"\n]*")*\s*\{', re.M)
_K8S_API = re.compile(rb'^\s*"?apiVersion"?\s*:', re.M)
_K8S_KIND = re.compile(rb'^\s*"?kind"?\s*:', re.M)
_CODE_SUFFIXES = (".py", ".pyw", ".ipy", ".ipynb")
_CFN = re.compile(rb'AWSTemplateFormatVersion|^\s*"?Type"?\s*:\s*"?AWS::', re.M)


def language(head: bytes) -> str | None:
    """``terraform``, ``cloudformation`` or ``kubernetes`` from a file's first bytes."""
    if not looks_like_text(head):
        return None
    if _CFN.search(head):
        return "cloudformation"
    if _K8S_API.search(head) and _K8S_KIND.search(head):
        return "kubernetes"
    if _HCL.search(head):
        return "terraform"
    return None


class IacScanner(Scanner):
    """Terraform, CloudFormation and Kubernetes files (MW850-MW899)."""

    name = "iac"
    # Supplementary: a YAML or JSON file is also a config (encoded payloads, templates) and
    # a manifest is also an ML-tool config (MW6xx); those scanners claim it first and this
    # one runs after them. A .tf file, or a template under another name, it claims itself.
    priority = 885
    supplementary = True

    def sniff(self, source: Source) -> bool:
        if source.size is not None and source.size > MAX_IAC_BYTES:
            return False
        if source.name.lower().endswith(_CODE_SUFFIXES) or source.head(2) == b"#!":
            return False  # code and notebooks may quote a template; they are not one
        lang = language(source.head())
        if lang is not None:
            source.sniffed["iac"] = lang
        return lang is not None

    def scan(self, source: Source, ctx: ScanContext) -> None:
        lang = str(source.sniffed.get("iac") or language(source.head()))
        ctx.examined(source.location, lang)
        with source.open() as f:
            text = f.read(MAX_IAC_BYTES).decode("utf-8", "replace")
        try:
            result = check_file(lang, source.location.uri, text, source.fs_path)
        except MissingExtra as exc:
            ctx.skip(source.location, f"{lang} rules not applied: {exc}", inconclusive=True)
            return
        if isinstance(result, str):
            helm = lang == "kubernetes" and "{{" in text
            ctx.skip(source.location, "Helm template (rendered manifests are checked, not "
                     "templates)" if helm else f"{lang} rules not applied: {result}",
                     inconclusive=not helm)
            return
        findings, facts = result
        for finding in findings:
            ctx.add(finding)
        for loc, data in facts:
            ctx.fact(loc, "iac-storage", **data)


Result = tuple[list[Finding], list[tuple[Location, dict[str, Any]]]] | str
"""Findings and storage facts of one file, or why it could not be read."""


def check_file(lang: str, uri: str, text: str, path: Path | None) -> Result:
    """Findings (and facts about declared storage) of one IaC file; the folder it sits in
    gives the context. A string when the file cannot be parsed."""
    if lang == "kubernetes":
        return _kubernetes(uri, text, path)
    if lang == "cloudformation":
        from mlward._internal.cloud.iac import cloudformation

        docs = _yaml(text)
        if isinstance(docs, str):
            return docs
        template = next((d for d in docs if cloudformation.is_template(d)), None)
        if template is None:
            return [], []
        return _judge(cloudformation.declarations(template, uri), uri)
    return _terraform(uri, text, path)


def _yaml(text: str) -> list[Any] | str:
    import yaml

    from mlward._internal.cloud.iac.yamlines import load_all

    try:
        return load_all(text)
    except (yaml.YAMLError, RecursionError, ValueError) as exc:
        return f"not valid YAML or JSON ({type(exc).__name__})"


def _judge(decls: list[Decl], uri: str) -> Result:
    """The findings located in ``uri``, and a fact per storage resource it declares."""
    from mlward._internal.cloud.iac.model import evaluate, public_reasons

    findings = [f for f in evaluate(decls) if f.location.uri == uri]
    facts = [(d.where, {"resource": d.ref, "type": d.kind, "name": d.get("name"),
                        "public": public_reasons(d)})
             for d in decls if d.where.uri == uri
             and d.kind in ("bucket", "gcs_bucket", "az_container", "az_account")]
    return findings, facts


def _siblings(uri: str, path: Path | None, suffixes: tuple[str, ...]) -> tuple[
        tuple[str, str, int, int], ...]:
    """(uri, path, size, mtime) of the folder's files with these suffixes, this one first."""
    if path is None:
        return ()
    folder = os.path.dirname(uri)  # noqa: PTH120 (a URI, not a path)
    out = []
    try:
        with os.scandir(path.parent) as listing:
            entries = sorted((e for e in listing if e.name.lower().endswith(suffixes)
                              and e.is_file(follow_symlinks=False)), key=lambda e: e.name)
    except OSError:
        return ()
    for e in entries[:MAX_FOLDER_FILES]:
        st = e.stat(follow_symlinks=False)
        if st.st_size <= MAX_IAC_BYTES and e.name != path.name:
            out.append((f"{folder}/{e.name}" if folder else e.name, e.path, st.st_size,
                        st.st_mtime_ns))
    return tuple(out)


def _read(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return f.read(MAX_IAC_BYTES).decode("utf-8", "replace")
    except OSError:
        return None


def _terraform(uri: str, text: str, path: Path | None) -> Result:
    try:
        import hcl2
    except ImportError:
        raise MissingExtra("python-hcl2", "cloud") from None
    if not hasattr(hcl2, "parses"):
        return ("the installed hcl2 module is not python-hcl2 8 (Checkov's bc-python-hcl2 "
                "installs a module of the same name: keep them in separate environments)")
    from mlward._internal.cloud.iac import terraform

    try:
        blocks = terraform.parse(text, uri)
    except ValueError as exc:
        return str(exc)
    others = _module_blocks(_siblings(uri, path, (".tf",)))
    return _judge(terraform.declarations([*blocks, *others]), uri)


@lru_cache(maxsize=16)
def _module_blocks(files: tuple[tuple[str, str, int, int], ...]) -> list[Any]:
    """The blocks of the other files of a module (cached: each file of a folder asks)."""
    from mlward._internal.cloud.iac import terraform

    blocks = []
    for uri, path, _, _ in files:
        text = _read(path)
        if text is None:
            continue
        try:
            blocks += terraform.parse(text, uri)
        except ValueError:
            continue  # reported when that file itself is scanned
    return blocks


def _kubernetes(uri: str, text: str, path: Path | None) -> Result:
    from mlward._internal.cloud.iac import kubernetes

    docs = _yaml(text)
    if isinstance(docs, str):
        return docs
    own = [(uri, d) for d in docs if isinstance(d, dict)]
    everything = own + _folder_manifests(_siblings(uri, path, (".yaml", ".yml", ".json")))
    return [f for f in kubernetes.findings(everything) if f.location.uri == uri], []


@lru_cache(maxsize=16)
def _folder_manifests(files: tuple[tuple[str, str, int, int], ...]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for uri, path, _, _ in files:
        text = _read(path)
        if text is None or language(text[:4096].encode()) != "kubernetes":
            continue
        docs = _yaml(text)
        if not isinstance(docs, str):
            out += [(uri, d) for d in docs if isinstance(d, dict)]
    return out
