"""Checks of constructor arguments: each returns the value, or raises a ConfigError.

    self.units = validate.positive_int(units, 'heads.MLPHead.units')
    self.dist = validate.one_of(dist, DISTS, 'heads.MLPHead.dist')

`where` is the binding as a user writes it in gin (`kind.Name.parameter`), so the
message says what to change; `dreamkit.check` adds where that binding was set. A
component checks every value in `__init__`, before anything is built or written: a
run builds its envs and its agent before its logdir exists.
"""

import math
import numbers

from dreamkit.errors import ConfigError


def _whole(value, where, lowest, words):
  if isinstance(value, bool) or not isinstance(value, numbers.Real) or (
      not math.isfinite(value)) or value != int(value):
    raise ConfigError(f'{where} must be a whole number {words}, got {value!r}.')
  if value < lowest:
    raise ConfigError(f'{where} must be a whole number {words}, got {value!r}.')
  return int(value)


def positive_int(value, where):
  """A whole number >= 1 (1e5 as gin parses it, a float, is accepted as 100000)."""
  return _whole(value, where, 1, '(positive, at least 1)')


def non_negative_int(value, where):
  """A whole number >= 0."""
  return _whole(value, where, 0, '(0 or more)')


def sizes(values, where):
  """A tuple of positive whole numbers (a kernel list, an image size)."""
  if isinstance(values, (str, bytes)) or not hasattr(values, '__iter__'):
    raise ConfigError(f'{where} must be a list of positive whole numbers, got {values!r}.')
  return tuple(positive_int(value, f'{where} item') for value in values)


def number(value, where, low=None, high=None, low_open=False):
  """A finite real number in [low, high] (`low_open`: (low, high])."""
  if isinstance(value, bool) or not isinstance(value, numbers.Real) or (
      not math.isfinite(value)):
    raise ConfigError(f'{where} must be a finite number, got {value!r}.')
  below = low is not None and (value <= low if low_open else value < low)
  above = high is not None and value > high
  if below or above:
    if high is None:
      accepted = f'> {low:g}' if low_open else f'>= {low:g}'
    else:
      accepted = f"{'(' if low_open else '['}{low:g}, {high:g}]"
    raise ConfigError(f'{where} must be {accepted}, got {value!r}.')
  return float(value)


def positive(value, where):
  """A finite number > 0 (a learning rate, an epsilon)."""
  return number(value, where, 0, low_open=True)


def non_negative(value, where):
  """A finite number >= 0."""
  return number(value, where, 0)


def fraction(value, where):
  """A finite number in [0, 1]."""
  return number(value, where, 0, 1)


def one_of(value, choices, where):
  """`value` if it is one of `choices`, else a ConfigError listing them."""
  try:
    if value in choices:
      return value
  except TypeError:  # An unhashable value against a dict of choices.
    pass
  accepted = ', '.join(repr(choice) if isinstance(choice, str) else str(choice)
                       for choice in choices)
  raise ConfigError(f'{where} {value!r} is unknown; use one of: {accepted}.')
