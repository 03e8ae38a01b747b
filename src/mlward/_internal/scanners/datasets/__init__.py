"""Dataset formats that can run or deserialise code when they are loaded.

One module per family: :mod:`.arrow` (Parquet, Feather, Arrow IPC), :mod:`.hdf5` (pandas and
PyTables HDF5), :mod:`.zarr` (Zarr arrays with a pickle codec), :mod:`.webdataset` (tar
shards whose members a loader unpickles), :mod:`.hub` (Hugging Face dataset repositories),
:mod:`.dataframe` (pickled pandas DataFrames) and :mod:`.tabular` (CSV and XLSX content:
formula injection, secrets and personal data in columns). Importing this package registers
them all.
"""

from mlward._internal.scanners.datasets import (
    arrow,
    dataframe,
    hdf5,
    hub,
    tabular,
    webdataset,
    zarr,
)

__all__ = ["arrow", "dataframe", "hdf5", "hub", "tabular", "webdataset", "zarr"]
