"""One registry mechanism for every kind of interchangeable component.

Each kind (`envs`, `encoders`, `dynamics`, `heads`, `replays`, `objectives`,
`explorers`, `outputs`) has one `Registry`, created in the module that defines the kind's
interface and holds its built-in components. Registering is one decorator:

    import dreamkit

    @dreamkit.register('encoders')
    class MyEncoder(dreamkit.networks.Encoder):
      ...

after which gin files refer to it as `@encoders.MyEncoder`. The class is checked
against the kind's interface and rejected when its name is taken.
"""

import difflib
import importlib
import inspect

import gin

from dreamkit import gin_access
from dreamkit.errors import ConfigError

# Where each kind's registry lives. Importing the module fills the registry with the
# built-in components of that kind.
KIND_MODULES = {
    'envs': 'dreamkit.envs',
    'encoders': 'dreamkit.networks.encoders',
    'dynamics': 'dreamkit.networks.dynamics',
    'heads': 'dreamkit.networks.heads',
    'replays': 'dreamkit.replay',
    'objectives': 'dreamkit.behavior.objectives',
    'explorers': 'dreamkit.behavior.exploration',
    'outputs': 'dreamkit.outputs',
}

# Modules that register gin configurables outside the registries (the Pipeline root
# and the classes it assembles: WorldModel, ActorCritic, Agent).
ROOT_MODULES = ('dreamkit.runner.pipeline',)
# What `dreamkit components` calls those configurables; gin names them bare (`Pipeline`).
CORE = 'core'
_CORE_ORDER = ('Pipeline', 'WorldModel', 'ActorCritic', 'Agent')

_REGISTRIES = {}


class Entry:
  """A registered component: its name, class and what `dreamkit components` shows."""

  def __init__(self, kind, name, cls):
    self.kind = kind
    self.name = name
    self.cls = cls

  @property
  def description(self):
    doc = inspect.getdoc(self.cls) or ''
    return doc.strip().split('\n')[0] if doc else '(no description)'

  @property
  def parameters(self):
    """[(name, default or inspect.Parameter.empty)] of the constructor."""
    try:
      signature = inspect.signature(self.cls.__init__)
    except (TypeError, ValueError):
      return []
    result = []
    for name, param in signature.parameters.items():
      if name == 'self' or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
        continue
      result.append((name, param.default))
    return result

  @property
  def gin_name(self):
    return self.name if self.kind == CORE else f'{self.kind}.{self.name}'

  @property
  def builtin(self):
    """True for components shipped in the dreamkit package (not plugins)."""
    return self.cls.__module__.startswith('dreamkit.')


class Registry:
  """Named components of one kind, each also registered with gin.

  Args:
    kind: plural kind name; gin refers to entries as `@<kind>.<Name>`.
    interface: the abstract class (or tuple of classes) every entry must subclass.
    check: optional `check(cls, name)` for rules of this kind only (envs: a unique
      task prefix); it raises to refuse the class, before anything is registered.
  """

  def __init__(self, kind, interface, check=None):
    if kind in _REGISTRIES:
      raise ValueError(f"A registry for kind '{kind}' exists already.")
    self.kind = kind
    self.interface = interface if isinstance(interface, tuple) else (interface,)
    self._entries = {}
    self._kind_check = check
    _REGISTRIES[kind] = self

  def register(self, cls=None, *, name=None):
    """Decorator: `@registry.register` or `@registry.register(name='Other')`."""
    if cls is None:
      return lambda c: self.register(c, name=name)
    name = name or cls.__name__
    self._check(cls, name)
    if self._kind_check is not None:
      self._kind_check(cls, name)
    if gin.config_is_locked():
      raise ConfigError(
          f"Cannot register {self.kind}.{name}: the configuration is already "
          'parsed. Load plugins before parsing .gin files.')
    gin.register(name, module=f'dreamkit.{self.kind}')(cls)
    self._entries[name] = Entry(self.kind, name, cls)
    return cls

  def _check(self, cls, name):
    if not inspect.isclass(cls) or not issubclass(cls, self.interface):
      names = ' or '.join(i.__module__ + '.' + i.__qualname__ for i in self.interface)
      raise TypeError(
          f"Cannot register {cls!r} as {self.kind}.{name}: a component of kind "
          f"'{self.kind}' must subclass {names}.")
    for interface in self.interface:
      if not issubclass(cls, interface):
        continue
      missing = [
          method for method in getattr(interface, 'required_methods', ())
          if getattr(cls, method, None) is getattr(interface, method, None)]
      if missing:
        raise TypeError(
            f'Cannot register {cls.__qualname__} as {self.kind}.{name}: it does '
            f"not implement {', '.join(missing)} of {interface.__qualname__}.")
    if name in self._entries:
      other = self._entries[name].cls
      raise ValueError(
          f"The name {self.kind}.{name} is taken by {other.__module__}."
          f'{other.__qualname__}; register {cls.__qualname__} under another '
          'name with register(name=...).')

  def build(self, factory, where, *args, **kwargs):
    """Builds the part of slot `where` with its factory (see `build`), checking that
    it is a component of this kind."""
    return build(factory, where, self.interface, *args, kind=self.kind, **kwargs)

  def get(self, name):
    """The registered class called `name`; a ConfigError lists the closest names."""
    if name not in self._entries:
      raise ConfigError(unknown_message(self.kind, name, list(self._entries)))
    return self._entries[name].cls

  def configured(self, name):
    """The gin-configured constructor of `name` (bindings applied when called)."""
    self.get(name)
    return gin.get_configurable(f'dreamkit.{self.kind}.{name}')

  def entries(self, builtin_only=False):
    entries = [self._entries[name] for name in sorted(self._entries)]
    return [e for e in entries if e.builtin] if builtin_only else entries

  def names(self, builtin_only=False):
    return [entry.name for entry in self.entries(builtin_only)]

  def __contains__(self, name):
    return name in self._entries


