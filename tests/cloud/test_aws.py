"""Live AWS checks against moto's standalone server: every check has a failing and a
passing resource in one account, built through boto3; the end-to-end case links an MLflow
project to a public bucket holding its checkpoint."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from mlward._internal.cloud import aws
from mlward._internal.cloud.collect import Options
from mlward._internal.cloud.run import cloud_report
from mlward.cli.main import main
from mlward.findings import Report, Severity

from .conftest import Throttle, aws_env, boto, by_rule, json_server, reset_moto, uris_of

ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/training"
TRUSTED = "111111111111"
STRANGER = "999999999999"
IAM = f"arn:aws:iam::{ACCOUNT}:"
BPA_ON = dict.fromkeys(aws.BPA_KEYS, True)


def checkpoint() -> bytes:
    """A PyTorch-style zip checkpoint (data.pkl first), built here: a dict, no code."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("model/data.pkl", b"\x80\x02}q\x00X\x01\x00\x00\x00wq\x01K\x01s.")
        z.writestr("model/version", b"3\n")
    return buf.getvalue()


def safetensors() -> bytes:
    header = b'{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
    return len(header).to_bytes(8, "little") + header + b"\0\0\0\0"


CUSTOMERS = (b"name,email,card,ssn\n"
             b"Ann Lee,ann@corp.io,4111 1111 1111 1111,512-34-6789\n"
             b"Bob Roy,bob@corp.io,5500 0000 0000 0004,623-45-7890\n")


