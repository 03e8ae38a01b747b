"""Infrastructure-as-code rules (MW850-MW899): every rule fails on a fixture under
``fixtures/iac/*/bad`` and passes on the fixtures under ``fixtures/iac/*/good``; findings
point to the file and line; a Terraform module and a manifest folder are read as a whole,
with the same findings whichever file, order or executor scans them."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from mlward._internal.pipeline import scan
from mlward.rules import RULES
from mlward.settings import Settings

from .conftest import IAC

INLINE = Settings(executor="inline")

IAC_RULES = sorted(r for r in RULES if "MW850" <= r <= "MW899")


def _findings_by_rule(side: str) -> dict[str, list]:
    report = scan([IAC / lang / side for lang in ("terraform", "cloudformation", "kubernetes")],
                  settings=INLINE._replace(root=str(IAC)))
    assert not report.inconclusive
    out: dict[str, list] = {}
    for f in report.findings:
        out.setdefault(f.rule_id, []).append(f)
    return out


@pytest.fixture(scope="module")
def bad() -> dict[str, list]:
    return _findings_by_rule("bad")


@pytest.fixture(scope="module")
def good() -> dict[str, list]:
    return _findings_by_rule("good")


def test_there_are_at_least_25_iac_rules() -> None:
    assert len(IAC_RULES) >= 25


@pytest.mark.parametrize("rule", IAC_RULES)
def test_rule_fails_on_a_bad_fixture(rule: str, bad: dict[str, list]) -> None:
    assert bad.get(rule), f"{rule} ({RULES[rule].title}) fires on no bad fixture"


@pytest.mark.parametrize("rule", IAC_RULES)
def test_rule_passes_on_the_good_fixtures(rule: str, good: dict[str, list]) -> None:
    assert not good.get(rule), [str(f.location) for f in good[rule]]


def test_each_language_fails_the_concepts_it_can_express(bad: dict[str, list]) -> None:
    """The same concept is one rule in Terraform and CloudFormation."""
    def langs(rule: str) -> set[str]:
        return {f.location.uri.split("/")[0] for f in bad.get(rule, [])}

    for rule in ("MW850", "MW851", "MW852", "MW853", "MW854", "MW855", "MW856", "MW857",
                 "MW858", "MW859", "MW860", "MW861", "MW862", "MW863", "MW864", "MW865",
                 "MW866", "MW867", "MW869"):
        assert langs(rule) == {"terraform", "cloudformation"}, rule


def _at(bad: dict[str, list], rule: str, uri: str) -> list[int | None]:
    return sorted(f.location.line for f in bad[rule] if f.location.uri == uri)


def test_findings_point_to_file_and_line(bad: dict[str, list]) -> None:
    tf, cfn, k8s = "terraform/bad/", "cloudformation/bad/", "kubernetes/bad/"
    assert _at(bad, "MW850", tf + "main.tf") == [11]          # acl = "public-read"
    assert _at(bad, "MW851", tf + "storage.tf") == [4]        # the policy attribute
    assert _at(bad, "MW860", tf + "storage.tf") == [25]       # assume_role_policy
    assert _at(bad, "MW850", cfn + "template.yaml") == [9]    # AccessControl: PublicRead
    assert _at(bad, "MW861", cfn + "notebook.json") == [9]    # "DirectInternetAccess"
    assert _at(bad, "MW880", k8s + "workloads.yaml") == [16]  # the mlflow container
    assert _at(bad, "MW882", k8s + "ray.yaml") == [7, 22]     # serviceType, enableIngress


def test_ml_aware_link_names_the_model_and_the_public_bucket(bad: dict[str, list]) -> None:
    [tf] = [f for f in bad["MW869"] if f.location.uri.startswith("terraform")]
    assert "aws_sagemaker_model.fraud" in tf.message and "acme-ml-models" in tf.message
    assert "ACL public-read" in tf.message and "policy" in tf.message
    [cfn] = [f for f in bad["MW869"] if f.location.uri.startswith("cloudformation")]
    assert "FraudModel" in cfn.message and "ModelBucket" in cfn.message


def test_exposed_ml_tools_name_the_service_that_exposes_them(bad: dict[str, list]) -> None:
    [mlflow] = bad["MW880"]
    assert "LoadBalancer Service mlflow" in mlflow.message
    assert "services.yaml" in mlflow.message  # the Service sits in another file
    [jupyter] = bad["MW881"]
    assert "NodePort Service lab" in jupyter.message  # token disabled through JUPYTER_TOKEN


def test_one_file_alone_gets_the_same_findings_as_in_its_folder(tmp_path: Path) -> None:
    """A file's findings do not depend on whether its folder or only it was named."""
    folder = IAC / "terraform" / "bad"
    whole = scan([folder], settings=INLINE._replace(root=str(IAC)))
    alone = scan([folder / "main.tf"], settings=INLINE._replace(root=str(IAC)))
    expected = {f.fingerprint for f in whole.findings if f.location.uri.endswith("main.tf")}
    assert {f.fingerprint for f in alone.findings
            if f.location.uri.endswith("main.tf")} == expected


