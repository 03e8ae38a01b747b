"""One regression test per published bypass of picklescan, fickling and ModelScan.

Each payload is assembled here from the advisory's description (module and attribute path of
the callable the exploit reaches); the advisory id is in the test id and comment.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from pickle_payloads import by_rule, call, const, evidence, header, ref, scan_bytes, verdict

from mlward.findings import Severity

P = "__import__('os').system('id')"

# (advisory, module, attribute path, arguments): the callable as pickle writes it.
ADVISORIES = [
    # picklescan: indirect evaluators and process launchers missing from its blocklist.
    ("CVE-2025-1716 pip.main", "pip", "main", (["install", "evil"],)),
    ("GHSA-4r9r-ch6f-vxmx torch bottleneck", "torch.utils.bottleneck.__main__",
     "run_cprofile", (P, {})),
    ("GHSA-4whj-rm5r-c2v8 torch bottleneck", "torch.utils.bottleneck.__main__",
     "run_autograd_prof", (P, {})),
    ("GHSA-86cj-95qr-2p4f torch dynamo guards", "torch._dynamo.guards", "GuardBuilder.get",
     ({}, P)),
    ("GHSA-f4x7-rfwp-v3xw torch symbolic shapes", "torch.fx.experimental.symbolic_shapes",
     "ShapeEnv.evaluate_guards_expression", ({}, P, [])),
    ("GHSA-f745-w6jp-hpxx torch collect_env", "torch.utils.collect_env", "run", (P,)),
    ("GHSA-jhph-76pp-mggw torch collect_env", "torch.utils.collect_env", "run_and_read_all",
     (None, P)),
    ("GHSA-h3qp-7fh3-f8h4 torch datapipes decoder", "torch.utils.data.datapipes.utils.decoder",
     "basichandlers", ("pickle", b"")),
    ("GHSA-vr7h-p6mm-wpmh torch jit execWrapper", "torch.jit.unsupported_tensor_ops",
     "execWrapper", (P, {}, {})),
    ("GHSA-vv6j-3g6g-2pvj torch config module", "torch.utils._config_module",
     "ConfigModule.load_config", ({}, b"")),
    ("GHSA-5qwp-399c-mjwf trace.Trace.run", "trace", "Trace.run", ({}, P)),
    ("GHSA-g344-hcph-8vgg trace.Trace.runctx", "trace", "Trace.runctx", ({}, P, {}, {})),
    ("GHSA-x696-vm39-cp64 profile.Profile.run", "profile", "Profile.run", ({}, P)),
    ("GHSA-6vqj-c2q5-j97w profile.Profile.runctx", "profile", "Profile.runctx",
     ({}, P, {}, {})),
    ("GHSA-7wx9-6375-f5wh profile", "profile", "run", (P,)),
    ("GHSA-f54q-57x4-jg88 lib2to3 Grammar.loads", "lib2to3.pgen2.grammar", "Grammar.loads",
     ({}, b"")),
    ("GHSA-p9w7-82w4-7q8m lib2to3 make_label", "lib2to3.pgen2.pgen",
     "ParserGenerator.make_label", (None, {}, '""+' + P)),
    ("GHSA-3vg9-h568-4w9m idlelib debugobj", "idlelib.debugobj", "ObjectTreeItem.SetText",
     ({}, P)),
    ("GHSA-6w4w-5w54-rjvr idlelib autocomplete", "idlelib.autocomplete",
     "AutoComplete.get_entity", ({}, P)),
    ("GHSA-7cq8-mj8x-j263 idlelib autocomplete", "idlelib.autocomplete",
     "AutoComplete.fetch_completions", ({}, P, 1)),
    ("GHSA-8r4j-24qv-fmq9 idlelib calltip", "idlelib.calltip", "Calltip.fetch_tip", ({}, P)),
    ("GHSA-9xph-j2h6-g47v idlelib get_entity", "idlelib.calltip", "get_entity", (P,)),
    ("GHSA-m869-42cg-3xwr idlelib Executive", "idlelib.run", "Executive.runcode", ({}, P)),
    ("GHSA-j343-8v2j-ff7w idlelib runcommand", "idlelib.pyshell",
     "ModifiedInterpreter.runcommand", ({}, P)),
    ("GHSA-3gf5-cxq9-w223 idlelib runcode", "idlelib.pyshell", "ModifiedInterpreter.runcode",
     ({}, P)),
    ("GHSA-cj3c-v495-4xqh code.InteractiveInterpreter", "code",
     "InteractiveInterpreter.runcode", ({}, P)),
    ("GHSA-fqq6-7vqf-w3fg doctest.debug_script", "doctest", "debug_script", (P, True)),
    ("GHSA-9w88-8rmg-7g2p cProfile.runctx", "cProfile", "runctx", (P, None, None)),
    ("GHSA-49gj-c84q-6qm9 cProfile.run", "cProfile", "run", (P,)),
    ("GHSA-v7x6-rv5q-mhwc timeit.timeit", "timeit", "timeit", ("", P)),
    ("GHSA-xp4f-hrf8-rxw7 ensurepip._run_pip", "ensurepip", "_run_pip", (P,)),
    # JFrog's three zero-days: CVE-2025-10157 is a submodule of a blocked module.
    ("CVE-2025-10157 GHSA-q77w-mwjj-7mqx asyncio submodule", "asyncio.unix_events",
     "_UnixSubprocessTransport._start", ({}, "id", True, None, None, None, 0)),
    ("GHSA-m273-6v24-x4m4 distutils write_file", "distutils.file_util", "write_file",
     ("x.env", ["content"])),
    ("CVE-2025-10156 _io.FileIO", "_io", "FileIO", ("/etc/hosts", "r")),
    ("GHSA-4675-36f9-wf6r ctypes", "ctypes", "CDLL", (None,)),
    ("GHSA-vqmv-47xg-9wpr pty.spawn", "pty", "spawn", (["/bin/sh"],)),
    ("GHSA-r8g5-cgf2-4m4m numpy f2py", "numpy.f2py.crackfortran", "getlincoef", (P, [])),
    ("GHSA-955r-x9j8-7rhh _operator", "_operator", "attrgetter", ("system",)),
    ("GHSA-46h3-79wf-xr6c _operator", "_operator", "methodcaller", ("system", "id")),
    ("GHSA-vvpj-8cmc-gx39 pkgutil.resolve_name", "pkgutil", "resolve_name", ("os:system",)),
    ("picklescan malicious14 runpy", "runpy", "_run_code", (P, {})),
    ("picklescan malicious15 bdb", "bdb", "Bdb.run", ({}, P)),
    ("picklescan malicious17 torch inductor", "torch._inductor.codecache", "compile_file",
     ("", "", ["sh", "-c", "id"])),
    ("picklescan malicious18 pydoc.pipepager", "pydoc", "pipepager", ("", "id")),
    ("picklescan malicious20 venv.create", "venv", "create", ("v", False, False, True)),
    ("picklescan malicious22 numpy runstring", "numpy.testing._private.utils", "runstring",
     (P, {})),
    ("picklescan malicious13 nested pickle", "_pickle", "loads", (b"I1\n.",)),
    # fickling advisories.
    ("GHSA-6ggj-6f2q-f7mx fickling _interpreters", "_interpreters", "run_string", (0, P)),
    ("GHSA-6ggj-6f2q-f7mx fickling _xxsubinterpreters", "_xxsubinterpreters", "run_string",
     (0, P)),
    ("fickling PR 108 pty", "pty", "spawn", ("id",)),
]


@pytest.mark.parametrize(("module", "name", "args"),
                         [a[1:] for a in ADVISORIES], ids=[a[0] for a in ADVISORIES])
def test_published_bypass(tmp_path: Path, module: str, name: str, args: tuple[object, ...]):
    report = scan_bytes(tmp_path, call(module, name, *args))
    (f,) = by_rule(report, "MW101")
    assert f.evidence == f"{module}.{name}"
    assert f.severity >= Severity.HIGH
    assert verdict(report) == "dangerous"


def test_picklescan_issue_22_stack_global_names_in_the_memo(tmp_path: Path):
    # imaginaryctf "Safe Pickle": UNICODE + PUT decoys, then GETs feed STACK_GLOBAL.
    data = (b"Vos\np2\n0Vsystem\np3\n0Vtorch\np0\n0VLongStorage\np1\n0"
            b"g2\ng3\n\x93(Vcat flag.txt\ntR.")
    assert evidence(scan_bytes(tmp_path, data)) == {"os.system"}


def test_ghsa_9gvj_pp9x_gcfr_string_opcodes_as_stack_global_operands(tmp_path: Path):
    # GHSA-9gvj-pp9x-gcfr: protocol-0 STRING operands for STACK_GLOBAL.
    data = b"S'os'\nS'system'\n\x93S'ls'\n\x85R."
    assert evidence(scan_bytes(tmp_path, data)) == {"os.system"}


def test_picklescan_type_confusion_exploit(tmp_path: Path):
    # An int in the memo fed to STACK_GLOBAL after a real payload: payload still reported.
    data = (call("os", "system", "id")[:-1] + b"0" + b"J\x2a\x00\x00\x00\x94"
            + const("os") + b"\x94h\x00h\x01\x93K\x42.")
    report = scan_bytes(tmp_path, data)
    assert "os.system" in evidence(report, "MW101")
    assert by_rule(report, "MW103")  # the int operand cannot be resolved statically


def test_sour_pickles_protocol_0_builtin_chain(tmp_path: Path):
    # Slaviero, "Sour Pickles" (Black Hat US 2011): __builtin__ via fix_imports.
    data = (b"c__builtin__\nglobals\n(tRp100\n0c__builtin__\ncompile\n(S'x=1'\nS''\nS'exec'\n"
            b"tRp101\n0c__builtin__\neval\n(g101\ng100\ntRp102\n0c__builtin__\ngetattr\n"
            b"(c__builtin__\ndict\nS'get'\ntRp103\n0g103\n.")
    found = evidence(scan_bytes(tmp_path, data), "MW101")
    assert found == {"builtins.globals", "builtins.compile", "builtins.eval", "builtins.getattr"}


def test_picklescan_malicious10_inst_exec(tmp_path: Path):
    data = b"(S'raise RuntimeError(\"x\")'\ni__builtin__\nexec\n."
    assert evidence(scan_bytes(tmp_path, data)) == {"builtins.exec"}


def test_ghsa_84r2_jw7c_4r5q_pydoc_locate_and_methodcaller(tmp_path: Path):
    # methodcaller("system", "id")(pydoc.locate("os")): the call target is computed.
    body = (ref("operator", "methodcaller") + const(("system", "id")) + b"R"
            + b"(" + ref("pydoc", "locate") + const(("os",)) + b"R" + b"tR.")
    report = scan_bytes(tmp_path, header(4) + body)
    assert evidence(report, "MW101") == {"operator.methodcaller", "pydoc.locate"}
    assert by_rule(report, "MW104")


def test_picklescan_malicious12_attrgetter_chain(tmp_path: Path):
    body = (ref("operator", "attrgetter") + const(("system",)) + b"R"
            + ref("builtins", "__import__") + const(("os",)) + b"R" + b"\x85R"
            + const(("id",)) + b"R.")
    report = scan_bytes(tmp_path, header(4) + body)
    assert evidence(report, "MW101") == {"operator.attrgetter", "builtins.__import__"}


def test_picklescan_malicious19_partial_torch_load(tmp_path: Path):
    # functools.partial(torch.load, path, weights_only=False): a nested unsafe load.
    body = (ref("functools", "partial") + ref("torch.serialization", "load") + b"\x85R"
            + b"(" + ref("torch.serialization", "load") + const(("model.bin",)) + b"}N" + b"tb"
            + b")R.")
    report = scan_bytes(tmp_path, header(4) + body)
    assert evidence(report, "MW101") == {"functools.partial", "torch.serialization.load"}


def test_numpy_load_allow_pickle_and_torch_hub(tmp_path: Path):
    for module, name in (("numpy", "load"), ("torch.hub", "load"), ("torch", "load")):
        report = scan_bytes(tmp_path, call(module, name, "x.npy", True))
        assert evidence(report, "MW101") == {f"{module}.{name}"}


def test_picklescan_malicious6_payload_in_a_second_pickle(tmp_path: Path):
    import os

    class Payload:
        def __reduce__(self):
            return os.system, ("id",)

    data = pickle.dumps(["a", "b", "c"]) + pickle.dumps(Payload())
    assert evidence(scan_bytes(tmp_path, data)) == {"posix.system"}


def test_call_result_popped_still_reported(tmp_path: Path):
    # fickling lost calls whose result was POPped ("LIKELY_SAFE" on a reverse shell, 2026);
    # the unpickler made the call anyway.
    data = header(4) + ref("subprocess", "Popen") + const((["sh"],)) + b"R0" + b"N."
    (f,) = by_rule(scan_bytes(tmp_path, data), "MW101")
    assert f.details["called"] is True


@pytest.mark.parametrize("module,name", [
    ("socket", "socket"), ("urllib.request", "urlopen"), ("http.client", "HTTPSConnection"),
    ("httplib", "HTTPSConnection"), ("smtplib", "SMTP"), ("ftplib", "FTP"),
    ("webbrowser", "open"), ("shelve", "open"), ("multiprocessing", "Process"),
    ("setuptools", "setup"), ("importlib", "import_module"), ("requests", "get"),
    ("aiohttp", "ClientSession"), ("sys", "exit"), ("subprocess", "run"), ("os", "popen"),
    ("builtins", "getattr"), ("builtins", "exec"), ("marshal", "loads"), ("dill", "loads"),
    ("_posixsubprocess", "fork_exec"), ("ssl", "get_server_certificate"),
    ("asyncio.subprocess", "create_subprocess_shell"), ("pandas", "read_pickle"),
    ("linecache", "getline"), ("shutil", "rmtree"), ("tempfile", "mkstemp"),
])
def test_standard_gadgets(tmp_path: Path, module: str, name: str):
    report = scan_bytes(tmp_path, call(module, name))
    assert evidence(report, "MW101") == {f"{module}.{name}"}


@pytest.mark.parametrize("proto", [0, 1, 2])
def test_python2_module_names_are_mapped(tmp_path: Path, proto: int):
    # fix_imports: cPickle -> pickle, __builtin__ -> builtins, commands -> subprocess.
    for module, name, resolved in (("cPickle", "loads", "pickle.loads"),
                                   ("__builtin__", "eval", "builtins.eval"),
                                   ("commands", "getoutput", "subprocess.getoutput")):
        report = scan_bytes(tmp_path, call(module, name, "x", proto=proto))
        assert evidence(report, "MW101") == {resolved}


def test_nullifai_payload_before_a_broken_stream(tmp_path: Path):
    # ReversingLabs "nullifAI" (2025): the payload sits at the start and the stream is
    # broken after it; the unpickler runs the payload before it fails, scanners gave up.
    data = call("os", "system", "id", proto=0)[:-1] + b"\x00\x01garbage"
    report = scan_bytes(tmp_path, data)
    assert evidence(report, "MW101") == {"os.system"}
    assert by_rule(report, "MW105") and report.inconclusive
    assert verdict(report) == "dangerous"


def test_modelscan_85_build_setattr_then_dotted_global(tmp_path: Path):
    # protectai/modelscan#85: BUILD's slot state sets numpy.prod.a = "os" and .b = "system";
    # GLOBALs of the dotted names fetch them back as STACK_GLOBAL operands.
    data = (header(4) + b"cnumpy\nprod\n" + b"N(Va\nVos\nd\x86b" + b"N(Vb\nVsystem\nd\x86b"
            + b"0cnumpy\nprod.a\np0\ncnumpy\nprod.b\np1\n00" + b"g0\ng1\n\x93"
            + b"Vecho pwned\n\x85R.")
    report = scan_bytes(tmp_path, data)
    assert by_rule(report, "MW103")  # the operands are not string constants
    assert by_rule(report, "MW104")  # BUILD sets attributes of numpy.prod itself
    assert report.inconclusive == ()
    assert verdict(report) == "dangerous"


def test_modelscan_330_numpy_dunder_builtins(tmp_path: Path):
    # protectai/modelscan#330: STACK_GLOBAL numpy.__builtins__, then eval through it.
    body = (ref("numpy", "__builtins__") + b"\x94" + const("eval") + b"\x86R"
            + const(("__import__('os').system('id')",)) + b"R.")
    report = scan_bytes(tmp_path, header(4) + body)
    (f,) = by_rule(report, "MW101")
    assert f.evidence == "numpy.__builtins__" and f.severity == Severity.CRITICAL


def test_modelscan_331_import_module_and_getattr_chain(tmp_path: Path):
    # protectai/modelscan#331: importlib.import_module("builtins"), then getattr chains that
    # assemble "os" from pieces.
    body = (ref("importlib", "import_module") + const(("builtins",)) + b"R\x94"
            + ref("builtins", "getattr") + b"\x94h\x01h\x00" + const("str") + b"\x86R"
            + const("join") + b"\x86R" + const(("", ["o", "s"])) + b"R.")
    report = scan_bytes(tmp_path, header(4) + body)
    assert evidence(report, "MW101") == {"importlib.import_module", "builtins.getattr"}


@pytest.mark.parametrize(("module", "name"), [
    ("multiprocessing.util", "spawnv_passfds"),
    ("mlflow.projects.backend.local", "_run_entry_point"),
    ("pandas.io.parsers.readers", "read_csv"),
    ("torch.utils.collect_env", "run"),
])
def test_modelscan_338_alternative_primitives(tmp_path: Path, module: str, name: str):
    # protectai/modelscan#338: execution and exfiltration through names missing from
    # denylists, found in malicious Hugging Face models.
    report = scan_bytes(tmp_path, call(module, name, "echo pwned"))
    assert evidence(report, "MW101") == {f"{module}.{name}"}


def test_joblib_array_bytes_are_opcodes_to_pickle_load(tmp_path: Path):
    # A file that imports joblib's NumpyArrayWrapper has its array bytes skipped, as joblib
    # reads them; pickle.load reads the same bytes as opcodes. Here they are a payload: the
    # file is clean to joblib.load and runs os.system under pickle.load.
    from oracle import resolved

    payload = b"cos\nsystem\n(S'id'\ntR."
    dtype = ref("numpy", "dtype") + const(("u1", False, True)) + b"R"
    state = (b"}(" + const("shape") + const((len(payload),)) + const("order") + const("C")
             + const("dtype") + dtype + b"u")
    wrapper = ref("joblib.numpy_pickle", "NumpyArrayWrapper") + b")\x81"
    data = header(4) + wrapper + state + b"b" + payload + b"."
    assert ("os", "system") in resolved(data)
    report = scan_bytes(tmp_path, data, "model.pkl")
    assert "os.system" in evidence(report, "MW101")
    assert verdict(report) == "dangerous"
