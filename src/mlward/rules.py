"""The rule catalogue: every finding mlward reports names one of these rules.

IDs are stable and grouped by area: MW1xx pickle-family models, MW2xx other model formats,
MW3xx notebooks and code, MW4xx secrets and PII, MW5xx dependencies, MW6xx ML tooling
exposure, MW7xx provenance and integrity, MW8xx cloud storage, MW9xx policy. Each area adds
its rules in its own section below; ``mlward rules`` lists them all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from mlward._internal.redact import redact_credentials, redact_value
from mlward.findings import Finding, Location, Severity


class Rule(NamedTuple):
    id: str
    title: str
    severity: Severity
    remediation: str
    cwe: str | None = None
    doc: str = ""

    def finding(self, location: Location, message: str, *, evidence: str | None = None,
                severity: Severity | None = None,
                details: Mapping[str, Any] | None = None) -> Finding:
        """A finding of this rule; ``severity`` overrides the default where the case warrants.

        Credentials in the message, evidence and details are redacted here, once for every
        producer (:mod:`mlward._internal.redact`): a writer never sees one."""
        return Finding(
            rule_id=self.id,
            severity=self.severity if severity is None else severity,
            location=location,
            message=redact_credentials(message),
            evidence=None if evidence is None else redact_credentials(evidence),
            remediation=self.remediation,
            cwe=self.cwe,
            details=redact_value(dict(details)) if details else {},
        )


RULES: dict[str, Rule] = {}


def rule(id: str, title: str, severity: Severity, remediation: str, cwe: str | None = None,
         doc: str = "") -> Rule:
    """Register a rule in the catalogue; IDs must be unique."""
    if id in RULES:
        raise ValueError(f"duplicate rule id {id}")
    r = Rule(id, title, severity, remediation, cwe, doc)
    RULES[id] = r
    return r


# --- MW0xx: the scan itself ---------------------------------------------------------------

SCANNER_CRASH = rule(
    "MW001", "Scanner failed on this input", Severity.MEDIUM,
    "Report this file to the mlward developers; treat it as unverified until then.",
    doc="A scanner raised an unexpected error. The file is inconclusive, never clean.",
)

WAIVER_EXPIRED = rule(
    "MW002", "Waiver has expired", Severity.MEDIUM,
    "Fix the findings it covered, or renew the waiver with a new expiry date and a reason "
    "someone has reviewed.",
    doc="A waiver in the settings passed its expiry date: it no longer waives anything, and "
    "the findings it covered count again. The location is where the waiver is declared.",
)

# --- MW1xx: pickle-family models ----------------------------------------------------------

# Pickle analysis (the symbolic opcode machine, any pickle stream): MW100-MW119.

PICKLE_DANGEROUS = rule(
    "MW101", "Pickle imports a dangerous callable", Severity.CRITICAL,
    "Do not load this file. Ask its publisher for a safetensors (or other data-only) "
    "version, or rebuild the model from code and weights you trust.",
    cwe="CWE-502",
    doc="Loading a pickle imports and calls the names it contains. This name runs code or "
    "commands, starts processes, reaches files or the network, loads native code, imports "
    "modules, evaluates code strings or deserializes nested data. Critical for direct code "
    "execution, high for file, network and attribute gadgets. The evidence is the name as "
    "CPython's unpickler resolves it (Python 2 names mapped, dotted paths followed).",
)
PICKLE_UNKNOWN = rule(
    "MW102", "Pickle imports a callable that is not known to be safe", Severity.MEDIUM,
    "Check what the named callable does with its arguments before loading the file; "
    "prefer a data-only format.",
    cwe="CWE-502",
    doc="The name is neither on the dangerous list nor on the allowlist of what torch, "
    "numpy, scikit-learn and the standard library's data types put in pickles (a custom "
    "class, an unusual library, a copyreg extension code). A person should vet it.",
)
PICKLE_DYNAMIC_IMPORT = rule(
    "MW103", "Pickle imports a name computed while loading", Severity.HIGH,
    "Do not load this file: no real model builds the names it imports at load time.",
    cwe="CWE-502",
    doc="A STACK_GLOBAL whose module or name is not a string constant (built by an "
    "earlier call, or too long to keep): the imported name cannot be known without running "
    "the pickle, a classic way to hide a payload from scanners.",
)
PICKLE_INDIRECT_CALL = rule(
    "MW104", "Pickle calls a value computed while loading", Severity.MEDIUM,
    "Check the callables the pickle imports: one of them returns what is called here.",
    cwe="CWE-502",
    doc="REDUCE, NEWOBJ or OBJ applied to something other than an imported name (the "
    "result of an earlier call), or BUILD, APPEND(S), SETITEM(S) or ADDITEMS applied to an "
    "imported class or function itself (calling its methods, or setting its attributes to "
    "plant values). Ordinary data never does this; it is how gadget chains reach code.",
)
PICKLE_MALFORMED = rule(
    "MW105", "Malformed pickle stream", Severity.MEDIUM,
    "Treat the file as unverified: it is damaged, truncated or crafted to confuse scanners.",
    cwe="CWE-502",
    doc="An unknown opcode, a truncated argument, a stack underflow, a missing memo entry "
    "or a length field claiming more bytes than remain. Pickle runs opcodes in order, so "
    "everything before this point still runs and is reported; the file is inconclusive.",
)
PICKLE_TRAILING_DATA = rule(
    "MW106", "Data after the end of a pickle", Severity.LOW,
    "Check why the file carries bytes that the pickle does not use.",
    doc="Bytes after the last STOP opcode that do not form another pickle. Loaders ignore "
    "them, but they can hide a second payload for a different loader (a polyglot file).",
)
PICKLE_FRAME = rule(
    "MW107", "Pickle frame length disagrees with its contents", Severity.MEDIUM,
    "Treat the file as crafted: no pickler writes such frames. Check every name reported "
    "for it, whichever loader you use.",
    cwe="CWE-502",
    doc="A FRAME (protocol 4+) whose declared length does not match the opcodes inside: an "
    "argument or line running past the frame's end, a FRAME inside a frame, a frame running "
    "on past STOP or claiming more bytes than the file holds, a joblib array inside a frame. "
    "CPython's loaders read such frames differently (pickle.loads lets bytes run on, the C "
    "unpickler over a file without peek - torch.load's BytesIO - reads after the frame, "
    "pickle.py stops), so a payload can be visible to one reading only. mlward follows the "
    "first such place both ways and reports what either reading imports; a second one "
    "makes the file inconclusive.",
)

# --- MW2xx: other model formats and containers --------------------------------------------

# Model formats (Keras, TensorFlow, ONNX, GGUF, templates, safetensors, repositories):
# MW210-MW249.

KERAS_LAMBDA = rule(
    "MW210", "Keras Lambda layer carries Python code", Severity.HIGH,
    "Do not load this model; rebuild it from source code you trust, without Lambda layers.",
    cwe="CWE-94",
    doc="A Lambda layer whose function is marshalled Python bytecode (HDF5 and .keras "
    "files). Keras runs it when the model is loaded or called; HDF5 files ignore safe_mode "
    "(CVE-2025-9905). The finding lists the names the bytecode uses; critical when they "
    "include process, file or code-execution names such as os.system.",
)
KERAS_FOREIGN_OBJECT = rule(
    "MW211", "Keras config names a callable outside Keras", Severity.HIGH,
    "Do not load this model unless you trust and have reviewed the named module.",
    cwe="CWE-502",
    doc="A `module`, `class_name` or `registered_name` in the model config points outside "
    "the Keras and TensorFlow namespaces. Keras imports the named module when it rebuilds "
    "the model (the safe_mode bypass CVE-2025-1550). Critical for modules that run "
    "commands or code (os, subprocess, builtins, ...); medium for other custom objects "
    "(the model needs that code installed to load).",
)
KERAS_GADGET = rule(
    "MW212", "Keras config calls a Keras function that defeats safe loading", Severity.CRITICAL,
    "Do not load this model.",
    cwe="CWE-502",
    doc="The config names a Keras function that downloads files, loads other models or "
    "turns safe_mode off (keras.utils.get_file, keras.models.load_model, "
    "keras.config.enable_unsafe_deserialization: CVE-2025-8747, CVE-2025-9906).",
)
KERAS_EXTERNAL_LOAD = rule(
    "MW213", "Keras layer loads an external file", Severity.HIGH,
    "Check the path the layer loads; do not load the model where that path can be "
    "controlled by someone else.",
    cwe="CWE-829",
    doc="A TFSMLayer (which loads and later runs an external SavedModel, CVE-2026-1462) or "
    "a lookup layer whose vocabulary is a file path.",
)
KERAS_MALFORMED = rule(
    "MW214", "Keras model file is malformed", Severity.MEDIUM,
    "Re-download the model from its source and compare its hash with the published one.",
    doc="The model config is missing, is not valid JSON or is nested too deep to judge; the "
    "file is inconclusive.",
)
HDF5_EXTERNAL = rule(
    "MW215", "HDF5 file refers to other files", Severity.HIGH,
    "Do not open this file where the paths it names could exist.",
    cwe="CWE-73",
    doc="An external link, a dataset stored in external files or a virtual dataset whose "
    "sources are other files: opening the model reads those files.",
)
TF_PYTHON_OP = rule(
    "MW220", "TensorFlow graph runs Python", Severity.CRITICAL,
    "Do not load this model; a PyFunc op calls a Python function by name at run time.",
    cwe="CWE-94",
    doc="PyFunc, EagerPyFunc or PyFuncStateless in a graph or in a function of its library.",
)
TF_FILE_OP = rule(
    "MW221", "TensorFlow graph reads or writes files", Severity.HIGH,
    "Review the node: a model that reads or writes files when it runs can leak or plant data.",
    cwe="CWE-73",
    doc="Ops such as ReadFile, WriteFile, MatchingFiles, DeleteFile or file-backed readers "
    "in any graph or function.",
)
TF_NETWORK_OP = rule(
    "MW222", "TensorFlow graph reaches the network", Severity.HIGH,
    "Review the node: a model has no reason to open connections when it runs.",
    cwe="CWE-918",
    doc="RPC and remote-execution ops in any graph or function.",
)
TF_SAVE_PATH = rule(
    "MW223", "TensorFlow Save/Restore op uses an absolute or escaping path", Severity.HIGH,
    "Do not run this graph; it writes or reads checkpoints outside its own folder.",
    cwe="CWE-22",
    doc="A Save/Restore op whose file-name input is a constant absolute path or a path with "
    "'..'.",
)
TF_MALFORMED = rule(
    "MW224", "TensorFlow protobuf is malformed", Severity.MEDIUM,
    "Re-download the model from its source and compare its hash with the published one.",
    doc="saved_model.pb or a frozen graph that does not parse; the file is inconclusive.",
)
ONNX_EXTERNAL_PATH = rule(
    "MW230", "ONNX external data path escapes the model folder", Severity.CRITICAL,
    "Do not load this model; its tensors would be read from files outside its folder.",
    cwe="CWE-22",
    doc="An external-data location that is absolute, contains '..', or resolves (through "
    "symbolic links) outside the model's folder (CVE-2024-27318, CVE-2024-27319).",
)
ONNX_CUSTOM_DOMAIN = rule(
    "MW231", "ONNX model uses custom operators", Severity.MEDIUM,
    "Make sure the custom-op library the model needs comes from a source you trust.",
    cwe="CWE-829",
    doc="A node in a domain other than the standard ONNX ones (and com.microsoft): loading "
    "the model needs a native custom-op library. High for onnxruntime-extensions Python "
    "operators (PyOp in ai.onnx.contrib), which call Python code.",
)
ONNX_LOCAL_FUNCTION = rule(
    "MW232", "ONNX model defines local functions", Severity.LOW,
    "Review the functions: they are graphs the model defines for itself.",
    doc="Model-local functions (ModelProto.functions) are listed for review.",
)
ONNX_MALFORMED = rule(
    "MW233", "ONNX model is malformed", Severity.MEDIUM,
    "Re-download the model from its source and compare its hash with the published one.",
    doc="The protobuf does not parse; the file is inconclusive.",
)
GGUF_MALFORMED = rule(
    "MW240", "GGUF header or metadata is malformed", Severity.HIGH,
    "Do not load this file: loaders that trust these lengths read out of bounds.",
    cwe="CWE-787",
    doc="A count, length, type or tensor offset in the GGUF header that does not fit the "
    "file: the memory-safety bugs of GGUF loaders start here.",
)
TEMPLATE_ESCAPE = rule(
    "MW241", "Jinja template tries to escape its sandbox", Severity.CRITICAL,
    "Do not serve this model's template; replace it with a known-good chat template.",
    cwe="CWE-1336",
    doc="A chat or other Jinja template reaches Python internals: dunder or private "
    "attributes (__class__, __globals__, __subclasses__, ...), directly, through the `attr` "
    "filter or through strings joined to build the name (CVE-2024-34359, "
    "llama-cpp-python; the same in vLLM and SGLang).",
)
TEMPLATE_SUSPICIOUS = rule(
    "MW242", "Jinja template uses unusual constructs", Severity.MEDIUM,
    "Review the template; chat templates need none of these.",
    cwe="CWE-1336",
    doc="Imports or includes, attribute access on Jinja globals used in escape chains "
    "(cycler, joiner, lipsum, self, request, config, ...), attribute names computed at run "
    "time, or a template that does not parse.",
)
SAFETENSORS_INVALID = rule(
    "MW243", "safetensors header is invalid", Severity.MEDIUM,
    "Do not load this file; re-download it from its source.",
    cwe="CWE-400",
    doc="A header length beyond the file, malformed or oversized JSON, unknown dtypes, "
    "offsets out of range, overlapping or with gaps, or sizes that do not match the shape: "
    "loaders can be driven to exhaust memory. High when a length or offset points past the "
    "end of the file.",
)
REPO_REMOTE_CODE = rule(
    "MW244", "Model repository ships code that trust_remote_code would run", Severity.HIGH,
    "Load the model without trust_remote_code, or review every listed file first.",
    cwe="CWE-94",
    doc="config.json or tokenizer_config.json has an `auto_map`: transformers imports the "
    "named Python files from the repository (or from another repository) when "
    "trust_remote_code=True. The finding lists the files.",
)
REPO_LINK_OUTSIDE = rule(
    "MW245", "Model repository links outside itself", Severity.HIGH,
    "Remove the link; a repository should hold its own files.",
    cwe="CWE-59",
    doc="A symbolic link in the repository that points outside its folder: a loader follows "
    "it and reads whatever is there.",
)

ENCODED_PAYLOAD = rule(
    "MW246", "Pickle or code hidden in an encoded string", Severity.MEDIUM,
    "Find out which program decodes this value and what it does with it; store data, not "
    "serialized objects, in configs and metadata.",
    cwe="CWE-502",
    doc="A config value (JSON, YAML), safetensors or ONNX metadata value holds a pickle, a "
    "compressed stream or archive, or marshalled Python bytecode, as base64 or hex. The "
    "decoded bytes are judged like a file (a payload in the pickle is its own finding); "
    "bytecode is high, critical when it names commands, code evaluation or files.",
)

# Containers (archives and compressed streams): MW250-MW269.

ARCHIVE_DAMAGED = rule(
    "MW250", "Archive member damaged", Severity.MEDIUM,
    "Re-download the file from its source and compare its hash with the published one.",
    cwe="CWE-354",
    doc="A member's CRC or size does not match its header, or the archive is truncated or "
    "its directory unreadable. mlward still reads and judges what it can (a lenient loader "
    "may accept the member as it is); the damage itself is suspicious.",
)
ARCHIVE_BOMB = rule(
    "MW251", "Decompression bomb", Severity.HIGH,
    "Do not extract or load this file; obtain the model from a trusted source.",
    cwe="CWE-409",
    doc="A member expands far beyond its compressed size (above the ratio limit and past "
    "16 MiB), claims an absurd size, or shares its bytes with other members (overlapping "
    "zip entries). Reading stops at the bomb; the member is inconclusive.",
)
ARCHIVE_PATH_TRAVERSAL = rule(
    "MW252", "Archive member path escapes the extraction folder", Severity.HIGH,
    "Do not extract this archive; if you must, use an extractor that refuses such paths "
    "(Python's tarfile filter='data').",
    cwe="CWE-22",
    doc="A member name is absolute, has a drive letter or contains '..' (zip-slip, "
    "tar-slip): extracting it writes outside the target folder.",
)
ARCHIVE_LINK = rule(
    "MW253", "Archive member is a link", Severity.HIGH,
    "Do not extract this archive with a tool that creates links.",
    cwe="CWE-59",
    doc="A symbolic or hard link member. Severity high when the target is absolute or climbs "
    "out of the archive, medium otherwise: extraction through a link writes where the link "
    "points.",
)
ARCHIVE_SPECIAL_FILE = rule(
    "MW254", "Archive member is a device or special file", Severity.MEDIUM,
    "Do not extract this archive as root; model archives have no reason to hold devices.",
    cwe="CWE-59",
    doc="A character or block device, or a FIFO, in a tar archive.",
)
ARCHIVE_TOO_DEEP = rule(
    "MW255", "Containers nested too deep", Severity.MEDIUM,
    "Unpack the layers by hand with care; deep nesting is a common way to hide content.",
    cwe="CWE-409",
    doc="Archives or compressed streams nested past the depth limit; the inner content was "
    "not examined and the file is inconclusive.",
)
ARCHIVE_DUPLICATE_MEMBER = rule(
    "MW256", "Archive has duplicate member names", Severity.MEDIUM,
    "Treat the file as tampered with; loaders differ on which copy they read.",
    doc="Two members with the same name, or names that differ only in case (PyTorch's reader "
    "looks names up regardless of case): one tool may check one copy while the loader reads "
    "the other. mlward scans every copy. High when the copies differ.",
)
ZIP_READERS_DISAGREE = rule(
    "MW257", "Zip readers disagree on this archive", Severity.HIGH,
    "Treat the file as crafted to evade scanners: do not load it; ask the publisher for a "
    "clean copy and compare its hash.",
    cwe="CWE-436",
    doc="Python's zipfile, PyTorch's reader and streaming readers (which walk the local "
    "headers) would read different members or different bytes from this archive: local and "
    "central headers that disagree on a name, size, method or encryption flag, members only "
    "the local headers hold, two central directories, an encryption flag on plain data. "
    "mlward judges every interpretation; the disagreement itself has no innocent cause.",
)
ARCHIVE_OUTSIDE_DATA = rule(
    "MW258", "Archive holds data outside its members", Severity.MEDIUM,
    "Check what the extra bytes are; a model archive written by its framework has none.",
    cwe="CWE-436",
    doc="Bytes before the first member, between members or after the end of the archive, "
    "which no member covers: a loader that reads the file another way (a pickle loader "
    "reading from byte 0, a streaming reader) may read them. They are judged by content.",
)

# --- MW3xx: notebooks and code ------------------------------------------------------------

CODE_PICKLE_LOAD = rule(
    "MW301", "Code deserialises with pickle, joblib, dill or cloudpickle", Severity.MEDIUM,
    "Load only files you produced or verified (mlward scan them first); prefer safetensors, "
    "ONNX or skops for models and Parquet/Arrow for data.",
    cwe="CWE-502",
    doc="A call such as pickle.load, joblib.load, dill.loads or pandas.read_pickle runs any "
    "code the loaded file carries.",
)
CODE_TORCH_LOAD = rule(
    "MW302", "torch.load without weights_only=True", Severity.MEDIUM,
    "Pass weights_only=True (the default since PyTorch 2.6) or load safetensors instead.",
    cwe="CWE-502",
    doc="torch.load with weights_only=False, or on PyTorch before 2.6 without the argument, "
    "unpickles the checkpoint and runs code it carries. Explicit weights_only=False is high.",
)
CODE_NUMPY_PICKLE = rule(
    "MW303", "numpy.load with allow_pickle=True", Severity.MEDIUM,
    "Keep allow_pickle=False (the default) and store object arrays in a safe format.",
    cwe="CWE-502",
    doc="numpy.load(..., allow_pickle=True) unpickles object arrays from the file.",
)
CODE_YAML_LOAD = rule(
    "MW304", "yaml.load without a safe loader", Severity.MEDIUM,
    "Use yaml.safe_load or Loader=yaml.SafeLoader.",
    cwe="CWE-502",
    doc="yaml.load with the full, unsafe or default loader (and yaml.unsafe_load) can build "
    "arbitrary Python objects from the document.",
)
CODE_REMOTE_CODE = rule(
    "MW305", "trust_remote_code=True", Severity.HIGH,
    "Review the repository's Python files and pin a revision (revision=<commit>), or use a "
    "model that needs no custom code.",
    cwe="CWE-829",
    doc="Hugging Face loaders with trust_remote_code=True download and run Python code from "
    "the model repository.",
)
CODE_KERAS_UNSAFE = rule(
    "MW306", "Keras loading with safe_mode=False", Severity.MEDIUM,
    "Keep safe_mode=True (the default) and avoid Lambda layers in shared models.",
    cwe="CWE-502",
    doc="safe_mode=False lets a .keras file deserialise Lambda layers, that is run its code.",
)
CODE_EVAL = rule(
    "MW307", "eval or exec", Severity.MEDIUM,
    "Parse data with json or ast.literal_eval; do not evaluate strings as code.",
    cwe="CWE-95",
    doc="eval() and exec() run whatever string they are given.",
)
CODE_SHELL = rule(
    "MW308", "Shell command execution", Severity.MEDIUM,
    "Call subprocess with a list of arguments and shell=False.",
    cwe="CWE-78",
    doc="os.system, os.popen and subprocess with shell=True pass a string to the shell.",
)
CODE_TLS_OFF = rule(
    "MW309", "TLS certificate verification disabled", Severity.MEDIUM,
    "Remove verify=False; point REQUESTS_CA_BUNDLE or verify= at your CA bundle instead.",
    cwe="CWE-295",
    doc="requests/httpx calls with verify=False accept any certificate, so a network attacker "
    "can swap the model or data being downloaded.",
)
SHELL_PIPE_TO_SHELL = rule(
    "MW310", "Downloaded script piped into a shell", Severity.HIGH,
    "Download the script, check it (hash or signature), then run the saved copy.",
    cwe="CWE-494",
    doc="A shell magic or command such as `!curl URL | sh` runs whatever the server sends.",
)
SHELL_PIP_UNSAFE = rule(
    "MW311", "Package installed from a URL, over plain HTTP or from an untrusted host",
    Severity.MEDIUM,
    "Install pinned versions from your package index over HTTPS (pip install pkg==1.2 "
    "--require-hashes); never use --trusted-host or http:// indexes.",
    cwe="CWE-494",
    doc="`pip install` from a URL or git, from an extra index (dependency confusion), over "
    "plain http or with --trusted-host (both high) installs code nobody pinned.",
)
NOTEBOOK_DEPENDENCIES = rule(
    "MW312", "Dependencies declared by install commands", Severity.INFO,
    "Move them to a pinned requirements file and check it with mlward.",
    doc="`%pip install`, `!pip install` and `!conda install` lines, listed in the finding's "
    "details (requirements) for the dependency checks.",
)
NOTEBOOK_MALFORMED = rule(
    "MW313", "Notebook is not valid JSON or not a notebook", Severity.LOW,
    "Open and re-save it with Jupyter, or restore it from version control.",
    doc="The file looks like a notebook but does not parse; only a plain-text secrets pass "
    "was made over it.",
)

# --- MW4xx: secrets and PII ---------------------------------------------------------------

SECRET_TOKEN = rule(
    "MW401", "API token or key of a known provider", Severity.HIGH,
    "Revoke the key at the provider now, remove it (and notebook outputs that print it) and "
    "load keys from the environment or a secrets manager.",
    cwe="CWE-798",
    doc="A token with a provider's published format: AI providers (Hugging Face, OpenAI, "
    "Anthropic, Perplexity, W&B, Cohere, Replicate, LangSmith, Pinecone, ...), code hosting and "
    "registries (GitHub, npm, PyPI, Postman, Linear, Notion, Terraform Cloud), cloud (AWS, "
    "Google, Azure AD, DigitalOcean, Doppler, Cloudflare, Heroku, PlanetScale, Grafana), "
    "messaging and payments (SendGrid, Mailgun, Stripe, Slack, ...). Where the provider "
    "defines a checksum or structure (GitHub, npm, Grafana, Cloudflare: CRC32; PyPI: the "
    "macaroon), a value failing it is not reported and one passing it says so in "
    "details.checked. Stripe test-mode keys are reported at low severity. The report shows "
    "only a short prefix and a hash, never the token.",
)
SECRET_KEYWORD = rule(
    "MW402", "Password or secret assigned in code or config", Severity.MEDIUM,
    "Move the value to the environment or a secrets manager and rotate it.",
    cwe="CWE-798",
    doc="A literal assigned to a secret-sounding name (password=, api_key=, secret: ...), "
    "keyword arguments included. Prose (three words or more) and names that only refer to a "
    "secret (secret_name, password_file, api_key_env) are not reported.",
)
SECRET_URI = rule(
    "MW403", "Password embedded in a connection or tracking URI", Severity.HIGH,
    "Rotate the password; pass credentials through the environment (e.g. PGPASSWORD, "
    "MLFLOW_TRACKING_PASSWORD) instead of the URI.",
    cwe="CWE-798",
    doc="A database, MLflow tracking or other URI of the form scheme://user:password@host.",
)
SECRET_PRIVATE_KEY = rule(
    "MW404", "Private key or cloud service-account key", Severity.CRITICAL,
    "Revoke the key (GCP: delete the service-account key; Azure: rotate the storage key) and "
    "use workload identity or a secrets manager.",
    cwe="CWE-321",
    doc="A PEM private key, a GCP service-account JSON key or an Azure storage account key.",
)
SECRET_ENTROPY = rule(
    "MW405", "Random-looking secret assigned to a secret-named variable", Severity.HIGH,
    "Revoke the credential where it was issued, remove it and load it from the environment "
    "or a secrets manager.",
    cwe="CWE-798",
    doc="A value with the entropy of a random key (Base64 or hex, judged against random "
    "strings of its length) assigned to, keyed by or passed as a secret name (token, api_key, "
    "client_secret, password, an Authorization header). Hashes, IDs, sequences, images, "
    "paths and prose are not reported, nor the language-model senses of token (pad_token, "
    "max_tokens).",
)
PII_FOUND = rule(
    "MW410", "Personal data in notebook output or text cell", Severity.LOW,
    "Clear the outputs (mlward notebook clean --strip-outputs) or redact them (--redact); "
    "use synthetic or masked data in shared notebooks.",
    cwe="CWE-359",
    doc="Emails, phone numbers, payment cards (Luhn-checked), IBANs (checksum), US SSNs and "
    "public IP addresses, counted per output with redacted samples. Severity rises with the "
    "count and with card, SSN and IBAN numbers.",
)

# --- MW5xx: dependencies ------------------------------------------------------------------

VULNERABLE_DEPENDENCY = rule(
    "MW501", "Dependency version has known vulnerabilities", Severity.HIGH,
    "Upgrade to the version the finding names (the smallest that clears every known "
    "advisory), or to the newest release.",
    cwe="CWE-1395",
    doc="A pinned, locked or installed version that an OSV advisory affects (PEP 440 "
    "matching over the advisory's ranges and version list). One finding per flaw, with all "
    "its ids (GHSA, PYSEC, CVE), the fixed versions and the smallest safe upgrade. Severity "
    "comes from the CVSS v3 vector, else the database's rating; unrated advisories are high.",
)
VULNERABLE_RANGE = rule(
    "MW502", "Unpinned requirement allows vulnerable versions", Severity.HIGH,
    "Pin an exact version that no advisory affects (or raise the lower bound past the fix) "
    "and lock the environment.",
    cwe="CWE-1395",
    doc="A requirement without an exact version (a range, or no bound) admits versions that "
    "an advisory affects; the finding lists which of the versions the advisory names fall "
    "inside the range. Severity is the advisory's.",
)
UNRESOLVABLE_DEPENDENCY = rule(
    "MW503", "Dependency version cannot be checked", Severity.INFO,
    "Pin the package by name and version from an index, or check the referenced source "
    "yourself.",
    cwe="CWE-1395",
    doc="An editable install, a URL, path or VCS reference, or a lock entry without a "
    "version: no version is known, so no advisory can be matched. Listed, never dropped.",
)


# --- MW6xx: ML tooling exposure -----------------------------------------------------------

JUPYTER_NO_AUTH = rule(
    "MW601", "Jupyter server without authentication", Severity.CRITICAL,
    "Set a token or password (the defaults generate a token); never set them to empty.",
    cwe="CWE-306",
    doc="A Jupyter config (jupyter_server_config / jupyter_notebook_config, .py or .json) or "
    "command line sets an empty token and password: anyone who reaches the port runs code. "
    "High instead of critical when the server listens on localhost only.",
)
JUPYTER_PUBLIC = rule(
    "MW602", "Jupyter server listens on all interfaces", Severity.MEDIUM,
    "Bind to 127.0.0.1 and reach the server through an SSH tunnel or an authenticating "
    "proxy.",
    cwe="CWE-1327",
    doc="`ip` set to 0.0.0.0, `*` or an empty string.",
)
JUPYTER_WEAK_ORIGIN = rule(
    "MW603", "Jupyter cross-origin protection disabled", Severity.MEDIUM,
    "Remove allow_origin='*' and disable_check_xsrf=True.",
    cwe="CWE-352",
    doc="`allow_origin` set to `*` (or a regex matching everything) or `disable_check_xsrf` "
    "true: any web page the user visits can drive the server's API.",
)
JUPYTER_ROOT = rule(
    "MW604", "Jupyter server allowed to run as root", Severity.LOW,
    "Run the server as an unprivileged user.",
    cwe="CWE-250",
    doc="`allow_root` true or `--allow-root` on the command line.",
)
MLFLOW_EXPOSED = rule(
    "MW610", "MLflow server exposed without authentication", Severity.HIGH,
    "Bind to 127.0.0.1, or run `mlflow server --app-name basic-auth` behind TLS, or put an "
    "authenticating proxy in front.",
    cwe="CWE-306",
    doc="`mlflow server` or `mlflow ui` with --host 0.0.0.0 (in a script, Dockerfile, "
    "compose file or Kubernetes manifest) and no --app-name auth app: anyone who reaches it "
    "reads and writes experiments, models and artifacts, and MLflow's path traversal and "
    "deserialisation flaws become remote.",
)
MLFLOW_ARTIFACTS = rule(
    "MW611", "MLflow server exposes artifacts or its file store", Severity.MEDIUM,
    "Use a database backend and a separate artifact store with its own access control; do "
    "not proxy artifacts from an unauthenticated server.",
    cwe="CWE-552",
    doc="A publicly bound MLflow server started with --serve-artifacts (the default since "
    "2.0 unless --no-serve-artifacts) without an auth app, or with a local file store "
    "(file: or a plain path) as its backend.",
)
RAY_EXPOSED = rule(
    "MW620", "Ray dashboard or client port exposed", Severity.CRITICAL,
    "Bind the dashboard to 127.0.0.1 and keep ports 8265 and 10001 off public networks; "
    "Ray has no authentication.",
    cwe="CWE-306",
    doc="`ray start --dashboard-host=0.0.0.0`, `ray.init(dashboard_host='0.0.0.0')`, or a "
    "container publishing 8265 (dashboard and jobs API) or 10001 (Ray client): the jobs API "
    "runs any command submitted to it (CVE-2023-48022, 'ShadowRay').",
)
TOOL_PUBLIC = rule(
    "MW630", "ML tool UI bound to all interfaces", Severity.MEDIUM,
    "Bind to 127.0.0.1 and add authentication before exposing it.",
    cwe="CWE-1327",
    doc="TensorBoard (--bind_all, --host 0.0.0.0), Streamlit (--server.address 0.0.0.0) or "
    "Gradio (server_name='0.0.0.0') listening on every interface without authentication.",
)
GRADIO_SHARE = rule(
    "MW631", "Gradio app published through a public share link", Severity.MEDIUM,
    "Remove share=True, or set auth=... so that the public link asks for a login.",
    cwe="CWE-284",
    doc="launch(share=True) opens a public *.gradio.live tunnel to the app; without auth= "
    "anyone with the link uses it.",
)
PUBLISHED_PORT = rule(
    "MW640", "Container or service publishes an ML tool port", Severity.MEDIUM,
    "Publish the port on 127.0.0.1 only (\"127.0.0.1:8888:8888\"), or put an authenticating "
    "proxy in front.",
    cwe="CWE-1327",
    doc="A docker-compose `ports` entry, or a Kubernetes Service (NodePort or LoadBalancer) or "
    "Ingress, that exposes a port an ML tool uses (8888 Jupyter, 5000 MLflow, 8265 and 10001 "
    "Ray, 6006 TensorBoard, 7860 Gradio, 8501 Streamlit) with nothing authenticating in "
    "front. High for Ray and Jupyter ports.",
)
LIVE_UNAUTHENTICATED = rule(
    "MW650", "Live ML tool answers its API without authentication", Severity.HIGH,
    "Put authentication in front of the server (tool auth app, token, or proxy) and restrict "
    "who can reach it.",
    cwe="CWE-306",
    doc="`mlward probe` read an API that changes or runs things (MLflow experiments, Jupyter "
    "kernels, Ray jobs) with a plain GET and no credentials. Critical for Jupyter and Ray, "
    "whose APIs run code.",
)
LIVE_TOOL = rule(
    "MW651", "Live ML tool identified", Severity.INFO,
    "Make sure this server is meant to be reachable from where the probe ran.",
    doc="`mlward probe` recognised the tool and, where it tells, its version; the version is "
    "then matched against the vulnerability data (MW501).",
)


# --- MW7xx: provenance and integrity ------------------------------------------------------


# Bill of materials (``mlward bom``, ``bom verify``, ``bom diff``): MW750-MW779.

UNPINNED_HUB_MODEL = rule(
    "MW751", "Model pulled from a hub without a pinned revision", Severity.MEDIUM,
    "Pass the commit hash of the revision you reviewed (`revision=\"<40-hex commit>\"`, "
    "`torch.hub.load(\"owner/repo:<commit>\", ...)`, `models:/name/<version>`): a branch, a "
    "tag or no revision at all gives whatever the hub holds on the day the code runs.",
    cwe="CWE-494",
    doc="Code or a notebook loads a model by name from a model hub (Hugging Face "
    "`from_pretrained`, `hf_hub_download`, `snapshot_download`, `pipeline(model=...)`, "
    "`torch.hub.load`, an MLflow `models:/` URI) without naming an immutable revision. The "
    "model can change under the project without any file here changing, so no scan, "
    "manifest or BOM of this project covers what actually runs. A branch or tag name is "
    "reported at low severity: it can be moved.",
)

BOM_FILE_CHANGED = rule(
    "MW750", "File changed since the BOM was made", Severity.HIGH,
    "Find out who changed it and why (`mlward ledger log`); if the change is intended, "
    "make a new BOM (`mlward bom`) and review `mlward bom diff` before accepting it.",
    cwe="CWE-345",
    doc="`mlward bom verify` re-hashed a model or dataset file the BOM lists and its digest "
    "differs: the model or data is not what the BOM recorded.",
)

BOM_FILE_MISSING = rule(
    "MW752", "File listed in the BOM has disappeared", Severity.HIGH,
    "Restore the file, or make a new BOM if it was removed on purpose.",
    doc="A model or dataset file the BOM lists is no longer where the BOM says it is.",
)

BOM_FILE_ADDED = rule(
    "MW753", "File appeared that the BOM does not list", Severity.MEDIUM,
    "Review the new file (`mlward scan`), then make a new BOM that includes it.",
    doc="A file appeared inside a model folder or dataset the BOM lists: the component now "
    "holds something the BOM does not account for.",
)

BOM_SIGNATURE_INVALID = rule(
    "MW754", "Signature no longer verifies", Severity.HIGH,
    "Treat the signed content as untrusted until it is signed again by a trusted key.",
    cwe="CWE-347",
    doc="A signature the BOM recorded as valid (a DSSE envelope, an OpenSSF model signing "
    "bundle, or the BOM's own envelope) no longer verifies with the trusted keys.",
)

BOM_LEDGER_MISSING = rule(
    "MW755", "BOM's ledger checkpoint is not in the ledger", Severity.HIGH,
    "Run `mlward ledger verify`: the ledger was rolled back, replaced or edited since the "
    "BOM was made, or the BOM comes from another project's ledger.",
    cwe="CWE-345",
    doc="The BOM is bound to the audit ledger by a signed checkpoint (tree size and root). "
    "The ledger here no longer has a tree of that size with that root.",
)

BOM_COMPONENT_INCOMPLETE = rule(
    "MW756", "BOM component is incomplete", Severity.LOW,
    "Read the reason: fix the malformed model card or lock file, install the missing "
    "extra, or make the unreadable file readable, then make the BOM again.",
    doc="Something about the component could not be read (a malformed model card, an "
    "unparsable lock file, an unreadable model): the BOM holds what is known, marked "
    "`mlward:incomplete` with the reason.",
)

BOM_COMPONENT_ADDED = rule(
    "MW760", "Component added", Severity.INFO,
    "Review the new model, dataset, library or service before it ships.",
    doc="`mlward bom diff`: a component the old BOM did not have.",
)

BOM_COMPONENT_REMOVED = rule(
    "MW761", "Component removed", Severity.LOW,
    "Check that the removal was intended.",
    doc="`mlward bom diff`: a component of the old BOM is not in the new one.",
)

BOM_DIGEST_CHANGED = rule(
    "MW762", "Model or dataset content changed", Severity.MEDIUM,
    "Review the change: a model or dataset edited in place has a new digest and should have "
    "a new lineage record and scan.",
    cwe="CWE-345",
    doc="`mlward bom diff`: a file of a model or dataset has another digest in the new BOM.",
)

BOM_NEW_VULNERABILITY = rule(
    "MW763", "New known vulnerability", Severity.HIGH,
    "Upgrade the library to a fixed version (see the advisory).",
    cwe="CWE-1395",
    doc="`mlward bom diff`: a vulnerability the new BOM lists that the old one did not.",
)

BOM_LICENSE_CHANGED = rule(
    "MW764", "License changed", Severity.MEDIUM,
    "Check that the new license allows the project's use.",
    doc="`mlward bom diff`: a component's declared license differs between the two BOMs.",
)

BOM_VERDICT_CHANGED = rule(
    "MW765", "Scan verdict changed", Severity.MEDIUM,
    "Read the new scan report for that component.",
    doc="`mlward bom diff`: a model's or file's scan verdict differs (high severity when it "
    "got worse).",
)

BOM_VERSION_CHANGED = rule(
    "MW766", "Component version changed", Severity.INFO,
    "Review the upgrade or downgrade.",
    doc="`mlward bom diff`: a library, hub model or service has another version or revision.",
)


# Audits and forensics (`mlward audit`): MW780-MW799.

AUDIT_STEP_FAILED = rule(
    "MW780", "An audit step failed to run", Severity.MEDIUM,
    "Run the step's own command to see the error (`mlward scan`, `mlward deps`, ...); the "
    "snapshot is marked incomplete until it runs.",
    doc="One of the checks `mlward audit` runs raised an unexpected error. The other steps "
    "still ran; the snapshot is recorded, marked incomplete, with the error as the reason.",
)
AUDIT_UNRECORDED_CHANGE = rule(
    "MW781", "Model or data file changed with no ledger record of who changed it",
    Severity.MEDIUM,
    "Find out who changed the file and why (`mlward ledger history PATH`); record changes as "
    "they happen with `mlward watch`, or through `mlward manifest`/`lineage`/`sign`.",
    doc="Between the previous audit snapshot and this one, a model or data file was added, "
    "modified, renamed or removed, and no ledger entry in between names the file or its "
    "content (no watch event, manifest, signature, lineage or scan of it). The change is "
    "real (the digests differ); who made it is unknown to the ledger.",
)
AUDIT_MANIFEST_CHANGED = rule(
    "MW782", "Files differ from their recorded manifest", Severity.HIGH,
    "Check the changes (`mlward manifest verify MANIFEST`); if they are intended, record a "
    "new manifest, and retrain or re-verify what was built from the data.",
    cwe="CWE-353",
    doc="A manifest in the project (`mlward manifest create`) no longer matches the files it "
    "covers: a file was added, removed, modified or renamed since it was recorded.",
)
AUDIT_LINEAGE_BROKEN = rule(
    "MW783", "A model's chain of provenance does not verify", Severity.HIGH,
    "Run `mlward lineage verify MODEL` to see the broken link; do not ship or retrain from "
    "the model until it verifies.",
    cwe="CWE-345",
    doc="For a model with a lineage statement (MODEL.lineage.json), one link of the chain "
    "failed: the statement's signature, the model's files, or an input manifest and the data "
    "it covers.",
)


# --- MW8xx: cloud storage and ML infrastructure -------------------------------------------
# MW800-MW849: live checks (`mlward cloud aws|gcp|azure`), read-only API calls.

S3_PUBLIC_ACL = rule(
    "MW800", "S3 bucket ACL grants access to everyone", Severity.HIGH,
    "Remove the AllUsers/AuthenticatedUsers grants (`aws s3api put-bucket-acl --acl "
    "private`), set Object Ownership to BucketOwnerEnforced, and turn on Block Public Access.",
    cwe="CWE-732",
    doc="The bucket ACL grants a permission to the AllUsers or AuthenticatedUsers group (any "
    "AWS account). Medium when Block Public Access ignores public ACLs (the grant has no "
    "effect today but comes back the day that setting is turned off).",
)
S3_PUBLIC_POLICY = rule(
    "MW801", "S3 bucket policy allows any principal without a restricting condition",
    Severity.HIGH,
    "Name the principals that need access, or add a condition (aws:SourceVpce, aws:SourceIp, "
    "aws:PrincipalOrgID, aws:SourceArn/aws:SourceAccount) to the statement.",
    cwe="CWE-732",
    doc="An Allow statement with `Principal: \"*\"` (or `{\"AWS\": \"*\"}`) and no condition "
    "that narrows who matches. Medium when Block Public Access restricts public buckets.",
)
S3_ACCOUNT_BPA_OFF = rule(
    "MW802", "S3 Block Public Access is not fully on for the account", Severity.MEDIUM,
    "Turn on all four Block Public Access settings for the account (S3 console > Block "
    "Public Access settings for this account, or `aws s3control put-public-access-block`).",
    cwe="CWE-284",
    doc="One of BlockPublicAcls, IgnorePublicAcls, BlockPublicPolicy, RestrictPublicBuckets "
    "is off (or never set) at the account level, so any bucket can be made public by one "
    "ACL or policy change.",
)
S3_BUCKET_BPA_OFF = rule(
    "MW803", "S3 Block Public Access is not fully on for the bucket", Severity.MEDIUM,
    "Turn on all four Block Public Access settings on the bucket "
    "(`aws s3api put-public-access-block`).",
    cwe="CWE-284",
    doc="Reported when neither the account nor the bucket blocks public access fully.",
)
S3_NO_ENCRYPTION = rule(
    "MW804", "S3 bucket has no default encryption", Severity.LOW,
    "Configure default encryption (SSE-KMS with a customer-managed key for model and data "
    "buckets).",
    cwe="CWE-311",
    doc="GetBucketEncryption returns no configuration. AWS encrypts new objects with SSE-S3 "
    "since 2023, so on AWS this means an old bucket; on S3-compatible stores (MinIO, Ceph) "
    "objects are stored unencrypted.",
)
S3_MODEL_NO_VERSIONING = rule(
    "MW805", "Bucket holding models or datasets has versioning off", Severity.MEDIUM,
    "Enable versioning (`aws s3api put-bucket-versioning --versioning-configuration "
    "Status=Enabled`) so an overwritten model can be recovered and compared.",
    cwe="CWE-693",
    doc="A bucket where mlward found model files or datasets (by content), or that a model "
    "registry, DVC remote or SageMaker model points to, keeps no versions: a replaced "
    "checkpoint leaves no trace.",
)
S3_MODEL_NO_OBJECT_LOCK = rule(
    "MW806", "Bucket holding models has no object lock", Severity.LOW,
    "Create model buckets with Object Lock (governance mode and a retention period) so "
    "released models cannot be overwritten or deleted.",
    cwe="CWE-693",
)
S3_NO_ACCESS_LOGGING = rule(
    "MW807", "S3 bucket has no server access logging", Severity.LOW,
    "Enable server access logging (or CloudTrail data events) to a separate log bucket.",
    cwe="CWE-778",
    doc="Without access logs nobody can tell who downloaded a model or dataset.",
)
S3_CORS_ANY = rule(
    "MW808", "S3 bucket CORS allows any origin", Severity.MEDIUM,
    "List the origins that need browser access instead of `*`.",
    cwe="CWE-942",
)
S3_CROSS_ACCOUNT = rule(
    "MW809", "S3 bucket policy grants access to another AWS account", Severity.MEDIUM,
    "Check that the account is meant to read this bucket; list it in [cloud] "
    "trusted_accounts once reviewed, or restrict the grant to the actions it needs.",
    cwe="CWE-284",
    doc="An Allow statement names an account that is neither the scanned account, one of the "
    "organisation's accounts (when they can be listed) nor a trusted account.",
)
S3_WEBSITE = rule(
    "MW810", "Static website hosting on a bucket holding models or artifacts", Severity.MEDIUM,
    "Turn off website hosting on artifact buckets; serve sites from a bucket of their own.",
    cwe="CWE-552",
)
S3_REPLICATION_EXTERNAL = rule(
    "MW811", "Bucket replicates to an account outside the organisation", Severity.HIGH,
    "Replicate only to accounts you control, or list the destination account in [cloud] "
    "trusted_accounts once reviewed.",
    cwe="CWE-200",
)
OBJECT_PUBLIC_ACL = rule(
    "MW812", "Model or dataset object readable by everyone", Severity.HIGH,
    "Remove the grant to everyone from the object's ACL, then turn object ACLs off: S3 "
    "Object Ownership BucketOwnerEnforced, GCS uniform bucket-level access.",
    cwe="CWE-732",
    doc="An object that mlward recognised as a model or dataset has an ACL grant to everyone "
    "(S3 AllUsers/AuthenticatedUsers while Block Public Access does not ignore public ACLs; "
    "GCS allUsers/allAuthenticatedUsers on a bucket with fine-grained access).",
)
IAM_SERVICE_WILDCARD = rule(
    "MW815", "IAM policy grants every action of an ML service on every resource",
    Severity.HIGH,
    "Grant the actions a role needs on the buckets, models and endpoints it works with.",
    cwe="CWE-269",
    doc="An Allow statement with `s3:*`, `sagemaker:*`, `bedrock:*` (or `*`) on Resource "
    "`*`, in a managed or inline policy of a user, group or role.",
)
IAM_PASSROLE_ANY = rule(
    "MW816", "IAM policy allows iam:PassRole on every role", Severity.HIGH,
    "Limit iam:PassRole to the execution roles training jobs and endpoints use, with an "
    "iam:PassedToService condition.",
    cwe="CWE-269",
    doc="Whoever holds it can start a training job or notebook with any role in the account, "
    "and so act with that role's permissions. Roles that SageMaker jobs use are named.",
)
IAM_ROLE_ANY_PRINCIPAL = rule(
    "MW817", "IAM role can be assumed by any principal", Severity.CRITICAL,
    "Name the accounts or services allowed to assume the role in its trust policy, or add an "
    "sts:ExternalId / aws:PrincipalOrgID condition.",
    cwe="CWE-284",
)
SM_NOTEBOOK_INTERNET = rule(
    "MW820", "SageMaker notebook instance has direct internet access", Severity.MEDIUM,
    "Create notebook instances with DirectInternetAccess=Disabled in a VPC subnet that "
    "reaches the internet only through controlled egress.",
    cwe="CWE-668",
)
SM_NOTEBOOK_ROOT = rule(
    "MW821", "SageMaker notebook instance gives users root access", Severity.MEDIUM,
    "Set RootAccess=Disabled; install what users need through lifecycle configurations.",
    cwe="CWE-250",
)
SM_NOTEBOOK_NO_VPC = rule(
    "MW822", "SageMaker notebook instance is not in a VPC", Severity.MEDIUM,
    "Create the notebook instance with a SubnetId and security groups.",
    cwe="CWE-668",
)
SM_NOTEBOOK_NO_KMS = rule(
    "MW823", "SageMaker notebook instance volume not encrypted with a customer key",
    Severity.LOW,
    "Create the notebook instance with a KmsKeyId.",
    cwe="CWE-311",
)
SM_TRAINING_NO_ISOLATION = rule(
    "MW824", "SageMaker training job without network isolation", Severity.MEDIUM,
    "Run training with EnableNetworkIsolation=True so the training container cannot send "
    "data or weights out.",
    cwe="CWE-668",
)
SM_TRAINING_NO_ICE = rule(
    "MW825", "SageMaker training job without inter-container traffic encryption",
    Severity.LOW,
    "Set EnableInterContainerTrafficEncryption=True for distributed training.",
    cwe="CWE-319",
)
SM_ENDPOINT_NO_KMS = rule(
    "MW826", "SageMaker endpoint storage not encrypted with a customer key", Severity.LOW,
    "Set KmsKeyId in the endpoint configuration.",
    cwe="CWE-311",
)
SM_ENDPOINT_NO_CAPTURE = rule(
    "MW827", "SageMaker endpoint without data capture", Severity.LOW,
    "Enable DataCaptureConfig in the endpoint configuration so requests and responses can "
    "be audited and monitored for abuse and drift.",
    cwe="CWE-778",
)
SM_MODEL_WEAK_BUCKET = rule(
    "MW828", "SageMaker model artifacts sit in a public or unversioned bucket", Severity.HIGH,
    "Keep model artifacts in a private, versioned bucket; anyone who can replace "
    "model.tar.gz changes what the endpoint serves.",
    cwe="CWE-494",
    doc="The model's ModelDataUrl (or S3 model data source) is in a bucket that is public "
    "(critical) or has versioning off.",
)
BEDROCK_NO_LOGGING = rule(
    "MW830", "Bedrock model invocation logging is off", Severity.MEDIUM,
    "Turn on model invocation logging (to CloudWatch Logs or S3) in each region that uses "
    "Bedrock.",
    cwe="CWE-778",
)
BEDROCK_CUSTOM_NO_CMK = rule(
    "MW831", "Bedrock custom model not encrypted with a customer-managed key", Severity.LOW,
    "Create custom models with customModelKmsKeyId.",
    cwe="CWE-311",
)
GCS_PUBLIC_BINDING = rule(
    "MW832", "GCS bucket IAM policy grants allUsers or allAuthenticatedUsers", Severity.HIGH,
    "Remove the allUsers/allAuthenticatedUsers members (`gcloud storage buckets "
    "remove-iam-policy-binding`) and enforce public access prevention.",
    cwe="CWE-732",
)
GCS_NO_UBLA = rule(
    "MW833", "GCS bucket does not use uniform bucket-level access", Severity.MEDIUM,
    "Enable uniform bucket-level access so that object ACLs cannot make single objects "
    "public.",
    cwe="CWE-284",
)
GCS_NO_PAP = rule(
    "MW834", "GCS bucket does not enforce public access prevention", Severity.MEDIUM,
    "Set publicAccessPrevention to enforced on the bucket (or by organisation policy).",
    cwe="CWE-284",
)
GCS_MODEL_NO_RETENTION = rule(
    "MW835", "GCS bucket holding models has no retention policy or versioning",
    Severity.LOW,
    "Turn on object versioning, or a retention policy, on model buckets.",
    cwe="CWE-693",
)
VERTEX_PUBLIC_IP = rule(
    "MW836", "Vertex AI Workbench instance has a public IP address", Severity.MEDIUM,
    "Create instances with disablePublicIp and reach them through IAP or a private network.",
    cwe="CWE-668",
)
AZ_CONTAINER_PUBLIC = rule(
    "MW837", "Azure Blob container allows anonymous access", Severity.HIGH,
    "Set the container's public access level to private, and disallow blob public access "
    "on the storage account.",
    cwe="CWE-732",
    doc="The container's access level is `blob` (anyone reads blobs by URL) or `container` "
    "(anyone also lists them). mlward confirms with one anonymous request and says so.",
)
AZ_ACCOUNT_PUBLIC = rule(
    "MW838", "Azure storage account allows blob public access", Severity.MEDIUM,
    "Set allowBlobPublicAccess to false on the storage account.",
    cwe="CWE-284",
)
AZ_SHARED_KEY = rule(
    "MW839", "Azure storage account allows shared key access", Severity.LOW,
    "Set allowSharedKeyAccess to false and use Microsoft Entra ID (and user delegation SAS).",
    cwe="CWE-287",
    doc="Account keys and the SAS tokens signed with them never expire with a person's "
    "access; a leaked key reads and writes every container.",
)
PUBLIC_ML_ASSET_IN_USE = rule(
    "MW840", "Public storage holds a model or dataset that something uses",
    Severity.CRITICAL,
    "Make the bucket private now, then check its access logs for downloads and verify the "
    "model against a signed manifest before anything loads it again.",
    cwe="CWE-494",
    doc="mlward found a model (or dataset) by its content in a bucket or container that "
    "anyone can read, and a project reference (an MLflow experiment or registered model, a "
    "DVC remote, a SageMaker model, a lineage statement or a BOM) points at it. Anyone can "
    "read it; where the bucket is also writable, anyone can replace what production loads.",
)
PUBLIC_ML_ASSET = rule(
    "MW841", "Public storage holds model files or datasets", Severity.HIGH,
    "Make the bucket or container private unless publishing these files is intended.",
    cwe="CWE-200",
    doc="Found by content (the first bytes of a bounded sample of objects). Critical when a "
    "dataset holds personal data (payment cards, IBANs, SSNs).",
)
REFERENCED_BUCKET_MISSING = rule(
    "MW842", "A project references a bucket that does not exist", Severity.HIGH,
    "Create the bucket in your account, or fix the reference: bucket names are global, and "
    "whoever creates this one receives your artifacts or serves you their model.",
    cwe="CWE-494",
)
AZ_SAS_BROAD = rule(
    "MW843", "Azure SAS token in code grants write or list for a long time", Severity.HIGH,
    "Revoke it (rotate the account key or delete the stored access policy), and issue "
    "short-lived, read-only user delegation SAS tokens from code at run time.",
    cwe="CWE-798",
    doc="A shared access signature (`sv=...&sig=...`) in code, a notebook or a config grants "
    "write, delete, create, add or list (sp=) and expires more than 7 days after it starts "
    "(or has no expiry). The signature is never printed.",
)
AZ_NO_SOFT_DELETE = rule(
    "MW844", "Azure storage holding models keeps no deleted blobs", Severity.LOW,
    "Turn on blob soft delete (and versioning) on accounts that hold models.",
    cwe="CWE-693",
)

# MW850-MW899: infrastructure as code (Terraform, CloudFormation, Kubernetes), checked
# before deployment by `mlward scan`. One rule per concept, whatever the language.

IAC_BUCKET_PUBLIC_ACL = rule(
    "MW850", "Bucket declared with a public canned ACL", Severity.HIGH,
    "Declare the bucket private (no acl / AccessControl, or `private`) and let Object "
    "Ownership BucketOwnerEnforced disable ACLs.",
    cwe="CWE-732",
    doc="`acl = \"public-read\"` (or public-read-write, authenticated-read) in Terraform, "
    "`AccessControl: PublicRead` in CloudFormation.",
)
IAC_BUCKET_POLICY_PUBLIC = rule(
    "MW851", "Bucket policy declared for any principal without a condition", Severity.HIGH,
    "Name the principals, or add a condition (aws:SourceVpce, aws:PrincipalOrgID, ...).",
    cwe="CWE-732",
)
IAC_BPA_DISABLED = rule(
    "MW852", "S3 Block Public Access declared off", Severity.MEDIUM,
    "Set block_public_acls, ignore_public_acls, block_public_policy and "
    "restrict_public_buckets to true.",
    cwe="CWE-284",
)
IAC_BUCKET_NO_ENCRYPTION = rule(
    "MW853", "Bucket declared without default encryption", Severity.LOW,
    "Declare server-side encryption (SSE-KMS with a customer key for model and data "
    "buckets).",
    cwe="CWE-311",
)
IAC_BUCKET_NO_VERSIONING = rule(
    "MW854", "Bucket declared without versioning", Severity.LOW,
    "Enable versioning; model and dataset buckets need it to recover overwritten objects.",
    cwe="CWE-693",
    doc="Medium for buckets that look like ML storage (a SageMaker resource or MLflow "
    "setting refers to them, or their name or tags say model, dataset, artifact, "
    "checkpoint, mlflow, training).",
)
IAC_BUCKET_NO_LOGGING = rule(
    "MW855", "Bucket declared without access logging", Severity.LOW,
    "Declare server access logging to a separate log bucket.",
    cwe="CWE-778",
)
IAC_BUCKET_CORS_ANY = rule(
    "MW856", "Bucket CORS declared for any origin", Severity.MEDIUM,
    "List the origins that need browser access instead of `*`.",
    cwe="CWE-942",
)
IAC_BUCKET_WEBSITE = rule(
    "MW857", "Website hosting declared on an ML storage bucket", Severity.MEDIUM,
    "Serve websites from a bucket of their own, never from model or data buckets.",
    cwe="CWE-552",
)
IAC_IAM_SERVICE_WILDCARD = rule(
    "MW858", "IAM policy declares every action of an ML service on every resource",
    Severity.HIGH,
    "Grant the actions a role needs on the resources it works with.",
    cwe="CWE-269",
    doc="`s3:*`, `sagemaker:*`, `bedrock:*` or `*` on Resource `*`.",
)
IAC_IAM_PASSROLE_ANY = rule(
    "MW859", "IAM policy declares iam:PassRole on every role", Severity.HIGH,
    "Limit iam:PassRole to named execution roles with an iam:PassedToService condition.",
    cwe="CWE-269",
)
IAC_ROLE_ANY_PRINCIPAL = rule(
    "MW860", "IAM role trust policy declared for any principal", Severity.CRITICAL,
    "Name the accounts or services that may assume the role.",
    cwe="CWE-284",
)
IAC_NOTEBOOK_INTERNET = rule(
    "MW861", "SageMaker notebook declared with direct internet access", Severity.MEDIUM,
    "Set direct_internet_access = \"Disabled\" (DirectInternetAccess: Disabled) with a VPC "
    "subnet; it is Enabled when not set.",
    cwe="CWE-668",
)
IAC_NOTEBOOK_ROOT = rule(
    "MW862", "SageMaker notebook declared with root access", Severity.MEDIUM,
    "Set root_access = \"Disabled\" (RootAccess: Disabled); it is Enabled when not set.",
    cwe="CWE-250",
)
IAC_NOTEBOOK_NO_VPC = rule(
    "MW863", "SageMaker notebook declared outside a VPC", Severity.MEDIUM,
    "Declare subnet_id and security_groups (SubnetId, SecurityGroupIds).",
    cwe="CWE-668",
)
IAC_NOTEBOOK_NO_KMS = rule(
    "MW864", "SageMaker notebook declared without a customer KMS key", Severity.LOW,
    "Declare kms_key_id (KmsKeyId).",
    cwe="CWE-311",
)
IAC_ENDPOINT_NO_KMS = rule(
    "MW865", "SageMaker endpoint configuration declared without a customer KMS key",
    Severity.LOW,
    "Declare kms_key_arn (KmsKeyId).",
    cwe="CWE-311",
)
IAC_ENDPOINT_NO_CAPTURE = rule(
    "MW866", "SageMaker endpoint configuration declared without data capture", Severity.LOW,
    "Declare data_capture_config (DataCaptureConfig).",
    cwe="CWE-778",
)
IAC_MODEL_NO_ISOLATION = rule(
    "MW867", "SageMaker model declared without network isolation", Severity.MEDIUM,
    "Set enable_network_isolation = true (EnableNetworkIsolation: true) so the model "
    "container cannot reach the network.",
    cwe="CWE-668",
)
IAC_BEDROCK_NO_CMK = rule(
    "MW868", "Bedrock custom model declared without a customer-managed key", Severity.LOW,
    "Declare custom_model_kms_key_id.",
    cwe="CWE-311",
)
IAC_MODEL_FROM_PUBLIC_BUCKET = rule(
    "MW869", "Model or training data loaded from a bucket the same code makes public",
    Severity.CRITICAL,
    "Make the bucket private; a model that anyone can replace is code that anyone can "
    "change in production.",
    cwe="CWE-494",
    doc="A SageMaker model's model_data_url, a training job's data, or a KServe "
    "storageUri points into a bucket that the same configuration declares public (public "
    "ACL, policy for any principal, allUsers member, public container).",
)
IAC_GCS_PUBLIC_MEMBER = rule(
    "MW870", "GCS bucket declared readable by allUsers or allAuthenticatedUsers",
    Severity.HIGH,
    "Remove the allUsers/allAuthenticatedUsers members and enforce public access prevention.",
    cwe="CWE-732",
)
IAC_GCS_NO_UBLA = rule(
    "MW871", "GCS bucket declared without uniform bucket-level access", Severity.MEDIUM,
    "Set uniform_bucket_level_access = true.",
    cwe="CWE-284",
)
IAC_GCS_NO_PAP = rule(
    "MW872", "GCS bucket declared without public access prevention", Severity.LOW,
    "Set public_access_prevention = \"enforced\".",
    cwe="CWE-284",
)
IAC_GCS_NO_VERSIONING = rule(
    "MW873", "GCS bucket for ML storage declared without versioning or retention",
    Severity.LOW,
    "Declare versioning { enabled = true } or a retention_policy.",
    cwe="CWE-693",
)
IAC_WORKBENCH_PUBLIC_IP = rule(
    "MW874", "Vertex AI Workbench instance declared with a public IP", Severity.MEDIUM,
    "Set gce_setup { disable_public_ip = true } (google_notebooks_instance: no_public_ip = "
    "true).",
    cwe="CWE-668",
)
IAC_AZ_CONTAINER_PUBLIC = rule(
    "MW875", "Azure storage container declared with anonymous access", Severity.HIGH,
    "Set container_access_type = \"private\".",
    cwe="CWE-732",
)
IAC_AZ_ACCOUNT_PUBLIC = rule(
    "MW876", "Azure storage account declared allowing blob public access", Severity.MEDIUM,
    "Set allow_nested_items_to_be_public = false (azurerm's default is true).",
    cwe="CWE-284",
)
IAC_AZ_SHARED_KEY = rule(
    "MW877", "Azure storage account declared allowing shared key access", Severity.LOW,
    "Set shared_access_key_enabled = false and use Microsoft Entra ID.",
    cwe="CWE-287",
)
IAC_AZ_WEAK_TRANSPORT = rule(
    "MW878", "Azure storage account declared with weak transport security", Severity.MEDIUM,
    "Set min_tls_version = \"TLS1_2\" and keep https_traffic_only_enabled true.",
    cwe="CWE-319",
)
IAC_NOTEBOOK_IMDSV1 = rule(
    "MW879", "SageMaker notebook declared allowing IMDSv1", Severity.MEDIUM,
    "Declare instance_metadata_service_configuration { minimum_instance_metadata_service_"
    "version = \"2\" } (InstanceMetadataServiceConfiguration in CloudFormation).",
    cwe="CWE-918",
    doc="IMDSv1 answers plain GET requests: code in a notebook (or a request it is tricked "
    "into making) reads the notebook role's credentials.",
)
IAC_K8S_MLFLOW_EXPOSED = rule(
    "MW880", "MLflow server without authentication exposed outside the cluster",
    Severity.CRITICAL,
    "Run MLflow with `--app-name basic-auth` (or behind an authenticating proxy) and expose "
    "it through a ClusterIP Service and an authenticated Ingress.",
    cwe="CWE-306",
    doc="A workload runs `mlflow server` without an auth app, and a LoadBalancer or NodePort "
    "Service (or an Ingress without auth annotations) selects its pods: anyone on the "
    "network reads and replaces models and artifacts.",
)
IAC_K8S_JUPYTER_EXPOSED = rule(
    "MW881", "Jupyter without a token exposed outside the cluster", Severity.CRITICAL,
    "Keep the token (or a password) and expose Jupyter only through an authenticating "
    "proxy; never set the token to an empty string.",
    cwe="CWE-306",
    doc="A workload runs Jupyter with the token disabled (`--ServerApp.token=''`, "
    "`--NotebookApp.token=''`, or JUPYTER_TOKEN set empty) and a LoadBalancer or NodePort "
    "Service, or an Ingress without auth annotations, selects its pods: anyone runs code.",
)
IAC_K8S_RAY_EXPOSED = rule(
    "MW882", "KubeRay cluster exposes the Ray dashboard outside the cluster",
    Severity.CRITICAL,
    "Keep the head service ClusterIP, leave enableIngress off, and reach the dashboard "
    "through `kubectl port-forward` or an authenticating proxy.",
    cwe="CWE-306",
    doc="A RayCluster, RayService or RayJob head with serviceType LoadBalancer or NodePort, "
    "or enableIngress: true. Ray's dashboard and jobs API have no authentication and run "
    "any command (CVE-2023-48022).",
)
IAC_K8S_ML_PRIVILEGED = rule(
    "MW883", "ML workload runs privileged or with host access", Severity.HIGH,
    "Drop privileged, hostNetwork, hostPID and hostPath from notebook, training and serving "
    "pods; run them as a non-root user.",
    cwe="CWE-250",
    doc="A Kubeflow Notebook, training job (PyTorchJob, TFJob, MPIJob, ...), KubeRay pod, "
    "KServe predictor or a pod running an ML tool with privileged: true, host namespaces or "
    "hostPath volumes: code in a notebook or a model reaches the node.",
)
IAC_K8S_KUBEFLOW_NO_MESH = rule(
    "MW884", "Kubeflow workload opts out of the Istio mesh", Severity.MEDIUM,
    "Remove the `sidecar.istio.io/inject: \"false\"` annotation; Kubeflow's authentication "
    "and authorization policies apply only to pods in the mesh.",
    cwe="CWE-306",
    doc="A Kubeflow Notebook, or a pod in a Kubeflow profile, that disables the Istio "
    "sidecar is reachable inside the cluster without Kubeflow's login.",
)
IAC_WORKBENCH_NO_CMEK = rule(
    "MW885", "Vertex AI Workbench disks declared without a customer-managed key", Severity.LOW,
    "Declare disk_encryption = \"CMEK\" with a kms_key on the boot and data disks.",
    cwe="CWE-311",
)
IAC_GCS_NO_LOGGING = rule(
    "MW886", "GCS bucket declared without access logging", Severity.LOW,
    "Declare logging { log_bucket = ... } (or Data Access audit logs for the bucket).",
    cwe="CWE-778",
)
IAC_AZ_NO_SOFT_DELETE = rule(
    "MW887", "Azure storage account declared without blob soft delete", Severity.LOW,
    "Declare blob_properties { delete_retention_policy { days = 7 } } (and versioning).",
    cwe="CWE-693",
)
IAC_AZ_NO_SAS_POLICY = rule(
    "MW888", "Azure storage account declared without a SAS expiration policy", Severity.LOW,
    "Declare sas_policy { expiration_period = \"1.00:00:00\" } so long-lived SAS tokens are "
    "flagged and logged.",
    cwe="CWE-798",
)


# --- MW90x-MW94x: policies and gates ------------------------------------------------------

POLICY_VIOLATION = rule(
    "MW901", "Policy rule violated", Severity.HIGH,
    "Do what the policy rule's remediation says, or waive the violation (a [[waivers]] entry "
    "whose rule is the policy rule's id) with a reason, an owner and an expiry date.",
    doc="`mlward gate` found an item (a finding, a model, a dependency, a notebook, the "
    "project) that a rule of the policy forbids. Reports show the policy rule's own id and "
    "severity; MW901 is the catalogue entry they all share.",
)
POLICY_NOT_EVALUATED = rule(
    "MW902", "Policy rule could not be evaluated", Severity.MEDIUM,
    "Fix the condition (guard optional fields with `has(...)` in CEL or `!= null`), or the "
    "check that left the item without the fields the condition reads.",
    doc="A rule's condition raised an error on an item (a missing field, a type mismatch). The "
    "gate cannot say the item passes, so the run is inconclusive (exit 2).",
)
ALERT_NOT_DELIVERED = rule(
    "MW903", "Alert could not be delivered", Severity.LOW,
    "Check the channel's URL, credentials and network; undelivered alerts are sent again on "
    "the next gate run.",
    doc="An alert channel (webhook, Slack, Teams, e-mail) refused or did not answer after "
    "every retry. The gate's verdict does not change; the ledger records the failure.",
)


# --- MW95x-MW99x: data ----------------------------------------------------------------------

# Dataset formats that run or deserialise code on load: MW950-MW959.

ARROW_PICKLED_EXTENSION = rule(
    "MW950", "Arrow extension type deserialised with pickle", Severity.HIGH,
    "Do not read this file with pyarrow older than 14.0.1; upgrade pyarrow, and ask the "
    "publisher to re-export the column as a registered or canonical extension type.",
    cwe="CWE-502",
    doc="A Parquet, Feather or Arrow IPC schema declares the `arrow.py_extension_type` "
    "extension: its metadata is a pickle that pyarrow before 14.0.1 unpickles when the file "
    "is read (CVE-2023-47248), whatever the caller asks for. The pickle itself is judged "
    "too (MW1xx).",
)
PICKLED_COLUMN = rule(
    "MW951", "Column stores pickled Python objects", Severity.HIGH,
    "Read the file without the library that registers this type (plain pyarrow sees bytes), "
    "or convert the column to a data-only type before sharing the dataset.",
    cwe="CWE-502",
    doc="The column's Arrow extension type (such as Ray Data's `arrow_pickled_object`) "
    "stores each value as a pickle that the library unpickles when the column is "
    "converted: every value can run code.",
)
DATASET_METADATA = rule(
    "MW952", "Dataset metadata names code or types outside the file", Severity.LOW,
    "Check that the named types come from libraries you trust before loading the dataset.",
    doc="pandas metadata in a Parquet/Arrow file names extension dtypes, or the schema names "
    "extension types, that only third-party code registered at load time can rebuild: "
    "what runs depends on what the reading program imports.",
)
DATASET_MALFORMED = rule(
    "MW953", "Dataset file structure is malformed", Severity.MEDIUM,
    "Re-export the dataset with a current writer; do not feed a damaged file to readers "
    "that trust its metadata.",
    doc="A Parquet footer, Arrow schema, HDF5 structure or Zarr metadata could not be "
    "parsed; what could not be read is reported as not examined.",
)
DATASET_LOADING_SCRIPT = rule(
    "MW954", "Dataset repository ships a loading script", Severity.HIGH,
    "Load the data files directly (Parquet, CSV, JSON) instead of running the script, or "
    "review the script before passing trust_remote_code=True.",
    cwe="CWE-829",
    doc="A Hugging Face dataset repository with `<name>.py` (or a card/config naming one) "
    "has `datasets.load_dataset` import and run that script; the script is also scanned as "
    "Python code.",
)
DATASET_REMOTE_DATA = rule(
    "MW955", "Dataset downloads data from outside the repository", Severity.MEDIUM,
    "Pin the downloads by checksum over HTTPS, or vendor the data files into the repository.",
    cwe="CWE-494",
    doc="The dataset card, `dataset_infos.json` or config points its data files at URLs "
    "(plain HTTP is reported higher) or at paths outside the repository: what is loaded "
    "is not what was reviewed.",
)

# Content checks on tabular data: MW960-MW969.

FORMULA_INJECTION = rule(
    "MW960", "Spreadsheet formula in a data cell", Severity.MEDIUM,
    "Prefix such cells with a single quote (or strip the leading = + - @) before the data "
    "reaches a spreadsheet or a report exported to one.",
    cwe="CWE-1236",
    doc="A CSV/XLSX cell starts with `=`, `+`, `-` or `@` followed by a function call: "
    "a spreadsheet that opens the data (or a report built from it) evaluates it, which "
    "can exfiltrate other cells through HYPERLINK/WEBSERVICE.",
)
FORMULA_DDE = rule(
    "MW961", "Dynamic Data Exchange (DDE) payload in a spreadsheet", Severity.HIGH,
    "Remove the cell or link; never open the file in a spreadsheet with DDE enabled.",
    cwe="CWE-1236",
    doc="A cell holds a DDE formula (`=cmd|' /C calc'!A0`, `DDEAUTO`) or the workbook "
    "declares a DDE external link: opening it in Excel can start a program.",
)
PII_IN_DATASET = rule(
    "MW962", "Personal data in a dataset column", Severity.LOW,
    "Confirm the dataset may hold this data (consent, purpose); drop or pseudonymise the "
    "column before sharing or training.",
    cwe="CWE-359",
    doc="A bounded sample of the column's values holds e-mail addresses, phone numbers, "
    "card numbers, IBANs or similar (redacted in the report). Secrets found the same way "
    "are reported with the MW4xx rules, the column named.",
)
WORKBOOK_MACROS = rule(
    "MW963", "Workbook carries VBA macros", Severity.MEDIUM,
    "Use a macro-free export (.xlsx or CSV) of the data.",
    cwe="CWE-829",
    doc="The workbook contains a VBA project (`xl/vbaProject.bin`): code that runs in the "
    "spreadsheet program of whoever opens it.",
)

# Data diff (two versions of a dataset): MW970-MW989.

LABEL_FLIP = rule(
    "MW970", "Labels changed on rows whose features did not", Severity.HIGH,
    "Review the changed rows (the details list samples) and who changed them before "
    "retraining; re-label from a trusted source if they were not meant to change.",
    cwe="CWE-345",
    doc="Rows present in both versions with identical feature values now carry a different "
    "label: the signature of label-flipping poisoning (or of a labelling fix worth "
    "reviewing).",
)
CONFLICTING_DUPLICATES = rule(
    "MW971", "Near-duplicate rows with conflicting labels", Severity.MEDIUM,
    "Deduplicate the new rows and resolve their labels before training.",
    cwe="CWE-345",
    doc="New or changed rows are the same as other rows once case, whitespace and "
    "punctuation are ignored, but carry a different label: contradictory examples that "
    "poisoning uses to move a decision boundary.",
)
TRIGGER_TOKEN = rule(
    "MW972", "Possible backdoor trigger: a rare value in many new rows with one label",
    Severity.HIGH,
    "Inspect the new rows that carry this token; remove them unless the token is "
    "legitimate, and find out who added them.",
    cwe="CWE-345",
    doc="A token (in a text column) or value (in another column) that was rare or absent in "
    "the old version appears in many added or changed rows, nearly all with the same label: "
    "how backdoor triggers are planted.",
)
LABEL_SHIFT = rule(
    "MW973", "Label distribution shifted", Severity.MEDIUM,
    "Check that the change in class balance is intended before retraining.",
    doc="The share of one or more labels moved by more than the threshold (total variation "
    "distance) between the two versions.",
)
SCHEMA_CHANGED = rule(
    "MW974", "Dataset schema changed", Severity.MEDIUM,
    "Confirm that the training code expects the new schema.",
    doc="Columns were dropped (medium), retyped (medium) or added (low) between the two "
    "versions; rows are compared on the columns both share.",
)
COLUMN_SHIFT = rule(
    "MW975", "Column statistics shifted", Severity.LOW,
    "Check whether the change in this column's distribution is expected.",
    doc="The column's mean, spread, null rate or distinct share moved by more than the "
    "threshold between the two versions.",
)
DATA_CHANGED = rule(
    "MW979", "Dataset content changed", Severity.INFO,
    "Review the summary (rows added, removed and changed) before retraining.",
    doc="A summary of what differs between the two versions; the indicators above say "
    "whether any of it looks like tampering.",
)
