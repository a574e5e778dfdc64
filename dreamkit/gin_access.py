"""Everything dreamkit reads of gin-config beyond its public API, in one place.

gin-config has no public way to list what was bound, what was read, or every
registered name, and its errors carry their facts only in their message text. This
module is the one place that knows those internals and message forms, for the gin
version setup.py pins (GIN_VERSION); tests/test_gin_access.py pins each of them, so an
upgrade that changes one fails there, by name, and nowhere else.

    bound()                 [(scope, selector, {param: value})] as parsed
    read()                  {(scope, selector): {param, ...}} read by calls so far
    selectors()             every registered configurable's full selector
    reference(value)        what a parsed value refers to: Reference, or None
    statements(text)        the statements of gin text, each with its line
    config_str(operative)   gin's config text, its import lines without aliases
    error_facts(error)      what a gin parse error says: ErrorFacts(kind, ...)
"""

import dataclasses
import re

import gin
from gin import config_parser

GIN_VERSION = '0.5.0'


def bound():
  """Every parsed binding: [(scope, selector, {param: value})], scope '' if none."""
  config = gin.config._CONFIG  # pylint: disable=protected-access
  return [(scope, selector, dict(params)) for (scope, selector), params in config.items()]


def read():
  """{(scope, selector): set of params} that calls of configurables have read."""
  operative = gin.config._OPERATIVE_CONFIG  # pylint: disable=protected-access
  return {key: set(params) for key, params in operative.items()}


def selectors():
  """The full selector of every registered configurable ('dreamkit.heads.MLPHead')."""
  # A gin SelectorMap: iterating it directly indexes it with 0, 1, ... (KeyError).
  registry = gin.config._REGISTRY  # pylint: disable=protected-access
  return sorted(selector for selector, _ in registry.items())


@dataclasses.dataclass(frozen=True)
class Reference:
  """A parsed value that names a configurable or a macro.

  kind: 'factory' (`@scope/name`), 'call' (`@scope/name()`) or 'macro' (`%NAME`).
  scopes: the reference's own scopes, ('reward',) for `@reward/heads.MLPHead`.
  selector: the configurable's full selector, or the macro's name for a macro.
  """
  kind: str
  scopes: tuple = ()
  selector: str = ''


def reference(value):
  """The Reference a parsed binding value is (see `bound`), or None for a literal."""
  if not isinstance(value, gin.config.ConfigurableReference):
    return None
  selector = value.configurable.selector
  if selector == 'gin.macro':  # `%NAME` is parsed as `@NAME/gin.macro()`.
    return Reference('macro', (), '/'.join(value.scopes))
  return Reference('call' if value.evaluate else 'factory', tuple(value.scopes), selector)


@dataclasses.dataclass(frozen=True)
class Statement:
  """One statement of gin text, with its line (1-based).

  kind: 'binding' (scope, selector as written, parameter), 'macro' (selector is the
  macro's name, with its scope), 'include' (path as written) or 'import'.
  """
  kind: str
  line: int
  scope: str = ''
  selector: str = ''
  parameter: str = ''
  path: str = ''


class _NoValues(config_parser.ParserDelegate):
  """Parses references and macros to None: `statements` needs only the places."""

  def configurable_reference(self, scoped_selector, evaluate):
    return None

  def macro(self, name):
    return None


def statements(text):
  """[Statement] of gin `text`, in order; gin's SyntaxError if it does not parse."""
  result = []
  for statement in config_parser.ConfigParser(text, _NoValues()):
    line = statement.location.line_num
    if isinstance(statement, config_parser.BindingStatement):
      if statement.arg_name:
        result.append(Statement('binding', line, statement.scope, statement.selector,
                                statement.arg_name))
      else:
        name = '/'.join(part for part in (statement.scope, statement.selector) if part)
        result.append(Statement('macro', line, selector=name))
    elif isinstance(statement, config_parser.IncludeStatement):
      result.append(Statement('include', line, path=statement.filename))
    elif isinstance(statement, config_parser.ImportStatement):
      result.append(Statement('import', line, path=statement.module))
  return result