def _policy(bucket: str, principal: Any, condition: dict[str, Any] | None = None,
            action: str = "s3:GetObject") -> str:
    statement: dict[str, Any] = {"Sid": "Read", "Effect": "Allow", "Principal": principal,
                                 "Action": action, "Resource": f"arn:aws:s3:::{bucket}/*"}
    if condition:
        statement["Condition"] = condition
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def build_account(url: str) -> None:
    """The misconfigured (bad-*) and well-configured (good-*) resources of one account."""
    s3 = boto(url, "s3")
    for name in ("bad-public", "bad-policy", "bad-cross", "bad-repl", "bad-cors",
                 "bad-models", "good-logs", "good-private", "good-policy", "good-trusted",
                 "good-repl", "good-cors"):
        s3.create_bucket(Bucket=name)
    s3.create_bucket(Bucket="good-models", ObjectLockEnabledForBucket=True)
    # Public by ACL, holding a model nobody refers to and a dataset with personal data.
    s3.put_bucket_acl(Bucket="bad-public", ACL="public-read")
    s3.put_object(Bucket="bad-public", Key="weights/model.safetensors", Body=safetensors())
    s3.put_object(Bucket="bad-public", Key="data/customers.csv", Body=CUSTOMERS)
    s3.put_object(Bucket="bad-public", Key="README", Body=b"hello")
    # Policies: any principal, without and with a restricting condition.
    s3.put_bucket_policy(Bucket="bad-policy", Policy=_policy("bad-policy", "*"))
    s3.put_bucket_policy(Bucket="good-policy", Policy=_policy(
        "good-policy", "*", {"StringEquals": {"aws:SourceVpce": "vpce-0abc"}}))
    # Cross-account grants and replication: a stranger versus a trusted account.
    s3.put_bucket_policy(Bucket="bad-cross", Policy=_policy(
        "bad-cross", {"AWS": f"arn:aws:iam::{STRANGER}:root"}))
    s3.put_bucket_policy(Bucket="good-trusted", Policy=_policy(
        "good-trusted", {"AWS": f"arn:aws:iam::{TRUSTED}:root"}))
    for bucket, account in (("bad-repl", STRANGER), ("good-repl", TRUSTED)):
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        s3.put_bucket_replication(Bucket=bucket, ReplicationConfiguration={
            "Role": ROLE, "Rules": [{"ID": "r", "Status": "Enabled", "Prefix": "",
                                     "Destination": {"Bucket": "arn:aws:s3:::replica",
                                                     "Account": account}}]})
    s3.put_bucket_cors(Bucket="bad-cors", CORSConfiguration={"CORSRules": [
        {"AllowedMethods": ["GET"], "AllowedOrigins": ["*"]}]})
    s3.put_bucket_cors(Bucket="good-cors", CORSConfiguration={"CORSRules": [
        {"AllowedMethods": ["GET"], "AllowedOrigins": ["https://app.example.com"]}]})
    # Model storage: unversioned, no lock, a website, a world-readable object; versus
    # versioned, locked, private.
    s3.put_object(Bucket="bad-models", Key="fraud/model.tar.gz", Body=checkpoint(),
                  ACL="public-read")
    s3.put_bucket_website(Bucket="bad-models", WebsiteConfiguration={
        "IndexDocument": {"Suffix": "index.html"}})
    s3.put_bucket_versioning(Bucket="good-models",
                             VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket="good-models", Key="fraud/model.pt", Body=checkpoint())
    # A bucket with every protection: encryption, logging, its own Block Public Access.
    s3.put_bucket_acl(Bucket="good-logs", ACL="log-delivery-write")
    for bucket in ("good-private", "good-models"):
        s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=BPA_ON)
        s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [
            {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}]})
        s3.put_bucket_logging(Bucket=bucket, BucketLoggingStatus={
            "LoggingEnabled": {"TargetBucket": "good-logs", "TargetPrefix": f"{bucket}/"}})

    iam = boto(url, "iam")
    iam.create_role(RoleName="bad-trust", AssumeRolePolicyDocument=json.dumps({
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"},
                       "Action": "sts:AssumeRole"}]}))
    iam.create_role(RoleName="training", AssumeRolePolicyDocument=json.dumps({
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"},
                       "Action": "sts:AssumeRole"}]}))
    iam.create_policy(PolicyName="bad-wildcard", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "sagemaker:*", "Resource": "*"}]}))
    iam.create_policy(PolicyName="bad-passrole", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "iam:PassRole", "Resource": "*"}]}))
    iam.put_role_policy(RoleName="training", PolicyName="good-scoped", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["s3:GetObject"],
             "Resource": "arn:aws:s3:::good-models/*"},
            {"Effect": "Allow", "Action": "iam:PassRole", "Resource": "*",
             "Condition": {"StringEquals": {"iam:PassedToService":
                                            "sagemaker.amazonaws.com"}}}]}))

    sm = boto(url, "sagemaker")
    sm.create_notebook_instance(NotebookInstanceName="nb-bad", InstanceType="ml.t3.medium",
                                RoleArn=ROLE, DirectInternetAccess="Enabled",
                                RootAccess="Enabled")
    sm.create_notebook_instance(NotebookInstanceName="nb-good", InstanceType="ml.t3.medium",
                                RoleArn=ROLE, DirectInternetAccess="Disabled",
                                RootAccess="Disabled", SubnetId="subnet-0abc",
                                SecurityGroupIds=["sg-0abc"], KmsKeyId="alias/ml")
    for name, secure in (("tj-bad", False), ("tj-good", True)):
        sm.create_training_job(
            TrainingJobName=name, RoleArn=ROLE,
            AlgorithmSpecification={"TrainingImage": "img", "TrainingInputMode": "File"},
            OutputDataConfig={"S3OutputPath": "s3://good-models/out"},
            ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1,
                            "VolumeSizeInGB": 10},
            StoppingCondition={"MaxRuntimeInSeconds": 3600},
            EnableNetworkIsolation=secure, EnableInterContainerTrafficEncryption=secure)
    sm.create_model(ModelName="model-public", ExecutionRoleArn=ROLE, PrimaryContainer={
        "Image": "img", "ModelDataUrl": "s3://bad-models/fraud/model.tar.gz"})
    sm.create_model(ModelName="model-good", ExecutionRoleArn=ROLE, PrimaryContainer={
        "Image": "img", "ModelDataUrl": "s3://good-models/fraud/model.pt"})
    variants = [{"VariantName": "v", "ModelName": "model-good", "InitialInstanceCount": 1,
                 "InstanceType": "ml.m5.large"}]
    sm.create_endpoint_config(EndpointConfigName="ec-bad", ProductionVariants=variants)
    sm.create_endpoint_config(EndpointConfigName="ec-good", ProductionVariants=variants,
                              KmsKeyId="alias/ml", DataCaptureConfig={
                                  "EnableCapture": True, "InitialSamplingPercentage": 100,
                                  "DestinationS3Uri": "s3://good-logs/capture",
                                  "CaptureOptions": [{"CaptureMode": "Input"}]})
    sm.create_endpoint(EndpointName="ep-bad", EndpointConfigName="ec-bad")
    sm.create_endpoint(EndpointName="ep-good", EndpointConfigName="ec-good")

    for region in ("us-east-1", "eu-west-1"):
        br = boto(url, "bedrock", region)
        job: dict[str, Any] = {
            "jobName": f"job-{region}", "customModelName": f"assistant-{region}",
            "roleArn": ROLE, "baseModelIdentifier": "amazon.titan-text-express-v1",
            "trainingDataConfig": {"s3Uri": "s3://good-models/train.jsonl"},
            "outputDataConfig": {"s3Uri": "s3://good-models/bedrock/"}, "hyperParameters": {}}
        if region == "eu-west-1":  # the well-configured region
            job["customModelKmsKeyId"] = f"arn:aws:kms:{region}:{ACCOUNT}:key/k"
            br.put_model_invocation_logging_configuration(loggingConfig={
                "s3Config": {"bucketName": "good-logs"}})
        br.create_model_customization_job(**job)


