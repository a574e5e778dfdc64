"""The one configuration loader: plugins, then .gin files, then bindings, then finalize.

    from dreamkit import config
    loaded = config.load(['pipelines/atari_dreamerv2.gin'], ['Pipeline.steps = 1e5'],
                         plugins=['my_encoder.py'])

Every gin problem a user can cause comes out as a `ConfigError` whose message names
the file and line (or the command-line binding) and says how to fix it.
"""

import collections
import dataclasses
import difflib
import importlib
import inspect
import logging
import re
import sys
import tokenize
import traceback
from pathlib import Path

import gin

from dreamkit import gin_access
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
    for path in _with_includes(Path(file)):
      _add_search_path(path.parent)
      _import_modules(path.read_text(), str(path))
    _parse(lambda file=file: gin.parse_config_file(str(file)), where=f'file {file}')
  for binding in bindings:
    where = f"binding -b '{binding}'"
    _import_modules(binding, where)
    _parse(lambda binding=binding: gin.parse_config(binding), where=where)
  if finalize:
    gin.finalize()
  return Loaded([str(f) for f in files], list(bindings), plugin_paths)


def check_files(files):
  """Raises one ConfigError naming every file in `files` that does not exist, or a
  Python file given where a .gin pipeline belongs."""
  python = [str(f) for f in files if Path(f).suffix == '.py']
  if python:
    plugins = ' '.join(f'--plugin {f}' for f in python)
    raise ConfigError(
        f"{', '.join(python)} is Python, not a .gin pipeline: did you mean {plugins}? "
        'A plugin registers components; the pipeline binds them, e.g. '
        f'dreamkit run pipelines/atari_dreamerv2.gin {plugins}.')
  missing = [str(f) for f in files if not Path(f).is_file()]
  if missing:
    raise ConfigError(
        f"No such pipeline file: {', '.join(missing)}. Pass the path of a .gin "
        'file, e.g. pipelines/atari_dreamerv2.gin.')


_INCLUDE = re.compile(r"""^\s*include\s+['"]([^'"]+)['"]""", re.MULTILINE)
_IMPORT = re.compile(r'^[ \t]*import[ \t]+([\w.]+)', re.MULTILINE)
_search_paths = set()


def _with_includes(file, seen=None):
  """`file` and every file it includes, at any depth (includes resolve next to the
  including file, as gin finds them through the search path set here)."""
  seen = set() if seen is None else seen
  file = file.resolve()
  if file in seen or not file.is_file():
    return []
  seen.add(file)
  files = [file]
  for include in _INCLUDE.findall(file.read_text()):
    files += _with_includes(file.parent / include, seen)
  return files


def _add_search_path(directory):
  if str(directory) not in _search_paths:
    _search_paths.add(str(directory))
    gin.add_config_file_search_path(str(directory))


def _import_modules(text, where):
  """Imports the modules of `text`'s `import` lines now, so a module that fails is
  reported with the line that named it and the line of the module that raised (gin
  would report neither). gin then finds them imported."""
  for match in _IMPORT.finditer(text):
    module = match.group(1)
    if module == '__gin__' or module in sys.modules:
      continue
    line = text.count('\n', 0, match.start()) + 1
    place = f'{where}, line {line}' if not where.startswith('binding') else where
    try:
      importlib.import_module(module)
    except Exception as error:  # pylint: disable=broad-except
      raise ConfigError(_import_error(error, module, place)) from None


def _import_error(error, module, place):
  """A failed `import` line: the module's fault, and where."""
  frames = [frame for frame in traceback.extract_tb(error.__traceback__)
            if not frame.filename.startswith('<') and 'importlib' not in frame.filename]
  origin = None
  if isinstance(error, SyntaxError) and error.filename:
    origin = error.filename, error.lineno
  elif frames:
    top_level = [frame for frame in frames if frame.name == '<module>']
    frame = (top_level or frames)[-1]
    if Path(frame.filename).resolve() != Path(__file__).resolve():
      origin = frame.filename, frame.lineno
  if origin is None and isinstance(error, ImportError):  # The module was not found.
    return (f'An import in {place} failed: {_first_lines(error)}. Install the package '
            'or pass the plugin file with --plugin.')
  origin = f' ({origin[0]}, line {origin[1]})' if origin else ''
  return (f"Module '{module}' (imported in {place}) failed to import: "
          f'{type(error).__name__}: {_first_lines(error)}{origin}. Fix the module or '
          'remove the import line.')