def test_worker_processes_agree_with_inline() -> None:
    paths = [IAC / "terraform" / "bad", IAC / "kubernetes" / "bad"]
    inline = scan(paths, settings=INLINE._replace(root=str(IAC)))
    workers = scan(paths, settings=Settings(root=str(IAC), jobs=2))
    assert [f.fingerprint for f in inline.findings] == [f.fingerprint for f in workers.findings]


def test_sniffed_by_content_not_by_name(tmp_path: Path) -> None:
    renamed = tmp_path / "bucket.txt"
    shutil.copy(IAC / "cloudformation" / "bad" / "notebook.json", renamed)
    report = scan([renamed], settings=INLINE)
    assert {"MW861", "MW862"} <= {f.rule_id for f in report.findings}
    assert "cloudformation" in [e.format for e in report.examined]  # (and the secrets pass)


def test_storage_facts_for_declared_buckets() -> None:
    report = scan([IAC / "terraform" / "bad"], settings=INLINE._replace(root=str(IAC)))
    facts = {f.data["resource"]: f.data for f in report.facts if f.kind == "iac-storage"}
    assert facts["aws_s3_bucket.models"]["public"]
    assert facts["google_storage_bucket.datasets"]["public"] == ["member allUsers"]


def test_broken_hcl_is_inconclusive_not_clean(tmp_path: Path) -> None:
    (tmp_path / "main.tf").write_text('resource "aws_s3_bucket" "x" {\n  acl = \n')
    report = scan([tmp_path], settings=INLINE)
    assert report.exit_code(RULES["MW850"].severity) == 2
    assert any("terraform rules not applied" in s.reason for s in report.inconclusive)


def test_helm_templates_are_skipped_not_inconclusive(tmp_path: Path) -> None:
    (tmp_path / "deploy.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Values.name }}\n"
        "spec:\n  replicas: {{ .Values.replicas }}\n  template: {{- toYaml . | nindent 4 }}\n")
    report = scan([tmp_path], settings=INLINE)
    assert not report.inconclusive
    assert any("Helm template" in s.reason for s in report.skipped)


def test_missing_hcl2_is_inconclusive_with_the_install_hint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "hcl2", None)  # import hcl2 now raises ImportError
    (tmp_path / "main.tf").write_text('resource "aws_s3_bucket" "x" {\n  acl = "private"\n}\n')
    report = scan([tmp_path], settings=INLINE)
    [skip] = report.inconclusive
    assert "pip install 'mlward[cloud]'" in skip.reason


