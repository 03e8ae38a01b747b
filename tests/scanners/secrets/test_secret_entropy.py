"""The entropy detector: random values in a secret context are secrets; hashes, IDs,
sequences, images, tables, prose and language-model tokens are not."""

from __future__ import annotations

import base64
import hashlib
import itertools
import math
import uuid
from collections import Counter
from pathlib import Path
from random import Random

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from secret_samples import ALNUM, HEX, r

from mlward._internal.pipeline import scan
from mlward._internal.scanners.secrets.detect import find_secrets
from mlward._internal.scanners.secrets.entropy import expected_entropy, looks_random, shannon

B64 = ALNUM + "+/"


@pytest.mark.parametrize(("n", "k"), [(2, 2), (3, 2), (4, 3), (5, 4), (6, 2)])
def test_expected_entropy_is_exact(n: int, k: int) -> None:
    strings = list(itertools.product(range(k), repeat=n))
    brute = sum(shannon("".join(map(chr, s))) for s in strings) / len(strings)
    assert math.isclose(expected_entropy(n, k), brute, rel_tol=1e-9)


@pytest.mark.parametrize("alphabet", [ALNUM, B64, HEX], ids=["base62", "base64", "hex"])
@pytest.mark.parametrize("n", [20, 24, 32, 40, 64, 128])
def test_random_strings_of_every_length_are_judged_random(alphabet: str, n: int) -> None:
    rng = Random(n)
    judged = Counter(looks_random(r(rng, alphabet, n)) for _ in range(1000))
    assert judged[True] >= 990  # the bar sits about three standard deviations down


@pytest.mark.parametrize("value", [
    "my_super_secret_token_value", "HF_TOKEN_FROM_ENVIRONMENT", "please-replace-with-your-own",
    "sentence-transformers-all-MiniLM-L6-v2", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "0123456789012345678901234567890123456789",
])
def test_words_and_repetition_are_not_random(value: str) -> None:
    assert not looks_random(value) or not find_secrets(f'token = "{value}"')


TOKEN = r(Random(7), ALNUM, 40)

PLACES = [  # (how the text is read, the line)
    ("code", 'token = "{}"'), ("code", 'api_token: str = "{}"'),
    ("code", 'client = Client(token="{}")'), ("code", 'os.environ["HF_TOKEN"] = "{}"'),
    ("code", '{{"access_token": "{}", "expires_in": 3600}}'),
    ("code", 'headers = {{"Authorization": "Bearer {}"}}'),
    ("code", "!curl -H 'X-Api-Key: {}' https://api.acme.io"),
    ("code", 'settings.SECRET_KEY = "{}"'), ("code", 'password="{}"'),
    ("config", "  client_secret: {}"), ("text", "export DEPLOY_TOKEN={}"),
    ("text", "Loaded token: {}"), ("text", "Authorization: Bearer {}"),
]


@pytest.mark.parametrize(("syntax", "place"), PLACES)
def test_a_random_string_assigned_to_a_secret_name_is_reported(syntax: str, place: str) -> None:
    hits = find_secrets(place.format(TOKEN), syntax=syntax)
    assert [(h.rule.id, h.value) for h in hits] == [("MW405", TOKEN)]


@pytest.mark.parametrize("line", [
    "private_key: x25519.X25519PrivateKeyTypes25519", "self.auth: MultiDomainBasicAuthHandler = x",
    "MLKEM768X25519PrivateKey = rust_openssl.hpke.MLKEM768X25519PrivateKey",
    f"token = {TOKEN}", f"authorization: {TOKEN}",
])
def test_in_code_unquoted_values_are_names_and_types_not_secrets(line: str) -> None:
    assert find_secrets(line, syntax="code") == []


@pytest.mark.parametrize("line", [
    'secret = "Ask the platform team for the secret; never commit it"',
    'api_key = "Enter your key in the settings page"',
    'password = "correct horse battery staple"',
    'TOKEN_HELP = "Create a token at https://huggingface.co/settings/tokens"',
    "token: paste the token you were given here",
])
def test_prose_assigned_to_a_secret_name_is_not_a_secret(line: str) -> None:
    assert find_secrets(line) == []
    assert find_secrets(line, syntax="config") == []


@pytest.mark.parametrize("line", [
    f'pad_token = "{TOKEN}"', f'tokenizer.eos_token = "{TOKEN}"', f'max_tokens = "{TOKEN}"',
    f'token_ids = "{TOKEN}"', f'cache_key = "{TOKEN}"', f'client = Client("{TOKEN}")',
    f'run_id = "{TOKEN}"', f'token = tokenizer.decode("{TOKEN}")',
    'token = os.environ["HF_TOKEN"]', "api_key = settings.openai.api_key_from_environment",
])
def test_language_model_tokens_and_other_names_are_not_secrets(line: str) -> None:
    assert find_secrets(line) == []


_RNG = Random(8)
PNG_HEAD = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
VALUES = {  # value: whether it is a credential when assigned to a secret name
    hashlib.sha256(b"weights").hexdigest(): True,  # a hex key, as Flask's secret keys are
    str(uuid.UUID(int=_RNG.getrandbits(128))): True,  # Heroku's legacy keys are UUIDs
    "".join(_RNG.choice("ACGT") for _ in range(40)): False,
    "".join(_RNG.choice("acgt") for _ in range(40)): False,
    "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPIL": False,
    base64.b64encode(PNG_HEAD + _RNG.randbytes(24)).decode(): False,
    "data/train/part-00001.parquet": False,
    "https://huggingface.co/meta-llama/Llama-2-7b-hf": False,
    "20240101123000123456789": False,
}


