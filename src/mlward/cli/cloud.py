"""``mlward cloud aws|gcp|azure``: live, read-only checks of a cloud account, linked to the
project's ML assets; ``mlward cloud permissions PROVIDER``: the minimal permission set."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from mlward.cli.main import positive_int
from mlward.cli.scan import add_report_options, emit
from mlward.errors import UsageError

_EPILOG = ("Read-only: every call lists, gets or describes, and objects are only ever read "
           "with a ranged GET of their first bytes. Exit codes: 0 nothing at or above "
           "--fail-on; 1 findings at or above it; 2 usage error, missing extra "
           "(pip install 'mlward[cloud]') or something that could not be examined (a denied "
           "call: the report names the permission).")


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "cloud", help="check cloud storage and ML services live (AWS, Google Cloud, Azure), "
        "linked to the project's models and datasets",
        description="Live, read-only checks of buckets, IAM and ML services, joined to what "
        "the project uses: a public bucket holding a model that an MLflow experiment, a DVC "
        "remote, a SageMaker model or a lineage record points to is critical.")
    providers = p.add_subparsers(dest="provider", metavar="PROVIDER", required=True)

    aws = providers.add_parser(
        "aws", help="S3 (or an S3-compatible store), IAM, SageMaker, Bedrock", epilog=_EPILOG,
        description="Credentials: boto3's chain (--profile, AWS_* environment, SSO, instance "
        "or task role).")
    aws.add_argument("--profile", help="AWS profile (default: the environment's)")
    aws.add_argument("--account", metavar="ID",
                     help="expected account id: refuse to run with another account's keys")
    aws.add_argument("--region", action="append", metavar="REGION", dest="regions",
                     help="region for SageMaker and Bedrock (repeatable; default: the "
                     "profile's region, else us-east-1)")
    aws.add_argument("--endpoint-url", metavar="URL",
                     help="an S3-compatible endpoint (MinIO, Ceph) or a local test server; "
                     "with MinIO use --services s3")
    aws.add_argument("--trusted-account", action="append", metavar="ID", dest="trusted",
                     help="an account outside the organisation that may be granted access "
                     "or receive replicas (repeatable)")
    aws.set_defaults(services_known="s3,iam,sagemaker,bedrock")

    gcp = providers.add_parser(
        "gcp", help="Cloud Storage and Vertex AI Workbench", epilog=_EPILOG,
        description="Credentials: Application Default Credentials (`gcloud auth "
        "application-default login`, GOOGLE_APPLICATION_CREDENTIALS, the metadata server).")
    gcp.add_argument("--project", help="project id (default: the credentials' project)")
    gcp.add_argument("--endpoint-url", metavar="URL",
                     help="another Cloud Storage JSON API endpoint (an emulator)")
    gcp.add_argument("--notebooks-endpoint", metavar="URL",
                     help="another Notebooks API endpoint (default: "
                     "https://notebooks.googleapis.com)")
    gcp.set_defaults(services_known="storage,workbench")

    azure = providers.add_parser(
        "azure", help="Blob Storage containers and storage accounts; SAS tokens in code",
        epilog=_EPILOG,
        description="Credentials: a connection string read from an environment variable, or "
        "--account-url with DefaultAzureCredential (environment, managed identity, Azure "
        "CLI login); --subscription adds storage account properties from Azure Resource "
        "Manager.")
    azure.add_argument("--connection-string-env", metavar="VAR",
                       help="environment variable holding a connection string (default: "
                       "AZURE_STORAGE_CONNECTION_STRING when set; never pass a key on the "
                       "command line)")
    azure.add_argument("--account-url", metavar="URL",
                       help="https://ACCOUNT.blob.core.windows.net")
    azure.add_argument("--subscription", metavar="ID",
                       help="subscription whose storage accounts to read")
    azure.add_argument("--management-endpoint", metavar="URL",
                       help="another Azure Resource Manager endpoint (sovereign clouds)")
    azure.set_defaults(services_known="storage,accounts,sas")

    for q in (aws, gcp, azure):
        q.add_argument("--bucket", action="append", metavar="NAME", dest="buckets",
                       help="examine only this bucket or container (repeatable; default: "
                       "all the credentials can list, plus those the project refers to)")
        q.add_argument("--links", action="append", metavar="PATH", type=Path,
                       help="project folder whose MLflow runs, DVC remotes, lineage records, "
                       "BOMs, code and notebooks are linked to the buckets (repeatable)")
        q.add_argument("--services", metavar="LIST",
                       help="comma-separated services to examine (default: all)")
        q.add_argument("--sample", type=positive_int, metavar="N",
                       help="objects per bucket whose first bytes are read (default: 20)")
        q.add_argument("--list-limit", type=positive_int, metavar="N",
                       help="object names listed per bucket and referenced prefix "
                       "(default: 1000)")
        q.add_argument("--timeout", type=float, metavar="SECONDS", dest="request_timeout",
                       help="connect and read timeout of each request (default: 30)")
        q.add_argument("--retries", type=positive_int, metavar="N",
                       help="attempts per request on throttling and server errors "
                       "(default: 5)")
        q.add_argument("-j", "--jobs", type=positive_int, metavar="N",
                       help="buckets examined at once (threads)")
        add_report_options(q)
        q.set_defaults(func=run)

    perms = providers.add_parser(
        "permissions", help="print the minimal read-only permission set of a provider",
        description="AWS: an IAM policy document; Google Cloud: a custom role definition "
        "(`gcloud iam roles create --file`); Azure: a custom role definition (`az role "
        "definition create --role-definition`).")
    perms.add_argument("target", choices=("aws", "gcp", "azure"), metavar="PROVIDER",
                       help="aws, gcp or azure")
    perms.set_defaults(func=run_permissions)


def _options(args: argparse.Namespace) -> Any:
    from mlward._internal.cloud.collect import Options, options_from_section

    s = args.settings
    values = options_from_section(s.section("cloud"), s.origins.get("[cloud]", "settings"))
    services = args.services.split(",") if args.services else values.get("services", ())
    unknown = sorted(set(services) - set(args.services_known.split(",")))
    if unknown:
        raise UsageError(f"--services: unknown service(s) {', '.join(unknown)} for "
                         f"{args.provider} (known: {args.services_known})")
    values["services"] = tuple(s_.strip() for s_ in services)
    flags = {"buckets": args.buckets, "links": args.links, "sample": args.sample,
             "list_limit": args.list_limit, "timeout": args.request_timeout,
             "retries": args.retries, "workers": s.jobs}
    for name in ("profile", "account", "regions", "endpoint_url", "project",
                 "notebooks_endpoint", "account_url", "subscription", "management_endpoint"):
        flags[name] = getattr(args, name, None)
    if getattr(args, "trusted", None):
        flags["trusted_accounts"] = tuple(values.get("trusted_accounts", ())) + \
            tuple(args.trusted)
    if args.provider == "azure":
        var = args.connection_string_env or ("AZURE_STORAGE_CONNECTION_STRING" if
                                             os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
                                             else None)
        if var is not None:
            if not os.environ.get(var):
                raise UsageError(f"--connection-string-env: ${var} is not set")
            flags["connection_string"] = os.environ[var]
    for key, value in flags.items():
        if value is not None:
            values[key] = tuple(value) if isinstance(value, list) else value
    return Options(**values)


def run(args: argparse.Namespace) -> int:
    from mlward._internal.cloud.run import cloud_report

    options = _options(args)
    from mlward.cli.progress import scan_progress

    with scan_progress(quiet=args.settings.quiet) as observer:
        report = cloud_report(args.provider, options, settings=args.settings, observer=observer)
    return emit(report, args, action="cloud")


def run_permissions(args: argparse.Namespace) -> int:
    if args.target == "aws":
        from mlward._internal.cloud.aws import permission_policy as document
    elif args.target == "gcp":
        from mlward._internal.cloud.gcp import permission_role as document
    else:
        from mlward._internal.cloud.azure import permission_role as document
    print(json.dumps(document(), indent=2))
    return 0
