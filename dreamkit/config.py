"""The one configuration loader: plugins, then .gin files, then bindings, then finalize.

    from dreamkit import config
    loaded = config.load(['pipelines/atari_dreamerv2.gin'], ['Pipeline.steps = 1e5'],
                         plugins=['my_encoder.py'])

Every gin problem a user can cause comes out as a `ConfigError` whose message names
the file and line (or the command-line binding) and says how to fix it.
"""

import dataclasses
import difflib
import logging
import re
import tokenize
import traceback
from pathlib import Path

import gin

from dreamkit import plugins as plugins_lib
from dreamkit import registry
from dreamkit.errors import ConfigError


@dataclasses.dataclass
class Loaded:
  """What `load` parsed: kept so the run can record it and workers can re-parse."""
  files: list
  bindings: list
  plugins: list  # Paths of plugin files, resolved.


def load(files, bindings=(), plugins=(), finalize=True):
  """Loads plugins, parses `files` in order, then `bindings`, then finalizes.

  Later files and bindings override earlier ones. Raises ConfigError for every
  mistake a user can make in them.
  """
  # Before plugins and built-ins: a missing file then never waits for (or prints the
  # start-up noise of) a TensorFlow import.
  check_files(files)
  plugin_paths = plugins_lib.load(plugins)
  plugins_lib.load_entry_points()
  registry.load_builtins()
  for file in files:
    _add_include_dirs(Path(file))
    _parse(lambda file=file: gin.parse_config_file(str(file)), where=f'file {file}')
  for binding in bindings:
    _parse(lambda binding=binding: gin.parse_config(binding),
           where=f"binding -b '{binding}'")
  if finalize:
    gin.finalize()
  return Loaded([str(f) for f in files], list(bindings), plugin_paths)


def check_files(files):
  """Raises one ConfigError naming every file in `files` that does not exist."""
  missing = [str(f) for f in files if not Path(f).is_file()]
  if missing:
    raise ConfigError(
        f"No such pipeline file: {', '.join(missing)}. Pass the path of a .gin "
        'file, e.g. pipelines/atari_dreamerv2.gin.')


class _QuietIncludeSearch(logging.Filter):
  """gin logs an ERROR for every search-path miss before it finds an include."""

  def filter(self, record):
    return not record.getMessage().startswith('Path not found:')


_INCLUDE = re.compile(r"""^\s*include\s+['"]([^'"]+)['"]""", re.MULTILINE)


def _add_include_dirs(file, seen=None):
  """Lets `include 'x.gin'` resolve next to the including file, at any depth."""
  seen = set() if seen is None else seen
  file = file.resolve()
  if file in seen or not file.is_file():
    return
  seen.add(file)
  directory = str(file.parent)
  if directory not in gin.config._LOCATION_PREFIXES:  # pylint: disable=protected-access
    gin.add_config_file_search_path(directory)
  for include in _INCLUDE.findall(file.read_text()):
    _add_include_dirs(file.parent / include, seen)


def _parse(parse_fn, where):
  quiet = _QuietIncludeSearch()
  logging.getLogger().addFilter(quiet)
  try:
    parse_fn()
  except Exception as e:  # pylint: disable=broad-except
    message = _parse_error(e, where)
    if message is None:  # Not a mistake in the config: a bug, shown as one.
      raise
    raise ConfigError(message) from None
  finally:
    logging.getLogger().removeFilter(quiet)


def _parse_error(error, where):
  """The one-line message for an error raised while parsing `where`, else None."""
  failed_import = _failed_gin_import(error)
  if failed_import is not None:
    return _import_error(error, *failed_import, where)
  if isinstance(error, SyntaxError):
    location = error.args[1] if len(error.args) > 1 else None
    if location is not None and hasattr(location, 'line_num'):
      # gin gives no file name for a -b binding: name the binding instead.
      place = (f'{location.filename}, line {location.line_num}' if location.filename
               else where)
      return (f'Syntax error in {place}: {error.args[0]} '
              f'({location.line_content.strip()!r})')
    return f'Syntax error in {where}: {error}'
  if isinstance(error, tokenize.TokenError):
    line = error.args[1][0] if len(error.args) > 1 else '?'
    return (f'Syntax error in {where}, line {line}: {error.args[0]} (an unclosed '
            'bracket or quote?)')
  if isinstance(error, (ValueError, OSError, TypeError)):
    return explain(error, where)
  return None


