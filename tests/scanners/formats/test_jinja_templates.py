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
