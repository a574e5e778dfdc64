"""Plugins: user code that registers components, loaded before any .gin is parsed.

Three routes, all ending in the same registries:
  1. `dreamkit run ... --plugin path/to/my_encoder.py` (repeatable): the file is
     imported once under the stable module name `dreamkit_plugins.<stem>`.
  2. An installed package that declares an entry point in the group
     `dreamkit.plugins`; its module is imported on every start.
  3. An `import my_package.components` line inside a .gin file (gin imports it).

Worker processes started with `spawn` call `load(paths)` again with the same paths.
"""

import importlib.metadata
import importlib.util
import sys
import traceback
import types
from pathlib import Path

from dreamkit.errors import ConfigError

PACKAGE = 'dreamkit_plugins'
ENTRY_POINT_GROUP = 'dreamkit.plugins'
_loaded_files = {}  # module name -> resolved path
_loaded_entry_points = {}  # (name, value) -> what a run records of it


def module_name(path):
  """The stable module name a plugin file is imported under."""
  stem = Path(path).stem
  safe = ''.join(c if c.isalnum() or c == '_' else '_' for c in stem)
  return f'{PACKAGE}.{safe}'


def load(paths):
  """Imports each plugin file once; returns their resolved paths, first order, no repeats.

  The list is what a run records (plugins.json) and hands its workers, so a file
  passed twice (or under two spellings of its path) appears once.
  """
  resolved = []
  for path in paths:
    path = Path(path).expanduser()
    if not path.is_file():
      raise ConfigError(f'Plugin file not found: {path}. Pass the path of a .py file '
                        'with --plugin.')
    path = path.resolve()
    name = module_name(path)
    if name in _loaded_files:
      if _loaded_files[name] != path:
        raise ConfigError(
            f'Two plugin files share the name {path.stem}: {_loaded_files[name]} and '
            f'{path}. Rename one; plugins are imported as {PACKAGE}.<file name>.')
      if str(path) not in resolved:
        resolved.append(str(path))
      continue
    _import_file(name, path)
    _loaded_files[name] = path
    resolved.append(str(path))
  return resolved


def _import_file(name, path):
  if PACKAGE not in sys.modules:
    package = types.ModuleType(PACKAGE)
    package.__path__ = []
    sys.modules[PACKAGE] = package
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  sys.modules[name] = module
  try:
    spec.loader.exec_module(module)
  except ConfigError:
    del sys.modules[name]
    raise
  except BaseException as e:  # Any failure in user code is reported with its location.
    del sys.modules[name]
    if isinstance(e, KeyboardInterrupt):
      raise
    raise ConfigError(f'Plugin {path} failed to import: {_describe(e, path)}') from None


def _describe(error, path):
  line = None
  if isinstance(error, SyntaxError) and error.lineno:
    line = error.lineno
  else:
    for frame in traceback.extract_tb(error.__traceback__):
      if Path(frame.filename).resolve() == path:
        line = frame.lineno
  where = f' (line {line})' if line else ''
  return f'{type(error).__name__}: {error}{where}'


def load_entry_points():
  """Imports every installed package's `dreamkit.plugins` entry point once."""
  names = []
  for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
    key = (entry_point.name, entry_point.value)
    if key in _loaded_entry_points:
      continue
    try:
      entry_point.load()
    except Exception as e:  # Name the package that broke, not our loader.
      raise ConfigError(
          f"Plugin entry point '{entry_point.name} = {entry_point.value}' (group "
          f'{ENTRY_POINT_GROUP}) failed to import: {type(e).__name__}: {e}. '
          'Fix or uninstall that package.') from None
    dist = getattr(entry_point, 'dist', None)
    _loaded_entry_points[key] = {
        'name': entry_point.name, 'value': entry_point.value,
        'distribution': dist.name if dist is not None else None,
        'version': dist.version if dist is not None else None}
    names.append(entry_point.name)
  return names


def loaded_entry_points():
  """[{'name', 'value', 'distribution', 'version'}] of every entry point loaded so
  far: what a run records, so that it can say what to install to rebuild it."""
  return [dict(info) for info in _loaded_entry_points.values()]


def loaded_files():
  return [str(path) for path in _loaded_files.values()]
