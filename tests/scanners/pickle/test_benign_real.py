"""Files saved by real libraries are not flagged (the allowlist is curated from these)."""

from __future__ import annotations

import collections
import datetime
import io
import pickle
from pathlib import Path

import pytest
from pickle_payloads import scan_bytes

import mlward

np = pytest.importorskip("numpy")


def _clean(report: mlward.Report) -> None:
    assert [(f.rule_id, f.evidence, f.message) for f in report.findings] == []
    assert report.inconclusive == ()
    assert set(map(str, report.verdicts().values())) == {"clean"}


def _data() -> dict[str, object]:
    return {"ints": [1, 2, 3], "floats": (1.5, float("inf")), "text": "é", "raw": b"\x00",
            "set": {1, 2}, "frozen": frozenset({3}), "buf": bytearray(b"x"), "cx": 1j,
            "big": 10**30, "none": None, "range": range(3), "slice": slice(1, 2),
            "od": collections.OrderedDict(a=1), "dd": collections.defaultdict(list),
            "counter": collections.Counter("ab"), "deque": collections.deque([1]),
            "when": datetime.datetime(2024, 1, 2, 3, 4, 5)}


@pytest.mark.parametrize("proto", range(6))
def test_standard_library_data(tmp_path: Path, proto: int):
    _clean(scan_bytes(tmp_path, pickle.dumps(_data(), protocol=proto)))


def test_dill_and_cloudpickle_plain_data(tmp_path: Path):
    dill = pytest.importorskip("dill")
    cloudpickle = pytest.importorskip("cloudpickle")
    data = _data()
    _clean(scan_bytes(tmp_path, cloudpickle.dumps(data), "c.pkl"))
    # dill writes range objects as _eval_repr("range(0, 3)"): an eval, rightly reported.
    del data["range"]
    _clean(scan_bytes(tmp_path, dill.dumps(data), "d.pkl"))


def test_dill_type_lookups_resolve_to_the_type(tmp_path: Path):
    dill = pytest.importorskip("dill")
    report = scan_bytes(tmp_path, dill.dumps(bytearray(b"x")))
    assert report.findings == ()
    import types

    report = scan_bytes(tmp_path, dill.dumps(types.CodeType))
    assert {f.evidence for f in report.findings} == {"types.CodeType"}


def test_numpy_arrays_scalars_and_random_state(tmp_path: Path):
    value = {"a": np.arange(6.0).reshape(2, 3), "o": np.array([1, "x", None], dtype=object),
             "s": np.float32(2), "i": np.int64(3), "u": np.array(["ab", "c"]),
             "rec": np.zeros(2, dtype=[("x", "i4"), ("y", "f8")]), "m": np.ma.masked_array([1]),
             "rng": np.random.default_rng(0), "rs": np.random.RandomState(0)}
    for proto in (2, 4, 5):
        _clean(scan_bytes(tmp_path, pickle.dumps(value, protocol=proto)))


def _estimators() -> dict[str, object]:
    sklearn = pytest.importorskip("sklearn")
    assert sklearn
    from sklearn.compose import ColumnTransformer
    from sklearn.datasets import make_classification
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    from sklearn.svm import SVC

    x, y = make_classification(n_samples=60, n_features=5, random_state=0)
    return {
        "pipeline": Pipeline([("scale", StandardScaler()),
                              ("lr", LogisticRegression())]).fit(x, y),
        "forest": RandomForestClassifier(n_estimators=3, random_state=0).fit(x, y),
        "logistic": LogisticRegression().fit(x, y),
        "boosting": GradientBoostingClassifier(n_estimators=3).fit(x, y),
        "svc": SVC().fit(x, y),
        "columns": ColumnTransformer([("oh", OneHotEncoder(), [0])]).fit(
            np.array([["a"], ["b"]], dtype=object)),
    }


def test_scikit_learn_pickles(tmp_path: Path):
    for name, model in _estimators().items():
        for proto in (0, 1, 2, 5):  # 0-1: copyreg._reconstructor with builtins.object
            _clean(scan_bytes(tmp_path, pickle.dumps(model, protocol=proto), f"{name}.pkl"))


def test_scikit_learn_joblib_files(tmp_path: Path):
    joblib = pytest.importorskip("joblib")
    for name, model in _estimators().items():
        path = tmp_path / f"{name}.joblib"
        joblib.dump(model, path)
        report = mlward.scan([path])
        _clean(report)
        assert [e.format for e in report.examined] == ["joblib"]