@pytest.mark.parametrize("value", sorted(VALUES))
def test_hashes_ids_sequences_images_and_paths_need_a_secret_name(value: str) -> None:
    for line in (f'sha = "{value}"', f'sequence = "{value}"', f'"id": "{value}"',
                 f"checksum: {value}", f"  {value}  0.9132  True"):
        assert find_secrets(line) == [], line
    assert bool(find_secrets(f'token = "{value}"')) == VALUES[value]


def _png(rng: Random) -> str:
    data = PNG_HEAD + bytes(rng.randrange(256) for _ in range(3000))
    return base64.b64encode(data).decode()


def _benign_notebook(rng: Random) -> object:
    digests = "\n".join(f"{hashlib.sha256(str(i).encode()).hexdigest()}  shard-{i:05d}.bin"
                        for i in range(40))
    ids = "\n".join(f"{i}  {uuid.UUID(int=rng.getrandbits(128))}  {r(rng, HEX, 24)}  "
                    f"{rng.random():.4f}" for i in range(40))
    table = "".join(f"<tr><td>{r(rng, ALNUM, 32)}</td><td>{r(rng, HEX, 40)}</td>"
                    f"<td>{rng.random():.3f}</td></tr>" for _ in range(30))
    dna = "".join(rng.choice("ACGT") for _ in range(600))
    protein = "".join(rng.choice("ACDEFGHIKLMNPQRSTVWY") for _ in range(300))
    tokens = {"input_ids": [[101, *(rng.randrange(30000) for _ in range(60)), 102]],
              "token_type_ids": [[0] * 62], "attention_mask": [[1] * 62]}
    return new_notebook(cells=[
        new_markdown_cell("# Protein embeddings\nCommit `" + r(rng, HEX, 40) + "`"),
        new_code_cell("!sha256sum shards/*", outputs=[
            new_output("stream", name="stdout", text=digests)]),
        new_code_cell("df.head(40)", outputs=[new_output(
            "execute_result", execution_count=2,
            data={"text/plain": ids, "text/html": f"<table>{table}</table>"})]),
        new_code_cell(f'seq = "{dna[:80]}"\nrecord = SeqRecord(Seq(seq))', outputs=[
            new_output("stream", name="stdout", text=f"{dna}\n{protein}\n")]),
        new_code_cell("tokenizer(texts)", outputs=[new_output(
            "execute_result", execution_count=3, data={"text/plain": repr(tokens)})]),
        new_code_cell("plt.show()", outputs=[new_output(
            "display_data", data={"image/png": _png(rng), "text/plain": "<Figure>"})]),
        new_code_cell("tokenizer.special_tokens_map", outputs=[new_output(
            "execute_result", execution_count=4,
            data={"text/plain": "{'bos_token': '<s>', 'eos_token': '</s>', "
                                "'pad_token': '<pad>', 'unk_token': '<unk>'}"})]),
        new_code_cell("!pip download torch --no-deps", outputs=[new_output(
            "stream", name="stdout",
            text=f"Saved ./torch.whl --hash=sha256:{r(rng, HEX, 64)}\n"
                 f"wandb: Syncing run {r(rng, ALNUM, 8)}\nrun_id={r(rng, HEX, 32)}\n")]),
    ])


def test_notebook_outputs_full_of_hashes_ids_sequences_images_and_tables_are_clean(
        tmp_path: Path) -> None:
    rng = Random(11)
    for n in range(5):
        (tmp_path / f"nb{n}.ipynb").write_text(nbformat.writes(_benign_notebook(rng)))
    report = scan([tmp_path])
    assert len(report.examined) == 5
    assert [f for f in report.findings if f.rule_id.startswith("MW40")] == []


def test_a_token_in_a_notebook_is_reported_once_and_masked(tmp_path: Path) -> None:
    nb = _benign_notebook(Random(12))
    nb.cells.append(new_code_cell(f'token = "{TOKEN}"\nclient = Api(token=token)'))
    path = tmp_path / "leak.ipynb"
    path.write_text(nbformat.writes(nb))
    found = [f for f in scan([path]).findings if f.rule_id.startswith("MW40")]
    assert [(f.rule_id, f.location.cell, f.location.line) for f in found] == \
        [("MW405", len(nb.cells), 1)]
    assert TOKEN not in (found[0].evidence or "") and TOKEN not in found[0].message


def test_long_lines_are_judged_in_windows() -> None:
    line = "x" * 30_000 + f' token="{TOKEN}" ' + "y=1;" * 10_000
    assert [h.value for h in find_secrets(line)] == [TOKEN]


def test_notebook_clean_redacts_what_the_scan_reports(tmp_path: Path) -> None:
    from mlward.cli.main import main

    nb = new_notebook(cells=[new_code_cell("connect()", outputs=[
        new_output("stream", name="stdout", text=f"Loaded token: {TOKEN}\n")])])
    path = tmp_path / "out.ipynb"
    path.write_text(nbformat.writes(nb))
    assert [f.rule_id for f in scan([path]).findings] == ["MW405"]
    assert main(["notebook", "clean", str(path), "--redact"]) == 0
    assert TOKEN not in path.read_text()
    assert [f.rule_id for f in scan([path]).findings] == []