def project(tmp_path: Path) -> Path:
    """A project that refers to a bucket that exists and to one nobody owns."""
    root = tmp_path / "project"
    (root / ".dvc").mkdir(parents=True)
    (root / "pyproject.toml").write_text("")
    (root / ".dvc" / "config").write_text(
        "[core]\n    remote = storage\n['remote \"storage\"']\n    url = s3://good-models/dvc\n"
        "['remote \"old\"']\n    url = s3://nobody-owns-this-bucket/dvc\n")
    return root


def no_customer_key(method: str, path: str) -> tuple[int, Any] | None:
    """Bedrock GetCustomModel for a model created without a customer-managed key, as AWS
    documents it (no modelKmsKeyArn). Served locally because moto invents a key for every
    custom model; every other request goes on to moto."""
    if method == "GET" and path.startswith("/custom-models/") and "us-east-1" in path:
        return 200, {"modelArn": f"arn:aws:bedrock:us-east-1:{ACCOUNT}:custom-model/"
                     "assistant-us-east-1", "modelName": "assistant-us-east-1",
                     "jobArn": f"arn:aws:bedrock:us-east-1:{ACCOUNT}:model-customization-job/"
                     "job-us-east-1", "baseModelArn": "arn:aws:bedrock:us-east-1::"
                     "foundation-model/amazon.titan-text-express-v1",
                     "creationTime": "2026-01-01T00:00:00Z"}
    return None


@pytest.fixture(scope="module")
def report(moto_url: str, tmp_path_factory: pytest.TempPathFactory) -> Report:
    with aws_env(), json_server(no_customer_key, forward=moto_url) as front:
        reset_moto(moto_url)
        build_account(moto_url)
        root = project(tmp_path_factory.mktemp("aws"))
        return cloud_report("aws", Options(endpoint_url=front, links=(root,),
                                           regions=("us-east-1", "eu-west-1"),
                                           trusted_accounts=(TRUSTED,)))


def arn(kind: str, name: str, region: str = "us-east-1") -> str:
    return f"arn:aws:sagemaker:{region}:{ACCOUNT}:{kind}/{name}"


