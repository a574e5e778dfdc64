"""A run's record of what rebuilds its agent: its config, its plugins, their versions.

    record.write(logdir, loaded)              # at start: plugins.json, plugins/*.py
    loaded = record.load(logdir, bindings)    # parse the run again (run / eval / dream)

A logdir holds `config.gin` (the parsed config, written by the runner), copies of the
plugin files it loaded in `plugins/` (a plugin edited or moved later does not change
what the run was), and `plugins.json`:

    {"files": [{"path": "/home/me/my_encoder.py", "copy": "plugins/my_encoder.py"}],
     "entry_points": [{"name": "mine", "value": "mine.components",
                       "distribution": "mine", "version": "1.2.0"}]}

`load` imports the copies (under the module names the originals had), checks that
the entry-point plugins are installed (a missing one is a UserError naming the
package and version to install; another version is a warning), then parses
config.gin and the extra bindings. A logdir written before this record (plugins.json
a plain list of paths) loads its plugins from those paths.
"""

import dataclasses
import json
import pathlib
import shutil
import warnings

from dreamkit import config as config_lib
from dreamkit import plugins as plugins_lib
from dreamkit.errors import UserError

PLUGINS_JSON = 'plugins.json'
PLUGIN_COPIES = 'plugins'


@dataclasses.dataclass
class Recorded:
  """What a logdir says about its run."""
  config: pathlib.Path     # its config.gin
  files: list              # plugin files to load: the copies (or old records' paths)
  entry_points: list       # [{'name', 'value', 'distribution', 'version'}]


def is_logdir(path):
  """Whether `path` is a run's logdir (a folder with a config.gin)."""
  path = pathlib.Path(path)
  return path.is_dir() and (path / 'config.gin').is_file()


def write(logdir, loaded):
  """Copies the plugin files of `loaded` into `logdir/plugins/` and writes
  plugins.json with them and the entry-point plugins loaded so far."""
  logdir = pathlib.Path(logdir)
  copies = logdir / PLUGIN_COPIES
  previous = {entry['copy']: entry['path'] for entry in _read_json(logdir)['files']
              if entry.get('copy')}
  files = []
  for path in loaded.plugins:
    path = pathlib.Path(path).resolve()
    copy = copies / path.name
    relative = f'{PLUGIN_COPIES}/{path.name}'
    if path == copy.resolve():  # A run resumed from its own record.
      files.append({'path': previous.get(relative, str(path)), 'copy': relative})
      continue
    copies.mkdir(exist_ok=True)
    shutil.copyfile(path, copy)
    files.append({'path': str(path), 'copy': relative})
  text = json.dumps({'files': files, 'entry_points': plugins_lib.loaded_entry_points()},
                    indent=1)
  temp = logdir / (PLUGINS_JSON + '.tmp')
  temp.write_text(text)
  temp.replace(logdir / PLUGINS_JSON)


def read(logdir):
  """The Recorded of `logdir`; a UserError when it is not a run's logdir."""
  logdir = pathlib.Path(logdir)
  if not logdir.is_dir():
    raise UserError(f'No logdir {logdir}: pass the folder a run wrote.')
  if not (logdir / 'config.gin').is_file():
    raise UserError(
        f'{logdir} has no config.gin: it is not the logdir of a dreamkit run (pass the '
        'folder that holds config.gin, checkpoints/ and metrics.jsonl).')
  recorded = _read_json(logdir)
  files = []
  for entry in recorded['files']:
    copy = logdir / entry['copy'] if entry.get('copy') else None
    if copy is not None and copy.is_file():
      files.append(str(copy))
    elif pathlib.Path(entry['path']).is_file():
      files.append(entry['path'])
    else:
      raise UserError(
          f"The run in {logdir} used the plugin file {entry['path']}, which is gone "
          f"(and {logdir / PLUGIN_COPIES} holds no copy): put it back, or pass it with "
          '--plugin.')
  return Recorded(logdir / 'config.gin', files, recorded['entry_points'])


def check(logdir):
  """`read`, and the entry-point check of `load`: what can be said before
  TensorFlow is imported."""
  recorded = read(logdir)
  check_entry_points(recorded.entry_points, logdir)
  return recorded


def load(logdir, bindings=(), extra_plugins=()):
  """Parses the run of `logdir` again: its plugins, config.gin, then `bindings`.

  Returns the config.Loaded, as `dreamkit run FILE.gin` would have made it.
  """
  recorded = check(logdir)
  return config_lib.load([recorded.config], bindings,
                         [*recorded.files, *extra_plugins])


def check_entry_points(recorded, logdir):
  """A UserError for a recorded entry-point plugin that is not installed now; a
  warning for one installed in another version."""
  import importlib.metadata  # pylint: disable=import-outside-toplevel
  installed = {}
  for entry_point in importlib.metadata.entry_points(group=plugins_lib.ENTRY_POINT_GROUP):
    dist = getattr(entry_point, 'dist', None)
    installed[(entry_point.name, entry_point.value)] = dist.version if dist else None
  for entry in recorded:
    key = (entry['name'], entry['value'])
    wanted = entry.get('version')
    package = entry.get('distribution') or entry['value'].split('.')[0]
    if key not in installed:
      pin = f'=={wanted}' if wanted else ''
      raise UserError(
          f"The run in {logdir} used the plugin entry point '{entry['name']} = "
          f"{entry['value']}' of the package {package} {wanted or ''}, which is not "
          f'installed: pip install {package}{pin}')
    if wanted and installed[key] and installed[key] != wanted:
      warnings.warn(
          f"The run in {logdir} was made with {package} {wanted}; {installed[key]} is "
          'installed. Its components may build differently.', stacklevel=2)


def _read_json(logdir):
  path = pathlib.Path(logdir) / PLUGINS_JSON
  try:
    data = json.loads(path.read_text())
  except FileNotFoundError:
    return {'files': [], 'entry_points': []}
  except ValueError as error:
    raise UserError(f'{path} is not valid JSON ({error}); it records the run\'s '
                    'plugins.') from None
  if isinstance(data, list):  # Before copies and entry points were recorded.
    return {'files': [{'path': path} for path in data], 'entry_points': []}
  return {'files': list(data.get('files', [])),
          'entry_points': list(data.get('entry_points', []))}