def _failed_gin_import(error):
  """(statement, frames) if `error` came out of the module a gin `import` line named.

  `frames` is the traceback below gin's import call (the module's frames; importlib
  drops its own, all of them for a module not found). An error gin raises itself
  about an import line (a `__gin__` feature) is not included.
  """
  node = error.__traceback__
  while node is not None:
    code = node.tb_frame.f_code
    if code.co_name == 'process_import' and code.co_filename == gin.config.__file__:
      if node.tb_next is None and not isinstance(error, ImportError):
        return None
      return node.tb_frame.f_locals.get('statement'), traceback.extract_tb(node.tb_next)
    node = node.tb_next
  return None


def _import_error(error, statement, frames, where):
  """A failed `import` line in a .gin file or binding: the module's fault, and where."""
  location = getattr(statement, 'location', None)
  if location is not None and location.filename:
    where = f'{location.filename}, line {location.line_num}'
  # The innermost module-level line that raised, even through a function it called.
  module_frames = [frame for frame in frames if not frame.filename.startswith('<')]
  origin = None
  if isinstance(error, SyntaxError) and error.filename:
    origin = error.filename, error.lineno
  elif module_frames:
    top_level = [frame for frame in module_frames if frame.name == '<module>']
    frame = (top_level or module_frames)[-1]
    origin = frame.filename, frame.lineno
  if origin is None and isinstance(error, ImportError):  # The module was not found.
    return (f'An import in {where} failed: {_first_lines(error)}. Install the package '
            'or pass the plugin file with --plugin.')
  origin = f' ({origin[0]}, line {origin[1]})' if origin else ''
  module = getattr(statement, 'module', '?')
  return (f"Module '{module}' (imported in {where}) failed to import: "
          f'{type(error).__name__}: {_first_lines(error)}{origin}. Fix the module or '
          'remove the import line.')


def explain(error, where=''):
  """A user-facing message for a gin error: what, where, how to fix."""
  text = str(error)
  location = _location(text) or where
  match = re.search(r"No configurable matching (?:reference )?'@?([\w./]+?)(?:\(\))?'", text)
  if match:
    return _unknown_component(match.group(1), location)
  match = re.search(r"Configurable '([\w.]+)' doesn't have a parameter named '(\w+)'", text)
  if match:
    return _unknown_parameter(match.group(1), match.group(2), location)
  match = re.search(r'Unable to open file: (.+?)\. Searched', text)
  if match:
    return f'Cannot open {match.group(1)} (included from {location}): check the path.'
  match = re.search(r'Required bindings for `([\w.]+)` not provided in config: \[(.*?)\]', text)
  if match:
    names = [n.strip(" '") for n in match.group(2).split(',')]
    wanted = ', '.join(f'{match.group(1)}.{n}' for n in names)
    return (f'Required value not set: {wanted}. Set it in a .gin file or on the '
            f"command line, e.g. -b '{match.group(1)}.{names[0]} = ...'.")
  return f'Configuration error in {location}: {_first_lines(error)}'


def _location(text):
  match = re.search(r'In file "([^"]+)", line (\d+)', text)
  if match:
    return f'{match.group(1)}, line {match.group(2)}'
  match = re.search(r'In bindings string line (\d+)\n\s*(.*)', text)
  if match:
    return f"binding -b '{match.group(2).strip()}'"
  return None


def _unknown_component(name, location):
  scope_free = name.split('/')[-1]
  kind, _, component = scope_free.rpartition('.')
  message = f"Unknown component '{scope_free}' in {location}."
  if kind in registry.KIND_MODULES:
    available = registry.get_registry(kind).names()
    close = difflib.get_close_matches(component, available, n=3, cutoff=0.5)
    if close:
      message += f" Did you mean: {', '.join(f'{kind}.{c}' for c in close)}?"
    message += f" Available {kind}: {', '.join(available)}."
  else:
    known = _all_configurable_names()
    close = difflib.get_close_matches(scope_free, known, n=3, cutoff=0.6)
    if close:
      message += f" Did you mean: {', '.join(close)}?"
    message += ' Run `dreamkit components` to list every component.'
  return message


