"""Checks of arguments shared by every stage, so that the same mistake reads the same.

Used wherever an argument takes one of a few named values (a model, a preset, a
strategy, a split protocol): the error names the argument, the value received and
the values that would work.
"""

from __future__ import annotations

from collections.abc import Iterable


def check_option(name: str, value, options: Iterable, *, hint: str = ""):
    """Return ``value`` if it is one of ``options``, else raise a ValueError saying so.

    Parameters
    ----------
    name : str
        The argument as the caller writes it (``"preset"``, ``"readout"``).
    value : object
        What the caller gave.
    options : iterable
        The allowed values, in the order the message lists them (a dict lists its keys).
    hint : str, default=""
        Another way to fix it, appended to the message (e.g. ``"or a dict of lambdas"``).

    Returns
    -------
    value : object
        ``value`` unchanged.

    Raises
    ------
    ValueError
        ``"{name}={value!r}: choose one of {options}"``, e.g. ``preset='huge': choose
        one of ['tiny', 'default', 'full']``.

    Examples
    --------
    >>> check_option("layout", "course", ("course", "openneuro"))
    'course'
    """
    options = list(options)
    if value not in options:
        suffix = f" {hint}" if hint else ""
        raise ValueError(f"{name}={value!r}: choose one of {options}{suffix}")
    return value
