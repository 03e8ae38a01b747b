"""``python -m mlward``: the same as the ``mlward`` command."""

from mlward.cli.entry import entrypoint

if __name__ == "__main__":
    entrypoint()