# (rule, a location that must have it, a location that must not)
CASES = [
    ("MW800", "s3://bad-public", "s3://good-private"),
    ("MW801", "s3://bad-policy", "s3://good-policy"),
    ("MW803", "s3://bad-public", "s3://good-private"),
    ("MW804", "s3://bad-public", "s3://good-private"),
    ("MW805", "s3://bad-models", "s3://good-models"),
    ("MW806", "s3://bad-models", "s3://good-models"),
    ("MW807", "s3://bad-public", "s3://good-private"),
    ("MW808", "s3://bad-cors", "s3://good-cors"),
    ("MW809", "s3://bad-cross", "s3://good-trusted"),
    ("MW810", "s3://bad-models", "s3://good-models"),
    ("MW811", "s3://bad-repl", "s3://good-repl"),
    ("MW812", "s3://bad-models/fraud/model.tar.gz", "s3://good-models/fraud/model.pt"),
    ("MW815", f"{IAM}policy/bad-wildcard", f"{IAM}role/training"),
    ("MW816", f"{IAM}policy/bad-passrole", f"{IAM}role/training"),
    ("MW817", f"{IAM}role/bad-trust", f"{IAM}role/training"),
    ("MW820", arn("notebook-instance", "nb-bad"), arn("notebook-instance", "nb-good")),
    ("MW821", arn("notebook-instance", "nb-bad"), arn("notebook-instance", "nb-good")),
    ("MW822", arn("notebook-instance", "nb-bad"), arn("notebook-instance", "nb-good")),
    ("MW823", arn("notebook-instance", "nb-bad"), arn("notebook-instance", "nb-good")),
    ("MW824", arn("training-job", "tj-bad"), arn("training-job", "tj-good")),
    ("MW825", arn("training-job", "tj-bad"), arn("training-job", "tj-good")),
    ("MW826", arn("endpoint", "ep-bad"), arn("endpoint", "ep-good")),
    ("MW827", arn("endpoint", "ep-bad"), arn("endpoint", "ep-good")),
    ("MW828", arn("model", "model-public"), arn("model", "model-good")),
    ("MW830", f"arn:aws:bedrock:us-east-1:{ACCOUNT}:model-invocation-logging",
     f"arn:aws:bedrock:eu-west-1:{ACCOUNT}:model-invocation-logging"),
    ("MW831", f"arn:aws:bedrock:us-east-1:{ACCOUNT}:custom-model/assistant-us-east-1",
     f"arn:aws:bedrock:eu-west-1:{ACCOUNT}:custom-model/assistant-eu-west-1"),
    ("MW840", "s3://bad-models/fraud/model.tar.gz", "s3://good-models/fraud/model.pt"),
    ("MW841", "s3://bad-public", "s3://good-models"),
    ("MW842", "s3://nobody-owns-this-bucket", "s3://good-models"),
]


@pytest.mark.parametrize(("rule", "failing", "passing"), CASES, ids=[c[0] for c in CASES])
def test_check_fails_and_passes(report: Report, rule: str, failing: str, passing: str) -> None:
    uris = uris_of(report, rule)
    assert failing in uris, f"{rule} not reported on {failing}: {sorted(uris)}"
    assert passing not in uris


def test_the_run_examined_everything(report: Report) -> None:
    assert not report.inconclusive, report.inconclusive
    assert report.stats["account"] == ACCOUNT
    examined = {e.location.uri for e in report.examined}
    assert {"s3://bad-public", arn("notebook-instance", "nb-good")} <= examined


def test_public_dataset_with_personal_data_is_critical(report: Report) -> None:
    [f] = [f for f in report.findings if f.rule_id == "MW841"]
    assert f.severity is Severity.CRITICAL
    assert "data/customers.csv (csv)" in f.message and "weights/model.safetensors" in f.message
    assert "US SSN" in f.message and "README" not in f.message


def test_model_served_from_a_public_bucket_is_critical(report: Report) -> None:
    [f] = [f for f in report.findings if f.rule_id == "MW828"]
    assert f.severity is Severity.CRITICAL and "s3://bad-models" in f.message


def test_sagemaker_model_data_links_the_public_object(report: Report) -> None:
    """The object is world-readable by its own ACL: a SageMaker model loads it."""
    [f] = [f for f in report.findings if f.rule_id == "MW840"]
    assert f.location.uri == "s3://bad-models/fraud/model.tar.gz"
    assert "model 'model-public'" in f.message and "SageMaker model 'model-public'" in f.message


def test_passrole_names_the_roles_sagemaker_uses(report: Report) -> None:
    [f] = [f for f in report.findings if f.rule_id == "MW816"]
    assert ROLE in f.message


