"""``python -m mlward``: the same as the ``mlward`` command."""

from mlward.cli.main import entrypoint

if __name__ == "__main__":
    entrypoint()
