"""Errors the user can act on.

:class:`InputError` is raised for bad input (a file that cannot be read, a missing
spacing, an unknown label value, ...).  Its message is one line that names the file,
row or parameter at fault; the command line prints it and exits with code 2, the
Slicer modules show it through ``slicer.util.tryWithErrorDisplay``.
"""


class InputError(ValueError):
    """Bad input: one clear line naming the file, row or parameter."""


class OutputExistsError(InputError):
    """An earlier result would be overwritten (pass --force to replace it)."""


class Cancelled(Exception):
    """The user cancelled a long computation."""