def test_bucket_facts_for_dashboards_and_policies(report: Report) -> None:
    facts = {f.location.uri: f.data for f in report.facts if f.kind == "bucket"}
    public = facts["s3://bad-public"]
    assert public["provider"] == "aws" and public["public"] == ["ACL grants AllUsers READ"]
    assert {a["format"] for a in public["assets"]} == {"safetensors", "csv"}
    assert "DVC remote 'storage'" in [r["what"] for r in facts["s3://good-models"]["references"]]
    assert facts["s3://nobody-owns-this-bucket"]["exists"] is False


def test_only_the_documented_permissions_are_used(report: Report) -> None:
    """Every API operation the run made is in the documented minimal permission set."""
    called = set(report.stats["api_calls_by_operation"])
    assert called <= set(aws.ACTIONS), called - set(aws.ACTIONS)
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for action in set(aws.ACTIONS.values()):
        assert action in readme, f"README's AWS permission set lacks {action}"


def block_account(url: str) -> None:
    """Turn on the account's Block Public Access (through mlward's client setup, which
    keeps S3 Control's account-id host prefix off a local endpoint)."""
    from mlward._internal.cloud.collect import Run

    options = Options(endpoint_url=url)
    aws.Api(options, Run(options)).client("s3control").put_public_access_block(
        AccountId=ACCOUNT, PublicAccessBlockConfiguration=BPA_ON)


def test_account_block_public_access(moto_url: str) -> None:
    """MW802 fails with the account's Block Public Access off and passes with it on; a
    bucket-level gap (MW803) no longer matters once the account blocks everything."""
    with aws_env():
        reset_moto(moto_url)
        boto(moto_url, "s3").create_bucket(Bucket="plain")
        options = Options(endpoint_url=moto_url, services=("s3",))
        off = cloud_report("aws", options)
        block_account(moto_url)
        on = cloud_report("aws", options)
    assert "MW802" in by_rule(off.findings) and "MW803" in by_rule(off.findings)
    assert "MW802" not in by_rule(on.findings) and "MW803" not in by_rule(on.findings)


def test_public_acl_blocked_by_the_account_is_not_exposure(moto_url: str) -> None:
    with aws_env():
        reset_moto(moto_url)
        s3 = boto(moto_url, "s3")
        s3.create_bucket(Bucket="acl-but-blocked")
        s3.put_bucket_acl(Bucket="acl-but-blocked", ACL="public-read")
        s3.put_object(Bucket="acl-but-blocked", Key="m.safetensors", Body=safetensors())
        block_account(moto_url)
        report = cloud_report("aws", Options(endpoint_url=moto_url, services=("s3",)))
    rules = by_rule(report.findings)
    assert rules["MW800"][0].severity is Severity.MEDIUM  # the grant is there, ignored
    assert "MW841" not in rules


