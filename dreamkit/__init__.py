"""dreamkit: a toolkit for DreamerV2-family world-model reinforcement learning."""

__version__ = '0.1.0'


def register(kind, name=None):
  """Decorator: register a class as a component of `kind` (see dreamkit.registry)."""
  from dreamkit import registry  # Lazy: keeps `import dreamkit` free of TensorFlow.
  return registry.register(kind, name=name)
