"""Every parameter of every component a run builds, and where each value came from.

    dreamkit config --all pipelines/cartpole_dreamerv2.gin

Walks the parsed configuration from the root `Pipeline` the way the training loop
builds it: a slot bound to a factory (`@WorldModel`, `@reward/heads.MLPHead`) leads to
that component, called in that scope, and the task's prefix leads to its env class.
Each parameter shows its value (the binding that won, or the constructor default) and
its source: `file:line` of that binding, the `-b` binding, or `default`. Components
bound but not built (the swapped-out half of an ablation) do not appear.
"""

import dataclasses
import inspect
import os
from pathlib import Path

import gin

from dreamkit import config as config_lib
from dreamkit import gin_access

ROOT = 'dreamkit.runner.pipeline.Pipeline'
OWNER = 'passed by its owner'  # No default, not bound: the owner's call supplies it.
_MAX_DEPTH = 8  # Slots nest a few levels (Pipeline -> explorer -> behavior -> actor).
# Arguments that have a constructor default but that the owner passes anyway, by
# (owner, slot): the calls of docs/architecture.md's slot table. (Arguments without
# a default are found from the signature.)
_PASSED = {
    ('Pipeline', 'outputs'): {'logdir': "the run's logdir"},
    ('Pipeline', 'task'): {'seed': 'Pipeline.seed + the copy index'},
    ('WorldModel', 'discount_head'): {'dist': "'binary'"},
    ('ActorCritic', 'actor'): {'dist': 'ActorCritic.actor_dist'},
}


@dataclasses.dataclass
class Parameter:
  name: str
  value: str   # As gin writes it: 64, 'image', @reward/heads.MLPHead; for OWNER,
               # what the owner passes when that is known.
  source: str  # 'file:line', "-b '...'", 'default' or OWNER.


@dataclasses.dataclass
class Component:
  path: str    # How the run reaches it: 'Pipeline.world_model.encoder'.
  name: str    # As gin writes it, with its scopes: 'reward/heads.MLPHead'.
  parameters: list


def components(files, bindings):
  """[Component] the run parsed from `files` then `bindings` builds, root first.

  Call after `config.load(files, bindings)`: the values come from gin's parsed
  configuration, the places from reading the same files again.
  """
  walk = _Walk(_places(files, bindings), {
      (scope, selector): params for scope, selector, params in gin_access.bound()})
  walk.visit(ROOT, (), 'Pipeline', 0, {})
  return walk.found


def text(files, bindings):
  """`components` as commented gin text: one section per component."""
  lines = ['# Every parameter of every component this run builds, with its source: the',
           "# file:line of the binding that won, a -b binding, or 'default'. An owner's",
           '# call passes the arguments marked so (docs/architecture.md lists them).']
  for component in components(files, bindings):
    header = component.path if component.path == component.name else (
        f'{component.path}: {component.name}')
    lines += ['', f'# {header}']
    rows = [(f'{component.name}.{p.name} = {p.value}', p.source)
            for p in component.parameters if p.source != OWNER]
    width = max((len(row) for row, _ in rows), default=0)
    lines += [f'{row:<{width}}  # {source}' for row, source in rows]
    passed = [f'{p.name} ({p.value})' if p.value else p.name
              for p in component.parameters if p.source == OWNER]
    if passed:
      lines.append(f"# {OWNER}: {', '.join(passed)}")
  return '\n'.join(lines) + '\n'


class _Walk:
  """Visits the components reachable from the root, recording their parameters."""

  def __init__(self, places, config):
    self.places = places
    self.config = config
    self.found = []

  def visit(self, selector, scopes, path, depth, passed):
    """Records `selector` called in `scopes`, reached by `path`; its owner passes
    `passed` ({parameter: what}) besides the arguments without a default."""
    if depth > _MAX_DEPTH:
      return
    bound, origin = self._merged(selector, scopes)
    parameters, children = [], []
    owner = config_lib.short_name(selector)
    for name, param in _signature(gin.get_configurable(selector)):
      if name in passed:
        value, source = passed[name], OWNER
      elif name in bound:
        value, source, targets = self._resolve(bound[name], (origin[name], selector, name))
        children += [(name, target) for target in targets]
      elif param.default is inspect.Parameter.empty:
        value, source = '', OWNER
      elif param.default is gin.REQUIRED:
        value, source = '%gin.REQUIRED', 'required: not set'
      else:
        value, source = repr(param.default), 'default'
      parameters.append(Parameter(name, value, source))
    name = '/'.join([*scopes, config_lib.short_name(selector)])
    self.found.append(Component(path, name, parameters))
    for slot, target in children:
      self.visit(target.selector, scopes + target.scopes, f'{path}.{slot}', depth + 1,
                 _PASSED.get((owner, slot), {}))
    if selector == ROOT and isinstance(bound.get('task'), str):
      self._visit_env(bound['task'], depth)

  def _visit_env(self, task, depth):
    from dreamkit import envs  # pylint: disable=import-outside-toplevel
    try:
      class_name, _ = envs.parse_task(task)
    except Exception:  # pylint: disable=broad-except
      return  # `config` has reported a bad task already; `run` will.
    self.visit(f'dreamkit.envs.{class_name}', (), 'Pipeline.task', depth + 1,
               _PASSED[('Pipeline', 'task')])

  def _merged(self, selector, scopes):
    """The bindings a call in `scopes` receives, as gin merges them (the most
    specific scope wins), and the scope each came from."""
    bound, origin = {}, {}
    for i in range(len(scopes) + 1):
      scope = '/'.join(scopes[:i])
      for name, value in self.config.get((scope, selector), {}).items():
        bound[name], origin[name] = value, scope
    return bound, origin

  def _resolve(self, value, key):
    """(gin text of `value`, its source, the References it calls) for a binding."""
    source = self.places.get(key, '?')
    targets = []
    reference = gin_access.reference(value)
    if reference is not None and reference.kind == 'macro':
      macro_key = (reference.selector, 'gin.macro', 'value')
      macro_value = self.config.get(macro_key[:2], {}).get('value')
      shown, macro_source, targets = self._resolve(macro_value, macro_key)
      return shown, f'%{reference.selector} = {macro_source}; read at {source}', targets
    return _format(value, targets), source, targets