_IMPORT_ALIAS = re.compile(r'^import ([\w.]+) as \w+$', re.MULTILINE)


def config_str(operative=False):
  """gin's text of the parsed (or, with `operative`, the read) configuration.

  gin gives every imported module after the first that shares its top-level name a
  unique alias (`import dreamkit.envs as dreamkit3`). Without dynamic registration
  selectors never use those aliases, so the plain `import dreamkit.envs` says the
  same and reads as written.
  """
  text = gin.operative_config_str() if operative else gin.config_str()
  if 'import __gin__.dynamic_registration' in text:
    return text  # There the aliases are part of the selectors.
  return _IMPORT_ALIAS.sub(r'import \1', text)


@dataclasses.dataclass
class ErrorFacts:
  """What a gin error says. `kind` is one of:

  'unknown_configurable' (name), 'unknown_parameter' (name, parameter),
  'missing_file' (path), 'required' (name, parameters), 'syntax' (message, file,
  line, text), 'called_without_arguments' (name: a configurable that gin called, as
  `@name()`, without the arguments its owner passes; parameters: the missing ones), or
  'other' (message). `file` / `line` or `binding` say where, when
  gin says it.
  """
  kind: str
  message: str = ''
  name: str = ''
  parameter: str = ''
  parameters: tuple = ()
  path: str = ''
  file: str = ''
  line: int = 0
  text: str = ''
  binding: str = ''


_UNKNOWN_CONFIGURABLE = re.compile(
    r"No configurable matching (?:reference )?'@?([\w./]+?)(?:\(\))?'")
_UNKNOWN_PARAMETER = re.compile(
    r"Configurable '([\w.]+)' doesn't have a parameter named '(\w+)'")
_MISSING_FILE = re.compile(r'Unable to open file: (.+?)\. Searched')
_REQUIRED = re.compile(r'Required bindings for `([\w.]+)` not provided in config: \[(.*?)\]')
_MISSING_ARGUMENTS = re.compile(
    r"missing \d+ required positional arguments?: (.+?)\s*\n(?:.|\n)*?"
    r"In call to configurable '([\w.]+)'")
_IN_FILE = re.compile(r'In file "([^"]+)", line (\d+)')
_IN_BINDING = re.compile(r'In bindings string line \d+\n\s*(.*)')


def error_facts(error):
  """The facts of an exception gin raised while parsing or calling; see ErrorFacts."""
  if isinstance(error, SyntaxError):
    location = error.args[1] if len(error.args) > 1 else None
    if location is not None and hasattr(location, 'line_num'):
      return ErrorFacts('syntax', message=str(error.args[0]),
                        file=location.filename or '', line=location.line_num,
                        text=(location.line_content or '').strip())
    return ErrorFacts('syntax', message=str(error))
  text = str(error)
  where = {}
  match = _IN_FILE.search(text)
  if match:
    where = {'file': match.group(1), 'line': int(match.group(2))}
  else:
    match = _IN_BINDING.search(text)
    if match:
      where = {'binding': match.group(1).strip()}
  match = _MISSING_ARGUMENTS.search(text)
  if isinstance(error, TypeError) and match:
    names = tuple(re.findall(r"'(\w+)'", match.group(1)))
    return ErrorFacts('called_without_arguments', name=match.group(2),
                      parameters=names, **where)
  match = _UNKNOWN_CONFIGURABLE.search(text)
  if match:
    return ErrorFacts('unknown_configurable', name=match.group(1), **where)
  match = _UNKNOWN_PARAMETER.search(text)
  if match:
    return ErrorFacts('unknown_parameter', name=match.group(1),
                      parameter=match.group(2), **where)
  match = _MISSING_FILE.search(text)
  if match:
    return ErrorFacts('missing_file', path=match.group(1), **where)
  match = _REQUIRED.search(text)
  if match:
    names = tuple(n.strip(" '") for n in match.group(2).split(','))
    return ErrorFacts('required', name=match.group(1), parameters=names, **where)
  return ErrorFacts('other', message=' '.join(text.strip().splitlines()[:1]), **where)
