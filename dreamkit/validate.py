"""Checks of constructor arguments: each returns the value, or raises a ConfigError.

    args = validate.Arguments(self)                 # in __init__, first thing
    self.units = args.positive_int(units, 'units')  # 'reward/heads.MLPHead.units ...'
    self.dist = args.one_of(dist, 'dist', DISTS, 'a distribution')

A message names the binding as a user writes it in gin (`kind.Name.parameter`, with
the scope gin built the component in: `reward/heads.MLPHead.dist`), says what is
wrong and what would be accepted, on one line:

    reward/heads.MLPHead.dist must be a distribution, one of: mse, normal, ...; got 'gaussian'.

`dreamkit config --check` and `dreamkit run` add where that binding was set
(runner/check.py). A component checks every value in `__init__`, before anything is
built or written: a run builds its envs and its agent before its logdir exists.
The module-level functions take the binding's name (`where`, a string or a function
that gives it) as their second argument, for values that are not a component's.
"""

import inspect
import math
import numbers
import re

import gin
import numpy as np

from dreamkit.errors import ConfigError


class Arguments:
  """Checks of one component's arguments, named as gin binds them.

  Create it at the start of `__init__`: gin's scope (`reward` for
  `@reward/heads.MLPHead`) is only known while gin calls the constructor. The
  component's gin name is found from its class (a registered subclass is named as
  itself) only when a message needs it.
  """

  def __init__(self, component):
    self._cls = component if inspect.isclass(component) else type(component)
    self._scope = gin.current_scope_str()

  def name(self, parameter):
    """The binding of `parameter`: '<scope>/<kind>.<Name>.<parameter>'."""
    name = f'{gin_name(self._cls)}.{parameter}'
    return f'{self._scope}/{name}' if self._scope else name

  def __getattr__(self, check):
    """`args.<check>(value, parameter, ...)` is `<check>(value, binding, ...)` for each
    check of this module (positive_int, one_of, schedule, ...)."""
    function = _CHECKS.get(check)
    if function is None:
      raise AttributeError(check)

    def named(value, parameter, *args, **kwargs):
      return function(value, lambda: self.name(parameter), *args, **kwargs)
    return named


def gin_name(cls):
  """The name gin files give the class `cls`: 'heads.MLPHead' for a registered
  component, 'WorldModel' or 'Pipeline' for a core class.

  A class gin does not know takes the name of the nearest class it derives from that
  gin knows (a plugin's subclass that is not registered itself).
  """
  from dreamkit import config  # pylint: disable=import-outside-toplevel
  from dreamkit import gin_access  # pylint: disable=import-outside-toplevel
  known = {}
  for selector in gin_access.selectors():
    configurable = gin.get_configurable(selector)
    # gin may hand back a subclass it made to register the class without changing it.
    key = (configurable.__module__, configurable.__qualname__)
    known.setdefault(key, selector)
  for base in inspect.getmro(cls):
    selector = known.get((base.__module__, base.__qualname__))
    if selector:
      return config.short_name(selector)
  return cls.__name__


def binding(where):
  """The binding `where` names: a string, or a function that gives it (Arguments
  names a binding only when a message needs it)."""
  return where() if callable(where) else where


def _is_number(value):
  return not isinstance(value, bool) and isinstance(value, numbers.Real) and (
      math.isfinite(value))


def int_at_least(value, where, lowest, words=None):
  """A whole number >= `lowest` (1e5, a float as gin parses it, is accepted)."""
  if not _is_number(value) or value != int(value) or value < lowest:
    words = words or f'of at least {lowest}'
    raise ConfigError(f'{binding(where)} must be a whole number {words}, got {value!r}.')
  return int(value)


def positive_int(value, where):
  """A whole number >= 1."""
  return int_at_least(value, where, 1, '(positive, at least 1)')


def non_negative_int(value, where):
  """A whole number >= 0."""
  return int_at_least(value, where, 0, '(0 or more)')


def optional_seed(value, where):
  """None (fresh entropy) or a whole number >= 0."""
  if value is None:
    return None
  return int_at_least(value, where, 0, '(0 or more) or None')


