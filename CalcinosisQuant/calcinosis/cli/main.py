"""Entry point of the ``calcinosis`` console script.

Every sub-command lives in its own ``*_cmd.py`` module with ``register(subparsers)``
(found by :mod:`.registry`); the handler
returns an exit code.  Bad input (``InputError``) prints one line and exits with 2,
as do argument errors; nothing is half-written (outputs go through
``OutputTransaction``).
"""

from __future__ import annotations

import argparse
import sys
import traceback

from calcinosis import __version__
from calcinosis.core.errors import Cancelled, InputError

from .registry import discover



def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="calcinosis",
        description="Calcinosis imaging in systemic sclerosis: find, measure and map calcified lesions "
                    "on radiographs, CT and MRI (the SlicerCalcinosis pipelines, without Slicer).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in discover(suffix="_cmd"):
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except InputError as e:
        sys.stderr.write(f"calcinosis: error: {str(e).splitlines()[0] if str(e) else type(e).__name__}\n")
        return 2
    except (Cancelled, KeyboardInterrupt):
        sys.stderr.write("calcinosis: cancelled; nothing was written\n")
        return 130
    except OSError as e:  # disk full, permission denied, ...: not a bug, not bad input
        sys.stderr.write(f"calcinosis: error: {e}; nothing was written\n")
        return 1
    except MemoryError:
        sys.stderr.write("calcinosis: error: out of memory (image too large for this machine?)\n")
        return 1
    except Exception:  # noqa: BLE001 - an internal error: show it in full, it is a bug
        sys.stderr.write("calcinosis: internal error (please report it with the lines below)\n")
        traceback.print_exc()
        return 1


if __name__ == "__main__":
    sys.exit(main())