def test_end_to_end_mlflow_checkpoint_in_a_public_bucket(moto_url: str, tmp_path: Path) -> None:
    """An MLflow project whose artifact store is an S3 bucket; the bucket is made public;
    a checkpoint is in it: `mlward cloud aws` reports a critical finding that names the
    registered model and the MLflow experiment."""
    with aws_env():
        reset_moto(moto_url)
        s3 = boto(moto_url, "s3")
        s3.create_bucket(Bucket="mlflow-artifacts")
        s3.put_bucket_policy(Bucket="mlflow-artifacts", Policy=_policy("mlflow-artifacts", "*"))
        key = "7/0a1b2c/artifacts/model/data/model.pth"
        s3.put_object(Bucket="mlflow-artifacts", Key=key, Body=checkpoint())
        for i in range(30):  # other artifacts, so that sampling has to choose
            s3.put_object(Bucket="mlflow-artifacts", Key=f"7/run{i}/artifacts/metrics.txt",
                          Body=b"loss 0.1\n")
        root = tmp_path / "project"
        exp = root / "mlruns" / "7"
        (exp / "0a1b2c").mkdir(parents=True)
        (root / "pyproject.toml").write_text("")
        (root / ".gitignore").write_text("mlruns/\n")  # as MLflow projects usually have it
        (exp / "meta.yaml").write_text(
            "artifact_location: s3://mlflow-artifacts/7\nexperiment_id: '7'\n"
            "lifecycle_stage: active\nname: fraud-detection\n")
        (exp / "0a1b2c" / "meta.yaml").write_text(
            "artifact_uri: s3://mlflow-artifacts/7/0a1b2c/artifacts\nexperiment_id: '7'\n"
            "run_id: 0a1b2c\nrun_name: brave-owl\nstatus: 3\n")
        version = root / "mlruns" / "models" / "fraud-clf" / "version-3"
        version.mkdir(parents=True)
        (version / "meta.yaml").write_text(
            "name: fraud-clf\nversion: 3\nrun_id: 0a1b2c\n"
            "source: s3://mlflow-artifacts/7/0a1b2c/artifacts/model\n")
        out = tmp_path / "report.json"
        code = main(["cloud", "aws", "--endpoint-url", moto_url, "--services", "s3",
                     "--links", str(root), "--sample", "5", "-f", "json", "-o", str(out)])
    assert code == 1
    data = json.loads(out.read_text())
    [f] = [f for f in data["findings"] if f["rule_id"] == "MW840"]
    assert f["severity"] == "critical"
    assert f["location"]["uri"] == f"s3://mlflow-artifacts/{key}"
    assert "model 'fraud-clf'" in f["message"]
    assert "MLflow experiment 'fraud-detection'" in f["message"]
    assert "MLflow registered model 'fraud-clf' version 3" in f["message"]
    assert f["details"]["names"] == ["fraud-clf"]


def test_wrong_account_is_refused(moto_url: str) -> None:
    with aws_env():
        code = main(["cloud", "aws", "--endpoint-url", moto_url, "--account", "000000000000",
                     "--services", "s3"])
    assert code == 2


def test_denied_calls_are_inconclusive_and_name_the_permission(moto_url: str) -> None:
    """Bad credentials: the run stops with exit 2 and says why, never a clean report."""
    with aws_env(), pytest.MonkeyPatch.context() as mp:
        reset_moto(moto_url)
        boto(moto_url, "s3").create_bucket(Bucket="some-bucket")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
        mp.setattr(aws, "_NOT_CONFIGURED", frozenset())  # every "not configured" = a failure
        report = cloud_report("aws", Options(endpoint_url=moto_url, services=("s3",)))
    assert report.exit_code(Severity.CRITICAL) == 2
    assert any("s3:GetBucketPolicy" in s.reason and "s3:GetBucketPolicy" in s.reason
               for s in report.inconclusive)


@pytest.mark.parametrize(("retries", "judged"), [(3, True), (2, False)])
def test_throttled_calls_are_retried_then_inconclusive(moto_url: str, retries: int,
                                                       judged: bool) -> None:
    """GetBucketEncryption answers 503 (S3's SlowDown) twice: with 3 attempts the check is
    judged; with 2 the bucket's encryption is inconclusive (exit 2), never clean."""
    throttle = Throttle("?encryption", times=2)
    with aws_env(), json_server(throttle, forward=moto_url) as front:
        reset_moto(moto_url)
        boto(moto_url, "s3").create_bucket(Bucket="busy-bucket")
        report = cloud_report("aws", Options(endpoint_url=front, services=("s3",),
                                             retries=retries))
    assert throttle.seen == min(retries, 3)
    denied = [s for s in report.inconclusive if "GetBucketEncryption" in s.reason
              or "GetEncryptionConfiguration" in s.reason]
    assert (not denied) is judged
    assert (report.exit_code(Severity.CRITICAL) == 2) is not judged


def test_missing_extra_exits_2_with_the_install_hint(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(__import__("sys").modules, "boto3", None)
    assert main(["cloud", "aws"]) == 2
    assert "pip install 'mlward[cloud]'" in capsys.readouterr().err


def test_permissions_command_prints_the_policy(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cloud", "permissions", "aws"]) == 0
    policy = json.loads(capsys.readouterr().out)
    assert set(policy["Statement"][0]["Action"]) == set(aws.ACTIONS.values())
    assert not [a for a in policy["Statement"][0]["Action"]
                if a.split(":")[1].startswith(("Put", "Delete", "Create"))]