def _format(value, targets):
  """`value` as gin text; every configurable it names is appended to `targets`."""
  reference = gin_access.reference(value)
  if reference is not None:
    if reference.kind == 'macro':
      return f'%{reference.selector}'
    targets.append(reference)
    name = '/'.join([*reference.scopes, config_lib.short_name(reference.selector)])
    return f"@{name}{'()' if reference.kind == 'call' else ''}"
  if isinstance(value, list):
    return '[' + ', '.join(_format(item, targets) for item in value) + ']'
  if isinstance(value, tuple):
    items = [_format(item, targets) for item in value]
    return '(' + ', '.join(items) + (',)' if len(items) == 1 else ')')
  if isinstance(value, dict):
    return '{' + ', '.join(f'{key!r}: {_format(item, targets)}'
                           for key, item in value.items()) + '}'
  return repr(value)


def _signature(target):
  """[(name, inspect.Parameter)] a call of `target` takes, without self / *args."""
  # A class's own __init__: Keras layers define __new__(*args, **kwargs), which
  # inspect.signature(cls) would report instead.
  function = target.__init__ if inspect.isclass(target) else target
  try:
    signature = inspect.signature(function)
  except (TypeError, ValueError):
    return []
  return [(name, param) for name, param in signature.parameters.items()
          if not (inspect.isclass(target) and name == 'self')
          and param.kind not in (param.VAR_POSITIONAL, param.VAR_KEYWORD)]


def _places(files, bindings):
  """{(scope, full selector, parameter): where} of the bindings that won.

  Files are read in order with their includes inline (where gin parses them), then
  the -b bindings; a later statement replaces an earlier one, as in gin. A macro is
  keyed (name, 'gin.macro', 'value'), as gin stores it.
  """
  statements = []
  for file in files:
    statements += _file_statements(Path(file), set())
  for binding in bindings:
    statements += [(statement, f'-b {binding!r}')
                   for statement in gin_access.statements(binding)]
  selectors = [selector for _, selector, _ in gin_access.bound()]
  places = {}
  for statement, where in statements:
    if statement.kind == 'macro':
      places[(statement.selector, 'gin.macro', 'value')] = where
    elif statement.kind == 'binding':
      selector = _full_selector(statement.selector, selectors)
      places[(statement.scope, selector, statement.parameter)] = where
  return places


def _file_statements(path, seen):
  """[(Statement, 'file:line')] of `path`, its includes' statements inline."""
  resolved = path.resolve()
  if resolved in seen or not resolved.is_file():
    return []
  seen.add(resolved)
  shown = _display(path)
  result = []
  for statement in gin_access.statements(resolved.read_text()):
    if statement.kind == 'include':
      result += _file_statements(_include(statement.path, resolved.parent), seen)
    else:
      result.append((statement, f'{shown}:{statement.line}'))
  return result


def _include(name, directory):
  """Where gin finds an included file: as written (from the working directory),
  else next to the including file (config.load adds each file's folder to gin's
  search path)."""
  path = Path(name)
  if path.is_absolute() or path.is_file():
    return path
  return directory / name


def _full_selector(written, selectors):
  """The full selector of a bound configurable written as `written` (a suffix)."""
  for selector in selectors:
    if selector == written or selector.endswith('.' + written):
      return selector
  return written


def _display(path):
  """`path` relative to the working directory when it is inside it."""
  relative = os.path.relpath(path.resolve())
  return str(path.resolve()) if relative.startswith('..') else relative
