"""Settings that know their help text and limits: one field, one flag, one check.

A config is a dataclass whose fields are made with ``setting(...)``. The field's metadata
holds everything the rest of minirnn needs to know about it, in one place:

* its help text (the CLI's ``--help``, and the docs),
* its limits: a kind (int, float, str, bool), an optional ``None``, a range, choices,
* whether a resumed run may set it differently,

so that ``check_settings`` validates every config the same way and the CLI makes one
flag per field with the right type, choices, default and help. A bad value raises
``SettingError``, which names the field (``TrainConfig: lr must be a positive number,
got -1.0``); the CLI shows the same message with the flag the user typed
(``--lr must be ...``).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import field


class SettingError(ValueError):
    """A setting out of its limits: ``owner`` (the config's name), ``name`` (the field)
    and ``detail`` (what it must be and what came)."""

    def __init__(self, owner, name, detail):
        super().__init__(f"{owner}: {name} {detail}")
        self.owner, self.name, self.detail = owner, name, detail

    @property
    def flag(self):
        """The command-line flag of the field: ``--seq-len``."""
        return "--" + self.name.replace("_", "-")


def setting(default, help, *, kind=None, optional=False, low=None, high=None,
            low_open=False, high_open=True, choices=None, cli=True, may_change=False):
    """A config field with its help text and limits (see the module docstring).

    kind: int, float, str or bool (default: the type of ``default``); optional: ``None``
    is allowed; low, high: the range (``low_open``: ``low`` itself excluded;
    ``high_open``: ``high`` excluded); choices: the allowed values; cli: make a flag;
    may_change: the value may differ when a run is resumed (a budget, an interval).
    """
    kind = type(default) if kind is None else kind
    meta = dict(help=help, kind=kind, optional=optional, low=low, high=high,
                low_open=low_open, high_open=high_open, choices=choices, cli=cli,
                may_change=may_change)
    return field(default=default, metadata=meta)


def limits_text(meta):
    """What a value of this field must be, in words: ``a positive integer``.

    (``None`` is not mentioned: for an optional field it means "leave it out".)"""
    if meta["choices"] is not None:
        return "one of " + ", ".join(str(c) for c in meta["choices"])
    kind, low, high = meta["kind"], meta["low"], meta["high"]
    if kind not in (int, float):
        return f"a {kind.__name__}"
    if low == 0 and meta["low_open"] and high is None:
        return "a positive integer" if kind is int else "a positive number"
    if high is not None and low is not None:
        return (f"a number in {'(' if meta['low_open'] else '['}{low}, {high}"
                f"{')' if meta['high_open'] else ']'}")
    if low is not None:
        return f"an int >= {low}" if kind is int else f"a finite number >= {low}"
    return "an int" if kind is int else "a finite number"


def _fits(value, meta):
    """Does ``value`` lie within the field's limits?"""
    if value is None:
        return meta["optional"]
    if meta["choices"] is not None:
        return value in meta["choices"]
    kind = meta["kind"]
    if kind is bool or kind is str:
        return isinstance(value, kind)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    if kind is int and not isinstance(value, numbers.Integral):
        return False
    if not math.isfinite(value):
        return False
    low, high = meta["low"], meta["high"]
    if low is not None and (value < low or (meta["low_open"] and value == low)):
        return False
    if high is not None and (value > high or (meta["high_open"] and value == high)):
        return False
    return True


def check_settings(cfg):
    """Refuse the first field of ``cfg`` outside its limits with a ``SettingError``."""
    owner = type(cfg).__name__
    for f in dataclasses.fields(cfg):
        if "kind" not in f.metadata:
            continue
        value = getattr(cfg, f.name)
        if not _fits(value, f.metadata):
            raise SettingError(owner, f.name, f"must be {limits_text(f.metadata)}, "
                                              f"got {value!r}")


def positive(default, help, kind=None, optional=False, may_change=False):
    """A setting that must be > 0 (``None`` too when ``optional``)."""
    return setting(default, help, kind=kind, optional=optional, low=0, low_open=True,
                   may_change=may_change)


def may_change_on_resume(cfg):
    """The names of the fields of ``cfg`` that a resumed run may set differently."""
    return {f.name for f in dataclasses.fields(cfg) if f.metadata.get("may_change")}