def sizes(values, where, min_len=0):
  """A tuple of positive whole numbers (a kernel list, an image size), at least
  `min_len` of them."""
  words = 'a list of positive whole numbers'
  if min_len:
    words += f' (at least {min_len})'
  if isinstance(values, (str, bytes)) or not hasattr(values, '__iter__'):
    raise ConfigError(f'{binding(where)} must be {words}, got {values!r}.')
  values = tuple(values)
  if len(values) < min_len or not all(
      _is_number(value) and value == int(value) and value >= 1 for value in values):
    raise ConfigError(f'{binding(where)} must be {words}, got {values!r}.')
  return tuple(int(value) for value in values)


def number(value, where, low=None, high=None, low_open=False, high_open=False):
  """A finite real number between `low` and `high` (each included unless `*_open`)."""
  if not _is_number(value):
    raise ConfigError(f'{binding(where)} must be a finite number, got {value!r}.')
  below = low is not None and (value <= low if low_open else value < low)
  above = high is not None and (value >= high if high_open else value > high)
  if below or above:
    if high is None:
      accepted = f'> {low:g}' if low_open else f'>= {low:g}'
    elif low is None:
      accepted = f'< {high:g}' if high_open else f'<= {high:g}'
    else:
      accepted = (f"in {'(' if low_open else '['}{low:g}, {high:g}"
                  f"{')' if high_open else ']'}")
    raise ConfigError(f'{binding(where)} must be {accepted}, got {value!r}.')
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


def weight_decay(value, where):
  """0 or None (no decay), or a factor in [0, 1): each step multiplies by 1 - wd."""
  return number(value or 0, where, 0, 1, high_open=True)


def clip_norm(value, where):
  """0 or None (no clipping), or a global-norm bound > 0."""
  return non_negative(value or 0, where)


def boolean(value, where):
  """True or False; not a string ('False' would be true)."""
  if isinstance(value, (bool, np.bool_)):
    return bool(value)
  raise ConfigError(f'{binding(where)} must be True or False, got {value!r}.')


def one_of(value, where, choices, noun=None):
  """`value` if it is one of `choices`, else a ConfigError listing them (strings in
  quotes only when the choices mix strings and numbers: 32, 16, 'bf16'); `noun`
  says what they are ('an activation')."""
  try:
    if value in choices and not (isinstance(value, bool) and True in choices):
      return value
  except TypeError:  # An unhashable value against a dict of choices.
    pass
  choices = list(choices)
  mixed = not all(isinstance(choice, str) for choice in choices)
  accepted = ', '.join(repr(choice) if mixed and isinstance(choice, str) else str(choice)
                       for choice in choices)
  what = f'{noun}, one of' if noun else 'one of'
  raise ConfigError(f'{binding(where)} must be {what}: {accepted}; got {value!r}.')


def text(value, where):
  """A non-empty string (a file name, a key)."""
  if not isinstance(value, str) or not value.strip():
    raise ConfigError(f'{binding(where)} must be a non-empty string, got {value!r}.')
  return value


def regex(value, where):
  """A string that compiles as a Python regex; returns it (not the compiled one)."""
  try:
    if not isinstance(value, str):
      raise TypeError(f'not a string but {type(value).__name__}')
    re.compile(value)
  except (re.error, TypeError) as error:
    raise ConfigError(
        f"{binding(where)} must be a regex (Python 're' syntax, e.g. '.*' or "
        f"'image|depth'), got {value!r}: {error}.") from None
  return value


def schedule(value, where):
  """A parsed `schedules.Schedule`: a number or a schedule string."""
  from dreamkit import schedules  # pylint: disable=import-outside-toplevel
  return schedules.parse(value, name=where)


_CHECKS = {
    function.__name__: function for function in (
        int_at_least, positive_int, non_negative_int, optional_seed, sizes, number,
        positive, non_negative, fraction, weight_decay, clip_norm, boolean, one_of,
        text, regex, schedule)}