def _unknown_parameter(configurable, parameter, location):
  message = f"'{configurable}' has no parameter '{parameter}' ({location})."
  try:
    target = gin.get_configurable(configurable)
    import inspect
    signature = inspect.signature(getattr(target, '__init__', target))
    names = [p for p in signature.parameters if p not in ('self', 'args', 'kwargs')]
  except Exception:  # The configurable's signature is unavailable: no suggestions.
    names = []
  close = difflib.get_close_matches(parameter, names, n=3, cutoff=0.5)
  if close:
    message += f" Did you mean: {', '.join(close)}?"
  if names:
    message += f" Its parameters: {', '.join(names)}."
  return message


def _all_configurable_names():
  names = set()
  # A gin SelectorMap: iterating it directly indexes it with 0, 1, ... (KeyError).
  for selector, _ in gin.config._REGISTRY.items():  # pylint: disable=protected-access
    names.add(short_name(selector))
  return sorted(names)


def _first_lines(error, count=1):
  return ' '.join(str(error).strip().splitlines()[:count])


def unused_bindings():
  """Bindings that were parsed but never read by any constructed component.

  Call after the pipeline has built everything and run one train step. Macros are
  excluded (they are read through the bindings that reference them), and so are the
  bindings of inactive alternatives (see `inactive_alternatives`).
  """
  return [name for name, alternative in _unread() if not alternative]


def inactive_alternatives():
  """Unread bindings of components this run replaced by another of the same kind.

  A pipeline that includes another and swaps one component (the Gaussian latent
  ablation swaps `dynamics.CategoricalRSSM` for `dynamics.GaussianRSSM`) leaves the
  swapped-out component's bindings in place. They are inert by design, so they are
  not reported as dead bindings; a binding whose component *was* built in some scope
  but not in the bound one (a misspelled scope) still is.
  """
  return [name for name, alternative in _unread() if alternative]


def _unread():
  config = gin.config._CONFIG  # pylint: disable=protected-access
  operative = gin.config._OPERATIVE_CONFIG  # pylint: disable=protected-access
  built = {selector for (_, selector) in operative}
  built_kinds = {_kind(selector) for selector in built} - {None}
  result = []
  for (scope, selector), params in config.items():
    if selector.startswith('gin.'):
      continue
    for name in params:
      if _was_read(operative, scope, selector, name):
        continue
      alternative = (selector not in built and _kind(selector) in built_kinds)
      result.append(
          (f"{scope + '/' if scope else ''}{short_name(selector)}.{name}", alternative))
  return sorted(result)


def _kind(selector):
  """The registry kind of a component selector (`dreamkit.dynamics.X`), else None."""
  parts = selector.split('.')
  if len(parts) == 3 and parts[0] == 'dreamkit' and parts[1] in registry.KIND_MODULES:
    return parts[1]
  return None


def _was_read(operative, scope, selector, name):
  """A binding in `scope` is read by any call made in that scope or a nested one.

  gin records reads under the scope of the call (`reward/heads.MLPHead`), so a root
  binding (`heads.MLPHead.units`) counts as read through any scoped call.
  """
  wanted = scope.split('/') if scope else []
  for (used_scope, used_selector), used_params in operative.items():
    if used_selector != selector or name not in used_params:
      continue
    components = used_scope.split('/') if used_scope else []
    if all(part in components for part in wanted):
      return True
  return False


def short_name(selector):
  """How a user writes a configurable: `encoders.X` for components, else `Name`."""
  parts = selector.split('.')
  if len(parts) >= 2 and parts[-2] in registry.KIND_MODULES:
    return '.'.join(parts[-2:])
  return parts[-1]


def save(logdir, name='config.gin', operative=False):
  """Writes the current (or operative) config to `logdir/name` atomically."""
  text = gin.operative_config_str() if operative else gin.config_str()
  path = Path(logdir) / name
  tmp = path.with_suffix(path.suffix + '.tmp')
  tmp.write_text(text)
  tmp.replace(path)
  return path


def resolved_str():
  """The parsed configuration (files then bindings, later values winning) as gin text."""
  return gin.config_str()
