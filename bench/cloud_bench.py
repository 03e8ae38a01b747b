"""Cloud: mlward's IaC rules beside Checkov on the same fixtures, and a live scan of 1,000
buckets on moto's standalone server.

    bench/.venv/bin/python bench/cloud_bench.py [--buckets 1000] [--repeat 3] [--write-readme]
    bench/.venv/bin/python bench/cloud_bench.py --install-checkov   # first time

Checkov lives in its own venv, ``bench/out/venv-checkov``: it depends on bc-python-hcl2,
which installs a module named ``hcl2`` over python-hcl2's (mlward's Terraform parser), so the
two cannot share an environment (mlward then reports its Terraform rules as not applied).

IaC. Both tools read the fixtures the tests use (``tests/cloud/fixtures/iac/<language>/
{bad,good}``: Terraform, CloudFormation, Kubernetes; ``bad`` misconfigured on purpose,
``good`` configured as recommended) through their command lines: ``mlward scan -f json`` and
``checkov -d DIR --framework LANG -o json --compact --skip-download``. Measured: wall time
(median of ``--repeat`` runs, after one unmeasured run), and per ML-relevant concept whether
each tool reports it on ``bad`` (found) and on ``good`` (a false positive: the fixture does
not have that misconfiguration). The concept table below maps each concept to mlward's rules
and to the Checkov checks that express it (read from Checkov 3.3's output on these
fixtures); Checkov checks outside it (Kubernetes pod hardening, S3 lifecycle and event
notifications, private endpoints...) are counted as general hygiene, not ML-specific.

Live. ``moto_server`` (a subprocess on 127.0.0.1) holds N buckets: three small objects in
each, a PyTorch checkpoint in every 10th, a public ACL on every 50th, and an MLflow project
whose experiments store their artifacts in every 100th. ``mlward cloud aws --services s3
--links PROJECT`` examines them all; measured: wall time, API calls in total and per bucket,
findings by rule.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import time
import zipfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _bench import compile_mlward, write_section  # bench/ is the script folder, on sys.path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
FIXTURES = REPO / "tests" / "cloud" / "fixtures" / "iac"
OUT = BENCH / "out" / "cloud"
VENV_BIN = Path(sys.executable).parent
CHECKOV_VENV = OUT / "venv-checkov"
CHECKOV = CHECKOV_VENV / "bin" / "checkov"
LANGUAGES = ("terraform", "cloudformation", "kubernetes")

# concept -> (mlward rules, Checkov checks). Checkov's ids are those it reports on these
# fixtures for the concept (Terraform and CloudFormation share most).
CONCEPTS: list[tuple[str, set[str], set[str]]] = [
    ("public bucket ACL", {"MW850"}, {"CKV_AWS_20", "CKV_AWS_57"}),
    ("bucket policy for any principal", {"MW851"}, {"CKV_AWS_70"}),
    ("Block Public Access off", {"MW852"},
     {"CKV_AWS_53", "CKV_AWS_54", "CKV_AWS_55", "CKV_AWS_56", "CKV2_AWS_6"}),
    ("bucket without encryption", {"MW853"}, {"CKV_AWS_19", "CKV_AWS_145"}),
    ("bucket without versioning", {"MW854"}, {"CKV_AWS_21"}),
    ("bucket without access logging", {"MW855"}, {"CKV_AWS_18"}),
    ("bucket CORS for any origin", {"MW856"}, set()),
    ("website hosting on an ML bucket", {"MW857"}, set()),
    ("IAM wildcard on ML services", {"MW858"},
     {"CKV_AWS_111", "CKV_AWS_290", "CKV_AWS_288", "CKV_AWS_355", "CKV_AWS_62",
      "CKV_AWS_63", "CKV2_AWS_68"}),
    ("iam:PassRole on every role", {"MW859"}, {"CKV_AWS_109", "CKV_AWS_289", "CKV_AWS_286"}),
    ("role anyone can assume", {"MW860"}, {"CKV_AWS_60", "CKV_AWS_283"}),
    ("notebook direct internet access", {"MW861"}, {"CKV_AWS_122"}),
    ("notebook root access", {"MW862"}, {"CKV_AWS_307"}),
    ("notebook outside a VPC", {"MW863"}, {"CKV_AWS_306"}),
    ("notebook without KMS", {"MW864"}, {"CKV_AWS_22", "CKV_AWS_187"}),
    ("notebook allows IMDSv1", {"MW879"}, {"CKV_AWS_371"}),
    ("endpoint config without KMS", {"MW865"}, {"CKV_AWS_98"}),
    ("endpoint config without data capture", {"MW866"}, set()),
    ("SageMaker model without network isolation", {"MW867"}, {"CKV_AWS_370"}),
    ("Bedrock custom model without CMK", {"MW868"}, set()),
    ("model loaded from a bucket the code makes public", {"MW869"}, set()),
    ("GCS allUsers member", {"MW870"}, {"CKV_GCP_28"}),
    ("GCS without uniform bucket-level access", {"MW871"}, {"CKV_GCP_29"}),
    ("GCS without public access prevention", {"MW872"}, {"CKV_GCP_114"}),
    ("GCS ML bucket without versioning or retention", {"MW873"}, {"CKV_GCP_78"}),
    ("GCS without access logging", {"MW886"}, {"CKV_GCP_62"}),
    ("Workbench with a public IP", {"MW874"}, {"CKV2_GCP_28", "CKV_GCP_89"}),
    ("Workbench disks without CMEK", {"MW885"}, {"CKV2_GCP_27"}),
    ("Azure public container", {"MW875"}, {"CKV_AZURE_34"}),
    ("Azure account allows blob public access", {"MW876"}, {"CKV_AZURE_190", "CKV2_AZURE_47"}),
    ("Azure shared key access", {"MW877"}, {"CKV2_AZURE_40"}),
    ("Azure weak TLS / plain HTTP", {"MW878"}, {"CKV_AZURE_44", "CKV_AZURE_3"}),
    ("Azure without blob soft delete", {"MW887"}, {"CKV2_AZURE_38"}),
    ("Azure without SAS expiration policy", {"MW888"}, {"CKV2_AZURE_41"}),
    ("MLflow without auth exposed (k8s)", {"MW880"}, set()),
    ("Jupyter without token exposed (k8s)", {"MW881"}, set()),
    ("KubeRay dashboard exposed", {"MW882"}, set()),
    ("ML pod privileged / host access", {"MW883"},
     {"CKV_K8S_16", "CKV_K8S_17", "CKV_K8S_18", "CKV_K8S_19", "CKV_K8S_27"}),
    ("Kubeflow workload outside the mesh", {"MW884"}, set()),
]


def timed(cmd: list[str], env: dict[str, str] | None = None
          ) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600,
                          env={**os.environ, **(env or {})})
    return time.perf_counter() - start, proc


def cpu_seconds(cmd: list[str]) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """(wall, user + system CPU of the process tree, result), through GNU time."""
    stats = OUT / "time.txt"
    wall, proc = timed(["/usr/bin/time", "-f", "%U %S", "-o", str(stats), *cmd])
    user, system = stats.read_text().split()[-2:]
    return wall, float(user) + float(system), proc


def mlward_iac(folder: Path) -> tuple[float, list[str]]:
    wall, proc = timed([str(VENV_BIN / "mlward"), "scan", "-q", "-f", "json", str(folder)])
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"mlward failed on {folder}: {proc.stderr[-2000:]}")
    return wall, [f["rule_id"] for f in json.loads(proc.stdout)["findings"]]


def checkov_iac(folder: Path, language: str) -> tuple[float, list[str]]:
    wall, proc = timed([str(CHECKOV), "-d", str(folder), "--framework", language,
                        "-o", "json", "--quiet", "--compact", "--skip-download"],
                       env={"BC_SKIP_MAPPING": "TRUE"})
    data = json.loads(proc.stdout or "[]")
    docs = data if isinstance(data, list) else [data]
    return wall, [c["check_id"] for d in docs
                  for c in d.get("results", {}).get("failed_checks", [])]


def iac(repeat: int) -> dict[str, Any]:
    results: dict[str, Any] = {"time": {}, "found": {}, "other": {}}
    for language in LANGUAGES:
        for side in ("bad", "good"):
            folder = FIXTURES / language / side
            for tool, run in (("mlward", lambda f=folder: mlward_iac(f)),
                              ("checkov", lambda f=folder, lang=language: checkov_iac(f, lang))):
                run()  # unmeasured: bytecode, page cache
                walls, ids = [], []
                for _ in range(repeat):
                    wall, ids = run()
                    walls.append(wall)
                results["time"][(tool, language, side)] = statistics.median(walls)
                results["found"][(tool, language, side)] = ids
    return results


def concept_table(results: dict[str, Any]) -> tuple[list[list[str]], dict[str, int]]:
    rows = []
    totals = Counter()
    mapped_checkov = set().union(*(c for _, _, c in CONCEPTS))
    for concept, ours, theirs in CONCEPTS:
        cells = [concept]
        for tool, ids in (("mlward", ours), ("checkov", theirs)):
            bad = any(set(results["found"][(tool, lang, "bad")]) & ids for lang in LANGUAGES)
            good = any(set(results["found"][(tool, lang, "good")]) & ids for lang in LANGUAGES)
            totals[f"{tool}_found"] += bad
            totals[f"{tool}_fp"] += good
            cells.append(("found" if bad else "-") + (" (**false positive** on good)"
                                                      if good else ""))
        rows.append(cells)
    for side in ("bad", "good"):
        totals[f"checkov_other_{side}"] = sum(
            1 for lang in LANGUAGES for i in results["found"][("checkov", lang, side)]
            if i not in mapped_checkov)
        totals[f"mlward_other_{side}"] = sum(
            1 for lang in LANGUAGES for i in results["found"][("mlward", lang, side)]
            if not i.startswith("MW8"))
    return rows, totals


# --- live --------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def checkpoint() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("model/data.pkl", b"\x80\x02}q\x00.")
        z.writestr("model/version", b"3\n")
    return buf.getvalue()


def populate(url: str, n: int, project: Path) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1")
    model = checkpoint()

    def bucket(i: int) -> None:
        name = f"bench-{i:05d}"
        s3.create_bucket(Bucket=name)
        for k in range(3):
            s3.put_object(Bucket=name, Key=f"logs/part-{k}.txt", Body=b"step 1 loss 0.5\n")
        if i % 10 == 0:
            s3.put_object(Bucket=name, Key="models/model.pt", Body=model)
        if i % 50 == 0:
            s3.put_bucket_acl(Bucket=name, ACL="public-read")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(bucket, range(n)))
    for i in range(0, n, 100):
        exp = project / "mlruns" / str(i)
        exp.mkdir(parents=True, exist_ok=True)
        (exp / "meta.yaml").write_text(f"artifact_location: s3://bench-{i:05d}/models\n"
                                       f"experiment_id: '{i}'\nname: experiment-{i}\n")
    (project / "pyproject.toml").write_text("")


def live(n: int) -> dict[str, Any]:
    env = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
    os.environ.update(env)
    port = free_port()
    log = open(OUT / "moto.log", "wb")  # noqa: SIM115 (closed in finally)
    server = subprocess.Popen([str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p",
                               str(port)], stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            if time.monotonic() > deadline:
                raise RuntimeError("moto_server did not start")
            time.sleep(0.2)
        project = OUT / f"project-{n}"
        start = time.perf_counter()
        populate(url, n, project)
        setup = time.perf_counter() - start
        report = OUT / f"live-{n}.json"
        wall, cpu, proc = cpu_seconds([
            str(VENV_BIN / "mlward"), "cloud", "aws", "-q", "--endpoint-url", url,
            "--services", "s3", "--links", str(project), "-f", "json", "-o", str(report)])
        if proc.returncode not in (0, 1):
            raise RuntimeError(f"mlward cloud failed: {proc.stderr[-2000:]}")
        data = json.loads(report.read_text())
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        log.close()
    stats = data["stats"]
    return {"buckets": n, "setup": setup, "wall": wall, "cpu": cpu,
            "api_calls": stats["api_calls"],
            "bucket_calls": stats["bucket_api_calls"], "inconclusive":
            data["summary"]["inconclusive"],
            "by_rule": Counter(f["rule_id"] for f in data["findings"]),
            "by_operation": stats["api_calls_by_operation"]}


# --- report ------------------------------------------------------------------------------

def markdown(results: dict[str, Any], live_result: dict[str, Any], command: str) -> str:
    rows, totals = concept_table(results)
    out = ["## Cloud: IaC rules beside Checkov, live scan on moto (`cloud_bench.py`)", "",
           "Peer: [Checkov](https://pypi.org/project/checkov/) "
           f"({checkov_version()}), the IaC scanner most teams run.", "", "```sh",
           command, "```", "",
           "Wall time, median of the repeats, each tool through its command line on the "
           "same fixture folder (`tests/cloud/fixtures/iac`):", "",
           "| fixture | mlward | Checkov |", "| --- | ---: | ---: |"]
    for lang in LANGUAGES:
        for side in ("bad", "good"):
            out.append(f"| {lang}/{side} | {results['time'][('mlward', lang, side)]:.2f} s | "
                       f"{results['time'][('checkov', lang, side)]:.2f} s |")
    total = {t: sum(v for (tool, _, _), v in results["time"].items() if tool == t)
             for t in ("mlward", "checkov")}
    out += [f"| **all six** | **{total['mlward']:.2f} s** | **{total['checkov']:.2f} s** |", "",
            f"ML-relevant concepts ({len(CONCEPTS)}): found on `bad` by mlward "
            f"{totals['mlward_found']}, by Checkov {totals['checkov_found']}; false positives "
            f"on `good`: mlward {totals['mlward_fp']}, Checkov {totals['checkov_fp']}.", "",
            "| concept | mlward | Checkov |", "| --- | --- | --- |"]
    out += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    out += ["", f"Outside these concepts Checkov reports {totals['checkov_other_bad']} findings "
            f"on `bad` and {totals['checkov_other_good']} on `good` (Kubernetes pod hardening "
            "and probes, S3 event notifications, lifecycle and cross-region replication, "
            "storage private endpoints, network access, CMK everywhere): general hygiene "
            "that mlward leaves to general scanners. mlward's other findings on these "
            f"folders come from its ML-tool exposure rules (MW6xx: {totals['mlward_other_bad']}"
            f" on `bad`, {totals['mlward_other_good']} on `good`, the latter a LoadBalancer "
            "in front of an MLflow server that does use `--app-name basic-auth`, which MW640 "
            "cannot see).", "",
            f"Live: {live_result['buckets']:,} buckets on `moto_server` (three objects each, "
            "a checkpoint in every 10th, a public ACL on every 50th, MLflow experiments "
            "pointing at every 100th):", "",
            "| buckets | wall | mlward CPU | API calls | per bucket | inconclusive |",
            "| ---: | ---: | ---: | ---: | ---: | ---: |",
            f"| {live_result['buckets']:,} | {live_result['wall']:.1f} s | "
            f"{live_result['cpu']:.1f} s | "
            f"{live_result['api_calls']:,} | "
            f"{live_result['bucket_calls'] / live_result['buckets']:.2f} | "
            f"{live_result['inconclusive']} |", "",
            "Findings: " + ", ".join(f"{rule} {n:,}" for rule, n in
                                     sorted(live_result["by_rule"].items())) + ". "
            "Calls per operation: " + ", ".join(
                f"`{op}` {n:,}" for op, n in sorted(live_result["by_operation"].items()))
            + ". Every bucket costs 8 calls (7 configuration reads and one listing page) "
            "plus one ranged read of the first 16 KiB per sampled object (here all three, "
            "up to `--sample`, default 20); one that holds models (or that the project "
            "refers to) adds an object-ACL read per model found and the versioning, "
            "object-lock and website reads. The wall time is mostly moto's: its server "
            "answers from one Python process on the same two cores (mlward CPU is the "
            "client's share). Checkov has no live mode. Setup (creating the buckets) took "
            f"{live_result['setup']:.0f} s and is not part of the time.", ""]
    out.append(machine())
    return "\n".join(out)


def checkov_version() -> str:
    proc = subprocess.run([str(CHECKOV), "--version"], capture_output=True,
                          text=True, timeout=120)
    return f"checkov {proc.stdout.strip()}"


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return (f"Machine: {os.cpu_count()} cores ({cpu}), Python {sys.version.split()[0]}, "
            f"measured {when}.")


def install_checkov() -> None:
    """Checkov in its own venv under bench/out/ (git-ignored)."""
    if not (CHECKOV_VENV / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(CHECKOV_VENV)], check=True)
    subprocess.run([str(CHECKOV_VENV / "bin" / "pip"), "install", "-q", "checkov"],
                   check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--buckets", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--write-readme", action="store_true")
    parser.add_argument("--install-checkov", action="store_true",
                        help="install Checkov into bench/out/venv-checkov and stop")
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    if args.install_checkov:
        install_checkov()
        return 0
    if not CHECKOV.exists():
        parser.error("Checkov is not installed: run with --install-checkov first")
    compile_mlward()
    results = iac(args.repeat)
    live_result = live(args.buckets)
    command = shlex.join(["bench/.venv/bin/python", "bench/cloud_bench.py",
                          *(argv if argv is not None else sys.argv[1:])])
    text = markdown(results, live_result, command)
    print(text)
    if args.write_readme:
        write_section("cloud", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