def test_joblib_arrays_of_every_kind(tmp_path: Path):
    joblib = pytest.importorskip("joblib")
    value = {"f": np.arange(10.0), "i": np.arange(7, dtype="i2").reshape(7, 1),
             "fortran": np.asfortranarray(np.ones((3, 4))), "empty": np.zeros((0, 3)),
             "str": np.array(["ab", "cde"]), "bytes": np.array([b"x", b"yz"]),
             "rec": np.zeros(3, dtype=[("a", "u1"), ("b", "f8")]), "bool": np.ones(5, bool),
             "obj": np.array([1, "x", None], dtype=object), "scalar": np.array(5.0),
             "when": np.array(["2024-01-01"], dtype="M8[D]"), "c": np.ones(2, "c16")}
    path = tmp_path / "arrays.joblib"
    joblib.dump(value, path)
    _clean(mlward.scan([path]))


def test_joblib_raw_array_bytes_are_skipped_not_parsed(tmp_path: Path):
    joblib = pytest.importorskip("joblib")
    # Array bytes that would read as a payload if the scanner parsed them as opcodes.
    payload = np.frombuffer(b"cos\nsystem\n(S'id'\ntR." * 4, dtype="u1")
    path = tmp_path / "bytes.joblib"
    joblib.dump({"a": payload, "b": [1, 2]}, path)
    _clean(mlward.scan([path]))


def test_torch_state_dict_and_whole_model(tmp_path: Path):
    torch = pytest.importorskip("torch", reason="torch is not installed")
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU(), torch.nn.BatchNorm1d(2))
    for name, obj in (("sd.pt", model.state_dict()), ("model.pt", model),
                      ("tensors.pt", {"t": torch.ones(2, dtype=torch.bfloat16),
                                      "i": torch.arange(3), "p": torch.nn.Parameter(
                                          torch.zeros(1)),
                                      "sparse": torch.eye(3).to_sparse(),
                                      "layout": torch.strided, "dtype": torch.float16,
                                      "device": torch.device("cpu"),
                                      "size": torch.Size([2, 3])})):
        buf = io.BytesIO()
        torch.save(obj, buf)
        report = scan_bytes(tmp_path, buf.getvalue(), name)
        assert not report.at_or_above(mlward.Severity.MEDIUM), report.findings
        assert report.inconclusive == ()
        # The pickle inside the checkpoint, scanned on its own, is clean too.
        import zipfile

        with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as zf:
            inner = next(n for n in zf.namelist() if n.endswith("data.pkl"))
            _clean(scan_bytes(tmp_path, zf.read(inner), "data.pkl"))


def test_joblib_before_1_2_without_alignment_padding(tmp_path: Path, monkeypatch):
    # joblib < 1.2 wrote no alignment byte, and its wrappers' state has no such key.
    joblib = pytest.importorskip("joblib")
    from joblib.numpy_pickle import NumpyArrayWrapper

    def old_state(self: NumpyArrayWrapper) -> dict[str, object]:
        return {k: v for k, v in vars(self).items() if k != "numpy_array_alignment_bytes"}

    monkeypatch.setattr(NumpyArrayWrapper, "safe_get_numpy_array_alignment_bytes",
                        lambda self: None)
    monkeypatch.setattr(NumpyArrayWrapper, "__getstate__", old_state, raising=False)
    path = tmp_path / "old.joblib"
    joblib.dump({"a": np.arange(5.0), "b": np.arange(3, dtype="u1"), "c": [1]}, path)
    assert b"numpy_array_alignment_bytes" not in path.read_bytes()
    _clean(mlward.scan([path]))


@pytest.mark.parametrize("proto", [2, 4, 5])
def test_pandas_frames_and_series(tmp_path: Path, proto: int):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({
        "a": [1, 2], "f": [1.5, np.nan], "b": ["x", "y"],
        "t": pd.to_datetime(["2020-01-01", "2021-01-01"], utc=True),
        "td": pd.to_timedelta([1, 2], unit="s"), "p": pd.period_range("2020-01", periods=2,
                                                                         freq="M"),
        "i": pd.array([1, None], dtype="Int64"), "c": pd.Categorical(["u", "v"]),
        "s": pd.Series(["a", None], dtype="string")},
        index=pd.MultiIndex.from_tuples([("x", 1), ("y", 2)]))
    values = [frame, pd.Series([1.0, 2.0]), pd.Timestamp("2020-01-01"), pd.Timedelta("1D"),
              pd.NaT, pd.Interval(0, 1)]
    _clean(scan_bytes(tmp_path, pickle.dumps(values, protocol=proto)))


def test_pandas_classes_with_side_effects_stay_unknown(tmp_path: Path):
    # ExcelWriter opens (and truncates) the file it is given when it is built.
    payload = (b"\x80\x04\x8c\x06pandas\x94\x8c\x0bExcelWriter\x94\x93\x94"
               b"\x8c\x08out.xlsx\x94\x85\x94R\x94.")
    report = scan_bytes(tmp_path, payload)
    assert [f.rule_id for f in report.findings] == ["MW102"]
    assert "pandas.ExcelWriter" in report.findings[0].message