def test_hostile_yaml_ends_bounded(tmp_path: Path) -> None:
    """An alias bomb in a template and absurd nesting in a manifest: findings or skips,
    never a traceback or an exponential walk."""
    bomb = ["AWSTemplateFormatVersion: '2010-09-09'", "a0: &a0 [x, x, x, x, x, x, x, x]"]
    bomb += [f"a{i}: &a{i} [*a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}]"
             for i in range(1, 12)]
    bomb += ["Resources:", "  M:", "    Type: AWS::SageMaker::Model", "    Properties:",
             "      PrimaryContainer: *a11"]
    (tmp_path / "bomb.yaml").write_text("\n".join(bomb) + "\n")
    (tmp_path / "deep.yaml").write_text("apiVersion: v1\nkind: Pod\nspec: "
                                        + "[" * 5000 + "]" * 5000 + "\n")
    report = scan([tmp_path], settings=INLINE)
    assert {f.rule_id for f in report.findings} == {"MW867"}  # the model, once
    assert not [f for f in report.findings if f.rule_id == "MW001"]


def test_another_packages_hcl2_module_is_named(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Checkov's bc-python-hcl2 installs a module named hcl2 with another API: the rules are
    reported as not applied, with the reason, never silently skipped."""
    import types

    monkeypatch.setitem(sys.modules, "hcl2", types.ModuleType("hcl2"))
    (tmp_path / "main.tf").write_text('resource "aws_s3_bucket" "x" {\n  acl = "private"\n}\n')
    report = scan([tmp_path], settings=INLINE)
    [skip] = report.inconclusive
    assert "bc-python-hcl2" in skip.reason


def test_python_quoting_a_template_is_still_python(tmp_path: Path) -> None:
    """A module whose docstring quotes CloudFormation stays with the Python scanner."""
    (tmp_path / "stack.py").write_text('"""Builds:\n\nResources:\n  B:\n    Type: AWS::S3::Bucket\n'
                                       '"""\nimport os\nos.system("id")\n')
    report = scan([tmp_path], settings=INLINE)
    assert [e.format for e in report.examined] == ["python"]


@pytest.mark.parametrize("engine", ["cel", "rego"])
def test_gate_policies_read_the_declared_storage(tmp_path: Path, engine: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """``mlward gate`` gives policies a ``storage`` collection (one ``bucket`` per declared
    bucket, container or account, with why it is public); the violation points at the
    declaration, and the input document the run used matches its schema."""
    import json

    import jsonschema

    from mlward._internal.policy.document import input_schema
    from mlward.cli.main import main

    shutil.copytree(IAC / "terraform" / "bad", tmp_path / "infra")
    shutil.copytree(IAC / "terraform" / "good", tmp_path / "infra-ok")
    (tmp_path / "pyproject.toml").write_text("")
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "version: 1\nrules:\n  - id: no-public-storage\n    title: No public bucket\n"
        "    severity: high\n    for: storage\n"
        "    cel: bucket.public.size() > 0 && bucket.type != \"az_account\"\n"
        "    rego: |\n      count(bucket.public) > 0\n      bucket.type != \"az_account\"\n"
        "    remediation: Keep buckets private.\n")
    document = tmp_path / "input.json"
    code = main(["gate", "--executor", "inline", "--check", "scan", "--engine", engine,
                 "--policy", str(policy), "--write-input", str(document), "-f", "json",
                 str(tmp_path)])
    result = json.loads(capsys.readouterr().out)
    assert code == 1
    named = {v["message"].split(": ", 1)[1] for v in result["violations"]}
    assert "aws_s3_bucket.models (infra/main.tf)" in named
    assert "google_storage_bucket.datasets (infra/storage.tf)" in named
    assert not any("infra-ok" in n for n in named)
    doc = json.loads(document.read_text())
    jsonschema.validate(doc, input_schema())
    models = {b["path"]: b for b in doc["storage"] if b["resource"] == "aws_s3_bucket.models"}
    assert models["infra/main.tf"]["line"] and models["infra/main.tf"]["public"]
    assert models["infra-ok/main.tf"]["public"] == []