class _QuietIncludeSearch(logging.Filter):
  """gin logs an ERROR for every search-path miss before it finds an include."""

  def filter(self, record):
    return not record.getMessage().startswith('Path not found:')


def _parse(parse_fn, where):
  quiet = _QuietIncludeSearch()
  logging.getLogger().addFilter(quiet)
  try:
    parse_fn()
  except (SyntaxError, tokenize.TokenError, ValueError, OSError, TypeError) as e:
    raise ConfigError(_parse_error(e, where)) from None
  finally:
    logging.getLogger().removeFilter(quiet)


def _parse_error(error, where):
  """The one-line message for an error raised while parsing `where`."""
  if isinstance(error, tokenize.TokenError):
    line = error.args[1][0] if len(error.args) > 1 else '?'
    return (f'Syntax error in {where}, line {line}: {error.args[0]} (an unclosed '
            'bracket or quote?)')
  facts = gin_access.error_facts(error)
  if facts.kind == 'syntax':
    if not facts.line:
      return f'Syntax error in {where}: {facts.message}'
    # gin gives no file name for a -b binding: name the binding instead.
    place = f'{facts.file}, line {facts.line}' if facts.file else where
    return f'Syntax error in {place}: {facts.message} ({facts.text!r})'
  return explain(error, where)


def explain(error, where=''):
  """A user-facing message for a gin error: what, where, how to fix."""
  facts = gin_access.error_facts(error)
  location = (f'{facts.file}, line {facts.line}' if facts.file else
              f"binding -b '{facts.binding}'" if facts.binding else where)
  if facts.kind == 'unknown_configurable':
    return _unknown_component(facts.name, location)
  if facts.kind == 'unknown_parameter':
    return _unknown_parameter(facts.name, facts.parameter, location)
  if facts.kind == 'missing_file':
    return f'Cannot open {facts.path} (included from {location}): check the path.'
  if facts.kind == 'called_without_arguments':
    # gin names the class bare ('DreamerDecoder'): say it as the binding writes it.
    full = [selector for selector in gin_access.selectors()
            if selector.rpartition('.')[2] == facts.name.rpartition('.')[2]]
    name = short_name(full[0] if len(full) == 1 else facts.name)
    return (f"@{name}() was called without its arguments "
            f"({', '.join(facts.parameters)}): component slots are bound to factories, "
            f'without parentheses (@{name}), and their owner passes those arguments. '
            f'Remove the parentheses.')
  if facts.kind == 'required':
    wanted = ', '.join(f'{facts.name}.{n}' for n in facts.parameters)
    return (f'Required value not set: {wanted}. Set it in a .gin file or on the '
            f"command line, e.g. -b '{facts.name}.{facts.parameters[0]} = ...'.")
  return f'Configuration error in {location}: {facts.message or _first_lines(error)}'


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
  return sorted({short_name(selector) for selector in gin_access.selectors()})


def _first_lines(error, count=1):
  return ' '.join(str(error).strip().splitlines()[:count])


def report_unused(logdir, parallel=False):
  """After the first update: warns of bindings nothing read (and lists them in
  `logdir/unused_bindings.txt`), and notes the inactive alternatives.

  With `parallel`, env bindings are read inside the worker processes, not here.
  """
  unused = unused_bindings()
  if parallel:
    unused = [name for name in unused if not name.startswith('envs.')]
  if unused:
    print('WARNING: these bindings were set but nothing read them (misspelled '
          'scope, or a component that is not used): ' + ', '.join(unused))
    (Path(logdir) / 'unused_bindings.txt').write_text('\n'.join(unused) + '\n')
  inactive = collections.Counter(
      name.rsplit('.', 1)[0] for name in inactive_alternatives())
  if inactive:
    listed = ', '.join(f'{name} ({count})' for name, count in sorted(inactive.items()))
    print(f'Note: bound but not built in this run (another component of the same '
          f'kind is used): {listed}.')


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
  operative = gin_access.read()
  built = {selector for (_, selector) in operative}
  built_kinds = {_kind(selector) for selector in built} - {None}
  result = []
  for scope, selector, params in gin_access.bound():
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
  text = gin_access.config_str(operative)
  path = Path(logdir) / name
  tmp = path.with_suffix(path.suffix + '.tmp')
  tmp.write_text(text)
  tmp.replace(path)
  return path


def resolved_str():
  """The parsed configuration (files then bindings, later values winning) as gin text."""
  return gin_access.config_str()
