"""Jinja chat templates: real-looking benign templates stay clean; sandbox escapes do not."""

from __future__ import annotations

import pytest

from mlward._internal.scanners.templates import analyse_template
from mlward.findings import Verdict

# Small templates written for these tests in the style of the real ones.
LLAMA3 = (
    "{{- bos_token }}{%- if messages[0]['role'] == 'system' %}"
    "{%- set system_message = messages[0]['content']|trim %}{%- set messages = messages[1:] %}"
    "{%- else %}{%- set system_message = '' %}{%- endif %}"
    "{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' + system_message + '<|eot_id|>' }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' "
    "+ message['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor %}{%- if add_generation_prompt %}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)
MISTRAL = (
    "{%- if messages[0]['role'] == 'system' %}{%- set loop_messages = messages[1:] %}"
    "{%- else %}{%- set loop_messages = messages %}{%- endif %}{{- bos_token }}"
    "{%- for message in loop_messages %}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{- raise_exception('Conversation roles must alternate user/assistant/user/assistant') }}"
    "{%- endif %}{%- if message['role'] == 'user' %}"
    "{{- '[INST] ' + message['content'] + ' [/INST]' }}"
    "{%- elif message['role'] == 'assistant' %}{{- ' ' + message['content'] + eos_token }}"
    "{%- endif %}{%- endfor %}"
)
CHATML_QWEN = (
    "{%- set ns = namespace(found_system=false) %}"
    "{%- for message in messages %}{%- if message.role == 'system' %}"
    "{%- set ns.found_system = true %}{%- endif %}{%- endfor %}"
    "{%- if not ns.found_system %}"
    "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}{%- for message in messages %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
    "{%- if message.tool_calls %}{%- for tool_call in message.tool_calls %}"
    "{{- '<tool_call>\\n' + tool_call.function.name + (tool_call.function.arguments | tojson) }}"
    "{%- endfor %}{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
GEMMA = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for message in messages %}{% if message['role'] == 'assistant' %}{% set role = 'model' %}"
    "{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}"
)

BENIGN = {"llama3": LLAMA3, "mistral": MISTRAL, "chatml-qwen": CHATML_QWEN, "gemma": GEMMA}


@pytest.mark.parametrize("name", sorted(BENIGN))
def test_benign_chat_templates_are_clean(name: str) -> None:
    analysis = analyse_template(BENIGN[name])
    assert analysis.verdict is Verdict.CLEAN, analysis.issues


def cve_2024_34359_payload(marker: object) -> str:
    # CVE-2024-34359 (llama-cpp-python): the published proof of concept reaches os through
    # the template's own globals.
    return ("{% for x in ().__class__.__base__.__subclasses__() %}"
            "{% if \"warning\" in x.__name__ %}"
            f"{{{{ x()._module.__builtins__['__import__']('os').popen('touch {marker}') }}}}"
            "{% endif %}{% endfor %}")


def test_cve_2024_34359_chat_template_ssti(marker) -> None:
    analysis = analyse_template(cve_2024_34359_payload(marker))
    assert analysis.verdict is Verdict.DANGEROUS
    evidence = {i.evidence for i in analysis.issues if i.dangerous}
    assert {"__class__", "__base__", "__subclasses__"} <= evidence
    assert not marker.exists()


ESCAPES = {
    "self-init-globals": "{{ self.__init__.__globals__.__builtins__.__import__('os') }}",
    "cycler-gadget": "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "joiner-gadget": "{{ joiner.__init__.__globals__['os'] }}",
    "namespace-gadget": "{{ namespace.__init__.__globals__.os.system('id') }}",
    "lipsum-gadget": "{{ lipsum.__globals__['os'].popen('id') }}",
    "attr-filter": "{{ ''|attr('__class__')|attr('__mro__') }}",
    "attr-filter-concat": "{{ ''|attr('__cla' ~ 'ss__') }}",
    "item-plus-concat": "{{ ''['__cla' + 'ss__'] }}",
    "join-filter": "{{ ''|attr(['__', 'class', '__']|join) }}",
    "hex-escaped": "{{ ''|attr('\\x5f\\x5fclass\\x5f\\x5f') }}",
    "map-attribute": "{{ [x]|map(attribute='__class__')|list }}",
    "private-attribute": "{{ self._TemplateReference__context.cycler }}",
    "format-string": "{{ '{0.__class__}'.format(x) }}",
}


@pytest.mark.parametrize("name", sorted(ESCAPES))
def test_sandbox_escapes_are_dangerous(name: str) -> None:
    analysis = analyse_template(ESCAPES[name])
    assert analysis.verdict is Verdict.DANGEROUS, analysis.issues