def build(factory, where, interface, *args, kind=None, **kwargs):
  """Builds the part of slot `where` (e.g. 'WorldModel.encoder') with its factory.

  Every slot is bound to a factory, written without parentheses in gin
  (`@encoders.DreamerEncoder`), and its owner calls it with the runtime arguments
  `args` / `kwargs`. A ConfigError says so when `factory` is not a factory (an
  instance, None) or builds something that is not an `interface` (a class or a
  tuple of them); `kind` names the registry the part comes from.
  """
  interfaces = interface if isinstance(interface, tuple) else (interface,)
  names = ' or '.join(i.__name__ for i in interfaces)
  example = f'@{kind}.<Name>' if kind else f'@{interfaces[0].__name__}'
  source = f'a component of the `{kind}` registry' if kind else f'a factory of {names}'
  if factory is None or isinstance(factory, interfaces) or not callable(factory):
    raise ConfigError(
        f'{where} must be a factory of {names}, bound without parentheses '
        f'(e.g. {where} = {example}); got {factory!r}.')
  if inspect.isclass(factory) and not issubclass(factory, interfaces):
    raise ConfigError(f'{where} is bound to {factory.__name__}, which is not {_a(names)}: '
                      f'bind {source}.')
  part = factory(*args, **kwargs)
  if not isinstance(part, interfaces):
    raise ConfigError(f'{where} built {part!r}, which is not {_a(names)}: bind {source}.')
  return part


def _a(noun):
  return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def unknown_message(kind, name, available):
  close = difflib.get_close_matches(name, available, n=3, cutoff=0.5)
  message = f"Unknown {kind} component '{name}'."
  if close:
    message += f" Did you mean: {', '.join(close)}?"
  message += f" Available: {', '.join(sorted(available)) or '(none)'}."
  return message


def get_registry(kind):
  """The registry of `kind`, importing its module (and built-ins) first."""
  if kind not in KIND_MODULES:
    raise ConfigError(unknown_message('kind of', kind, list(KIND_MODULES)))
  importlib.import_module(KIND_MODULES[kind])
  return _REGISTRIES[kind]


def register(kind, name=None):
  """Decorator registering a class as a component of `kind` (see module doc)."""
  registry = get_registry(kind)
  return registry.register(name=name)


def load_builtins():
  """Import every kind's module and the pipeline, so everything gin names exists."""
  registries = {kind: get_registry(kind) for kind in KIND_MODULES}
  for module in ROOT_MODULES:
    importlib.import_module(module)
  return registries


def format_parameter(name, default):
  """`name=default` as `dreamkit components` shows it; a bare name without one."""
  if default is inspect.Parameter.empty:
    return name
  if default is gin.REQUIRED:
    return f'{name}=%gin.REQUIRED'
  return f'{name}={default!r}'


def core_entries():
  """Entries for every gin configurable outside the registries, Pipeline first.

  The Pipeline root and the classes it assembles (WorldModel, ActorCritic, Agent),
  and any class a plugin registers with gin directly.
  """
  load_builtins()
  entries = []
  for selector in gin_access.selectors():
    module, _, name = selector.rpartition('.')
    if module == 'gin' or module.rpartition('.')[2] in KIND_MODULES:
      continue
    entries.append(Entry(CORE, name, gin.get_configurable(selector)))
  order = {name: i for i, name in enumerate(_CORE_ORDER)}
  return sorted(entries, key=lambda e: (order.get(e.name, len(order)), e.name))


def markdown(kinds=None):
  """The components reference page (docs/components.md) for `kinds`, from the registries.

  Built-in components only: the page documents dreamkit itself, whatever plugin
  packages happen to be installed where it is generated.
  """
  lines = [
      '# Components', '',
      'Generated by `dreamkit components --markdown > docs/components.md`; a test checks',
      'that it matches the registries. In gin, refer to a component as `@<kind>.<Name>`',
      'and bind its parameters as `<kind>.<Name>.<parameter> = value`.', '']
  for kind in kinds or [CORE, *KIND_MODULES]:
    if kind == CORE:
      entries = [entry for entry in core_entries() if entry.builtin]
      lines += [f'## {CORE}', '', 'The Pipeline root and the classes it assembles; '
                'gin names them without a kind (`WorldModel.kl_free = 1.0`).', '']
    else:
      entries = get_registry(kind).entries(builtin_only=True)
      lines += [f'## {kind}', '']
    lines += ['| component | description | parameters (defaults) |', '| --- | --- | --- |']
    for entry in entries:
      params = ', '.join(format_parameter(*parameter) for parameter in entry.parameters)
      params = params.replace('|', '\\|')
      lines.append(f'| `{entry.gin_name}` | {entry.description} | {params} |')
    lines.append('')
  return '\n'.join(lines)
