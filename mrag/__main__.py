"""``python -m mrag``: the ``mrag`` command."""

import sys


def _shadowing_folder() -> str | None:
    """The folder Python took for the ``mrag`` package instead of the installed one, if any.

    Run from the folder that holds a clone of the repository, ``python -m mrag`` finds the clone's
    top folder (named ``mrag``, no ``__init__.py``) first, as a namespace package; this module
    still loads from the installed copy, but ``from mrag import ...`` then fails obscurely.
    """
    package = sys.modules.get("mrag")
    if package is None or getattr(package, "__file__", None) is not None:
        return None
    locations = list(getattr(package, "__path__", None) or [])
    return locations[0] if locations else "mrag"


# The guard matters: parser worker processes re-import this module under another name.
if __name__ == "__main__":
    shadow = _shadowing_folder()
    if shadow is not None:
        print(f"error: the folder {shadow} hides the installed mrag package", file=sys.stderr)
        print(
            "hint: run `mrag` (the command), or python -m mrag from another folder", file=sys.stderr
        )
        sys.exit(2)
    from mrag.cli import main

    sys.exit(main())