@pytest.mark.parametrize("text", [
    "{% import 'x.j2' as x %}{{ x.y }}",
    "{% include 'other.j2' %}",
    "{{ ''[a ~ b] }}",
    "{{ lipsum.x }}",
    "{% for %}",
])
def test_unusual_constructs_are_suspicious(text: str) -> None:
    assert analyse_template(text).verdict is Verdict.SUSPICIOUS


def test_deeply_nested_template_is_bounded() -> None:
    text = "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}"
    assert analyse_template(text).verdict in (Verdict.SUSPICIOUS, Verdict.CLEAN)


def test_oversized_template_is_not_parsed() -> None:
    assert analyse_template("x" * (2 << 20)).verdict is Verdict.SUSPICIOUS


# -- templates wherever they live (issue 14.8) -----------------------------------------------

import json  # noqa: E402
import zipfile  # noqa: E402

import mlward  # noqa: E402

ESCAPE = "{{ cycler.__init__.__globals__.os.popen('id').read() }}"


def _escapes(report) -> set[tuple[str, tuple[str, ...]]]:
    return {(f.location.uri.rsplit("/", 1)[-1], f.location.members) for f in report.findings
            if f.rule_id == "MW241"}


@pytest.mark.parametrize("name", ["chat_template.jinja", "prompt.jinja", "tool_use.j2",
                                  "x.jinja2"])
def test_loose_jinja_file_alone(tmp_path, name) -> None:
    path = tmp_path / "somewhere" / name
    path.parent.mkdir()
    path.write_text(ESCAPE)
    assert _escapes(mlward.scan([path])) == {(name, ())}


@pytest.mark.parametrize("name", ["tokenizer_config.json", "chat_template.json",
                                  "processor_config.json"])
def test_template_config_scanned_alone(tmp_path, name) -> None:
    path = tmp_path / name
    path.write_text(json.dumps({"chat_template": ESCAPE}))
    assert _escapes(mlward.scan([path])) == {(name, ("chat_template",))}


def test_templates_under_any_key_of_tokenizer_config(tmp_path) -> None:
    path = tmp_path / "tokenizer_config.json"
    path.write_text(json.dumps({
        "bos_token": "<s>", "default_chat_template": ESCAPE,
        "chat_templates": {"rag": ESCAPE, "plain": "{{ messages[0]['content'] }}"},
        "extra": {"prompt_format": ESCAPE},
        "chat_template": [{"name": "default", "template": "{{ bos_token }}"},
                          {"name": "tool_use", "template": ESCAPE}]}))
    assert _escapes(mlward.scan([path])) == {
        ("tokenizer_config.json", ("default_chat_template",)),
        ("tokenizer_config.json", ("chat_templates.rag",)),
        ("tokenizer_config.json", ("extra.prompt_format",)),
        ("tokenizer_config.json", ("chat_template[tool_use]",))}


def test_template_keys_in_any_json(tmp_path) -> None:
    path = tmp_path / "serving.json"
    path.write_text(json.dumps({"model": "x", "prompt": {"system_template": ESCAPE},
                                "note": "{{ not a template key }}"}))
    assert _escapes(mlward.scan([path])) == {("serving.json", ("prompt.system_template",))}


def test_template_inside_an_archive(tmp_path) -> None:
    path = tmp_path / "tokenizer.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("tok/tokenizer_config.json", json.dumps({"chat_template": ESCAPE}))
    report = mlward.scan([path])
    assert {f.location.members for f in report.findings if f.rule_id == "MW241"} == {
        ("tok/tokenizer_config.json", "chat_template")}


def test_same_findings_alone_and_in_a_folder(tmp_path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "tokenizer_config.json").write_text(json.dumps({"chat_template": ESCAPE}))
    (repo / "chat_template.jinja").write_text(ESCAPE)
    folder = mlward.scan([repo])
    alone = [mlward.scan([p], settings=mlward.Settings(root=str(repo)))
             for p in sorted(repo.iterdir())]
    assert _escapes(folder) == set().union(*(_escapes(r) for r in alone))
    assert _escapes(folder) == {("tokenizer_config.json", ("chat_template",)),
                                ("chat_template.jinja", ())}


def test_gguf_template_under_any_key(tmp_path) -> None:
    gguf = pytest.importorskip("gguf")
    import numpy as np

    path = tmp_path / "m.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_string("llama.prompt_format", ESCAPE)
    w.add_string("general.description", "a model")
    w.add_tensor("t", np.zeros((2,), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    assert _escapes(mlward.scan([path])) == {("m.gguf", ("llama.prompt_format",))}
